"""The report's bridge to scalinglab.laws: runs the approach 1, 2 and 3 fitters there and packs their results
into what the figures and tables need (`Fits`), plus a seeded bootstrap band for approach 2's power law."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from scalinglab.errors import UserError
from scalinglab.report.plots import Parabola

BOOT_RESAMPLES = 400
BOOT_SEED = 42


@dataclass
class Fits:
    parabolas: list[Parabola] = field(default_factory=list)
    budget_rows: list[dict[str, Any]] = field(default_factory=list)  # approach 2's per-budget results
    row_budget: np.ndarray | None = None  # over the fitted rows: the budget (group) approach 2 put each run in
    inlier: np.ndarray | None = None  # over the fitted rows: False = dropped by --max-loss or the outlier fit
    minima_c: np.ndarray = field(default_factory=lambda: np.array([]))
    minima_n: np.ndarray = field(default_factory=lambda: np.array([]))
    minima_d: np.ndarray = field(default_factory=lambda: np.array([]))
    allocation: Any = None  # approach 2 law (allocate(C)), the primary line of the allocation figure
    band: tuple | None = None  # (C grid, n_lo, n_hi, d_lo, d_hi)
    band_label: str = ""
    envelope: Any = None  # approach 1 law (frontier_ rows C, N, D, loss) when curves were given
    curves: Any = None  # laws.data.Curves used by approach 1
    parametric: Any = None  # approach 3 law with predict_loss and allocate
    parametric_text: str = ""
    laws: dict[str, Any] = field(default_factory=dict)  # fitted laws by name, for predictions and figures
    law_rows: list[dict[str, Any]] = field(default_factory=list)
    summary: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def published(name: str):
    from scalinglab.laws.published import get_law

    return get_law(name)


def band_grid(c: Sequence[float], at: Sequence[float] = ()) -> np.ndarray:
    cs = [*c, *at]
    return np.logspace(np.log10(min(cs) / 3), np.log10(max(cs) * 3), 60)


def read_runs_csv(path, n_col=None, d_col=None, c_col=None, loss_col=None):
    """A runs CSV through the fitters' own loader and checks (same columns and errors as `scalinglab fit`),
    as the report's frame: n, d, c (the budget the run belongs to), loss, status."""
    import pandas as pd

    from scalinglab.laws.data import load_frame, points_from_frame

    df, src, _, _ = load_frame(path)
    pts = points_from_frame(df, src, n_col=n_col, d_col=d_col, c_col=c_col, loss_col=loss_col)
    out = pd.DataFrame({"n": pts.N, "d": pts.D, "c": pts.budget, "flops": pts.C, "loss": pts.loss, "status": "done"})
    run_col = next((c for c in ("run_id", "run", "run_name") if c in df.columns), None)
    if run_col:
        out.insert(0, "run_id", df[run_col].astype(str).to_numpy())
    return out


def fit_all(df, at: Sequence[float] = (), max_loss: float | None = None, curves=None, progress=None,
            approaches: str = "123") -> Fits:
    """Approach 2 on the finished runs of `df` (n, d, c = budget, loss; --max-loss applied by the fitter),
    approach 3 on those under --max-loss, approach 1 on `curves` (laws.data.Curves) when given."""
    f = Fits()
    loss = df["loss"].to_numpy(float)
    kept = loss <= max_loss if max_loss is not None else np.ones(len(df), bool)
    if "2" in approaches:
        _approach2(f, df, at, max_loss)
    if "1" in approaches and curves is not None:
        _approach1(f, curves)
    if "3" in approaches:
        _approach3(f, df[kept], progress)
    return f


def _approach2(f: Fits, df, at, max_loss) -> None:
    from scalinglab.laws.approach2 import Approach2, group_budgets

    n, d, c, loss = (df[k].to_numpy(float) for k in ("n", "d", "c", "loss"))
    law = Approach2(max_loss=max_loss)
    f.inlier = np.ones(len(df), bool) if max_loss is None else loss <= max_loss
    gid = group_budgets(c, law.budget_tol)
    try:
        law.fit(n, d, c, loss)
    except UserError as e:
        f.warnings += [w for w in law.warnings_]
        f.warnings.append(f"approach 2 (IsoFLOP) not fitted: {e}")
        return
    f.warnings += [f"IsoFLOP {w}" for w in law.warnings_]
    f.inlier = np.asarray(law.inlier_, bool)
    f.budget_rows = law.per_budget_
    f.row_budget = np.array([law.per_budget_[g]["C"] for g in gid])  # per_budget_ is in group-id order
    for r in law.per_budget_:
        if "coef_n" in r and "n_opt" in r:
            f.parabolas.append(Parabola(r["C"], r["coef_n"], r["n_opt"], r["loss_opt_n"], tuple(r["range_n"])))
    ok = [r for r in law.per_budget_ if "skipped" not in r]
    f.minima_c = np.array([r["C"] for r in ok])
    f.minima_n = np.array([r["n_opt"] for r in ok])
    f.minima_d = np.array([r["d_opt"] for r in ok])
    f.allocation = law
    f.laws["approach-2 (this study)"] = law

    boot = bootstrap_approach2(law, n, d, c, loss, gid)
    a_txt, b_txt = f"a = {law.a_:.3f}", f"b = {law.b_:.3f}"
    if boot is not None:
        lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
        a_txt += f" (95% CI {lo[1]:.3f}–{hi[1]:.3f})"
        b_txt += f" (95% CI {lo[3]:.3f}–{hi[3]:.3f})"
        grid = band_grid(f.minima_c, at)
        ln = np.log10(boot[:, :1]) + boot[:, 1:2] * np.log10(grid)
        ld = np.log10(boot[:, 2:3]) + boot[:, 3:4] * np.log10(grid)
        q = [np.percentile(x, p, axis=0) for x in (ln, ld) for p in (2.5, 97.5)]
        f.band = (grid, *(10**x for x in q))
        f.band_label = f"approach 2: bootstrap 95% band ({len(boot)} resamples)"
    if law.n_budgets_ < 3:
        f.warnings.append(f"approach 2 has minima at only {law.n_budgets_} budgets: its exponents are a line through "
                          "2 points, with no confidence band (plan 3 or more budgets)")
    f.summary.append(("N_opt ∝ C^a (approach 2)", a_txt))
    f.summary.append(("D_opt ∝ C^b (approach 2)", b_txt))
    f.law_rows.append({"law": "approach 2 (this study)", "a (N_opt ∝ C^a)": a_txt[4:], "b (D_opt ∝ C^b)": b_txt[4:],
                       "source": f"fitted here, {law.n_budgets_} budgets"})


