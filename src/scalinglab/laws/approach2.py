"""Chinchilla approach 2 (IsoFLOP profiles): per budget a parabola of loss vs log10 N (and vs log10 D),
robust to non-converged runs (loss cut, seeded RANSAC or Huber); vertices -> N_opt ∝ C^a, D_opt ∝ C^b."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.base import PowerLawAllocation, register_kind

ROBUST = ("ransac", "huber", "lsq")


def group_budgets(budget: np.ndarray, rel_tol: float = 0.05) -> np.ndarray:
    """Group ids for runs whose budgets agree within rel_tol (spent FLOPs scatter around the plan)."""
    order = np.argsort(budget, kind="stable")
    ids = np.empty(len(budget), dtype=int)
    gid, first = -1, None
    for i in order:
        if first is None or budget[i] > first * (1 + rel_tol):
            gid, first = gid + 1, budget[i]
        ids[i] = gid
    return ids


def fit_parabola(x: np.ndarray, y: np.ndarray, robust: str = "ransac", seed: int = 42):
    """y ≈ c2 x^2 + c1 x + c0; returns (c2, c1, c0), inlier mask, method used. RANSAC uses
    scikit-learn's defaults on [1, x, x^2] features (min_samples 4, threshold = MAD of y), as minchilla."""
    X = np.column_stack([np.ones_like(x), x, x * x])
    if robust == "ransac" and len(x) >= 5:
        from sklearn.linear_model import RANSACRegressor

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = RANSACRegressor(random_state=seed).fit(X, y)
            c = m.estimator_.coef_
            return (c[2], c[1], m.estimator_.intercept_ + c[0]), m.inlier_mask_, "ransac"
        except ValueError:
            pass  # no consensus set: fall back to least squares below
    if robust == "huber" and len(x) >= 4:
        from sklearn.linear_model import HuberRegressor

        xm, xs = x.mean(), x.std() or 1.0
        z = (x - xm) / xs  # standardise so Huber's L2 penalty and scale estimate behave
        m = HuberRegressor(epsilon=1.35, alpha=0.0, max_iter=1000).fit(np.column_stack([z, z * z]), y)
        p1, p2 = m.coef_
        c2 = p2 / xs**2
        c1 = p1 / xs - 2 * p2 * xm / xs**2
        c0 = m.intercept_ - p1 * xm / xs + p2 * xm**2 / xs**2
        return (c2, c1, c0), ~m.outliers_, "huber"
    c2, c1, c0 = np.polyfit(x, y, 2)
    return (c2, c1, c0), np.ones(len(x), bool), "lsq"


