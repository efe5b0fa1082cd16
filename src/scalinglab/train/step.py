"""The pieces of a step the trainer, its hooks and the benchmarks share: device batches, on-device loss sums,
the optimizer step (Stepper) and evaluation.

Batches are prefetched to the device (pinned, non_blocking); losses stay on the device until a caller reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from scalinglab.data.loader import TokenData
from scalinglab.records import RunSpec


class Batches:
    """Micro-batches of a step as device tensors; pinned host memory + non_blocking copies on CUDA.
    `rows`: this process's rows of every global micro-batch (a DDP rank's slice; all of them by default)."""

    def __init__(self, data: TokenData, spec: RunSpec, device: torch.device, rows: slice = slice(None)):
        self.data, self.spec, self.device, self.rows = data, spec, device, rows
        self.pin = device.type == "cuda"

    def _to_dev(self, arr) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.from_numpy(arr)
        if self.pin:
            t = t.pin_memory()
        t = t.to(self.device, non_blocking=True)
        return t[:, :-1], t[:, 1:]

    def get(self, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        s, ga = self.spec, self.spec.grad_accum
        return [
            self._to_dev(self.data.train_batch(step * ga + i, s.batch_size, s.shape.seq_len, s.seed)[self.rows])
            for i in range(ga)
        ]


@dataclass
class Accum:
    """Sums kept on the device between host syncs: the steps' mean losses and the non-finite gradient norms."""

    loss_sum: torch.Tensor
    bad: torch.Tensor

    @classmethod
    def zeros(cls, device: torch.device) -> Accum:
        return cls(torch.zeros((), device=device), torch.zeros((), device=device))


Micro = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Stepper:
    """One optimizer step over a step's micro-batches, with no host sync. `model` is what runs forward (maybe
    compiled or DDP-wrapped); `params` are the plain module's, for gradient clipping (grad_clip 0: off)."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    params: list[torch.Tensor]
    amp: Any  # autocast context (or contextlib.nullcontext)
    grad_clip: float

    def __call__(
        self, micro: Micro, lr: float, acc: Accum, prefetch: Callable[[], Micro] | None = None
    ) -> Micro | None:
        """The mean loss is added to acc.loss_sum and a non-finite gradient norm counted in acc.bad, both on the
        device. Returns prefetch() (the next step's batches), called after the backward kernels are queued so
        host work overlaps them."""
        for g in self.opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)  # muP's hidden-weight group trains at lr / width_mult
        ga = len(micro)
        for x, y in micro:
            with self.amp:
                _, loss = self.model(x, y)
            (loss / ga).backward()
            acc.loss_sum += loss.detach().float() / ga
        nxt = prefetch() if prefetch is not None else None
        if self.grad_clip > 0:
            gn = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            acc.bad += (~torch.isfinite(gn)).float()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return nxt


@torch.no_grad()
def evaluate(model, windows: torch.Tensor, batch_size: int, amp) -> float:
    """Mean loss over fixed validation windows (one host sync)."""
    was = model.training
    model.eval()
    total = torch.zeros((), device=windows.device)
    for i in range(0, len(windows), batch_size):
        w = windows[i : i + batch_size]
        with amp:
            _, loss = model(w[:, :-1], w[:, 1:])
        total += loss.float() * len(w)
    model.train(was)
    return (total / len(windows)).item()
