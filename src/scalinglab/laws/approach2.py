"""Chinchilla approach 2 (IsoFLOP profiles): per budget a parabola of loss vs log10 N (and vs log10 D),
robust to non-converged runs (loss cut, seeded RANSAC or Huber); vertices -> N_opt ∝ C^a, D_opt ∝ C^b."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.base import PowerLawAllocation

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


def fit_parabola(x: np.ndarray, y: np.ndarray, robust: str = "ransac", seed: int = 42, w: np.ndarray | None = None):
    """y ≈ c2 x^2 + c1 x + c0; returns (c2, c1, c0), inlier mask, method used. RANSAC uses
    scikit-learn's defaults on [1, x, x^2] features (min_samples 4, threshold = MAD of y), as minchilla.
    `w`: per-point weights (bootstrap weights of whole runs), None for equal ones."""
    X = np.column_stack([np.ones_like(x), x, x * x])
    if robust == "ransac" and len(x) >= 5:
        from sklearn.linear_model import RANSACRegressor

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = RANSACRegressor(random_state=seed).fit(X, y, sample_weight=w)
            c = m.estimator_.coef_
            return (c[2], c[1], m.estimator_.intercept_ + c[0]), m.inlier_mask_, "ransac"
        except ValueError:
            pass  # no consensus set: fall back to least squares below
    if robust == "huber" and len(x) >= 4:
        from sklearn.linear_model import HuberRegressor

        xm, xs = x.mean(), x.std() or 1.0
        z = (x - xm) / xs  # standardise so Huber's L2 penalty and scale estimate behave
        m = HuberRegressor(epsilon=1.35, alpha=0.0, max_iter=1000).fit(np.column_stack([z, z * z]), y, sample_weight=w)
        p1, p2 = m.coef_
        c2 = p2 / xs**2
        c1 = p1 / xs - 2 * p2 * xm / xs**2
        c0 = m.intercept_ - p1 * xm / xs + p2 * xm**2 / xs**2
        return (c2, c1, c0), ~m.outliers_, "huber"
    c2, c1, c0 = np.polyfit(x, y, 2, w=None if w is None else np.sqrt(w))  # polyfit weights the residuals
    return (c2, c1, c0), np.ones(len(x), bool), "lsq"


def fit_line(x: np.ndarray, y: np.ndarray):
    """OLS y = slope x + intercept."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


@dataclass(frozen=True)
class BudgetFit:
    """One budget's IsoFLOP profile: the parabolas' vertices, or why there is none (`skipped`)."""

    C: float
    """Compute budget in FLOPs (the planned one, or the geometric mean of a group's spent C)."""
    n_runs: int
    """Runs at this budget."""
    n_used: int
    """Runs left after the loss cut (max_loss); the parabolas are fitted to these."""
    n_opt: float | None = None
    """N at the vertex of loss vs log10 N."""
    d_opt: float | None = None
    """D at the vertex of loss vs log10 D."""
    loss_opt_n: float | None = None
    """Loss at the N vertex."""
    loss_opt_d: float | None = None
    """Loss at the D vertex."""
    coef_n: tuple[float, float, float] | None = None
    """The N parabola (c2, c1, c0) in x = log10 N."""
    range_n: tuple[float, float] | None = None
    """Smallest and largest N sampled."""
    method_n: str | None = None
    """How the N parabola was fitted (ransac, huber, lsq: RANSAC falls back to lsq under 5 points)."""
    method_d: str | None = None
    """How the D parabola was fitted."""
    outliers_n: int | None = None
    """Runs the robust N fit left out."""
    outliers_d: int | None = None
    """Runs the robust D fit left out."""
    outside_n: bool = False
    """The N vertex lies outside the sampled sizes (extrapolated)."""
    outside_d: bool = False
    """The D vertex lies outside the sampled token counts."""
    skipped: str | None = None
    """Why this budget has no vertex (too few runs, no minimum); None when it has one."""

    @property
    def ok(self) -> bool:
        return self.skipped is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("coef_n", "range_n"):
            d[k] = None if d[k] is None else list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BudgetFit":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("coef_n", "range_n"):
            if kw.get(k) is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)


