"""scalinglab.analysis: the Runs builders, fit_study on known laws, the runs bootstrap, and one fit path:
`fit` and `report` print the same numbers on the same input; law files round-trip in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_shared, shared
from scalinglab.analysis import Columns, FitOptions, Runs, bootstrap_runs, fit_study
from scalinglab.cli import main
from scalinglab.errors import UserError
from scalinglab.laws.base import ParametricLaw
from scalinglab.laws.registry import LawChoiceError, load_law, load_law_choice

ROOT = Path(__file__).resolve().parents[1]
GPU_RUNS = ROOT / "examples" / "python-code-gpu" / "runs.csv"
TRUE = ParametricLaw(E=1.8, A=500.0, B=2000.0, alpha=0.35, beta=0.37)


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return e.value.code or 0, out, err


def isoflop_csv(path: Path, noise: float = 0.002, seed: int = 0) -> Path:
    """IsoFLOP runs of the law TRUE: 5 budgets x 7 sizes around N_opt, multiplicative noise."""
    rng = np.random.default_rng(seed)
    rows = ["run_id,params,tokens,budget,loss"]
    for i, c in enumerate(np.geomspace(1e18, 1e20, 5)):
        for j, n in enumerate(TRUE.n_opt(c) * np.geomspace(1 / 6, 6, 7)):
            loss = TRUE.predict_loss(n, c / (6 * n)) * np.exp(noise * rng.standard_normal())
            rows.append(f"r{i}{j},{n:.6g},{c / (6 * n):.6g},{c:.6g},{loss:.6f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_runs_from_csv_columns_and_derived_d(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("name,size,compute,L\na,1e8,6e17,3.0\nb,2e8,6e17,2.9\n")
    runs = Runs.from_csv(p, Columns(n="size", c="compute", loss="L", run="name"))
    assert list(runs.run) == ["a", "b"] and np.allclose(runs.D, [1e9, 5e8]) and np.allclose(runs.budget, 6e17)
    assert runs.done.all() and any("D computed as C/(6N)" in n for n in runs.notes)
    with pytest.raises(UserError, match="column 'nope' not in"):
        Runs.from_csv(p, Columns(n="size", c="compute", loss="nope"))


def test_runs_from_per_step_rows_gives_curves_and_final_points(tmp_path):
    p = tmp_path / "steps.csv"
    rows = ["run,N,C,loss"] + [
        f"{r},{n:g},{c:g},{l:.4f}"
        for r, n in (("s", 1e6), ("m", 4e6))
        for c, l in zip((1e14, 2e14, 4e14), (3.0 - (n > 2e6) * 0.1, 2.8, 2.6))
    ]
    runs = Runs.from_csv(p.write_text("\n".join(rows) + "\n") and p)
    assert list(runs.run) == ["s", "m"] and np.allclose(runs.C, 4e14) and np.allclose(runs.loss, 2.6)
    assert np.allclose(runs.curves["m"].C, [1e14, 2e14, 4e14]) and runs.curves["m"].loss[0] == pytest.approx(2.9)


def test_runs_not_done_keep_nan_loss_and_leave_the_fit(tmp_path):
    runs = Runs.from_arrays(
        [1e8, 2e8, 3e8], C=[1e18] * 3, loss=[3.0, float("nan"), 2.9], status=["done", "diverged", "done"]
    )
    assert list(runs.done) == [True, False, True]
    assert np.isnan(runs.subset(~runs.done).loss).all()


def test_fit_study_recovers_a_known_law_with_intervals(tmp_path):
    runs = Runs.from_csv(isoflop_csv(tmp_path / "r.csv"), Columns(budget="budget"))
    fit = fit_study(runs, FitOptions(approaches=("2", "3"), at=(1e21,), jobs=1))
    a2, a3 = fit.approaches["2"], fit.approaches["3"]
    assert abs(a2.law.a_ - TRUE.a) < 0.03 and abs(a3.law.alpha_ - 0.35) < 0.03
    lo, hi = a2.intervals["a"]
    assert lo < a2.law.a_ < hi
    (r,) = a2.at
    assert r.n_opt_ci[0] < r.n_opt < r.n_opt_ci[1]
    d = fit.to_dict()
    assert set(d["laws"]) == {"approach2", "approach3"} and d["laws"]["approach2"]["at"][0]["N_opt_ci"]
    assert d["laws"]["approach3"]["residuals"]["rms"] < 0.01  # 0.2% noise


def test_approach3_bootstrap_gives_intervals_of_the_law_and_its_predictions(tmp_path):
    runs = Runs.from_csv(isoflop_csv(tmp_path / "r.csv"), Columns(budget="budget"))
    f = fit_study(runs, FitOptions(approaches=("3",), bootstrap=40, at=(1e21,), jobs=1)).approaches["3"]
    assert f.draws.method == "runs" and f.draws.n >= 30  # whole runs (one row each here)
    for k, true in (("alpha", 0.35), ("beta", 0.37)):
        lo, hi = f.intervals[k]
        assert lo < getattr(f.law, k + "_") < hi and abs(true - (lo + hi) / 2) < 0.05
    (r,) = f.at
    assert r.loss_ci[0] < r.loss < r.loss_ci[1] and r.n_opt_ci[0] < r.n_opt < r.n_opt_ci[1]


def test_bootstrap_runs_is_seeded_and_stratified():
    runs = Runs.from_arrays(np.arange(1, 11) * 1e6, C=[1e18] * 5 + [1e19] * 5, loss=np.linspace(3, 2, 10))
    seen = []

    def refit(r, w):
        seen.append(w)
        return ParametricLaw(E=1, A=1, B=1, alpha=float(w @ r.N) / 1e8, beta=0.3)

    for method in ("bayesian", "counts"):
        seen.clear()
        d1 = bootstrap_runs(runs, refit, resamples=20, seed=3, names=("alpha",), strata=runs.budget, method=method)
        d2 = bootstrap_runs(runs, refit, resamples=20, seed=3, names=("alpha",), strata=runs.budget, method=method)
        assert np.array_equal(d1.values["alpha"], d2.values["alpha"]) and d1.n == 20
        w = np.array(seen)  # each resample keeps each budget's total weight: 5 runs per budget
        assert np.allclose(w[:, :5].sum(1), 5) and np.allclose(w[:, 5:].sum(1), 5) and (w >= 0).all()
        if method == "counts":
            assert np.array_equal(w, np.round(w)) and (w == 0).any()
        else:
            assert (w > 0).all()


def test_fit_and_report_print_the_same_numbers(capsys, tmp_path):
    """One fit path: the summary lines `fit` prints are those `report` prints, and `report --json` is the
    StudyFit in `fit --json`'s schema (approach 1 from the Pareto frontier; --max-loss drops runs everywhere)."""
    args = [str(GPU_RUNS), "--max-loss", "1.5", "--at", "3e16", "--jobs", "1"]
    code, fit_out, err = run(capsys, "fit", *args)
    assert code == 0, err
    code, rep_out, err = run(capsys, "report", *args, "--out", str(tmp_path / "r.html"))
    assert code == 0, err
    lines = [ln for ln in rep_out.splitlines() if "∝ C^" in ln]
    assert len(lines) == 6 and all(ln in fit_out for ln in lines)
    assert "a = 0.5933" in rep_out  # approach 2 on the committed GPU example
    code, fj, _ = run(capsys, "fit", *args, "--json")
    code, rj, _ = run(capsys, "report", *args, "--json", "--out", str(tmp_path / "r2.html"))
    fit_d, rep_d = json.loads(fj), json.loads(rj)
    assert rep_d.pop("report")["out"].endswith("r2.html")
    assert rep_d == fit_d


