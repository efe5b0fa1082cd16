"""`scalinglab fit`: Chinchilla approaches 1, 2, 3 on a study folder or a CSV of runs through
scalinglab.analysis.fit_study, and `scalinglab fit estimates` (k_N, k_D from published N_opt/D_opt tables)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from scalinglab.cli import fit_options as O
from scalinglab.cli.app import app
from scalinglab.cli.common import check_numbers, emit_json, parse_floats
from scalinglab.errors import UserError


def print_warnings(fit, prefix: str = "") -> None:
    """A StudyFit's warnings and skipped approaches, one line each on stderr."""
    for w in fit.warnings:
        sys.stderr.write(f"warning: {prefix}{w}\n")
    for ap, err in fit.skipped.items():
        sys.stderr.write(f"warning: {prefix}approach {ap} skipped: {err}\n")


def _ci(pair) -> str:
    return "" if pair is None else f"{pair[0]:.3g}–{pair[1]:.3g}"


def print_fit(fit) -> None:
    """Tables of each approach (values with intervals, approach 2's budgets, allocations) and the summary."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.width = max(con.width, 110)  # the allocation table's interval columns
    pct = f"{100 * fit.options.ci:g}%"
    for ap, f in fit.approaches.items():
        d = f.law.to_dict()
        con.print(f"[bold]approach {ap}[/bold]: {f.title}  ({fit.runs.source}, {int(f.used.sum())} runs)")
        t = Table()
        t.add_column("value")
        t.add_column("fit", justify="right")
        if f.intervals:
            t.add_column(f"{pct} interval (bootstrap of {f.draws.method}, {f.draws.n} draws)", justify="right")
        keys = {
            "lc": ["E", "A", "gamma"],
            "data-constrained": ["E", "A", "B", "alpha", "beta", "r_star_d", "r_star_n"],
        }.get(d["kind"]) or (["E", "A", "B", "alpha", "beta", "a", "b"] if "alpha" in d else ["k_n", "a", "k_d", "b"])
        for k in keys:
            row = [k, f"{d[k]:.4g}"]
            if f.intervals:
                lo_hi = f.intervals.get(k)
                row.append(f"({lo_hi[0]:.4g}, {lo_hi[1]:.4g})" if lo_hi else "")
            t.add_row(*row)
        con.print(t)
        if d["kind"] == "lc":
            con.print(
                f"L*(C) = {d['E']:.4g} + {d['A']:.4g} * C^-{d['gamma']:.4f}   (fitted to {len(d['points'])} "
                f"budgets' optimal losses from {d['source']}, Huber δ={d['delta']:g} on log loss)"
            )
        elif d["kind"] == "data-constrained":
            con.print(
                f"L(N, D, U) with R*_D = {d['r_star_d']:.4g}, R*_N = {d['r_star_n']:.4g} (Muennighoff et al. 2023)"
                + (f"; held: {', '.join(f'{k}={v:.4g}' for k, v in d['fix'].items())}" if d.get("fix") else "")
            )
        elif "alpha" in d:
            how = "least squares on L" if d.get("loss") == "lsq" else f"Huber δ={d['delta']:g} on log loss"
            held = [f"{x}={y}" for x, y in d.get("tie", [])] + [f"{k}={v:g}" for k, v in (d.get("fix") or {}).items()]
            con.print(
                f"L(N, D) = {d['E']:.4g} + {d['A']:.4g} / N^{d['alpha']:.4f} + {d['B']:.4g} / D^{d['beta']:.4f}"
                f"   ({d['n_points']} points, {how}" + (f"; {', '.join(held)}" if held else "") + ")"
            )
        else:
            con.print(str(f.law))
        if getattr(f.law, "per_budget_", None):
            pb = Table(title="per budget", title_justify="left")
            for c in ("C", "runs", "used", "N_opt", "D_opt", "loss at vertex", "outliers", "method"):
                pb.add_column(c, justify="right")
            for r in f.law.per_budget_:
                pb.add_row(
                    f"{r.C:.3g}",
                    str(r.n_runs),
                    str(r.n_used),
                    f"{r.n_opt:.3g}" if r.n_opt is not None else (r.skipped or ""),
                    f"{r.d_opt:.3g}" if r.d_opt is not None else "",
                    f"{r.loss_opt_n:.4g}" if r.loss_opt_n is not None else "",
                    "" if r.outliers_n is None else str(r.outliers_n),
                    r.method_n or "",
                )
            con.print(pb)
        if f.residuals is not None:
            con.print(
                f"residuals (observed/predicted - 1): rms {f.residuals.rms:.3%}, max {f.residuals.max_abs:.3%}"
                f" over {f.residuals.n} runs"
            )
        for n in f.notes:
            con.print(f"[dim]note: {n}[/dim]")
        if f.at:
            ta = Table(title="allocation", title_justify="left")
            cols = ["C", "N_opt", "D_opt", "tokens/param", "predicted loss"]
            with_ci = any(r.n_opt_ci is not None for r in f.at)
            cols += [f"N_opt {pct}", f"D_opt {pct}", f"loss {pct}"] if with_ci else []
            for c in cols:
                ta.add_column(c, justify="right")
            for r in f.at:
                row = [
                    f"{r.C:.3g}",
                    f"{r.n_opt:.3g}",
                    f"{r.d_opt:.3g}",
                    f"{r.d_opt / r.n_opt:.1f}",
                    "" if r.loss is None else f"{r.loss:.4f}",
                ]
                ta.add_row(*row, *((_ci(r.n_opt_ci), _ci(r.d_opt_ci), _ci(r.loss_ci)) if with_ci else ()))
            con.print(ta)
    for n in fit.notes:
        con.print(f"[dim]note: {n}[/dim]")
    for k, v in fit.summary():
        con.print(f"{k}: [bold]{v}[/bold]")


def _estimates(
    path: str | None,
    published: str | None,
    a: float | None,
    b: float | None,
    as_json: bool,
    out: str | None,
    at: list[float] | None,
) -> None:
    from scalinglab.laws.estimates import fit_estimates, load_estimates

    if bool(path) == bool(published):
        raise UserError(
            "give either a CSV (scalinglab fit estimates PATH.csv) or --published NAME, not both or neither"
        )
    est = load_estimates(published or path)
    law = fit_estimates(est.flops, est.params, est.tokens, a=a, b=b)
    d = {"k_n": law.k_n_, "k_d": law.k_d_, "a": law.a_, "b": law.b_, "source": est.source, "n_rows": len(est)}
    if at:
        d["at"] = [{"C": c, "N_opt": float(n), "D_opt": float(dd)} for c, (n, dd) in ((c, law.allocate(c)) for c in at)]
    if out:
        from scalinglab.fileio import atomic_write_json

        atomic_write_json(out, law.to_dict())
    if as_json:
        emit_json(d)
        return
    print(str(law))
    print(
        f"(fitted to {len(est)} rows of {est.source}"
        + (f"; a, b fixed at {a}, {b}" if a is not None or b is not None else "")
        + ")"
    )
    for r in d.get("at", []):
        print(f"C = {r['C']:.3g}: N_opt = {r['N_opt']:.3g}, D_opt = {r['D_opt']:.3g}")


@app.command("fit")
def fit(
    source: str = typer.Argument(..., help="STUDY folder or CSV of runs; or the word 'estimates' or 'hparams'."),
    path: str | None = typer.Argument(
        None, help="For 'fit estimates': the CSV (FLOPs, Parameters, Tokens); for 'fit hparams': the TUNE study."
    ),
    approach: str = O.APPROACH,
    as_json: bool = typer.Option(False, "--json", help="Print the StudyFit as JSON for scripts."),
    out: str | None = typer.Option(None, "--out", help="Write the fit (its laws under 'laws') to this law.json."),
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
    delta: float = O.DELTA,
    ci: float = O.CI,
    seed: int = O.SEED,
    jobs: int = O.JOBS,
    a: float | None = typer.Option(None, "--a", help="fit estimates: fixed exponent a of N_opt = k_N C^a."),
    b: float | None = typer.Option(None, "--b", help="fit estimates: fixed exponent b of D_opt = k_D C^b."),
    published: str | None = typer.Option(
        None, "--published", help="fit estimates: a packaged table, e.g. chinchilla-approach-1."
    ),
) -> None:
    """Fit scaling laws (Chinchilla approaches 1, 2, 3) to runs; print, --json, or --out law.json."""
    check_numbers(
        ("--max-loss", max_loss, ">0"),
        ("--budget-tol", budget_tol, ">=0"),
        ("--drop-highest", drop_highest, ">=0"),
        ("--bootstrap", bootstrap, ">=0"),
        ("--runs-bootstrap", runs_bootstrap, ">=0"),
        ("--delta", delta, ">0"),
        ("--ci", ci, "(0,1)"),
        ("--seed", seed, ">=0"),
        ("--jobs", jobs, "-1|>0"),
        ("--a", a, ">0"),
        ("--b", b, ">0"),
    )
    if out:
        from scalinglab.fileio import check_output

        check_output(out, "file", "--out")
    if source == "estimates":
        budgets = parse_floats(at, "--at budgets") if at else None
        if budgets and any(not (c > 0) for c in budgets):
            raise UserError(f"--at budgets must be positive FLOPs, got {at}")
        _estimates(path, published, a, b, as_json, out, budgets)
        return
    if source == "hparams":  # `fit hparams TUNE`: best lr/batch per point and their laws (cli/hparams_cmd.py)
        from scalinglab.cli.hparams_cmd import fit_hparams

        if path is None:
            raise UserError("give the tuning study: scalinglab fit hparams TUNE --out hparams.json")
        fit_hparams(path, out, as_json, bootstrap or 0, ci, seed)
        return
    if path is not None:
        raise UserError(f"unexpected second argument {path!r}: give one STUDY folder or CSV")
    options = O.build_options(
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
    runs = O.load_runs(source, n_col, d_col, c_col, loss_col, budget_col, run_col)
    res = O.run_fit(runs, options)
    print_warnings(res)
    O.check_strict(res, strict)
    if out:
        from scalinglab.fileio import atomic_write_json

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, _clean(res.to_dict()))
    if as_json:
        emit_json(res.to_dict())
        return
    print_fit(res)


def _clean(d):
    """JSON-safe (NaN/inf -> null), as --json prints it."""
    from scalinglab.cli.common import _clean as clean

    return clean(d)