class Approach2(PowerLawAllocation):
    """fit(N, D, C_budget, loss) -> self with k_n_, a_, k_d_, b_, n_budgets_, per_budget_ (a BudgetFit per
    budget, in budget order), warnings_ (budgets with < 3 points, vertex outside the sampled range, no minimum),
    notes_, and inlier_ (per input row: False where max_loss or the N parabola's outlier fit dropped it; not
    stored in law.json)."""

    kind = "approach2"

    def __init__(self, robust: str = "ransac", max_loss: float | None = None, seed: int = 42,
                 budget_tol: float = 0.05, **kw):
        super().__init__(**kw)
        self.robust, self.max_loss, self.seed, self.budget_tol = robust, max_loss, seed, budget_tol
        self._reset()

    def _reset(self) -> None:
        self.per_budget_: list[BudgetFit] = []
        self.warnings_: list[str] = []
        self.notes_: list[str] = []
        self.inlier_: np.ndarray | None = None
        self.n_budgets_ = 0

    def fit(self, N, D, C, loss, sample_weight=None) -> "Approach2":
        """sample_weight: per run (e.g. bootstrap weights of whole runs); a run of weight 0 is left out."""
        if self.robust not in ROBUST:
            raise UserError(f"unknown outlier method {self.robust!r}: use one of {', '.join(ROBUST)}")
        if not self.budget_tol >= 0:
            raise UserError(f"budget tolerance must be 0 or more, got {self.budget_tol}")
        N, D, C, L = (np.asarray(v, dtype=float).ravel() for v in (N, D, C, loss))
        W = np.ones(len(L)) if sample_weight is None else np.asarray(sample_weight, dtype=float).ravel()
        if not (len(N) == len(D) == len(C) == len(L) == len(W)):
            raise UserError("N, D, C, loss (and weights) have different lengths: give one value of each per run")
        if not np.all(np.isfinite(W) & (W >= 0)):
            raise UserError("sample weights must be finite and 0 or more")
        self._reset()
        for f in self._fields:
            setattr(self, f + "_", None)
        keep = W > 0
        if self.max_loss is not None:
            keep &= L <= self.max_loss
            self.notes_.append(f"dropped {int((L > self.max_loss).sum())} runs with loss > {self.max_loss:g} "
                               "(not converged)")
        gid = group_budgets(C, self.budget_tol)
        self.inlier_ = keep.copy()
        w = None if sample_weight is None else W
        for g in np.unique(gid):
            self.per_budget_.append(self._fit_budget(N, D, C, L, gid == g, keep, w))
        ok = [r for r in self.per_budget_ if r.ok]
        if len(ok) < 2:
            raise UserError(f"approach 2 needs vertices at 2 or more budgets, got {len(ok)}: add runs or budgets "
                            "(3+ runs per budget around the minimum)")
        c = np.log10([r.C for r in ok])
        a, ln = fit_line(c, np.log10([r.n_opt for r in ok]))
        b, ld = fit_line(c, np.log10([r.d_opt for r in ok]))
        if max(abs(ln), abs(ld)) > 300:  # vertices wildly off the grid: 10**x would overflow
            raise UserError("approach 2: the fitted N_opt/D_opt line is degenerate (minima far outside the sampled "
                            "sizes); widen the shapes or add budgets")
        self.a_, self.b_, self.k_n_, self.k_d_ = a, b, 10**ln, 10**ld
        self.n_budgets_ = len(ok)
        return self

    def _fit_budget(self, N, D, C, L, in_group, keep, W) -> BudgetFit:
        m = in_group & keep
        cg = C[in_group]
        budget = float(cg[0]) if np.all(cg == cg[0]) else float(np.exp(np.mean(np.log(cg))))
        row: dict[str, Any] = {"C": budget, "n_runs": int(in_group.sum()), "n_used": int(m.sum())}
        if m.sum() < 3:
            self._warn(f"budget {budget:.3g}: only {int(m.sum())} usable runs, need 3 for a parabola; skipped")
            return BudgetFit(**row, skipped="fewer than 3 points")
        order = np.argsort(N[m], kind="stable")  # ascending N, as minchilla (RANSAC's draws depend on order)
        n, d, l = N[m][order], D[m][order], L[m][order]
        w = None if W is None else W[m][order]
        if len(np.unique(n)) < 3:
            self._warn(f"budget {budget:.3g}: only {len(np.unique(n))} distinct sizes, need 3 for a parabola; skipped")
            return BudgetFit(**row, skipped="fewer than 3 sizes")
        for var, x in (("n", np.log10(n)), ("d", np.log10(d))):
            (c2, c1, c0), inl, how = fit_parabola(x, l, self.robust, self.seed, w)
            row[f"method_{var}"] = how
            row[f"outliers_{var}"] = int((~inl).sum())
            if var == "n":  # what a plot of this budget's IsoFLOP curve needs
                row["coef_n"] = (float(c2), float(c1), float(c0))
                row["range_n"] = (float(n[0]), float(n[-1]))
                self.inlier_[np.flatnonzero(m)[order][~np.asarray(inl, bool)]] = False
            if not c2 > 0:
                self._warn(f"budget {budget:.3g}: loss vs log {var.upper()} has no minimum (curvature {c2:.3g}); skipped")
                return BudgetFit(**row, skipped=f"no minimum in {var.upper()}")
            xv = -c1 / (2 * c2)
            row[f"{var}_opt"] = float(10**xv)
            row[f"loss_opt_{var}"] = float(c0 + c1 * xv + c2 * xv * xv)
            if not (x.min() <= xv <= x.max()):
                self._warn(f"budget {budget:.3g}: the {var.upper()} minimum {10**xv:.3g} lies outside the sampled "
                           f"range {10**x.min():.3g}..{10**x.max():.3g}; extrapolated")
                row[f"outside_{var}"] = True
        return BudgetFit(**row)

    def _warn(self, msg: str) -> None:
        self.warnings_.append(msg)

    def _extra_dict(self) -> dict[str, Any]:
        return {"robust": self.robust, "max_loss": self.max_loss, "seed": self.seed, "budget_tol": self.budget_tol,
                "n_budgets": self.n_budgets_, "per_budget": [r.to_dict() for r in self.per_budget_],
                "warnings": self.warnings_, "notes": self.notes_}

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.robust, self.max_loss, self.seed = d.get("robust", "ransac"), d.get("max_loss"), d.get("seed", 42)
        self.budget_tol = d.get("budget_tol", 0.05)
        self.per_budget_ = [BudgetFit.from_dict(r) for r in d.get("per_budget", [])]
        self.n_budgets_ = d.get("n_budgets", sum(r.ok for r in self.per_budget_))
        self.warnings_, self.notes_ = list(d.get("warnings", [])), list(d.get("notes", []))
