"""Backtests on real IsoFLOP grids: how far does each approach land when a study spanning 8x in compute predicts
16x beyond its largest budget? Porian et al. (2024) publish 15 configurations of 11-12 doubling budgets each
(1.2e16..2.6e19 FLOPs, ../shared/data/porian2024-resolving): every window of 4 consecutive budgets is fitted
(approaches 2, 3 and lc, scalinglab's defaults) and scored at the budget 16x above its largest, against the held-out
IsoFLOP parabola's vertex (scalinglab.analysis.backtest). Prints a table and writes bench/results/backtest-porian.json.

    python bench/backtest_porian.py              # every config, window starts 0, 2, 4 (45 backtests)
    python bench/backtest_porian.py --quick      # 2 configs, one window each
    python bench/backtest_porian.py --tables bench/results/backtest-porian.json   # its tables again, no fitting
    python bench/backtest_porian.py --fit-budgets 6 --starts 0,2   # 6 budgets (32x span) instead of 4
    python bench/backtest_porian.py --loss lsq   # approach 3 by least squares on the loss (Gadre et al. 2024)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.analysis import FitOptions
from scalinglab.analysis.backtest import backtest
from scalinglab.analysis.runs import Runs

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SCALINGLAB_SHARED_DATA", ROOT.parent / "shared" / "data")) / "porian2024-resolving"
FIT_BUDGETS, AHEAD = 4, 4  # default: 4 budgets fitted (8x span); predict 4 doublings (16x) above the largest


def one(cfg: pd.DataFrame, start: int, opts: FitOptions, k: int = FIT_BUDGETS, ahead: int = AHEAD) -> list[dict]:
    budgets = np.sort(cfg.flops.unique())
    fit_b = budgets[start : start + k]
    target = budgets[start + k - 1 + ahead]
    sub = cfg[cfg.flops.isin([*fit_b, target])]
    runs = Runs.from_arrays(sub.N.to_numpy(), sub.D.to_numpy(), sub.flops.to_numpy(), sub.loss.to_numpy())
    bt = backtest(runs, opts, holdout_largest=1)
    out = []
    for r in bt.rows:
        inside_n = None if r.n_opt_lo is None else bool(r.n_opt_lo <= r.n_opt_obs <= r.n_opt_hi)
        inside_l = None if r.loss_lo is None else bool(r.loss_lo <= r.loss_obs <= r.loss_hi)
        out.append(
            {
                "fit_budgets": [float(b) for b in fit_b],
                "target": float(target),
                "approach": r.approach,
                "n_ratio": None if r.n_opt_pred is None else r.n_opt_pred / r.n_opt_obs,
                "n_inside": inside_n,
                "loss_err": r.loss_err,
                "loss_inside": inside_l,
                "vertex": r.vertex_n is not None,
                # error over the interval's half-width on the error's side, in log space: > 1 is outside
                "n_z": _z(r.n_opt_obs, r.n_opt_pred, r.n_opt_lo, r.n_opt_hi),
                "loss_z": _z(r.loss_obs, r.loss_pred, r.loss_lo, r.loss_hi),
            }
        )
    return out


def _z(obs, pred, lo, hi) -> float | None:
    if pred is None or lo is None or hi is None:
        return None
    side = hi if obs > pred else lo
    width = abs(np.log(side / pred))
    return float(abs(np.log(obs / pred)) / width) if width > 0 else None


def widening(rs: list[dict], key: str) -> tuple[float | None, float | None]:
    """The factor by which the intervals' log half-widths must grow to hold 95% of these backtests' observed values,
    and the coverage that factor reaches on each configuration when it is taken from the other configurations
    (leave one configuration out)."""
    zs = [(r["config"], r[key]) for r in rs if r.get(key) is not None]
    if len(zs) < 10:
        return None, None
    k = float(np.quantile([z for _, z in zs], 0.95))
    held = [z <= np.quantile([w for c2, w in zs if c2 != c], 0.95) for c, z in zs]
    return k, float(np.mean(held))


def summary(rows: list[dict]) -> dict:
    res = {}
    for ap in sorted({r["approach"] for r in rows}):
        rs = [r for r in rows if r["approach"] == ap]
        nr = np.array([abs(np.log(r["n_ratio"])) for r in rs if r["n_ratio"]])
        le = np.array([abs(r["loss_err"]) for r in rs if r["loss_err"] is not None])
        ni = [r["n_inside"] for r in rs if r["n_inside"] is not None]
        li = [r["loss_inside"] for r in rs if r["loss_inside"] is not None]
        res[ap] = {
            "backtests": len(rs),
            "n_opt_factor_median": float(np.exp(np.median(nr))) if len(nr) else None,
            "n_opt_factor_p90": float(np.exp(np.quantile(nr, 0.9))) if len(nr) else None,
            "n_opt_in_interval": float(np.mean(ni)) if ni else None,
            "loss_abs_err_median": float(np.median(le)) if len(le) else None,
            "loss_abs_err_p90": float(np.quantile(le, 0.9)) if len(le) else None,
            "loss_within_1pct": float(np.mean(le <= 0.01)) if len(le) else None,
            "loss_in_interval": float(np.mean(li)) if li else None,
            "loss_bias_median": float(np.median([r["loss_err"] for r in rs if r["loss_err"] is not None]))
            if len(le)
            else None,
        }
        for key, name in (("n_z", "n_opt"), ("loss_z", "loss")):
            k, cv = widening(rs, key)
            res[ap][f"{name}_widen_95"], res[ap][f"{name}_widen_95_cv_coverage"] = k, cv
    return res


def groups(rows: list[dict]) -> dict[str, list[dict]]:
    """All backtests, those on Porian et al.'s tuned configurations (lr, batch and beta2 tuned per size), the rest."""
    tuned = ["_tuned_" in r["config"] for r in rows]
    return {
        "all": rows,
        "tuned": [r for r, t in zip(rows, tuned) if t],
        "base": [r for r, t in zip(rows, tuned) if not t],
    }


