"""The plots scaling-law users look at, from plain arrays: IsoFLOP parabolas, N_opt/D_opt vs C with
published laws, loss vs compute with the budget line, iso-loss contours with the frontier, residuals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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


def sci(x: float, digits: int = 2) -> str:
    """1e+15 -> $10^{15}$, 3e+15 -> $3{\times}10^{15}$ (mathtext) for legends."""
    m, e = f"{x:.{digits - 1}e}".split("e")
    m = m.rstrip("0").rstrip(".")
    return f"$10^{{{int(e)}}}$" if m == "1" else f"${m}{{\\times}}10^{{{int(e)}}}$"


def short_log_ticks(ax) -> None:
    """A log x axis spanning about a decade: labels at 1, 2, 5 x 10^k only (matplotlib's default labels
    every minor tick there, and they overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: sci(x, 1)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def isoflop_figure(
    N, budget, loss, used, parabolas: Sequence[Parabola], title: str = "IsoFLOP curves", max_loss: float | None = None
):
    """Loss vs N per budget: used runs filled; runs left out hollow, triangles for those over `max_loss` (did not
    converge) and circles for the parabola fit's outliers; points above the plotted loss range sit on its top edge.
    The fitted parabola in log N, its minimum marked with a star."""
    N, budget, loss, used = (np.asarray(a) for a in (N, budget, loss, used))
    N, budget, loss, used = N.astype(float), budget.astype(float), loss.astype(float), used.astype(bool)
    budgets = np.unique(budget)
    colors = dict(zip(budgets, _colors(len(budgets))))
    fig = new_figure(7.6, 4.6)
    ax = fig.add_subplot()
    lo, hi = (
        (float(loss[used].min()), float(loss[used].max())) if used.any() else (float(loss.min()), float(loss.max()))
    )
    stars = [p.loss_opt for p in parabolas if np.isfinite(p.loss_opt)]
    lo = min([lo, *stars])
    pad = 0.06 * (hi - lo or 1.0)
    y0, y1 = lo - pad, hi + 2 * pad
    over = ~used & (loss > max_loss) if max_loss is not None else np.zeros(len(loss), bool)
    outlier = ~used & ~over
    shown = np.minimum(loss, y1)  # off the scale: on the top edge
    for b in budgets:
        m = budget == b
        col = colors[b]
        ax.scatter(N[m & used], loss[m & used], color=col, s=24, zorder=3, label=f"C = {sci(b)}")
        for sel, marker in ((m & outlier, "o"), (m & over, "^")):
            ax.scatter(
                N[sel],
                shown[sel],
                marker=marker,
                facecolors="none",
                edgecolors=col,
                s=30,
                lw=1.1,
                zorder=3,
                clip_on=False,
            )
    for p in parabolas:
        col = colors.get(p.budget, "black")
        x0, x1 = np.log10(p.n_range[0]) - 0.05, np.log10(p.n_range[1]) + 0.05
        xs = np.linspace(x0, x1, 100)
        ax.plot(10**xs, np.polyval(p.coef, xs), color=col, lw=1.3)
        xv = np.log10(p.n_opt) if p.n_opt > 0 else np.nan
        for a, b in ((xv, x0), (x1, xv)):  # a vertex off the sampled range: the extrapolated arc dashed
            if a < b:
                xe = np.linspace(a, b, 50)
                ax.plot(10**xe, np.polyval(p.coef, xe), color=col, lw=1.0, ls="--")
        if np.isfinite(p.n_opt) and p.n_opt > 0:
            ax.plot([p.n_opt], [p.loss_opt], marker="*", ms=13, color=col, mec="black", mew=0.7, zorder=5)
    if outlier.any():
        ax.scatter(
            [],
            [],
            facecolors="none",
            edgecolors="gray",
            s=30,
            label=f"left out: parabola outlier ({int(outlier.sum())})",
        )
    if over.any():
        ax.scatter(
            [],
            [],
            marker="^",
            facecolors="none",
            edgecolors="gray",
            s=30,
            label=f"left out: loss > {max_loss:g}, --max-loss ({int(over.sum())})",
        )
    if ((~used) & (loss > y1)).any():
        ax.plot([], [], ls="none", label="(off the scale: on the top edge)")
    ax.plot([], [], marker="*", ms=11, ls="none", color="white", mec="black", label="parabola minimum")
    log_axes(ax, y=False)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final loss")
    ax.set_title(title, pad=10)  # room for the off-scale triangles on the top edge
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


FITTED_COLORS = {"approach 2": PALETTE[0], "approach 1": PALETTE[2], "approach 3": PALETTE[4]}
PUBLISHED_COLORS = (PALETTE[1], PALETTE[3], PALETTE[5], PALETTE[6], PALETTE[7])


def allocation_figure(
    C,
    N_opt,
    D_opt,
    fitted: dict[str, Any] | None = None,
    band=None,
    published: dict[str, Any] | None = None,
    at: Sequence[float] = (),
    c_range: tuple[float, float] | None = None,
    band_label: str = "bootstrap 95% band",
    envelope: Sequence[dict] = (),
):
    """N_opt and D_opt vs C, log-log: IsoFLOP minima, fitted laws (the first with its bootstrap band), approach 1's
    envelope points, published laws dashed, --at budgets dotted. band: (C_grid, n_lo, n_hi, d_lo, d_hi) or None."""
    C, N_opt, D_opt = (np.asarray(a, dtype=float) for a in (C, N_opt, D_opt))
    cs = [*C[np.isfinite(C)], *at, *(r["C"] for r in envelope)]
    lo, hi = c_range or (min(cs) / 3, max(cs) * 3)
    grid = np.logspace(np.log10(lo), np.log10(hi), 80)
    fig = new_figure(10.0, 5.4)
    axes = fig.subplots(1, 2)
    for k, (ax, y, what) in enumerate(zip(axes, (N_opt, D_opt), ("N_opt (parameters)", "D_opt (tokens)"))):
        if band is not None:
            ax.fill_between(
                band[0], band[1 + 2 * k], band[2 + 2 * k], color=PALETTE[0], alpha=0.18, lw=0, label=band_label
            )
        for name, law in (fitted or {}).items():
            col = next((c for key, c in FITTED_COLORS.items() if key in name), "black")
            ax.plot(grid, law.allocate(grid)[k], color=col, lw=1.8, label=name)
        if envelope:
            # one marker per run on the envelope, at the geometric middle of the compute it leads: the envelope's
            # many grid points share each run's N and would otherwise draw as thick bars
            ec = np.array([r["C"] for r in envelope], float)
            ev = np.array([r["N" if k == 0 else "D"] for r in envelope], float)
            n_of = np.array([r["N"] for r in envelope], float)
            cuts = np.flatnonzero(np.diff(n_of) != 0) + 1
            segs = [(c, v) for c, v in zip(np.split(ec, cuts), np.split(ev, cuts)) if len(c)]
            mc = np.array([np.sqrt(c.min() * c.max()) for c, _ in segs])
            mv = np.array([np.exp(np.log(v).mean()) for _, v in segs])
            ax.plot(
                mc,
                mv,
                color=FITTED_COLORS["approach 1"],
                lw=0,
                marker="D",
                ms=4,
                mfc="none",
                mew=1.0,
                label="approach 1: runs on the envelope",
            )
        if len(C):
            ax.scatter(C, y, color="black", s=26, zorder=4, label="IsoFLOP minima (approach 2)")
        for j, (name, law) in enumerate((published or {}).items()):
            ax.plot(
                grid,
                law.allocate(grid)[k],
                ls="--",
                lw=1.1,
                color=PUBLISHED_COLORS[j % len(PUBLISHED_COLORS)],
                label=f"{name} (published)",
            )
        for i, c in enumerate(at):
            ax.axvline(c, ls=":", lw=0.9, color="gray", label="--at budgets" if i == 0 else None)
        log_axes(ax)
        ax.set_xlim(lo, hi)
        ax.set_xlabel("compute C (FLOPs)")
        ax.set_ylabel(what)
        ax.set_title(f"compute-optimal {what.split()[0]}", fontsize=10)
    h, lab = axes[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return fig


def envelope_figure(
    N, C: Sequence, L: Sequence, frontier: Sequence[dict], title: str = "Approach 1: lower envelope of the loss curves"
):
    """Every run's loss vs FLOPs coloured by its N (log colour scale), the envelope (lowest loss at each
    compute, approach 1) as a black line over them."""
    import matplotlib

    Ns = np.asarray(N, float)
    norm = matplotlib.colors.LogNorm(Ns.min(), Ns.max() if Ns.max() > Ns.min() else Ns.min() * 1.01)
    cmap = matplotlib.colormaps["viridis"]
    fig = new_figure(7.6, 4.6)
    ax = fig.add_subplot()
    for n, c, l in zip(Ns, C, L):
        ax.plot(c, l, color=cmap(norm(n)), lw=0.9, alpha=0.85)
    ec = np.array([r["C"] for r in frontier])
    el = np.array([r["loss"] for r in frontier])
    ax.plot(ec, el, color="black", lw=1.6, zorder=3, label="lower envelope (approach 1)")
    ax.set_xscale("log")
    ax.grid(True, which="major", alpha=0.3)
    allv = np.concatenate([np.asarray(l, float) for l in L])
    top = float(np.percentile(allv, 90))
    bottom = float(el.min()) if len(el) else float(allv.min())
    ax.set_ylim(bottom - 0.05 * (top - bottom or 1.0), top)
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label="parameters N")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("validation loss")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def loss_compute_figure(
    curves: Sequence[Curve],
    relative: bool = False,
    budget_label: str = "budget",
    xlim=None,
    ylim=None,
    title: str = "",
    max_panels: int = 6,
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
            short_log_ticks(ax)
            ax.set_xlabel("training FLOPs")
            if b is not None:
                ax.set_title(f"C = {sci(b)}", fontsize=10)
        ax.set_ylabel("validation loss")
        if xlim:
            ax.set_xlim(*xlim)
        if ylim:
            ax.set_ylim(*ylim)
        ax.legend(fontsize=7 if len(cs) <= 6 else 6)
    for ax in axes[len(groups) :]:
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
    sc = ax.scatter(
        N,
        D,
        c=loss,
        cmap="viridis",
        s=22,
        edgecolors="black",
        linewidths=0.4,
        zorder=3,
        vmin=cs.levels.min(),
        vmax=cs.levels.max(),
    )
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
        ax.scatter(N[m & used], r[m & used], color=colors[b], s=20, label=f"C = {sci(b)}")
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


def backtest_figure(rows: Sequence[dict], title: str = "Backtest: predicted vs observed at held-out budgets"):
    """Two panels against the held-out budget C: N_opt and loss, observed (black) and each approach's prediction
    with its interval (error bars), approaches side by side."""
    fig = new_figure(9.0, 3.8)
    budgets = sorted({r["budget"] for r in rows})
    approaches = list(dict.fromkeys(r["approach"] for r in rows))
    colors = dict(zip(approaches, _colors(len(approaches))))
    for k, (what, label) in enumerate((("n_opt", "N_opt"), ("loss", "loss at the optimum"))):
        ax = fig.add_subplot(1, 2, k + 1)
        obs = {r["budget"]: r[f"{what}_obs"] for r in rows}
        ax.scatter(budgets, [obs[b] for b in budgets], color="black", marker="*", s=80, zorder=3, label="observed")
        for j, ap in enumerate(approaches):
            pts = [r for r in rows if r["approach"] == ap and r[f"{what}_pred"] is not None]
            if not pts:
                continue
            shift = 1.06 ** (j - (len(approaches) - 1) / 2)  # side by side on the log axis
            x = np.array([r["budget"] for r in pts]) * shift
            y = np.array([r[f"{what}_pred"] for r in pts], float)
            lo = np.array([np.nan if r[f"{what}_lo"] is None else r[f"{what}_lo"] for r in pts], float)
            hi = np.array([np.nan if r[f"{what}_hi"] is None else r[f"{what}_hi"] for r in pts], float)
            err = np.vstack([np.where(np.isfinite(lo), y - lo, 0.0), np.where(np.isfinite(hi), hi - y, 0.0)])
            ax.errorbar(x, y, yerr=err, fmt="o", color=colors[ap], capsize=3, label=f"approach {ap}")
        log_axes(ax, y=(what == "n_opt"))
        ax.set_xlim(min(budgets) / 1.6, max(budgets) * 1.6)  # one budget alone would give a sliver of an axis
        ax.set_xticks(budgets, [sci(b) for b in budgets])
        ax.minorticks_off()
        ax.set_xlabel("held-out budget C (FLOPs)")
        ax.set_ylabel(label)
        if k == 0:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    return fig
