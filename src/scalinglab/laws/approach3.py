"""Chinchilla approach 3: fit L(N, D) = E + A/N^α + B/D^β by a Huber loss on log loss (log-sum-exp form),
L-BFGS from a grid of starts, seeded bootstrap confidence intervals. Hoffmann et al. 2022; Besiroglu et al. 2024."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.base import ParametricLaw
from scalinglab.laws.diagnostics import identifiability_warnings, residual_summary
from scalinglab.laws.optim import lbfgs_batch

PARAMS = ("E", "A", "B", "alpha", "beta")


def hoffmann_grid() -> np.ndarray:
    """Hoffmann's 4500 starts as Epoch's code spells them, rows (a, b, e, alpha, beta) with A = exp(a) etc."""
    g = product(
        np.arange(0, 2.5, 0.5),
        np.arange(0, 2.5, 0.5),
        np.arange(-1, 1.5, 0.5),
        np.arange(0, 30, 5),
        np.arange(0, 30, 5),
    )
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


def lsq_objective(theta: np.ndarray, lN, lD, L, scale: float, W=None):
    """Plain least squares on the loss itself, Σ (L̂ - L)^2, as Gadre et al. 2024 fit with curve_fit; same
    shapes as huber_objective. Divided by `scale` so that values are O(1) for the optimiser's tolerances."""
    a, b, e, al, be = (theta[:, i, None] for i in range(5))
    with np.errstate(all="ignore"):
        x1 = np.exp(a - al * lN)
        x2 = np.exp(b - be * lD)
        x3 = np.exp(e)
        q = x1 + x2 + x3 - L
        qw = q if W is None else W * q
        f = (qw * q).sum(1)
        g = 2 * qw
        grad = np.stack([(g * x1).sum(1), (g * x2).sum(1), (g * x3).sum(1), -((g * x1) @ lN), -((g * x2) @ lD)], axis=1)
    return f / scale, grad / scale


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
    grad = np.stack([x1.sum(1), x2.sum(1), (g * x3).sum(1), -(x1 @ lN), -(x2 @ lD)], axis=1)
    return f / delta, grad / delta


@dataclass
class Objective:
    """The fit's objective over the free parameters z: theta = c0 + P z (ties share a column of P, fixed
    parameters live in c0). loss "huber": Σ Huber_δ(log L̂ - log L); "lsq": Σ (L̂ - L)^2."""

    lN: np.ndarray
    lD: np.ndarray
    L: np.ndarray
    loss: str
    delta: float
    P: np.ndarray  # (5, k)
    c0: np.ndarray  # (5,)

    @property
    def scale(self) -> float:
        return self.delta if self.loss == "huber" else 1e-3

    def theta(self, Z: np.ndarray) -> np.ndarray:
        return self.c0 + Z @ self.P.T

    def __call__(self, Z: np.ndarray, W=None):
        th = self.theta(Z)
        with np.errstate(all="ignore"):  # rows that blow up come back non-finite and the optimiser backs off
            if self.loss == "huber":
                f, g = huber_objective(th, self.lN, self.lD, np.log(self.L), self.delta, W)
            else:
                f, g = lsq_objective(th, self.lN, self.lD, self.L, self.scale, W)
            return f, g @ self.P


def free_map(tie: Sequence[tuple[str, str]] = (), fix: dict[str, float] | None = None):
    """(P, c0, names of the free columns) for ties (pairs of PARAMS) and fixed values (natural units)."""
    fix = dict(fix or {})
    for k in fix:
        if k not in PARAMS:
            raise UserError(f"cannot fix {k!r}: the parameters are {', '.join(PARAMS)}")
    rep = {i: i for i in range(5)}
    for x, y in tie:
        if x not in PARAMS or y not in PARAMS or x == y:
            raise UserError(f"cannot tie {x!r} to {y!r}: tie two of {', '.join(PARAMS)}, e.g. alpha=beta")
        if {x, y} not in ({"alpha", "beta"}, {"A", "B"}):
            raise UserError(f"cannot tie {x} to {y}: only alpha=beta or A=B have the same units")
        rep[_IDX[y]] = rep[_IDX[x]]
    c0 = np.zeros(5)
    for k, v in fix.items():
        if k in ("E", "A", "B") and not v > 0:
            raise UserError(f"fixed {k} = {v:g} must be positive")
        c0[_IDX[k]] = np.log(v) if k in ("E", "A", "B") else v
    for x, y in tie:
        if (x in fix) != (y in fix):  # a tie to a fixed value fixes both
            v = fix.get(x, fix.get(y))
            for k in (x, y):
                c0[_IDX[k]] = np.log(v) if k in ("E", "A", "B") else v
                fix[k] = v
    cols = [i for i in range(5) if rep[i] == i and _NAMES_BY_IDX[i] not in fix]
    P = np.zeros((5, len(cols)))
    for j, i in enumerate(cols):
        for t in range(5):
            if rep[t] == i and _NAMES_BY_IDX[t] not in fix:
                P[t, j] = 1.0
    return P, c0, [_NAMES_BY_IDX[i] for i in cols]


