"""The trainer (torchtitan style): a small object composing model, optimizer, schedule, batches, checkpoint and
metrics into one run through setup, step, evaluate, checkpoint and run; hooks (WSD branches) act between steps.

Hot path: batches prefetched to the device (pinned, non_blocking), loss summed on the device and read
only at log/eval/checkpoint steps, so a GPU step issues no host sync.
"""

from __future__ import annotations

import contextlib
import copy
import math
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import torch

from scalinglab.data.loader import TokenData
from scalinglab.errors import ConfigError, FolderError, Interrupted, UserError
from scalinglab.fileio import os_error_message
from scalinglab.folders import RunDir
from scalinglab.models import build_model
from scalinglab.records import RunRecord, RunSpec, validate_spec
from scalinglab.train import distributed, graph, trackers, turns, wsd
from scalinglab.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from scalinglab.train.guard import StopSignals, check_duration
from scalinglab.train.metrics import MetricsLog
from scalinglab.train.optim import build_optimizer
from scalinglab.train.schedule import Schedule, default_warmup, kaplan_lr, kaplan_n
from scalinglab.train.step import Accum, Batches, Micro, Stepper, evaluate


class Diverged(Exception):
    pass


def resolve_steps(spec: RunSpec) -> int:
    """Optimizer steps from the one stop criterion given: steps, tokens or budget_flops (ceil: reach it)."""
    given = [k for k in ("steps", "tokens", "budget_flops") if getattr(spec, k)]
    if len(given) != 1:
        what = "none" if not given else ", ".join(given)
        raise ConfigError(
            f"a run needs exactly one of steps, tokens, budget_flops (got {what})",
            hint="give one",
            keys=("steps", "tokens", "budget_flops"),
        )
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
    s = spec.schedule
    try:
        return Schedule(
            peak=peak_lr(spec),
            total=total,
            kind=s.kind,
            warmup=s.warmup_steps if s.warmup_steps > 0 else default_warmup(total),
            min_ratio=s.min_lr_ratio,
            decay_frac=s.decay_frac,
            restart_at=s.restart_steps,
            restart_warmup=s.restart_warmup_steps,
            reset=s.reset,
        )
    except ValueError as e:
        raise ConfigError(str(e), keys=("schedule.kind",)) from None


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for but CUDA is not available", hint="use cpu or auto", keys=("device",)
        )
    return torch.device(name)


