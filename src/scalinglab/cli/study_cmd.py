"""Commands `plan isoflop` (budgets x shapes -> a study folder), `sweep` (train its runs) and `status`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scalinglab.cli.app import app, plan_app
from scalinglab.cli.common import emit_json, parse_floats, parse_shapes
from scalinglab.errors import UserError


@plan_app.command("isoflop")
def plan_isoflop_cmd(
    data: Path = typer.Option(..., "--data", help="Prepared DATA folder (scalinglab prep)."),
    budgets: str = typer.Option(..., "--budgets", help="Compute budgets C in FLOPs, comma-separated, e.g. 1e15,3e15."),
    out: Path = typer.Option(..., "--out", help="Study folder to create."),
    shapes: Optional[str] = typer.Option(None, "--shapes", help="Explicit shapes D_MODELxLAYERS, e.g. 32x2,48x2."),
    d_models: Optional[str] = typer.Option(None, "--d-models", help="Widths START:STOP:STEP (inclusive) or a list; depth from --rule."),
    rule: str = typer.Option("minchilla", "--rule", help="Depth rule for --d-models: minchilla (layers = heads = d/64) or aspect:R (layers = d/R)."),
    seq_len: int = typer.Option(..., "--seq-len", help="Sequence length T."),
    batch_size: int = typer.Option(..., "--batch-size", help="Sequences per optimizer step (per micro-batch with --grad-accum)."),
    grad_accum: int = typer.Option(1, "--grad-accum"),
    convention: str = typer.Option("chinchilla", "--convention", help="FLOP convention for D = C / flops_per_token: chinchilla, 6n, kaplan, ..."),
    arch: str = typer.Option("gpt", "--arch", help="gpt or perceiver-ar."),
    latents: int = typer.Option(0, "--latents", help="perceiver-ar: latent tokens."),
    min_steps: int = typer.Option(50, "--min-steps", help="Drop runs with fewer optimizer steps."),
    max_epochs: float = typer.Option(1.0, "--max-epochs", help="Drop runs that would read the train split more often."),
    lr: float = typer.Option(0.0, "--lr", help="Peak learning rate (0: Kaplan's LR(N) heuristic)."),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine | constant | wsd (one run per shape, cooldowns branched at each budget)."),
    warmup_steps: int = typer.Option(0, "--warmup-steps", help="0: min(200, steps // 10)."),
    seed: int = typer.Option(0, "--seed"),
    evals: int = typer.Option(10, "--evals", help="Validation points per run's curve."),
    checkpoints: int = typer.Option(10, "--checkpoints", help="Checkpoints per run (how much a killed sweep redoes)."),
    eval_batches: int = typer.Option(8, "--eval-batches"),
    device: str = typer.Option("auto", "--device"),
    dtype: str = typer.Option("auto", "--dtype"),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile every run."),
    json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Plan an IsoFLOP study: every budget x shape becomes a run of D = C / flops_per_token tokens."""
    from scalinglab.accounting.shape import ModelShape
    from scalinglab.data.loader import TokenData
    from scalinglab.plan.isoflop import layers_for, parse_range, plan_isoflop
    from scalinglab.records import RunSpec
    from scalinglab.study import create_study

    if bool(shapes) == bool(d_models):
        raise UserError("give exactly one of --shapes 32x2,48x2 or --d-models 256:1024:64")
    if seq_len <= 0:
        raise UserError(f"bad --seq-len {seq_len}: give a positive sequence length")
    td = TokenData(data)
    dims = parse_shapes(shapes) if shapes else [(d, layers_for(d, rule)) for d in parse_range(d_models or "")]
    model_shapes = [ModelShape(d_model=d, n_layers=n, vocab=td.vocab_size, seq_len=seq_len, arch=arch,
                               latents=latents) for d, n in dims]
    base = RunSpec(shape=model_shapes[0], grad_accum=grad_accum, lr=lr, schedule=schedule, warmup_steps=warmup_steps,
                   seed=seed, eval_batches=eval_batches, device=device, dtype=dtype, compile=compile)
    from scalinglab.plan.wsd import plan_wsd

    planner = plan_wsd if schedule == "wsd" else plan_isoflop  # wsd: Hägele et al. 2024 branches
    plan = planner(parse_floats(budgets, "--budgets"), model_shapes, data=str(td.path.resolve()),
                        train_tokens=td.tokens("train"), batch_size=batch_size, convention=convention,
                        min_steps=min_steps, max_epochs=max_epochs, base=base, evals=evals, checkpoints=checkpoints,
                        epochs_fn=lambda tok, s: td.epochs(tok, s.seq_len, s.latents if s.arch == "perceiver-ar" else 0))
    settings = {"data": str(td.path.resolve()), "budgets": plan.budgets, "shapes": shapes or "", "d_models": d_models or "",
                "rule": rule, "seq_len": seq_len, "batch_size": batch_size, "grad_accum": grad_accum,
                "convention": convention, "arch": arch, "latents": latents, "min_steps": min_steps,
                "max_epochs": max_epochs, "lr": lr, "schedule": schedule, "seed": seed, "law": plan.law_name}
    study = create_study(out, plan, settings)
    runs = [{"id": r.spec.run_id, "budget": r.budget, "d_model": r.spec.shape.d_model, "n_layers": r.spec.shape.n_layers,
             "n_heads": r.spec.shape.n_heads, "params": r.params, "tokens": r.tokens, "steps": r.spec.steps,
             "flops_per_token": r.flops_per_token, "epochs": r.epochs} for r in plan.runs]
    if json_out:
        emit_json({"study": str(study), "runs": runs, "dropped": [d.to_dict() for d in plan.dropped],
                   "law": {"name": plan.law_name, "note": plan.law_note, "budgets": plan.law_report}})
        return
    _print_plan(study, plan, runs)


