"""Report sections for external loss curves of the Perceiver AR article's experiments: the article's
plot_experiment figure (loss vs FLOPs / C_self, budget dashed at 1.0) and a table of final losses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scalinglab.report.curves import EXPERIMENTS, experiment_files, experiment_runs
from scalinglab.report.figures import render
from scalinglab.report.html import Report, Section, Table, fmt
from scalinglab.report.plots import Curve, loss_compute_figure


def experiment_section(
    folder: str | Path, experiment: str, warnings: list[str]
) -> tuple[Section, list[tuple[str, str]]]:
    exp, c_ref, runs = experiment_runs(folder, experiment)
    curves, rows = [], []
    for r in runs:
        m, y = r["model"], r["loss"]
        final = float(y[-1])
        label = f"{m.label}: $N_{{self}}$ = {r['n_self'] / 1e6:.1f}M, final loss = {final:.3f}"
        curves.append(Curve(label, r["x"], y))
        if not np.isfinite(y).all():
            warnings.append(
                f"{experiment} {m.label} ({r['file']}): loss is NaN/inf at some evaluation, the run diverged"
            )
        if r["step"][-1] + 1 < m.steps:
            warnings.append(
                f"{experiment} {m.label}: the curve stops at step {int(r['step'][-1])} of "
                f"{m.steps} planned, short of the budget"
            )
        rows.append(
            {
                "model": m.label,
                "shape": f"{m.d_model}x{m.n_layers}",
                "steps": m.steps,
                "last step": int(r["step"][-1]),
                "D_iso": fmt(float(r["tokens"])),
                "N": fmt(float(r["n"])),
                "N_self": fmt(float(r["n_self"])),
                "C": fmt(r["c"]),
                "C_self": fmt(r["c_self"]),
                "C / C_ref": f"{r['x'][-1]:.4f}",
                "final loss": f"{final:.4f}",
                "min loss": f"{np.nanmin(y):.4f}",
                "file": r["file"],
            }
        )
    finals = [float(r["loss"][-1]) for r in runs]
    best = int(np.nanargmin(finals))
    fig = loss_compute_figure(
        curves, relative=True, budget_label="$C_{self}$", xlim=exp.xlim, ylim=exp.ylim, title=f"{experiment}"
    )
    fig.axes[0].set_xlabel("FLOPs / $C_{self}$")
    fig.axes[0].set_ylabel("Loss")
    rendered = render(
        fig,
        f"{experiment}-loss-vs-compute",
        f"{experiment}: validation loss vs training FLOPs (self + cross attention) relative to the "
        f"common self-attention budget C_self = {c_ref:.3g} FLOPs (dashed). Evaluations are placed "
        "at their logged step, not evenly spaced.",
    )
    others = ", ".join(f"{v:.4f}" for i, v in enumerate(finals) if i != best)
    text = (
        f"{exp.title}; batch 80 sequences, budget set by {exp.ref.label} over {exp.ref.steps} steps. "
        f"Lowest final loss: {runs[best]['model'].label} with {finals[best]:.4f} (others {others})."
    )
    if any(r["model"] not in exp.models for r in runs):
        text += (
            "\n\nA retrained model (an update of the article's training commands) is plotted with the article's original FLOP accounting; "
            "it was sized with the corrected accounting that leaves out the output layer, so it ends short of 1.0."
        )
    table = Table.from_records(
        rows,
        caption=f"{experiment}: models, FLOP accounting (Perceiver AR, "
        "self and cross parts) and final validation losses",
        left=("model", "file"),
    )
    summary = [(f"{experiment} lowest final loss", f"{runs[best]['model'].label}: {finals[best]:.4f}")]
    return Section(f"{experiment}: loss vs compute", text, [table], [rendered]), summary


def curves_report(folder: str | Path, experiments: list[str] | None = None) -> Report:
    """A report of the article's experiments found in `folder` (all known ones if none named)."""
    folder = Path(folder)
    if not experiments:
        experiments = []
        for name in EXPERIMENTS:
            try:
                experiment_files(folder, name)
                experiments.append(name)
            except Exception:  # noqa: BLE001 - an experiment without files is simply not in this folder
                continue
        if not experiments:
            experiment_files(folder, next(iter(EXPERIMENTS)))  # raises the one-line error
    rep = Report(title="Loss vs compute: " + ", ".join(experiments), source=f"curves: {folder}")
    for name in experiments:
        section, summary = experiment_section(folder, name, rep.warnings)
        rep.sections.append(section)
        rep.summary += summary
    return rep
