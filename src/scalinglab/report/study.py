"""The report of a study's fit: renders a StudyFit (scalinglab.analysis; the report never fits) as IsoFLOP,
allocation, envelope, loss-vs-compute, contour and residual figures, tables, predictions and warnings."""

from __future__ import annotations

import math

import numpy as np

from scalinglab.analysis import StudyFit
from scalinglab.errors import UserError
from scalinglab.fmt import sig
from scalinglab.laws.approach2 import group_budgets
from scalinglab.laws.published import get_law
from scalinglab.report.figures import render
from scalinglab.report.html import Report, Section, Table, fmt
from scalinglab.report.plots import (
    Curve,
    Parabola,
    allocation_figure,
    contour_figure,
    envelope_figure,
    isoflop_figure,
    loss_compute_figure,
    residuals_figure,
)

PUBLISHED_SHOWN = (
    "chinchilla-approach-1",
    "chinchilla-approach-2",
    "chinchilla-approach-3",
    "epoch-approach-3",
    "kaplan",
)


def check_reportable(runs, max_loss: float | None) -> None:
    """A report needs at least 3 finished runs under max_loss (raise before any fitting)."""
    ok = runs.done & ((runs.loss <= max_loss) if max_loss is not None else True)
    if ok.sum() < 3:
        raise UserError(
            f"only {int(ok.sum())} finished runs with a finite loss in {runs.source}: a report needs at least 3",
            hint="finish the sweep or loosen the loss cut",
            keys=("max_loss",),
        )


def budget_count(c, tol: float = 0.05) -> int:
    """Budgets among the runs' C, counted as approach 2 groups them (C = 6ND of a CSV scatters around each plan)."""
    c = np.asarray(c, float)
    return int(len(np.unique(group_budgets(c, tol)))) if len(c) else 0


def study_epochs(runs) -> np.ndarray:
    """Epochs of its data each run of a study read (NaN where its config or data is gone)."""
    from scalinglab.data.loader import TokenData
    from scalinglab.folders import RunDir

    cache: dict[str, object] = {}
    out = []
    for run_dir, tokens in zip(runs.info.get("run_dir", []), runs.D):
        try:
            spec = RunDir(str(run_dir)).read_spec()
            if spec.data not in cache:
                cache[spec.data] = TokenData(spec.data)
            out.append(float(cache[spec.data].epochs(float(tokens), spec.shape.seq_len, spec.shape.latents)))
        except Exception:  # noqa: BLE001 - a missing config/data only loses this warning, never the report
            out.append(math.nan)
    return np.array(out, float) if out else np.full(len(runs), np.nan)


def study_report(fit: StudyFit, title: str, data_tokens: float | None = None, backtest=None) -> Report:
    """The HTML report of `fit` (its runs, laws, intervals and warnings), and of a `backtest`
    (scalinglab.analysis.Backtest) when given."""
    runs, opts = fit.runs, fit.options
    rep = Report(title=title, source=runs.source)
    w = rep.warnings
    status = runs.status
    done = runs.done
    diverged = (status == "diverged") | ((status == "done") & ~done)
    high = done & (runs.loss > opts.max_loss) if opts.max_loss is not None else np.zeros(len(runs), bool)
    usable = done & ~high
    if diverged.any():
        w.append(f"{int(diverged.sum())} diverged run(s) left out: " + _runs_named(runs, diverged))
    if high.any():
        w.append(
            f"{int(high.sum())} run(s) with loss > --max-loss {opts.max_loss:g} left out (did not converge): "
            + _runs_named(runs, high)
        )
    pending = ~done & ~diverged
    if pending.any():
        w.append(f"{int(pending.sum())} run(s) not finished (pending/running/failed) are not in the fit")
    epochs = study_epochs(runs) if "run_dir" in runs.info else (runs.D / data_tokens if data_tokens else None)
    if epochs is not None:
        over = np.asarray(epochs, float) > 1.0
        if over.any():
            w.append(
                f"{int(over.sum())} run(s) read more than one epoch of their data (up to "
                f"{np.nanmax(epochs):.2f}); scaling laws assume fresh tokens: " + _runs_named(runs, over)
            )
    w += list(fit.warnings) + [f"approach {k} not fitted: {v}" for k, v in fit.skipped.items()]
    rep.summary.append(
        ("runs", f"{len(runs)} ({int(usable.sum())} fitted, {budget_count(runs.budget, opts.budget_tol)} budgets)")
    )
    rep.summary += fit.summary()
    rep.sections += _sections(fit, usable, np.full(len(runs), np.nan) if epochs is None else np.asarray(epochs, float))
    if backtest is not None:
        rep.sections.append(backtest_section(backtest))
    return rep


