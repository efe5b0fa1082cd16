"""The report of a study's runs (a STUDY folder or a runs CSV): fits from scalinglab.laws turned into
IsoFLOP, allocation, loss-vs-compute, contour and residual figures, tables, predictions and warnings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scalinglab.errors import UserError
from scalinglab.folders import StudyDir
from scalinglab.laws.approach2 import group_budgets
from scalinglab.report import fits as F
from scalinglab.report.figures import render
from scalinglab.report.html import Report, Section, Table, fmt
from scalinglab.report.plots import (
    allocation_figure,
    contour_figure,
    envelope_figure,
    isoflop_figure,
    loss_compute_figure,
    residuals_figure,
)
from scalinglab.report.runs import run_curves, study_epochs, study_frame

PUBLISHED_SHOWN = ("chinchilla-approach-1", "chinchilla-approach-2", "chinchilla-approach-3", "epoch-approach-3", "kaplan")


def load_frame(source: str | Path, n_col=None, d_col=None, c_col=None, loss_col=None):
    """(frame with n, d, c, loss, status[, run_id, run_dir, ...], description, is_study)."""
    from scalinglab.sweep.store import is_study

    p = Path(source)
    if p.is_dir():
        if not is_study(p):
            raise UserError(f"{p} is a folder but not a study (no {StudyDir.SETTINGS}/{StudyDir.STORE}): give a STUDY or a RUNS.csv")
        return study_frame(p), f"study {p}", True
    if not p.is_file():
        raise UserError(f"no study or runs CSV at {p}: give a STUDY folder or a RUNS.csv")
    df = F.read_runs_csv(p, n_col=n_col, d_col=d_col, c_col=c_col, loss_col=loss_col)
    return df, f"runs CSV {p}", False


def budget_count(c) -> int:
    """Budgets among the runs' C, counted as approach 2 groups them (C = 6ND of a CSV scatters around each plan)."""
    return len(np.unique(group_budgets(np.asarray(c, float))))


def runs_report(source, n_col=None, d_col=None, c_col=None, loss_col=None, max_loss=None,
                at: Sequence[float] = (), data_tokens: float | None = None, progress=None) -> Report:
    df, desc, is_study = load_frame(source, n_col, d_col, c_col, loss_col)
    rep = Report(title=f"Scaling-law report: {Path(source).name}", source=desc)
    w = rep.warnings

    status = df["status"].astype(str).to_numpy() if "status" in df else np.full(len(df), "done")
    loss = df["loss"].to_numpy(float)
    diverged = (status == "diverged") | ((status == "done") & ~np.isfinite(loss))
    done = (status == "done") & np.isfinite(loss)
    high = done & (loss > max_loss) if max_loss is not None else np.zeros(len(df), bool)
    usable = done & ~high
    if diverged.any():
        w.append(f"{int(diverged.sum())} diverged run(s) left out: " + _runs_named(df, diverged))
    if high.any():
        w.append(f"{int(high.sum())} run(s) with loss > --max-loss {max_loss:g} left out (did not converge): "
                 + _runs_named(df, high))
    pending = ~done & ~diverged
    if pending.any():
        w.append(f"{int(pending.sum())} run(s) not finished (pending/running/failed) are not in the fit")
    epochs = study_epochs(df) if is_study else (df["d"].to_numpy(float) / data_tokens if data_tokens else None)
    if epochs is not None:
        over = np.asarray(epochs, float) > 1.0
        if over.any():
            w.append(f"{int(over.sum())} run(s) read more than one epoch of their data (up to "
                     f"{np.nanmax(np.asarray(epochs, float)):.2f}); scaling laws assume fresh tokens: " + _runs_named(df, over))
    df = df.assign(used=usable, epochs=epochs if epochs is not None else np.nan)
    if usable.sum() < 3:
        raise UserError(f"only {int(usable.sum())} finished runs with a finite loss in {source}: a report needs at least 3",
                        hint="finish the sweep or loosen the loss cut", keys=("max_loss",))

    curves = None
    if is_study:  # approach 1 needs loss curves: the metric lines of the runs that count
        from scalinglab.laws.data import curves_from_study

        curves = curves_from_study(df[usable].rename(columns={"n": "params"}), desc)
    fit = F.fit_all(df[done], at, max_loss=max_loss, curves=curves, progress=progress)
    a2 = np.zeros(len(df), bool)
    a2[np.flatnonzero(done)] = fit.inlier
    df = df.assign(a2=a2 & usable, done=done)
    w += fit.warnings
    rep.summary.append(("runs", f"{len(df)} ({int(usable.sum())} fitted, {budget_count(df.c)} budgets)"))
    rep.summary += fit.summary
    rep.sections += _sections(df, fit, at)
    return rep


