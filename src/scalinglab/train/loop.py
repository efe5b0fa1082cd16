"""The training loop: composes model, optimizer, schedule, batches, checkpoint and metrics into one run.

Hot path: batches prefetched to the device (pinned, non_blocking), loss summed on the device and read
only at log/eval/checkpoint steps, so a GPU step issues no host sync.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path

import torch

from scalinglab.data.loader import TokenData
from scalinglab.errors import UserError
from scalinglab.folders import RunDir
from scalinglab.models import build_model
from scalinglab.records import RunRecord, RunSpec
from scalinglab.train import distributed, wsd
from scalinglab.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from scalinglab.train.metrics import MetricsLog
from scalinglab.train.optim import build_optimizer
from scalinglab.train.schedule import Schedule, default_warmup, kaplan_lr, kaplan_n
from scalinglab.train.step import Batches, evaluate, train_step


class Diverged(Exception):
    pass


def resolve_steps(spec: RunSpec) -> int:
    """Optimizer steps from the one stop criterion given: steps, tokens or budget_flops (ceil: reach it)."""
    given = [k for k in ("steps", "tokens", "budget_flops") if getattr(spec, k)]
    if len(given) != 1:
        what = "none" if not given else ", ".join(given)
        raise UserError(f"a run needs exactly one of steps, tokens, budget_flops (got {what}): give one of --steps, --tokens, --budget")
    if spec.steps:
        return int(spec.steps)
    if spec.tokens:
        return math.ceil(spec.tokens / spec.tokens_per_step - 1e-9)
    return math.ceil(spec.budget_flops / (flops_per_token(spec) * spec.tokens_per_step) - 1e-9)


def flops_per_token(spec: RunSpec) -> float:
    return spec.shape.flops_per_token(spec.convention)


def peak_lr(spec: RunSpec) -> float:
    return spec.lr if spec.lr > 0 else kaplan_lr(kaplan_n(spec.shape.d_model, spec.shape.n_layers))


def make_schedule(spec: RunSpec, total: int) -> Schedule:
    x = spec.extra
    return Schedule(
        peak=peak_lr(spec), total=total, kind=spec.schedule,
        warmup=spec.warmup_steps if spec.warmup_steps > 0 else default_warmup(total),
        min_ratio=spec.min_lr_ratio, decay_frac=spec.decay_frac,
        restart_at=int(x.get("restart_steps", -1)), restart_warmup=int(x.get("restart_warmup_steps", 0)),
        reset=bool(x.get("reset_schedule", False)),
    )


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for but CUDA is not available: use --device cpu or auto")
    return torch.device(name)


def autocast_ctx(spec: RunSpec, device: torch.device):
    dt = spec.dtype
    if dt == "auto":
        dt = "bf16" if device.type == "cuda" else "fp32"
    if dt == "fp32":
        return contextlib.nullcontext()
    if dt == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise UserError(f"unknown dtype {spec.dtype!r}: use auto, fp32 or bf16")


def _write_record(out: Path, rec: RunRecord) -> None:
    RunDir(out).write_record(rec)


def _progress(enabled: bool, total: int, start: int):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if not enabled:
        return None
    p = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=Console(file=sys.stderr), transient=False)
    p.start()
    p.add_task("train", total=total, completed=start, info="")
    return p


def run_training(spec: RunSpec, out_dir: str | Path, resume: bool = False, progress: bool = True,
                 stop_at_step: int | None = None) -> RunRecord:
    """Train `spec` into the run folder `out_dir`; resume=True continues from its checkpoint if present.

    Returns the RunRecord also written to the run folder (status done, diverged, or pending when
    stopped early by stop_at_step). Raises UserError for bad input.
    CPU threads: spec.extra["threads"], else 1 for models under 1M parameters (more threads only add sync
    overhead there: 5x slower on 2 busy cores). Bit-exact resume on CPU needs the same thread count.
    """
    threads0 = torch.get_num_threads()
    n = int(spec.extra.get("threads", 0))
    on_cpu = spec.device == "cpu" or (spec.device == "auto" and not torch.cuda.is_available())
    if n == 0 and on_cpu and spec.shape.params() < 1_000_000:
        n = 1
    if n > 0:
        torch.set_num_threads(n)
    try:
        return _run_training(spec, out_dir, resume, progress, stop_at_step)
    finally:
        torch.set_num_threads(threads0)


def _run_training(spec: RunSpec, out_dir: str | Path, resume: bool, progress: bool, stop_at_step: int | None) -> RunRecord:
    out = Path(out_dir)
    ckpt_path = RunDir(out).checkpoint
    ckpt = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if not resume and ckpt_path.exists():
        raise UserError(f"{out} already holds a trained run ({ckpt_path.name}): continue it with `scalinglab train --resume {out}` or pick a fresh --out")
    if not spec.data:
        raise UserError("no training data given: pass --data DATA (a folder made by `scalinglab prep`)")
    data = TokenData(spec.data)
    shape = spec.shape
    if data.vocab_size > shape.vocab:
        raise UserError(f"data vocabulary {data.vocab_size} exceeds the model's vocab {shape.vocab}: leave --vocab unset or give at least {data.vocab_size}")
    for k in ("batch_size", "grad_accum"):
        if getattr(spec, k) <= 0:
            raise UserError(f"{k} must be positive, got {getattr(spec, k)}")
    total = resolve_steps(spec)
    sched = make_schedule(spec, total)
    fpt = flops_per_token(spec)
    dist = distributed.from_env(spec)  # None unless started by `scalinglab train --nproc N`
    if dist is not None:  # only rank 0 writes the run folder
        out, progress = dist.out_dir(out), progress and dist.is_main
        ckpt_path = RunDir(out).checkpoint
    device = dist.device if dist is not None else pick_device(spec.device)
    amp = autocast_ctx(spec, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside autocast (fp32 runs) use TF32
    log_every = int(spec.extra.get("log_every", 10)) or 10

    torch.manual_seed(spec.seed)
    raw = build_model(shape)
    dropout_rng = getattr(raw, "dropout_rng", None)
    if dropout_rng is not None:
        dropout_rng.manual_seed(spec.seed + 1)
    step, state = 0, {}
    if ckpt is not None:
        try:
            raw.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            raise UserError(f"{ckpt_path} does not fit shape {shape.name} of the run's spec ({str(e).splitlines()[0][:100]}); resume with the spec it was trained with") from None
        step, state = int(ckpt["step"]), dict(ckpt.get("state") or {})
        if step > total:
            raise UserError(f"{ckpt_path} is at step {step}, past this spec's {total} steps: give a larger --steps/--tokens/--budget")
    raw.to(device)
    raw.activation_checkpointing = spec.activation_checkpointing
    model = dist.wrap(raw) if dist is not None else raw
    if spec.compile:
        # reduce-overhead (CUDA graphs) measured fastest for small models (bench/results/throughput-*.json)
        mode = spec.extra.get("compile_mode", "reduce-overhead" if device.type == "cuda" else "default")
        model = torch.compile(model, mode=None if mode == "default" else mode)
    opt = build_optimizer(raw, spec, sched(step), device.type)
    if ckpt is not None and ckpt.get("optimizer") is not None:
        opt.load_state_dict(ckpt["optimizer"])
    if ckpt is not None and ckpt.get("rng"):
        set_rng_state(ckpt["rng"], dropout_rng)

    # FLOPs carried from the checkpoint: a grown run's earlier steps were taken by the smaller model
    step0, flops0 = step, float(state.get("flops", step * spec.tokens_per_step * fpt))
    out.mkdir(parents=True, exist_ok=True)
    RunDir(out).write_spec(spec)
    rec = RunRecord(spec=spec, status="running", curve=RunDir.METRICS, convention=spec.convention, params=shape.params(),
                    steps_done=step, tokens=step * spec.tokens_per_step, flops=flops0,
                    device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    min_val_loss=state.get("min_val_loss"), final_val_loss=state.get("last_val_loss"),
                    final_train_loss=state.get("last_train_loss"), wall_time_s=float(state.get("elapsed_s", 0.0)))
    _write_record(out, rec)
    metrics = MetricsLog(out, step, tensorboard=bool(spec.extra.get("tensorboard", True)))
    val = torch.from_numpy(data.val_windows(shape.seq_len, spec.eval_batches * spec.batch_size)).to(device)
    batches = Batches(data, spec, device, rows=dist.rows if dist is not None else slice(None))
    brs = wsd.WsdBranches.from_spec(spec, out, total, sched, fpt, fresh=ckpt is None)  # None unless extra.branches
    params = [p for p in raw.parameters() if p.requires_grad]
    bar = _progress(progress, total, step)
    t0, elapsed0 = time.perf_counter(), rec.wall_time_s
    last_ckpt = step if ckpt is not None else -1
    loss_sum = torch.zeros((), device=device)
    bad = torch.zeros((), device=device)  # counts non-finite grad norms since the last check
    n_sum, t_win, step_win = 0, time.perf_counter(), step

    def checkpoint() -> None:
        nonlocal last_ckpt
        # an update can leave non-finite weights before any loss shows it: never store those
        if not bool(torch.stack([p.detach().isfinite().all() for p in params]).all()):
            raise Diverged(f"weights became non-finite at step {step}")
        st = {"elapsed_s": elapsed0 + time.perf_counter() - t0, "min_val_loss": rec.min_val_loss,
              "last_val_loss": rec.final_val_loss, "last_train_loss": rec.final_train_loss,
              "tokens": rec.tokens, "flops": rec.flops}
        save_checkpoint(ckpt_path, {"model": raw.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                    "spec": spec.to_dict(), "rng": rng_state(dropout_rng), "state": st})
        last_ckpt = step

    try:
        model.train()
        slot = [batches.get(step) if step < total else None]  # this step's batches; train_step puts the next's there
        while step < total:
            if brs is not None:
                brs.maybe_branch(step, model, raw, opt, batches, val, amp, params)
            lr = sched(step)
            train_step(model, opt, slot[0], amp, lr, params, spec.grad_clip, loss_sum, bad,
                       prefetch=(lambda s=step + 1: batches.get(s)) if step + 1 < total else None, out=slot)
            step += 1
            n_sum += 1
            do_eval = step == total or (spec.eval_every > 0 and step % spec.eval_every == 0)
            do_ckpt = step == total or (spec.checkpoint_every > 0 and step % spec.checkpoint_every == 0) or step == stop_at_step
            if not (do_eval or do_ckpt or step % log_every == 0):
                continue
            # sync point: the window's mean loss, divergence check, log line
            if dist is not None:
                dist.mean_(loss_sum)
            train_loss = (loss_sum / n_sum).item()
            if not math.isfinite(train_loss) or bad.item() > 0:
                raise Diverged(f"loss became {train_loss} (or a gradient norm non-finite) between steps {step - n_sum + 1} and {step}")
            loss_sum.zero_()
            n_sum = 0
            rec.steps_done, rec.tokens = step, step * spec.tokens_per_step
            rec.flops = flops0 + (step - step0) * spec.tokens_per_step * fpt
            rec.final_train_loss = train_loss
            now = time.perf_counter()
            row = {"step": step, "tokens": rec.tokens, "flops": rec.flops, "lr": lr, "train_loss": train_loss,
                   "time_s": round(elapsed0 + now - t0, 3)}
            if do_eval:
                # the uncompiled model: a compiled one would compile (and graph) a second, no-grad program per
                # run, which costs a sweep of small runs more than their few eager eval batches
                v = evaluate(raw, val, spec.batch_size, amp)
                if not math.isfinite(v):
                    raise Diverged(f"validation loss became {v} at step {step}")
                row["val_loss"] = v
                rec.final_val_loss = v
                rec.min_val_loss = v if rec.min_val_loss is None else min(rec.min_val_loss, v)
            metrics.log(row)
            if bar is not None:
                tps = (step - step_win) * spec.tokens_per_step / max(1e-9, now - t_win)
                info = f"loss {train_loss:.4f}" + (f" val {row['val_loss']:.4f}" if do_eval else "") + f"  {tps:,.0f} tok/s"
                bar.update(bar.task_ids[0], completed=step, info=info)
            t_win, step_win = now, step
            if do_ckpt:
                checkpoint()
            if stop_at_step is not None and step >= stop_at_step and step < total:
                rec.status, rec.message = "pending", f"stopped at step {step} of {total}; resume with scalinglab train --resume {out}"
                break
        else:
            rec.status, rec.message = "done", ""
    except Diverged as e:
        rec.status = "diverged"
        kept = f"last good checkpoint: step {last_ckpt}" if last_ckpt >= 0 else "no checkpoint was written"
        rec.message = f"{e}; {kept}. Lower --lr, raise --warmup-steps or set --grad-clip"
    except KeyboardInterrupt:
        rec.status, rec.message = "failed", f"interrupted at step {step}; continue with scalinglab train --resume {out}"
        raise
    except UserError:
        rec.status = "failed"
        raise
    except Exception as e:
        rec.status, rec.message = "failed", f"{type(e).__name__}: {e}"[:500]
        raise
    finally:
        if bar is not None:
            bar.stop()
        metrics.close()
        if brs is not None:
            brs.close(rec)
        rec.wall_time_s = elapsed0 + time.perf_counter() - t0
        rec.model_flops_per_s = rec.flops / rec.wall_time_s if rec.wall_time_s > 0 else 0.0
        _write_record(out, rec)
        if dist is not None:
            dist.close()
    return rec