def backtest_section(bt) -> Section:
    """Predicted vs observed at the held-out budgets: a table of the rows and the figure."""
    from scalinglab.report.plots import backtest_figure

    rows = [r.to_dict() for r in bt.rows]
    pct = f"{100 * bt.fit.options.ci:g}%"

    def rng(lo, hi, spec):
        return "" if lo is None else f"{format(lo, spec)}–{format(hi, spec)}"

    table = [
        {
            "budget C": fmt(r["budget"]),
            "approach": r["approach"],
            "N_opt pred": fmt(r["n_opt_pred"]) if r["n_opt_pred"] else "–",
            f"N_opt {pct}": rng(r["n_opt_lo"], r["n_opt_hi"], ".3g"),
            "N_opt obs": fmt(r["n_opt_obs"]),
            "loss pred": "–" if r["loss_pred"] is None else f"{r['loss_pred']:.4f}",
            f"loss {pct}": rng(r["loss_lo"], r["loss_hi"], ".4f"),
            "loss obs": f"{r['loss_obs']:.4f}",
            "loss error": "" if r["loss_err"] is None else f"{r['loss_err']:+.2%}",
        }
        for r in rows
    ]
    kept = ", ".join(fmt(c) for c in bt.fit_budgets)
    text = (
        f"Every approach refitted on the budgets {kept} only, then asked for the held-out budgets. Observed: the "
        "vertex of the held-out budget's own parabola where its minimum is bracketed by the sampled sizes, "
        f"else its best run. Error bars: {pct} bootstrap intervals."
    )
    return Section(
        "Backtest: predictions at held-out budgets",
        text,
        [Table.from_records(table, "Predicted vs observed", left=("approach",))],
        [
            render(
                backtest_figure(rows),
                "backtest",
                "Backtest: N_opt and loss predicted (with intervals) and observed at the held-out budgets",
            )
        ],
    )


def _runs_named(runs, mask, most: int = 8) -> str:
    ix = np.flatnonzero(mask)
    names = [
        str(runs.run[i]) if not str(runs.run[i]).startswith("row") else f"N={runs.N[i]:.3g}@C={runs.budget[i]:.2g}"
        for i in ix[:most]
    ]
    return ", ".join(names) + (f" and {len(ix) - most} more" if len(ix) > most else "")