def _runs_named(df, mask, most: int = 8) -> str:
    sub = df[mask]
    names = [str(r["run_id"]) if "run_id" in sub and r.get("run_id") else f"N={float(r['n']):.3g}@C={float(r['c']):.2g}"
             for _, r in sub.head(most).iterrows()]
    return ", ".join(names) + (f" and {len(sub) - most} more" if len(sub) > most else "")


def _sections(df, fit: F.Fits, at: Sequence[float]) -> list[Section]:
    out = []
    used_all = df["used"].to_numpy(bool)
    if fit.parabolas:
        done = df[df.done]  # the rows approach 2 was given, in order
        fig = isoflop_figure(done.n, fit.row_budget, done.loss, fit.inlier, fit.parabolas)
        out.append(Section("IsoFLOP curves (approach 2)",
                           "Final loss against N for each budget with the parabola fitted in log10 N (RANSAC); stars "
                           "mark the minima. Hollow points are runs left out: over --max-loss (triangles on the top "
                           "edge when off the scale) or outliers of the parabola fit. D_opt comes from the same fit "
                           "in log10 D.",
                           [Table.from_records([_budget_row(r) for r in fit.budget_rows],
                                               "Minimum of each IsoFLOP parabola", left=("note",))],
                           [render(fig, "isoflop", "IsoFLOP curves: loss vs N per budget, parabolas and their minima")]))
    fitted = {name.replace("-", " ", 1): law for name, law in fit.laws.items()}
    fitted = dict(sorted(fitted.items(), key=lambda kv: ("approach 2" not in kv[0], kv[0])))
    if fitted:
        pub = {k: F.published(k) for k in PUBLISHED_SHOWN}
        cs = [*df.c, *at]
        fig = allocation_figure(fit.minima_c, fit.minima_n, fit.minima_d, fitted, fit.band, pub, at=at,
                                c_range=(min(cs) / 3, max(cs) * 3), band_label=fit.band_label,
                                envelope=fit.envelope.frontier_ if fit.envelope is not None else ())
        band = (f" The shaded band is approach 2's {fit.band_label.split(': ', 1)[1]}: per budget, the fitted "
                "parabola plus resampled residuals, refitted by the same fitter (seed 42).") if fit.band else ""
        out.append(Section("Compute-optimal N and D vs C",
                           "The IsoFLOP minima (points), the power laws fitted here (solid) and the published laws "
                           "(dashed) for comparison with your setting." + band,
                           [_laws_table(fit, pub)],
                           [render(fig, "allocation", "N_opt and D_opt vs C (log-log): study, fits and published laws")]))
    if fit.envelope is not None:
        out.append(Section("Approach 1: lower envelope of the loss curves",
                           "Each run's validation loss against training FLOPs; the black line is the lowest loss "
                           "reached at each compute. The run on it gives (N, D = C/6N) there, and a line through "
                           "those in log-log gives N_opt ∝ C^a.", [],
                           [render(envelope_figure(fit.curves, fit.envelope.frontier_), "approach1-envelope",
                                   "Approach 1: loss curves coloured by N and their lower envelope")]))
    curves = run_curves(df)
    if curves:
        fig = loss_compute_figure(curves)
        out.append(Section("Loss vs compute", "Validation loss of every run against training FLOPs; the dashed line "
                           "is the run's budget.", [],
                           [render(fig, "loss-vs-compute", "Loss vs compute per run, one panel per budget")]))
    if fit.parametric is not None:
        law = fit.parametric
        sub = df[df.used]
        pred = law.predict_loss(df.n.to_numpy(float), df.d.to_numpy(float))
        figs = [render(contour_figure(law, sub.n, sub.d, sub.loss, budgets=sorted(set(df.c))), "approach3-contours",
                       "Approach 3: iso-loss contours of the fitted L(N, D), efficient frontier in red"),
                render(residuals_figure(df.n, df.c, df.loss, pred, used_all), "approach3-residuals",
                       "Approach 3: observed minus predicted loss")]
        out.append(Section("Approach 3: parametric loss L(N, D) = E + A/N^α + B/D^β", fit.parametric_text, [], figs))
    if at:
        out.append(Section("Predictions", "N_opt, D_opt and loss at the requested budgets, from each fitted and "
                           "published law.", [_predictions_table(fit, at)]))
    out.append(Section("Runs", "", [_runs_table(df)]))
    return out


