"""Benchmark: approach-3 fit on Epoch's 240 points (Hoffmann's 4500-start grid) and its bootstrap,
for 1 and 2 workers. Prints a table and writes bench/results/fit_speed.json (with machine name)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd

from scalinglab.laws.approach3 import Approach3

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "epoch-chinchilla" / "chinchilla_N_D_C_loss.csv"


def main() -> None:
    boots = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    df = pd.read_csv(DATA)
    rows = []
    for jobs in (1, 2):
        for b in (0, boots):
            t = time.perf_counter()
            fit = Approach3(drop_highest=5, bootstrap=b, seed=42, n_jobs=jobs).fit(
                df.model_size_N, df.training_tokens_D, df.loss
            )
            rows.append(
                {
                    "jobs": jobs,
                    "bootstrap": b,
                    "seconds": round(time.perf_counter() - t, 2),
                    "alpha": round(fit.alpha_, 4),
                    "beta": round(fit.beta_, 4),
                    "alpha_ci": [round(x, 3) for x in fit.ci_["alpha"]] if fit.ci_ else None,
                    "beta_ci": [round(x, 3) for x in fit.ci_["beta"]] if fit.ci_ else None,
                }
            )
    print(f"{'jobs':>4} {'bootstrap':>9} {'seconds':>8} {'alpha':>7} {'beta':>7}  CI alpha / beta")
    for r in rows:
        print(
            f"{r['jobs']:>4} {r['bootstrap']:>9} {r['seconds']:>8.2f} {r['alpha']:>7.4f} {r['beta']:>7.4f}  "
            f"{r['alpha_ci'] or ''} {r['beta_ci'] or ''}"
        )
    out = {
        "machine": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_1min": os.getloadavg()[0],
        "points": 240,
        "grid_starts": 4500,
        "rows": rows,
    }
    path = ROOT / "bench" / "results" / "fit_speed.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
