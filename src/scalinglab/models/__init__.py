"""PyTorch models built from a ModelShape: GPT (decoder-only) and Perceiver AR.

`build_model(shape)` picks the class; `load_run_model(RUN)` rebuilds a trained run's model for eval/export.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError

if TYPE_CHECKING:
    import torch.nn as nn

    from scalinglab.records import RunSpec


def build_model(shape: ModelShape) -> "nn.Module":
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
        raise UserError(f"cannot build {shape.arch} {shape.name}: {e}; change --d-model/--heads (heads must divide d_model)") from None


def load_run_model(run: str | Path, device: str = "cpu") -> tuple["nn.Module", "RunSpec"]:
    """(model in eval mode, RunSpec) from RUN/checkpoint.pt (or a checkpoint file path)."""
    from scalinglab.records import RunSpec
    from scalinglab.train.checkpoint import load_checkpoint

    path = Path(run)
    ckpt = load_checkpoint(path / "checkpoint.pt" if path.is_dir() else path)
    spec = RunSpec.from_dict(ckpt["spec"])
    model = build_model(spec.shape)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), spec


__all__ = ["build_model", "load_run_model"]
