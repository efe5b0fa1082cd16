"""The tuning figure: loss against learning rate per (shape, budget) point and batch size, and the fitted laws
lr*(N) and batch*(D) (or of C) with their bootstrap intervals, from `fit hparams`."""

from __future__ import annotations

import numpy as np

from scalinglab.report.figures import PALETTE, Rendered, log_axes, new_figure, render


def hparams_figure(law, runs: list[dict]) -> Rendered:
    """Three panels: loss vs lr (one line per point and batch, the optimum starred), lr* vs N or C, batch* vs D or C."""
    fig = new_figure(13.5, 4.2)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    keys = sorted({(r["budget"], r["params"], r["shape"]) for r in runs})
    one_lr = all(len({r["lr"] for r in runs if (r["budget"], r["shape"]) == (c, s)}) == 1 for c, _, s in keys)
    for i, (c, _n, shape) in enumerate(keys):
        col = PALETTE[i % len(PALETTE)]
        pts = [r for r in runs if r["budget"] == c and r["shape"] == shape and np.isfinite(r["loss"])]
        p = next((p for p in law.points if p.budget == c and p.shape == shape), None)
        if one_lr:  # the lr followed a law (one per shape): loss against the batch size instead
            rs = sorted(pts, key=lambda r: r["batch_size"])
            ax1.plot(
                [r["batch_size"] for r in rs],
                [r["loss"] for r in rs],
                "o-",
                color=col,
                ms=3,
                lw=1,
                label=f"{shape} C={c:.0e}",
            )
            if p is not None:
                ax1.plot([p.batch], [p.loss], "*", color=col, ms=11, mec="k")
            continue
        for j, bs in enumerate(sorted({r["batch_size"] for r in pts})):
            rs = sorted((r for r in pts if r["batch_size"] == bs), key=lambda r: r["lr"])
            ax1.plot(
                [r["lr"] for r in rs],
                [r["loss"] for r in rs],
                "o-",
                color=col,
                alpha=0.35 + 0.65 * (j + 1) / 4,
                ms=3,
                lw=1,
                label=f"{shape} C={c:.0e} b={bs}",
            )
        if p is not None:
            ax1.plot([p.lr], [p.loss], "*", color=col, ms=11, mec="k")
    log_axes(ax1, y=False)
    if one_lr:  # powers of two, labelled as plain numbers
        bss = sorted({r["batch_size"] for r in runs})
        ax1.set_xticks(bss, [str(b) for b in bss])
        ax1.set_xticks([], minor=True)
    ax1.set_xlabel("batch size (sequences)" if one_lr else "peak learning rate")
    ax1.set_ylabel("final validation loss")
    ax1.set_title(f"loss vs {'batch' if one_lr else 'lr'} (star: interpolated optimum)")
    ax1.legend(fontsize=6, ncol=2)
    for ax, lw, ys, title in (
        (ax2, law.lr_law, [p.lr for p in law.points], "lr*"),
        (ax3, law.batch_law, [p.batch_tokens for p in law.points], "batch* (tokens)"),
    ):
        xs = np.array([{"N": p.params, "D": p.tokens}.get(lw.var, p.budget) for p in law.points], float)
        ax.plot(xs, ys, "o", color=PALETTE[0])
        grid = np.geomspace(xs.min() / 1.5, xs.max() * 1.5, 50)
        ax.plot(grid, lw.coef * grid**lw.exp, "-", color=PALETTE[1], label=f"{title} = {lw}")
        ci = lw.ci
        if "coef" in ci and "exp" in ci:
            ax.text(
                0.03,
                0.04,
                f"exponent {lw.exp:.3f} ({ci['exp'][0]:.3f}, {ci['exp'][1]:.3f})",
                transform=ax.transAxes,
                fontsize=8,
            )
        log_axes(ax)
        ax.set_xlabel({"N": "N (parameters)", "D": "D (tokens per run)"}.get(lw.var, "C (FLOPs)"))
        ax.set_ylabel(title)
        ax.legend(fontsize=7)
        ax.set_title(f"{title} of {lw.var}")
    return render(fig, "hparams", "Tuning grid and the fitted hyperparameter laws")
