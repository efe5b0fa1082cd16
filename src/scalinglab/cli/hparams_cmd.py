"""`scalinglab plan tune` (a learning rate x batch size grid per shape and budget, swept like any study) and
`scalinglab fit hparams TUNE` (best settings per point, laws lr*(N) and batch*(D), hparams.json and a figure)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from scalinglab.cli.app import plan_app
from scalinglab.cli.common import check_numbers, emit_json, parse_floats, parse_shapes
from scalinglab.errors import UserError


@plan_app.command("tune")
def plan_tune_cmd(
    data: Path = typer.Option(..., "--data", help="Prepared DATA folder (scalinglab prep)."),
    shapes: str = typer.Option(..., "--shapes", help="Shapes D_MODELxLAYERS, e.g. 128x2,256x4."),
    budgets: str = typer.Option(..., "--budgets", help="Compute budgets C in FLOPs, e.g. 1e14,1e15."),
    lrs: str = typer.Option(
        "", "--lrs", help="Peak learning rates, e.g. 1e-3,2e-3,4e-3,8e-3 (omitted: each shape's lr* of --hparams)."
    ),
    batch_sizes: str = typer.Option(..., "--batch-sizes", help="Sequences per step, e.g. 16,32,64."),
    beta2s: str | None = typer.Option(
        None, "--beta2s", help="AdamW beta2 values to sweep too (default: the rule by batch size)."
    ),
    warmups: str | None = typer.Option(
        None, "--warmups", help="Warmup steps to sweep too (default: N tokens, at most a tenth of the run)."
    ),
    seq_len: int = typer.Option(..., "--seq-len", help="Sequence length T."),
    out: Path = typer.Option(..., "--out", help="Tuning study folder to create (sweep it with `scalinglab sweep`)."),
    convention: str = typer.Option(
        "chinchilla", "--convention", help="FLOP convention for D = C / flops_per_token: chinchilla, 6n, kaplan, ..."
    ),
    min_steps: int = typer.Option(50, "--min-steps", help="Drop runs with fewer optimizer steps."),
    max_epochs: float = typer.Option(1.0, "--max-epochs", help="Drop runs that would read the train split more often."),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine | constant."),
    seed: int = typer.Option(0, "--seed", help="Seeds every run's initialisation and batch order."),
    evals: int = typer.Option(4, "--evals", help="Validation points per run's curve."),
    checkpoints: int = typer.Option(4, "--checkpoints", help="Checkpoints per run (how much a killed sweep redoes)."),
    eval_batches: int = typer.Option(8, "--eval-batches", help="Validation batches per evaluation."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N (auto: a GPU when there is one)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto | fp32 | bf16 (auto: bf16 autocast on CUDA, fp32 on CPU)."),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile every run."),
    parametrization: str = typer.Option(
        "sp",
        "--parametrization",
        help="sp (standard) or mup (Yang et al. 2022: an LR tuned at the base width transfers across widths).",
    ),
    mup_base_width: int = typer.Option(
        0, "--mup-base-width", help="mup: the width the LR was tuned at (0: the smallest width planned)."
    ),
    hparams: Path | None = typer.Option(
        None, "--hparams", help="hparams.json (`fit hparams`) whose lr*(N) sets each shape's lr when --lrs is omitted."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Plan a tuning study: each budget x shape trained at every lr x batch size (x beta2 x warmup) of the grid."""
    from scalinglab.accounting.shape import ModelShape
    from scalinglab.cli.study_cmd import _load_hparams, _show, mup_base
    from scalinglab.data.loader import TokenData
    from scalinglab.fileio import check_output
    from scalinglab.plan.tune import plan_tune
    from scalinglab.records import LoggingConfig, RunSpec, RuntimeConfig, ScheduleConfig, SpecError, validate_spec
    from scalinglab.study import create_study

    check_numbers(
        ("--seq-len", seq_len, ">0"),
        ("--min-steps", min_steps, ">=0"),
        ("--max-epochs", max_epochs, ">0"),
        ("--seed", seed, ">=0"),
        ("--evals", evals, ">=0"),
        ("--checkpoints", checkpoints, ">=0"),
        ("--eval-batches", eval_batches, ">0"),
        ("--mup-base-width", mup_base_width, ">=0"),
    )
    check_output(out, "dir", "--out")
    if bool(lrs.strip()) == (hparams is not None):
        raise UserError(
            "give either the learning rates to sweep (--lrs 1e-3,2e-3,4e-3) or a law whose lr each shape follows "
            "(--hparams FILE), not both or neither"
        )
    law = _load_hparams(hparams) if hparams else None
    if schedule not in ("cosine", "constant"):
        raise UserError(f"--schedule {schedule!r}: a tuning grid trains cosine or constant runs")
    if seq_len <= 0:
        raise UserError(f"bad --seq-len {seq_len}: give a positive sequence length")
    td = TokenData(data)
    dims = parse_shapes(shapes)
    mup = mup_base(parametrization, mup_base_width, [d for d, _ in dims])
    model_shapes = [
        ModelShape(d_model=d, n_layers=n, vocab=td.vocab_size, seq_len=seq_len, mup_base=mup) for d, n in dims
    ]
    if not model_shapes:
        raise UserError("no --shapes given: write e.g. --shapes 128x2,256x4")
    try:
        bss = [int(x) for x in batch_sizes.split(",") if x.strip()]
        wus = [int(x) for x in warmups.split(",") if x.strip()] if warmups else None
    except ValueError:
        raise UserError("--batch-sizes and --warmups take whole numbers, e.g. --batch-sizes 16,32,64") from None
    base = RunSpec(
        shape=model_shapes[0],
        seed=seed,
        schedule=ScheduleConfig(kind=schedule),
        runtime=RuntimeConfig(device=device, dtype=dtype, compile=compile),
        logging=LoggingConfig(eval_batches=eval_batches),
    )
    try:  # no tuning study whose every run would fail on an unknown dtype or device
        validate_spec(base)
    except SpecError as e:
        from scalinglab.cli.common import flag

        raise UserError(f"bad {flag(e.key)} {e.value!r}; give {e.want}") from None
    plan = plan_tune(
        parse_floats(budgets, "--budgets"),
        model_shapes,
        lrs=parse_floats(lrs, "--lrs") if lrs.strip() else [],
        law=law,
        batch_sizes=bss,
        beta2s=parse_floats(beta2s, "--beta2s") if beta2s else None,
        warmups=wus,
        data=str(td.path.resolve()),
        train_tokens=td.tokens("train"),
        convention=convention,
        min_steps=min_steps,
        max_epochs=max_epochs,
        base=base,
        evals=evals,
        checkpoints=checkpoints,
        epochs_fn=lambda tok, s: td.epochs(tok, s.seq_len, 0),
    )
    settings = {
        "kind": "tune",
        "data": str(td.path.resolve()),
        "shapes": shapes,
        "seq_len": seq_len,
        "budgets": plan.budgets,
        "lrs": lrs,
        "hparams": str(hparams) if law is not None else "",
        "batch_sizes": batch_sizes,
        "beta2s": beta2s or "",
        "warmups": warmups or "",
        "convention": convention,
        "min_steps": min_steps,
        "max_epochs": max_epochs,
        "schedule": schedule,
        "seed": seed,
        "evals": evals,
        "checkpoints": checkpoints,
        "law": plan.law_name,
        "parametrization": parametrization,
        "mup_base_width": mup,
    }
    study = create_study(out, plan, settings)
    _show(study, plan, json_out)


