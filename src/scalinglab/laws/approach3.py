"""Chinchilla approach 3: fit L(N, D) = E + A/N^α + B/D^β by a Huber loss on log loss (log-sum-exp form),
L-BFGS from a grid of starts, seeded bootstrap confidence intervals. Hoffmann et al. 2022; Besiroglu et al. 2024."""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.base import ParametricLaw
from scalinglab.laws.optim import lbfgs_batch

PARAMS = ("E", "A", "B", "alpha", "beta")


def hoffmann_grid() -> np.ndarray:
    """Hoffmann's 4500 starts as Epoch's code spells them, rows (a, b, e, alpha, beta) with A = exp(a) etc."""
    g = product(np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5), np.arange(-1, 1.5, 0.5),
                np.arange(0, 30, 5), np.arange(0, 30, 5))
    return np.array([(a, b, e, al, be) for al, be, e, a, b in g])


def huber_objective(theta: np.ndarray, lN, lD, lL, delta: float, W=None):
    """Sum over points of Huber_δ(log L̂ - log L), L̂ = exp(a - α lN) + exp(b - β lD) + exp(e), for each
    row of theta (k, 5); W (k, n) are per-row point weights (bootstrap counts). Returns f (k,), grad (k, 5),
    both divided by δ so that values are O(1) for the optimiser's tolerances."""
    a, b, e, al, be = (theta[:, i, None] for i in range(5))
    x1 = a - al * lN
    x2 = b - be * lD
    hi = np.maximum(np.maximum(x1.max(1), x2.max(1)), theta[:, 2])
    lo = np.maximum(np.maximum(x1.min(1), x2.min(1)), theta[:, 2])
    # exp without shifting is safe in the usual range; else shift per element (log-sum-exp)
    sh = np.maximum(np.maximum(x1, x2), e) if (hi.max() > 600 or lo.min() < -600) else np.zeros((1, 1))
    with np.errstate(all="ignore"):  # rows that blow up come back non-finite and the optimiser backs off
        x1 -= sh
        x2 -= sh
        np.exp(x1, out=x1)
        np.exp(x2, out=x2)
        x3 = np.exp(e - sh)
        s = x1 + x2
        s += x3
        r = np.log(s)
        r += sh
        r -= lL
        return _huber_tail(r, s, x1, x2, x3, lN, lD, delta, W)


def _huber_tail(r, s, x1, x2, x3, lN, lD, delta, W):
    g = np.clip(r, -delta, delta)  # Huber'(r); Huber(r) = g (r - g/2) on both branches
    r -= 0.5 * g
    r *= g
    if W is not None:
        g *= W
        r *= W
    g /= s
    f = r.sum(1)
    x1 *= g
    x2 *= g
    grad = np.stack([x1.sum(1), x2.sum(1), (g * x3).sum(1),
                     -(x1 @ lN), -(x2 @ lD)], axis=1)
    return f / delta, grad / delta


def _minimise(starts, lN, lD, lL, delta, W=None, chunk: int = 500):
    """Batched L-BFGS from each start (and per-row weights), in chunks to bound memory."""
    Xs, fs = [], []
    for i in range(0, len(starts), chunk):
        sl = slice(i, i + chunk)
        Wc = None if W is None else W[sl]

        def fg(X, idx, Wc=Wc):
            return huber_objective(X, lN, lD, lL, delta, None if Wc is None else Wc[idx])

        X, f, _ = lbfgs_batch(fg, starts[sl])
        Xs.append(X), fs.append(f)
    return np.concatenate(Xs), np.concatenate(fs)


def _polish(x0, lN, lD, lL, delta, w=None):
    """Finish the best start with scipy's L-BFGS-B at tight tolerances."""
    from scipy.optimize import minimize

    W = None if w is None else w[None, :]

    def fun(x):
        f, g = huber_objective(x[None, :], lN, lD, lL, delta, W)
        return f[0], g[0]

    res = minimize(fun, x0, jac=True, method="L-BFGS-B", options=dict(ftol=1e-15, gtol=1e-12, maxiter=5000))
    f0 = fun(x0)[0]
    return (res.x, res.fun) if res.fun <= f0 else (x0, f0)