def fit_line(x: np.ndarray, y: np.ndarray):
    """OLS y = slope x + intercept."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


@register_kind
class Approach2(PowerLawAllocation):
    """fit(N, D, C_budget, loss) -> self with k_n_, a_, k_d_, b_, per_budget_ (one dict per budget)
    and warnings_ (budgets with < 3 points, vertex outside the sampled range, no minimum); inlier_ (per input
    row: False where --max-loss or the N parabola's outlier fit dropped it; not stored in law.json)."""

    kind = "approach2"

    def __init__(self, robust: str = "ransac", max_loss: float | None = None, seed: int = 42,
                 budget_tol: float = 0.05, **kw):
        super().__init__(**kw)
        if robust not in ROBUST:
            raise UserError(f"unknown outlier method {robust!r}: use one of {', '.join(ROBUST)}")
        self.robust, self.max_loss, self.seed, self.budget_tol = robust, max_loss, seed, budget_tol
        self.per_budget_: list[dict[str, Any]] = []
        self.warnings_: list[str] = []
        self.notes_: list[str] = []
        self.inlier_: np.ndarray | None = None

    def fit(self, N, D, C, loss) -> "Approach2":
        N, D, C, L = (np.asarray(v, dtype=float).ravel() for v in (N, D, C, loss))
        keep = np.ones(len(L), bool)
        if self.max_loss is not None:
            keep = L <= self.max_loss
            self.notes_.append(f"dropped {int((~keep).sum())} runs with loss > {self.max_loss:g} (not converged)")
        gid = group_budgets(C, self.budget_tol)
        self.per_budget_, self.warnings_ = [], []
        self.inlier_ = keep.copy()
        for g in np.unique(gid):
            m = (gid == g) & keep
            cg = C[gid == g]
            budget = float(cg[0]) if np.all(cg == cg[0]) else float(np.exp(np.mean(np.log(cg))))
            row: dict[str, Any] = {"C": budget, "n_runs": int((gid == g).sum()), "n_used": int(m.sum())}
            self.per_budget_.append(row)
            if m.sum() < 3:
                self._warn(f"budget {budget:.3g}: only {int(m.sum())} usable runs, need 3 for a parabola; skipped")
                row["skipped"] = "fewer than 3 points"
                continue
            order = np.argsort(N[m], kind="stable")  # ascending N, as minchilla (RANSAC's draws depend on order)
            n, d, l = N[m][order], D[m][order], L[m][order]
            for var, x in (("n", np.log10(n)), ("d", np.log10(d))):
                (c2, c1, c0), inl, how = fit_parabola(x, l, self.robust, self.seed)
                row[f"method_{var}"] = how
                row[f"outliers_{var}"] = int((~inl).sum())
                if var == "n":  # what a plot of this budget's IsoFLOP curve needs
                    row["coef_n"] = [float(c2), float(c1), float(c0)]
                    row["range_n"] = [float(n[0]), float(n[-1])]
                    self.inlier_[np.flatnonzero(m)[order][~np.asarray(inl, bool)]] = False
                if not c2 > 0:
                    self._warn(f"budget {budget:.3g}: loss vs log {var.upper()} has no minimum (curvature {c2:.3g}); skipped")
                    row["skipped"] = f"no minimum in {var.upper()}"
                    break
                xv = -c1 / (2 * c2)
                row[f"{var}_opt"] = float(10**xv)
                row[f"loss_opt_{var}"] = float(c0 + c1 * xv + c2 * xv * xv)
                if not (x.min() <= xv <= x.max()):
                    self._warn(f"budget {budget:.3g}: the {var.upper()} minimum {10**xv:.3g} lies outside the sampled "
                               f"range {10**x.min():.3g}..{10**x.max():.3g}; extrapolated")
                    row[f"outside_{var}"] = True
        ok = [r for r in self.per_budget_ if "skipped" not in r]
        if len(ok) < 2:
            raise UserError(f"approach 2 needs vertices at 2 or more budgets, got {len(ok)}: add runs or budgets "
                            "(3+ runs per budget around the minimum)")
        c = np.log10([r["C"] for r in ok])
        self.a_, ln = fit_line(c, np.log10([r["n_opt"] for r in ok]))
        self.b_, ld = fit_line(c, np.log10([r["d_opt"] for r in ok]))
        if max(abs(ln), abs(ld)) > 300:  # vertices wildly off the grid: 10**x would overflow
            raise UserError("approach 2: the fitted N_opt/D_opt line is degenerate (minima far outside the sampled "
                            "sizes); widen the shapes or add budgets")
        self.k_n_, self.k_d_ = 10**ln, 10**ld
        self.n_budgets_ = len(ok)
        return self

    def _warn(self, msg: str) -> None:
        self.warnings_.append(msg)

    def _extra_dict(self) -> dict[str, Any]:
        return {"robust": self.robust, "max_loss": self.max_loss, "seed": self.seed, "per_budget": self.per_budget_,
                "warnings": self.warnings_, "notes": self.notes_}

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.robust, self.max_loss, self.seed = d.get("robust", "ransac"), d.get("max_loss"), d.get("seed", 42)
        self.per_budget_, self.warnings_, self.notes_ = d.get("per_budget", []), d.get("warnings", []), d.get("notes", [])
