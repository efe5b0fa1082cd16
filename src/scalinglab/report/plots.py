"""The plots scaling-law users look at, from plain arrays: IsoFLOP parabolas, N_opt/D_opt vs C with
published laws, loss vs compute with the budget line, iso-loss contours with the frontier, residuals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from scalinglab.report.figures import PALETTE, log_axes, new_figure


@dataclass
class Parabola:
    """One budget's IsoFLOP fit: loss = c0 + c1 x + c2 x^2 with x = log10 N (numpy.polyval order reversed)."""

    budget: float
    coef: Sequence[float]  # highest power first, as numpy.polyfit returns
    n_opt: float
    loss_opt: float
    n_range: tuple[float, float]


@dataclass
class Curve:
    """A loss curve: x (FLOPs, or FLOPs relative to a budget), y (loss)."""

    label: str
    x: np.ndarray
    y: np.ndarray
    budget: float | None = None
    style: dict[str, Any] = field(default_factory=dict)


def _colors(n: int) -> list[str]:
    if n <= len(PALETTE):
        return list(PALETTE[:n])
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [matplotlib.colors.to_hex(cmap(i / max(1, n - 1))) for i in range(n)]


def isoflop_figure(N, C, loss, used, parabolas: Sequence[Parabola], title: str = "IsoFLOP curves"):
    """Loss vs N per budget: used runs filled, dropped runs hollow, fitted parabola, minimum marked."""
    N, C, loss, used = (np.asarray(a) for a in (N, C, loss, used))
    used = used.astype(bool)
    budgets = np.unique(C)
    colors = dict(zip(budgets, _colors(len(budgets))))
    fig = new_figure(7.0, 4.6)
    ax = fig.add_subplot()
    for b in budgets:
        m = C == b
        col = colors[b]
        ax.scatter(N[m & used], loss[m & used], color=col, s=22, zorder=3, label=f"C = {b:.2g}")
        ax.scatter(N[m & ~used], loss[m & ~used], facecolors="none", edgecolors=col, s=26, zorder=3)
    for p in parabolas:
        col = colors.get(p.budget, "black")
        lo, hi = np.log10(p.n_range[0]) - 0.05, np.log10(p.n_range[1]) + 0.05
        xs = np.linspace(lo, hi, 100)
        ax.plot(10**xs, np.polyval(p.coef, xs), color=col, lw=1.2)
        if np.isfinite(p.n_opt) and p.n_opt > 0:
            ax.plot([p.n_opt], [p.loss_opt], marker="*", ms=11, color=col, mec="black", mew=0.6, zorder=4)
    if (~used).any():
        ax.scatter([], [], facecolors="none", edgecolors="gray", s=26, label="dropped")
    ax.scatter([], [], marker="*", s=90, color="white", edgecolors="black", label="minimum")
    log_axes(ax, y=False)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final loss")
    ax.set_title(title)
    if used.any():  # keep the y range on the runs that count, not on diverged ones
        lo, hi = float(loss[used].min()), float(loss[used].max())
        pad = 0.08 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + 3 * pad)
    ax.legend(fontsize=7, ncols=2, loc="upper right")
    return fig


def allocation_figure(
    C, N_opt, D_opt, fitted=None, band=None, published: dict[str, Any] | None = None, at: Sequence[float] = (),
    c_range: tuple[float, float] | None = None, fitted_label: str = "fit",
):
    """N_opt and D_opt vs C, log-log: study points, fitted law with its bootstrap band, published laws.

    band: (C_grid, n_lo, n_hi, d_lo, d_hi) or None. published: {name: law with allocate(C)}."""
    C, N_opt, D_opt = (np.asarray(a, dtype=float) for a in (C, N_opt, D_opt))
    cs = [*C[np.isfinite(C)], *at]
    lo, hi = c_range or (min(cs) / 3, max(cs) * 3)
    grid = np.logspace(np.log10(lo), np.log10(hi), 80)
    fig = new_figure(10.0, 4.4)
    axes = fig.subplots(1, 2)
    for k, (ax, y, what) in enumerate(zip(axes, (N_opt, D_opt), ("N_opt (parameters)", "D_opt (tokens)"))):
        if band is not None:
            ax.fill_between(band[0], band[1 + 2 * k], band[2 + 2 * k], color=PALETTE[0], alpha=0.18, lw=0,
                            label="bootstrap 95% band")
        if fitted is not None:
            ax.plot(grid, fitted.allocate(grid)[k], color=PALETTE[0], lw=1.8, label=fitted_label)
        ax.scatter(C, y, color="black", s=24, zorder=4, label="study minima")
        for j, (name, law) in enumerate((published or {}).items()):
            ax.plot(grid, law.allocate(grid)[k], ls="--", lw=1.1, color=PALETTE[(j + 1) % len(PALETTE)], label=name)
        for c in at:
            ax.axvline(c, ls=":", lw=0.8, color="gray")
        log_axes(ax)
        ax.set_xlabel("compute C (FLOPs)")
        ax.set_ylabel(what)
    axes[0].legend(fontsize=7)
    return fig


