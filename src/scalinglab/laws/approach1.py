"""Chinchilla approach 1: the lower envelope of loss-vs-FLOPs curves of many runs; the (N, D) reaching it
at each compute; OLS power laws N_opt ∝ C^a, D_opt ∝ C^b. Final points only: their Pareto frontier."""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.approach2 import fit_line
from scalinglab.laws.base import PowerLawAllocation


def envelope(N: np.ndarray, C: list[np.ndarray], L: list[np.ndarray], n_grid: int = 200):
    """Per compute on a log grid over the covered range: the lowest interpolated loss any run reaches with
    at most that compute, and which run gives it. Returns c_grid, loss_min, run index."""
    lo = min(c.min() for c in C)
    hi = max(c.max() for c in C)
    grid = np.geomspace(lo, hi, n_grid)
    best = np.full(n_grid, np.inf)
    who = np.full(n_grid, -1)
    for i, (c, l) in enumerate(zip(C, L)):
        order = np.argsort(c)
        c, l = c[order], l[order]
        cover = (grid >= c[0]) & (grid <= c[-1])
        if not cover.any():
            continue
        li = np.interp(np.log(grid[cover]), np.log(c), l)
        better = li < best[cover]
        idx = np.flatnonzero(cover)[better]
        best[idx], who[idx] = li[better], i
    # A run that reached loss l with compute c also achieves l with any larger budget: the envelope is the
    # best loss at compute <= C, so a curve ending just short of the last grid point still counts there.
    for k in range(1, n_grid):
        if best[k - 1] < best[k]:
            best[k], who[k] = best[k - 1], who[k - 1]
    ok = who >= 0
    return grid[ok], best[ok], who[ok]


def mean_replicates(N: np.ndarray, C: list[np.ndarray], L: list[np.ndarray]):
    """Replicate runs (the same size and compute, other seeds) as one mean curve each: the envelope takes the lowest
    loss, so left apart it would pick each size's luckiest seed. A group's curves are averaged at the first
    curve's compute points they all cover (interpolated in log C). Returns N, C, L and the number of runs merged
    into others (0: no replicates, the input unchanged)."""
    keys = [(float(n), float(np.max(c))) for n, c in zip(N, C)]
    groups: dict[tuple[float, float], list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    if len(groups) == len(keys):
        return N, C, L, 0
    n_out, c_out, l_out = [], [], []
    for ix in groups.values():
        c0 = np.sort(C[ix[0]])
        lo, hi = max(np.min(C[i]) for i in ix), min(np.max(C[i]) for i in ix)
        c0 = c0[(c0 >= lo) & (c0 <= hi)]
        curves = []
        for i in ix:
            o = np.argsort(C[i])
            curves.append(np.interp(np.log(c0), np.log(C[i][o]), L[i][o]))
        n_out.append(N[ix[0]])
        c_out.append(c0)
        l_out.append(np.mean(curves, axis=0))
    return np.array(n_out), c_out, l_out, len(keys) - len(groups)


class Approach1(PowerLawAllocation):
    """fit_curves(N, C_list, loss_list) or fit_points(N, D, C, loss) -> self with k_n_, a_, k_d_, b_,
    frontier_ (rows C, N, D, loss on the envelope)."""

    kind = "approach1"

    def __init__(self, n_grid: int = 200, **kw):
        super().__init__(**kw)
        self.n_grid = n_grid
        self._reset()

    def _reset(self) -> None:
        self.frontier_: list[dict[str, float]] = []
        self.notes_: list[str] = []
        self.n_sizes_ = 0

    def fit_curves(self, N, C: list, L: list) -> Approach1:
        N = np.asarray(N, dtype=float)
        if not (len(N) == len(C) == len(L)):
            raise UserError("approach 1 needs one curve (C and loss arrays) per model size N")
        if len(N) < 2:
            raise UserError(f"approach 1 needs curves of 2 or more model sizes, got {len(N)}: add runs")
        N, C, L, merged = mean_replicates(N, [np.asarray(x, float) for x in C], [np.asarray(x, float) for x in L])
        c, l, who = envelope(N, C, L, self.n_grid)
        n = N[who]
        note = "envelope of loss-vs-FLOPs curves; D = C/(6N) along it"
        if merged:
            note += f"; replicate runs (other seeds) averaged into one curve per size and budget ({merged} merged)"
        return self._fit(c, n, c / (6.0 * n), l, note)

    def fit_points(self, N, D, C, loss) -> Approach1:
        """Without curves: the runs on the Pareto frontier (lower loss than every run of smaller C)."""
        N, D, C, L = (np.asarray(v, dtype=float).ravel() for v in (N, D, C, loss))
        if not (len(N) == len(D) == len(C) == len(L)) or len(N) < 2:
            raise UserError("approach 1 needs N, D, C and loss of equal length, for 2 or more runs")
        note = "no curves: Pareto frontier of final (C, loss) points"
        keys, inv = np.unique(np.stack([N, D]), axis=1, return_inverse=True)
        if keys.shape[1] < len(N):  # replicate runs (other seeds): their mean, not the luckiest seed
            inv = inv.ravel()
            k = keys.shape[1]
            count = np.bincount(inv, minlength=k)
            note += f"; replicate runs (other seeds) averaged per size and budget ({len(N) - k} merged)"
            N, D = keys
            C, L = (np.bincount(inv, v, k) / count for v in (C, L))
        order = np.lexsort((L, C))
        front, best = [], np.inf
        for i in order:
            if L[i] < best:
                front.append(i)
                best = L[i]
        f = np.array(front)
        return self._fit(C[f], N[f], D[f], L[f], note)

    def _fit(self, c, n, d, l, note) -> Approach1:
        self._reset()
        for f in self._fields:
            setattr(self, f + "_", None)
        self.notes_.append(note)
        self.frontier_ = [
            {"C": float(a), "N": float(b), "D": float(x), "loss": float(y)} for a, b, x, y in zip(c, n, d, l)
        ]
        if len(np.unique(n)) < 2:
            raise UserError(
                f"the loss envelope uses {len(np.unique(n))} model size(s): approach 1 needs runs of "
                "several sizes whose curves cross (more sizes, or longer runs)"
            )
        lc = np.log10(c)
        self.a_, kn = fit_line(lc, np.log10(n))
        self.b_, kd = fit_line(lc, np.log10(d))
        self.k_n_, self.k_d_ = 10**kn, 10**kd
        self.n_sizes_ = int(len(np.unique(n)))
        return self

    def _extra_dict(self) -> dict[str, Any]:
        return {"n_sizes": self.n_sizes_, "frontier": self.frontier_, "notes": self.notes_}

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.frontier_, self.notes_ = list(d.get("frontier", [])), list(d.get("notes", []))
        self.n_sizes_ = int(d.get("n_sizes", len({r["N"] for r in self.frontier_})))
