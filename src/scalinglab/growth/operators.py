"""Function-preserving growth operators for the GPT model (staged training, Shen et al. 2022): width x k and depth x k,
on model state dicts and on Adam moments keyed by parameter name.

Width x k keeps the function exactly: every hidden unit, head and MLP unit is copied k times and the weight
matrices become block-diagonal, so the residual stream is k equal copies [x, x, ...]. LayerNorm over k equal
copies has the same mean and variance, so its output is the same copies. The final LayerNorm is divided by k so
that the (tied) output head, whose embedding columns are copied, sums k equal halves back to the old logits.
Each copy then gets 1/k of the old gradient: Adam's first moments are divided by k and second moments by k^2
(the final LayerNorm's gradient is unchanged, so its moments are copied as they are).

Depth x k inserts k-1 copies of each block whose output projections (attn.c_proj, mlp.c_proj, weights and
biases) are zero, so each new block adds nothing to the residual stream: an exact identity. Old blocks keep
their optimizer state; new blocks start fresh.
"""

from __future__ import annotations

import re

import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError

MODES = ("alternate", "append")
_BLOCK = re.compile(r"^transformer\.h\.(\d+)\.(.+)$")
_READERS = ("attn.c_attn.weight", "mlp.c_fc.weight")  # linears reading the (copied) residual stream


def check_growable(shape: ModelShape, width: int = 1, depth: int = 1, mode: str = "alternate") -> None:
    if shape.arch != "gpt":
        raise UserError(f"growth works on gpt models, not {shape.arch!r}: grow a gpt run")
    if shape.mup_base:  # widening changes muP's width multipliers, so the grown model would compute another function
        raise UserError(
            "growth keeps the function of standard-parametrization models only, not muP ones",
            hint="grow a run trained without muP",
        )
    for name, k in (("width", width), ("depth", depth)):
        if int(k) != k or k < 1:
            raise UserError(f"--{name} must be a whole number >= 1, got {k}: use 2 to double")
    if width == 1 and depth == 1:
        raise UserError("nothing to grow", hint="grow the width and/or the depth by 2", keys=("width", "depth"))
    if mode not in MODES:
        raise UserError(f"unknown depth mode {mode!r}: use alternate or append")


def grown_shape(shape: ModelShape, width: int = 1, depth: int = 1) -> ModelShape:
    return shape.with_(d_model=shape.d_model * width, n_heads=shape.n_heads * width, n_layers=shape.n_layers * depth)


# ---- width ----------------------------------------------------------------------------------------------------


def _block_diag(w: torch.Tensor, k: int) -> torch.Tensor:
    return torch.block_diag(*[w] * k)


def _reader_blocks(w: torch.Tensor, k: int, noise: float, gen: torch.Generator | None) -> torch.Tensor:
    """Block matrix whose row-block c sums (over column blocks) to w, so reading k equal copies gives w x.
    noise > 0 moves weight between column blocks (zero-sum per row block): same function, but the copies of the
    residual stream then get different gradients, which breaks the symmetry of the copies (no dropout here)."""
    out = _block_diag(w, k)
    if noise <= 0 or k == 1:
        return out
    n, m = w.shape
    scale = noise * float(w.float().std())
    eps = torch.randn(k, n, k, m, generator=gen, dtype=torch.float32).to(w.dtype) * scale
    eps = eps - eps.mean(dim=2, keepdim=True)  # each row block's perturbations sum to zero
    return out + eps.reshape(k * n, k * m)


def _widen(name: str, t: torch.Tensor, k: int, moment: int, noise: float = 0.0, gen=None) -> torch.Tensor:
    """Widen one tensor. moment 0: a parameter; 1: Adam first moment; 2: Adam second moment."""
    div = float(k**moment)  # gradient of each copy is 1/k of the old one
    if name.startswith("transformer.ln_f."):
        t = t.repeat(k)
        return t / k if moment == 0 else t  # the LN output is summed over k copies by the head
    if name in ("transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"):
        return t.repeat(1, k) / div
    m = _BLOCK.match(name)
    if not m:
        raise ValueError(f"no width rule for parameter {name}")
    rest = m.group(2)
    if rest in ("ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias") or rest in (
        "attn.c_proj.bias",
        "mlp.c_fc.bias",
        "mlp.c_proj.bias",
    ):
        return t.repeat(k) / div
    if rest == "attn.c_attn.bias":
        return torch.cat([p.repeat(k) for p in t.chunk(3)]) / div
    if rest == "attn.c_attn.weight":  # q, k, v each block-diagonal: head h of copy c becomes head c*H + h
        parts = [_reader_blocks(p, k, noise if moment == 0 else 0.0, gen) for p in t.chunk(3, dim=0)]
        return torch.cat(parts, dim=0) / div
    if rest == "mlp.c_fc.weight":
        return _reader_blocks(t, k, noise if moment == 0 else 0.0, gen) / div
    if rest in ("attn.c_proj.weight", "mlp.c_proj.weight"):
        return _block_diag(t, k) / div
    raise ValueError(f"no width rule for parameter {name}")


