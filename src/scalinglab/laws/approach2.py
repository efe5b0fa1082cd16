"""Chinchilla approach 2 (IsoFLOP profiles): per budget a parabola of loss vs log10 N (and vs log10 D),
robust to non-converged runs (loss cut, seeded RANSAC or Huber); vertices -> N_opt ∝ C^a, D_opt ∝ C^b."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.base import PowerLawAllocation
from scalinglab.laws.diagnostics import residual_summary

ROBUST = ("ransac", "huber", "lsq")
ALLOCATION_FIELDS = ("k_n", "a", "k_d", "b")
RESAMPLE = ("residuals", "runs", "bayesian")


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


def size_window(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, window: int | None):
    """One budget's runs by distinct size (x ascending; replicate runs of a size, other seeds, share its x): the
    mean loss of each size (weighted by w), the index of the lowest, the number of sizes, and the mask of the rows
    of the `window` sizes centred on it (every row when there are no more sizes). Without replicates a size is a
    run, so this is the window of runs. Returns (mask, i_min, n_sizes, sizes, mean loss per size)."""
    sizes, inv = np.unique(x, return_inverse=True)
    ww = np.ones(len(y)) if w is None else np.asarray(w, float)
    mean = np.bincount(inv, ww * y, len(sizes)) / np.bincount(inv, ww, len(sizes))
    i, k = int(np.argmin(mean)), len(sizes)
    lo, hi = 0, k
    if window is not None and k > window:
        lo = min(max(0, i - window // 2), k - window)
        hi = lo + window
    return (inv >= lo) & (inv < hi), i, k, sizes, mean


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
    """Why this budget has no vertex (too few runs, no minimum, not bracketed); None when it has one."""
    bracketed: bool = True
    """The lowest loss is at an interior size and the vertex inside the fitted sizes (Porian et al. 2024's rule)."""
    best_n: float | None = None
    """N of the run with the lowest loss (the observed optimum)."""
    best_d: float | None = None
    """D of that run."""
    best_loss: float | None = None
    """Its loss."""
    window_n: tuple[float, float] | None = None
    """Smallest and largest N of the window the parabola was fitted on (None: all sizes)."""

    @property
    def ok(self) -> bool:
        return self.skipped is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("coef_n", "range_n", "window_n"):
            d[k] = None if d[k] is None else list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BudgetFit:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("coef_n", "range_n", "window_n"):
            if kw.get(k) is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)


