"""PyTorch models built from a ModelShape: GPT (decoder-only) and Perceiver AR.

`build_model(shape)` picks the class (scalinglab.train.checkpoint.load_run_model rebuilds a trained run's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError

if TYPE_CHECKING:
    from torch import nn


def build_model(shape: ModelShape) -> nn.Module:
    """GPT for arch 'gpt', PerceiverAR for 'perceiver-ar'; bad shapes become a one-line UserError."""
    from scalinglab.accounting import validate

    validate(shape)
    if shape.arch == "gpt":
        from scalinglab.models.gpt import GPT as cls
    else:
        from scalinglab.models.perceiver_ar import PerceiverAR as cls
    try:
        return cls(shape)
    except ValueError as e:
        raise UserError(
            f"cannot build {shape.arch} {shape.name}: {e}",
            hint="change the width or the heads (heads must divide d_model)",
            keys=("d_model", "n_heads"),
        ) from None


__all__ = ["build_model"]
