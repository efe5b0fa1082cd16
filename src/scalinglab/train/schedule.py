"""Learning-rate schedules (warmup + cosine to a floor, warmup-stable-decay, constant), growth restarts,
and the Kaplan LR heuristic. A schedule is a pure function of the step, so resuming needs only the step."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scalinglab.plan.steps import cooldown_start, default_warmup  # noqa: F401 - the trainer's names for them

KINDS = ("cosine", "wsd", "constant")


def kaplan_lr(n: float) -> float:
    """Kaplan et al. 2020 App. D.6, LR(N) = 0.003239 - 0.0001395 log(N), as Shen et al. 2022's staged-training code evaluates it.

    That code's table (GPT2_base 0.0021329 ... GPT2_large 0.0020069) comes out with log base 10 and
    N = 12 * n_layers * d_model^2 (non-embedding); see `kaplan_n`.
    """
    return 0.003239 - 0.0001395 * math.log10(n)


def kaplan_n(d_model: int, n_layers: int) -> int:
    return 12 * n_layers * d_model * d_model


@dataclass(frozen=True)
class Schedule:
    """lr(step) for the 0-based optimizer step about to be taken.

    restart_at >= 0 marks a restart (after a growth operator, Shen et al. 2022): restart_warmup re-warms linearly
    from 0 to the schedule's LR over that many steps; reset restarts the whole schedule at restart_at
    (fresh warmup — restart_warmup if given — and decay over the remaining steps).
    """

    peak: float
    total: int
    kind: str = "cosine"
    warmup: int = 0
    min_ratio: float = 0.1
    decay_frac: float = 0.2
    restart_at: int = -1
    restart_warmup: int = 0
    reset: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown schedule {self.kind!r}: use one of {', '.join(KINDS)}")

    def _base(self, step: int, total: int, warmup: int) -> float:
        if warmup > 0 and step < warmup:
            return self.peak * (step + 1) / warmup
        if self.kind == "constant":
            return self.peak
        floor = self.peak * self.min_ratio
        if self.kind == "cosine":
            span = max(1, total - 1 - warmup)  # the last step runs exactly at the floor
            p = min(1.0, (step - warmup) / span)
            return floor + (self.peak - floor) * 0.5 * (1.0 + math.cos(math.pi * p))
        # wsd: stable at peak, then a 1-sqrt cooldown (Hägele et al. 2024) to the floor over decay_frac
        start = cooldown_start(total, self.decay_frac)
        n_decay = total - start
        if step < start:
            return self.peak
        p = min(1.0, (step - start + 1) / n_decay)
        return floor + (self.peak - floor) * (1.0 - math.sqrt(p))

    def __call__(self, step: int) -> float:
        r = self.restart_at
        if r >= 0 and step >= r and self.reset:
            return self._base(step - r, self.total - r, self.restart_warmup or self.warmup)
        lr = self._base(step, self.total, self.warmup)
        if r >= 0 and self.restart_warmup > 0 and r <= step < r + self.restart_warmup:
            lr *= (step - r + 1) / self.restart_warmup
        return lr