def _budget_row(r: dict) -> dict:
    row = {"budget C": fmt(r["C"]), "runs used": f"{r['n_used']} of {r['n_runs']}",
           "outliers": r.get("outliers_n", ""), "N_opt": fmt(r["n_opt"]) if "n_opt" in r else "–",
           "D_opt": fmt(r["d_opt"]) if "d_opt" in r else "–",
           "loss at N_opt": f"{r['loss_opt_n']:.4f}" if "loss_opt_n" in r else "–",
           "grid N": f"{fmt(r['range_n'][0])}–{fmt(r['range_n'][1])}" if "range_n" in r else "–"}
    notes = [r["skipped"]] if "skipped" in r else []
    off = [v.upper() for v in ("n", "d") if r.get(f"outside_{v}")]
    notes += [f"{' and '.join(off)} minimum off the sampled range"] if off else []
    row["note"] = "; ".join(notes)
    return row


def _laws_table(fit: F.Fits, pub: dict) -> Table:
    rows = [dict(r) for r in fit.law_rows]
    for name, law in pub.items():
        a = getattr(law, "a_", None)
        b = getattr(law, "b_", None)
        rows.append({"law": name, "a (N_opt ∝ C^a)": f"{a:.3f}" if a is not None else "",
                     "b (D_opt ∝ C^b)": f"{b:.3f}" if b is not None else "0.27 (D = C/6N)" if name == "kaplan" else "",
                     "source": "published"})
    return Table.from_records(rows, "Fitted and published laws", left=("law", "source"))


def _predictions_table(fit: F.Fits, at: Sequence[float]) -> Table:
    rows = []
    laws = list(fit.laws.items()) + [(k, F.published(k)) for k in PUBLISHED_SHOWN]
    for c in at:
        for name, law in laws:
            n, d = law.allocate(c)
            row = {"C": fmt(float(c)), "law": name, "N_opt": fmt(float(n)), "D_opt": fmt(float(d))}
            if name in fit.laws and hasattr(law, "predict_loss"):
                row["loss"] = f"{float(law.predict_loss(n, d)):.4f}"
            rows.append(row)
    return Table.from_records(rows, "Predicted compute-optimal allocation (loss only from laws fitted here: "
                              "published losses are in other units and data)", left=("law",))


def _runs_table(df) -> Table:
    cols = [c for c in ("run_id", "status", "d_model", "n_layers") if c in df]
    rows = []
    for _, r in df.sort_values(["c", "n"]).iterrows():
        row = {c: r[c] for c in cols}
        row.update({"N": fmt(float(r["n"])), "D": fmt(float(r["d"])), "C": fmt(float(r["c"])),
                    "loss": f"{float(r['loss']):.4f}" if np.isfinite(r["loss"]) else "–",
                    "epochs": f"{r['epochs']:.2f}" if np.isfinite(r["epochs"]) else "",
                    "in fit": ("approaches 2, 3" if r["a2"] else "approach 3 (outlier in 2)") if r["used"] else "no"})
        rows.append(row)
    return Table.from_records(rows, "All runs", left=("run_id", "status"))
