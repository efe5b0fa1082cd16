"""Optimizer construction: Adam / AdamW (fused on CUDA), weight decay on matrices only (nanoGPT)."""

from __future__ import annotations

import torch

from scalinglab.errors import UserError


def build_optimizer(model: torch.nn.Module, spec, lr: float, device_type: str) -> torch.optim.Optimizer:
    """adamw: decoupled weight decay on >=2-D weights; adam: plain Adam, no decay (the article's setup)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    fused = True if device_type == "cuda" else None
    betas = (spec.beta1, spec.beta2)
    if spec.optimizer == "adamw":
        groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)
    if spec.optimizer == "adam":
        return torch.optim.Adam([{"params": decay}, {"params": rest}], lr=lr, betas=betas, fused=fused)
    raise UserError(f"unknown optimizer {spec.optimizer!r}: use adamw or adam")
