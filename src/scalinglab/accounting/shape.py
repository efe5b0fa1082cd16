"""ModelShape: the one record that knows a model's parameter count and training FLOPs per token, and the
functions that dispatch on its arch to scalinglab.accounting.{gpt,perceiver_ar}.

Every stage (plan, train, sweep, fit) asks a ModelShape; nothing re-derives N or C on its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from scalinglab.accounting import gpt, perceiver_ar
from scalinglab.errors import UserError

ARCHS = ("gpt", "perceiver-ar")


@dataclass(frozen=True)
class ModelShape:
    """A transformer's shape.

    gpt: decoder-only, GPT-2 layout by default (learned positions, pre-LN, GELU MLP x mlp_ratio,
    biases, tied embeddings). perceiver-ar: `latents` = n latent tokens, prefix m = seq_len - latents,
    a hybrid cross/self first layer and n_layers - 1 self-attention layers (Krasser 2023).
    """

    d_model: int
    n_layers: int
    vocab: int
    seq_len: int
    arch: str = "gpt"
    n_heads: int = 0  # 0: max(1, d_model // 64), minchilla's rule
    mlp_ratio: int = 4
    bias: bool = True
    pos: str = "learned"  # learned | rotary
    tied: bool = True
    latents: int = 0  # perceiver-ar only
    prefix_dropout: float = 0.0  # perceiver-ar only: share of prefix tokens dropped in training
    mup_base: int = 0  # gpt: muP (Yang et al. 2022) relative to this base width; 0: standard parametrization

    @property
    def width_mult(self) -> float:
        """d_model / base width under muP (1 under the standard parametrization)."""
        return self.d_model / self.mup_base if self.mup_base else 1.0

    def __post_init__(self) -> None:
        if self.n_heads == 0:
            object.__setattr__(self, "n_heads", max(1, self.d_model // 64))

    @property
    def name(self) -> str:
        return f"{self.d_model}x{self.n_layers}"

    @property
    def prefix(self) -> int:
        return self.seq_len - self.latents if self.arch == "perceiver-ar" else 0

    @property
    def trained_per_sequence(self) -> int:
        """Tokens with a loss per sequence: the latents for perceiver-ar (the prefix is context only), else seq_len."""
        return self.latents if self.arch == "perceiver-ar" else self.seq_len

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelShape:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_(self, **kw: Any) -> ModelShape:
        return replace(self, **kw)

    # Accounting lives in scalinglab.accounting.{gpt,perceiver_ar}; these delegate to it.
    def params(self, embeddings: bool = True) -> int:
        return params(self, embeddings=embeddings)

    def flops_per_token(self, convention: str = "chinchilla") -> float:
        return flops_per_token(self, convention=convention)

    # Perceiver AR's split (Krasser 2023): the self part is a decoder-only transformer over the latents, the cross
    # part the prefix position embedding and prefix cross-attention. A gpt is all self part.
    def params_self(self) -> int:
        return perceiver_ar.params_self(self) if self.arch == "perceiver-ar" else params(self)

    def params_cross(self) -> int:
        return perceiver_ar.params_cross(validate(self)) if self.arch == "perceiver-ar" else 0

    def flops_per_token_self(self, convention: str = "chinchilla") -> float:
        return flops_parts(self, convention)["self"]

    def flops_per_token_cross(self, convention: str = "chinchilla") -> float:
        return flops_parts(self, convention)["cross"]


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
    if shape.mup_base < 0 or (shape.mup_base and shape.arch != "gpt"):
        raise UserError(
            f"muP base width {shape.mup_base} on arch {shape.arch!r}",
            hint="muP is for gpt models, with a positive base width (0: standard parametrization)",
            keys=("mup_base",),
        )
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
