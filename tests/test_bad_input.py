"""Bad input and faults (issue 18): every case ends with exit 2 and one `error:` line naming the problem and the
fix, no traceback, nothing stored lost, no folder left claiming a run is alive.

Full disks and read-only folders are simulated with OSError(ENOSPC/EROFS) at the write (tests run as root, whom
chmod does not stop); `test_real_*` use a tmpfs or a read-only bind mount where the machine allows mounting."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_byte_data
from scalinglab import fileio
from scalinglab.cli import main

PY = sys.executable
SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = ["--d-model", "32", "--layers", "1", "--seq-len", "32", "--batch-size", "2", "--no-progress"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def refused(res: tuple[int, str, str], *words: str) -> str:
    """Exit 2 and exactly one stderr line `error: <problem>; <fix>`, the last one (warnings or progress may come
    before it), no traceback; returns the line."""
    code, _, err = res
    lines = err.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1 and lines[-1] == errors[0], f"exit {code}: {err}"
    assert "Traceback" not in err and ";" in errors[0], errors[0]
    for w in words:
        assert w in errors[0], f"{w!r} not in {errors[0]!r}"
    return errors[0]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_data) -> Path:
    """A trained tiny GPT run (4 steps)."""
    run = tmp_path_factory.mktemp("run") / "RUN"
    main_ok("train", "--data", tiny_data, *TINY, "--steps", "4", "--out", run)
    return run


@pytest.fixture()
def texts(tmp_path) -> Path:
    d = tmp_path / "texts"
    d.mkdir()
    for i in range(6):
        (d / f"{i}.txt").write_text(f"document {i}: the quick brown fox jumps over the lazy dog. " * 30)
    return d


@pytest.fixture()
def study(tmp_path, tiny_data) -> Path:
    s = tmp_path / "STUDY"
    main_ok(
        "plan",
        "isoflop",
        "--data",
        tiny_data,
        "--budgets",
        "1e10,2e10",
        "--shapes",
        "32x1,48x1",
        "--seq-len",
        "32",
        "--batch-size",
        "4",
        "--min-steps",
        "5",
        "--out",
        s,
        "--json",
    )
    return s


def main_ok(*args) -> None:
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        assert not e.code, f"{args} exited {e.code}"


# ---- output paths: wrong kind, read-only, full disk ----


def _commands(tmp: Path, data: Path, run: Path, texts: Path, runs_csv: Path, out: Path) -> dict[str, list]:
    """Each command that writes, with its output at `out`."""
    return {
        "prep": ["prep", texts, "--out", out, "-q"],
        "plan isoflop": [
            "plan",
            "isoflop",
            "--data",
            data,
            "--budgets",
            "1e10",
            "--shapes",
            "32x1",
            "--seq-len",
            "32",
            "--batch-size",
            "4",
            "--min-steps",
            "5",
            "--out",
            out,
        ],
        "train": ["train", "--data", data, *TINY, "--steps", "2", "--out", out],
        "fit --out": ["fit", runs_csv, "--approach", "2", "--keep-unbracketed", "--out", out],  # sizes miss 2 minima
        "report --out": ["report", runs_csv, "--out", out],
        "report --figures": ["report", runs_csv, "--out", tmp / "r.html", "--figures", out],
        "grow": ["grow", run, "--width", "2", "--out", out],
        "export": ["export", run, "--out", out],
    }


@pytest.fixture()
def runs_csv(tmp_path) -> Path:
    """Runs at 3 budgets x 3 sizes from a known law L = 1.7 + 400/N^0.34 + 410/D^0.28."""
    rows = ["params,tokens,loss"]
    for c in (1e18, 3e18, 1e19):
        for n in (1e8, 2e8, 4e8, 8e8):
            d = c / 6 / n
            rows.append(f"{n:g},{d:.6g},{1.7 + 400 / n**0.34 + 410 / d**0.28:.5f}")
    p = tmp_path / "runs.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


@pytest.mark.parametrize(
    "name", ["prep", "plan isoflop", "train", "fit --out", "report --out", "report --figures", "grow", "export"]
)
def test_read_only_output_is_refused_before_work(
    name, tmp_path, tiny_data, run_dir, texts, runs_csv, capsys, monkeypatch
):
    ro = tmp_path / "ro"
    ro.mkdir()
    out = ro / "OUT"
    args = _commands(tmp_path, tiny_data, run_dir, texts, runs_csv, out)[name]
    monkeypatch.setattr(fileio, "read_only", lambda p: Path(p).resolve() == ro.resolve())
    refused(cli(capsys, *args), "read-only file system", "writable", "OUT")
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("name", ["prep", "train"])
def test_too_little_free_space_is_refused_before_work(
    name, tmp_path, tiny_data, run_dir, texts, runs_csv, capsys, monkeypatch
):
    out = tmp_path / "OUT"
    monkeypatch.setattr(fileio, "free_bytes", lambda p: 1000)
    refused(cli(capsys, *_commands(tmp_path, tiny_data, run_dir, texts, runs_csv, out)[name]), "needs at least", "free")
    assert not out.exists()


@pytest.mark.parametrize(
    "name, err",
    [(n, errno.ENOSPC) for n in ("prep", "plan isoflop", "train", "fit --out", "grow")]
    + [(n, errno.EROFS) for n in ("prep", "train", "fit --out")],
)
def test_disk_full_or_read_only_while_writing(
    name, err, tmp_path, tiny_data, run_dir, texts, runs_csv, capsys, monkeypatch
):
    """The disk fills (or is remounted read-only) after the checks: one line, no partial output, no temp files,
    and a file that was there keeps its old content."""
    out = tmp_path / "OUT"
    args = _commands(tmp_path, tiny_data, run_dir, texts, runs_csv, out)[name]
    if name == "fit --out":
        out.write_text("old content\n")

    def fail(fd):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(os, "fsync", fail)  # every stored file is fsynced before its rename
    line = refused(cli(capsys, *args))
    assert ("no space left" in line) if err == errno.ENOSPC else ("read-only" in line)
    if name == "fit --out":
        assert out.read_text() == "old content\n"
    else:
        assert not out.exists()  # train leaves no run folder behind
    assert not hidden(tmp_path)


def test_report_disk_full_keeps_the_old_page(tmp_path, monkeypatch):
    """The report page (and its figures) are written like every stored file: the old page stays whole."""
    from scalinglab.report.html import Report

    out = tmp_path / "report.html"
    out.write_text("old page\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as e:
        Report(title="t", source="s").write(out, figures_dir=tmp_path / "figs")
    assert fileio.os_error_message(e.value).startswith("no space left on the device; ")
    assert out.read_text() == "old page\n" and not hidden(tmp_path)


def test_export_disk_full_leaves_no_folder(tmp_path, run_dir, capsys, monkeypatch):
    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)
    refused(cli(capsys, "export", run_dir, "--out", tmp_path / "HF"), "no space left")
    assert not (tmp_path / "HF").exists() and not hidden(tmp_path)


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--data", "DATA", *TINY, "--steps", "2", "--out", "FILE"], "is a file"),
        (["fit", "CSV", "--approach", "2", "--out", "DIR"], "is a folder"),
        (["report", "CSV", "--out", "DIR"], "is a folder"),
        (["export", "RUN", "--out", "FILE"], "is a file"),
        (["grow", "RUN", "--out", "FILE"], "is a file"),
        (["plan", "staged", "--shape", "64x2", "--budget", "1e18", "--law-json", "DIR"], "is a folder"),
        (["plan", "staged", "--shape", "64x2", "--budget", "1e18", "--law-json", "LIST"], "not a law"),
        (["plan", "staged", "--shape", "64x2", "--budget", "1e18", "--law-json", "DEEP"], "not a law"),
    ],
)
def test_wrong_kind_of_path(args, words, tmp_path, tiny_data, run_dir, runs_csv, capsys):
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "DIR").mkdir()
    (tmp_path / "LIST").write_text("[1, 2, 3]")
    (tmp_path / "DEEP").write_text("[" * 100_000 + "]" * 100_000)
    subst = {
        "DATA": tiny_data,
        "RUN": run_dir,
        "CSV": runs_csv,
        **{k: tmp_path / k for k in ("FILE", "DIR", "LIST", "DEEP")},
    }
    refused(cli(capsys, *[subst.get(a, a) for a in args]), words)
    assert (tmp_path / "FILE").read_text() == "x" and not any((tmp_path / "DIR").iterdir())


# ---- impossible values and misleading state ----


@pytest.mark.parametrize(
    "args, words",
    [
        (["plan", "isoflop", "--grad-accum", "0"], "--grad-accum 0"),
        (["plan", "isoflop", "--lr", "-1"], "--lr -1"),
        (["plan", "isoflop", "--lr", "nan"], "--lr nan"),
        (["plan", "isoflop", "--schedule", "bogus"], "--schedule 'bogus'"),
        (["plan", "isoflop", "--dtype", "bogus"], "--dtype 'bogus'"),
        (["plan", "isoflop", "--checkpoints", "-1"], "--checkpoints -1"),
        (["train", "--steps", "-5"], "--steps -5"),
        (["train", "--budget", "-1e15"], "--budget -1e+15"),
        (["train", "--lr", "-1", "--steps", "2"], "--lr -1"),
        (["train", "--lr", "nan", "--steps", "2"], "--lr nan"),
        (["train", "--schedule", "bogus", "--steps", "2"], "--schedule 'bogus'"),
        (["train", "--budget", "1e40"], "--allow-long"),
        (["fit", "CSV", "--approach", "3", "--jobs", "0"], "--jobs 0"),
        (["fit", "CSV", "--at", "inf"], "inf"),
        (["fit", "CSV", "--at", "1e400"], "inf"),
        (["report", "CSV", "--out", "R.html", "--at", "inf"], "inf"),
        (["report", "CSV", "--out", "R.html", "--at", "-5"], "-5"),
        (["report", "CSV", "--out", "R.html", "--data-tokens", "-1"], "--data-tokens -1"),
        (["prep", "TEXTS", "--out", "OUT", "--workers", "-3"], "--workers -3"),
        (["sweep", "STUDY", "--workers", "-1"], "--workers -1"),
        (
            ["flops", "--heads", "3", "--d-model", "32", "--layers", "2", "--vocab", "100", "--seq-len", "64"],
            "not divisible",
        ),
    ],
)
def test_impossible_values_are_refused(args, words, tmp_path, tiny_data, runs_csv, texts, study, capsys):
    base = {
        "plan": [
            "--data",
            tiny_data,
            "--budgets",
            "1e10",
            "--shapes",
            "32x1",
            "--seq-len",
            "32",
            "--batch-size",
            "4",
            "--min-steps",
            "5",
            "--out",
            tmp_path / "S",
        ],
        "train": ["--data", tiny_data, *TINY, "--out", tmp_path / "R"],
    }.get(args[0], [])
    subst = {"CSV": runs_csv, "TEXTS": texts, "STUDY": study, "OUT": tmp_path / "OUT", "R.html": tmp_path / "R.html"}
    refused(cli(capsys, *[subst.get(a, a) for a in args], *base), words)
    for name in ("S", "R", "OUT", "R.html"):
        assert not (tmp_path / name).exists()


def test_run_that_would_take_ages_says_how_long(tmp_path, tiny_data, capsys):
    line = refused(cli(capsys, "train", "--data", tiny_data, *TINY, "--budget", "1e40", "--out", tmp_path / "R"))
    assert "years" in line and "FLOP/s" in line and "train split" in line and not (tmp_path / "R").exists()
    # reading a small corpus 175 times is refused too (2 steps x 4000 x 8 tokens over 365 train tokens) ...
    small = write_byte_data(tmp_path / "SMALL", "the quick brown fox jumps over the lazy dog. " * 9)
    args = [
        "train",
        "--data",
        small,
        *TINY,
        "--seq-len",
        "8",
        "--batch-size",
        "4000",
        "--steps",
        "2",
        "--out",
        tmp_path / "R",
    ]
    refused(cli(capsys, *args), "train split 175 times", "--allow-long")
    assert not (tmp_path / "R").exists()
    code, _, err = cli(capsys, *args, "--allow-long")  # ... unless asked for
    assert code == 0, err
    assert json.loads((tmp_path / "R" / "record.json").read_text())["status"] == "done"


def test_d_models_below_64_explain_the_depth_rule(tmp_path, tiny_data, capsys):
    line = refused(
        cli(
            capsys,
            "plan",
            "isoflop",
            "--data",
            tiny_data,
            "--budgets",
            "1e10",
            "--d-models",
            "32:64:16",
            "--seq-len",
            "32",
            "--batch-size",
            "4",
            "--out",
            tmp_path / "S",
        ),
        "d_model 32, 48",
        "d_model // 64",
    )
    assert "--shapes" in line and "aspect:" in line


def test_wrong_typed_toml_key_is_named(tmp_path, tiny_data, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('d_model = "64"\nlayers = 1\nseq_len = 32\nsteps = 3\n')
    refused(cli(capsys, "train", "--data", tiny_data, "--config", cfg, "--out", tmp_path / "R"), "key d_model", "'64'")
    cfg.write_text("d_model = 32\nlayers = 1\nseq_len = 32\nsteps = 2.5\n")
    refused(
        cli(capsys, "train", "--data", tiny_data, "--config", cfg, "--out", tmp_path / "R"), "key steps", "whole number"
    )
    assert not (tmp_path / "R").exists()


def test_seq_len_longer_than_the_data_leaves_no_running_record(tmp_path, tiny_data, capsys):
    refused(
        cli(
            capsys, "train", "--data", tiny_data, *TINY, "--steps", "2", "--seq-len", "100000", "--out", tmp_path / "R"
        ),
        "--seq-len",
    )
    assert not (tmp_path / "R").exists()
    run = tmp_path / "R2"  # a folder that already existed (as the sweep makes them) is kept, without a "running" record
    run.mkdir()
    refused(cli(capsys, "train", "--data", tiny_data, *TINY, "--steps", "2", "--seq-len", "100000", "--out", run))
    rec = run / "record.json"
    assert not rec.exists() or json.loads(rec.read_text())["status"] != "running"


def test_sweep_gpus_without_gpus_is_refused(study, capsys, monkeypatch):
    from scalinglab.sweep.local import gpu_count

    if gpu_count() > 5:
        pytest.skip("this machine has a GPU 5")
    monkeypatch.delenv("SCALINGLAB_TRAIN_CMD", raising=False)
    refused(cli(capsys, "sweep", study, "--gpus", "5"), "GPUs 5", "none visible", "(--gpus, --workers)")
    assert json.loads(cli(capsys, "status", study, "--json")[1])["counts"] == {"pending": 4}


def test_report_counts_budgets_and_names_bad_cells(tmp_path, runs_csv, capsys):
    from scalinglab.analysis import Runs
    from scalinglab.report.study import budget_count

    c = Runs.from_csv(runs_csv).budget  # C = 6ND from the CSV's rounded D: more distinct values than budgets
    assert len(set(c)) > 3 and budget_count(c) == 3
    lines = runs_csv.read_text().splitlines()
    for cell, words in (
        ("nan", "'nan', not a finite number"),
        ("inf", "is inf, not a finite number"),
        ("", "is empty"),
    ):
        bad = tmp_path / "bad.csv"
        bad.write_text("\n".join([*lines[:3], lines[3].rsplit(",", 1)[0] + "," + cell, *lines[4:]]) + "\n")
        line = refused(cli(capsys, "report", bad, "--out", tmp_path / "r2.html"), "line 4", words)
        assert "np.float64" not in line
        refused(cli(capsys, "fit", bad), "line 4", words)


# ---- checkpoints, pickles, text ----


@pytest.mark.parametrize("how", ["torch.save", "pickle protocol 4"])
def test_refused_pickle_checkpoint_prints_one_line(how, tmp_path, run_dir, capsys):
    """torch.load(weights_only=True) refuses both; the second makes torch warn about the protocol first."""
    import shutil

    import torch

    bad = tmp_path / "BAD"
    shutil.copytree(run_dir, bad)
    marker = tmp_path / "PWNED"
    obj = {"format": "scalinglab-checkpoint", "model": _Payload(str(marker)), "spec": {}}
    if how == "torch.save":
        torch.save(obj, bad / "checkpoint.pt")
    else:
        (bad / "checkpoint.pt").write_bytes(pickle.dumps(obj, protocol=4))
    for args in (
        ["train", "--resume", bad],
        ["grow", bad, "--out", tmp_path / "G"],
        ["export", bad, "--out", tmp_path / "H"],
        ["eval", "perplexity", "--model", bad, "--data", bad],
    ):
        line = refused(cli(capsys, *args), "checkpoint.pt")
        assert "\x1b" not in line and ("could run code" in line if how == "torch.save" else True)
    assert not marker.exists()


class _Payload:
    """Unpickling this runs code (creates a file): what a malicious checkpoint would do."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_malicious_hf_weights_are_one_line(tmp_path, run_dir, tiny_data, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    hf = tmp_path / "HF"
    main_ok("export", run_dir, "--out", hf)
    (hf / "model.safetensors").unlink()
    marker = tmp_path / "PWNED"
    torch.save({"transformer.wte.weight": _Payload(str(marker))}, hf / "pytorch_model.bin")
    refused(cli(capsys, "eval", "perplexity", "--model", hf, "--data", tiny_data), "refused", "could run code")
    assert not marker.exists()


