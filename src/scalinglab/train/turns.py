"""Taking turns on a GPU: compiled runs a sweep places on one GPU train one at a time.

A GPU time-slices between processes, and CUDA-graphed steps of small models lose the most: measured on one H200
(bench/results/packing-nvidia-h200-compiled.json), two compiled 0.5M-parameter runs sharing the GPU trained 0.37x
the tokens/s of one alone. The sweep therefore starts the next runs while one trains, and each trainer, once its
model is built and compiled (a few warm-up steps on a snapshot it then restores, so the run is unchanged), waits
for the GPU's turn: an exclusive lock on a file the sweep names in SCALINGLAB_GPU_TURN. The kernel drops the lock
when the process ends, however it ends, so a killed run never holds a GPU.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

ENV = "SCALINGLAB_GPU_TURN"
HOLD_ENV, WAIT_ENV = "SCALINGLAB_TURN_HOLD_CPUS", "SCALINGLAB_TURN_WAIT_CPUS"
WARM_STEPS = 3  # torch.compile's reduce-overhead runs a step eagerly, records CUDA graphs, then replays them
HOLD_CPUS = 2  # cores kept for each GPU's training run, away from the waiting runs' compilation


def cpu_env(gpu: int, gpus: int, cpus: list[int] | None = None) -> dict[str, str]:
    """The cores the training run of the `gpu`-th of `gpus` turn-taking GPUs keeps to itself, and those every waiting
    run compiles on: compiling runs beside it starve a small model's host loop (measured on one H200: 0.5M-parameter
    runs trained at 4-8 Mtok/s in a sweep against 13 alone). {} when fewer than 4 cores would be left to wait on."""
    if cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < HOLD_CPUS * gpus + 4:
        return {}
    hold, wait = cpus[HOLD_CPUS * gpu : HOLD_CPUS * (gpu + 1)], cpus[HOLD_CPUS * gpus :]
    return {HOLD_ENV: ",".join(map(str, hold)), WAIT_ENV: ",".join(map(str, wait))}


def _cpus(name: str) -> set[int]:
    return {int(c) for c in os.environ.get(name, "").split(",") if c.strip()}


def _pin(cpus: set[int]) -> None:
    """This thread (and the threads and processes it starts from now on) onto `cpus`."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)


class Turn:
    """The lock file of one GPU's turn, and the cores to wait and to train on (none: any)."""

    def __init__(self, path: str, hold: set[int] | None = None, wait: set[int] | None = None):
        self.path, self.fd = path, -1
        self.hold, self.waiting_cpus = hold or set(), wait or set()

    def keep_off(self) -> None:
        """Wait (build, compile, warm up) on the waiting cores: call before compiling."""
        _pin(self.waiting_cpus)

    def wait(self, stopped: Callable[[], bool], poll_s: float = 0.05) -> float | None:
        """Block until this process holds the turn; seconds waited, or None if `stopped()` came true first."""
        import fcntl  # POSIX only: imported here so the trainer itself imports anywhere

        t, said = time.perf_counter(), False
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _pin(self.hold)
                return time.perf_counter() - t
            except BlockingIOError:
                if not said:  # in the run's train.log: why a "running" run has not logged a step yet
                    print(f"waiting for the GPU's turn ({self.path})", file=sys.stderr, flush=True)
                    said = True
                if stopped():
                    self.release()
                    return None
                time.sleep(poll_s)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the file drops its lock
            self.fd = -1


def from_env() -> Turn | None:
    path = os.environ.get(ENV)
    return Turn(path, _cpus(HOLD_ENV), _cpus(WAIT_ENV)) if path else None