def tune_runs(study: str | Path) -> list[dict[str, Any]]:
    """One row per run of a tuning study: budget, shape, params, lr, batch_size, beta2, warmup, loss (inf when
    diverged), status. Runs not yet finished are left out."""
    from scalinglab.records import RunSpec
    from scalinglab.study import load_study_toml
    from scalinglab.sweep.store import Store

    doc = load_study_toml(study)
    if doc.get("study", {}).get("kind") != "tune":
        raise UserError(f"{study} is not a tuning study: plan one with `scalinglab plan tune --out {study}`")
    with Store(study) as st:
        rows = st.runs()
    out = []
    for r in rows:
        if r["status"] not in ("done", "diverged"):
            continue
        spec = RunSpec.from_dict(json.loads(r["spec"]))
        t = spec.origin.tune
        loss = r["final_val_loss"] if r["status"] == "done" and r["final_val_loss"] is not None else math.inf
        out.append(
            {
                "id": r["id"],
                "budget": float(r["budget"]),
                "shape": spec.shape.name,
                "params": int(r["params"]),
                "tokens": float(r["tokens"]) if r.get("tokens") else None,
                "seq": spec.shape.trained_per_sequence,
                "lr": float(t.get("lr", spec.lr)),
                "batch_size": int(t.get("batch_size", spec.batch_size)),
                "beta2": t.get("beta2"),
                "warmup": t.get("warmup"),
                "loss": float(loss),
                "status": r["status"],
            }
        )
    return out


