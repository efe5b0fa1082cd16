"""`scalinglab demo` end to end at the hidden tiny scale: stopped by --max-minutes, resumed, fitted, reported."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from scalinglab.demo import STAGES

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def demo(*args: str, timeout: float = 480) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scalinglab", "demo", *args], capture_output=True, text=True, env=ENV, timeout=timeout
    )


@pytest.mark.slow
def test_demo_tiny_stops_resumes_and_fits(tmp_path):
    out = tmp_path / "demo-out"
    # 3 s of sweep: stopped cleanly, runs handed back, no fit yet
    p = demo("--scale", "tiny", "--out", str(out), "--max-minutes", "0.05", "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    first = json.loads(p.stdout)
    assert first["complete"] is False and "running" not in first["counts"]
    assert first["counts"].get("pending", 0) > 0
    assert not (out / "law.json").exists()
    # the same command again continues where it stopped and finishes
    p = demo("--scale", "tiny", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(p.stdout)
    assert d["complete"] is True and d["counts"] == {"done": 12}  # 3 budgets x 4 shapes
    assert list(d["stage_s"]) == list(STAGES) and 0 <= sum(d["stage_s"].values()) <= d["elapsed_s"] + 0.5  # rounding
    assert "(reused)" in p.stderr  # prep and plan were not redone
    assert (out / "law.json").is_file() and (out / "report.html").is_file()
    assert any((out / "figures").glob("*.png"))
    laws = json.loads((out / "law.json").read_text())["laws"]
    assert set(laws) == {"approach2", "approach3"}
    assert d["budget"] == pytest.approx(10 * 2.4e11)
    for ap in ("approach2", "approach3"):
        r = d[ap]
        assert math.isfinite(r["a"]) and math.isfinite(r["b"])
        assert r["N_opt"] > 0 and r["D_opt"] > 0
    # approach 3 allocates in closed form under C = 6 N D
    assert 6 * d["approach3"]["N_opt"] * d["approach3"]["D_opt"] == pytest.approx(d["budget"], rel=1e-6)
    assert 1.0 < d["approach3"]["loss"] < math.log(262)  # better than uniform over the byte vocabulary
    # the human summary prints the law and the report path
    p = demo("--scale", "tiny", "--out", str(out), "--stage", "fit")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "N_opt ∝ C^" in p.stdout and f"report: {out / 'report.html'}" in p.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--out", "FILE"], "is a file"),
        (["--scale", "huge"], "unknown scale 'huge'; use cpu or gpu (--scale)"),
        (["--stage", "train"], "unknown stage 'train'"),
        (["--max-minutes", "0"], "--max-minutes 0 is out of range"),
    ],
)
def test_demo_bad_input_one_line(tmp_path, args, needle):
    f = tmp_path / "f.txt"
    f.write_text("not a folder")
    args = [str(f) if a == "FILE" else a for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "o")]
    p = demo(*args, timeout=60)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert f.read_text() == "not a folder"
    assert not (tmp_path / "o").exists()


def test_demo_reports_lc_from_four_budgets(tmp_path, monkeypatch):
    # lc (L*(C) = E + A C^-gamma) joins approaches 2 and 3 where the study has the 4 budgets it needs, and the
    # summary gives its optimal loss at 10x the largest budget: here the known law it was fitted to
    import numpy as np

    from scalinglab.demo import Demo, fit_approaches, format_summary
    from scalinglab.laws.lc import LossComputeLaw

    assert fit_approaches([1e11, 3e11, 1e12]) == ("2", "3")
    assert fit_approaches([1e11, 3e11, 1e12, 3e12]) == ("2", "3", "lc")
    budgets = [1e14, 3e14, 1e15, 3e15]
    truth = lambda c: 0.6 + 40.0 * np.power(c, -0.1)  # noqa: E731
    law = LossComputeLaw().fit(budgets, truth(np.array(budgets)))
    demo = Demo(tmp_path / "out", scale="gpu")
    monkeypatch.setattr(Demo, "budgets", lambda self: budgets)
    demo.laws = {"lc": law}
    d = demo.summary(complete=True)
    assert d["budget"] == pytest.approx(3e16)
    assert d["lc"]["loss"] == pytest.approx(float(truth(3e16)), rel=1e-3)
    line = next(x for x in format_summary(d) if x.startswith("  lc"))
    assert f"predicted optimal loss {d['lc']['loss']:.4f}" in line