def test_binary_text_is_one_line(tmp_path, run_dir, capsys):
    f = tmp_path / "blob.bin"
    f.write_bytes(bytes(range(256)) * 4)
    refused(cli(capsys, "eval", "perplexity", "--model", run_dir, "--text", f), "not UTF-8", "offset 128")


def test_tokenizer_mismatch_is_refused(tmp_path, run_dir, tiny_data, texts, capsys):
    """A byte-level model must not score DATA made by another tokenizer (char here): its ids mean other text."""
    pytest.importorskip("transformers")
    main_ok("prep", texts, "--tokenizer", "char", "--out", tmp_path / "CHAR", "-q")
    hf = tmp_path / "HF"
    main_ok("export", run_dir, "--out", hf)
    for model in (run_dir, hf):
        refused(
            cli(capsys, "eval", "perplexity", "--model", model, "--data", tmp_path / "CHAR"), "different tokenizers"
        )
        refused(
            cli(
                capsys,
                "finetune-budget",
                "--model",
                model,
                "--data",
                tmp_path / "CHAR",
                "--steps",
                "1",
                "--data-sizes",
                "1",
                "--eval-samples",
                "1",
                "--seq-len",
                "8",
                "--out",
                tmp_path / "FT",
            ),
            "different tokenizers",
        )
    assert not (tmp_path / "FT").exists()
    code, _, err = cli(
        capsys, "eval", "perplexity", "--model", hf, "--data", tiny_data, "--max-tokens", "300", "--json"
    )
    assert code == 0, err  # the same tokenizer (bytes) passes


