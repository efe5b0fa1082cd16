"""The report's bridge to scalinglab.laws: runs the approach 2 and 3 fitters there (no fitting here) and
packs their results into what the figures and tables need (`Fits`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from scalinglab.report.plots import Parabola


@dataclass
class Fits:
    parabolas: list[Parabola] = field(default_factory=list)
    runs_per_budget: list[int] = field(default_factory=list)
    inlier: np.ndarray | None = None  # over the fitted rows: False = dropped by the fitter (RANSAC)
    minima_c: np.ndarray = field(default_factory=lambda: np.array([]))
    minima_n: np.ndarray = field(default_factory=lambda: np.array([]))
    minima_d: np.ndarray = field(default_factory=lambda: np.array([]))
    allocation: Any = None  # law with allocate(C)
    allocation_label: str = "fit"
    band: tuple | None = None  # (C grid, n_lo, n_hi, d_lo, d_hi)
    parametric: Any = None  # law with predict_loss and allocate
    parametric_text: str = ""
    laws: dict[str, Any] = field(default_factory=dict)  # fitted laws by name, for predictions
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


def fit_all(df, at: Sequence[float] = ()) -> Fits:
    """Approach 2 (IsoFLOP parabolas, power law of the minima) and approach 3 (parametric L(N, D)) on the
    fitted rows of `df` (n, d, c = budget, loss), with the fitters in scalinglab.laws."""
    f = Fits()
    _approach2(f, df, at)
    _approach3(f, df)
    return f


def _approach2(f: Fits, df, at) -> None:
    try:
        from scalinglab.laws.approach2 import Approach2
    except ImportError:
        f.warnings.append("approach 2 (IsoFLOP) fitter is not in this build of scalinglab.laws: no IsoFLOP figure")
        return
    law = Approach2().fit(df["n"].to_numpy(float), df["c"].to_numpy(float), df["loss"].to_numpy(float))
    f.allocation, f.allocation_label = law, "approach 2 fit"
    f.laws["approach-2 (this study)"] = law
    for b in getattr(law, "budgets_", []):
        f.parabolas.append(Parabola(b["budget"], b["coef"], b["n_opt"], b["loss_opt"], (b["n_min"], b["n_max"])))
        f.runs_per_budget.append(b.get("runs", 0))
        if not b["n_min"] <= b["n_opt"] <= b["n_max"]:
            f.warnings.append(f"IsoFLOP minimum at C = {b['budget']:.3g} is off the grid of N "
                              f"({b['n_opt']:.3g} outside {b['n_min']:.3g}–{b['n_max']:.3g}): add runs on that side")
    f.inlier = np.asarray(getattr(law, "inlier_", np.ones(len(df), bool)), bool)
    f.minima_c = np.array([p.budget for p in f.parabolas])
    f.minima_n = np.array([p.n_opt for p in f.parabolas])
    f.minima_d = f.minima_c / (6 * f.minima_n)
    ci = getattr(law, "ci_", None) or {}
    a_txt = f"a = {law.a_:.3f}" + (f" (95% CI {ci['a'][0]:.3f}–{ci['a'][1]:.3f})" if "a" in ci else "")
    f.summary.append(("N_opt ∝ C^a (approach 2)", a_txt))
    f.summary.append(("D_opt ∝ C^b (approach 2)", f"b = {law.b_:.3f}"))
    f.law_rows.append({"law": "approach 2 (this study)", "a (N_opt ∝ C^a)": f"{law.a_:.3f}",
                       "b (D_opt ∝ C^b)": f"{law.b_:.3f}", "source": "fitted here"})
    if hasattr(law, "allocation_band"):
        grid = band_grid(f.minima_c, at)
        f.band = (grid, *law.allocation_band(grid))


def _approach3(f: Fits, df) -> None:
    from scalinglab.errors import UserError
    from scalinglab.laws.approach3 import Approach3

    if len(df) <= 5:
        f.warnings.append(f"approach 3 needs at least 6 fitted runs, this study has {len(df)}: no contour figure")
        return
    try:
        law = Approach3().fit(df["n"].to_numpy(float), df["d"].to_numpy(float), df["loss"].to_numpy(float))
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
                       "b (D_opt ∝ C^b)": f"{law.b_:.3f}", "source": "fitted here"})
