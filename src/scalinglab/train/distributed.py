"""One run over N processes (DDP): `scalinglab train --nproc N` relaunches itself under torch.distributed.run;
each rank trains on its slice of the same global batch, rank 0 alone writes the run folder.

Results do not depend on N beyond float reassociation: the global batch is TokenData.train_batch(step, ...)
as in a one-process run, split by rows; DDP averages the ranks' gradients of their slice means.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from scalinglab.errors import UserError
from scalinglab.folders import RunDir


def in_worker() -> bool:
    """True inside a process started by torch.distributed.run with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def launch(spec, run_dir: Path, nproc: int, resume: bool, progress: bool) -> int:
    """Start `nproc` ranks of `scalinglab train` on this spec; returns torchrun's exit code."""
    if nproc < 1:
        raise UserError(
            f"bad process count {nproc}",
            hint="give the number of processes (GPUs) for this run, 1 or more",
            keys=("nproc",),
        )
    if spec.batch_size % nproc:
        raise UserError(
            f"batch size {spec.batch_size} is not divisible by {nproc} processes",
            hint="each rank takes an equal slice of the global batch, so pick a multiple",
            keys=("batch_size", "nproc"),
        )
    from scalinglab.fileio import atomic_write_text

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_file = RunDir(run_dir).launch_spec
    atomic_write_text(spec_file, spec.to_toml())
    train = (
        ["--resume", str(run_dir), "--config", str(spec_file)]
        if resume
        else ["--config", str(spec_file), "--out", str(run_dir)]
    )
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "scalinglab",
        "train",
        *train,
        "--progress" if progress else "--no-progress",
    ]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        return subprocess.run(argv, env=env).returncode
    finally:
        spec_file.unlink(missing_ok=True)


class Dist:
    """This rank's place in the process group, and the few things the loop asks of it."""

    def __init__(self, spec):
        import torch
        import torch.distributed as dist

        self.rank, self.world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local = int(os.environ.get("LOCAL_RANK", 0))
        if spec.batch_size % self.world:
            raise UserError(f"batch size {spec.batch_size} is not divisible by {self.world} ranks: pick a multiple")
        per = spec.batch_size // self.world
        self.rows = slice(self.rank * per, (self.rank + 1) * per)  # this rank's rows of every global micro-batch
        want_cuda = spec.runtime.device != "cpu" and torch.cuda.is_available()
        if want_cuda:
            self.device = torch.device("cuda", self.local)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if want_cuda else "gloo")
        self.dist = dist
        self._scratch: tempfile.TemporaryDirectory | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def out_dir(self, out: Path) -> Path:
        """Rank 0 writes the run folder; the others write their copies into a scratch folder that goes away."""
        if self.is_main:
            return out
        self._scratch = tempfile.TemporaryDirectory(prefix=f"scalinglab-rank{self.rank}-")
        return Path(self._scratch.name)

    def wrap(self, model):
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[self.local] if self.device.type == "cuda" else None)

    def mean_(self, t):
        """All ranks' mean of a tensor, in place (the logged train loss is the global batch's)."""
        self.dist.all_reduce(t)
        t /= self.world
        return t

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()
        if self._scratch is not None:
            self._scratch.cleanup()


def from_env(spec) -> Dist | None:
    return Dist(spec) if in_worker() else None