# ---- studies and sweeps ----


def test_status_does_not_write_into_an_empty_store(study, capsys):
    (study / "study.db").write_bytes(b"")
    refused(cli(capsys, "status", study), "empty")
    assert (study / "study.db").stat().st_size == 0


def test_run_dir_outside_the_study_is_refused(study, capsys, monkeypatch):
    with sqlite3.connect(study / "study.db") as con:
        con.execute("UPDATE runs SET run_dir = '../ESCAPED' WHERE idx = 0")
    monkeypatch.setenv("SCALINGLAB_TRAIN_CMD", f"{PY} -c pass")
    refused(cli(capsys, "sweep", study, "--workers", "1"), "../ESCAPED", "outside the study folder")
    refused(cli(capsys, "fit", study), "outside the study folder")
    assert not (study.parent / "ESCAPED").exists()
    with sqlite3.connect(study / "study.db") as con:
        assert {r[0] for r in con.execute("SELECT status FROM runs")} == {"pending"}


def test_store_keeps_the_first_error(tmp_path):
    """SQLite rolls a transaction back by itself on SQLITE_FULL; the error reported must be that one."""
    from scalinglab.sweep.store import Store, StoreError

    with Store(tmp_path, create=True) as st:
        with pytest.raises(StoreError, match="database or disk is full; free some disk space"), st.tx() as c:
            c.execute("ROLLBACK")  # what SQLite itself does on a full disk
            raise sqlite3.OperationalError("database or disk is full")
        assert not st.con.in_transaction


