"""Commands `plan isoflop` (budgets x shapes -> a study folder), `sweep` (train its runs) and `status`."""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.app import app, plan_app
from scalinglab.cli.common import check_numbers, emit_json, flag, parse_floats, parse_shapes
from scalinglab.errors import UserError


@plan_app.command("isoflop")
def plan_isoflop_cmd(
    data: Path | None = typer.Option(None, "--data", help="Prepared DATA folder (scalinglab prep)."),
    budgets: str = typer.Option(..., "--budgets", help="Compute budgets C in FLOPs, comma-separated, e.g. 1e15,3e15."),
    out: Path | None = typer.Option(None, "--out", help="Study folder to create."),
    shapes: str | None = typer.Option(None, "--shapes", help="Explicit shapes D_MODELxLAYERS, e.g. 32x2,48x2."),
    d_models: str | None = typer.Option(
        None, "--d-models", help="Widths START:STOP:STEP (inclusive) or a list; depth from --rule."
    ),
    rule: str | None = typer.Option(
        None,
        "--rule",
        help="Depth rule for --d-models/--around: minchilla (layers = heads = d/64) or aspect:R (layers = d/R).",
    ),
    min_layers: int | None = typer.Option(
        None,
        "--min-layers",
        help="--d-models/--around: at least this many layers (4: what the GPU check needed); default 0, "
        "with --extend the study's.",
    ),
    seq_len: int = typer.Option(0, "--seq-len", help="Sequence length T."),
    batch_size: int = typer.Option(
        0,
        "--batch-size",
        help="Sequences per optimizer step (per micro-batch with --grad-accum); 0: by budget (--hparams law, else DeepSeek LLM's B_opt(C)).",
    ),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-batches per optimizer step (--batch-size each)."),
    convention: str = typer.Option(
        "chinchilla", "--convention", help="FLOP convention for D = C / flops_per_token: chinchilla, 6n, kaplan, ..."
    ),
    arch: str = typer.Option("gpt", "--arch", help="gpt or perceiver-ar."),
    latents: int = typer.Option(0, "--latents", help="perceiver-ar: latent tokens."),
    min_steps: int = typer.Option(50, "--min-steps", help="Drop runs with fewer optimizer steps."),
    max_epochs: float = typer.Option(1.0, "--max-epochs", help="Drop runs that would read the train split more often."),
    lr: float = typer.Option(
        0.0,
        "--lr",
        help="Peak learning rate for every run (0: --hparams law, else the literature default by model size).",
    ),
    beta2: float = typer.Option(
        0.0, "--beta2", help="AdamW beta2 for every run (0: by batch size, 0.95 at 0.5M tokens up to 0.999)."
    ),
    hparams: Path | None = typer.Option(
        None, "--hparams", help="hparams.json from `scalinglab fit hparams`: lr and batch size per run follow its laws."
    ),
    schedule: str = typer.Option(
        "cosine", "--schedule", help="cosine | constant | wsd (one run per shape, cooldowns branched at each budget)."
    ),
    warmup_steps: int = typer.Option(
        0, "--warmup-steps", help="0: as many tokens as the model has parameters, at most a tenth of the run."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds every run's initialisation and batch order."),
    seeds: int | None = typer.Option(
        None,
        "--seeds",
        help="Runs per budget and shape, seeded --seed, --seed + 1, ... (fits average them per size); "
        "default 1, with --extend the study's.",
    ),
    evals: int = typer.Option(10, "--evals", help="Validation points per run's curve."),
    checkpoints: int = typer.Option(10, "--checkpoints", help="Checkpoints per run (how much a killed sweep redoes)."),
    checkpoint_minutes: float = typer.Option(
        5.0, "--checkpoint-minutes", help="Minutes of training at least between a run's checkpoints (0: no floor)."
    ),
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
    logger: str = typer.Option(
        "none",
        "--logger",
        help="Every run also logs to an experiment tracker: none | mlflow "
        "(needs the track extra), one tracker run per run, in an experiment named after the study.",
    ),
    logger_uri: str | None = typer.Option(
        None, "--logger-uri", help="MLflow tracking URI, e.g. file:./mlruns (default: STUDY/mlruns)."
    ),
    extend: Path | None = typer.Option(
        None,
        "--extend",
        help="Add runs to this existing STUDY (its settings and store); finished runs are never touched.",
    ),
    around: Path | None = typer.Option(
        None,
        "--around",
        help="With --extend: shapes around this law's N_opt at each new budget (LAW.json from `scalinglab fit --out`).",
    ),
    approach: str | None = typer.Option(
        None,
        "--approach",
        help="With --around: which law of a multi-law LAW.json (1, 2, 3); required when it holds several.",
    ),
    spread: float = typer.Option(3.0, "--spread", help="With --around: shapes from N_opt/spread to spread*N_opt."),
    width_step: int = typer.Option(
        0, "--width-step", help="With --around: widths are multiples of this (0: the gcd of the study's widths)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Plan an IsoFLOP study: every budget x shape becomes a run of D = C / flops_per_token tokens.

    With --extend STUDY, add budgets and shapes (or --around LAW.json) to an existing study instead."""
    check_numbers(
        ("--seq-len", seq_len, ">=0"),
        ("--batch-size", batch_size, ">=0"),
        ("--grad-accum", grad_accum, ">0"),
        ("--latents", latents, ">=0"),
        ("--min-steps", min_steps, ">=0"),
        ("--max-epochs", max_epochs, ">0"),
        ("--lr", lr, ">=0"),
        ("--beta2", beta2, "[0,1)"),
        ("--warmup-steps", warmup_steps, ">=0"),
        ("--seed", seed, ">=0"),
        ("--seeds", seeds, ">0"),
        ("--evals", evals, ">=0"),
        ("--checkpoints", checkpoints, ">=0"),
        ("--checkpoint-minutes", checkpoint_minutes, ">=0"),
        ("--eval-batches", eval_batches, ">0"),
        ("--spread", spread, ">0"),
        ("--width-step", width_step, ">=0"),
        ("--mup-base-width", mup_base_width, ">=0"),
        ("--min-layers", min_layers, ">=0"),
    )
    if extend is not None:
        depth = (rule, min_layers)
        _extend(extend, budgets, shapes, d_models, depth, around, approach, spread, width_step, seeds, json_out)
        return
    if around is not None:
        raise UserError("--around places shapes in an existing study: give --extend STUDY too")
    if data is None or out is None or seq_len == 0:
        raise UserError("a new study needs --data DATA, --out STUDY and --seq-len T (or --extend STUDY to add to one)")
    if bool(shapes) == bool(d_models):
        raise UserError("give exactly one of --shapes 32x2,48x2 or --d-models 256:1024:64")
    from scalinglab.accounting.shape import ModelShape
    from scalinglab.data.loader import TokenData
    from scalinglab.fileio import check_output
    from scalinglab.plan.recipe import Resolver
    from scalinglab.records import LoggingConfig, RunSpec, RuntimeConfig, ScheduleConfig, SpecError, validate_spec

    check_output(out, "dir", "--out")
    rule, min_layers = rule or "minchilla", min_layers or 0
    td = TokenData(data)
    dims = _dims(shapes, d_models, rule, min_layers)
    mup = mup_base(parametrization, mup_base_width, [d for d, _ in dims])
    model_shapes = [
        ModelShape(
            d_model=d, n_layers=n, vocab=td.vocab_size, seq_len=seq_len, arch=arch, latents=latents, mup_base=mup
        )
        for d, n in dims
    ]
    if lr < 0 or beta2 < 0 or beta2 >= 1 or warmup_steps < 0:
        raise UserError("--lr and --warmup-steps must be >= 0 and --beta2 in [0, 1) (0: the default rule)")
    from scalinglab.train.trackers import TrackerConfig, resolve_uri

    track = TrackerConfig(logger, resolve_uri(logger, logger_uri, Path(out)), Path(out).name)
    base = RunSpec(
        shape=model_shapes[0],
        grad_accum=grad_accum,
        lr=lr,
        seed=seed,
        schedule=ScheduleConfig(kind=schedule, warmup_steps=warmup_steps),
        runtime=RuntimeConfig(device=device, dtype=dtype, compile=compile),
        logging=LoggingConfig(eval_batches=eval_batches, **track.to_logging()),
    )
    try:  # a study whose every run would fail on an unknown schedule or dtype is never created
        validate_spec(base)
    except SpecError as e:
        from scalinglab.cli.common import flag

        raise UserError(f"bad {flag(e.key)} {e.value!r}; give {e.want}") from None
    hp = Resolver(
        lr=lr,
        batch_size=batch_size,
        warmup_steps=warmup_steps,
        beta2=beta2,
        law=_load_hparams(hparams) if hparams else None,
    )
    settings = {
        "data": str(td.path.resolve()),
        "shapes": shapes or "",
        "d_models": d_models or "",
        "rule": rule,
        "min_layers": min_layers,
        "seq_len": seq_len,
        "grad_accum": grad_accum,
        "convention": convention,
        "arch": arch,
        "latents": latents,
        "min_steps": min_steps,
        "max_epochs": max_epochs,
        "schedule": schedule,
        "seed": seed,
        "seeds": seeds or 1,
        "evals": evals,
        "checkpoints": checkpoints,
        "checkpoint_minutes": checkpoint_minutes,
        "parametrization": parametrization,
        "mup_base_width": mup,
        **hp.settings(),
    }
    plan = _make_plan(td, parse_floats(budgets, "--budgets"), model_shapes, base, hp, settings)
    from scalinglab.study import create_study

    settings.update(budgets=plan.budgets, law=plan.law_name)
    study = create_study(out, plan, settings)
    _show(study, plan, json_out)


def _dims(shapes: str | None, d_models: str | None, rule: str, min_layers: int) -> list[tuple[int, int]]:
    """(d_model, n_layers) of explicit --shapes, or of --d-models with depth from the rule (at least min_layers)."""
    from scalinglab.plan.isoflop import layers_for, parse_range

    if shapes:
        return parse_shapes(shapes)
    dims = [(d, layers_for(d, rule, min_layers)) for d in parse_range(d_models or "")]
    shallow = [d for d, n in dims if n < 1]
    if shallow:
        raise UserError(
            f"--rule {rule} gives 0 layers for d_model {', '.join(map(str, shallow))} (minchilla: layers = "
            "d_model // 64, so widths below 64 have none); start --d-models at 64, use --rule aspect:R "
            "(layers = d_model / R, e.g. aspect:16), or give depths yourself with --shapes 32x2,48x2"
        )
    return dims


def mup_base(parametrization: str, base_width: int, widths: list[int]) -> int:
    """The shapes' mup_base: 0 for sp; for mup the base width given, else the smallest width."""
    if parametrization not in ("sp", "mup"):
        raise UserError(f"unknown --parametrization {parametrization!r}: use sp or mup")
    if base_width < 0:
        raise UserError(f"bad --mup-base-width {base_width}: give a positive width (0: the smallest width planned)")
    if parametrization == "sp":
        if base_width:
            raise UserError("--mup-base-width applies to --parametrization mup only; add --parametrization mup")
        return 0
    return base_width or min(widths)


def _make_plan(td, budgets: list[float], model_shapes: list, base, hp, settings: dict):
    from scalinglab.plan.isoflop import plan_isoflop
    from scalinglab.plan.wsd import plan_wsd

    wsd = settings["schedule"] == "wsd"  # Hägele et al. 2024: one run per shape, cooldowns branched at each budget
    seeds = int(settings.get("seeds", 1))
    if wsd and seeds > 1:
        raise UserError("--seeds applies to cosine and constant studies; a WSD study trains one run per shape")
    extra = {} if wsd else {"seeds": seeds}
    return (plan_wsd if wsd else plan_isoflop)(
        budgets,
        model_shapes,
        data=str(td.path.resolve()),
        train_tokens=td.tokens("train"),
        batch_size=hp.batch_size,
        convention=settings["convention"],
        min_steps=settings["min_steps"],
        max_epochs=settings["max_epochs"],
        base=base,
        evals=settings.get("evals", 10),
        checkpoints=settings.get("checkpoints", 10),
        checkpoint_minutes=settings.get("checkpoint_minutes", 5.0),
        hparams=hp,
        epochs_fn=lambda tok, s: td.epochs(tok, s.seq_len, s.latents if s.arch == "perceiver-ar" else 0),
        **extra,
    )


def _load_hparams(path: Path):
    import json

    from scalinglab.laws.hparams import HparamsLaw

    try:
        return HparamsLaw.from_dict(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise UserError(
            f"no hparams file at {path}: write one with `scalinglab fit hparams TUNE --out {path}`"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(
            f"{path} is not an hparams law ({e}); rewrite it with `scalinglab fit hparams TUNE --out {path}`"
        ) from None


def _run_rows(plan) -> list[dict]:
    return [
        {
            "id": r.spec.run_id,
            "budget": r.budget,
            "d_model": r.spec.shape.d_model,
            "n_layers": r.spec.shape.n_layers,
            "n_heads": r.spec.shape.n_heads,
            "params": r.params,
            "tokens": r.tokens,
            "steps": r.spec.steps,
            "batch_size": r.spec.batch_size,
            "lr": r.spec.lr,
            "warmup_steps": r.spec.schedule.warmup_steps,
            "beta2": r.spec.beta2,
            "flops_per_token": r.flops_per_token,
            "epochs": r.epochs,
        }
        for r in plan.runs
    ]


def _show(study: Path, plan, json_out: bool, extra: dict | None = None) -> None:
    runs = _run_rows(plan)
    if json_out:
        emit_json(
            {
                "study": str(study),
                "runs": runs,
                "dropped": [d.to_dict() for d in plan.dropped],
                "law": {"name": plan.law_name, "note": plan.law_note, "budgets": plan.law_report},
                "notes": plan.notes,
                **(extra or {}),
            }
        )
        return
    _print_plan(study, plan, runs)
    if extra and extra.get("skipped"):
        from scalinglab.sweep.table import make_console

        make_console().print(f"already in the study (left as they are): {', '.join(extra['skipped'])}", soft_wrap=True)


def _extend(
    study: Path,
    budgets: str,
    shapes: str | None,
    d_models: str | None,
    depth: tuple[str | None, int | None],
    around: Path | None,
    approach: str | None,
    spread: float,
    step: int,
    seeds: int | None,
    json_out: bool,
) -> None:
    """`plan isoflop --extend STUDY`: the study's own settings, new budgets x (shapes | shapes around a law)."""
    import json
    from dataclasses import replace

    from scalinglab.data.loader import TokenData
    from scalinglab.plan.around import shapes_around, width_step
    from scalinglab.plan.isoflop import IsoflopPlan
    from scalinglab.plan.recipe import Resolver
    from scalinglab.records import RunSpec
    from scalinglab.study import extend_study, load_study_toml
    from scalinglab.sweep.store import Store

    if sum(x is not None for x in (shapes, d_models, around)) != 1:
        raise UserError("with --extend give exactly one of --shapes, --d-models or --around LAW.json")
    doc = load_study_toml(study)
    st = doc.get("study", {})
    if st.get("schedule") == "wsd":
        raise UserError(
            f"{study} is a WSD study (one run per shape): extend works on cosine/constant studies; plan a new study"
        )
    with Store(study) as store:
        rows = store.runs()
    if not rows:
        raise UserError(f"{study} has no runs to take settings from; plan a new study with --out")
    first = RunSpec.from_dict(json.loads(rows[0]["spec"]))
    base = replace(
        first,
        schedule=replace(first.schedule, branches=(), branch_budgets=()),
        logging=replace(first.logging, eval_every=0, checkpoint_every=0),
        origin=replace(first.origin, planned_budget=0.0),
    )
    legacy = "recipe" not in st  # planned before the recipe: keep the trainer-resolved meaning of 0
    hp = Resolver(
        lr=float(st.get("lr", 0.0)),
        batch_size=int(st.get("batch_size", first.batch_size)),
        warmup_steps=int(st.get("warmup_steps", 0)),
        beta2=float(st.get("beta2", 0.0 if not legacy else first.beta2)),
        law=_hparams_from(st.get("hparams")),
        legacy=legacy,
    )
    td = TokenData(st.get("data") or first.data)
    settings = {
        "schedule": st.get("schedule", first.schedule.kind),
        "convention": st.get("convention", first.convention),
        "min_steps": st.get("min_steps", 50),
        "max_epochs": st.get("max_epochs", 1.0),
        "evals": st.get("evals", 10),
        "checkpoints": st.get("checkpoints", 10),
        "checkpoint_minutes": st.get("checkpoint_minutes", 5.0),
        "seeds": seeds or st.get("seeds", 1),
    }
    cs = parse_floats(budgets, "--budgets")
    rule = depth[0] or st.get("rule", "minchilla")
    min_layers = depth[1] if depth[1] is not None else int(st.get("min_layers", 0))
    template = first.shape
    note: dict = {"budgets": cs, "seeds": settings["seeds"]}
    if around is None:
        dims = _dims(shapes, d_models, rule, min_layers)
        plan = _make_plan(
            td, cs, [template.with_(d_model=d, n_layers=n, n_heads=0) for d, n in dims], base, hp, settings
        )
        note["shapes"] = shapes or d_models
    else:
        law = _allocation_law(around, approach)
        step = step or width_step(sorted({int(r["d_model"]) for r in rows}))
        plans = []
        for c in cs:
            n_opt = float(law.allocate(c)[0])
            near = shapes_around(n_opt, template, rule, step, spread, min_layers=min_layers)
            plans.append((c, n_opt, _make_plan(td, [c], near, base, hp, settings)))
        # the bracket report against the law the shapes were placed around, not the published one
        report = []
        for c, n_opt, p in plans:
            for row in p.law_report:
                ns = [r.params for r in p.runs]
                report.append(
                    {
                        **row,
                        "n_opt": n_opt,
                        "d_opt": float(law.allocate(c)[1]),
                        "brackets": bool(ns and min(ns) <= n_opt <= max(ns)) if ns else None,
                    }
                )
        name = Path(around).name + (f" (approach {approach})" if approach else "")
        plan = IsoflopPlan(
            [r for _, _, p in plans for r in p.runs],
            [d for _, _, p in plans for d in p.dropped],
            cs,
            law_name=name,
            law_report=report,
            notes=list(dict.fromkeys(n for _, _, p in plans for n in p.notes)),  # each budget's, once
        )
        note.update(
            around=str(Path(around).resolve()),
            approach=approach or "",
            spread=spread,
            width_step=step,
            n_opt={f"{c:.6g}": n for c, n, _ in plans},
        )
    added, skipped = extend_study(study, plan, note)
    if not added and not skipped:
        from scalinglab.plan.isoflop import drop_summary

        raise UserError(
            f"no runs left to add: all {len(plan.dropped)} were dropped ({drop_summary(plan.dropped)}); "
            "change the budgets or shapes"
        )
    plan.runs = added
    out = {"skipped": skipped}
    if around is not None:
        out["n_opt"] = note["n_opt"]
    _show(Path(study).resolve(), plan, json_out, out)


def _hparams_from(d: dict | None):
    if not d:
        return None
    from scalinglab.laws.hparams import HparamsLaw

    return HparamsLaw.from_dict(d)


def _allocation_law(path: Path, approach: str | None):
    """The law of LAW.json that allocates compute (N_opt, D_opt): the --approach one of a multi-law file."""
    from scalinglab.cli.fit_options import read_law

    law, label = read_law(path, approach)
    try:
        law.allocate(1e18)
    except (AttributeError, NotImplementedError, TypeError, ValueError, UserError) as e:  # a law with no optimum
        raise UserError(
            f"the law {label} cannot allocate compute ({e}); use an approach 1, 2 or 3 law (--approach)"
        ) from None
    return law


def _print_plan(study: Path, plan, runs: list[dict]) -> None:
    from rich.table import Table

    from scalinglab.fmt import sig
    from scalinglab.plan.isoflop import fmt_budget
    from scalinglab.sweep.table import human, make_console

    con = make_console()
    t = Table(title=f"IsoFLOP study {study} ({len(runs)} runs)", show_edge=False, header_style="bold", pad_edge=False)
    # planned run ids say their budget and shape (C1e15_256x4): those columns only for other ids (WSD trunks)
    with_c = not all(r["id"] == f"C{fmt_budget(r['budget'])}_{r['d_model']}x{r['n_layers']}" for r in runs)
    cols = ["run", *(["C", "shape"] if with_c else []), "N", "D", "steps", "batch", "lr", "warmup", "beta2", "epochs"]
    for col in cols:  # numbers never cut at 80 columns: only the run id may wrap
        t.add_column(col, justify="left" if col == "run" else "right", no_wrap=col != "run", overflow="fold")
    for r in runs:
        t.add_row(
            r["id"],
            *([fmt_budget(r["budget"]), f"{r['d_model']}x{r['n_layers']}"] if with_c else []),
            human(r["params"]),
            human(r["tokens"]),
            str(r["steps"]),
            str(r["batch_size"]),
            sig(r["lr"]),
            str(r["warmup_steps"]),
            sig(r["beta2"], 4),
            f"{r['epochs']:.2f}",
        )
    con.print(t)
    for d in plan.dropped:
        con.print(f"dropped {d.run_id}: {d.reason}" + (f" ({flag(d.key)})" if d.key else ""), soft_wrap=True)
    if plan.law_note:
        con.print(plan.law_note, soft_wrap=True, markup=False)
    for note in plan.notes:
        con.print(f"note: {note}", soft_wrap=True, markup=False)
    for row in plan.law_report:
        if row["n_opt"] is None:
            continue
        if row["brackets"] is None:
            verdict = "no runs left at this budget"
        elif row["brackets"]:
            verdict = "bracketed by the grid"
        else:
            verdict = f"NOT bracketed (grid N {human(row['n_min'])}..{human(row['n_max'])}); widen the shapes"
        con.print(
            f"C={fmt_budget(row['budget'])}: N_opt={human(row['n_opt'])} under {plan.law_name}, {verdict}",
            soft_wrap=True,
            markup=False,
        )


@app.command("sweep")
def sweep_cmd(
    study: Path = typer.Argument(..., help="Study folder (scalinglab plan isoflop --out STUDY)."),
    backend: str = typer.Option("local", "--backend", help="local (subprocesses here) or ray (a Ray cluster)."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address HOST:PORT (default: auto)."),
    gpus: str | None = typer.Option(None, "--gpus", help="GPU indices to use, e.g. 0,1 (default: all visible)."),
    per_gpu: int | None = typer.Option(
        None,
        "--per-gpu",
        help="Runs training on one GPU at once, whatever their size; default: placed per run from its size and memory (compiled runs take turns, uncompiled ones share: many small, few large).",
    ),
    workers: int = typer.Option(0, "--workers", help="CPU runs at once (when there is no GPU, or to force CPU)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed runs again."),
    json_out: bool = typer.Option(False, "--json", help="Print the final status as JSON."),
    mps: bool = typer.Option(
        False,
        "--mps",
        help="Run the packed GPU runs under a private NVIDIA MPS daemon, started and stopped by the sweep (local backend).",
    ),
    train_cmd: str | None = typer.Option(
        None, "--train-cmd", hidden=True, help="Replace `python -m scalinglab train` (tests)."
    ),
) -> None:
    """Train every pending run of a study; rerun to resume after a crash (done runs are skipped)."""
    import os

    from scalinglab.study import load_study_toml
    from scalinglab.sweep.runs import TRAIN_CMD_ENV
    from scalinglab.sweep.scheduler import sweep
    from scalinglab.sweep.table import make_console

    check_numbers(("--per-gpu", per_gpu, ">0"), ("--workers", workers, ">=0"))
    if mps and backend != "local":
        raise UserError("--mps works with the local backend", hint="leave out --mps", keys=("mps", "backend"))
    load_study_toml(study)
    if backend == "local":
        from scalinglab.sweep.local import LocalExecutor, make_devices

        stand_in = bool(train_cmd or os.environ.get(TRAIN_CMD_ENV))  # tests' fake trainer uses no GPU
        ex = LocalExecutor(make_devices(gpus, per_gpu, workers, check_gpus=not stand_in))
    elif backend == "ray":
        from scalinglab.sweep.ray_backend import RayExecutor

        ex = RayExecutor(address, per_gpu=per_gpu, workers=workers)
    else:
        raise UserError(f"unknown --backend {backend!r}: use local or ray")
    from scalinglab.sweep.mps import mps_for

    try:
        with mps_for(getattr(ex, "devices", []), mps):
            counts = sweep(study, ex, retry_failed=retry_failed, train_cmd=train_cmd, console=make_console(stderr=True))
    finally:
        if hasattr(ex, "close"):
            ex.close()
    if json_out:
        emit_json(_status(study))
    if counts.get("failed"):
        import sys

        from scalinglab.folders import RunDir, StudyDir

        sys.stderr.write(
            f"{counts['failed']} run(s) failed: see {StudyDir(study).run_rel('<id>')}/{RunDir.LOG}; "
            f"rerun with `scalinglab sweep {study} --retry-failed`\n"
        )
        raise SystemExit(1)


def _status(study: Path) -> dict:
    rows, counts = _shown_runs(study)
    keys = (
        "status",
        "attempts",
        "budget",
        "arch",
        "d_model",
        "n_layers",
        "n_heads",
        "params",
        "planned_tokens",
        "steps",
        "final_val_loss",
        "min_val_loss",
        "final_train_loss",
        "tokens",
        "flops",
        "wall_time_s",
        "device",
        "last_step",
        "last_train_loss",
        "last_val_loss",
        "eta_s",
        "message",
        "run_dir",
    )
    return {
        "study": str(study.resolve()),
        "counts": counts,
        "total": len(rows),
        "runs": [{"id": r["id"], **{k: r[k] for k in keys}} for r in rows],
    }


def _write_csv(study: Path, dest: str) -> int:
    """One row per run (the columns `fit` and `report` read: params, tokens, flops, final_val_loss); '-' = stdout."""
    import csv
    import io
    import sys

    from scalinglab.fileio import atomic_write_text
    from scalinglab.sweep.store import CSV_COLUMNS as columns

    rows = _status(study)["runs"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if (v := (r["id"] if k == "run_id" else r.get(k))) is None else v for k in columns])
    if dest == "-":
        sys.stdout.write(buf.getvalue())
    else:
        if Path(dest).is_dir():
            raise UserError(f"--csv {dest} is a folder: give a file name, e.g. {Path(dest) / 'runs.csv'}")
        try:
            atomic_write_text(dest, buf.getvalue())
        except OSError as e:
            raise UserError(f"cannot write --csv {dest} ({e.strerror}): choose a writable path") from None
    return len(rows)


@app.command("status")
def status_cmd(
    study: Path = typer.Argument(..., help="Study folder."),
    json_out: bool = typer.Option(False, "--json", help="Print {counts, runs} as JSON."),
    csv_out: str | None = typer.Option(
        None,
        "--csv",
        metavar="FILE",
        help="Write the runs as CSV (one row per run: run_id, status, params, "
        "tokens, budget, flops, final_val_loss, ...) to FILE, or '-' for "
        "stdout. `fit` and `report` read it.",
    ),
) -> None:
    """Print a study's runs once: status, step, losses, ETA of running runs; or export them as CSV."""
    from scalinglab.study import load_study_toml
    from scalinglab.sweep.table import make_console, status_view

    load_study_toml(study)
    if csv_out is not None:
        n = _write_csv(study, csv_out)
        if csv_out != "-":
            import sys

            sys.stderr.write(f"wrote {n} runs to {csv_out}\n")
        return
    if json_out:
        emit_json(_status(study))
        return
    rows, counts = _shown_runs(study)
    make_console().print(status_view(rows, counts, _waiting(study, rows)))


def _waiting(study: Path, rows: list[dict]) -> frozenset[str]:
    """Running runs whose trainer waits for its GPU's turn (RunDir.waiting)."""
    from scalinglab.folders import StudyDir

    sd = StudyDir(study)
    return frozenset(
        r["id"] for r in rows if r["status"] == "running" and r.get("run_dir") and sd.run(r["run_dir"]).waiting.exists()
    )


def _shown_runs(study: Path) -> tuple[list[dict], dict[str, int]]:
    """Rows and counts as shown: a 'running' run whose sweep and trainer are gone shows as 'interrupted'
    ('stale' for another machine's run not updated for a while), read without writing to the store."""
    from scalinglab.sweep.store import Store

    with Store(study, readonly=True) as st:
        rows = st.runs()
        for r in rows:
            shown = st.shown_status(r)
            if shown != r["status"]:
                r["status"] = shown
                r["message"] = (
                    r.get("message") or "its sweep and trainer are gone; rerun `scalinglab sweep` to resume it"
                )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return rows, counts
