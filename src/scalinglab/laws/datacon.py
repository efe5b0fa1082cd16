"""The data-constrained law of Muennighoff et al. 2023: Chinchilla's form with repeated tokens and excess
parameters decaying in value (R*_D, R*_N), L(N, D, U); fitted by Huber on log loss as the authors did."""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.base import ParametricLaw, _arr
from scalinglab.laws.diagnostics import residual_summary

BASE = ("E", "A", "B", "alpha", "beta")
FIELDS = BASE + ("r_star_d", "r_star_n")


def datacon_loss(p: np.ndarray, N, D, U) -> np.ndarray:
    """L for parameter rows p = (E, A, B, alpha, beta, r_star_d, r_star_n) (k, 7) at points N, D, U -> (k, n).
    R_D = D/U - 1 repeated epochs; U_N = min(N, the compute-optimal N for U tokens); R_N = N/U_N - 1."""
    E, A, B, al, be, rd, rn = (p[:, i, None] for i in range(7))
    G = (al * A / (be * B)) ** (1.0 / (al + be))
    with np.errstate(all="ignore"):
        RD = np.maximum(D / U - 1.0, 0.0)
        UN = np.minimum(N, (U * G) ** (be / al) * G)
        RN = np.maximum(N / UN - 1.0, 0.0)
        n_eff = UN + UN * rn * (1.0 - np.exp(-RN / rn))
        d_eff = U + U * rd * (1.0 - np.exp(-RD / rd))
        return E + A / n_eff**al + B / d_eff**be


class DataConstrainedLaw(ParametricLaw):
    """fit(N, D, U, loss) -> self with r_star_d_, r_star_n_ and the base terms E_, A_, B_, alpha_, beta_ (fitted,
    or held at the values given in `fix`). predict_loss(N, D, U) -> L; with U omitted (fresh data) it is
    Chinchilla's law. Fitted by Huber δ on log loss, summed, from a grid of starts (the authors' method)."""

    kind = "data-constrained"
    _fields = FIELDS

    def __init__(self, delta: float = 1e-3, fix: dict[str, float] | None = None, tie_exponents: bool = False, **kw):
        super().__init__(**kw)
        self.delta, self.fix, self.tie_exponents = delta, dict(fix or {}), tie_exponents
        self.warnings_: list[str] = []
        self.notes_: list[str] = []
        self.residuals_: dict[str, Any] = {}
        self.objective_: float | None = None
        self.n_points_ = 0

    def predict_loss(self, N, D, U=None):
        self._check_fitted()
        N, D = _arr(N), _arr(D)
        U = D if U is None else _arr(U)
        p = np.array([[getattr(self, f + "_") for f in FIELDS]])
        out = datacon_loss(p, np.atleast_1d(N), np.atleast_1d(D), np.atleast_1d(U))[0]
        return float(out[0]) if np.ndim(N) == 0 and np.ndim(D) == 0 and np.ndim(U) == 0 else out

    def fit(self, N, D, U, loss) -> DataConstrainedLaw:
        from scipy.optimize import minimize

        N, D, U, L = (np.asarray(v, dtype=float).ravel() for v in (N, D, U, loss))
        for name, v in (("N", N), ("D", D), ("unique tokens U", U), ("loss", L)):
            if not np.all(np.isfinite(v)) or np.any(v <= 0):
                raise UserError(f"{name} has a non-finite or non-positive value: remove that run")
        if np.any(U > D * (1 + 1e-9)):
            i = int(np.argmax(U > D * (1 + 1e-9)))
            raise UserError(f"row {i + 1} has more unique tokens ({U[i]:.4g}) than training tokens ({D[i]:.4g})")
        unknown = set(self.fix) - set(FIELDS)
        if unknown:
            raise UserError(f"cannot fix {', '.join(sorted(unknown))}: the parameters are {', '.join(FIELDS)}")
        free = [f for f in FIELDS if f not in self.fix]
        if self.tie_exponents and "beta" in free:
            free.remove("beta")
        if len(L) <= len(free):
            raise UserError(f"the data-constrained law has {len(free)} free parameters but only {len(L)} runs")
        lL = np.log(L)
        delta = self.delta

        def full(x: np.ndarray) -> np.ndarray:
            v = dict(self.fix)
            for name, val in zip(free, x):
                v[name] = np.exp(val) if name in ("E", "A", "B") else val
            if self.tie_exponents:
                v.setdefault("beta", v["alpha"])
            return np.array([[v[f] for f in FIELDS]])

        def obj(x: np.ndarray) -> float:
            r = np.log(datacon_loss(full(x), N, D, U)[0]) - lL
            a = np.abs(r)
            h = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))
            s = float(h.sum())
            return s if np.isfinite(s) else 1e300

        axes = {
            "E": np.log([1.5, 2.0]),
            "A": np.log([100.0, 1000.0]),
            "B": np.log([100.0, 2000.0]),
            "alpha": [0.3, 0.5],
            "beta": [0.3, 0.5],
            "r_star_d": np.linspace(0, 20, 4)[1:],
            "r_star_n": np.linspace(0, 20, 4)[1:],
        }  # R* = 0 divides by zero: the authors' grid without it
        starts = [np.array(s, dtype=float) for s in product(*(axes[f] for f in free))]
        bounds = [(1e-6, None) if f.startswith("r_star") else (None, None) for f in free]
        best = None
        for s in starts:
            res = minimize(
                obj, s, method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000}
            )
            if best is None or res.fun < best.fun:
                best = res
        vals = full(best.x)[0]
        for f, v in zip(FIELDS, vals):
            setattr(self, f + "_", float(v))
        self.objective_ = float(best.fun)
        self.n_points_ = len(L)
        self.residuals_ = residual_summary(self.predict_loss(N, D, U) / L - 1, "loss")
        self.warnings_ = []
        if float(np.max(D / U)) < 2:
            self.warnings_.append("no run repeats its data (D/U < 2 everywhere): R*_D is not identified")
        for f in ("r_star_d", "r_star_n"):
            if f in free and getattr(self, f + "_") > 1e3:
                self.warnings_.append(f"{f} ran off to {getattr(self, f + '_'):.3g}: repetition shows no decay here")
        return self

    def _extra_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "delta": self.delta,
            "n_points": self.n_points_,
            "warnings": self.warnings_,
            "notes": self.notes_,
            "residuals": self.residuals_,
        }
        if self.fix:
            d["fix"] = self.fix
        if self.objective_ is not None:
            d["objective"] = self.objective_
        return d

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.delta, self.n_points_ = d.get("delta", 1e-3), d.get("n_points", 0)
        self.warnings_, self.notes_ = d.get("warnings", []), d.get("notes", [])
        self.residuals_, self.fix, self.objective_ = d.get("residuals", {}), d.get("fix", {}), d.get("objective")