def autocast_ctx(spec: RunSpec, device: torch.device):
    dt = spec.runtime.dtype
    if dt == "auto":
        dt = "bf16" if device.type == "cuda" else "fp32"
    if dt == "fp32":
        return contextlib.nullcontext()
    if dt == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ConfigError(f"unknown dtype {spec.runtime.dtype!r}", hint="use auto, fp32 or bf16", keys=("dtype",))


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
    p = Progress(
        TextColumn("train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=False,
    )
    p.start()
    p.add_task("train", total=total, completed=start, info="")
    return p


class Hook(Protocol):
    """Acts on the trainer between steps (scalinglab.train.wsd.WsdBranches is one)."""

    def before_step(self, trainer: Trainer, step: int) -> None: ...

    def close(self, trainer: Trainer, rec: RunRecord) -> None: ...


class Trainer:
    """One run of `spec` into the run folder `out_dir`: `Trainer(...).setup().run() -> RunRecord`.

    resume=True continues from the folder's checkpoint if present; stop_at_step stops early (status pending).
    `step`, `evaluate`, `snapshot`/`restore` are what hooks use; fields are set by `setup`.
    """

    def __init__(
        self,
        spec: RunSpec,
        out_dir: str | Path,
        resume: bool = False,
        progress: bool = True,
        stop_at_step: int | None = None,
    ):
        self.spec, self.run_dir, self.resume = spec, RunDir(out_dir), resume
        self.progress, self.stop_at_step = progress, stop_at_step

    # -- setup ------------------------------------------------------------------------------------
    def setup(self) -> Trainer:
        spec, shape = self.spec, self.spec.shape
        ckpt = self._load_checkpoint()
        if not spec.data:
            raise ConfigError("no training data given", hint="give a folder made by `scalinglab prep`", keys=("data",))
        validate_spec(spec)
        self.data = TokenData(spec.data)
        if self.data.vocab_size > shape.vocab:
            raise ConfigError(
                f"data vocabulary {self.data.vocab_size} exceeds the model's vocab {shape.vocab}",
                hint=f"leave vocab unset or give at least {self.data.vocab_size}",
                keys=("vocab",),
            )
        for k in ("batch_size", "grad_accum"):
            if getattr(spec, k) <= 0:
                raise ConfigError(f"{k} must be positive, got {getattr(spec, k)}", keys=(k,))
        # windows longer than the data fail here, before the run folder exists (not after it says "running")
        self.data.train_batch(0, 1, shape.seq_len, spec.seed)
        val = self.data.val_windows(shape.seq_len, spec.logging.eval_batches * spec.batch_size)
        self.total = resolve_steps(spec)
        self.sched = make_schedule(spec, self.total)
        self.fpt = flops_per_token(spec)
        self.dist = distributed.from_env(spec)  # None unless started by `scalinglab train --nproc N`
        if self.dist is not None:  # only rank 0 writes the run folder
            self.run_dir = RunDir(self.dist.out_dir(self.run_dir.path))
            self.progress = self.progress and self.dist.is_main
        self.device = self.dist.device if self.dist is not None else pick_device(spec.runtime.device)
        self.amp = autocast_ctx(spec, self.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside autocast (fp32 runs) use TF32
        self.log_every = spec.logging.log_every or 10
        done = int(ckpt["step"]) if ckpt is not None else 0
        latents = shape.latents if shape.arch == "perceiver-ar" else 0
        check_duration(
            (self.total - min(done, self.total)) * spec.tokens_per_step * self.fpt,
            self.data.epochs(self.total * spec.tokens_per_step, shape.seq_len, latents),
            self.device.type,
            self.dist.world if self.dist is not None else 1,
            allow=spec.runtime.allow_long,
        )
        self._build_model(ckpt)
        self.metrics = self.bar = None
        self.hooks: list[Hook] = []
        self.created = (
            not self.run_dir.path.exists()
        )  # a folder made here goes again if the run fails before a checkpoint
        try:
            self._start_record(ckpt)
            self._setup_outputs(ckpt, val)
        except BaseException as e:
            self._fail(e)
            self._close()
            if isinstance(e, OSError):
                raise self._as_user_error(e) from None
            raise
        return self

    def _setup_outputs(self, ckpt: dict[str, Any] | None, val) -> None:
        spec, shape = self.spec, self.spec.shape
        main = self.dist is None or self.dist.is_main  # one tracker run per run, from rank 0
        tracker = trackers.make_tracker(
            trackers.TrackerConfig.from_logging(spec.logging) if main else trackers.TrackerConfig(),
            self.run_dir.path,
            spec.run_id or self.run_dir.path.name,
            {**trackers.flat_params(spec.to_dict()), "params": shape.params(), "flops_per_token": self.fpt},
        )
        self.metrics = MetricsLog(
            self.run_dir.path, self.step_done, tensorboard=spec.logging.tensorboard, tracker=tracker
        )
        self.val = torch.from_numpy(val).to(self.device)
        self.batches = Batches(
            self.data, spec, self.device, rows=self.dist.rows if self.dist is not None else slice(None)
        )
        branches = wsd.WsdBranches.from_spec(
            spec, self.run_dir.path, self.total, self.sched, self.fpt, fresh=ckpt is None
        )
        self.hooks = [branches] if branches is not None else []
        self.bar = _progress(self.progress, self.total, self.step_done)
        self.window = Accum.zeros(self.device)  # the losses since the last sync point

    def _load_checkpoint(self) -> dict[str, Any] | None:
        path = self.run_dir.checkpoint
        if not self.resume and path.exists():
            raise FolderError(
                f"{self.run_dir.path} already holds a trained run ({path.name})",
                hint="continue it or pick a fresh run folder",
                keys=("resume", "out"),
            )
        return load_checkpoint(path) if self.resume and path.exists() else None

    def _build_model(self, ckpt: dict[str, Any] | None) -> None:
        spec, shape = self.spec, self.spec.shape
        torch.manual_seed(spec.seed)
        raw = build_model(shape)
        self.dropout_rng = getattr(raw, "dropout_rng", None)
        if self.dropout_rng is not None:
            self.dropout_rng.manual_seed(spec.seed + 1)
        self.step_done, self.state = 0, {}
        if ckpt is not None:
            try:
                raw.load_state_dict(ckpt["model"])
            except RuntimeError as e:
                raise FolderError(
                    f"{self.run_dir.checkpoint} does not fit shape {shape.name} of the run's spec "
                    f"({str(e).splitlines()[0][:100]})",
                    hint="resume with the spec it was trained with",
                ) from None
            self.step_done, self.state = int(ckpt["step"]), dict(ckpt.get("state") or {})
            if self.step_done > self.total:
                raise ConfigError(
                    f"{self.run_dir.checkpoint} is at step {self.step_done}, past this spec's {self.total} steps",
                    hint="give a larger stop criterion",
                    keys=("steps", "tokens", "budget_flops"),
                )
        raw.to(self.device)
        raw.activation_checkpointing = spec.runtime.activation_checkpointing
        model = self.dist.wrap(raw) if self.dist is not None else raw
        rt = spec.runtime
        self.graphed = rt.compile and graph.eligible(
            self.device, rt.compile_mode, self.dist is not None, self.dropout_rng, rt.activation_checkpointing
        )
        if rt.compile:
            # the whole step as one CUDA graph where it can be (train/graph.py), else reduce-overhead (CUDA graphs
            # of forward and backward), measured fastest for small models (bench/results/throughput-*.json)
            mode = rt.compile_mode or ("reduce-overhead" if self.device.type == "cuda" else "default")
            model = torch.compile(model, mode=None if mode == "default" or self.graphed else mode)
        self.raw, self.model = raw, model
        self.opt = build_optimizer(raw, spec, self.sched(self.step_done), self.device.type)
        if ckpt is not None and ckpt.get("optimizer") is not None:
            self.opt.load_state_dict(ckpt["optimizer"])
        if ckpt is not None and ckpt.get("rng"):
            set_rng_state(ckpt["rng"], self.dropout_rng)
        self.params = [p for p in raw.parameters() if p.requires_grad]
        make = graph.GraphedStep if self.graphed else Stepper
        self.stepper = make(model, self.opt, self.params, self.amp, spec.grad_clip)

    def _start_record(self, ckpt: dict[str, Any] | None) -> None:
        spec, step, state = self.spec, self.step_done, self.state
        self.t0 = time.perf_counter()
        self.last_ckpt = step if ckpt is not None else -1
        # FLOPs carried from the checkpoint: a grown run's earlier steps were taken by the smaller model
        self.step0, self.flops0 = step, float(state.get("flops", step * spec.tokens_per_step * self.fpt))
        dev = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        self.rec = RunRecord(
            spec=spec,
            status="running",
            curve=RunDir.METRICS,
            convention=spec.convention,
            params=spec.shape.params(),
            steps_done=step,
            tokens=step * spec.tokens_per_step,
            flops=self.flops0,
            device=dev,
            min_val_loss=state.get("min_val_loss"),
            final_val_loss=state.get("last_val_loss"),
            final_train_loss=state.get("last_train_loss"),
            wall_time_s=float(state.get("elapsed_s", 0.0)),
        )
        self.elapsed0 = self.rec.wall_time_s
        self.run_dir.path.mkdir(parents=True, exist_ok=True)
        self.run_dir.write_spec(spec)
        self.run_dir.write_record(self.rec)

    # -- what hooks use ---------------------------------------------------------------------------
    def step(self, micro: Micro, lr: float, acc: Accum, prefetch: int | None = None) -> Micro | None:
        """One optimizer step over the micro-batches (Stepper: no host sync, losses summed into acc on the device).
        Returns the batches of step `prefetch` (if given), fetched while the backward kernels run."""
        return self.stepper(micro, lr, acc, (lambda: self.batches.get(prefetch)) if prefetch is not None else None)

    def evaluate(self) -> float:
        """Mean validation loss over the run's fixed windows (one host sync)."""
        # the uncompiled model: a compiled one would compile (and graph) a second, no-grad program per run,
        # which costs a sweep of small runs more than their few eager evaluation batches
        return evaluate(self.raw, self.val, self.spec.batch_size, self.amp)

    def snapshot(self) -> dict[str, Any]:
        """Model, optimizer and RNG state, to come back to after a detour (a WSD cooldown branch)."""
        return {
            "model": {k: v.detach().clone() for k, v in self.raw.state_dict().items()},
            "optimizer": copy.deepcopy(self.opt.state_dict()),
            "rng": rng_state(self.dropout_rng),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        self.raw.load_state_dict(snap["model"])  # copies into the parameters (a recorded graph keeps them)
        if self.graphed:
            graph.restore_optimizer(self.opt, snap["optimizer"])
        else:
            self.opt.load_state_dict(snap["optimizer"])
        set_rng_state(snap["rng"], self.dropout_rng)

    # -- checkpoint and record --------------------------------------------------------------------
    def checkpoint(self, step: int) -> None:
        # an update can leave non-finite weights before any loss shows it: never store those
        if not bool(torch.stack([p.detach().isfinite().all() for p in self.params]).all()):
            raise Diverged(f"weights became non-finite at step {step}")
        rec = self.rec
        st = {
            "elapsed_s": self.elapsed0 + time.perf_counter() - self.t0,
            "min_val_loss": rec.min_val_loss,
            "last_val_loss": rec.final_val_loss,
            "last_train_loss": rec.final_train_loss,
            "tokens": rec.tokens,
            "flops": rec.flops,
        }
        save_checkpoint(
            self.run_dir.checkpoint,
            {
                "model": self.raw.state_dict(),
                "optimizer": graph.portable_state(self.opt),
                "step": step,
                "spec": self.spec.to_dict(),
                "rng": rng_state(self.dropout_rng),
                "state": st,
            },
        )
        self.last_ckpt, self.ckpt_t = step, time.perf_counter()

    def _periodic_checkpoint(self, step: int) -> bool:
        """Every checkpoint_every steps, once checkpoint_minutes of training have passed since the last checkpoint
        (or the start). A run holds its GPU's turn while it writes one: 436 MB at 36M parameters, 0.7-1.2 s on a
        2-core host, so ten add 7-12 s to a run that trains for a minute. DDP ranks must all decide
        alike (the sync point is a collective), so they keep the step rule alone."""
        log = self.spec.logging
        if log.checkpoint_every <= 0 or step % log.checkpoint_every:
            return False
        return self.dist is not None or time.perf_counter() - self.ckpt_t >= 60 * log.checkpoint_minutes

    def _sync_point(self, step: int, n_steps: int, lr: float, do_eval: bool) -> tuple[dict[str, Any], float]:
        """The window's mean loss, the divergence check, the record's counters and the metric line; returns the
        line and the time the step's work was done (after the sync, before the evaluation)."""
        spec, rec, acc = self.spec, self.rec, self.window
        if self.dist is not None:
            self.dist.mean_(acc.loss_sum)
        train_loss = (acc.loss_sum / n_steps).item()
        if not math.isfinite(train_loss) or acc.bad.item() > 0:
            raise Diverged(
                f"loss became {train_loss} (or a gradient norm non-finite) between steps {step - n_steps + 1} and {step}"
            )
        acc.loss_sum.zero_()
        rec.steps_done, rec.tokens = step, step * spec.tokens_per_step
        rec.flops = self.flops0 + (step - self.step0) * spec.tokens_per_step * self.fpt
        rec.final_train_loss = train_loss
        now = time.perf_counter()
        row = {
            "step": step,
            "tokens": rec.tokens,
            "flops": rec.flops,
            "lr": lr,
            "train_loss": train_loss,
            "time_s": round(self.elapsed0 + now - self.t0, 3),
        }
        if do_eval:
            v = self.evaluate()
            if not math.isfinite(v):
                raise Diverged(f"validation loss became {v} at step {step}")
            row["val_loss"] = v
            rec.final_val_loss = v
            rec.min_val_loss = v if rec.min_val_loss is None else min(rec.min_val_loss, v)
        self.metrics.log(row)
        return row, now

    # -- run --------------------------------------------------------------------------------------
    def run(self) -> RunRecord:
        """Train to the end (or stop_at_step); returns the RunRecord also written to the run folder."""
        spec, total, rec, stop_at = self.spec, self.total, self.rec, self.stop_at_step
        step = self.step_done
        n_sum, t_win, step_win = 0, time.perf_counter(), step
        stop = StopSignals() if self.dist is None else None  # DDP ranks must stop at the same step: not here
        turn = turns.from_env() if self.dist is None else None  # set by a sweep whose runs take turns on a GPU
        try:
            if stop is not None:
                stop.__enter__()
            self.model.train()
            micro = self.batches.get(step) if step < total else None
            if micro is not None and (turn is not None or self.graphed):
                self._warm_up(micro, step)
            if turn is not None and micro is not None:
                self._take_turn(turn, step, stop)
            self.ckpt_t = time.perf_counter()  # training time since the last checkpoint (checkpoint_minutes)
            while step < total:
                if stop is not None and stop.signum:  # SIGTERM or Ctrl-C: keep the work, then stop
                    self._stop(step, stop.signum)
                for hook in self.hooks:
                    hook.before_step(self, step)
                lr = self.sched(step)
                micro = self.step(micro, lr, self.window, prefetch=step + 1 if step + 1 < total else None)
                step += 1
                n_sum += 1
                do_eval = step == total or (spec.logging.eval_every > 0 and step % spec.logging.eval_every == 0)
                do_ckpt = step == total or step == stop_at or self._periodic_checkpoint(step)
                if not (do_eval or do_ckpt or step % self.log_every == 0):
                    continue
                row, now = self._sync_point(step, n_sum, lr, do_eval)
                n_sum = 0
                if self.bar is not None:
                    tps = (step - step_win) * spec.tokens_per_step / max(1e-9, now - t_win)
                    info = (
                        f"loss {row['train_loss']:.4f}"
                        + (f" val {row['val_loss']:.4f}" if do_eval else "")
                        + f"  {tps:,.0f} tok/s"
                    )
                    self.bar.update(self.bar.task_ids[0], completed=step, info=info)
                t_win, step_win = now, step
                if do_ckpt:
                    self.checkpoint(step)
                if stop_at is not None and step >= stop_at and step < total:
                    rec.status = "pending"
                    rec.message = f"stopped at step {step} of {total}; resume the run in {self.run_dir.path}"
                    break
            else:
                rec.status, rec.message = "done", ""
        except Diverged as e:
            rec.status = "diverged"
            kept = (
                f"last good checkpoint: step {self.last_ckpt}" if self.last_ckpt >= 0 else "no checkpoint was written"
            )
            rec.message = f"{e}; {kept}. Lower the peak LR, lengthen the warmup or clip gradients"
        except Interrupted:
            raise
        except KeyboardInterrupt:
            rec.status = "failed"
            rec.message = f"interrupted at step {step}; resume the run in {self.run_dir.path}"
            raise
        except (UserError, OSError) as e:
            self._fail(e)
            if isinstance(e, OSError):
                raise self._as_user_error(e) from None
            raise
        except Exception as e:
            rec.status, rec.message = "failed", f"{type(e).__name__}: {e}"[:500]
            raise
        finally:
            if turn is not None:
                turn.release()
            if stop is not None:
                stop.__exit__()
            self._close()
        return rec

    def _warm_up(self, micro: Micro, step: int) -> None:
        """Compile and warm up (and record the graphed step) on a snapshot, restored after: the run is unchanged."""
        snap = self.snapshot()
        if self.graphed:
            self.stepper.warm_up(micro, self.sched(step))
        else:
            for _ in range(turns.WARM_STEPS):
                self.step(micro, self.sched(step), Accum.zeros(self.device))
        self.restore(snap)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _take_turn(self, turn: turns.Turn, step: int, stop: StopSignals | None) -> None:
        """Wait for the GPU's turn (after the warm-up); the waiting is not counted in the run's time."""
        marker = self.run_dir.waiting
        marker.touch()
        try:
            waited = turn.wait(lambda: bool(stop is not None and stop.signum))
        finally:
            marker.unlink(missing_ok=True)
        if waited is None:
            self._stop(step, stop.signum)
        self.t0 += waited

    def _stop(self, step: int, signum: int) -> None:
        """Checkpoint the steps done so far and stop (raises Interrupted; the record says pending)."""
        spec, rec = self.spec, self.rec
        rec.steps_done, rec.tokens = step, step * spec.tokens_per_step
        rec.flops = self.flops0 + (step - self.step0) * spec.tokens_per_step * self.fpt
        self.checkpoint(step)
        rec.status = "pending"
        rec.message = (
            f"stopped by {signal.Signals(signum).name} at step {step} of {self.total}, checkpoint written; "
            f"continue with scalinglab train --resume {self.run_dir.path}"
        )
        raise Interrupted(f"interrupted: {rec.message}", signum)

    def _fail(self, e: BaseException) -> None:
        """A failure before training or on a full disk: a run folder this trainer made and that holds no
        checkpoint is removed (nothing trained is lost); any other keeps a record saying failed."""
        self.rec.status, self.rec.message = "failed", str(e)[:500] or type(e).__name__
        if self.created and not self.run_dir.has_checkpoint() and (self.dist is None or self.dist.is_main):
            shutil.rmtree(self.run_dir.path, ignore_errors=True)

    def _as_user_error(self, e: OSError) -> FolderError:
        """Disk full, read-only: say which run could not be written."""
        return FolderError(f"cannot write run folder {self.run_dir.path}: {os_error_message(e)}")

    def _close(self) -> None:
        rec = self.rec
        if self.bar is not None:
            self.bar.stop()
        if self.metrics is not None:
            self.metrics.close(rec.status)
        for hook in self.hooks:
            hook.close(self, rec)
        rec.wall_time_s = self.elapsed0 + time.perf_counter() - self.t0
        rec.model_flops_per_s = rec.flops / rec.wall_time_s if rec.wall_time_s > 0 else 0.0
        if self.run_dir.path.is_dir():
            try:
                self.run_dir.write_record(rec)
            except OSError:  # the disk is full: no record rather than one that says "running"
                with contextlib.suppress(OSError):
                    self.run_dir.record.unlink()
        if self.dist is not None:
            self.dist.close()


# A GPU run's host work per step is a batch gather, a copy and a few launches; torch's intra-op threads only spin
# between them. On one H200 host (16 cores), a 0.5M-parameter graphed run with 16 threads kept 87% of the cores busy
# alone and trained at 3.8 Mtok/s while 3 runs compiled beside it; with one thread it kept 6% busy and trained at
# 23.4 Mtok/s alone and 24.0 beside them (bench/host_threads.py, docs/benchmarks.md).
GPU_THREADS = 1


def auto_threads(spec: RunSpec, cuda: bool) -> int:
    """The intra-op CPU threads a run sets: spec.runtime.threads, else 1 for models under 1M parameters on the
    CPU (more threads only add sync overhead there: 5x slower on 2 busy cores), GPU_THREADS on a GPU, and 0
    (torch's default) for the rest."""
    n, device = spec.runtime.threads, spec.runtime.device
    if n > 0:
        return n
    if device == "cpu" or (device == "auto" and not cuda):
        return 1 if spec.shape.params() < 1_000_000 else 0
    return GPU_THREADS


def run_training(
    spec: RunSpec, out_dir: str | Path, resume: bool = False, progress: bool = True, stop_at_step: int | None = None
) -> RunRecord:
    """Train `spec` into the run folder `out_dir`; resume=True continues from its checkpoint if present.

    Returns the RunRecord also written to the run folder (status done, diverged, or pending when
    stopped early by stop_at_step). Raises UserError for bad input. CPU threads: auto_threads; bit-exact resume
    on CPU needs the same thread count.
    """
    threads0 = torch.get_num_threads()
    n = auto_threads(spec, torch.cuda.is_available())
    if n > 0:
        torch.set_num_threads(n)
    try:
        return Trainer(spec, out_dir, resume, progress, stop_at_step).setup().run()
    finally:
        torch.set_num_threads(threads0)
