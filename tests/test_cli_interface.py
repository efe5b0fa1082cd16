"""The interface as users read it: --version, help without type tags, `status --csv`, significant digits in
printed formulas, SI-abbreviated tables that fit 80 columns without cutting a number."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from scalinglab import __version__
from scalinglab.fmt import decimals, power_law, si, sig, slug
from scalinglab.sweep.table import live_view, status_view

PY = sys.executable


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "scalinglab", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "COLUMNS": "100", **(env or {})},
    )


def test_public_api_is_lazy_and_complete():
    """`import scalinglab` loads no torch/numpy; every exported name resolves to a documented object."""
    code = (
        "import sys, scalinglab; heavy = [m for m in ('torch', 'numpy', 'matplotlib', 'pandas') if m in sys.modules];"
        "print(heavy)"
    )
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr
    import scalinglab

    assert sorted(scalinglab.__all__) == sorted(["__version__", *scalinglab._EXPORTS])
    for name in scalinglab._EXPORTS:
        obj = getattr(scalinglab, name)
        assert obj.__doc__, f"scalinglab.{name} has no docstring"
    with pytest.raises(AttributeError):
        _ = scalinglab.no_such_name


def test_version():
    p = cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"scalinglab {__version__}"


def test_help_has_no_type_tags_and_every_option_is_described():
    from scalinglab.cli import command

    root = command()
    seen = 0
    undescribed = [
        f"{cmd_path} {p.opts[0] if p.opts else p.name}"
        for cmd_path, cmd in _leaves(root, [])
        for p in cmd.params
        if not getattr(p, "hidden", False) and not (getattr(p, "help", "") or "").strip()
    ]
    assert undescribed == [], f"options without help: {undescribed}"

    def walk(cmd, path):
        nonlocal seen
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])
        if getattr(cmd, "commands", None):
            return
        seen += 1
        p = cli(*path, "--help")
        assert p.returncode == 0, p.stderr
        assert "<bool>" not in p.stdout and "<str>" not in p.stdout and "<int>" not in p.stdout, path
        assert f"Usage: scalinglab {' '.join(path)}" in p.stdout

    walk(root, [])
    assert (
        seen >= 15
    )  # flops, prep, train, sweep, status, fit, report, demo, grow, export, finetune-budget, plan x4, eval x2


def _leaves(cmd, path):
    subs = getattr(cmd, "commands", None)
    if not subs:
        return [(" ".join(path), cmd)]
    return [leaf for name, sub in subs.items() for leaf in _leaves(sub, [*path, name])]


@pytest.mark.parametrize(
    "x, out",
    [
        (0.000802, "0.000802"),
        (0.0877, "0.0877"),
        (1.896, "1.8960"),
        (0.0, "0.0000"),
        (3.2e-6, "0.00000320"),
        (-0.00123, "-0.00123"),
    ],
)
def test_decimals_keep_three_significant_digits(x, out):
    assert decimals(x, 4) == out
    assert float(out) == pytest.approx(x, rel=5e-3, abs=0)


def test_power_law_formula_round_trips():
    # the case: a coefficient of 0.000802 printed as 0.0008 is a 0.25% different law; as 0.0000 no law
    text = power_law("N_opt", 0.000802134, 0.6132)
    assert text == "N_opt = 0.000802 * C ** 0.61"
    k = float(text.split("=")[1].split("*")[0])
    assert k == pytest.approx(0.000802134, rel=1e-3)
    assert power_law("N_opt", 0.0877, 0.5) == "N_opt = 0.0877 * C ** 0.50"  # the Perceiver AR article's format


@pytest.mark.parametrize(
    "n, out",
    [
        (34880, "34.9k"),
        (3324736, "3.32M"),
        (11_234_567, "11.2M"),
        (999_960, "1M"),
        (202_900_000, "203M"),
        (7.32e10, "73.2B"),
        (12, "12"),
        (None, ""),
    ],
)
def test_si(n, out):
    assert si(n) == out


def test_sig():
    assert sig(0.000802) == "0.000802" and sig(2143.2, 4) == "2143" and sig(None) == ""


def _rows():
    rows = []
    for st, n in [("done", 34880), ("running", 11_234_567), ("running", 36_000_000), ("pending", 119_000)]:
        running = st == "running"
        rows.append(
            {
                "id": "C1.25e16_576x9",
                "status": st,
                "budget": 1.25e16,
                "params": n,
                "steps": 28591,
                "last_step": 2070 if running else None,
                "final_train_loss": 2.3828 if st == "done" else None,
                "final_val_loss": 2.1943 if st == "done" else None,
                "last_train_loss": 2.2252 if running else None,
                "last_val_loss": 1.8702 if running else None,
                "eta_s": 4000,
                "device": "cuda:0",
            }
        )
    return rows


def test_slug_names_the_committed_results():
    """bench/ names its result files by fmt.slug of the device (or machine) name, as the committed files show."""
    assert (
        slug("NVIDIA H200") == "nvidia-h200"
        and slug("x86_64") == "x86-64"
        and slug(" A100-SXM4 (80GB) ") == "a100-sxm4-80gb"
    )
    results = Path(__file__).resolve().parents[1] / "bench" / "results"
    assert (results / f"throughput-{slug('NVIDIA H200')}.json").exists()
    assert (results / f"checkpoint-speed-{slug('x86_64')}.json").exists()


def test_status_table_fits_80_columns_without_cutting_numbers():
    con = Console(width=80, file=io.StringIO(), force_terminal=False)
    con.print(status_view(_rows(), {"done": 1, "running": 2, "pending": 1}))
    text = con.file.getvalue()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for cell in ("C1.25e16_576x9", "11.2M", "36M", "34.9k", "2070/28.6k", "28.6k", "2.3828", "1.8702", "1h06m"):
        assert cell in text, cell


def test_live_view_says_which_runs_wait_for_their_gpu():
    rows = _rows()
    rows[2]["id"] = "C1.25e16_640x10"
    con = Console(width=80, file=io.StringIO(), force_terminal=False)
    con.print(live_view(rows, {"done": 1, "running": 2, "pending": 1}, waiting=frozenset({"C1.25e16_640x10"})))
    lines = con.file.getvalue().splitlines()
    assert lines[0] == "1/4 done | 1 running, 1 waiting, 1 pending"
    assert [("waiting" in l, "running" in l) for l in lines if "C1.25e16_" in l] == [(False, True), (True, False)]


FAKE = r"""
import json, os, sys, tomllib
from pathlib import Path
a = sys.argv[1:]
run = Path(a[a.index("--resume") + 1] if "--resume" in a else a[a.index("--out") + 1])
spec = tomllib.loads((run / "config.toml").read_text())
steps = spec["steps"]
tokens = steps * spec["batch_size"] * spec["shape"]["seq_len"]
rec = {"spec": spec, "status": "done", "final_val_loss": 1 + 1 / steps, "min_val_loss": 1 + 1 / steps,
       "final_train_loss": 1.5, "steps_done": steps, "tokens": tokens, "flops": 6.0 * tokens, "wall_time_s": 0.5,
       "device": "cpu", "message": ""}