class Approach2(PowerLawAllocation):
    """fit(N, D, C_budget, loss) -> self with k_n_, a_, k_d_, b_, n_budgets_, per_budget_ (a BudgetFit per budget,
    in budget order), warnings_ (exponents implausible, budgets with < 3 points or no minimum), notes_ (budgets
    left out because their minimum is not bracketed by the sampled sizes), residuals_ (vertices vs the fitted
    power law), inlier_ (per input row: False where max_loss or the N parabola's outlier fit dropped it; not
    stored) and, with bootstrap > 0, boot_ (draws of k_n, a, k_d, b), boot_vertices_ and ci_.

    Hygiene, after Porian et al. 2024 (who keep a budget only when the interpolated minimum is interior): a
    budget whose lowest loss sits at its smallest or largest size, or whose vertex falls outside the fitted
    sizes, does not enter the exponent fit unless keep_unbracketed. The parabola is fitted on the `window`
    sizes nearest the lowest loss (None: all), because an IsoFLOP curve is a parabola only near its minimum."""

    kind = "approach2"

    def __init__(
        self,
        robust: str = "ransac",
        max_loss: float | None = None,
        seed: int = 42,
        budget_tol: float = 0.05,
        window: int | None = 5,
        keep_unbracketed: bool = False,
        bootstrap: int = 0,
        ci: float = 0.95,
        resample: str = "residuals",
        **kw,
    ):
        super().__init__(**kw)
        self.robust, self.max_loss, self.seed, self.budget_tol = robust, max_loss, seed, budget_tol
        self.window, self.keep_unbracketed = window, keep_unbracketed
        self.bootstrap, self.ci, self.resample = bootstrap, ci, resample
        self._reset()

    def _reset(self) -> None:
        self.per_budget_: list[BudgetFit] = []
        self.warnings_: list[str] = []
        self.notes_: list[str] = []
        self.residuals_: dict[str, Any] = {}
        self.inlier_: np.ndarray | None = None
        self.kept_: np.ndarray | None = None
        self.n_budgets_ = 0
        self.boot_: np.ndarray | None = None
        self.boot_vertices_: np.ndarray | None = None
        self.ci_: dict[str, tuple[float, float]] | None = None

    def fit(self, N, D, C, loss, groups=None, sample_weight=None) -> Approach2:
        """groups: a run id per row (rows of one run share it): the bootstrap resamples whole runs per budget.
        sample_weight: per run (e.g. bootstrap weights of whole runs); a run of weight 0 is left out."""
        if self.robust not in ROBUST:
            raise UserError(f"unknown outlier method {self.robust!r}: use one of {', '.join(ROBUST)}")
        if not self.budget_tol >= 0:
            raise UserError(f"budget tolerance must be 0 or more, got {self.budget_tol}")
        if self.window is not None and self.window < 3:
            raise UserError(f"a parabola window of {self.window} sizes is too small: use 3 or more (or none)")
        if self.resample not in RESAMPLE or self.bootstrap < 0 or not 0 < self.ci < 1:
            raise UserError(
                f"approach 2 bootstrap settings out of range (resample {self.resample!r}, bootstrap "
                f"{self.bootstrap}, ci {self.ci}): resample residuals, runs or bayesian, bootstrap >= 0, "
                "0 < ci < 1"
            )
        N, D, C, L = (np.asarray(v, dtype=float).ravel() for v in (N, D, C, loss))
        gid = self.profile(N, D, C, L, sample_weight)
        ok = [r for r in self.per_budget_ if r.ok]
        if len(ok) < 2:
            hint = "" if self.keep_unbracketed else ", or keep unbracketed budgets"
            raise UserError(
                f"approach 2 needs vertices at 2 or more budgets, got {len(ok)}",
                hint=f"add runs or budgets (3+ runs per budget on both sides of its minimum){hint}",
                keys=() if self.keep_unbracketed else ("keep_unbracketed",),
            )
        c = np.log10([r.C for r in ok])
        a, ln = fit_line(c, np.log10([r.n_opt for r in ok]))
        b, ld = fit_line(c, np.log10([r.d_opt for r in ok]))
        if max(abs(ln), abs(ld)) > 300:  # vertices wildly off the grid: 10**x would overflow
            raise UserError(
                "approach 2: the fitted N_opt/D_opt line is degenerate (minima far outside the sampled "
                "sizes); widen the shapes or add budgets"
            )
        self.a_, self.b_, self.k_n_, self.k_d_ = a, b, 10**ln, 10**ld
        self.n_budgets_ = len(ok)
        rel = np.array([r.n_opt for r in ok]) / (self.k_n_ * np.power([r.C for r in ok], self.a_)) - 1
        self.residuals_ = residual_summary(rel, "n_opt")
        self._check_exponents()
        if self.bootstrap:
            self._bootstrap(N, D, L, gid, np.arange(len(L)) if groups is None else np.asarray(groups))
        return self

    def profile(self, N, D, C, loss, sample_weight=None) -> np.ndarray:
        """Only the per-budget parabolas (per_budget_, inlier_, notes and warnings), no power law: what a held-out
        budget's observed optimum needs. Returns each row's budget group id."""
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
            self.notes_.append(
                f"dropped {int((L > self.max_loss).sum())} runs with loss > {self.max_loss:g} (not converged)"
            )
        gid = group_budgets(C, self.budget_tol)
        self.inlier_ = keep.copy()
        self.kept_ = keep.copy()  # the rows the parabolas saw, outliers included (the residual bootstrap's design)
        w = None if sample_weight is None else W
        for g in np.unique(gid):
            m = (gid == g) & keep
            cg = C[gid == g]
            budget = float(cg[0]) if np.all(cg == cg[0]) else float(np.exp(np.mean(np.log(cg))))
            row: dict[str, Any] = {"C": budget, "n_runs": int((gid == g).sum()), "n_used": int(m.sum())}
            if m.sum() < 3:
                self._warn(f"budget {budget:.3g}: only {int(m.sum())} usable runs, need 3 for a parabola; skipped")
                self.per_budget_.append(BudgetFit(**row, skipped="fewer than 3 points"))
                continue
            if len(np.unique(N[m])) < 3:
                self._warn(
                    f"budget {budget:.3g}: only {len(np.unique(N[m]))} distinct sizes, need 3 for a parabola; skipped"
                )
                self.per_budget_.append(BudgetFit(**row, skipped="fewer than 3 sizes"))
                continue
            order = np.argsort(N[m], kind="stable")  # ascending N, as minchilla (RANSAC's draws depend on order)
            rows_m = np.flatnonzero(m)[order]
            self._fit_budget(row, N[rows_m], D[rows_m], L[rows_m], rows_m, None if w is None else w[rows_m])
            self.per_budget_.append(BudgetFit(**row))
        return gid

    def _bootstrap(self, N, D, L, gid, groups) -> None:
        """Refit on resamples within each budget, by least-squares parabolas with the same window and bracketing
        rules; a resample losing a budget's bracket leaves that budget out. resample "residuals" (default): the
        inliers' residuals from the budget's parabola, drawn with replacement within the budget, on the fitted values
        at every run the parabolas saw, outliers' places included (fixed design); "runs": the inlier runs themselves,
        with replacement (as counts). Runs over max_loss stay out of both. With 5-9 sizes per budget the second
        over-covers: 0.99 for a 95% interval on synthetic laws (bench/interval_coverage.py), the first 0.92-0.94."""
        from scalinglab.laws.bootstrap import percentile_ci, resample_weights

        ok = [g for g, r in enumerate(self.per_budget_) if r.ok]
        rows = np.flatnonzero(np.isin(gid, ok) & self.inlier_)
        W = resample_weights(
            groups[rows],
            int(self.bootstrap),
            np.random.default_rng(self.seed),
            strata=gid[rows],
            bayesian=self.resample == "bayesian",
        )
        C_ok = np.log10([self.per_budget_[g].C for g in ok])
        R = len(W)
        vert = np.full((R, len(ok), 3), np.nan)  # log10 N_opt, log10 D_opt, loss at vertex
        rng = np.random.default_rng(self.seed + 1)
        exact = []  # budgets whose window holds 3 sizes: the parabola runs through them, no residual is left
        for j, g in enumerate(ok):
            if self.resample == "residuals":
                # The design is every size the full fit saw, its outliers' too (their values drawn like the rest):
                # without them, the window chosen anew on a resample could take in a size beyond the fitted window
                # (at 3e14 in examples/tuned-gpu, a 1.15 loss that moved every resampled vertex 2% below the fit).
                # The residuals are the inliers' in the fitted window.
                row = self.per_budget_[g]
                r_all = np.flatnonzero((gid == g) & self.kept_)
                r_all = r_all[np.argsort(N[r_all], kind="stable")]
                xa, da, ya = np.log10(N[r_all]), np.log10(D[r_all]), L[r_all]
                lo_n, hi_n = row.window_n or row.range_n
                wa = (N[r_all] >= lo_n) & (N[r_all] <= hi_n)
                yhat_a, ka = np.polyval(row.coef_n, xa[wa]), int(wa.sum())
                inl = self.inlier_[r_all][wa]
                k = int(inl.sum())
                if k <= 3:
                    exact.append(row.C)
                e = (ya[wa][inl] - yhat_a[inl]) * np.sqrt(k / max(k - 3, 1))
                for i in range(R):
                    ys = ya.copy()
                    ys[wa] = yhat_a + rng.choice(e, size=ka, replace=True)
                    vert[i, j] = self._weighted_vertex(xa, da, ys, np.ones(len(ys)))
                continue
            m = gid[rows] == g
            r_g = rows[m]
            order = np.argsort(N[r_g], kind="stable")
            xn, xd, y = np.log10(N[r_g][order]), np.log10(D[r_g][order]), L[r_g][order]
            Wg = W[:, m][:, order]
            for i in range(R):
                vert[i, j] = self._weighted_vertex(xn, xd, y, Wg[i])
        boot = np.full((R, 4), np.nan)
        for i in range(R):
            v = np.isfinite(vert[i, :, 0])
            if v.sum() >= 2:
                a, ln = fit_line(C_ok[v], vert[i, v, 0])
                b, ld = fit_line(C_ok[v], vert[i, v, 1])
                if max(abs(ln), abs(ld)) < 300:  # a resample whose vertices run off the grid has no line
                    boot[i] = (10**ln, a, 10**ld, b)
        if exact:
            which = "every budget" if len(exact) == len(ok) else "budgets " + ", ".join(f"{c:.3g}" for c in exact)
            self._warn(
                f"intervals too narrow: at {which} the parabola passes exactly through the 3 sizes of its window, "
                "so resampled residuals cannot move its vertex; use a window of 4 or more sizes, or resample runs"
            )
        self.boot_ = boot
        self.boot_vertices_ = vert[:, :, 2]
        self.ci_ = percentile_ci(boot, ALLOCATION_FIELDS, self.ci)

    def _weighted_vertex(self, xn, xd, y, w) -> tuple[float, float, float]:
        """(log10 N_opt, log10 D_opt, loss) of one resampled budget, NaNs when it has no bracketed minimum."""
        pos = w > 0
        xn, xd, y, w = xn[pos], xd[pos], y[pos], w[pos]
        nan = (np.nan, np.nan, np.nan)
        if len(np.unique(xn)) < 3:
            return nan
        win, i, k, _, _ = size_window(xn, y, w, self.window)
        if i in (0, k - 1) and not self.keep_unbracketed:
            return nan
        xn, xd, y, w = xn[win], xd[win], y[win], w[win]
        out = []
        for x in (xn, xd):
            c2, c1, c0 = np.polyfit(x, y, 2, w=np.sqrt(w))
            if not c2 > 0:
                return nan
            xv = -c1 / (2 * c2)
            if not (x.min() <= xv <= x.max()) and not self.keep_unbracketed:
                return nan
            out.append(xv)
            if len(out) == 1:
                loss = c0 + c1 * xv + c2 * xv * xv
        return out[0], out[1], float(loss)

    def draw_names(self) -> tuple[str, ...]:
        return ALLOCATION_FIELDS

    def draws(self) -> np.ndarray | None:
        """Bootstrap draws of (k_n, a, k_d, b), one row per resample (None without a bootstrap)."""
        return self.boot_

    def _fit_budget(self, row: dict[str, Any], n, d, l, rows, w=None) -> None:
        """One budget's parabola (rows: the input rows of n, d, l, sorted by N; w their weights) into `row`."""
        win, i_min, k, sizes, mean = size_window(n, l, w, self.window)
        at = n == sizes[i_min]  # the best size's runs (one, or its replicates)
        row["best_n"], row["best_d"], row["best_loss"] = float(sizes[i_min]), float(d[at].mean()), float(mean[i_min])
        edge = i_min in (0, k - 1)
        row["bracketed"] = not edge
        if not win.all():
            row["window_n"] = (float(n[win].min()), float(n[win].max()))
        n, d, l, rows = n[win], d[win], l[win], rows[win]
        w = None if w is None else w[win]
        for var, x in (("n", np.log10(n)), ("d", np.log10(d))):
            (c2, c1, c0), inl, how = fit_parabola(x, l, self.robust, self.seed, w)
            row[f"method_{var}"] = how
            row[f"outliers_{var}"] = int((~inl).sum())
            if var == "n":  # what a plot of this budget's IsoFLOP curve needs
                row["coef_n"] = (float(c2), float(c1), float(c0))
                row["range_n"] = (float(n.min()), float(n.max()))
                self.inlier_[rows[~np.asarray(inl, bool)]] = False
            if not c2 > 0:
                self._warn(
                    f"budget {row['C']:.3g}: loss vs log {var.upper()} has no minimum (curvature {c2:.3g}); skipped"
                )
                row["skipped"] = f"no minimum in {var.upper()}"
                return
            xv = -c1 / (2 * c2)
            row[f"{var}_opt"] = float(10**xv)
            row[f"loss_opt_{var}"] = float(c0 + c1 * xv + c2 * xv * xv)
            if not (x.min() <= xv <= x.max()):
                row["bracketed"] = False
                row[f"outside_{var}"] = True
        if not row["bracketed"]:
            where = (
                f"the lowest loss is at the {'smallest' if i_min == 0 else 'largest'} size"
                if edge
                else "the parabola's vertex lies outside the fitted sizes"
            )
            what = f"budget {row['C']:.3g}: minimum not bracketed by the sampled sizes ({where})"
            if self.keep_unbracketed:
                self._warn(what + "; kept, its vertex is an extrapolation")
            else:
                self.notes_.append(what + "; left out of the exponent fit")
                row["skipped"] = "minimum not bracketed"

    def _check_exponents(self) -> None:
        """Warn where the allocation exponents cannot describe a compute-optimal frontier."""
        a, b = self.a_, self.b_
        if not 0 < a < 1:
            self._warn(
                f"N_opt exponent a = {a:.3f} lies outside (0, 1): N_opt would not trade off against D_opt; "
                "check the budgets' minima (more sizes around each minimum)"
            )
        if b < 0:
            self._warn(f"D_opt exponent b = {b:.3f} is negative: optimal data would shrink as compute grows")
        if abs(a + b - 1) > 0.1:
            self._warn(f"a + b = {a + b:.3f} is far from 1 (C = 6ND makes it 1): N and D minima disagree")

    def _warn(self, msg: str) -> None:
        self.warnings_.append(msg)

    def _extra_dict(self) -> dict[str, Any]:
        from scalinglab.laws.bootstrap import pack_draws

        d = {
            "robust": self.robust,
            "max_loss": self.max_loss,
            "seed": self.seed,
            "budget_tol": self.budget_tol,
            "window": self.window,
            "keep_unbracketed": self.keep_unbracketed,
            "n_budgets": self.n_budgets_,
            "per_budget": [r.to_dict() for r in self.per_budget_],
            "warnings": self.warnings_,
            "notes": self.notes_,
            "residuals": self.residuals_,
        }
        if self.ci_:
            d.update(ci={k: list(v) for k, v in self.ci_.items()}, ci_level=self.ci, bootstrap=self.bootstrap)
        if self.boot_ is not None:
            d["draws"] = pack_draws(self.boot_, ALLOCATION_FIELDS)
        return d

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.robust, self.max_loss, self.seed = d.get("robust", "ransac"), d.get("max_loss"), d.get("seed", 42)
        self.budget_tol = d.get("budget_tol", 0.05)
        self.window, self.keep_unbracketed = d.get("window", 5), d.get("keep_unbracketed", False)
        self.per_budget_ = [BudgetFit.from_dict(r) for r in d.get("per_budget", [])]
        self.n_budgets_ = d.get("n_budgets", sum(r.ok for r in self.per_budget_))
        self.warnings_, self.notes_ = list(d.get("warnings", [])), list(d.get("notes", []))
        self.residuals_ = d.get("residuals", {})
        if d.get("ci"):
            self.ci_ = {k: tuple(v) for k, v in d["ci"].items()}
            self.ci, self.bootstrap = d.get("ci_level", 0.95), d.get("bootstrap", 0)
        if d.get("draws"):
            from scalinglab.laws.bootstrap import unpack_draws

            self.boot_ = unpack_draws(d["draws"], ALLOCATION_FIELDS)
