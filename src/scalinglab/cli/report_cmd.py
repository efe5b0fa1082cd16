"""Command `report`: a study or a runs CSV, fitted by scalinglab.analysis.fit_study with the same options as `fit`,
or external loss-curve CSVs -> one self-contained HTML page (figures inline); `--figures DIR` adds PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli import fit_options as O
from scalinglab.cli.app import app
from scalinglab.cli.common import check_numbers, emit_json
from scalinglab.errors import UserError


def default_out(source: Path) -> Path:
    """Where a report goes without --out: inside a study folder, or beside a runs CSV (named after it)."""
    return source / "report.html" if source.is_dir() else source.with_name(f"{source.stem}-report.html")


@app.command("report")
def report_cmd(
    source: Path | None = typer.Argument(None, help="A STUDY folder or a RUNS.csv (one row per run)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="HTML file to write (one self-contained page). Default: "
        "STUDY/report.html for a study, RUNS-report.html beside a CSV; needed with "
        "--curves.",
    ),
    curves: Path | None = typer.Option(
        None,
        "--curves",
        help="Folder of loss-curve CSVs (TensorBoard exports "
        "*_<experiment>_version_<i>-tag-val_loss.csv), e.g. the Perceiver AR article's.",
    ),
    experiment: list[str] | None = typer.Option(
        None,
        "--experiment",
        help="With --curves: scaling-1, scaling-2a or scaling-2b (repeatable; default: every one found).",
    ),
    approach: str = O.APPROACH,
    at: str | None = O.AT,
    n_col: str | None = O.N_COL,
    d_col: str | None = O.D_COL,
    c_col: str | None = O.C_COL,
    loss_col: str | None = O.LOSS_COL,
    budget_col: str | None = O.BUDGET_COL,
    run_col: str | None = O.RUN_COL,
    max_loss: float | None = O.MAX_LOSS,
    robust: str = O.ROBUST,
    budget_tol: float = O.BUDGET_TOL,
    drop_highest: int = O.DROP_HIGHEST,
    bootstrap: int | None = O.BOOTSTRAP,
    runs_bootstrap: int = O.RUNS_BOOTSTRAP,
    window: int = O.WINDOW,
    keep_unbracketed: bool = O.KEEP_UNBRACKETED,
    tie: str | None = O.TIE,
    fix: str | None = O.FIX,
    loss: str = O.LOSS,
    strict: bool = O.STRICT,
    unique_col: str | None = O.UNIQUE_COL,
    holdout_above: float | None = typer.Option(
        None,
        "--holdout-above",
        help="Add a backtest: refit without the budgets above this C and draw predicted vs observed there.",
    ),
    holdout_largest: int | None = typer.Option(
        None, "--holdout-largest", help="Add a backtest holding out the K largest budgets."
    ),
    delta: float = O.DELTA,
    ci: float = O.CI,
    seed: int = O.SEED,
    jobs: int = O.JOBS,
    data_tokens: float | None = typer.Option(
        None,
        "--data-tokens",
        help="Training-set size in tokens, to flag CSV runs over one epoch (a study knows its data).",
    ),
    figures: Path | None = typer.Option(None, "--figures", help="Also write each figure as PNG and SVG here."),
    inline: str = typer.Option("png", "--inline", help="How figures sit in the page: png or svg (base64 data URIs)."),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print the StudyFit rendered (the schema of `fit --json`) with the report's files under 'report'.",
    ),
) -> None:
    """Plots and tables of a scaling-law study in one HTML page: IsoFLOP curves, N_opt/D_opt vs C against
    published laws, approach 1 envelope, loss vs compute, approach 3 contours and residuals, predictions at
    --at budgets. Takes the same fit options as `fit` and shows the same numbers."""
    from scalinglab.fileio import check_output

    check_numbers(
        ("--max-loss", max_loss, ">0"),
        ("--data-tokens", data_tokens, ">0"),
        ("--holdout-above", holdout_above, ">0"),
        ("--holdout-largest", holdout_largest, ">0"),
    )
    if inline not in ("png", "svg"):
        raise UserError(f"bad --inline {inline!r}: use png or svg")
    if (source is None) == (curves is None):
        raise UserError("give a STUDY folder or RUNS.csv, or --curves DIR (exactly one of them)")
    if out is None:
        if source is None:
            raise UserError(
                "--curves needs --out FILE.html (the curves' folder is input data: nothing is written there)"
            )
        out = default_out(source)
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'report.html'}")
    check_output(out, "file", "--out")
    if figures is not None:
        check_output(figures, "dir", "--figures")
    fit = bt = None
    options = (
        None
        if curves is not None
        else O.build_options(
            approach,
            at,
            max_loss,
            robust,
            budget_tol,
            drop_highest,
            bootstrap,
            runs_bootstrap,
            delta,
            ci,
            seed,
            jobs,
            window,
            keep_unbracketed,
            tie,
            fix,
            loss,
            unique_col,
        )
    )
    if curves is not None:
        from scalinglab.report.experiment import curves_report

        rep = curves_report(curves, experiment or None)
    else:
        from scalinglab.report.study import check_reportable, study_report

        runs = O.load_runs(source, n_col, d_col, c_col, loss_col, budget_col, run_col)
        check_reportable(runs, max_loss)
        fit = O.run_fit(runs, options)
        O.check_strict(fit, strict)
        if holdout_above is not None or holdout_largest is not None:
            from scalinglab.analysis import backtest

            if holdout_above is not None and holdout_largest is not None:
                raise UserError("give --holdout-above or --holdout-largest, not both")
            bt = backtest(runs, options, holdout_above=holdout_above, holdout_largest=holdout_largest)
        rep = study_report(fit, f"Scaling-law report: {Path(source).name}", data_tokens=data_tokens, backtest=bt)
    rep.write(out, figures_dir=figures, inline=inline)
    figs = [f.name for f in rep.figures()]
    if json_out:
        info = {
            "out": str(out),
            "figures": figs,
            "figures_dir": str(figures) if figures else None,
            "summary": dict(rep.summary),
            "warnings": rep.warnings,
        }
        extra = {} if bt is None else {"backtest": [r.to_dict() for r in bt.rows]}
        emit_json({**fit.to_dict(), **extra, "report": info} if fit is not None else info)
        return
    from rich.console import Console

    con = Console()
    for k, v in rep.summary:  # soft_wrap: a log or pipe gets whole lines, never a path cut in two
        con.print(f"{k}: [bold]{v}[/bold]", soft_wrap=True)
    for w in rep.warnings:
        con.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True)
    where = f" and {len(figs)} figures x PNG+SVG in {figures}" if figures else ""
    con.print(f"wrote {out} ({len(figs)} figures inline){where}", soft_wrap=True)
