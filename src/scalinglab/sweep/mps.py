"""NVIDIA MPS (Multi-Process Service) for a sweep's packed GPU runs.

Without MPS a GPU time-slices between processes: each packed run's step waits for the other processes' slices.
Measured on one H200 (docs/benchmarks.md), compiled demo runs packed by size each trained at about 1 Mtok/s whatever
their size. Under MPS the kernels of several processes share the GPU at once (NVIDIA, "Multi-Process Service",
https://docs.nvidia.com/deploy/mps/). `scalinglab sweep --mps` starts a private MPS control daemon with its own pipe
and log folders (a system-wide daemon is left alone), points every trainer at its pipe folder, and stops it when
the sweep ends. Measured on the GPU demo (docs/benchmarks.md): 15.3% of the matmul peak under MPS against 14.0%
without, so MPS is an option, not the default. Compiled runs packed by size take turns on a GPU anyway
(scalinglab.train.turns), so MPS matters for uncompiled runs and for a fixed --per-gpu K.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from scalinglab.errors import UserError

BINARY = "nvidia-cuda-mps-control"


class MPS:
    """Context manager: a private MPS control daemon; `env` holds what each trainer needs to reach it."""

    def __init__(self, binary: str = BINARY):
        self.binary, self.exe, self.dir = binary, None, None
        self.env: dict[str, str] = {}

    def __enter__(self) -> MPS:
        self.exe = shutil.which(self.binary)
        if self.exe is None:
            raise UserError(
                f"MPS needs {self.binary} on the PATH (NVIDIA's driver utilities)",
                hint="install them, or sweep without MPS",
                keys=("mps",),
            )
        # a short path: the pipe folder holds a Unix socket, whose path may not exceed 107 bytes
        self.dir = Path(tempfile.mkdtemp(prefix="scalinglab-mps-"))
        self.env = {"CUDA_MPS_PIPE_DIRECTORY": str(self.dir / "pipe"), "CUDA_MPS_LOG_DIRECTORY": str(self.dir / "log")}
        for p in self.env.values():
            Path(p).mkdir()
        r = self._control(["-d"])
        if r.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            why = (r.stderr or r.stdout or f"exit code {r.returncode}").strip().splitlines()
            raise UserError(
                f"could not start NVIDIA MPS: {why[-1] if why else r.returncode}",
                hint="sweep without MPS",
                keys=("mps",),
            )
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._control([], stdin="quit\n")  # the daemon exits once its clients have
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _control(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.exe, *args],
            input=stdin,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@contextlib.contextmanager
def mps_for(devices: list, on: bool) -> Iterator[None]:
    """With on: a private daemon for the sweep's GPU devices, whose trainers get its pipe folder; a sweep with no
    GPU device has nothing to share. With on False: nothing."""
    if not on:
        yield
        return
    gpus = [d for d in devices if d.env.get("CUDA_VISIBLE_DEVICES")]
    if not gpus:
        raise UserError("MPS is for runs on GPUs, and this sweep has none", hint="leave MPS off", keys=("mps",))
    with MPS() as m:
        for d in gpus:
            d.env = {**d.env, **m.env}
        yield