def widen_state_dict(sd: dict[str, torch.Tensor], k: int, noise: float = 0.0, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {n: _widen(n, t.detach(), k, 0, noise, gen).contiguous() for n, t in sd.items()}


def widen_moments(state: dict[str, dict], k: int) -> dict[str, dict]:
    """{param name: {"step", "exp_avg", "exp_avg_sq", ...}} -> the same for the widened model."""
    out = {}
    for name, st in state.items():
        new = dict(st)
        for key, moment in (("exp_avg", 1), ("exp_avg_sq", 2), ("max_exp_avg_sq", 2)):
            if key in st:
                new[key] = _widen(name, st[key], k, moment).contiguous()
        out[name] = new
    return out


# ---- depth ----------------------------------------------------------------------------------------------------


def depth_map(n_layers: int, k: int, mode: str) -> list[tuple[int, bool]]:
    """New block j -> (old block it copies, is_new_identity). alternate: 0,0',1,1',...; append: 0..L-1,0'..L-1'."""
    if mode == "alternate":
        return [(i, c > 0) for i in range(n_layers) for c in range(k)]
    return [(i, c > 0) for c in range(k) for i in range(n_layers)]


_ZERO_ON_NEW = ("attn.c_proj.weight", "attn.c_proj.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")


def deepen_state_dict(sd: dict[str, torch.Tensor], n_layers: int, k: int, mode: str) -> dict[str, torch.Tensor]:
    out = {n: t.detach().clone() for n, t in sd.items() if not _BLOCK.match(n)}
    for j, (i, new) in enumerate(depth_map(n_layers, k, mode)):
        for n, t in sd.items():
            m = _BLOCK.match(n)
            if m and int(m.group(1)) == i:
                rest = m.group(2)
                out[f"transformer.h.{j}.{rest}"] = (
                    torch.zeros_like(t) if new and rest in _ZERO_ON_NEW else t.detach().clone()
                )
    return out


def deepen_moments(state: dict[str, dict], n_layers: int, k: int, mode: str) -> dict[str, dict]:
    """Old blocks keep their state under their new index; new blocks get none (the optimizer starts them fresh)."""
    out = {n: st for n, st in state.items() if not _BLOCK.match(n)}
    for j, (i, new) in enumerate(depth_map(n_layers, k, mode)):
        if new:
            continue
        for n, st in state.items():
            m = _BLOCK.match(n)
            if m and int(m.group(1)) == i:
                out[f"transformer.h.{j}.{m.group(2)}"] = st
    return out


# ---- both -----------------------------------------------------------------------------------------------------


def grow_state(
    sd: dict[str, torch.Tensor],
    moments: dict[str, dict] | None,
    shape: ModelShape,
    width: int = 1,
    depth: int = 1,
    mode: str = "alternate",
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[ModelShape, dict[str, torch.Tensor], dict[str, dict] | None]:
    """Grow a model state dict (and Adam moments keyed by parameter name): width first, then depth."""
    check_growable(shape, width, depth, mode)
    if width > 1:
        sd = widen_state_dict(sd, width, noise, seed)
        moments = widen_moments(moments, width) if moments is not None else None
    if depth > 1:
        sd = deepen_state_dict(sd, shape.n_layers, depth, mode)
        moments = deepen_moments(moments, shape.n_layers, depth, mode) if moments is not None else None
    return grown_shape(shape, width, depth), sd, moments


def grow_model(model, width: int = 1, depth: int = 1, mode: str = "alternate", noise: float = 0.0, seed: int = 0):
    """A new GPT of the grown shape computing the same function as `model` (up to fp rounding)."""
    from scalinglab.models.gpt import GPT

    shape, sd, _ = grow_state(model.state_dict(), None, model.shape, width, depth, mode, noise, seed)
    new = GPT(shape)
    new.load_state_dict(sd)
    return new.to(next(model.parameters()).device)
