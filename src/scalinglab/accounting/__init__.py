"""Parameter and FLOP accounting: one place that knows N and C per token for every architecture.

`params(shape)` and `flops_per_token(shape, convention)` dispatch on shape.arch; CONVENTIONS names them all.
"""

from __future__ import annotations

from scalinglab.accounting.shape import ARCHS, CONVENTIONS, ModelShape, flops_parts, flops_per_token, params, validate

__all__ = ["ARCHS", "CONVENTIONS", "ModelShape", "flops_parts", "flops_per_token", "params", "validate"]
