"""Command `report`: a study, a runs CSV or external loss-curve CSVs -> one self-contained HTML page
(figures inline), with `--figures DIR` also writing every figure as PNG and SVG."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from scalinglab.cli.app import app
from scalinglab.cli.common import check_numbers, emit_json, parse_floats
from scalinglab.errors import UserError


@app.command("report")
def report_cmd(
    source: Optional[Path] = typer.Argument(None, help="A STUDY folder or a RUNS.csv (one row per run)."),
    out: Path = typer.Option(..., "--out", help="HTML file to write (one self-contained page)."),
    curves: Optional[Path] = typer.Option(None, "--curves", help="Folder of loss-curve CSVs (TensorBoard exports "
                                          "*_<experiment>_version_<i>-tag-val_loss.csv), e.g. the Perceiver AR article's."),
    experiment: Optional[List[str]] = typer.Option(None, "--experiment", help="With --curves: scaling-1, scaling-2a or "
                                                   "scaling-2b (repeatable; default: every one found)."),
    n_col: Optional[str] = typer.Option(None, "--n-col", help="CSV column with parameters N (default: params, N, ...)."),
    d_col: Optional[str] = typer.Option(None, "--d-col", help="CSV column with training tokens D (default: tokens, D, ...)."),
    c_col: Optional[str] = typer.Option(None, "--c-col", help="CSV column with compute C (default: flops, C, ...; else 6ND)."),
    loss_col: Optional[str] = typer.Option(None, "--loss-col", help="CSV column with the final loss (default: loss, ...)."),
    max_loss: Optional[float] = typer.Option(None, "--max-loss", help="Drop runs with a higher loss (did not converge)."),
    at: Optional[str] = typer.Option(None, "--at", help="Budgets to predict N_opt, D_opt and loss at, e.g. 1e18,1e19."),
    data_tokens: Optional[float] = typer.Option(None, "--data-tokens", help="Training-set size in tokens, to flag "
                                                "CSV runs over one epoch (a study knows its data)."),
    figures: Optional[Path] = typer.Option(None, "--figures", help="Also write each figure as PNG and SVG here."),
    inline: str = typer.Option("png", "--inline", help="How figures sit in the page: png or svg (base64 data URIs)."),
    json_out: bool = typer.Option(False, "--json", help="Print what was written, the summary and warnings as JSON."),
) -> None:
    """Plots and tables of a scaling-law study in one HTML page: IsoFLOP curves, N_opt/D_opt vs C against
    published laws, approach 1 envelope, loss vs compute, approach 3 contours and residuals, predictions at
    --at budgets."""
    from scalinglab.fileio import check_output

    check_numbers(("--max-loss", max_loss, ">0"), ("--data-tokens", data_tokens, ">0"))
    if inline not in ("png", "svg"):
        raise UserError(f"bad --inline {inline!r}: use png or svg")
    if (source is None) == (curves is None):
        raise UserError("give a STUDY folder or RUNS.csv, or --curves DIR (exactly one of them)")
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'report.html'}")
    budgets = parse_floats(at, "--at budgets") if at else []
    check_output(out, "file", "--out")
    if figures is not None:
        check_output(figures, "dir", "--figures")
    if curves is not None:
        from scalinglab.report.experiment import curves_report

        rep = curves_report(curves, experiment or None)
    else:
        import contextlib
        import sys

        from scalinglab.cli.fit_cmd import _progress_cb
        from scalinglab.report.study import runs_report

        prog, cb = _progress_cb(sys.stderr.isatty())  # approach 3's grid search takes seconds: show it
        with prog or contextlib.nullcontext():
            rep = runs_report(source, n_col=n_col, d_col=d_col, c_col=c_col, loss_col=loss_col, max_loss=max_loss,
                              at=budgets, data_tokens=data_tokens, progress=cb)
    rep.write(out, figures_dir=figures, inline=inline)
    figs = [f.name for f in rep.figures()]
    if json_out:
        emit_json({"out": str(out), "figures": figs, "figures_dir": str(figures) if figures else None,
                   "summary": dict(rep.summary), "warnings": rep.warnings})
        return
    from rich.console import Console

    con = Console()
    for k, v in rep.summary:
        con.print(f"{k}: [bold]{v}[/bold]")
    for w in rep.warnings:
        con.print(f"[yellow]warning:[/yellow] {w}")
    where = f" and {len(figs)} figures x PNG+SVG in {figures}" if figures else ""
    con.print(f"wrote {out} ({len(figs)} figures inline){where}")
