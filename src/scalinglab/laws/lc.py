"""The compute-optimal loss law L*(C) = E + A C^-gamma (Porian et al. 2024, section 5), fitted robustly (Huber
on log loss, as approach 3) to per-budget optimal losses: approach 2's vertices or approach 1's envelope."""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.base import Law, _arr
from scalinglab.laws.diagnostics import residual_summary
from scalinglab.laws.optim import lbfgs_batch

FIELDS = ("E", "A", "gamma")
ALLOCATION = ("k_n", "a", "k_d", "b")


def lc_grid() -> np.ndarray:
    """Starts (ln A, ln E, gamma) as Porian et al.'s grid: gamma 0..0.3, ln E -1..1, ln A 0..25."""
    return np.array(
        [(a, e, g) for g, e, a in product(np.arange(0, 0.4, 0.1), np.arange(-1, 1.5, 0.5), np.arange(0, 30, 5))]
    )


def _objective(X: np.ndarray, lc: np.ndarray, lL: np.ndarray, delta: float, W=None):
    """Σ Huber_δ(log L̂ - log L) with L̂ = exp(a - γ lc) + exp(e), lc = centred log C; rows X = (a, e, γ)."""
    a, e, g = X[:, 0:1], X[:, 1:2], X[:, 2:3]
    with np.errstate(all="ignore"):
        x1 = np.exp(a - g * lc)
        x2 = np.exp(e) * np.ones_like(x1)
        s = x1 + x2
        r = np.log(s) - lL
        h = np.clip(r, -delta, delta)
        f = h * (r - 0.5 * h)
        if W is not None:
            f, h = f * W, h * W
        h = h / s
        grad = np.stack([(h * x1).sum(1), (h * x2).sum(1), -((h * x1) @ lc)], axis=1)
    return f.sum(1) / delta, grad / delta


def fit_lc(C, L, delta: float = 1e-3, W=None, start=None) -> tuple[np.ndarray, float]:
    """(E, A, gamma) and the objective for per-budget optimal losses L at budgets C. For R refits at once
    (bootstrap) give L as (R, n) and/or W (R, n) weights (0 drops a budget from that refit) and the full fit's
    (E, A, gamma) as `start` (refits begin there and at a few perturbed points): returns (R, 3)."""
    lC = np.log(np.asarray(C, dtype=float))
    mid = lC.mean()
    lc = lC - mid
    starts = lc_grid()
    starts[:, 0] -= starts[:, 2] * mid  # the grid is for uncentred log C: same law, centred intercept
    L = np.asarray(L, dtype=float)
    if W is None and L.ndim == 1:
        lL = np.log(L)
        X, f, _ = lbfgs_batch(lambda X, idx: _objective(X, lc, lL, delta), starts, maxiter=100)
        f = np.where(np.isfinite(f), f, np.inf)
        x = _polish(X[np.argmin(f)], lc, lL, delta)
        fb = _objective(x[None], lc, lL, delta)[0][0]
        return np.array([np.exp(x[1]), np.exp(x[0] + x[2] * mid), x[2]]), float(fb * delta)
    if start is not None:
        E0, A0, g0 = start
        x0 = np.array([np.log(A0) - g0 * mid, np.log(E0), g0])
        starts = x0 + np.array([[0, 0, 0], [0.5, -0.05, 0.02], [-0.5, 0.05, -0.02]])
    R = len(W) if W is not None else len(L)
    W = np.ones((R, len(lc))) if W is None else np.asarray(W, dtype=float)
    Lr = np.broadcast_to(L, (R, len(lc)))
    W = np.where(np.isfinite(Lr) & (Lr > 0), W, 0.0)
    with np.errstate(all="ignore"):
        lL = np.where(W > 0, np.log(Lr), 0.0)
    k = len(starts)
    Ws, lLs = np.repeat(W, k, axis=0), np.repeat(lL, k, axis=0)
    X, f, _ = lbfgs_batch(
        lambda X, idx: _objective(X, lc, lLs[idx], delta, Ws[idx]), np.tile(starts, (R, 1)), maxiter=300
    )
    f = np.where(np.isfinite(f), f, np.inf).reshape(R, k)
    X = X.reshape(R, k, 3)[np.arange(R), np.argmin(f, axis=1)]
    out = np.column_stack([np.exp(X[:, 1]), np.exp(X[:, 0] + X[:, 2] * mid), X[:, 2]])
    out[(W > 0).sum(1) < 3] = np.nan  # fewer budgets than parameters: no law
    return out, float("nan")


def _polish(x0, lc, lL, delta):
    from scipy.optimize import minimize

    def fun(x):
        f, g = _objective(x[None], lc, lL, delta)
        return f[0], g[0]

    res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000})
    return res.x if res.fun <= fun(x0)[0] else x0