def _print_plan(study: Path, plan, runs: list[dict]) -> None:
    from rich.table import Table

    from scalinglab.plan.isoflop import fmt_budget
    from scalinglab.sweep.table import human, make_console

    con = make_console()
    t = Table(title=f"IsoFLOP study {study} ({len(runs)} runs)", show_edge=False, header_style="bold")
    for col in ("run", "C", "shape", "N", "D (tokens)", "steps", "epochs"):
        t.add_column(col, justify="left" if col == "run" else "right")
    for r in runs:
        t.add_row(r["id"], fmt_budget(r["budget"]), f"{r['d_model']}x{r['n_layers']}", human(r["params"]),
                  human(r["tokens"]), str(r["steps"]), f"{r['epochs']:.2f}")
    con.print(t)
    for d in plan.dropped:
        con.print(f"dropped {d.run_id}: {d.reason}", soft_wrap=True)
    if plan.law_note:
        con.print(plan.law_note, soft_wrap=True, markup=False)
    for row in plan.law_report:
        if row["n_opt"] is None:
            continue
        if row["brackets"] is None:
            verdict = "no runs left at this budget"
        elif row["brackets"]:
            verdict = "bracketed by the grid"
        else:
            verdict = f"NOT bracketed (grid N {human(row['n_min'])}..{human(row['n_max'])}); widen the shapes"
        con.print(f"C={fmt_budget(row['budget'])}: N_opt={human(row['n_opt'])} under {plan.law_name}, {verdict}",
                  soft_wrap=True, markup=False)


@app.command("sweep")
def sweep_cmd(
    study: Path = typer.Argument(..., help="Study folder (scalinglab plan isoflop --out STUDY)."),
    backend: str = typer.Option("local", "--backend", help="local (subprocesses here) or ray (a Ray cluster)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address HOST:PORT (default: auto)."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="GPU indices to use, e.g. 0,1 (default: all visible)."),
    per_gpu: Optional[int] = typer.Option(None, "--per-gpu", help="Runs sharing one GPU at once, whatever their size; default: packed per run from its size and memory (many small runs, few large ones)."),
    workers: int = typer.Option(0, "--workers", help="CPU runs at once (when there is no GPU, or to force CPU)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed runs again."),
    json_out: bool = typer.Option(False, "--json", help="Print the final status as JSON."),
    train_cmd: Optional[str] = typer.Option(None, "--train-cmd", hidden=True, help="Replace `python -m scalinglab train` (tests)."),
) -> None:
    """Train every pending run of a study; rerun to resume after a crash (done runs are skipped)."""
    from scalinglab.study import load_study_toml
    from scalinglab.sweep.scheduler import sweep
    from scalinglab.sweep.table import make_console

    load_study_toml(study)
    if backend == "local":
        from scalinglab.sweep.local import LocalExecutor, make_devices

        ex = LocalExecutor(make_devices(gpus, per_gpu, workers))
    elif backend == "ray":
        from scalinglab.sweep.ray_backend import RayExecutor

        ex = RayExecutor(address, per_gpu=per_gpu, workers=workers)
    else:
        raise UserError(f"unknown --backend {backend!r}: use local or ray")
    try:
        counts = sweep(study, ex, retry_failed=retry_failed, train_cmd=train_cmd, console=make_console(stderr=True))
    finally:
        if hasattr(ex, "close"):
            ex.close()
    if json_out:
        emit_json(_status(study))
    if counts.get("failed"):
        import sys

        from scalinglab.folders import RunDir, StudyDir

        sys.stderr.write(f"{counts['failed']} run(s) failed: see {StudyDir(study).run_rel('<id>')}/{RunDir.LOG}; "
                         f"rerun with `scalinglab sweep {study} --retry-failed`\n")
        raise SystemExit(1)


def _status(study: Path) -> dict:
    from scalinglab.sweep.store import Store

    with Store(study) as st:
        rows, counts = st.runs(), st.counts()
    keys = ("status", "attempts", "budget", "arch", "d_model", "n_layers", "n_heads", "params", "planned_tokens", "steps",
            "final_val_loss", "min_val_loss", "final_train_loss", "tokens", "flops", "wall_time_s", "device",
            "last_step", "last_train_loss", "last_val_loss", "eta_s", "message", "run_dir")
    return {"study": str(study.resolve()), "counts": counts, "total": len(rows),
            "runs": [{"id": r["id"], **{k: r[k] for k in keys}} for r in rows]}


@app.command("status")
def status_cmd(
    study: Path = typer.Argument(..., help="Study folder."),
    json_out: bool = typer.Option(False, "--json", help="Print {counts, runs} as JSON."),
) -> None:
    """Print a study's runs once: status, step, losses, ETA of running runs."""
    from scalinglab.study import load_study_toml
    from scalinglab.sweep.store import Store
    from scalinglab.sweep.table import make_console, status_view

    load_study_toml(study)
    if json_out:
        emit_json(_status(study))
        return
    with Store(study) as st:
        make_console().print(status_view(st.runs(), st.counts()))