def _fake_env(tmp_path: Path, step_s: str) -> dict[str, str]:
    from test_sweep import FAKE_TRAINER

    f = tmp_path / "fake_train.py"
    f.write_text(FAKE_TRAINER)
    return {"SCALINGLAB_TRAIN_CMD": f"{PY} {f}", "FAKE_STEP_S": step_s, "FAKE_LOG": str(tmp_path / "fake.log")}


def _children() -> list[int]:
    me = str(os.getpid())
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat[1] == me and stat[0] != "Z":
                out.append(int(p.name))
    return out


def test_sweep_on_a_full_store_reports_it_and_stops_its_trainers(study, tmp_path, capsys, monkeypatch):
    from scalinglab.sweep.store import Store

    for k, v in _fake_env(tmp_path, "0.02").items():
        monkeypatch.setenv(k, v)
    real = Store.finish

    def full(self, *a, **k):
        real(self, *a, **k)
        with self.tx() as c:
            c.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "finish", full)
    before = set(_children())
    res = cli(capsys, "sweep", study, "--workers", "2")
    refused(res, "database or disk is full; free some disk space")
    assert "cannot rollback" not in res[2]
    assert (
        not set(_children()) - before
    )  # the other trainer was stopped, not left running without its sweep  # the other trainer was stopped, not left running without its sweep