def loss_compute_figure(
    curves: Sequence[Curve], relative: bool = False, budget_label: str = "budget", xlim=None, ylim=None,
    title: str = "", max_panels: int = 6,
):
    """Loss vs compute for every run, the budget a vertical dashed line (the Perceiver AR article's
    plot_experiment when `relative`: x = FLOPs / budget, one panel, the budget at 1.0)."""
    if relative:
        groups = [(1.0, list(curves))]
    else:
        budgets = sorted({c.budget for c in curves if c.budget is not None})
        groups = [(b, [c for c in curves if c.budget == b]) for b in budgets[-max_panels:]]
        if not groups:
            groups = [(None, list(curves))]
    ncol = min(3, len(groups))
    nrow = -(-len(groups) // ncol)
    fig = new_figure(6.8 if ncol == 1 else 4.2 * ncol, 4.6 if nrow == 1 else 3.4 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    for ax, (b, cs) in zip(axes, groups):
        for i, c in enumerate(cs):
            ax.plot(c.x, c.y, color=_colors(len(cs))[i], label=c.label, **c.style)
        if b is not None:
            ax.axvline(b, ls="--", lw=0.8, c="black", label=budget_label)
        ax.grid(True, alpha=0.3)
        if relative:
            ax.set_xlabel(f"FLOPs / {budget_label}")
        else:
            ax.set_xscale("log")
            ax.set_xlabel("training FLOPs")
            if b is not None:
                ax.set_title(f"C = {b:.2g}", fontsize=10)
        ax.set_ylabel("validation loss")
        if xlim:
            ax.set_xlim(*xlim)
        if ylim:
            ax.set_ylim(*ylim)
        ax.legend(fontsize=7 if len(cs) <= 6 else 6)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def contour_figure(law, N, D, loss, budgets: Sequence[float] = (), title: str = "Approach 3: iso-loss contours"):
    """Iso-loss contours of law.predict_loss over (N, D), the efficient frontier law.allocate(C),
    iso-FLOP lines C = 6ND for the budgets, and the runs coloured by their loss."""
    N, D, loss = (np.asarray(a, dtype=float) for a in (N, D, loss))
    n_lo, n_hi = np.log10(N.min()) - 0.5, np.log10(N.max()) + 0.5
    d_lo, d_hi = np.log10(D.min()) - 0.5, np.log10(D.max()) + 0.5
    gn, gd = np.meshgrid(np.logspace(n_lo, n_hi, 160), np.logspace(d_lo, d_hi, 160))
    z = law.predict_loss(gn, gd)
    fig = new_figure(7.0, 5.0)
    ax = fig.add_subplot()
    levels = np.quantile(z[np.isfinite(z)], np.linspace(0.02, 0.9, 14))
    cs = ax.contour(gn, gd, z, levels=np.unique(levels), cmap="viridis", linewidths=0.9)
    ax.clabel(cs, fontsize=6, fmt="%.3g")
    sc = ax.scatter(N, D, c=loss, cmap="viridis", s=22, edgecolors="black", linewidths=0.4, zorder=3,
                    vmin=cs.levels.min(), vmax=cs.levels.max())
    fig.colorbar(sc, ax=ax, label="loss")
    c_lo, c_hi = 6 * 10 ** (n_lo + d_lo), 6 * 10 ** (n_hi + d_hi)
    cg = np.logspace(np.log10(c_lo), np.log10(c_hi), 200)
    nf, df = law.allocate(cg)
    ax.plot(nf, df, color="red", lw=1.8, label="efficient frontier")
    xs = np.logspace(n_lo, n_hi, 50)
    for i, b in enumerate(budgets):
        ax.plot(xs, b / (6 * xs), ls=":", lw=0.8, color="gray", label="C = 6ND (budgets)" if i == 0 else None)
    log_axes(ax)
    ax.set_xlim(10**n_lo, 10**n_hi)
    ax.set_ylim(10**d_lo, 10**d_hi)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("tokens D")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")
    return fig


def residuals_figure(N, C, loss, predicted, used=None, title: str = "Approach 3: residuals"):
    """Observed minus predicted loss vs N, coloured by budget (dropped runs hollow)."""
    N, C, loss, predicted = (np.asarray(a, dtype=float) for a in (N, C, loss, predicted))
    used = np.ones(len(N), bool) if used is None else np.asarray(used, bool)
    r = loss - predicted
    budgets = np.unique(C)
    colors = dict(zip(budgets, _colors(len(budgets))))
    fig = new_figure(7.0, 4.0)
    ax = fig.add_subplot()
    for b in budgets:
        m = C == b
        ax.scatter(N[m & used], r[m & used], color=colors[b], s=20, label=f"C = {b:.2g}")
        ax.scatter(N[m & ~used], r[m & ~used], facecolors="none", edgecolors=colors[b], s=22)
    ax.axhline(0, color="black", lw=0.8)
    log_axes(ax, y=False)
    if used.any():
        span = float(np.abs(r[used]).max()) * 1.3 or 0.1
        ax.set_ylim(-span, span)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("observed − predicted loss")
    ax.set_title(title)
    ax.legend(fontsize=7, ncols=2)
    return fig
