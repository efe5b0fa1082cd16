"""How far below a budget's best run does its IsoFLOP parabola put the optimum? Approach 2 fits loss against log N
per budget (scalinglab's default window of 5 sizes); the vertex's loss is what lc fits L*(C) to. Where the sizes
sample the curve densely the vertex sits at or just under the best run; where they lie far apart on steep walls, a
parabola is the wrong shape and its vertex falls well below every run.

This prints that gap, (best run's loss - vertex loss) / best run's loss, for every budget of Porian et al.'s 15
configurations (../shared/data/porian2024-resolving) and of each runs CSV given, and, for the 42 lc backtests of
bench/results/backtest-porian.json, the largest gap among a backtest's fitted budgets beside its loss error.
Writes bench/results/vertex-gap.json.

    python bench/vertex_gap.py examples/tuned-gpu/runs.csv examples/tuned-gpu/untuned-runs.csv \
        examples/tuned-gpu/dense-runs.csv examples/tuned-gpu/replicate-runs.csv
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from scalinglab.analysis.runs import Runs
from scalinglab.laws.approach2 import Approach2

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SCALINGLAB_SHARED_DATA", ROOT.parent / "shared" / "data")) / "porian2024-resolving"


def gaps(N, D, C, loss) -> list[tuple[float, float]]:
    """(budget, gap) for every budget whose parabola has a vertex."""
    a = Approach2()
    a.profile(N, D, C, loss)
    return [(r.C, (r.best_loss - r.loss_opt_n) / r.best_loss) for r in a.per_budget_ if r.ok and r.loss_opt_n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="*", help="runs CSVs (scalinglab export) to measure beside Porian et al.'s grids")
    ap.add_argument("--backtests", default=str(ROOT / "bench" / "results" / "backtest-porian.json"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vertex-gap.json"))
    a = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is missing: this benchmark reads Porian et al.'s public grids from ../shared/data")
    df = pd.read_csv(DATA / "isoflop_points.csv")
    by_budget = {}
    for cfg in sorted(df.config.unique()):
        c = df[df.config == cfg]
        for budget, g in gaps(c.N.to_numpy(), c.D.to_numpy(), c.flops.to_numpy(), c.loss.to_numpy()):
            by_budget[(cfg, round(float(np.log2(budget)), 1))] = g
    allg = np.array(list(by_budget.values())) * 100
    q = dict(zip(("p50", "p90", "p99", "max"), np.percentile(allg, [50, 90, 99, 100]).round(3).tolist()))
    out = {
        "command": "python bench/vertex_gap.py " + " ".join(sys.argv[1:]),
        "porian": {"budgets": len(allg), "gap_pct": q, "above_1pct": int((allg > 1).sum())},
        "studies": {},
    }
    print(f"Porian et al., {len(allg)} budgets: gap % " + ", ".join(f"{k} {v}" for k, v in q.items()))
    print(f"  budgets with a gap above 1%: {out['porian']['above_1pct']}")
    for path in a.csv:
        r = Runs.from_csv(path)
        m = r.done
        g = gaps(r.N[m], r.D[m], r.budget[m], r.loss[m])
        out["studies"][path] = {f"{b:.3g}": round(x * 100, 3) for b, x in g}
        print(f"{path}: gap % " + ", ".join(f"{b:.3g}: {x * 100:.2f}" for b, x in g))
    if Path(a.backtests).exists():
        rows = []
        for row in json.loads(Path(a.backtests).read_text())["rows"]:
            if row["approach"] != "lc" or row["loss_err"] is None:
                continue
            fitted = [by_budget.get((row["config"], round(float(np.log2(b)), 1))) for b in row["fit_budgets"]]
            fitted = [x for x in fitted if x is not None]
            if fitted:
                rows.append((max(fitted) * 100, abs(row["loss_err"]) * 100))
        x, y = (np.array(v) for v in zip(*rows))
        big = y[x > 1]
        out["lc_backtests"] = {
            "n": len(rows),
            "spearman_max_gap_vs_abs_loss_err": round(float(spearmanr(x, y).statistic), 3),
            "abs_loss_err_pct_median_gap_above_1pct": None if not len(big) else round(float(np.median(big)), 3),
            "n_gap_above_1pct": int(len(big)),
            "abs_loss_err_pct_median_gap_below_1pct": round(float(np.median(y[x <= 1])), 3),
        }
        print(
            f"lc backtests ({len(rows)}): rank correlation of the largest fitted gap with |loss error| "
            f"{out['lc_backtests']['spearman_max_gap_vs_abs_loss_err']}; median |loss error| "
            f"{out['lc_backtests']['abs_loss_err_pct_median_gap_below_1pct']}% where every gap <= 1%, "
            f"{out['lc_backtests']['abs_loss_err_pct_median_gap_above_1pct']}% in the {len(big)} with a gap > 1%"
        )
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