def _sections(fit: StudyFit, usable: np.ndarray, epochs: np.ndarray) -> list[Section]:
    runs, opts, out = fit.runs, fit.options, []
    at = list(opts.at)
    a2 = fit.approaches.get("2")
    minima = ([], [], [])
    if a2 is not None:
        law = a2.law
        ok = [r for r in law.per_budget_ if r.ok]
        minima = ([r.C for r in ok], [r.n_opt for r in ok], [r.d_opt for r in ok])
        parabolas = [
            Parabola(r.C, r.coef_n, r.n_opt, r.loss_opt_n, r.range_n)
            for r in law.per_budget_
            if r.coef_n is not None and r.n_opt is not None
        ]
        done = runs.done
        gid = group_budgets(runs.budget[done], opts.budget_tol)
        row_budget = np.array([law.per_budget_[g].C for g in gid])
        fig = isoflop_figure(
            runs.N[done], row_budget, runs.loss[done], a2.used[done], parabolas, max_loss=opts.max_loss
        )
        out.append(
            Section(
                "IsoFLOP curves (approach 2)",
                f"Final loss against N for each budget with the parabola fitted in log10 N "
                f"({_methods(law.per_budget_, opts.robust)}); stars mark the minima. Hollow points are runs "
                "left out: triangles over --max-loss, circles outliers of the parabola fit; a point above "
                "the plotted range sits on its top edge. D_opt comes from the same fit in log10 D.",
                [
                    Table.from_records(
                        [_budget_row(r) for r in law.per_budget_], "Minimum of each IsoFLOP parabola", left=("note",)
                    )
                ],
                [render(fig, "isoflop", "IsoFLOP curves: loss vs N per budget, parabolas and their minima")],
            )
        )
    fitted = {
        f"approach {k} (this study)": f.law for k, f in fit.approaches.items() if getattr(f.law, "a_", None) is not None
    }  # lc and data-constrained carry no allocation law of their own
    fitted = dict(sorted(fitted.items(), key=lambda kv: ("approach 2" not in kv[0], kv[0])))
    pub = {k: get_law(k) for k in PUBLISHED_SHOWN}
    cs = [*runs.budget, *at]
    band, band_label = None, ""
    if a2 is not None and a2.draws is not None and a2.draws.n:
        q = (1 - opts.ci) / 2 * 100
        grid = np.logspace(np.log10(min(cs) / 3), np.log10(max(cs) * 3), 60)
        v = a2.draws.values
        ln = np.log10(v["k_n"][:, None]) + v["a"][:, None] * np.log10(grid)
        ld = np.log10(v["k_d"][:, None]) + v["b"][:, None] * np.log10(grid)
        band = (grid, *(10 ** np.percentile(x, p, axis=0) for x in (ln, ld) for p in (q, 100 - q)))
        band_label = f"approach 2: bootstrap {100 * opts.ci:g}% band ({a2.draws.n} resamples of whole runs)"
    a1 = fit.approaches.get("1")
    fig = allocation_figure(
        *minima,
        fitted,
        band,
        pub,
        at=at,
        c_range=(min(cs) / 3, max(cs) * 3),
        band_label=band_label,
        envelope=a1.law.frontier_ if a1 is not None else (),
    )
    text = (
        (
            f" The shaded band is approach 2's {band_label.split(': ', 1)[1]}: whole runs resampled within each "
            f"budget (Bayesian bootstrap weights) and refitted (seed {opts.seed})."
        )
        if band
        else ""
    )
    out.append(
        Section(
            "Compute-optimal N and D vs C",
            "The IsoFLOP minima (points), the power laws fitted here (solid) and the published laws "
            "(dashed) for comparison with your setting." + text,
            [_laws_table(fit, pub)],
            [render(fig, "allocation", "N_opt and D_opt vs C (log-log): study, fits and published laws")],
        )
    )
    with_curve = [i for i in np.flatnonzero(a1.used) if runs.run[i] in runs.curves] if a1 is not None else []
    if a1 is not None and len(with_curve) >= 2:
        cv = [runs.curves[runs.run[i]] for i in with_curve]
        fig = envelope_figure(runs.N[with_curve], [c.C for c in cv], [c.loss for c in cv], a1.law.frontier_)
        out.append(
            Section(
                "Approach 1: lower envelope of the loss curves",
                "Each run's validation loss against training FLOPs; the black line is the lowest loss "
                "reached at each compute. The run on it gives (N, D = C/6N) there, and a line through "
                "those in log-log gives N_opt ∝ C^a.",
                [],
                [render(fig, "approach1-envelope", "Approach 1: loss curves coloured by N and their lower envelope")],
            )
        )
    curves = _run_curves(runs)
    if curves:
        out.append(
            Section(
                "Loss vs compute",
                "Validation loss of every run against training FLOPs; the dashed line is the run's budget.",
                [],
                [
                    render(
                        loss_compute_figure(curves), "loss-vs-compute", "Loss vs compute per run, one panel per budget"
                    )
                ],
            )
        )
    a3 = fit.approaches.get("3")
    if a3 is not None:
        law = a3.law
        pred = law.predict_loss(runs.N, runs.D)
        figs = [
            render(
                contour_figure(
                    law, runs.N[a3.used], runs.D[a3.used], runs.loss[a3.used], budgets=sorted(set(runs.budget))
                ),
                "approach3-contours",
                "Approach 3: iso-loss contours of the fitted L(N, D), efficient frontier in red",
            ),
            render(
                residuals_figure(runs.N, runs.budget, runs.loss, pred, a3.used),
                "approach3-residuals",
                "Approach 3: observed minus predicted loss",
            ),
        ]
        text = (
            f"Fitted: E = {law.E_:.4g}, A = {law.A_:.4g}, B = {law.B_:.4g}, α = {law.alpha_:.4f}, "
            f"β = {law.beta_:.4f}; compute-optimal N ∝ C^{law.a_:.4f}, D ∝ C^{law.b_:.4f} "
            f"(Chinchilla: α = 0.34, β = 0.28; Epoch: α = 0.348, β = 0.366)."
        )
        out.append(Section("Approach 3: parametric loss L(N, D) = E + A/N^α + B/D^β", text, [], figs))
    if at:
        out.append(
            Section(
                "Predictions",
                "N_opt, D_opt and loss at the requested budgets, from each fitted and "
                "published law, with bootstrap intervals where the fit has them.",
                [_predictions_table(fit, pub)],
            )
        )
    out.append(Section("Runs", "", [_runs_table(fit, usable, epochs)]))
    return out


