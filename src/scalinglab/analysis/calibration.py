"""95% intervals widened to what backtests on real grids needed.

The bootstrap treats every run's residual as independent noise. On real IsoFLOP grids it is not: a budget's runs
share their training settings. In 42 backtests of small studies on Porian et al.'s (2024) 15 configurations (4
budgets spanning 8x, predicting 16x beyond; `bench/backtest_porian.py`, `bench/results/backtest-porian.json`), the
95% intervals held the observed N_opt 59% of the time (approach 2) and the observed optimal loss 64% (lc). To hold
95% of them, each interval's log half-widths had to be 3.16 times as wide for approach 2's N_opt and 6.37 times for
lc's loss. Taken from 14 configurations, those factors held 92% of the 15th's backtests.

They are a measurement at one distance (16x) and one study size, not a law: an interval widened by them is a better
guess than the bootstrap's, not a guarantee.
"""

from __future__ import annotations

WIDEN_95 = {"n_opt": 3.16, "loss": 6.37}
"""Factors on log half-widths, from bench/results/backtest-porian.json: summary["2"]["n_opt_widen_95"] and
summary["lc"]["loss_widen_95"] (tests check these against the file)."""


def widened(point: float, ci: tuple[float, float] | None, k: float) -> tuple[float, float] | None:
    """The interval (lo, hi) around point with each side's log distance from the point times k; None without one."""
    if ci is None or not (point > 0 and ci[0] > 0 and ci[1] > 0):
        return None
    lo, hi = ci
    return point * (lo / point) ** k, point * (hi / point) ** k
