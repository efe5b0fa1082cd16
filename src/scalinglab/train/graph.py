"""The whole training step as one CUDA graph: forward, backward, gradient clipping and fused AdamW recorded once and
replayed each step, so a small model's step costs the GPU's time, not the host's.

torch.compile's reduce-overhead mode graphs the forward and the backward but leaves the autograd engine, clipping
and the optimizer on the host: measured on one H200 (bench/results/step-profile-nvidia-h200.txt), a 0.5M-parameter
model's step took 2.6 ms of which the GPU was busy 1.1 ms. Recording follows PyTorch's whole-network capture
(https://pytorch.org/docs/stable/notes/cuda.html#whole-network-capture): warm-up steps on a side stream, then one
step recorded with the gradients unset, so each replay writes them afresh; the optimizer is capturable, its learning
rates are device tensors the host refills before each replay, and inputs are copied into the graph's own buffers.

The warm-up steps change the weights and the optimizer: the trainer records on a snapshot and restores it in place
(restore_optimizer), since the graph holds the addresses of the tensors it was recorded with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from scalinglab.train.step import Accum, Micro

WARM_STEPS = 3  # PyTorch's capture example warms up for 3 iterations on the side stream


def eligible(device: torch.device, compile_mode: str, distributed: bool, rng: Any, checkpointing: bool) -> bool:
    """Whole-step graphs are the default for compiled CUDA runs on one GPU with no dropout RNG and no activation
    checkpointing; an explicit compile mode keeps torch.compile's own meaning."""
    return device.type == "cuda" and not compile_mode and not distributed and rng is None and not checkpointing


class GraphedStep:
    """Stepper's interface (one optimizer step, no host sync), replaying a recorded CUDA graph. `model` is the
    compiled model (torch.compile without CUDA graphs of its own); `opt` a fused AdamW/Adam on the device."""

    def __init__(self, model, opt: torch.optim.Optimizer, params: list[torch.Tensor], amp, grad_clip: float):
        self.model, self.opt, self.params, self.amp, self.grad_clip = model, opt, params, amp, grad_clip
        self.graph: torch.cuda.CUDAGraph | None = None
        dev = params[0].device
        for g in opt.param_groups:  # the graph reads each group's LR from a device tensor refilled before replay
            g["lr"] = torch.tensor(float(g["lr"]), dtype=torch.float32, device=dev)
            g["capturable"] = True
        for p, st in opt.state.items():  # a capturable step keeps its count on the device (a CPU run's is not)
            if isinstance(st.get("step"), torch.Tensor) and st["step"].device != p.device:
                st["step"] = st["step"].to(p.device, torch.float32)
        self.static: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.loss = self.bad = torch.zeros((), device=dev)

    def _body(self) -> None:
        ga = len(self.static)
        loss_sum = torch.zeros((), device=self.params[0].device)
        for x, y in self.static:
            with self.amp:
                _, loss = self.model(x, y)
            (loss / ga).backward()
            loss_sum = loss_sum + loss.detach().float() / ga
        self.loss = loss_sum
        if self.grad_clip > 0:
            gn = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.bad = (~torch.isfinite(gn)).float()
        self.opt.step()

    def warm_up(self, micro: Micro, lr: float) -> None:
        """Compile, warm up and record the step (changes weights and optimizer: call it on a snapshot)."""
        self.static = [(x.clone(), y.clone()) for x, y in micro]
        self._set_lr(lr)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARM_STEPS):
                self.opt.zero_grad(set_to_none=True)
                self._body()
        torch.cuda.current_stream().wait_stream(side)
        self.opt.zero_grad(set_to_none=True)  # recorded with no gradients: each replay writes them, none adds
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body()
        self.graph = graph

    def _set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"].fill_(lr * g.get("lr_scale", 1.0))  # muP's hidden-weight group trains at lr / width_mult

    def __call__(
        self, micro: Micro, lr: float, acc: Accum, prefetch: Callable[[], Micro] | None = None
    ) -> Micro | None:
        if self.graph is None:
            raise RuntimeError("GraphedStep used before warm_up")
        for (sx, sy), (x, y) in zip(self.static, micro, strict=True):
            sx.copy_(x, non_blocking=True)
            sy.copy_(y, non_blocking=True)
        self._set_lr(lr)
        self.graph.replay()
        nxt = prefetch() if prefetch is not None else None
        acc.loss_sum += self.loss
        acc.bad += self.bad
        return nxt


def restore_optimizer(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load `saved` (an opt.state_dict()) into the optimizer's own tensors, in place: a recorded graph keeps
    pointing at them. A parameter with no saved state gets zeros, which is what a fresh Adam state starts from."""
    params = [p for g in opt.param_groups for p in g["params"]]
    ids = [i for g in saved["param_groups"] for i in g["params"]]
    for p, i in zip(params, ids, strict=True):
        old = saved["state"].get(i, {})
        if p not in opt.state:
            if old:
                opt.state[p] = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in old.items()}
            continue
        for k, v in opt.state[p].items():
            if isinstance(v, torch.Tensor):
                v.copy_(old[k]) if k in old else v.zero_()
            elif k in old:
                opt.state[p][k] = old[k]
    for g, s in zip(opt.param_groups, saved["param_groups"], strict=True):
        for k, v in s.items():
            if k == "params":
                continue
            if isinstance(g.get(k), torch.Tensor):
                g[k].fill_(float(v))
            else:
                g[k] = v


def portable_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """opt.state_dict() with device-tensor hyperparameters (a graphed step's learning rates) as plain floats and
    capturable off, so a checkpoint loads into any optimizer: a capturable Adam refuses to step on the CPU, and a
    graphed step turns it back on."""
    sd = opt.state_dict()
    sd["param_groups"] = [
        {k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in g.items()}
        | ({"capturable": False} if "capturable" in g else {})
        for g in sd["param_groups"]
    ]
    return sd