def _run_curves(runs, max_runs: int = 200) -> list[Curve]:
    out = []
    for i, r in enumerate(runs.run[:max_runs]):
        c = runs.curves.get(r)
        if c is None:
            continue
        label = f"N = {runs.N[i]:.3g}"
        if "d_model" in runs.info:
            label += f" ({runs.info['d_model'][i]}x{runs.info['n_layers'][i]})"
        out.append(Curve(label, np.asarray(c.C), np.asarray(c.loss), budget=float(runs.budget[i])))
    return out


METHOD_NAMES = {"ransac": "RANSAC", "huber": "Huber regression", "lsq": "least squares"}


def _methods(per_budget, asked: str) -> str:
    """The parabola fitter each budget really used: RANSAC falls back to least squares below 5 runs or without a
    consensus set, and the text must not say RANSAC for those."""
    used = {r.C: r.method_n for r in per_budget if r.method_n}
    name = METHOD_NAMES.get(asked, asked)
    other = {c: m for c, m in used.items() if m != asked}
    if not other:
        return name
    where = ", ".join(f"{METHOD_NAMES.get(m, m)} at C = {sig(c)}" for c, m in sorted(other.items()))
    why = " (RANSAC needs 5 runs and a consensus set)" if asked == "ransac" else ""
    return f"{name}; {where}{why}"


def _budget_row(r) -> dict:
    row = {
        "budget C": fmt(r.C),
        "runs used": f"{r.n_used} of {r.n_runs}",
        "outliers": "" if r.outliers_n is None else r.outliers_n,
        "N_opt": fmt(r.n_opt) if r.n_opt else "–",
        "D_opt": fmt(r.d_opt) if r.d_opt else "–",
        "loss at N_opt": f"{r.loss_opt_n:.4f}" if r.loss_opt_n is not None else "–",
        "grid N": f"{fmt(r.range_n[0])}–{fmt(r.range_n[1])}" if r.range_n else "–",
    }
    notes = [r.skipped] if r.skipped else []
    off = [v.upper() for v in ("n", "d") if getattr(r, f"outside_{v}")]
    notes += [f"{' and '.join(off)} minimum off the sampled range"] if off else []
    if r.method_n:
        row["fit"] = METHOD_NAMES.get(r.method_n, r.method_n)
    row["note"] = "; ".join(notes)
    return row


