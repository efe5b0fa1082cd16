"""`scalinglab prep` on the command line: JSON keys, exit code 2 with one line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scalinglab.cli import main


def run(capsys, *args) -> tuple[int, str, str]:
    try:
        main(["prep", *args])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "texts"
    d.mkdir()
    for i in range(5):
        (d / f"{i}.txt").write_text(f"text number {i}: ünïcödé ✓ " * 40)
    return d


def test_json_keys(folder, tmp_path, capsys):
    code, out, _ = run(capsys, str(folder), "--tokenizer", "bytes", "--out", str(tmp_path / "DATA"), "--json", "-q")
    assert code == 0
    s = json.loads(out)
    assert {"tokens_train", "tokens_val", "vocab_size", "tokenizer"} <= set(s)
    assert s["vocab_size"] == 262 and s["tokenizer"] == "bytes"
    n_bytes = sum(len(p.read_bytes()) for p in folder.iterdir())
    assert s["tokens_train"] + s["tokens_val"] == n_bytes + 5  # one byte per token plus one end-of-text per doc


@pytest.mark.parametrize(
    "args, words",
    [
        (["NOPE", "--out", "D"], "does not exist"),
        (["EMPTY", "--out", "D"], "no text found"),
        (["FOLDER", "--tokenizer", "bpe:64", "--out", "D"], "too small"),
        (["FOLDER", "--tokenizer", "nope", "--out", "D"], "unknown tokenizer 'nope'"),
        (["FOLDER", "--max-bytes", "lots", "--out", "D"], "not a size"),
        (["FOLDER", "--val-fraction", "1.5", "--out", "D"], "between 0 and 1"),
        (["FOLDER", "--out", "FOLDER"], "not a scalinglab data folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(folder, tmp_path, capsys, args, words):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "EMPTY" / "x.bin").write_bytes(b"\x00\xff" * 8)
    subst = {
        "NOPE": str(tmp_path / "nope"),
        "EMPTY": str(tmp_path / "EMPTY"),
        "FOLDER": str(folder),
        "D": str(tmp_path / "D"),
    }
    code, _, err = run(capsys, *[subst.get(a, a) for a in args], "-q")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err
    assert not (tmp_path / "D").exists()


def test_other_settings_refused_then_forced(folder, tmp_path, capsys):
    d = str(tmp_path / "D")
    assert run(capsys, str(folder), "--out", d, "-q")[0] == 0
    code, _, err = run(capsys, str(folder), "--out", d, "--seed", "3", "-q")
    assert code == 2 and "--force" in err and "seed" in err
    code, out, _ = run(capsys, str(folder), "--out", d, "--seed", "3", "--force", "--json", "-q")
    assert code == 0 and json.loads(out)["reused"] is False
    code, out, _ = run(capsys, str(folder), "--out", d, "--seed", "3", "--json", "-q")
    assert code == 0 and json.loads(out)["reused"] is True


def test_stdlib_bytes_entry_point(tmp_path):
    """The demo's first step, through the installed entry point, capped for speed."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "scalinglab",
            "prep",
            "stdlib",
            "--out",
            str(tmp_path / "D"),
            "--max-bytes",
            "2M",
            "--json",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["tokens_train"] + s["tokens_val"] >= 2_000_000 and s["docs_val"] >= 1
