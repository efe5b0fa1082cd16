"""Exact parameter count and training FLOPs per token of a GPT-2 / nanoGPT decoder-only transformer.

Pure python; the conventions are named so that every record can say which one produced its C.
"""

from __future__ import annotations

# Each convention: training FLOPs per token (forward + backward), see flops_per_token().
GPT_CONVENTIONS = {
    "6n": "6 N, N = all parameters incl. embeddings",
    "6n-nonembed": "6 N, N = non-embedding parameters (Kaplan's N)",
    "kaplan": "Kaplan et al. 2020 Table 1: 3 x (2 N_nonembed + 2 n_layer n_ctx d_model)",
    "chinchilla": "Hoffmann et al. 2022 Appendix F: embeddings, attention, FFN, logits; backward = 2 x forward",
    "palm": "6 N + 12 n_layer d_model n_ctx, N = all parameters (PaLM / nanoGPT MFU formula)",
}


def _ln(d: int, bias: bool) -> int:
    return 2 * d if bias else d  # LayerNorm weight (+ bias)


def layer_params(shape) -> int:
    """One transformer block: LN1, qkv, attention proj, LN2, MLP fc and proj."""
    d, r, b = shape.d_model, shape.mlp_ratio, shape.bias
    attn = 3 * d * d + (3 * d if b else 0) + d * d + (d if b else 0)
    mlp = r * d * d + (r * d if b else 0) + r * d * d + (d if b else 0)
    return _ln(d, b) + attn + _ln(d, b) + mlp


def embedding_params(shape) -> int:
    """Token embedding, learned position embedding and (if untied) the output head: Kaplan's excluded part."""
    d = shape.d_model
    pos = shape.seq_len * d if shape.pos == "learned" else 0
    head = 0 if shape.tied else shape.vocab * d
    return shape.vocab * d + pos + head


def params(shape, embeddings: bool = True) -> int:
    """nanoGPT/GPT-2 layout: wte, wpe (learned positions only), n_layers blocks, ln_f, lm_head (tied: shares wte).

    embeddings=False gives Kaplan's N: without token/position embeddings (and an untied head, which is a
    vocabulary matrix too), i.e. blocks + final LayerNorm.
    """
    core = shape.n_layers * layer_params(shape) + _ln(shape.d_model, shape.bias)
    return core + (embedding_params(shape) if embeddings else 0)


def chinchilla_forward(shape) -> int:
    """Hoffmann et al. 2022 Appendix F, forward FLOPs per token (their per-sequence terms / seq_len).

    Key size x heads = d_model here (attention width equals the model width, as in GPT-2).
    """
    d, T, V, H, L = shape.d_model, shape.seq_len, shape.vocab, shape.n_heads, shape.n_layers
    ffw = shape.mlp_ratio * d
    embed = 2 * V * d  # one-hot x embedding matrix
    kqv = 2 * 3 * d * d
    logits = 2 * T * d  # K @ Q
    softmax = 3 * H * T
    reduce = 2 * T * d  # softmax @ V
    proj = 2 * d * d
    dense = 2 * (d * ffw + d * ffw)
    final = 2 * d * V
    return embed + L * (kqv + logits + softmax + reduce + proj + dense) + final


def flops_per_token(shape, convention: str = "chinchilla") -> float:
    """Training FLOPs per token under a named convention (see GPT_CONVENTIONS)."""
    L, d, T = shape.n_layers, shape.d_model, shape.seq_len
    if convention == "6n":
        return 6.0 * params(shape)
    if convention == "6n-nonembed":
        return 6.0 * params(shape, embeddings=False)
    if convention == "kaplan":  # forward 2N + 2 n_layer n_ctx d_attn, training = 3 x forward
        return 3.0 * (2 * params(shape, embeddings=False) + 2 * L * T * d)
    if convention == "chinchilla":
        return 3.0 * chinchilla_forward(shape)
    if convention == "palm":
        return 6.0 * params(shape) + 12.0 * L * d * T
    raise KeyError(convention)
