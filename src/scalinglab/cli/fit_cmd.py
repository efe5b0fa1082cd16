"""`scalinglab fit`: Chinchilla approaches 1, 2, 3 on a study folder or a CSV of runs, and
`scalinglab fit estimates` (k_N, k_D from published N_opt/D_opt tables with fixed exponents)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from scalinglab.cli.app import app
from scalinglab.cli.common import check_numbers, emit_json, parse_floats
from scalinglab.errors import UserError


def _progress_cb(enabled: bool):
    """A callback (label, done, total) drawing rich progress bars on stderr; None when not a terminal."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)
    tasks: dict[str, Any] = {}

    def cb(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = prog.add_task(label, total=total)
        prog.update(tasks[label], completed=done)

    return prog, cb


def _print_warnings(laws: dict[str, Any]) -> None:
    """Each fitted law's warnings, one line each on stderr."""
    for ap, law in laws.items():
        for w in getattr(law, "warnings_", []):
            sys.stderr.write(f"warning: approach {ap}: {w}\n")


def _at_rows(law, budgets: list[float]) -> list[dict[str, Any]]:
    rows = []
    for c in budgets:
        n, d = law.allocate(c)
        loss = float(law.predict_loss(n, d)) if hasattr(law, "predict_loss") else None
        rows.append({"C": c, "N_opt": float(n), "D_opt": float(d), "loss": loss})
    return rows


def _fit_all(source: str, approaches: list[str], cols: dict, opts: dict, progress) -> dict[str, Any]:
    from scalinglab.laws.approach1 import Approach1
    from scalinglab.laws.approach2 import Approach2
    from scalinglab.laws.approach3 import Approach3
    from scalinglab.laws.data import curves_from_frame, curves_from_study, load_frame, points_from_frame

    df, src, study, note = load_frame(source)
    curves = None
    if "1" in approaches:
        curves = curves_from_study(df, src) if study else curves_from_frame(
            df, src, run_col=cols["run_col"], n_col=cols["n_col"], c_col=cols["c_col"], loss_col=cols["loss_col"],
            d_col=cols["d_col"])
    pts = None
    if curves is None or approaches != ["1"]:
        if not study and curves is not None:  # a per-step CSV: the last row of each run is its final point
            rc = cols["run_col"] or next(c for c in ("run_id", "run", "run_name") if c in df.columns)
            df = df.groupby(rc, sort=False).tail(1).reset_index(drop=True)
        pts = points_from_frame(df, src, is_study=study, n_col=cols["n_col"], d_col=cols["d_col"],
                                c_col=cols["c_col"], loss_col=cols["loss_col"], budget_col=cols["budget_col"])
        if note:
            pts.notes.append(note)
    if pts is not None and opts["max_loss"] is not None and "3" in approaches:
        keep = pts.loss <= opts["max_loss"]
        n_drop = int((~keep).sum())
        if n_drop and keep.sum():
            pts3 = pts.subset(keep)
            pts3.notes.append(f"dropped {n_drop} runs with loss > {opts['max_loss']:g} (not converged)")
        else:
            pts3 = pts
    else:
        pts3 = pts
    laws: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for ap in approaches:
        try:
            if ap == "1":
                law = Approach1()
                law = law.fit_curves(curves.N, curves.C, curves.loss) if curves else law.fit_points(pts.N, pts.D, pts.C, pts.loss)
                if curves:
                    law.notes_ = curves.notes + law.notes_
            elif ap == "2":
                law = Approach2(robust=opts["robust"], max_loss=opts["max_loss"], seed=opts["seed"],
                                budget_tol=opts["budget_tol"]).fit(pts.N, pts.D, pts.budget, pts.loss)
            else:
                law = Approach3(delta=opts["delta"], drop_highest=opts["drop_highest"], bootstrap=opts["bootstrap"],
                                seed=opts["seed"], n_jobs=opts["jobs"], ci=opts["ci"])
                law.fit(pts3.N, pts3.D, pts3.loss, progress=progress)
                law.allocate(1e20)  # a law without an optimum is reported as skipped, not printed
            if pts is not None and ap != "1":
                law.notes_ = (pts3 if ap == "3" else pts).notes + law.notes_
            laws[ap] = law
        except UserError as e:
            if len(approaches) == 1:
                raise
            errors[ap] = str(e)
    if not laws:
        raise UserError("no approach could be fitted: " + "; ".join(f"approach {k}: {v}" for k, v in errors.items()))
    return {"laws": laws, "errors": errors, "source": src}


def _law_dict(law, at: list[float] | None) -> dict[str, Any]:
    d = law.to_dict()
    if at:
        d["at"] = _at_rows(law, at)
    return d


def _print_human(res: dict[str, Any], at: list[float] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    for ap, law in res["laws"].items():
        d = law.to_dict()
        con.print(f"[bold]approach {ap}[/bold]  ({res['source']})")
        t = Table()
        t.add_column("value")
        t.add_column("fit", justify="right")
        ci = d.get("ci") or {}
        if ci:
            t.add_column(f"{int(100 * d.get('ci_level', 0.95))}% CI ({d.get('bootstrap')} resamples)", justify="right")
        keys = ["E", "A", "B", "alpha", "beta", "a", "b"] if ap == "3" else ["k_n", "a", "k_d", "b"]
        for k in keys:
            row = [k, f"{d[k]:.4g}"]
            if ci:
                row.append(f"({ci[k][0]:.4g}, {ci[k][1]:.4g})" if k in ci else "")
            t.add_row(*row)
        con.print(t)
        if ap == "3":
            con.print(f"L(N, D) = {d['E']:.4g} + {d['A']:.4g} / N^{d['alpha']:.4f} + {d['B']:.4g} / D^{d['beta']:.4f}"
                      f"   ({d['n_points']} points, Huber δ={d['delta']:g} on log loss)")
        else:
            con.print(str(law))
        if ap == "2" and law.per_budget_:
            pb = Table(title="per budget", title_justify="left")
            for c in ("C", "runs", "used", "N_opt", "D_opt", "loss at vertex", "outliers", "method"):
                pb.add_column(c, justify="right")
            for r in law.per_budget_:
                pb.add_row(f"{r['C']:.3g}", str(r["n_runs"]), str(r["n_used"]),
                           f"{r['n_opt']:.3g}" if "n_opt" in r else r.get("skipped", ""),
                           f"{r['d_opt']:.3g}" if "d_opt" in r else "",
                           f"{r['loss_opt_n']:.4g}" if "loss_opt_n" in r else "",
                           str(r.get("outliers_n", "")), str(r.get("method_n", "")))
            con.print(pb)
        for n in getattr(law, "notes_", []):
            con.print(f"[dim]note: {n}[/dim]")
        if at:
            ta = Table(title="allocation", title_justify="left")
            for c in ("C", "N_opt", "D_opt", "tokens/param", "predicted loss"):
                ta.add_column(c, justify="right")
            for r in _at_rows(law, at):
                ta.add_row(f"{r['C']:.3g}", f"{r['N_opt']:.3g}", f"{r['D_opt']:.3g}", f"{r['D_opt'] / r['N_opt']:.1f}",
                           "" if r["loss"] is None else f"{r['loss']:.4f}")
            con.print(ta)
    for ap, err in res["errors"].items():
        con.print(f"[yellow]approach {ap} skipped: {err}[/yellow]")


def _estimates(path: Optional[str], published: Optional[str], a: Optional[float], b: Optional[float],
               as_json: bool, out: Optional[str], at: list[float] | None) -> None:
    from scalinglab.laws.estimates import fit_estimates, load_estimates

    if bool(path) == bool(published):
        raise UserError("give either a CSV (scalinglab fit estimates PATH.csv) or --published NAME, not both or neither")
    est = load_estimates(published or path)
    law = fit_estimates(est.flops, est.params, est.tokens, a=a, b=b)
    d = {"k_n": law.k_n_, "k_d": law.k_d_, "a": law.a_, "b": law.b_, "source": est.source, "n_rows": len(est)}
    if at:
        d["at"] = _at_rows(law, at)
    if out:
        from scalinglab.fileio import atomic_write_json

        atomic_write_json(out, law.to_dict())
    if as_json:
        emit_json(d)
        return
    print(str(law))
    print(f"(fitted to {len(est)} rows of {est.source}" + (f"; a, b fixed at {a}, {b}" if a is not None or b is not None else "") + ")")
    for r in d.get("at", []):
        print(f"C = {r['C']:.3g}: N_opt = {r['N_opt']:.3g}, D_opt = {r['D_opt']:.3g}")


@app.command("fit")
def fit(
    source: str = typer.Argument(..., help="STUDY folder or CSV of runs; or the word 'estimates' or 'hparams'."),
    path: Optional[str] = typer.Argument(None, help="For 'fit estimates': the CSV (FLOPs, Parameters, Tokens); for 'fit hparams': the TUNE study."),
    approach: str = typer.Option("all", help="1, 2, 3 or all."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    out: Optional[str] = typer.Option(None, "--out", help="Write the fitted law(s) to this law.json."),
    at: Optional[str] = typer.Option(None, "--at", help="Budgets C to allocate, e.g. 1e18,1e19."),
    n_col: Optional[str] = typer.Option(None, "--n-col", help="Column of model sizes N."),
    d_col: Optional[str] = typer.Option(None, "--d-col", help="Column of training tokens D (else C/6N)."),
    c_col: Optional[str] = typer.Option(None, "--c-col", help="Column of compute C (else 6ND); approach 2 groups by it."),
    loss_col: Optional[str] = typer.Option(None, "--loss-col", help="Column of final losses."),
    budget_col: Optional[str] = typer.Option(None, "--budget-col", help="Column of planned budgets (approach 2 groups)."),
    run_col: Optional[str] = typer.Option(None, "--run-col", help="Run id column of a per-step curves CSV (approach 1)."),
    max_loss: Optional[float] = typer.Option(None, "--max-loss", help="Drop runs above this loss (not converged; approaches 2, 3)."),
    robust: str = typer.Option("ransac", "--robust", help="Approach 2 parabola fit: ransac, huber or lsq."),
    budget_tol: float = typer.Option(0.05, "--budget-tol", help="Approach 2: budgets within this relative gap are one."),
    drop_highest: int = typer.Option(0, "--drop-highest", help="Approach 3: drop the K highest losses first (Epoch: 5)."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Approach 3: bootstrap resamples for confidence intervals."),
    delta: float = typer.Option(1e-3, "--delta", help="Approach 3: Huber δ on log loss."),
    ci: float = typer.Option(0.95, "--ci", help="Confidence level of the bootstrap intervals."),
    seed: int = typer.Option(42, "--seed", help="Seed of RANSAC and the bootstrap."),
    jobs: int = typer.Option(-1, "--jobs", help="Parallel workers (-1: all cores)."),
    a: Optional[float] = typer.Option(None, "--a", help="fit estimates: fixed exponent a of N_opt = k_N C^a."),
    b: Optional[float] = typer.Option(None, "--b", help="fit estimates: fixed exponent b of D_opt = k_D C^b."),
    published: Optional[str] = typer.Option(None, "--published", help="fit estimates: a packaged table, e.g. chinchilla-approach-1."),
) -> None:
    """Fit scaling laws (Chinchilla approaches 1, 2, 3) to runs; print, --json, or --out law.json."""
    check_numbers(("--max-loss", max_loss, ">0"), ("--budget-tol", budget_tol, ">=0"), ("--drop-highest", drop_highest, ">=0"),
                  ("--bootstrap", bootstrap, ">=0"), ("--delta", delta, ">0"), ("--ci", ci, "(0,1)"), ("--seed", seed, ">=0"),
                  ("--jobs", jobs, "-1|>0"), ("--a", a, ">0"), ("--b", b, ">0"))
    budgets = parse_floats(at, "--at budgets") if at else None
    if out:
        from scalinglab.fileio import check_output

        check_output(out, "file", "--out")
    if source == "estimates":
        _estimates(path, published, a, b, as_json, out, budgets)
        return
    if source == "hparams":  # `fit hparams TUNE`: best lr/batch per point and their laws (cli/hparams_cmd.py)
        from scalinglab.cli.hparams_cmd import fit_hparams

        if path is None:
            raise UserError("give the tuning study: scalinglab fit hparams TUNE --out hparams.json")
        fit_hparams(path, out, as_json, bootstrap, ci, seed)
        return
    if path is not None:
        raise UserError(f"unexpected second argument {path!r}: give one STUDY folder or CSV")
    ap = approach.strip().lower()
    approaches = ["1", "2", "3"] if ap == "all" else [ap]
    if approaches[0] not in ("1", "2", "3"):
        raise UserError(f"unknown --approach {approach!r}: use 1, 2, 3 or all")
    if drop_highest < 0 or bootstrap < 0:
        raise UserError("--drop-highest and --bootstrap must be 0 or more")
    if not (0 < ci < 1) or not (delta > 0):
        raise UserError("--ci must lie in (0, 1) and --delta be positive")
    cols = dict(n_col=n_col, d_col=d_col, c_col=c_col, loss_col=loss_col, budget_col=budget_col, run_col=run_col)
    opts = dict(robust=robust, max_loss=max_loss, seed=seed, budget_tol=budget_tol, delta=delta,
                drop_highest=drop_highest, bootstrap=bootstrap, jobs=jobs, ci=ci)
    prog, cb = _progress_cb(sys.stderr.isatty())
    with prog or contextlib.nullcontext():
        res = _fit_all(source, approaches, cols, opts, cb)
    _print_warnings(res["laws"])
    if out:
        from scalinglab.fileio import atomic_write_json

        laws = res["laws"]
        payload = next(iter(laws.values())).to_dict() if len(laws) == 1 else \
            {"laws": {f"approach{k}": v.to_dict() for k, v in laws.items()}}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, payload)
    if as_json:
        laws = res["laws"]
        if len(approaches) == 1:
            emit_json(_law_dict(laws[approaches[0]], budgets))
        else:
            d: dict[str, Any] = {f"approach{k}": _law_dict(v, budgets) for k, v in laws.items()}
            if res["errors"]:
                d["skipped"] = {f"approach{k}": v for k, v in res["errors"].items()}
            emit_json(d)
        return
    _print_human(res, budgets)