def fit_hparams(source: str, out: str | None, as_json: bool, bootstrap: int, ci: float, seed: int) -> None:
    """`scalinglab fit hparams TUNE`: called by `fit` with its options (bootstrap 0 means 1000 here)."""
    from scalinglab.laws.hparams import best_point
    from scalinglab.laws.hparams import fit_hparams as fit_laws

    runs = tune_runs(source)
    if not runs:
        raise UserError(f"no finished runs in {source}: run `scalinglab sweep {source}` first")
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["budget"], r["shape"]), []).append(r)
    points = [best_point(g, g[0]["seq"]) for _, g in sorted(groups.items())]
    lr_of = "N" if max(p.params for p in points) >= 1.5 * min(p.params for p in points) else "C"
    law = fit_laws(points, lr_of=lr_of, bootstrap=bootstrap or 1000, seed=seed, level=ci)
    if all(len({r["lr"] for r in g}) == 1 for g in groups.values()):
        law.notes.append("the grid did not sweep the lr (one per shape): lr* is the lr the runs were given")
    d = law.to_dict()
    if out:
        from scalinglab.fileio import atomic_write_json
        from scalinglab.report.figures import write_figures
        from scalinglab.report.hparams import hparams_figure

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, d)
        fig = hparams_figure(law, runs)
        fig.name = Path(out).stem
        d["figure"] = str(write_figures([fig], Path(out).parent)[0])  # the PNG (an SVG is written beside it)
    if as_json:
        emit_json(d)
        return
    _print(law, source, d.get("figure"))


def _print(law, source: str, figure: str | None) -> None:
    from rich.table import Table

    from scalinglab.sweep.table import make_console

    con = make_console()
    t = Table(title=f"best settings per point ({source})", show_edge=False, header_style="bold")
    for col in ("C", "shape", "N", "D", "runs", "lr* (grid)", "batch* (grid)", "batch* tokens", "loss", "edge"):
        t.add_column(col, justify="right")
    for p in law.points:
        t.add_row(
            f"{p.budget:.3g}",
            p.shape,
            f"{p.params:.3g}",
            f"{p.tokens:.3g}" if p.tokens else "-",
            str(p.runs),
            f"{p.lr:.3g} ({p.lr_grid:.3g})",
            f"{p.batch:.3g} ({p.batch_grid})",
            f"{p.batch_tokens:.3g}",
            f"{p.loss:.4f}",
            ",".join(p.edge),
        )
    con.print(t)
    others = [(f"lr* (of {w.var}, not used)", w) for w in (law.lr_by_c,) if w is not None]
    others += [(f"batch* (tokens, of {w.var}, not used)", w) for w in (law.batch_alt,) if w is not None]
    for name, lw in [("lr*", law.lr_law), ("batch* (tokens)", law.batch_law), *others]:
        ci = lw.ci.get("exp")
        iv = f"  exponent {int(100 * law.ci_level)}% CI ({ci[0]:.3f}, {ci[1]:.3f})" if ci else ""
        con.print(f"{name} = {lw}{iv}", soft_wrap=True, markup=False)
    for n in law.notes:
        con.print(f"note: {n}", soft_wrap=True, markup=False, style="dim")
    if figure:
        con.print(f"figure: {figure}", soft_wrap=True, markup=False)
