"""Which pending run starts next, and on which device: each run's own memory and compute, packed per GPU.

Uncompiled small models leave a GPU mostly idle (Kaplan-style sweeps start at ~1M parameters), so many share one
GPU and large ones few. Compiled runs instead take turns: measured on one H200 (bench/results/packing-*-compiled*),
K compiled processes of a 0.5M-parameter model sharing a GPU trained 0.37x (K=2) and 0.30x (K=4) the tokens/s of
one alone, and of an 11M model 0.92x (K=4): a GPU time-slices between processes and CUDA-graphed steps lose the
most. So up to TURN_DEPTH compiled runs sit on a GPU at once, one training and the others starting (imports,
compilation, warm-up), and they train one at a time (scalinglab.train.turns). Pure functions (tested on CPU) plus
one nvidia-smi query; the sweep loop calls `choose`.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any

GIB = 2**30
CONTEXT_BYTES = 1 * GIB  # CUDA context, cuBLAS workspace and allocator slack of one training process
BYTES_PER_PARAM = 20  # fp32 weights, grads, Adam m and v (16) + bf16 autocast copies (4)
MEM_SHARE = 0.85  # of the card's memory the packed runs may plan to use
MAX_PER_GPU = 8  # beyond this, processes mostly wait on each other's launches and compiles
# (largest params, share of a GPU's compute one run keeps busy alone): from utilisation measured on H100/H200 with
# a compiled step: ~12-20% of matmul peak up to a few M params, ~35% at 10-20M, >= 45% from 50M (bench/packing.py
# measured 2-2.5x aggregate throughput from 4 runs of 3.5M-11M params on one GPU).
SHARE_STEPS = ((5e6, 1 / 8), (20e6, 1 / 4), (60e6, 1 / 2))
TURN_DEPTH = 4  # compiled runs on one GPU at once: one trains while the next three compile and wait their turn
STEP_OVERHEAD_S = 0.004  # host time per optimizer step that no model size removes (launches, clip, optimizer)
NOMINAL_PEAK = 8e14  # bf16 FLOP/s of an H100/H200-class GPU; only orders runs, never reported


@dataclass(frozen=True)
class Need:
    """What one run asks of a device."""

    mem: float  # bytes of GPU memory it plans to use
    share: float  # fraction of one GPU's compute it keeps busy when alone
    seconds: float  # rough time alone, for longest-first order
    compiled: bool = False  # torch.compile'd: takes turns on a GPU that has them instead of sharing its compute


@dataclass
class Device:
    """One GPU (or the CPU pool, or a cluster) runs train on, and what the runs placed there use now.
    mem 0: not sized (only max_runs limits it, as for CPU workers or a fixed --per-gpu). turns: compiled runs
    train on it one at a time (at most TURN_DEPTH placed at once) and count no compute share."""

    name: str
    env: dict[str, str]
    max_runs: int
    mem: float = 0.0
    used_mem: float = 0.0
    used_share: float = 0.0
    runs: int = 0
    turns: bool = False
    turn_runs: int = 0

    def takes_turns(self, need: Need) -> bool:
        return self.turns and need.compiled

    def fits(self, need: Need) -> bool:
        if self.runs >= self.max_runs:
            return False
        if self.takes_turns(need) and self.turn_runs >= TURN_DEPTH:
            return False
        if self.mem <= 0 or self.runs == 0:  # an empty GPU takes any run: an oversized one must still run somewhere
            return True
        share = 0.0 if self.takes_turns(need) else need.share
        return self.used_mem + need.mem <= self.mem and self.used_share + share <= 1.0 + 1e-9

    def add(self, need: Need) -> None:
        self.runs += 1
        self.used_mem += need.mem
        if self.takes_turns(need):
            self.turn_runs += 1
        else:
            self.used_share += need.share

    def remove(self, need: Need) -> None:
        self.runs -= 1
        if self.takes_turns(need):
            self.turn_runs -= 1
        else:
            self.used_share = max(0.0, self.used_share - need.share)
        self.used_mem = max(0.0, self.used_mem - need.mem)
        if not self.runs:  # no float residue on an empty device
            self.used_mem = self.used_share = 0.0


def activation_bytes(d_model: int, n_layers: int, vocab: int, seq_len: int, micro_batch: int) -> int:
    """Peak activation memory of one micro-batch under bf16 autocast, roughly: per layer 34 bytes per token and
    channel (Korthikanti et al. 2022, no recompute) plus the attention scores, and the logits. Training keeps one
    chunk of logits at a time (models/losses.py); evaluation holds bf16 logits and their fp32 copy: 6 bytes each."""
    tokens = micro_batch * seq_len
    heads = max(1, d_model // 64)
    per_layer = tokens * d_model * 34 + 5 * micro_batch * heads * seq_len * seq_len
    return int(n_layers * per_layer + tokens * vocab * 6)


def compute_share(params: float) -> float:
    return next((s for n, s in SHARE_STEPS if params <= n), 1.0)


def run_need(row: dict[str, Any]) -> Need:
    """A store row's (params, steps and a JSON `spec`) memory, compute share and rough time alone."""
    spec = json.loads(row["spec"]) if isinstance(row.get("spec"), str) else (row.get("spec") or {})
    sh = spec.get("shape") or {}
    params = float(row.get("params") or 0)
    batch, accum = int(spec.get("batch_size", 1)), int(spec.get("grad_accum", 1))
    seq = int(sh.get("seq_len", 0))
    act = activation_bytes(sh.get("d_model", 0), sh.get("n_layers", 0), sh.get("vocab", 0), seq, batch)
    share = compute_share(params)
    steps = int(row.get("steps") or spec.get("steps") or 0)
    flops = 6 * params * steps * batch * accum * seq  # 6N per token: enough to order runs
    compiled = bool((spec.get("runtime") or {}).get("compile", False))
    return Need(
        CONTEXT_BYTES + BYTES_PER_PARAM * params + act,
        share,
        flops / (share * NOMINAL_PEAK) + steps * STEP_OVERHEAD_S,
        compiled,
    )


