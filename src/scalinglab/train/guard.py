"""Guards around a run: refuse one that would take absurdly long (`check_duration`), and stop at a step
boundary, after a checkpoint, on SIGTERM or Ctrl-C (`StopSignals`). Pure Python, no torch."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Self

from scalinglab.errors import ConfigError

# Peak FLOP/s per device, above what today's chips reach (H200 dense bf16 ~1e15; a server core in fp32 ~1e11):
# a time estimated with them is a lower bound, so only runs that are surely absurd are refused.
PEAK_FLOPS = {"cuda": 2e15, "cpu": 2e11}
MAX_DAYS = 30.0
MAX_EPOCHS = 100.0


class RunTooLong(ConfigError):
    """A run whose lower-bound time or data repetition is past the limits; the CLI adds the flag to go on."""

    def __init__(self, flops: float, days: float, epochs: float, peak: float, device: str):
        self.flops, self.days, self.epochs, self.peak, self.device = flops, days, epochs, peak, device
        super().__init__(
            f"this run needs {flops:.3g} FLOPs: at least {_duration(days)} at {peak:.0e} FLOP/s "
            f"(above what this machine's {device}s can do), reading the train split {epochs:.3g} times",
            hint="lower the budget, steps or tokens, or allow long runs explicitly",
            keys=("budget_flops", "steps", "tokens", "runtime.allow_long"),
        )

    def __reduce__(self):
        return (self.__class__, (self.flops, self.days, self.epochs, self.peak, self.device))


def _duration(days: float) -> str:
    for unit, size in (("years", 365.0), ("days", 1.0), ("hours", 1 / 24), ("minutes", 1 / 1440)):
        if days >= size:
            return f"{days / size:.3g} {unit}"
    return f"{days * 86400:.3g} seconds"


def check_duration(flops: float, epochs: float, device_type: str, devices: int = 1, allow: bool = False) -> None:
    """Raise RunTooLong when `flops` take more than MAX_DAYS even at PEAK_FLOPS on `devices` devices (CPU: per
    core), or the run reads its train split more than MAX_EPOCHS times; allow=True skips the check."""
    kind = "cuda" if device_type == "cuda" else "cpu"
    peak = PEAK_FLOPS[kind] * (devices if kind == "cuda" else (os.cpu_count() or 1))
    days = flops / peak / 86400
    if not allow and (days > MAX_DAYS or epochs > MAX_EPOCHS):
        raise RunTooLong(flops, days, epochs, peak, "GPU" if kind == "cuda" else "CPU")


class StopSignals:
    """While active (main thread only): SIGTERM, or a first Ctrl-C, sets `signum` so the loop can checkpoint and
    stop at the next step boundary; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()