def bootstrap_approach2(law, n, d, c, loss, gid, resamples: int = BOOT_RESAMPLES, seed: int = BOOT_SEED):
    """Rows (k_n, a, k_d, b) of approach 2 refitted by the fitter on a seeded residual bootstrap: per budget,
    its inlier runs at their own N with loss = fitted parabola + resampled residuals (RANSAC's final fit is
    least squares on its inliers, so the centre is the fit itself). Resamples losing a budget are left out;
    None when under half succeed or fewer than 3 budgets (a line through 2 points has no spread)."""
    from scalinglab.laws.approach2 import Approach2

    ok = [(g, r) for g, r in enumerate(law.per_budget_) if "skipped" not in r]
    if len(ok) < 3:
        return None
    idx, fitted, resid = [], [], []
    for g, r in ok:
        ix = np.flatnonzero((gid == g) & law.inlier_)
        yhat = np.polyval(r["coef_n"], np.log10(n[ix]))
        k = len(ix)
        idx.append(ix), fitted.append(yhat), resid.append((loss[ix] - yhat) * np.sqrt(k / max(k - 3, 1)))
    idx = np.concatenate(idx)
    rng = np.random.default_rng(seed)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(resamples):
            y = np.concatenate([f + rng.choice(e, size=len(e), replace=True) for f, e in zip(fitted, resid)])
            try:
                b = Approach2(robust="lsq", budget_tol=law.budget_tol).fit(n[idx], d[idx], c[idx], y)
            except UserError:
                continue
            if b.n_budgets_ == len(ok):
                out.append((b.k_n_, b.a_, b.k_d_, b.b_))
    return np.array(out) if len(out) >= resamples // 2 else None


def _approach1(f: Fits, curves) -> None:
    from scalinglab.laws.approach1 import Approach1

    try:
        law = Approach1().fit_curves(curves.N, curves.C, curves.loss)
    except UserError as e:
        f.warnings.append(f"approach 1 (lower envelope of {len(curves.runs)} loss curves) not fitted: {e}")
        return
    f.envelope, f.curves = law, curves
    f.laws["approach-1 (this study)"] = law
    f.summary.append(("N_opt ∝ C^a (approach 1)", f"a = {law.a_:.3f} ({law.n_sizes_} sizes on the envelope)"))
    f.law_rows.append({"law": "approach 1 (this study)", "a (N_opt ∝ C^a)": f"{law.a_:.3f}",
                       "b (D_opt ∝ C^b)": f"{law.b_:.3f}",
                       "source": f"fitted here, envelope of {len(curves.runs)} curves"})
    if law.n_sizes_ < 3:
        f.warnings.append(f"approach 1: only {law.n_sizes_} model sizes reach the loss envelope; its exponent is "
                          "a line through very few sizes (add sizes or longer runs)")


def _approach3(f: Fits, df, progress=None) -> None:
    from scalinglab.laws.approach3 import Approach3

    if len(df) <= 5:
        f.warnings.append(f"approach 3 needs at least 6 fitted runs, this study has {len(df)}: no contour figure")
        return
    try:  # the same fitter and defaults as `scalinglab fit --approach 3` (batched L-BFGS over Hoffmann's grid)
        law = Approach3().fit(df["n"].to_numpy(float), df["d"].to_numpy(float), df["loss"].to_numpy(float),
                              progress=progress)
        law.allocate(1e20)  # raises when the fit has no compute-optimal allocation
    except UserError as e:
        f.warnings.append(f"approach 3 fit failed: {e}")
        return
    f.parametric = law
    f.laws["approach-3 (this study)"] = law
    f.parametric_text = (f"Fitted: E = {law.E_:.4g}, A = {law.A_:.4g}, B = {law.B_:.4g}, α = {law.alpha_:.4f}, "
                         f"β = {law.beta_:.4f}; compute-optimal N ∝ C^{law.a_:.3f}, D ∝ C^{law.b_:.3f} "
                         f"(Chinchilla: α = 0.34, β = 0.28; Epoch: α = 0.348, β = 0.366).")
    f.summary.append(("L = E + A/N^α + B/D^β (approach 3)", f"α = {law.alpha_:.3f}, β = {law.beta_:.3f}, "
                      f"N_opt ∝ C^{law.a_:.3f}"))
    f.law_rows.append({"law": "approach 3 (this study)", "a (N_opt ∝ C^a)": f"{law.a_:.3f}",
                       "b (D_opt ∝ C^b)": f"{law.b_:.3f}", "source": f"fitted here, {law.n_points_} runs"})