_IDX = {"A": 0, "B": 1, "E": 2, "alpha": 3, "beta": 4}  # theta = (ln A, ln B, ln E, alpha, beta)
_NAMES_BY_IDX = {v: k for k, v in _IDX.items()}


def _minimise(obj: Objective, starts, W=None, chunk: int = 500):
    """Batched L-BFGS from each start (and per-row weights), in chunks to bound memory."""
    Xs, fs = [], []
    for i in range(0, len(starts), chunk):
        sl = slice(i, i + chunk)
        Wc = None if W is None else W[sl]

        def fg(X, idx, Wc=Wc):
            return obj(X, None if Wc is None else Wc[idx])

        X, f, _ = lbfgs_batch(fg, starts[sl])
        Xs.append(X), fs.append(f)
    return np.concatenate(Xs), np.concatenate(fs)


def _polish(obj: Objective, z0, w=None):
    """Finish the best start with scipy's L-BFGS-B at tight tolerances."""
    from scipy.optimize import minimize

    W = None if w is None else w[None, :]

    def fun(z):
        f, g = obj(z[None, :], W)
        return f[0], g[0]

    res = minimize(fun, z0, jac=True, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
    f0 = fun(z0)[0]
    return (res.x, res.fun) if res.fun <= f0 else (z0, f0)


def _boot_chunk(obj: Objective, z0, jitter, weights):
    """Fit each resample (a row of weights) from the full-data optimum plus perturbed starts."""
    R, k = len(weights), len(z0)
    n_starts = 1 + len(jitter)
    starts = np.repeat(z0[None, :], R * n_starts, axis=0).reshape(R, n_starts, k)
    starts[:, 1:] += jitter[None]
    X, f = _minimise(obj, starts.reshape(-1, k), np.repeat(weights, n_starts, axis=0))
    X, f = X.reshape(R, n_starts, k), f.reshape(R, n_starts)
    best = np.nanargmin(np.where(np.isfinite(f), f, np.inf), axis=1)
    return X[np.arange(R), best]


def parse_tie(spec: str | Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """'alpha=beta' (comma-separated for several) -> [('alpha', 'beta')]."""
    if not spec:
        return []
    if not isinstance(spec, str):
        return [tuple(p) for p in spec]
    out = []
    for part in spec.split(","):
        x, sep, y = part.partition("=")
        if not sep:
            raise UserError(f"tie {part!r} is not NAME=NAME: write e.g. alpha=beta")
        out.append((x.strip(), y.strip()))
    return out


def parse_fix(spec: str | dict[str, float] | None) -> dict[str, float]:
    """'E=1.69,alpha=0.34' -> {'E': 1.69, 'alpha': 0.34}."""
    if not spec:
        return {}
    if not isinstance(spec, str):
        return {k: float(v) for k, v in spec.items()}
    out = {}
    for part in spec.split(","):
        k, sep, v = part.partition("=")
        try:
            out[k.strip()] = float(v)
        except ValueError:
            sep = ""
        if not sep:
            raise UserError(f"fixed value {part!r} is not NAME=NUMBER: write e.g. E=1.69,alpha=0.34")
    return out


LOSSES = ("huber", "lsq")


class Approach3(ParametricLaw):
    """Fitter for the parametric law. fit(N, D, loss) -> self with E_, A_, B_, alpha_, beta_, warnings_ (the data
    cannot identify the law: see laws.diagnostics), residuals_ (max and RMS relative residual of the loss), and
    after a bootstrap ci_ {name: (lo, hi)} and boot_ (resamples x 7: E, A, B, alpha, beta, a, b).

    tie: pairs such as [("alpha", "beta")] (Gadre et al. 2024 tie the exponents); fix: {name: value} held
    constant; loss: "huber" (Huber δ on log loss, Hoffmann et al. 2022) or "lsq" (least squares on L)."""

    kind = "approach3"

    def __init__(
        self,
        delta: float = 1e-3,
        grid: np.ndarray | None = None,
        drop_highest: int = 0,
        bootstrap: int = 0,
        seed: int = 0,
        n_jobs: int = -1,
        ci: float = 0.95,
        tie: str | Sequence[tuple[str, str]] | None = None,
        fix: str | dict[str, float] | None = None,
        loss: str = "huber",
        **kw,
    ):
        super().__init__(**kw)
        self.delta, self.grid, self.drop_highest = delta, grid, drop_highest
        self.bootstrap, self.seed, self.n_jobs, self.ci = bootstrap, seed, n_jobs, ci
        self.tie, self.fix, self.loss = tie, fix, loss
        self._reset()

    def _reset(self) -> None:
        self.ci_: dict[str, tuple[float, float]] | None = None
        self.boot_: np.ndarray | None = None
        self.n_points_ = 0
        self.objective_: float | None = None
        self.notes_: list[str] = []
        self.warnings_: list[str] = []
        self.residuals_: dict[str, Any] = {}

    def fit(self, N, D, loss, progress: Callable[[str, int, int], None] | None = None, groups=None) -> Approach3:
        """groups: a run id per row (several rows of one run, e.g. WSD branches): the bootstrap resamples runs."""
        if not (self.delta > 0) or not (0 < self.ci < 1) or self.drop_highest < 0 or self.bootstrap < 0:
            raise UserError(
                f"approach 3 settings out of range (delta {self.delta}, ci {self.ci}, drop_highest "
                f"{self.drop_highest}, bootstrap {self.bootstrap}): delta > 0, 0 < ci < 1, counts >= 0"
            )
        if self.loss not in LOSSES:
            raise UserError(f"unknown fit loss {self.loss!r}: use huber or lsq")
        tie, fix = parse_tie(self.tie), parse_fix(self.fix)
        P, c0, free = free_map(tie, fix)
        N, D, L = (np.asarray(x, dtype=float).ravel() for x in (N, D, loss))
        self._reset()
        for f in self._fields:
            setattr(self, f + "_", None)
        if not (len(N) == len(D) == len(L)):
            raise UserError("N, D and loss have different lengths: give one value of each per run")
        for name, v in (("N", N), ("D", D), ("loss", L)):
            if not np.all(np.isfinite(v)) or np.any(v <= 0):
                raise UserError(f"{name} has a non-finite or non-positive value: remove that run")
        groups = np.arange(len(L)) if groups is None else np.asarray(groups)
        self.notes_, self.warnings_, self.ci_, self.boot_ = [], [], None, None
        if self.drop_highest:
            if self.drop_highest >= len(L):
                raise UserError(
                    f"dropping the {self.drop_highest} highest losses leaves no points of {len(L)}",
                    hint="drop fewer",
                    keys=("drop_highest",),
                )
            keep = np.sort(np.argsort(L, kind="stable")[: len(L) - self.drop_highest])
            self.notes_.append(
                f"dropped the {self.drop_highest} highest losses ({', '.join(f'{x:.3f}' for x in np.sort(L)[-self.drop_highest :])})"
            )
            N, D, L, groups = N[keep], D[keep], L[keep], groups[keep]
        k = P.shape[1]
        if len(L) <= k:
            raise UserError(
                f"approach 3 has {k} free parameters but only {len(L)} points: give at least {k + 1} runs "
                "(or tie/fix parameters)"
            )
        self.n_points_ = len(L)
        obj = Objective(np.log(N), np.log(D), L, self.loss, self.delta, P, c0)
        grid = hoffmann_grid() if self.grid is None else np.asarray(self.grid, dtype=float)
        rep = np.array([np.flatnonzero(P[:, j])[0] for j in range(k)], dtype=int)
        zgrid = np.unique(grid[:, rep], axis=0) if k else np.zeros((1, 0))
        chunks = np.array_split(zgrid, max(1, int(np.ceil(len(zgrid) / 500))))
        res = self._map(lambda c: _minimise(obj, c), chunks, "grid search", progress)
        X = np.concatenate([r[0] for r in res])
        f = np.concatenate([r[1] for r in res])
        f = np.where(np.isfinite(f), f, np.inf)
        if not np.isfinite(f).any():
            raise UserError("the approach-3 fit did not converge from any start: check the data (loss in nats?)")
        z, fbest = _polish(obj, X[np.argmin(f)]) if k else (X[0], f[0])
        theta = obj.theta(z[None, :])[0]
        self.theta_ = theta
        self.objective_ = float(fbest * obj.scale)
        self.n_starts_ = len(zgrid)
        self.n_starts_at_best_ = int(np.sum(f <= fbest * (1 + 1e-6) + 1e-12))
        self._set(theta)
        self.free_ = free
        self.residuals_ = residual_summary(self.predict_loss(N, D) / L - 1, "loss")
        self.warnings_ = identifiability_warnings(obj, z, free)
        if self.bootstrap:
            self._bootstrap(obj, z, groups, progress)
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

    def _bootstrap(self, obj: Objective, z, groups, progress) -> None:
        from scalinglab.laws.bootstrap import percentile_ci, resample_weights

        R = int(self.bootstrap)
        weights = resample_weights(groups, R, np.random.default_rng(self.seed))
        # a few perturbed starts around the full-data optimum guard against a resample's other basin
        jit = np.array(
            [
                [0.5, 0.5, 0.05, 0.03, 0.03],
                [-0.5, -0.5, -0.05, -0.03, -0.03],
                [0.5, -0.5, 0.0, 0.03, -0.03],
                [-0.5, 0.5, 0.0, -0.03, 0.03],
            ]
        )
        rep = [int(np.flatnonzero(obj.P[:, j])[0]) for j in range(obj.P.shape[1])]
        jit = jit[:, rep]
        n_chunks = 1 if self.n_jobs == 1 else max(1, min(20, R // 25))  # lockstep L-BFGS: fewer, larger batches
        parts = np.array_split(np.arange(R), n_chunks)
        res = self._map(lambda p: _boot_chunk(obj, z, jit, weights[p]), parts, "bootstrap", progress)
        T = obj.theta(np.concatenate(res))
        boot = np.column_stack([np.exp(T[:, 2]), np.exp(T[:, 0]), np.exp(T[:, 1]), T[:, 3], T[:, 4]])
        s = boot[:, 3] + boot[:, 4]
        boot = np.column_stack([boot, boot[:, 4] / s, boot[:, 3] / s])
        self.boot_ = boot
        self.ci_ = percentile_ci(boot, PARAMS + ("a", "b"), self.ci)

    def draw_names(self) -> tuple[str, ...]:
        return PARAMS

    def draws(self) -> np.ndarray | None:
        """Bootstrap draws of (E, A, B, alpha, beta), one row per resample (None without a bootstrap)."""
        return None if self.boot_ is None else self.boot_[:, :5]

    def with_values(self, row) -> ParametricLaw:
        """The law at one draw's parameters (E, A, B, alpha, beta)."""
        return ParametricLaw(**dict(zip(PARAMS, map(float, row))))

    def _extra_dict(self) -> dict[str, Any]:
        from scalinglab.laws.bootstrap import pack_draws

        d = super()._extra_dict()
        d.update(n_points=self.n_points_, delta=self.delta, drop_highest=self.drop_highest, loss=self.loss)
        if self.tie:
            d["tie"] = [list(p) for p in parse_tie(self.tie)]
        if self.fix:
            d["fix"] = parse_fix(self.fix)
        if self.objective_ is not None:
            d["objective"] = self.objective_
        d["warnings"] = list(self.warnings_)
        d["residuals"] = dict(self.residuals_)
        if self.ci_:
            d["ci"] = {k: list(v) for k, v in self.ci_.items()}
            d["ci_level"] = self.ci
            d["bootstrap"] = self.bootstrap
            d["seed"] = self.seed
        if self.boot_ is not None:
            d["draws"] = pack_draws(self.boot_[:, :5], PARAMS)
        if self.notes_:
            d["notes"] = list(self.notes_)
        return d

    def _load_extra(self, d: dict[str, Any]) -> None:
        from scalinglab.laws.bootstrap import unpack_draws

        self.n_points_ = d.get("n_points", 0)
        self.delta = d.get("delta", self.delta)
        self.drop_highest = d.get("drop_highest", 0)
        self.loss = d.get("loss", "huber")
        self.tie = [tuple(p) for p in d.get("tie", [])] or None
        self.fix = d.get("fix") or None
        self.objective_ = d.get("objective")
        self.warnings_ = list(d.get("warnings", []))
        self.residuals_ = dict(d.get("residuals", {}))
        if d.get("ci"):
            self.ci_ = {k: tuple(v) for k, v in d["ci"].items()}
            self.ci = d.get("ci_level", 0.95)
            self.bootstrap = d.get("bootstrap", 0)
            self.seed = d.get("seed", 0)
        if d.get("draws"):
            b = unpack_draws(d["draws"], PARAMS)
            s = b[:, 3] + b[:, 4]
            self.boot_ = np.column_stack([b, b[:, 4] / s, b[:, 3] / s])
        self.notes_ = list(d.get("notes", []))