def choose(pending: list[tuple[str, Need]], devices: list[Device]) -> tuple[str, int] | None:
    """The next (run id, device index) to start: the longest pending run that fits somewhere (the longest first, so
    no long run starts last; shorter ones fill what it leaves), on the fitting device with the most compute left.
    None when no pending run fits on any device."""
    for rid, need in sorted(pending, key=lambda p: -p[1].seconds):
        fit = [i for i, d in enumerate(devices) if d.fits(need)]
        if fit:
            return rid, min(fit, key=lambda i: (devices[i].used_share, devices[i].runs, i))
    return None


def assign(pending: list[tuple[str, Need]], devices: list[Device]) -> list[tuple[str, int]]:
    """Start runs while any fits: the placements `choose` makes one after another (devices are updated)."""
    left, out = list(pending), []
    while (pick := choose(left, devices)) is not None:
        rid, i = pick
        need = next(n for r, n in left if r == rid)
        devices[i].add(need)
        left = [p for p in left if p[0] != rid]
        out.append(pick)
    return out


def gpu_memory_bytes() -> int:
    """Smallest total memory of the visible GPUs, from nvidia-smi (the sweep never initialises CUDA); 0 if none."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    mem = {}
    for line in out.splitlines():
        try:
            i, m = (x.strip() for x in line.split(","))
            mem[i] = int(float(m)) * 2**20
        except ValueError:
            continue
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis is not None:
        mem = {i: m for i, m in mem.items() if i in {v.strip() for v in vis.split(",")}}
    return min(mem.values()) if mem else 0


def gpu_devices(ids: list[int], mem_bytes: float, per_gpu: int | None = None, cpus: int | None = None) -> list[Device]:
    """One Device per GPU. per_gpu K: K runs each whatever their size, all training at once; None: packed by each
    run's own need, at most MAX_PER_GPU and the CPU cores per GPU (each run compiles and launches from its own
    process), compiled runs taking turns."""
    if per_gpu is not None:
        return [Device(f"gpu{g}", {"CUDA_VISIBLE_DEVICES": str(g)}, per_gpu) for g in ids]
    cores = cpus if cpus is not None else (os.cpu_count() or 1)
    k = max(1, min(MAX_PER_GPU, cores // max(1, len(ids))))
    return [Device(f"gpu{g}", {"CUDA_VISIBLE_DEVICES": str(g)}, k, MEM_SHARE * mem_bytes, turns=True) for g in ids]