def _boot_chunk(theta0, jitter, weights, lN, lD, lL, delta):
    """Fit each resample (a row of weights) from the full-data optimum plus perturbed starts."""
    R = len(weights)
    n_starts = 1 + len(jitter)
    starts = np.repeat(theta0[None, :], R * n_starts, axis=0).reshape(R, n_starts, 5)
    starts[:, 1:] += jitter[None]
    X, f = _minimise(starts.reshape(-1, 5), lN, lD, lL, delta, np.repeat(weights, n_starts, axis=0))
    X, f = X.reshape(R, n_starts, 5), f.reshape(R, n_starts)
    best = np.nanargmin(np.where(np.isfinite(f), f, np.inf), axis=1)
    return X[np.arange(R), best]


class Approach3(ParametricLaw):
    """Fitter for the parametric law. fit(N, D, loss) -> self with E_, A_, B_, alpha_, beta_,
    and after a bootstrap ci_ {name: (lo, hi)} and boot_ (resamples x 5 array)."""

    kind = "approach3"

    def __init__(self, delta: float = 1e-3, grid: np.ndarray | None = None, drop_highest: int = 0,
                 bootstrap: int = 0, seed: int = 0, n_jobs: int = -1, ci: float = 0.95, **kw):
        super().__init__(**kw)
        self.delta, self.grid, self.drop_highest = delta, grid, drop_highest
        self.bootstrap, self.seed, self.n_jobs, self.ci = bootstrap, seed, n_jobs, ci
        self._reset()

    def _reset(self) -> None:
        self.ci_: dict[str, tuple[float, float]] | None = None
        self.boot_: np.ndarray | None = None
        self.n_points_ = 0
        self.objective_: float | None = None
        self.notes_: list[str] = []

    def fit(self, N, D, loss, progress: Callable[[str, int, int], None] | None = None) -> Approach3:
        if not (self.delta > 0) or not (0 < self.ci < 1) or self.drop_highest < 0 or self.bootstrap < 0:
            raise UserError(f"approach 3 settings out of range (delta {self.delta}, ci {self.ci}, drop_highest "
                            f"{self.drop_highest}, bootstrap {self.bootstrap}): delta > 0, 0 < ci < 1, counts >= 0")
        N, D, L = (np.asarray(x, dtype=float).ravel() for x in (N, D, loss))
        self._reset()
        for f in self._fields:
            setattr(self, f + "_", None)
        if not (len(N) == len(D) == len(L)):
            raise UserError("N, D and loss have different lengths: give one value of each per run")
        for name, v in (("N", N), ("D", D), ("loss", L)):
            if not np.all(np.isfinite(v)) or np.any(v <= 0):
                raise UserError(f"{name} has a non-finite or non-positive value: remove that run")
        if self.drop_highest:
            if self.drop_highest >= len(L):
                raise UserError(f"dropping the {self.drop_highest} highest losses leaves no points of {len(L)}",
                                hint="drop fewer", keys=("drop_highest",))
            keep = np.sort(np.argsort(L, kind="stable")[: len(L) - self.drop_highest])
            self.notes_.append(f"dropped the {self.drop_highest} highest losses ({', '.join(f'{x:.3f}' for x in np.sort(L)[-self.drop_highest:])})")
            N, D, L = N[keep], D[keep], L[keep]
        if len(L) <= 5:
            raise UserError(f"approach 3 has 5 parameters but only {len(L)} points: give at least 6 runs")
        self.n_points_ = len(L)
        lN, lD, lL = np.log(N), np.log(D), np.log(L)
        grid = hoffmann_grid() if self.grid is None else np.asarray(self.grid, dtype=float)
        chunks = np.array_split(grid, max(1, int(np.ceil(len(grid) / 500))))
        res = self._map(lambda c: _minimise(c, lN, lD, lL, self.delta), chunks, "grid search", progress)
        X = np.concatenate([r[0] for r in res])
        f = np.concatenate([r[1] for r in res])
        f = np.where(np.isfinite(f), f, np.inf)
        if not np.isfinite(f).any():
            raise UserError("the approach-3 fit did not converge from any start: check the data (loss in nats?)")
        theta, fbest = _polish(X[np.argmin(f)], lN, lD, lL, self.delta)
        self.theta_ = theta
        self.objective_ = float(fbest * self.delta)
        self.n_starts_ = len(grid)
        self.n_starts_at_best_ = int(np.sum(f <= fbest * (1 + 1e-6) + 1e-12))
        self._set(theta)
        if self.bootstrap:
            self._bootstrap(theta, lN, lD, lL, progress)
        return self

    def _set(self, th) -> None:
        self.A_, self.B_, self.E_ = (float(np.exp(x)) for x in th[:3])
        self.alpha_, self.beta_ = float(th[3]), float(th[4])

    def _map(self, fn, items, label, progress):
        """Run fn over items, in parallel with joblib when n_jobs != 1, reporting progress per item."""
        out = []
        if progress:
            progress(label, 0, len(items))
        if self.n_jobs == 1 or len(items) == 1:
            gen = map(fn, items)
        else:
            from joblib import Parallel, delayed

            gen = Parallel(n_jobs=self.n_jobs, return_as="generator")(delayed(fn)(x) for x in items)
        for i, r in enumerate(gen, 1):
            out.append(r)
            if progress:
                progress(label, i, len(items))
        return out

    def _bootstrap(self, theta, lN, lD, lL, progress) -> None:
        n, R = len(lL), int(self.bootstrap)
        rng = np.random.default_rng(self.seed)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=R).astype(float)
        # a few perturbed starts around the full-data optimum guard against a resample's other basin
        jit = np.array([[0.5, 0.5, 0.05, 0.03, 0.03], [-0.5, -0.5, -0.05, -0.03, -0.03],
                        [0.5, -0.5, 0.0, 0.03, -0.03], [-0.5, 0.5, 0.0, -0.03, 0.03]])
        n_chunks = max(1, min(20, R // 25))
        parts = np.array_split(np.arange(R), n_chunks)
        res = self._map(lambda p: _boot_chunk(theta, jit, weights[p], lN, lD, lL, self.delta), parts,
                        "bootstrap", progress)
        T = np.concatenate(res)
        boot = np.column_stack([np.exp(T[:, 2]), np.exp(T[:, 0]), np.exp(T[:, 1]), T[:, 3], T[:, 4]])
        s = boot[:, 3] + boot[:, 4]
        boot = np.column_stack([boot, boot[:, 4] / s, boot[:, 3] / s])
        self.boot_ = boot
        q = (1 - self.ci) / 2 * 100
        lo, hi = np.nanpercentile(boot, [q, 100 - q], axis=0)
        self.ci_ = {k: (float(l), float(h)) for k, l, h in zip(PARAMS + ("a", "b"), lo, hi)}

    def _extra_dict(self) -> dict[str, Any]:
        d = super()._extra_dict()
        d.update(n_points=self.n_points_, delta=self.delta, drop_highest=self.drop_highest)
        if self.objective_ is not None:
            d["objective"] = self.objective_
        if self.ci_:
            d["ci"] = {k: list(v) for k, v in self.ci_.items()}
            d["ci_level"] = self.ci
            d["bootstrap"] = self.bootstrap
            d["seed"] = self.seed
        if self.notes_:
            d["notes"] = list(self.notes_)
        return d

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.n_points_ = d.get("n_points", 0)
        self.delta = d.get("delta", self.delta)
        self.drop_highest = d.get("drop_highest", 0)
        self.objective_ = d.get("objective")
        if d.get("ci"):
            self.ci_ = {k: tuple(v) for k, v in d["ci"].items()}
            self.ci = d.get("ci_level", 0.95)
            self.bootstrap = d.get("bootstrap", 0)
            self.seed = d.get("seed", 0)
        self.notes_ = list(d.get("notes", []))
