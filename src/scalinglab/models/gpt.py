"""Decoder-only transformer in the GPT-2 layout (nanoGPT style), built from a ModelShape.

Module names follow Hugging Face's GPT-2 (transformer.wte, transformer.h.0.attn.c_attn, ...) so export
is a rename and a transpose. Parameter count equals scalinglab.accounting exactly (tested).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from scalinglab.accounting.shape import ModelShape
from scalinglab.models.losses import linear_cross_entropy


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's has no bias=False before 2.1 on all paths)."""

    def __init__(self, d: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


def init_weights(model: nn.Module, n_layers: int, residual: tuple[str, ...]) -> None:
    """GPT-2 init: N(0, 0.02) linear and embedding weights, zero linear biases, and the residual projections
    (parameter names ending in `residual`) at std 0.02 / sqrt(2 n_layers). LayerNorms keep their defaults."""

    def one(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    model.apply(one)
    for name, p in model.named_parameters():
        if name.endswith(residual):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layers))


def mup_hidden(name: str, p: torch.Tensor) -> bool:
    """muP's hidden weights (matrices with both dimensions growing with width): the blocks' linear layers."""
    return p.dim() >= 2 and name.startswith("transformer.h.")


def mup_rescale(model: nn.Module) -> None:
    """muP init (Yang et al. 2022, Table 3): hidden weights' std times 1/sqrt(width_mult), i.e. variance ~ 1/fan_in
    relative to the base width; embeddings, LayerNorms and biases keep the standard init."""
    m = model.shape.width_mult
    with torch.no_grad():
        for name, p in model.named_parameters():
            if mup_hidden(name, p):
                p.mul_(1.0 / math.sqrt(m))


def rotary_tables(seq_len: int, head_dim: int, device=None, base: float = 10000.0):
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    t = torch.arange(seq_len, device=device, dtype=torch.float32)
    freqs = torch.outer(t, inv)
    return freqs.cos(), freqs.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, H, T, hd]; rotate pairs (first half, second half)
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos[: x.shape[-2]].to(x.dtype), sin[: x.shape[-2]].to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        if s.d_model % s.n_heads:
            raise ValueError(f"d_model {s.d_model} is not divisible by n_heads {s.n_heads}")
        self.n_heads = s.n_heads
        # muP: attention logits q.k / d_head (Yang et al. 2022), not / sqrt(d_head); None: SDPA's 1/sqrt(d_head)
        self.scale = (s.n_heads / s.d_model) if s.mup_base else None
        self.c_attn = nn.Linear(s.d_model, 3 * s.d_model, bias=s.bias)
        self.c_proj = nn.Linear(s.d_model, s.d_model, bias=s.bias)

    def forward(self, x: torch.Tensor, rope=None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.c_fc = nn.Linear(s.d_model, s.mlp_ratio * s.d_model, bias=s.bias)
        self.c_proj = nn.Linear(s.mlp_ratio * s.d_model, s.d_model, bias=s.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # tanh GELU: GPT-2's "gelu_new", so exported weights give the same logits in transformers
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.ln_1 = LayerNorm(s.d_model, s.bias)
        self.attn = CausalSelfAttention(s)
        self.ln_2 = LayerNorm(s.d_model, s.bias)
        self.mlp = MLP(s)

    def forward(self, x: torch.Tensor, rope=None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), rope)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        if shape.arch != "gpt":
            raise ValueError(f"GPT needs arch 'gpt', got {shape.arch!r}")
        self.shape = shape
        s = shape
        t = nn.ModuleDict(
            dict(
                wte=nn.Embedding(s.vocab, s.d_model),
                h=nn.ModuleList(Block(s) for _ in range(s.n_layers)),
                ln_f=LayerNorm(s.d_model, s.bias),
            )
        )
        if s.pos == "learned":
            t["wpe"] = nn.Embedding(s.seq_len, s.d_model)
        elif s.pos != "rotary":
            raise ValueError(f"unknown position encoding {s.pos!r}: use learned or rotary")
        self.transformer = t
        self.lm_head = nn.Linear(s.d_model, s.vocab, bias=False)
        if s.tied:
            self.lm_head.weight = self.transformer.wte.weight
        self.activation_checkpointing = False
        # training loss through models/losses.py: None = on CUDA only (on CPU, eager, its extra elementwise passes
        # cost more than the logits it saves), True = always, False = never (plain lm_head + F.cross_entropy)
        self.fused_loss: bool | None = None
        if s.pos == "rotary":
            cos, sin = rotary_tables(s.seq_len, s.d_model // s.n_heads)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        init_weights(self, s.n_layers, residual=("c_proj.weight",))
        if s.mup_base:
            mup_rescale(self)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() yields the tied weight once

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """(logits, loss); (None, loss) when training (targets, gradients enabled) through the fused loss."""
        B, T = idx.shape
        if T > self.shape.seq_len:
            raise ValueError(f"sequence of {T} tokens is longer than the model's seq_len {self.shape.seq_len}")
        x = self.transformer.wte(idx)
        rope = None
        if self.shape.pos == "learned":
            x = x + self.transformer.wpe(torch.arange(T, device=idx.device))
        else:
            rope = (self.rope_cos, self.rope_sin)
        for block in self.transformer.h:
            if self.activation_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, rope, use_reentrant=False)
            else:
                x = block(x, rope)
        x = self.transformer.ln_f(x)
        # muP readout: logits / width_mult, so the output layer's update stays O(1)
        scale = 1.0 / self.shape.width_mult if self.shape.mup_base else 1.0
        fused = self.fused_loss if self.fused_loss is not None else x.is_cuda
        if targets is not None and fused and torch.is_grad_enabled():
            # training: loss and its gradient chunk by chunk, no [tokens, vocab] logits kept (models/losses.py);
            # the muP scale goes on the weight: (h W^T) s = h (s W)^T
            w = self.lm_head.weight * scale if scale != 1.0 else self.lm_head.weight
            return None, linear_cross_entropy(x.view(B * T, -1), w, targets.reshape(-1))
        logits = self.lm_head(x)
        if scale != 1.0:
            logits = logits * scale
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
