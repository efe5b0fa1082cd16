"""Step-count rules that planning and training share (the default warmup, the first step of a WSD cooldown):
pure integer arithmetic in the core, so `plan` never imports the trainer."""

from __future__ import annotations


def default_warmup(steps: int) -> int:
    return min(200, steps // 10)


def cooldown_start(steps: int, decay_frac: float) -> int:
    """First step of the wsd cooldown of a run of `steps` steps (at least one step of decay)."""
    return steps - max(1, round(steps * decay_frac))
