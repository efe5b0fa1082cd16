"""`scalinglab backtest`: fit on the smaller budgets, predict the held-out larger ones, and print each approach's
N_opt and loss (with intervals) against the observed optimum; `scalinglab predict`: a law file's predictions."""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli import fit_options as O
from scalinglab.cli.app import app
from scalinglab.cli.common import check_numbers, emit_json
from scalinglab.errors import UserError


def _g(x, spec: str = ".3g") -> str:
    return "" if x is None else format(x, spec)


def print_backtest(bt) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.width = max(con.width, 150)  # the interval columns
    kept = ", ".join(f"{c:.3g}" for c in bt.fit_budgets)
    con.print(
        f"[bold]backtest[/bold] of {bt.fit.runs.source}: fitted on budgets {kept}; held out "
        + ", ".join(f"{o.budget:.3g} ({o.n_runs} runs)" for o in bt.held_out)
    )
    pct = f"{100 * bt.fit.options.ci:g}%"
    t = Table()
    for c in (
        "C",
        "approach",
        "N_opt pred",
        f"N_opt {pct}",
        "N_opt obs",
        "pred/obs",
        "loss pred",
        f"loss {pct}",
        "loss obs",
        "loss err",
    ):
        t.add_column(c, justify="right")
    for r in bt.rows:
        t.add_row(
            f"{r.budget:.3g}",
            r.approach,
            _g(r.n_opt_pred),
            "" if r.n_opt_lo is None else f"{r.n_opt_lo:.3g}–{r.n_opt_hi:.3g}",
            f"{r.n_opt_obs:.3g}",
            "" if r.n_opt_pred is None else f"{r.n_opt_pred / r.n_opt_obs:.2f}x",
            _g(r.loss_pred, ".4f"),
            "" if r.loss_lo is None else f"{r.loss_lo:.4f}–{r.loss_hi:.4f}",
            f"{r.loss_obs:.4f}",
            "" if r.loss_err is None else f"{r.loss_err:+.2%}",
        )
    con.print(t)
    for o in bt.held_out:
        how = (
            f"vertex of its parabola N = {o.vertex_n:.3g}, loss {o.vertex_loss:.4f}"
            if o.vertex_n is not None
            else "minimum not bracketed by its sizes: the best run stands in"
        )
        con.print(f"[dim]observed at {o.budget:.3g}: best run N = {o.best_n:.3g}, loss {o.best_loss:.4f}; {how}[/dim]")


@app.command("backtest")
def backtest_cmd(
    source: str = typer.Argument(..., help="STUDY folder or CSV of runs."),
    holdout_above: float | None = typer.Option(
        None, "--holdout-above", help="Hold out every budget above this C (FLOPs) and predict it from the rest."
    ),
    holdout_largest: int | None = typer.Option(None, "--holdout-largest", help="Hold out the K largest budgets."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print rows (budget, approach, n_opt_pred, n_opt_lo, n_opt_hi, "
        "n_opt_obs, loss_pred, loss_lo, loss_hi, loss_obs, loss_err) and the fit as JSON.",
    ),
    approach: str = O.APPROACH,
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
    delta: float = O.DELTA,
    ci: float = O.CI,
    seed: int = O.SEED,
    jobs: int = O.JOBS,
) -> None:
    """Backtest the laws: fit on the smaller budgets, score predictions at the held-out larger ones."""
    import contextlib
    import sys

    from scalinglab.analysis import backtest
    from scalinglab.cli.fit_cmd import print_warnings

    check_numbers(("--holdout-above", holdout_above, ">0"), ("--holdout-largest", holdout_largest, ">0"))
    options = O.build_options(
        approach,
        None,
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
    )
    if (holdout_above is None) == (holdout_largest is None):
        raise UserError("say which budgets to hold out: --holdout-above C or --holdout-largest K (one of them)")
    runs = O.load_runs(source, n_col, d_col, c_col, loss_col, budget_col, run_col)
    prog, cb = O.progress_bars(sys.stderr.isatty())
    with prog or contextlib.nullcontext():
        bt = backtest(runs, options, holdout_above=holdout_above, holdout_largest=holdout_largest, progress=cb)
    print_warnings(bt.fit)
    O.check_strict(bt.fit, strict)
    if as_json:
        emit_json(bt.to_dict())
        return
    print_backtest(bt)


LAW_FILE = typer.Argument(..., help="A law file written by `scalinglab fit --out`.")


@app.command("predict")
def predict_cmd(
    law_json: Path = LAW_FILE,
    approach: str | None = typer.Option(
        None, "--approach", help="Which law of a file holding several (1, 2, 3, lc, data-constrained)."
    ),
    n: float | None = typer.Option(None, "--n", help="Model size N (parameters): predict the loss at (N, D)."),
    d: float | None = typer.Option(None, "--d", help="Training tokens D, with --n."),
    u: float | None = typer.Option(None, "--u", help="Unique tokens U (data-constrained law), with --n and --d."),
    at: float | None = typer.Option(None, "--at", help="Budget C (FLOPs): predict N_opt, D_opt and the loss there."),
    ci: float = typer.Option(0.95, "--ci", help="Level of the intervals (from the law's bootstrap draws)."),
    as_json: bool = typer.Option(False, "--json", help="Print the prediction as JSON."),
) -> None:
    """Predict from a fitted law: the loss at (N, D[, U]), or N_opt, D_opt and loss at a budget C."""
    from scalinglab.laws.predict import predict

    check_numbers(("--n", n, ">0"), ("--d", d, ">0"), ("--u", u, ">0"), ("--at", at, ">0"), ("--ci", ci, "(0,1)"))
    if (at is None) == (n is None and d is None and u is None):
        raise UserError("give either --at C, or --n N --d D (and --u U for the data-constrained law)")
    if at is None and (n is None or d is None):
        raise UserError("the loss at a model needs both --n N and --d D")
    law, label = O.read_law(law_json, approach)
    try:
        res = predict(law, n=n, d=d, u=u, at=at, level=ci)
    except UserError as e:
        raise UserError(f"{e} (law {label})") from None
    res = {"law": label, "kind": law.kind, **res}
    if as_json:
        emit_json(res)
        return
    pct = f"{100 * ci:g}%"

    def show(key: str, spec: str) -> str:
        lo, hi = res.get(f"{key}_lo"), res.get(f"{key}_hi")
        return format(res[key], spec) + (f"  ({pct}: {format(lo, spec)}–{format(hi, spec)})" if lo is not None else "")

    print(f"law: {label}")
    for key, spec in (("N_opt", ".4g"), ("D_opt", ".4g"), ("loss", ".6g")):
        if key in res:
            print(f"{key}: {show(key, spec)}")
    if "N_opt" in res:
        print(f"tokens/param: {res['D_opt'] / res['N_opt']:.1f}")
