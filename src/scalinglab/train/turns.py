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
WARM_STEPS = 3  # torch.compile's reduce-overhead runs a step eagerly, records CUDA graphs, then replays them


class Turn:
    """The lock file of one GPU's turn."""

    def __init__(self, path: str):
        self.path, self.fd = path, -1

    def wait(self, stopped: Callable[[], bool], poll_s: float = 0.05) -> float | None:
        """Block until this process holds the turn; seconds waited, or None if `stopped()` came true first."""
        import fcntl  # POSIX only: imported here so the trainer itself imports anywhere

        t, said = time.perf_counter(), False
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
    return Turn(path) if path else None
