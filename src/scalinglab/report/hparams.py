"""The tuning figure: loss against learning rate per (shape, budget) point and batch size, and the fitted laws
lr*(N) and batch*(C) with their bootstrap intervals, from `fit hparams`."""

from __future__ import annotations

import numpy as np

from scalinglab.report.figures import PALETTE, Rendered, log_axes, new_figure, render


def hparams_figure(law, runs: list[dict]) -> Rendered:
    """Three panels: loss vs lr (one line per point and batch, the optimum starred), lr* vs N or C, batch* vs C."""
    fig = new_figure(13.5, 4.2)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    keys = sorted({(r["budget"], r["params"], r["shape"]) for r in runs})
    for i, (c, _n, shape) in enumerate(keys):
        col = PALETTE[i % len(PALETTE)]
        pts = [r for r in runs if r["budget"] == c and r["shape"] == shape and np.isfinite(r["loss"])]
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
        p = next((p for p in law.points if p.budget == c and p.shape == shape), None)
        if p is not None:
            ax1.plot([p.lr], [p.loss], "*", color=col, ms=11, mec="k")
    log_axes(ax1, y=False)
    ax1.set_xlabel("peak learning rate")
    ax1.set_ylabel("final validation loss")
    ax1.set_title("loss vs lr (star: interpolated optimum)")
    ax1.legend(fontsize=6, ncol=2)
    for ax, lw, ys, title in (
        (ax2, law.lr_law, [p.lr for p in law.points], "lr*"),
        (ax3, law.batch_law, [p.batch_tokens for p in law.points], "batch* (tokens)"),
    ):
        xs = np.array([p.params if lw.var == "N" else p.budget for p in law.points], float)
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
        ax.set_xlabel("N (parameters)" if lw.var == "N" else "C (FLOPs)")
        ax.set_ylabel(title)
        ax.legend(fontsize=7)
        ax.set_title(f"{title} of {lw.var}")
    return render(fig, "hparams", "Tuning grid and the fitted hyperparameter laws")
