"""Ray executor: one Ray task per run (1/K of a GPU, or one CPU) running the same train subprocess.

For studies that outgrow one machine; the study folder must be on a filesystem every node sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.sweep.packing import MAX_PER_GPU, Device
from scalinglab.sweep.runs import start_trainer
from scalinglab.sweep.scheduler import Slot


def _die_with_parent() -> None:
    # A Ray worker killed with its driver must not leave its trainer running (and writing RUN/) behind.
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_task(argv: list[str], run_dir: str, env: dict[str, str]) -> tuple[int, str]:
    """Body of the Ray task: train one run in a subprocess on whichever node Ray chose."""
    import socket

    host = socket.gethostname()
    p = start_trainer(argv, Path(run_dir), env, f"ray@{host}", preexec_fn=_die_with_parent)
    return p.wait(), host


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError("the Ray backend needs ray: pip install 'scalinglab[ray]'") from None
    return ray


def _check_reachable(address: str | None) -> None:
    """Fail in seconds, not after Ray's long GCS retry loop, when HOST:PORT does not answer."""
    import socket

    if not address or address in ("auto", "local") or address.startswith("ray://") or ":" not in address:
        return
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise UserError(
            f"cannot reach a Ray cluster at {address} ({e})",
            hint="start one with `ray start --head` and give its HOST:PORT",
            keys=("address",),
        ) from None


class RayExecutor:
    """One device, the cluster: GPUs x K tasks in flight (or its CPUs, or `workers`). Each GPU task asks Ray for
    1/K of a GPU, or (no K) for its run's own compute share, so Ray packs small runs many to a GPU."""

    def __init__(self, address: str | None, per_gpu: int | None = None, workers: int = 0):
        ray = _ray()
        self.ray = ray
        if per_gpu is not None and per_gpu < 1:
            raise UserError(
                f"bad runs per GPU {per_gpu}", hint="give how many runs share one GPU, 1 or more", keys=("per_gpu",)
            )
        _check_reachable(address)
        try:
            ray.init(
                address=address or "auto",
                ignore_reinit_error=True,
                log_to_driver=False,
                logging_level="ERROR",
                configure_logging=True,
            )
        except ConnectionError as e:
            raise UserError(
                f"cannot reach a Ray cluster at {address or 'auto'} ({e})",
                hint="start one with `ray start --head` and give its HOST:PORT",
                keys=("address",),
            ) from None
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
        self.per_gpu, self.gpus = per_gpu, gpus
        if gpus:
            n, self.opts = gpus * (per_gpu or MAX_PER_GPU), {"num_gpus": 1.0 / (per_gpu or 1), "num_cpus": 0}
            env = {}
        else:
            n, self.opts = (workers or cpus), {"num_cpus": 1}
            env = {"CUDA_VISIBLE_DEVICES": ""}
        self.devices = [Device("ray", env, max(1, n))]
        self.task = ray.remote(max_retries=0)(run_task)
        self.refs: dict[Any, str] = {}

    def start(self, run_id: str, argv: list[str], run_dir: Path, slot: Slot) -> int | None:
        run_dir.mkdir(parents=True, exist_ok=True)
        opts = dict(self.opts)
        if self.gpus and self.per_gpu is None and slot.share > 0:
            opts["num_gpus"] = slot.share
        ref = self.task.options(**opts).remote(argv, str(run_dir), slot.env)
        self.refs[ref] = run_id
        return None

    def poll(self) -> list[tuple[str, int | None]]:
        if not self.refs:
            return []
        ready, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        out = []
        for ref in ready:
            rid = self.refs.pop(ref)
            try:
                rc, _host = self.ray.get(ref)
            except Exception:  # the task or its node died: the run resumes from its checkpoint on retry
                rc = 1
            out.append((rid, rc))
        return out

    def stop_all(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)
        self.refs.clear()

    def close(self) -> None:
        self.ray.shutdown()