(run / "record.json").write_text(json.dumps(rec))
print(json.dumps({"status": "done"}))
"""


def test_status_csv(tiny_data, tmp_path):
    from scalinglab.sweep.store import CSV_COLUMNS, load_runs_frame

    study = tmp_path / "STUDY"
    p = cli(
        "plan",
        "isoflop",
        "--data",
        str(tiny_data),
        "--budgets",
        "1e10,3e10",
        "--shapes",
        "32x2,48x2",
        "--seq-len",
        "32",
        "--batch-size",
        "4",
        "--min-steps",
        "20",
        "--out",
        str(study),
    )
    assert p.returncode == 0, p.stderr
    fake = tmp_path / "fake.py"
    fake.write_text(FAKE)
    assert cli("sweep", str(study), "--workers", "1", env={"SCALINGLAB_TRAIN_CMD": f"{PY} {fake}"}).returncode == 0
    out = tmp_path / "runs.csv"
    p = cli("status", str(study), "--csv", str(out))
    assert p.returncode == 0 and p.stderr.strip() == f"wrote 4 runs to {out}"
    rows = list(csv.DictReader(out.open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    frame = load_runs_frame(study).set_index("run_id")
    assert sorted(r["run_id"] for r in rows) == sorted(frame.index)
    for r in rows:
        f = frame.loc[r["run_id"]]
        assert r["status"] == "done" and int(r["params"]) == f.params and int(r["tokens"]) == f.tokens
        assert float(r["final_val_loss"]) == f.final_val_loss and float(r["budget"]) == f.budget
    p = cli("status", str(study), "--csv", "-")
    assert p.returncode == 0 and p.stdout == out.read_text()
    p = cli("status", str(study), "--csv", str(tmp_path))
    assert p.returncode == 2 and p.stderr.startswith("error: --csv") and "Traceback" not in p.stderr


def test_status_says_which_runs_wait_for_their_gpu(tiny_data, tmp_path):
    """A trainer waiting for its GPU's turn leaves a marker in its run folder; `status` shows that run as waiting."""
    from scalinglab.folders import RunDir
    from scalinglab.sweep.store import Store

    study = tmp_path / "S"
    args = ["--data", str(tiny_data), "--budgets", "1e10", "--shapes", "32x2,48x2", "--seq-len", "32"]
    assert cli("plan", "isoflop", *args, "--batch-size", "4", "--min-steps", "20", "--out", str(study)).returncode == 0
    with Store(study) as st:  # this test process is the claiming sweep: both runs stay "running"
        st.claim()
        b = st.claim()
        st.run_path(b).mkdir(parents=True, exist_ok=True)
        (st.run_path(b) / RunDir.WAITING).touch()
    lines = cli("status", str(study)).stdout.splitlines()
    shown = {l.split()[0]: ("waiting" in l, "running" in l) for l in lines if l.startswith("C1e10_")}
    assert len(shown) == 2 and shown.pop(b["id"]) == (True, False) and list(shown.values()) == [(False, True)]


def test_status_json_unchanged_by_csv_option(tiny_data, tmp_path):
    study = tmp_path / "S"
    cli(
        "plan",
        "isoflop",
        "--data",
        str(tiny_data),
        "--budgets",
        "1e10",
        "--shapes",
        "32x2",
        "--seq-len",
        "32",
        "--batch-size",
        "4",
        "--min-steps",
        "20",
        "--out",
        str(study),
    )
    s = json.loads(cli("status", str(study), "--json").stdout)
    assert s["counts"] == {"pending": 1} and Path(s["study"]) == study.resolve()
