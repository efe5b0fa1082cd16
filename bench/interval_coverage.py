"""Benchmark: how often 95% bootstrap intervals hold the truth on synthetic data from known laws (approach 3,
approach 2 with residual or whole-run resampling, the compute-optimal loss law). Prints a table and writes
bench/results/interval_coverage.json (with the machine name). Usage: python bench/interval_coverage.py [TRIALS]."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from scalinglab.laws.approach2 import Approach2
from scalinglab.laws.approach3 import Approach3
from scalinglab.laws.base import ParametricLaw
from scalinglab.laws.lc import LossComputeLaw
from scalinglab.laws.predict import at_budget

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = np.geomspace(1e18, 1e20, 5)
C_FAR = 1e21  # 10x the largest budget


def _summary(est, lo, hi, truth) -> dict:
    est, lo, hi = (np.asarray(x, float) for x in (est, lo, hi))
    return {
        "coverage": float(np.mean((lo <= truth) & (truth <= hi))),
        "width_ratio": float(np.median(hi - lo) / (3.92 * np.std(est))),
    }


def approach3(trials: int, resamples: int) -> dict:
    truth = ParametricLaw(E=1.8, A=480.0, B=2000.0, alpha=0.34, beta=0.36)
    grid = np.array(
        [
            [np.log(480) + dx, np.log(2000) + dx, np.log(1.8) + de, 0.34 + da, 0.36 + da]
            for dx in (-1, 1)
            for de in (-0.1, 0.1)
            for da in (-0.05, 0.05)
        ]
    )
    rows = []
    for s in range(trials):
        rng = np.random.default_rng(s)
        N = np.concatenate([truth.n_opt(C) * np.geomspace(1 / 4, 4, 7) for C in BUDGETS])
        C = np.repeat(BUDGETS, 7)
        D = C / (6 * N)
        L = truth.predict_loss(N, D) * np.exp(0.01 * rng.standard_normal(len(N)))
        fit = Approach3(grid=grid, bootstrap=resamples, seed=s, n_jobs=1).fit(N, D, L)
        p = at_budget(fit, C_FAR)
        rows.append((fit.a_, *fit.ci_["a"], p["loss"], p["loss_lo"], p["loss_hi"]))
    r = np.array(rows)
    return {
        "a": _summary(r[:, 0], r[:, 1], r[:, 2], truth.a),
        "loss at 10x": _summary(r[:, 3], r[:, 4], r[:, 5], truth.loss_at_optimum(C_FAR)),
    }


def approach2_lc(trials: int, resamples: int, resample: str) -> dict:
    a, k_n, E, A, g = 0.5, 0.1, 1.8, 400.0, 0.12
    rows = []
    for s in range(trials):
        rng = np.random.default_rng(s)
        pts = []
        for C in BUDGETS:
            n0 = k_n * C**a
            for n in n0 * np.geomspace(1 / 8, 8, 9):
                pts.append((n, C / (6 * n), C, E + A * C**-g + 0.25 * np.log10(n / n0) ** 2))
        N, D, C, L = map(np.array, zip(*pts))
        L = L + 0.005 * rng.standard_normal(len(L))
        a2 = Approach2(robust="lsq", bootstrap=resamples, seed=s, resample=resample).fit(N, D, C, L)
        lc = LossComputeLaw.from_minima(a2)
        p2, pl = at_budget(a2, C_FAR), at_budget(lc, C_FAR)
        rows.append(
            (a2.a_, *a2.ci_["a"], p2["N_opt"], p2["N_opt_lo"], p2["N_opt_hi"], pl["loss"], pl["loss_lo"], pl["loss_hi"])
        )
    r = np.array(rows)
    return {
        "a": _summary(r[:, 0], r[:, 1], r[:, 2], a),
        "N_opt at 10x": _summary(np.log(r[:, 3]), np.log(r[:, 4]), np.log(r[:, 5]), np.log(k_n * C_FAR**a)),
        "lc loss at 10x": _summary(r[:, 6], r[:, 7], r[:, 8], E + A * C_FAR**-g),
    }


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    resamples = 100
    t = time.perf_counter()
    res = {
        "approach 3 (whole runs)": approach3(trials, resamples),
        "approach 2 (run residuals)": approach2_lc(trials, resamples, "residuals"),
        "approach 2 (whole runs)": approach2_lc(trials, resamples, "runs"),
        "approach 2 (Bayesian, runs)": approach2_lc(trials, resamples, "bayesian"),
    }
    print(f"{'method':<28} {'quantity':<16} {'coverage':>8} {'width / 3.92 sd':>16}")
    for m, qs in res.items():
        for q, v in qs.items():
            print(f"{m:<28} {q:<16} {v['coverage']:>8.2f} {v['width_ratio']:>16.2f}")
    out = {
        "machine": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "trials": trials,
        "resamples": resamples,
        "level": 0.95,
        "seconds": round(time.perf_counter() - t, 1),
        "results": res,
    }
    path = ROOT / "bench" / "results" / "interval_coverage.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
