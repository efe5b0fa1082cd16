"""How many runs share one GPU when `scalinglab sweep` gets no --per-gpu: small models leave an H100 mostly
idle (ANCHORS.md: a 7M-param model reaches 17% of matmul peak), so pack them until size or memory says stop.

Pure functions, plus one nvidia-smi query; bench/packing.py measures the gain these defaults aim at.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

GIB = 2**30
CONTEXT_BYTES = 1 * GIB  # CUDA context, cuBLAS workspace and allocator slack of one training process
BYTES_PER_PARAM = 20  # fp32 weights, grads, Adam m and v (16) + bf16 autocast copies (4)
MEM_SHARE = 0.85  # of the card's memory the packed runs may plan to use
# (largest params, runs per GPU): from ANCHORS' utilisation, 12-17% of peak up to 7M params, ~35% at 10-20M,
# >= 45% from 50M; a run must leave enough idle time for the others to fill.
SIZE_STEPS = ((5e6, 8), (20e6, 4), (60e6, 2))


def activation_bytes(d_model: int, n_layers: int, vocab: int, seq_len: int, micro_batch: int) -> int:
    """Peak activation memory of one micro-batch under bf16 autocast, roughly: per layer 34 bytes per token and
    channel (Korthikanti et al. 2022, no recompute) plus the attention scores, and the logits (bf16 + fp32 for
    the loss + fp32 grad = 10 bytes per entry), which dominate for a 50k vocabulary."""
    tokens = micro_batch * seq_len
    heads = max(1, d_model // 64)
    per_layer = tokens * d_model * 34 + 5 * micro_batch * heads * seq_len * seq_len
    return int(n_layers * per_layer + tokens * vocab * 10)


def default_per_gpu(params: float, gpu_mem_bytes: float, act_bytes: float = 0.0, max_k: int = 8) -> int:
    """Runs per GPU for runs of at most `params` parameters: the size rule, capped by memory
    (one process needs CONTEXT_BYTES + BYTES_PER_PARAM * params + act_bytes). At least 1."""
    by_size = next((k for n, k in SIZE_STEPS if params <= n), 1)
    per_run = CONTEXT_BYTES + BYTES_PER_PARAM * float(params) + float(act_bytes)
    by_mem = int(MEM_SHARE * float(gpu_mem_bytes) // per_run) if gpu_mem_bytes > 0 else 1
    return max(1, min(by_size, by_mem, max_k))


def gpu_memory_bytes() -> int:
    """Smallest total memory of the visible GPUs, from nvidia-smi (the sweep never initialises CUDA); 0 if none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
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


def study_per_gpu(runs: list[dict[str, Any]], gpu_mem_bytes: int | None = None) -> int:
    """--per-gpu default for a study: the store's run rows (each with a JSON `spec`); the slots are shared by all
    runs, so the largest pending run decides. 1 when there is no GPU."""
    mem = gpu_memory_bytes() if gpu_mem_bytes is None else gpu_mem_bytes
    if mem <= 0:
        return 1
    todo = [r for r in runs if r.get("status") in (None, "pending", "running")] or runs
    k = 8
    for r in todo:
        spec = json.loads(r["spec"]) if isinstance(r.get("spec"), str) else (r.get("spec") or {})
        sh = spec.get("shape") or {}
        act = activation_bytes(sh.get("d_model", 0), sh.get("n_layers", 0), sh.get("vocab", 0), sh.get("seq_len", 0),
                               int(spec.get("batch_size", 1)))
        k = min(k, default_per_gpu(float(r.get("params") or 0), mem, act))
    return k


def per_gpu_for_study(study_dir) -> int:
    """study_per_gpu over the study store's runs (what `scalinglab sweep` uses when --per-gpu is not given)."""
    from scalinglab.sweep.store import Store

    with Store(study_dir) as st:
        return study_per_gpu(st.runs())
