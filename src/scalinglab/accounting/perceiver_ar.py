"""Perceiver AR parameters and training FLOPs per latent token, exactly as the article's `scaling` package
(krasserm/perceiver-io examples/scaling/clm/scaling/flops.py, Jan 2023) computes them for Tables 1-5.

Self part = a decoder-only transformer over the n latent tokens; cross part = prefix position embedding and
the prefix cross-attention of the first (hybrid) layer. FLOPs: Kaplan Table 1 + Chinchilla App. F embed/logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ComputeEstimator:
    """Training FLOPs per latent token (d_attn = d_model, MLP widening 4), as in the article."""

    vocab_size: int
    max_seq_len: int
    num_latents: int

    @property
    def num_prefix(self) -> int:
        return self.max_seq_len - self.num_latents

    def self_attn(self, num_channels: int, num_layers: int) -> int:
        """Self-attention part per latent token; num_layers counts the hybrid layer."""
        d = num_channels
        forward = 4 * d + (self._self_attn_layer(d) + 16 * d * d) * num_layers + 2 * d * self.vocab_size
        return forward * 3

    def cross_attn(self, num_channels: int, prefix_dropout: float = 0.5) -> int:
        """Prefix embedding + prefix cross-attention per latent token (dropped prefix positions cost nothing)."""
        d = num_channels
        ratio = self.num_prefix / self.num_latents
        embed_prefix = 4 * d * ratio
        attn_prefix = (4 * d * d + 2 * d * self.num_latents) * ratio * (1.0 - prefix_dropout)
        return int(embed_prefix + attn_prefix) * 3  # the article truncates the forward count before x3

    def _self_attn_layer(self, d: int) -> int:
        return 6 * d * d + 2 * d * self.num_latents + 2 * d * d  # qkv + attention + out


def num_model_params(
    num_channels: int, num_layers: int, num_latents: int, num_prefix: int, vocab_size: int, widening: int = 4
) -> int:
    """perceiver-io 0.8 CausalLanguageModel: what the article counts with `sum(p.numel() ...)`.

    Token embedding V*d and learned positions (m+n)*d; hybrid layer: q/kv LayerNorms, q,k,v without bias,
    output projection with bias, pre-LN MLP without biases; num_layers - 1 self-attention layers without any
    linear biases; tied output with a vocab-size bias. Every LayerNorm has weight and bias.
    """
    d, r = num_channels, widening
    embed = vocab_size * d + (num_latents + num_prefix) * d
    mlp = 2 * d + 2 * r * d * d
    hybrid = 2 * d + 2 * d + 3 * d * d + (d * d + d) + mlp
    layer = 2 * d + 4 * d * d + mlp
    return embed + hybrid + (num_layers - 1) * layer + vocab_size


def num_cross_attn_params(num_channels: int, num_prefix: int) -> int:
    """The cross part owns only the prefix position embedding (the hybrid layer's weights are shared)."""
    return num_channels * num_prefix


def num_self_attn_params(
    num_channels: int, num_layers: int, num_latents: int, num_prefix: int, vocab_size: int, widening: int = 4
) -> int:
    n = num_model_params(num_channels, num_layers, num_latents, num_prefix, vocab_size, widening)
    return n - num_cross_attn_params(num_channels, num_prefix)


def num_training_tokens(num_steps: int, num_latents: int, batch_size: int) -> int:
    return batch_size * num_latents * num_steps


def num_training_steps(num_tokens: float, num_latents: int, batch_size: int) -> int:
    return math.ceil(num_tokens / num_latents / batch_size)


def estimator(shape) -> ComputeEstimator:
    return ComputeEstimator(vocab_size=shape.vocab, max_seq_len=shape.seq_len, num_latents=shape.latents)


def params_self(shape) -> int:
    return num_self_attn_params(
        shape.d_model, shape.n_layers, shape.latents, shape.prefix, shape.vocab, shape.mlp_ratio
    )


def params_cross(shape) -> int:
    return num_cross_attn_params(shape.d_model, shape.prefix)


def params(shape, embeddings: bool = True) -> int:
    """N = N_self + N_cross; embeddings=False drops token and all position embeddings."""
    n = num_model_params(shape.d_model, shape.n_layers, shape.latents, shape.prefix, shape.vocab, shape.mlp_ratio)
    return n if embeddings else n - shape.vocab * shape.d_model - shape.seq_len * shape.d_model


def flops_per_token_self(shape, convention: str = "krasser") -> float:
    if convention in ("krasser", "chinchilla"):
        return float(estimator(shape).self_attn(shape.d_model, shape.n_layers))
    if convention == "6n":
        return 6.0 * params_self(shape)  # the article's C_self approximation
    raise KeyError(convention)


def flops_per_token_cross(shape, convention: str = "krasser") -> float:
    if convention in ("krasser", "chinchilla"):
        return float(estimator(shape).cross_attn(shape.d_model, prefix_dropout=shape.prefix_dropout))
    if convention == "6n":
        return 0.0
    raise KeyError(convention)


PERCEIVER_CONVENTIONS = {
    "krasser": "the article's ComputeEstimator: self_attn + cross_attn per latent token",
    "chinchilla": "same as krasser (Kaplan Table 1 with Chinchilla App. F embedding and logits terms)",
    "6n": "6 N_self per latent token (the article's C_self approximation; cross part not counted)",
}


def flops_per_token(shape, convention: str = "krasser") -> float:
    """Training FLOPs per latent token: self part + cross part."""
    return flops_per_token_self(shape, convention) + flops_per_token_cross(shape, convention)