class LossComputeLaw(Law):
    """fit(C, loss_opt) -> self with E_, A_, gamma_; `allocation` (an approach 1 or 2 law) supplies N_opt and
    D_opt at C when given. predict_loss_at(C) is the compute-optimal loss; residuals_ and warnings_ as the others."""

    kind = "lc"
    _fields = FIELDS

    def __init__(self, delta: float = 1e-3, source: str = "", allocation: dict[str, float] | None = None, **kw):
        super().__init__(**kw)
        self.delta, self.source = delta, source
        self.allocation = dict(allocation) if allocation else None
        self.warnings_: list[str] = []
        self.notes_: list[str] = []
        self.residuals_: dict[str, Any] = {}
        self.points_: list[dict[str, float]] = []
        self.boot_: np.ndarray | None = None

    def fit(self, C, loss) -> LossComputeLaw:
        C, L = (np.asarray(v, dtype=float).ravel() for v in (C, loss))
        ok = np.isfinite(C) & np.isfinite(L) & (C > 0) & (L > 0)
        if ok.sum() < 4:
            raise UserError(
                f"the compute-optimal loss law has 3 parameters and needs optimal losses at 4 or more "
                f"budgets, got {int(ok.sum())}: add budgets"
            )
        C, L = C[ok], L[ok]
        (E, A, g), self.objective_ = fit_lc(C, L, self.delta)
        self.E_, self.A_, self.gamma_ = float(E), float(A), float(g)
        self.points_ = [{"C": float(c), "loss": float(x)} for c, x in zip(C, L)]
        self.residuals_ = residual_summary(self.predict_loss_at(C) / L - 1, "loss_opt")
        self.warnings_ = []
        if not self.gamma_ > 0:
            self.warnings_.append(f"gamma = {self.gamma_:.3g}: the optimal loss does not fall with compute")
        if len(C) < 6:
            self.warnings_.append(
                f"{len(C)} budgets for 3 parameters: E and gamma trade off; extrapolations are loose (more budgets)"
            )
        if self.E_ < 1e-3 * L.min():
            self.warnings_.append(f"E ran to its bound 0 (E = {self.E_:.3g}): the irreducible loss is not identified")
        return self

    @classmethod
    def from_minima(cls, law, delta: float = 1e-3) -> LossComputeLaw:
        """Fit to an approach 2 law's bracketed vertices (or an approach 1 law's envelope points), carrying its
        allocation and, when it has bootstrap draws of its vertices, a bootstrap of this law too."""
        if hasattr(law, "per_budget_"):
            ok = [r for r in law.per_budget_ if r.ok]
            C, L = [r.C for r in ok], [r.loss_opt_n for r in ok]
            source = "approach 2 vertices"
        else:
            C, L = [r["C"] for r in law.frontier_], [r["loss"] for r in law.frontier_]
            source = "approach 1 envelope"
        out = cls(delta=delta, source=source, allocation={k: getattr(law, k + "_") for k in ALLOCATION})
        out.fit(C, L)
        vb = getattr(law, "boot_vertices_", None)
        if vb is not None and getattr(law, "boot_", None) is not None:
            params, _ = fit_lc(C, vb, delta, start=(out.E_, out.A_, out.gamma_))
            out.boot_ = np.column_stack([params, law.boot_[:, :4]])
        return out

    def predict_loss_at(self, C):
        self._check_fitted()
        C = _arr(C)
        return self.E_ + self.A_ * np.power(C, -self.gamma_)

    def allocate(self, C):
        if not self.allocation:
            raise UserError(
                "this compute-optimal loss law carries no allocation (fit it from approach 1 or 2 "
                "minima to get N_opt and D_opt)"
            )
        al = self.allocation
        C = _arr(C)
        return al["k_n"] * np.power(C, al["a"]), al["k_d"] * np.power(C, al["b"])

    def draws(self) -> np.ndarray | None:
        """Bootstrap draws of (E, A, gamma[, k_n, a, k_d, b]), one row per resample (None without)."""
        return self.boot_

    def draw_names(self) -> tuple[str, ...]:
        return FIELDS + (ALLOCATION if self.boot_ is not None and self.boot_.shape[1] > 3 else ())

    def _extra_dict(self) -> dict[str, Any]:
        from scalinglab.laws.bootstrap import pack_draws

        d: dict[str, Any] = {
            "delta": self.delta,
            "source": self.source,
            "points": self.points_,
            "warnings": self.warnings_,
            "notes": self.notes_,
            "residuals": self.residuals_,
        }
        if self.allocation:
            d["allocation"] = self.allocation
        if self.boot_ is not None:
            names = FIELDS + (ALLOCATION if self.boot_.shape[1] > 3 else ())
            d["draws"] = pack_draws(self.boot_, names)
        return d

    def _load_extra(self, d: dict[str, Any]) -> None:
        from scalinglab.laws.bootstrap import unpack_draws

        self.delta, self.source = d.get("delta", 1e-3), d.get("source", "")
        self.allocation = d.get("allocation")
        self.points_, self.warnings_ = d.get("points", []), d.get("warnings", [])
        self.notes_, self.residuals_ = d.get("notes", []), d.get("residuals", {})
        if d.get("draws"):
            names = FIELDS + (ALLOCATION if "k_n" in d["draws"]["values"] else ())
            self.boot_ = unpack_draws(d["draws"], names)