def _laws_table(fit: StudyFit, pub: dict) -> Table:
    rows = []
    for k, f in fit.approaches.items():
        if getattr(f.law, "a_", None) is None:
            continue
        cells = {}
        for sym in ("a", "b"):
            ci = f.intervals.get(sym)
            cells[sym] = f"{getattr(f.law, sym + '_'):.4f}" + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else "")
        rows.append(
            {
                "law": f"approach {k} (this study)",
                "a (N_opt ∝ C^a)": cells["a"],
                "b (D_opt ∝ C^b)": cells["b"],
                "source": f"fitted here, {f.title}, {int(f.used.sum())} runs",
            }
        )
    for name, law in pub.items():
        a, b = getattr(law, "a_", None), getattr(law, "b_", None)
        rows.append(
            {
                "law": name,
                "a (N_opt ∝ C^a)": f"{a:.3f}" if a is not None else "",
                "b (D_opt ∝ C^b)": f"{b:.3f}" if b is not None else "0.27 (D = C/6N)" if name == "kaplan" else "",
                "source": "published",
            }
        )
    return Table.from_records(rows, "Fitted and published laws (intervals: bootstrap)", left=("law", "source"))


def _predictions_table(fit: StudyFit, pub: dict) -> Table:
    rows = []
    for i, c in enumerate(fit.options.at):
        for k, f in fit.approaches.items():
            r = f.at[i]
            rows.append(
                {
                    "C": fmt(float(c)),
                    "law": f"approach {k} (this study)",
                    "N_opt": fmt(r.n_opt),
                    "D_opt": fmt(r.d_opt),
                    "loss": "" if r.loss is None else f"{r.loss:.4f}",
                    "N_opt interval": "" if r.n_opt_ci is None else f"{fmt(r.n_opt_ci[0])}–{fmt(r.n_opt_ci[1])}",
                    "loss interval": "" if r.loss_ci is None else f"{r.loss_ci[0]:.4f}–{r.loss_ci[1]:.4f}",
                }
            )
        for name, law in pub.items():
            n, d = law.allocate(c)
            rows.append({"C": fmt(float(c)), "law": name, "N_opt": fmt(float(n)), "D_opt": fmt(float(d))})
    return Table.from_records(
        rows,
        "Predicted compute-optimal allocation (loss only from laws fitted here: "
        "published losses are in other units and data)",
        left=("law",),
    )


def _runs_table(fit: StudyFit, usable: np.ndarray, epochs: np.ndarray) -> Table:
    runs = fit.runs
    a2 = fit.approaches.get("2")
    in2 = a2.used if a2 is not None else np.zeros(len(runs), bool)
    rows = []
    for i in np.lexsort((runs.N, runs.budget)):
        row = {"run_id": str(runs.run[i]), "status": str(runs.status[i])}
        for k in ("d_model", "n_layers"):
            if k in runs.info:
                row[k] = runs.info[k][i]
        used_by = [k for k, f in fit.approaches.items() if f.used[i]]
        row.update(
            {
                "N": fmt(float(runs.N[i])),
                "D": fmt(float(runs.D[i])),
                "C": fmt(float(runs.budget[i])),
                "loss": f"{runs.loss[i]:.4f}" if np.isfinite(runs.loss[i]) else "–",
                "epochs": f"{epochs[i]:.2f}" if np.isfinite(epochs[i]) else "",
                "in fit": ("approaches " + ", ".join(used_by) if used_by else "no")
                + (" (outlier in 2)" if a2 is not None and usable[i] and not in2[i] else ""),
            }
        )
        rows.append(row)
    return Table.from_records(rows, "All runs", left=("run_id", "status"))
