"""Bootstrap by whole runs: resampling weights over runs (optionally within strata such as budgets),
percentile intervals, and the compact form in which a law file stores its draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def resample_weights(groups, R: int, rng: np.random.Generator, strata=None, bayesian: bool = False) -> np.ndarray:
    """(R, n) weights over n rows: each resample draws whole runs (rows sharing a group id) with replacement,
    within each stratum when strata are given (an IsoFLOP budget keeps its number of runs); a row's weight is
    how often its run was drawn (bayesian: Dirichlet(1, ..., 1) weights scaled to the stratum's run count, Rubin's
    Bayesian bootstrap). Resampling checkpoints of one run separately would pretend they are independent runs."""
    groups = np.asarray(groups)
    gid, g_of_row = np.unique(groups, return_inverse=True)
    s_of_group = np.zeros(len(gid), dtype=int)
    if strata is not None:
        _, s_idx = np.unique(np.asarray(strata), return_inverse=True)
        s_of_group[g_of_row] = s_idx  # a run lies in one stratum
    counts = np.zeros((R, len(gid)))
    for s in np.unique(s_of_group):
        members = np.flatnonzero(s_of_group == s)
        if bayesian:
            counts[:, members] = rng.dirichlet(np.ones(len(members)), size=R) * len(members)
        else:
            draws = rng.integers(0, len(members), size=(R, len(members)))
            np.add.at(counts, (np.arange(R)[:, None], members[draws]), 1.0)
    return counts[:, g_of_row]


def percentile_ci(draws: np.ndarray, names: Sequence[str], level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile interval of each column of draws (rows = resamples), ignoring failed (NaN) resamples."""
    q = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(draws, [q, 100 - q], axis=0)
    return {k: (float(a), float(b)) for k, a, b in zip(names, lo, hi)}


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of one quantity's draws."""
    q = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(np.asarray(values, dtype=float), [q, 100 - q])
    return float(lo), float(hi)


def pack_draws(draws: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Draws for a law file: one list per parameter, 7 significant digits (enough for any prediction)."""
    return {"n": len(draws), "values": {k: [float(f"{v:.7g}") for v in draws[:, i]] for i, k in enumerate(names)}}


def unpack_draws(d: dict[str, Any], names: Sequence[str]) -> np.ndarray:
    return np.column_stack([np.asarray(d["values"][k], dtype=float) for k in names])
