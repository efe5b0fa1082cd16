"""One optimizer step and one evaluation, with no host sync: the pieces the trainer and its hooks share.

Batches are prefetched to the device (pinned, non_blocking); losses stay on the device until a caller reads them.
"""

from __future__ import annotations

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
        return [self._to_dev(self.data.train_batch(step * ga + i, s.batch_size, s.shape.seq_len, s.seed)[self.rows])
                for i in range(ga)]


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


def train_step(model, opt, micro, amp, lr: float, params, grad_clip: float, loss_sum: torch.Tensor, bad: torch.Tensor,
               prefetch=None, out: list | None = None) -> None:
    """One optimizer step over the micro-batches, with no host sync: the mean loss is added to loss_sum
    and non-finite gradient norms counted in bad, both on the device. prefetch() (the next step's batches,
    stored in out[0]) runs after the backward kernels are queued, so host work overlaps them."""
    for g in opt.param_groups:
        g["lr"] = lr
    ga = len(micro)
    for x, y in micro:
        with amp:
            _, loss = model(x, y)
        (loss / ga).backward()
        loss_sum += loss.detach().float() / ga
    if prefetch is not None:
        out[0] = prefetch()
    if grad_clip > 0:
        gn = torch.nn.utils.clip_grad_norm_(params, grad_clip)
        bad += (~torch.isfinite(gn)).float()
    opt.step()
    opt.zero_grad(set_to_none=True)
