"""`scalinglab train`: one training run into a run folder, from flags and/or a TOML RunSpec; --resume continues it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import typer

from scalinglab.cli.app import app
from scalinglab.errors import UserError
from scalinglab.folders import RunDir

STOP_KEYS = ("steps", "tokens", "budget_flops")


def _read_toml(path: Path) -> dict[str, Any]:
    """RunSpec fields in today's form (records.upgrade also reads older files: flat settings, [extra], flat shape keys)."""
    from scalinglab.records import upgrade

    if not path.is_file():
        raise UserError(
            f"config file {path} not found: give a TOML file with RunSpec fields (e.g. RUN/{RunDir.CONFIG})"
        )
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path} is not valid TOML ({e}); fix the file") from None
    return upgrade(d)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """base with over's values; sections (dicts) merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = {**dict(out.get(k) or {}), **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _build_spec(base: dict[str, Any], shape_over: dict[str, Any], over: dict[str, Any]):
    from dataclasses import fields

    from scalinglab.accounting.shape import ModelShape
    from scalinglab.records import SECTIONS, RunSpec, check_fields, unknown_keys, validate_spec

    d = dict(base)
    shape = {**dict(d.get("shape") or {}), **shape_over}
    if any(over.get(k) for k in STOP_KEYS):  # a stop criterion from the flags replaces the file's
        for k in STOP_KEYS:
            d[k] = 0
    d = _merge(d, over)
    if d.get("data"):
        p = Path(d["data"]).expanduser()
        d["data"] = str(p.resolve()) if p.exists() else str(p)
    if "vocab" not in shape and d.get("data"):
        from scalinglab.data.loader import TokenData

        shape["vocab"] = TokenData(d["data"]).vocab_size
    missing = [k for k in ("d_model", "n_layers", "vocab", "seq_len") if k not in shape]
    if missing:
        flags = {"d_model": "--d-model", "n_layers": "--layers", "vocab": "--vocab (or --data)", "seq_len": "--seq-len"}
        raise UserError(
            f"model shape incomplete, missing {', '.join(missing)}: give {', '.join(flags[m] for m in missing)}"
        )
    known = {f.name for f in fields(ModelShape)}
    bad = [k for k in shape if k not in known]
    if bad:
        raise UserError(f"unknown shape key(s) {', '.join(bad)}: use {', '.join(sorted(known))}")
    bad = unknown_keys({**d, "shape": shape})
    if bad:
        known_spec = sorted({f.name for f in fields(RunSpec)} - set(SECTIONS)) + [
            f"[{name}] {', '.join(f.name for f in fields(kind))}" for name, kind in SECTIONS.items()
        ]
        raise UserError(f"unknown config key(s) {', '.join(bad)}: use RunSpec fields ({'; '.join(known_spec)})")
    check_fields({**d, "shape": shape})  # a wrong-typed value names its key, not the arithmetic it breaks
    try:
        d["shape"] = ModelShape(**shape)
        for name, kind in SECTIONS.items():
            d[name] = kind(**dict(d.get(name) or {}))
        return validate_spec(RunSpec(**d))
    except TypeError as e:
        raise UserError(f"bad run config: {e}") from None


@app.command("train")
def train(
    data: str | None = typer.Option(None, "--data", help="prepared DATA folder (scalinglab prep)"),
    config: Path | None = typer.Option(None, "--config", help="TOML RunSpec; flags override it"),
    out: Path | None = typer.Option(None, "--out", help="run folder to write"),
    resume: Path | None = typer.Option(
        None, "--resume", help="continue the run in this folder (starts it if it has only its spec)"
    ),
    arch: str | None = typer.Option(None, "--arch", help="gpt | perceiver-ar (default gpt)"),
    d_model: int | None = typer.Option(
        None, "--d-model", help="model width (required unless --config gives the shape)"
    ),
    layers: int | None = typer.Option(
        None, "--layers", help="transformer blocks (required unless --config gives the shape)"
    ),
    heads: int | None = typer.Option(None, "--heads", help="default d_model // 64 (at least 1)"),
    seq_len: int | None = typer.Option(None, "--seq-len", help="context length (prefix + latents for perceiver-ar)"),
    vocab: int | None = typer.Option(None, "--vocab", help="default: the data's vocabulary size"),
    latents: int | None = typer.Option(None, "--latents", help="perceiver-ar: latent tokens n"),
    prefix_dropout: float | None = typer.Option(
        None, "--prefix-dropout", help="perceiver-ar: share of prefix dropped in training (default 0)"
    ),
    pos: str | None = typer.Option(None, "--pos", help="positions: learned | rotary (gpt; default learned)"),
    mup_base_width: int | None = typer.Option(
        None,
        "--mup-base-width",
        help="gpt: train with muP relative to this base width (default 0: standard parametrization)",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="sequences per optimizer step, per micro-batch with --grad-accum (default 8)"
    ),
    grad_accum: int | None = typer.Option(None, "--grad-accum", help="micro-batches per optimizer step (default 1)"),
    steps: int | None = typer.Option(None, "--steps", help="stop after this many optimizer steps (total)"),
    tokens: float | None = typer.Option(None, "--tokens", help="stop at this many (latent) training tokens"),
    budget: float | None = typer.Option(None, "--budget", help="stop at this many training FLOPs"),
    convention: str | None = typer.Option(None, "--convention", help="FLOP accounting convention (default chinchilla)"),
    lr: float | None = typer.Option(None, "--lr", help="peak LR (default 0: Kaplan et al. 2020's LR(N) heuristic)"),
    schedule: str | None = typer.Option(
        None, "--schedule", help="LR schedule: cosine | wsd | constant (default cosine)"
    ),
    warmup_steps: int | None = typer.Option(
        None, "--warmup-steps", help="linear LR warmup steps (default 0: min(200, steps/10))"
    ),
    min_lr_ratio: float | None = typer.Option(
        None, "--min-lr-ratio", help="cosine floor as a share of the peak LR (default 0.1)"
    ),
    optimizer: str | None = typer.Option(None, "--optimizer", help="adamw | adam (no weight decay) (default adamw)"),
    weight_decay: float | None = typer.Option(
        None, "--weight-decay", help="AdamW decoupled weight decay on matrices (default 0.1)"
    ),
    grad_clip: float | None = typer.Option(
        None, "--grad-clip", help="clip the gradient norm at this value; 0: off (default 1.0)"
    ),
    seed: int | None = typer.Option(None, "--seed", help="seeds the initialisation and the batch order (default 0)"),
    eval_every: int | None = typer.Option(
        None, "--eval-every", help="steps between validations (default 0: only at the end)"
    ),
    eval_batches: int | None = typer.Option(
        None, "--eval-batches", help="validation batches of --batch-size sequences each (default 8)"
    ),
    checkpoint_every: int | None = typer.Option(
        None, "--checkpoint-every", help="steps between checkpoints (default 0: only at the end)"
    ),
    checkpoint_minutes: float | None = typer.Option(
        None, "--checkpoint-minutes", help="minutes of training at least between checkpoints (default 0: no floor)"
    ),
    log_every: int | None = typer.Option(None, "--log-every", help="steps between metric lines (default 10)"),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads (default: 1 on a GPU and below 1M params on the CPU, else torch's)"
    ),
    device: str | None = typer.Option(
        None, "--device", help="auto | cpu | cuda | cuda:N (default auto: a GPU when there is one)"
    ),
    dtype: str | None = typer.Option(
        None, "--dtype", help="auto | fp32 | bf16 (default auto: bf16 autocast on CUDA, fp32 on CPU)"
    ),
    compile: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (default off)"),
    compile_mode: str | None = typer.Option(
        None,
        "--compile-mode",
        help="unset: on one CUDA GPU the whole step as one CUDA graph, else reduce-overhead | reduce-overhead | "
        "max-autotune-no-cudagraphs | default",
    ),
    activation_checkpointing: bool | None = typer.Option(
        None,
        "--activation-checkpointing/--no-activation-checkpointing",
        help="recompute activations in the backward pass: less memory, ~30% more compute (default off)",
    ),
    restart_warmup_steps: int | None = typer.Option(
        None, "--restart-warmup-steps", help="after growth: re-warm the LR over this many steps"
    ),
    restart_steps: int | None = typer.Option(
        None, "--restart-steps", help="step the restart begins at (default: the checkpoint's step)"
    ),
    reset_schedule: bool = typer.Option(False, "--reset-schedule", help="restart the LR schedule at the restart step"),
    nproc: int = typer.Option(1, "--nproc", help="processes (GPUs) for this one run, via torch.distributed.run (DDP)"),
    allow_long: bool = typer.Option(
        False,
        "--allow-long",
        help="train even a run that would take over 30 days at peak "
        "speed or repeat its data over 100 times (refused otherwise)",
    ),
    logger: str | None = typer.Option(
        None, "--logger", help="also log to an experiment tracker: none (default) | mlflow (needs the track extra)"
    ),
    logger_uri: str | None = typer.Option(
        None, "--logger-uri", help="MLflow tracking URI, e.g. file:./mlruns (the default: ./mlruns)"
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar on stderr"),
    json_out: bool = typer.Option(False, "--json", help="print the RunRecord as JSON on stdout"),
) -> None:
    """Train one model into a run folder: its spec, checkpoint, metric lines, record and TensorBoard logs.

    Stops exactly at --steps, --tokens or --budget (FLOPs). Exit code 0 done, 3 diverged, 2 bad input.
    """
    from scalinglab.cli.common import check_numbers, emit_json
    from scalinglab.records import RunSpec, SpecError
    from scalinglab.train.guard import RunTooLong

    check_numbers(
        ("--d-model", d_model, ">0"),
        ("--layers", layers, ">0"),
        ("--heads", heads, ">=0"),
        ("--seq-len", seq_len, ">0"),
        ("--vocab", vocab, ">0"),
        ("--latents", latents, ">=0"),
        ("--prefix-dropout", prefix_dropout, "[0,1)"),
        ("--batch-size", batch_size, ">0"),
        ("--grad-accum", grad_accum, ">0"),
        ("--steps", steps, ">0"),
        ("--tokens", tokens, ">0"),
        ("--budget", budget, ">0"),
        ("--lr", lr, ">=0"),
        ("--warmup-steps", warmup_steps, ">=0"),
        ("--min-lr-ratio", min_lr_ratio, "[0,1]"),
        ("--weight-decay", weight_decay, ">=0"),
        ("--grad-clip", grad_clip, ">=0"),
        ("--seed", seed, ">=0"),
        ("--eval-every", eval_every, ">=0"),
        ("--eval-batches", eval_batches, ">0"),
        ("--checkpoint-every", checkpoint_every, ">=0"),
        ("--checkpoint-minutes", checkpoint_minutes, ">=0"),
        ("--log-every", log_every, ">=0"),
        ("--threads", threads, ">=0"),
        ("--restart-warmup-steps", restart_warmup_steps, ">=0"),
        ("--restart-steps", restart_steps, ">=0"),
        ("--nproc", nproc, ">0"),
        ("--mup-base-width", mup_base_width, ">=0"),
    )
    shape_over = {
        k: v
        for k, v in dict(
            d_model=d_model,
            n_layers=layers,
            n_heads=heads,
            seq_len=seq_len,
            vocab=vocab,
            arch=arch,
            latents=latents,
            prefix_dropout=prefix_dropout,
            pos=pos,
            mup_base=mup_base_width,
        ).items()
        if v is not None
    }

    def given(**kw: Any) -> dict[str, Any]:
        return {k: v for k, v in kw.items() if v is not None}

    over: dict[str, Any] = given(
        data=data,
        batch_size=batch_size,
        grad_accum=grad_accum,
        steps=steps,
        tokens=int(tokens) if tokens is not None else None,
        budget_flops=budget,
        convention=convention,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        seed=seed,
    )
    over["schedule"] = given(kind=schedule, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio)
    over["runtime"] = given(
        device=device,
        dtype=dtype,
        compile=compile,
        compile_mode=compile_mode,
        activation_checkpointing=activation_checkpointing,
        threads=threads,
        allow_long=True if allow_long else None,
    )
    over["logging"] = given(
        eval_every=eval_every,
        eval_batches=eval_batches,
        checkpoint_every=checkpoint_every,
        checkpoint_minutes=checkpoint_minutes,
        log_every=log_every,
    )
    if logger is not None or logger_uri is not None:
        from scalinglab.train.trackers import TrackerConfig, resolve_uri

        kind = logger if logger is not None else "mlflow"
        over["logging"].update(TrackerConfig(kind, resolve_uri(kind, logger_uri, Path.cwd())).to_logging())

    ckpt_step = 0
    if resume is not None:
        if out is not None and Path(out) != resume:
            raise UserError("give either --resume RUN or --out RUN, not two different folders")
        run_dir = resume
        run = RunDir(resume)
        if run.checkpoint.exists():
            from scalinglab.train.checkpoint import load_checkpoint

            ck = load_checkpoint(run.checkpoint)
            base = RunSpec.from_dict(ck["spec"]).to_dict()
            ckpt_step = int(ck["step"])
        elif run.config.exists():
            base = _read_toml(run.config)
        else:
            raise UserError(
                f"{resume} has neither {RunDir.CHECKPOINT} nor {RunDir.CONFIG}: start the run with --config/--data and --out {resume}"
            )
        if config is not None:
            base = _merge(base, {k: v for k, v in _read_toml(config).items() if k != "shape"})
    else:
        if out is None:
            raise UserError("no run folder given: pass --out RUN (or --resume RUN to continue one)")
        run_dir = out
        base = _read_toml(config) if config is not None else {}
    if restart_warmup_steps is not None or reset_schedule or restart_steps is not None:
        over["schedule"].update(
            restart_steps=restart_steps if restart_steps is not None else ckpt_step,
            restart_warmup_steps=restart_warmup_steps or 0,
            reset=reset_schedule,
        )
    from_flags = {
        *shape_over,
        *(k for k, v in over.items() if not isinstance(v, dict)),
        *(f"{k}.{n}" for k, v in over.items() if isinstance(v, dict) for n in v),
    }
    try:
        spec = _build_spec(base, shape_over, over)
    except SpecError as e:
        raise UserError(_where(e, from_flags, config if config is not None else resume)) from None
    if not run_dir.joinpath(RunDir.CHECKPOINT).exists():  # a fresh run: its folder must be writable before it starts
        from scalinglab.fileio import check_output

        check_output(run_dir, "dir", "--out" if resume is None else "--resume", need_bytes=12 * spec.shape.params())

    # The sweep relaunches with --config RUN/<spec> --out RUN: continue if the checkpoint is this spec's.
    do_resume = resume is not None
    run = RunDir(run_dir)
    if not do_resume and run.checkpoint.exists():
        from scalinglab.train.checkpoint import load_checkpoint

        if RunSpec.from_dict(load_checkpoint(run.checkpoint)["spec"]) != spec:
            raise UserError(
                f"{run_dir} already holds a different run ({RunDir.CHECKPOINT}): use --resume {run_dir} or a fresh --out"
            )
        do_resume = True

    from scalinglab.train import distributed, run_training

    if nproc != 1 and not distributed.in_worker():  # relaunch as N ranks; rank 0 writes RUN/record.json
        rc = distributed.launch(spec, run_dir, nproc, do_resume, progress)
        if not run.record.is_file():
            raise SystemExit(rc or 1)
        rec = run.read_record()
        if rc not in (0, 3) and rec.status not in ("done", "diverged"):
            raise SystemExit(2 if rc == 2 else 1)
    else:
        try:
            rec = run_training(spec, run_dir, resume=do_resume, progress=progress)
        except RunTooLong as e:
            raise UserError(
                f"{e.problem}; lower --budget/--steps/--tokens, or pass --allow-long to train anyway"
            ) from None
        except SpecError as e:
            raise UserError(_where(e, from_flags, config if config is not None else resume)) from None
    if json_out:
        emit_json(rec.to_dict())
    elif not distributed.in_worker() or distributed.rank() == 0:  # one line per run, not per rank
        import sys

        sys.stderr.write(
            f"{rec.status}: final val loss {rec.final_val_loss}, {rec.tokens:,} tokens, {rec.flops:.3g} FLOPs -> {run_dir}\n"
        )
    if rec.status == "diverged":
        import sys

        sys.stderr.write(f"error: run diverged: {rec.message}\n")
        sys.exit(3)  # SystemExit passes through cli.main (typer.Exit would be swallowed without standalone mode)


def _where(e, from_flags: set[str], source: Path | None) -> str:
    """A bad setting named as the user gave it: the flag, or the key of the config file (or checkpoint)."""
    from scalinglab.cli.common import flag

    if e.key in from_flags:
        return f"bad {flag(e.key)} {e.value!r}; give {e.want}"
    where = f"key {e.key} in {source}" if source is not None else f"run setting {e.key}"
    return f"{where} is {e.value!r}, not {e.want}; fix that key"