@needs_shared
def test_fit_and_report_agree_on_minchilla(capsys, tmp_path):
    csv = str(shared("minchilla", "isoflop_runs.csv"))
    args = [
        csv,
        "--approach",
        "2",
        "--n-col",
        "params",
        "--d-col",
        "tokens",
        "--c-col",
        "budget_flops",
        "--loss-col",
        "final_loss",
        "--max-loss",
        "2",
        "--json",
        "--window",
        "0",
        "--keep-unbracketed",
    ]
    _, fj, _ = run(capsys, "fit", *args)
    _, rj, _ = run(capsys, "report", *args, "--out", str(tmp_path / "r.html"))
    f, r = json.loads(fj), json.loads(rj)
    assert round(f["laws"]["approach2"]["a"], 3) == 0.478  # minchilla's published a
    assert f["laws"] == r["laws"]


def test_law_file_round_trip_in_a_fresh_process(capsys, tmp_path):
    law_json = tmp_path / "law.json"
    code, _, err = run(capsys, "fit", str(GPU_RUNS), "--approach", "3", "--out", str(law_json), "--jobs", "1")
    assert code == 0, err
    cmd = [
        "plan",
        "staged",
        "--shape",
        "64x2",
        "--tokens",
        "1e6",
        "--vocab",
        "262",
        "--seq-len",
        "32",
        "--law-json",
        str(law_json),
        "--json",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.run([sys.executable, "-m", "scalinglab", *cmd], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "using law approach3" in p.stderr and json.loads(p.stdout)["target_loss"] > 0
    code = f"from scalinglab.laws.registry import load_law; print(load_law({str(law_json)!r}).alpha_)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and float(p.stdout) == pytest.approx(load_law(law_json).alpha_)


def test_multi_law_file_needs_an_approach(capsys, tmp_path):
    law_json = tmp_path / "law.json"
    assert (
        run(
            capsys,
            "fit",
            str(isoflop_csv(tmp_path / "r.csv")),
            "--approach",
            "2,3",
            "--out",
            str(law_json),
            "--jobs",
            "1",
            "--runs-bootstrap",
            "0",
        )[0]
        == 0
    )
    with pytest.raises(LawChoiceError):
        load_law(law_json)
    assert load_law_choice(law_json, "2")[0] == "approach2"
    base = ["plan", "optimal", "--budget", "1e19", "--vocab", "262", "--seq-len", "512", "--law-json", str(law_json)]
    code, _, err = run(capsys, *base)
    assert code == 2 and "--approach" in err and err.count("\n") == 1
    code, out, err = run(capsys, *base, "--approach", "2", "--json")
    assert code == 0 and "using law approach2" in err
    assert json.loads(out)["N_opt"] == pytest.approx(load_law(law_json, "2").allocate(1e19)[0])


@needs_shared
def test_fit_and_report_agree_on_a_study_with_curves(capsys, tmp_path):
    """A study folder (runs above the loss cut stored as diverged, two runs with curves): `fit --json` and
    `report --json` hold the same laws and skip approach 1 for the same reason (one size on the envelope)."""
    from test_report import minchilla_study

    study = minchilla_study(tmp_path)
    args = [
        str(study),
        "--max-loss",
        "2",
        "--jobs",
        "1",
        "--runs-bootstrap",
        "50",
        "--json",
        "--window",
        "0",
        "--keep-unbracketed",
        "--bootstrap",
        "20",
    ]  # minchilla's method: every size, every budget
    code, fj, err = run(capsys, "fit", *args)
    assert code == 0, err
    code, rj, err = run(capsys, "report", *args, "--out", str(tmp_path / "r.html"))
    assert code == 0, err
    f, r = json.loads(fj), json.loads(rj)
    assert f["laws"] == r["laws"] and set(f["laws"]) == {"approach2", "approach3", "approachlc"}
    assert f["skipped"] == r["skipped"] and "1 model size" in f["skipped"]["approach1"]
    assert any("29 of 61 runs not done" in n for n in f["notes"])
    assert round(f["laws"]["approach2"]["a"], 3) == 0.478


def test_summary_gives_the_backtested_prediction():
    # N_opt from approach 2 and the optimal loss from lc (the pair that held best in the Porian backtests), at each
    # `at` budget, with the same numbers as each approach's own allocation row
    runs = Runs.from_csv(ROOT / "examples" / "tuned-gpu" / "runs.csv")
    opts = FitOptions(approaches=("2", "3", "lc"), at=(1e16, 1e17), bootstrap=0, runs_bootstrap=50)
    fit = fit_study(runs, opts)
    rec = dict(fit.recommended())
    assert list(rec) == ["prediction at C = 1e+16 (best in backtests)", "prediction at C = 1e+17 (best in backtests)"]
    pred = fit.to_dict()["prediction"]
    assert [p["C"] for p in pred] == [1e16, 1e17]
    for (key, text), a2, lc, p in zip(rec.items(), fit.approaches["2"].at, fit.approaches["lc"].at, pred):
        n_cal, l_cal = p["N_opt_ci_calibrated"], p["loss_ci_calibrated"]
        assert text.startswith(
            f"N_opt = {a2.n_opt:.3g} (95% {a2.n_opt_ci[0]:.3g}–{a2.n_opt_ci[1]:.3g}, "
            f"calibrated {n_cal[0]:.3g}–{n_cal[1]:.3g}) (approach 2)"
        )
        assert (
            f"loss = {lc.loss:.4g} (95% {lc.loss_ci[0]:.3g}–{lc.loss_ci[1]:.3g}, calibrated {l_cal[0]:.3g}–{l_cal[1]:.3g}) (lc)"
            in text
        )
        assert (key, text) in fit.summary()
        # the JSON holds the same numbers; the calibrated interval contains the bootstrap one
        assert (p["N_opt"], p["loss"]) == (a2.n_opt, lc.loss) and (p["N_opt_from"], p["loss_from"]) == (
            "approach2",
            "lc",
        )
        assert n_cal[0] <= a2.n_opt_ci[0] <= a2.n_opt_ci[1] <= n_cal[1]
        assert l_cal[0] <= lc.loss_ci[0] <= lc.loss_ci[1] <= l_cal[1]
    at90 = fit_study(runs, FitOptions(approaches=("2",), at=(1e16,), ci=0.9, bootstrap=0, runs_bootstrap=50))
    assert at90.prediction()[0]["N_opt_ci_calibrated"] is None  # the factors are for 95% intervals only
    assert "calibrated" not in at90.recommended()[0][1]
    only3 = fit_study(runs, FitOptions(approaches=("3",), at=(1e16,), bootstrap=0))
    assert only3.recommended() == []


def test_calibration_factors_are_the_backtests_and_widen_in_log_space():
    # the factors are the ones bench/backtest_porian.py measured (approach 2's N_opt, lc's loss), to 2 decimals
    from scalinglab.analysis.calibration import WIDEN_95, widened

    summary = json.loads((ROOT / "bench" / "results" / "backtest-porian.json").read_text())["summary"]
    assert WIDEN_95["n_opt"] == round(summary["2"]["n_opt_widen_95"], 2)
    assert WIDEN_95["loss"] == round(summary["lc"]["loss_widen_95"], 2)
    # each side's log distance from the point times k, asymmetric sides kept; k = 1 is the identity
    lo, hi = widened(2.0, (1.0, 8.0), 3.0)
    assert np.isclose(lo, 2.0 * 0.5**3) and np.isclose(hi, 2.0 * 4.0**3)
    assert np.allclose(widened(0.7, (0.65, 0.8), 1.0), (0.65, 0.8))
    assert widened(1.0, None, 3.0) is None and widened(1.0, (0.0, 2.0), 3.0) is None
