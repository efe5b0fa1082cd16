"""Local executor: each run is its own subprocess on a device (a GPU via CUDA_VISIBLE_DEVICES, shared by as many runs
as packing.py lets in, or the CPU pool). Children stay in the sweep's process group, so killing the group stops all."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from scalinglab.errors import UserError
from scalinglab.sweep.packing import Device, gpu_devices, gpu_memory_bytes
from scalinglab.sweep.runs import start_trainer
from scalinglab.sweep.scheduler import Slot


def gpu_count() -> int:
    """Visible CUDA devices, asked of nvidia-smi so the sweep process never initialises CUDA itself."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    n = sum(1 for ln in out.stdout.splitlines() if ln.startswith("GPU "))
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    return min(n, len([v for v in vis.split(",") if v.strip()])) if vis is not None else n


def make_devices(gpus: str | None, per_gpu: int | None, workers: int, check_gpus: bool = False) -> list[Device]:
    """--gpus 0,1 (default: all visible) -> one Device per GPU, packed by each run's size, or --per-gpu K runs each;
    --workers N (or no GPU) -> a CPU pool of N runs at once. check_gpus: refuse GPU indices this machine does not
    have (off for a stand-in trainer in tests)."""
    if per_gpu is not None and per_gpu < 1:
        raise UserError(
            f"bad runs per GPU {per_gpu}", hint="give how many runs share one GPU, 1 or more", keys=("per_gpu",)
        )
    if gpus is None and workers < 1:
        n = gpu_count()
        gpus = ",".join(map(str, range(n))) if n else None
        workers = 0 if n else 1
    if gpus:
        try:
            ids = [int(g) for g in gpus.split(",") if g.strip()]
        except ValueError:
            raise UserError(f"bad GPUs {gpus!r}", hint="give GPU indices, e.g. 0,1", keys=("gpus",)) from None
        if not ids or min(ids) < 0:
            raise UserError(f"bad GPUs {gpus!r}", hint="give GPU indices 0 or more, e.g. 0,1", keys=("gpus",))
        if check_gpus:
            n = gpu_count()
            if n == 0:
                raise UserError(
                    f"GPUs {gpus} asked for, but this machine has none visible (nvidia-smi lists none)",
                    hint="leave the GPUs unset to train on CPU workers",
                    keys=("gpus", "workers"),
                )
            if max(ids) >= n:
                raise UserError(
                    f"GPU {max(ids)} does not exist: this machine has {n} (0..{n - 1})",
                    hint=f"give indices below {n}",
                    keys=("gpus",),
                )
        return gpu_devices(ids, gpu_memory_bytes() if per_gpu is None else 0, per_gpu)
    if workers < 1:
        raise UserError(
            f"bad worker count {workers}", hint="give how many CPU runs to train at once, 1 or more", keys=("workers",)
        )
    threads = max(1, (os.cpu_count() or 1) // workers)
    # CPU workers must not grab a GPU, and share the cores instead of each taking all of them.
    env = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return [Device("cpu", env, workers)]


class LocalExecutor:
    def __init__(self, devices: list[Device]):
        self.devices = devices
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, run_id: str, argv: list[str], run_dir: Path, slot: Slot) -> int | None:
        run_dir.mkdir(parents=True, exist_ok=True)
        p = start_trainer(argv, run_dir, slot.env, slot.name)
        self.procs[run_id] = p
        return p.pid

    def poll(self) -> list[tuple[str, int | None]]:
        done = [(rid, p.returncode) for rid, p in self.procs.items() if p.poll() is not None]
        for rid, _ in done:
            del self.procs[rid]
        return done

    def stop_all(self) -> None:
        for p in self.procs.values():
            p.terminate()
        deadline = time.time() + 15
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
