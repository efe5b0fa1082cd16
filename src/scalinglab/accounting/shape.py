"""ModelShape: the one record that knows a model's parameter count and training FLOPs per token.

Every stage (plan, train, sweep, fit) asks a ModelShape; nothing re-derives N or C on its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

ARCHS = ("gpt", "perceiver-ar")


@dataclass(frozen=True)
class ModelShape:
    """A transformer's shape.

    gpt: decoder-only, GPT-2 layout by default (learned positions, pre-LN, GELU MLP x mlp_ratio,
    biases, tied embeddings). perceiver-ar: `latents` = n latent tokens, prefix m = seq_len - latents,
    a hybrid cross/self first layer and n_layers - 1 self-attention layers (seeds/001).
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
    def from_dict(cls, d: dict[str, Any]) -> "ModelShape":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_(self, **kw: Any) -> "ModelShape":
        return replace(self, **kw)

    # Accounting lives in scalinglab.accounting.{gpt,perceiver_ar}; these delegate to it.
    def params(self, embeddings: bool = True) -> int:
        from scalinglab.accounting import params

        return params(self, embeddings=embeddings)

    def flops_per_token(self, convention: str = "chinchilla") -> float:
        from scalinglab.accounting import flops_per_token

        return flops_per_token(self, convention=convention)

    # Perceiver AR's split (seeds/001): the self part is a decoder-only transformer over the latents, the cross
    # part the prefix position embedding and prefix cross-attention. A gpt is all self part.
    def params_self(self) -> int:
        from scalinglab.accounting import params, perceiver_ar

        return perceiver_ar.params_self(self) if self.arch == "perceiver-ar" else params(self)

    def params_cross(self) -> int:
        from scalinglab.accounting import perceiver_ar, validate

        return perceiver_ar.params_cross(validate(self)) if self.arch == "perceiver-ar" else 0

    def flops_per_token_self(self, convention: str = "chinchilla") -> float:
        from scalinglab.accounting import flops_parts

        return flops_parts(self, convention)["self"]

    def flops_per_token_cross(self, convention: str = "chinchilla") -> float:
        from scalinglab.accounting import flops_parts

        return flops_parts(self, convention)["cross"]
