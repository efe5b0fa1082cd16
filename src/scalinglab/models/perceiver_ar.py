"""Perceiver AR (Hawthorne et al. 2022) as the article trains it (Krasser 2023, Training compute-optimal Perceiver AR language models), built from a ModelShape.

Layout follows perceiver-io 0.8's CausalLanguageModel so that the parameter count equals
scalinglab.accounting.perceiver_ar exactly: N_cross = prefix position embedding (m*d), N_self = the rest.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from scalinglab.accounting.shape import ModelShape
from scalinglab.models.gpt import init_weights


class MLP(nn.Module):
    """Pre-LN MLP without biases (perceiver-io)."""

    def __init__(self, d: int, ratio: int):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ratio * d, bias=False)
        self.fc2 = nn.Linear(ratio * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class Attention(nn.Module):
    """Multi-head attention from queries x_q to keys/values x_kv through scaled_dot_product_attention."""

    def __init__(self, d: int, n_heads: int, out_bias: bool):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"d_model {d} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=out_bias)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, Tq, C = x_q.shape
        Tk, h = x_kv.shape[1], self.n_heads
        q = self.q(x_q).view(B, Tq, h, C // h).transpose(1, 2)
        k = self.k(x_kv).view(B, Tk, h, C // h).transpose(1, 2)
        v = self.v(x_kv).view(B, Tk, h, C // h).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.o(y.transpose(1, 2).contiguous().view(B, Tq, C))


class HybridLayer(nn.Module):
    """First layer: the n latents attend to the (kept) prefix and causally to the latents themselves."""

    def __init__(self, s: ModelShape):
        super().__init__()
        self.q_norm = nn.LayerNorm(s.d_model)
        self.kv_norm = nn.LayerNorm(s.d_model)
        self.attn = Attention(s.d_model, s.n_heads, out_bias=True)
        self.mlp = MLP(s.d_model, s.mlp_ratio)

    def forward(self, prefix: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        n, m = latents.shape[1], prefix.shape[1]
        # every prefix position precedes every latent; among latents the mask is causal
        mask = torch.ones(n, m + n, dtype=torch.bool, device=latents.device).tril(diagonal=m)
        x = latents + self.attn(self.q_norm(latents), self.kv_norm(torch.cat([prefix, latents], dim=1)), mask)
        return x + self.mlp(x)


class SelfLayer(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.norm = nn.LayerNorm(s.d_model)
        self.attn = Attention(s.d_model, s.n_heads, out_bias=False)
        self.mlp = MLP(s.d_model, s.mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        x = x + self.attn(h, h, None)
        return x + self.mlp(x)


class PerceiverAR(nn.Module):
    """Input [B, m + n] tokens; logits for the last n (latent) positions. Output tied to the token embedding."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        s = shape
        if s.arch != "perceiver-ar":
            raise ValueError(f"PerceiverAR needs arch 'perceiver-ar', got {s.arch!r}")
        if not 0 < s.latents < s.seq_len:
            raise ValueError(f"latents must be in 1..seq_len-1, got {s.latents} (seq_len {s.seq_len})")
        if s.pos != "learned":
            raise ValueError("perceiver-ar uses learned positions (pos='learned')")
        self.shape = s
        self.wte = nn.Embedding(s.vocab, s.d_model)
        self.wpe = nn.Embedding(s.seq_len, s.d_model)  # rows [0, m) are the cross part (N_cross = m*d)
        self.hybrid = HybridLayer(s)
        self.layers = nn.ModuleList(SelfLayer(s) for _ in range(s.n_layers - 1))
        self.out_bias = nn.Parameter(torch.zeros(s.vocab))
        self.activation_checkpointing = False
        # prefix dropout has its own generator so that a resumed run draws the same masks
        self.dropout_rng = torch.Generator().manual_seed(0)
        init_weights(self, s.n_layers, residual=("attn.o.weight", "mlp.fc2.weight"))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _drop_prefix(self, prefix: torch.Tensor) -> torch.Tensor:
        """Keep a random (1 - p) share of prefix positions per sequence (order kept)."""
        B, m, _ = prefix.shape
        keep = m - int(m * self.shape.prefix_dropout)
        scores = torch.rand(B, m, generator=self.dropout_rng).to(prefix.device, non_blocking=True)
        idx = scores.topk(keep, dim=1).indices.sort(dim=1).values
        return prefix.gather(1, idx.unsqueeze(-1).expand(-1, -1, prefix.shape[-1]))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        n = self.shape.latents
        if T > self.shape.seq_len or T <= n:
            raise ValueError(f"sequence of {T} tokens must be in {n + 1}..{self.shape.seq_len} for this Perceiver AR")
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        prefix, latents = x[:, : T - n], x[:, T - n :]
        if self.training and self.shape.prefix_dropout > 0:
            prefix = self._drop_prefix(prefix)
        ckpt = self.activation_checkpointing and self.training
        if ckpt:
            x = torch.utils.checkpoint.checkpoint(self.hybrid, prefix, latents, use_reentrant=False)
        else:
            x = self.hybrid(prefix, latents)
        for layer in self.layers:
            x = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False) if ckpt else layer(x)
        # parameter-free final norm: the article's model counts no final LayerNorm weights
        x = F.layer_norm(x, (x.shape[-1],))
        logits = x @ self.wte.weight.T + self.out_bias
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets[:, -n:].reshape(-1))
        return logits, loss
