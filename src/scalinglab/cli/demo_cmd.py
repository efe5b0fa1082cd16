"""Command `demo`: the whole study (prep, plan, sweep, fit, report) on a built-in corpus; resumable."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from scalinglab.cli.app import app
from scalinglab.cli.common import check_numbers, emit_json


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(
        Path("demo-out"), "--out", help="Folder for data/, study/, law.json, report.html, figures/."
    ),
    scale: str = typer.Option(
        "cpu",
        "--scale",
        help="cpu: the stdlib corpus in minutes on 2 cores; gpu: "
        "site-packages, budgets 3e14..1e16, on one GPU (9 minutes on an H200).",
    ),
    stage: str = typer.Option("all", "--stage", help="Run one stage: prep, plan, sweep, fit, report (or all)."),
    max_minutes: float | None = typer.Option(
        None,
        "--max-minutes",
        help="Stop the sweep cleanly this many minutes after the command started; rerun the same command to continue.",
    ),
    workers: int = typer.Option(0, "--workers", help="CPU runs at once (0: one per core; GPUs are used when present)."),
    mps: bool = typer.Option(False, "--mps", help="Sweep the GPU runs under NVIDIA MPS (as `sweep --mps`)."),
    json_out: bool = typer.Option(False, "--json", help="Print the fitted laws and the recommendation as JSON."),
) -> None:
    """Prep the running Python's stdlib (bytes), plan an IsoFLOP study, sweep it, fit approaches 2 and 3 (and lc
    where there are 4 budgets), write the report, and print N_opt ∝ C^a and the recommended N, D at 10x the largest
    budget. Rerun to resume."""
    from scalinglab.demo import Demo, format_summary
    from scalinglab.sweep.table import make_console

    check_numbers(("--max-minutes", max_minutes, ">0"), ("--workers", workers, ">=0"))
    con = make_console(stderr=json_out)
    demo = Demo(out, scale=scale, workers=workers, max_minutes=max_minutes, console=con, mps=mps)
    # --json: everything the stages print goes to stderr, so stdout holds only the JSON
    with contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext():
        summary = demo.run(stage)
    if json_out:
        emit_json(summary)
        return
    if summary.get("complete"):
        con.print(f"done in {summary['elapsed_s']:.0f} s")
    for line in format_summary(summary):
        con.print(line, highlight=False, markup=False, soft_wrap=True)