TITLES = {
    "all": "all configurations",
    "tuned": "tuned hyperparameters (hparams 'tuned')",
    "base": "base hyperparameters",
}


def print_tables(rows: list[dict]) -> None:
    """The table of each group, then how much the intervals would have to widen (all backtests)."""
    for key, rs in groups(rows).items():
        print(f"\n{TITLES[key]}")
        print(
            "| approach | backtests | N_opt off by (median, p90) | N_opt in 95% interval | |loss err| median, p90 |"
            " loss within 1% | loss in 95% interval | loss bias (median) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name, s in summary(rs).items():
            print(
                f"| {name} | {s['backtests']} | {fmt(s['n_opt_factor_median'], '.2f')}x,"
                f" {fmt(s['n_opt_factor_p90'], '.2f')}x | {fmt(s['n_opt_in_interval'], '.0%')}"
                f" | {fmt(s['loss_abs_err_median'], '.2%')}, {fmt(s['loss_abs_err_p90'], '.2%')}"
                f" | {fmt(s['loss_within_1pct'], '.0%')} | {fmt(s['loss_in_interval'], '.0%')}"
                f" | {fmt(s['loss_bias_median'], '+.2%')} |"
            )
    print_widening(rows)


def print_widening(rows: list[dict]) -> None:
    print("\nwidening the 95% intervals to hold 95% of these backtests (log half-widths times k)")
    print(
        "| approach | N_opt: k | N_opt: coverage, k from the other configurations | loss: k | loss: coverage, likewise |"
    )
    print("|---|---|---|---|---|")
    for name, s in summary(rows).items():
        print(
            f"| {name} | {fmt(s.get('n_opt_widen_95'), '.2f')} | {fmt(s.get('n_opt_widen_95_cv_coverage'), '.0%')}"
            f" | {fmt(s.get('loss_widen_95'), '.2f')} | {fmt(s.get('loss_widen_95_cv_coverage'), '.0%')} |"
        )


def fmt(x, spec):
    return "–" if x is None else format(x, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--starts", default="0,2,4", help="window starts (index of the first fitted budget)")
    ap.add_argument("--bootstrap", type=int, default=100, help="approach 3 resamples (FitOptions.bootstrap)")
    ap.add_argument(
        "--fit-budgets", type=int, default=FIT_BUDGETS, help="consecutive budgets fitted (each 2x the last)"
    )
    ap.add_argument("--ahead", type=int, default=AHEAD, help="doublings from the largest fitted budget to the target")
    ap.add_argument("--loss", default="huber", help="approach 3's fit loss (FitOptions.loss): huber or lsq")
    ap.add_argument("--out", default=None, help="default bench/results/backtest-porian[-K-budgets][-A-ahead].json")
    ap.add_argument("--tables", metavar="JSON", help="print the tables of an earlier run's JSON; fits nothing")
    a = ap.parse_args()
    if a.tables:
        keep = {int(x) for x in a.starts.split(",")}  # --starts filters the stored windows
        rows = [r for r in json.loads(Path(a.tables).read_text())["rows"] if r["start"] in keep]
        print_tables(rows)
        return 0
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent (public data beside the checkout)", file=sys.stderr)
        return 0
    df = pd.read_csv(DATA / "isoflop_points.csv")
    configs = sorted(df.config.unique())[: 2 if a.quick else None]
    starts = [0] if a.quick else [int(s) for s in a.starts.split(",")]
    opts = FitOptions(approaches=("2", "3", "lc"), bootstrap=a.bootstrap, loss=a.loss).validate()
    rows, t0 = [], time.perf_counter()
    for cfg in configs:
        c = df[df.config == cfg]
        n_b = c.flops.nunique()
        for s in starts:
            if s + a.fit_budgets - 1 + a.ahead >= n_b:
                continue
            for r in one(c, s, opts, a.fit_budgets, a.ahead):
                rows.append({"config": cfg, "start": s, **r})
            print(f"{cfg} start {s}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print_tables(rows)
    doc = {
        "command": "python bench/backtest_porian.py " + " ".join(sys.argv[1:]),
        "machine": platform.machine(),
        "data": "porian2024-resolving/isoflop_points.csv",
        "fit_budgets": a.fit_budgets,
        "predict_doublings_ahead": a.ahead,
        "bootstrap": a.bootstrap,
        "loss": a.loss,
        "wall_s": time.perf_counter() - t0,
        **{("summary" if k == "all" else f"summary_{k}"): summary(rs) for k, rs in groups(rows).items()},
        "rows": rows,
    }
    if not a.quick:
        suffix = (
            (f"-{a.fit_budgets}-budgets" if a.fit_budgets != FIT_BUDGETS else "")
            + (f"-{a.ahead}-ahead" if a.ahead != AHEAD else "")
            + (f"-{a.loss}" if a.loss != "huber" else "")
        )
        a.out = a.out or str(ROOT / "bench" / "results" / f"backtest-porian{suffix}.json")
        Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