def _wait(cond, timeout: float = 60.0) -> None:
    t = time.time()
    while not cond():
        assert time.time() - t < timeout, "timed out"
        time.sleep(0.1)


def _running(study: Path) -> bool:
    with sqlite3.connect(study / "study.db") as con:
        return bool(
            con.execute("SELECT COUNT(*) FROM runs WHERE status='running' AND child_pid IS NOT NULL").fetchone()[0]
        )


def test_sigterm_to_a_sweep_prints_its_interrupted_line(study, tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, **_fake_env(tmp_path, "0.05")}
    p = subprocess.Popen(
        [PY, "-m", "scalinglab", "sweep", str(study), "--workers", "1"], env=env, stderr=subprocess.PIPE, text=True
    )
    _wait(lambda: _running(study))
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("interrupted: 1 run(s) in flight stopped and handed back")
    with sqlite3.connect(study / "study.db") as con:
        assert "running" not in {r[0] for r in con.execute("SELECT status FROM runs")}


def test_status_after_kill_9_of_a_sweep_says_interrupted(study, tmp_path, capsys):
    env = {**os.environ, "PYTHONPATH": SRC, **_fake_env(tmp_path, "0.05")}
    p = subprocess.Popen(
        [PY, "-m", "scalinglab", "sweep", str(study), "--workers", "1"],
        env=env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait(lambda: _running(study))
    os.killpg(p.pid, signal.SIGKILL)  # the sweep and its trainer, as a machine crash would
    p.wait()
    time.sleep(0.5)  # let init reap the orphaned trainer
    code, out, _ = cli(capsys, "status", study, "--json")
    s = json.loads(out)
    assert code == 0 and s["counts"].get("interrupted") == 1 and "running" not in s["counts"]
    code, out, _ = cli(capsys, "status", study)
    assert code == 0 and "interrupted" in out
    with sqlite3.connect(study / "study.db") as con:  # status only reads; the next sweep takes the run back
        assert [r[0] for r in con.execute("SELECT status FROM runs WHERE status='running'")] == ["running"]


def test_train_sigterm_writes_a_checkpoint_first(tmp_path, tiny_data):
    run = tmp_path / "R"
    p = subprocess.Popen(
        [PY, "-m", "scalinglab", "train", "--data", str(tiny_data), *TINY, "--steps", "100000", "--out", str(run)],
        env={**os.environ, "PYTHONPATH": SRC},
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait(lambda: (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").stat().st_size > 0, 120)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=60)[1]
    rec = json.loads((run / "record.json").read_text())
    assert p.returncode == 143 and err.strip().splitlines()[-1].startswith("interrupted: stopped by SIGTERM at step")
    assert rec["status"] == "pending" and rec["steps_done"] > 0 and (run / "checkpoint.pt").is_file()
    from scalinglab.train.checkpoint import load_checkpoint

    assert load_checkpoint(run / "checkpoint.pt")["step"] == rec["steps_done"]


# ---- prep killed half-way ----

KILLED_PREP = """
import os, sys
from scalinglab.cli import main
real = os.rename
def rename(a, b):
    real(a, b)
    if '.old-' in str(b):
        os._exit(9)  # killed right after the old shards were moved aside
os.rename = rename
main(sys.argv[1:])
"""


def test_prep_force_killed_between_renames_loses_nothing(tmp_path, texts, capsys):
    data = tmp_path / "DATA"
    code, out, err = cli(capsys, "prep", texts, "--out", data, "--json", "-q")
    assert code == 0, err
    before = (data / "train.bin").read_bytes()
    p = subprocess.run(
        [PY, "-c", KILLED_PREP, "prep", str(texts), "--tokenizer", "char", "--force", "--out", str(data), "-q"],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 9 and not data.exists()
    assert any(n.startswith(".DATA.old-") for n in hidden(tmp_path)) and any(
        n.startswith(".DATA.prep-") for n in hidden(tmp_path)
    )
    code, out, err = cli(capsys, "prep", texts, "--out", data, "--json", "-q")  # the next run puts the old data back
    assert code == 0 and json.loads(out)["reused"], err
    assert (data / "train.bin").read_bytes() == before and not hidden(tmp_path)


# ---- real file systems, where this machine lets us mount them ----


def _mount(*args: str) -> bool:
    return (
        bool(shutil.which("mount"))
        and subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0
    )


@pytest.fixture()
def tiny_fs(tmp_path):
    where = tmp_path / "tmpfs"
    where.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=300k", "tmpfs", str(where)):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    yield where
    subprocess.run(["umount", str(where)], check=False)


@pytest.fixture()
def ro_dir(tmp_path):
    where = tmp_path / "ro"
    where.mkdir()
    if not _mount("--bind", str(where), str(where)):
        pytest.skip("cannot bind-mount here (needs root with CAP_SYS_ADMIN)")
    if not _mount("-o", "remount,bind,ro", str(where)):
        subprocess.run(["umount", str(where)], check=False)
        pytest.skip("cannot remount read-only here")
    yield where
    subprocess.run(["umount", str(where)], check=False)


def test_real_full_disk_train_leaves_no_run_folder(tiny_fs, tiny_data, capsys):
    refused(cli(capsys, "train", "--data", tiny_data, *TINY, "--steps", "3", "--out", tiny_fs / "R"), "no space left")
    assert list(tiny_fs.iterdir()) == []


def test_real_read_only_folder(ro_dir, tiny_data, runs_csv, texts, capsys):
    refused(cli(capsys, "prep", texts, "--out", ro_dir / "D", "-q"), "read-only")
    refused(cli(capsys, "fit", runs_csv, "--approach", "2", "--out", ro_dir / "law.json"), "read-only")
    refused(cli(capsys, "train", "--data", tiny_data, *TINY, "--steps", "2", "--out", ro_dir / "R"), "read-only")


def test_trainer_stopped_by_a_signal_goes_back_to_pending(tmp_path):
    """A trainer that checkpointed and exited on SIGTERM (exit 143, record pending) is resumed, not failed."""
    from scalinglab.folders import RunDir
    from scalinglab.sweep.runs import result

    run = RunDir(tmp_path / "R")
    run.path.mkdir()
    msg = "stopped by SIGTERM at step 7 of 100, checkpoint written; continue with scalinglab train --resume R"
    run.record.write_text(json.dumps({"status": "pending", "message": msg}))
    assert result(run.path, 143)[0::2] == ("pending", msg)
    assert result(run.path, 1)[0] == "failed"  # a crash after the same record is still a failure
