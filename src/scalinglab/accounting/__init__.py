"""Parameter and FLOP accounting: one place that knows N and C per token for every architecture.

`params(shape)` and `flops_per_token(shape, convention)` dispatch on shape.arch; CONVENTIONS names them all.
"""

from __future__ import annotations

from scalinglab.accounting import gpt, perceiver_ar
from scalinglab.accounting.shape import ARCHS, ModelShape
from scalinglab.errors import UserError

# arch -> {convention: what it counts}
CONVENTIONS: dict[str, dict[str, str]] = {
    "gpt": gpt.GPT_CONVENTIONS,
    "perceiver-ar": perceiver_ar.PERCEIVER_CONVENTIONS,
}


def validate(shape: ModelShape) -> ModelShape:
    """Raise UserError (one line, with the fix) for a shape no model can have."""
    if shape.arch not in ARCHS:
        raise UserError(f"unknown arch {shape.arch!r}: use one of {', '.join(ARCHS)}")
    for name in ("d_model", "n_layers", "vocab", "seq_len", "n_heads", "mlp_ratio"):
        if getattr(shape, name) <= 0:
            raise UserError(f"{name} must be positive, got {getattr(shape, name)}: give a positive integer")
    if shape.pos not in ("learned", "rotary"):
        raise UserError(f"unknown pos {shape.pos!r}: use learned or rotary")
    if shape.arch == "perceiver-ar":
        if not 0 < shape.latents < shape.seq_len:
            raise UserError(
                f"latents must be in 1..seq_len-1 (got latents={shape.latents}, seq_len={shape.seq_len}): "
                "the prefix is seq_len - latents tokens"
            )
        if not 0.0 <= shape.prefix_dropout < 1.0:
            raise UserError(f"prefix dropout must be in [0, 1), got {shape.prefix_dropout}")
    return shape


def _module(shape: ModelShape):
    validate(shape)
    return gpt if shape.arch == "gpt" else perceiver_ar


def _check_convention(shape: ModelShape, convention: str) -> None:
    known = CONVENTIONS[shape.arch]
    if convention not in known:
        raise UserError(f"unknown FLOP convention {convention!r} for arch {shape.arch}: use one of {', '.join(known)}")


def params(shape: ModelShape, embeddings: bool = True) -> int:
    """Exact parameter count N (embeddings=False: Kaplan's non-embedding N)."""
    return _module(shape).params(shape, embeddings=embeddings)


def flops_per_token(shape: ModelShape, convention: str = "chinchilla") -> float:
    """Training FLOPs (forward + backward) per token; per latent token for perceiver-ar."""
    mod = _module(shape)
    _check_convention(shape, convention)
    return float(mod.flops_per_token(shape, convention))


def flops_parts(shape: ModelShape, convention: str = "chinchilla") -> dict[str, float]:
    """Self/cross split (perceiver-ar); a gpt is all self part."""
    mod = _module(shape)
    _check_convention(shape, convention)
    if shape.arch == "perceiver-ar":
        s = perceiver_ar.flops_per_token_self(shape, convention)
        c = perceiver_ar.flops_per_token_cross(shape, convention)
    else:
        s, c = float(mod.flops_per_token(shape, convention)), 0.0
    return {"self": s, "cross": c, "total": s + c}


__all__ = ["CONVENTIONS", "ModelShape", "flops_parts", "flops_per_token", "params", "validate"]
