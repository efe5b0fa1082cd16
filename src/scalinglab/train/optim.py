"""Optimizer construction: Adam / AdamW (fused on CUDA), weight decay on matrices only (nanoGPT)."""

from __future__ import annotations

import torch

from scalinglab.errors import UserError
from scalinglab.models.gpt import mup_hidden


def build_optimizer(model: torch.nn.Module, spec, lr: float, device_type: str) -> torch.optim.Optimizer:
    """adamw: decoupled weight decay on >=2-D weights; adam: plain Adam, no decay (the article's setup).
    Under muP (shape.mup_base) the hidden weights get their own group with lr_scale = 1/width_mult (Adam's muP
    LR ~ 1/fan_in, Yang et al. 2022); the trainer multiplies each group's LR by its lr_scale."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    shape = getattr(model, "shape", None)
    mup = bool(getattr(shape, "mup_base", 0))
    hidden = [p for n, p in named if mup and mup_hidden(n, p)]
    seen = {id(p) for p in hidden}
    decay = [p for _, p in named if p.dim() >= 2 and id(p) not in seen]
    rest = [p for _, p in named if p.dim() < 2]
    fused = True if device_type == "cuda" else None
    betas = (spec.beta1, spec.beta2)
    wd = spec.weight_decay if spec.optimizer == "adamw" else 0.0
    groups = [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]
    if hidden:
        groups.append({"params": hidden, "weight_decay": wd, "lr_scale": 1.0 / shape.width_mult})
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)
    if spec.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, fused=fused)
    raise UserError(f"unknown optimizer {spec.optimizer!r}: use adamw or adam")
