"""Grow a run folder: RUN (a trained gpt run) -> GROWN, a run folder of the grown shape that
`scalinglab train --resume GROWN` continues (model, Adam state mapped, step, RNG, metrics carried over)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from scalinglab.errors import FolderError
from scalinglab.fileio import staged_dir
from scalinglab.folders import RunDir
from scalinglab.growth.operators import check_growable, grow_state
from scalinglab.records import RunRecord, RunSpec


def _named_moments(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, dict]:
    return {n: dict(opt.state[p]) for n, p in model.named_parameters() if len(opt.state.get(p, {})) > 0}


def grow_run(
    run: str | Path,
    out: str | Path,
    width: int = 1,
    depth: int = 1,
    mode: str = "alternate",
    noise: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Write OUT as the grown run; returns a summary dict. Nothing is left in OUT if anything fails."""
    from scalinglab.models import build_model
    from scalinglab.train.checkpoint import load_checkpoint, save_checkpoint
    from scalinglab.train.optim import build_optimizer

    run, out = Path(run), Path(out)
    src = RunDir(run)
    if not src.has_checkpoint():
        raise FolderError(f"{run} has no {RunDir.CHECKPOINT}", hint="give a run folder trained by `scalinglab train`")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FolderError(
            f"{out} already exists and is not empty (or is a file)", hint="pick a fresh folder", keys=("out",)
        )
    ckpt = load_checkpoint(src.checkpoint)
    spec = RunSpec.from_dict(ckpt["spec"])
    check_growable(spec.shape, width, depth, mode)

    old = build_model(spec.shape)
    old.load_state_dict(ckpt["model"])
    moments = None
    if ckpt.get("optimizer") is not None:
        opt = build_optimizer(old, spec, 0.0, "cpu")
        opt.load_state_dict(ckpt["optimizer"])
        moments = _named_moments(old, opt)

    shape, sd, moments = grow_state(ckpt["model"], moments, spec.shape, width, depth, mode, noise, seed)
    step = int(ckpt.get("step", 0))
    # an earlier restart's warmup and reset do not carry over (`train --resume GROWN --restart-warmup-steps K` sets
    # this one's); the restart itself begins where growth happened
    sched = replace(spec.schedule, restart_steps=step, restart_warmup_steps=0, reset=False)
    origin = replace(
        spec.origin,
        grown_from=str(run),
        growth={
            "width": width,
            "depth": depth,
            "mode": mode,
            "noise": noise,
            "at_step": step,
            "from_shape": spec.shape.name,
        },
    )
    new_spec = replace(spec, shape=shape, schedule=sched, origin=origin, run_id=f"{spec.run_id or run.name}-grown")
    new_model = build_model(shape)
    new_model.load_state_dict(sd)
    opt_state = None
    if moments is not None:
        new_opt = build_optimizer(new_model, new_spec, 0.0, "cpu")
        for n, p in new_model.named_parameters():
            if n in moments:
                new_opt.state[p] = moments[n]
        opt_state = new_opt.state_dict()

    new_ckpt = {k: v for k, v in ckpt.items() if k not in ("format", "version")}
    new_ckpt.update(model=new_model.state_dict(), optimizer=opt_state, spec=new_spec.to_dict(), step=step)

    rec_old = src.read_record_dict() or {}
    rec = RunRecord(
        spec=new_spec,
        status="pending",
        curve=RunDir.METRICS,
        steps_done=step,
        params=shape.params(),
        convention=new_spec.convention,
        tokens=rec_old.get("tokens", step * spec.tokens_per_step),
        flops=float(rec_old.get("flops", 0.0)),
        min_val_loss=rec_old.get("min_val_loss"),
        final_val_loss=rec_old.get("final_val_loss"),
        final_train_loss=rec_old.get("final_train_loss"),
        wall_time_s=float(rec_old.get("wall_time_s", 0.0)),
        message=f"grown from {run} ({spec.shape.name} -> {shape.name}) at step {step}",
    )

    with staged_dir(out, "grow") as tmp:  # nothing is left in OUT if anything fails
        dst = RunDir(tmp)
        save_checkpoint(dst.checkpoint, new_ckpt)
        dst.write_spec(new_spec)
        dst.write_record(rec)
        if src.metrics.is_file():
            shutil.copyfile(src.metrics, dst.metrics)
    return {
        "run": str(run),
        "out": str(out),
        "from_shape": spec.shape.name,
        "to_shape": shape.name,
        "params_before": spec.shape.params(),
        "params_after": shape.params(),
        "step": step,
        "width": width,
        "depth": depth,
        "mode": mode,
        "noise": noise,
        "optimizer_state": moments is not None,
    }
