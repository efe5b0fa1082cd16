"""Default runs per GPU (scalinglab.sweep.packing) and the packing benchmark's throughput window."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from scalinglab.sweep.packing import (BYTES_PER_PARAM, CONTEXT_BYTES, GIB, MEM_SHARE, activation_bytes, default_per_gpu,
                                      study_per_gpu)

H100 = 80 * GIB


def test_size_rule_on_an_h100():
    # ANCHORS' small rows: 3.5M and 7.0M params leave most of an H100 idle; 124M does not
    assert default_per_gpu(3.5e6, H100) == 8
    assert default_per_gpu(7.0e6, H100) == 4
    assert default_per_gpu(30.3e6, H100) == 2
    assert default_per_gpu(124e6, H100) == 1
    assert default_per_gpu(1e3, 0) == 1  # no GPU
    ks = [default_per_gpu(n, H100) for n in (1e5, 1e6, 5e6, 1e7, 2e7, 5e7, 1e8, 1e9)]
    assert ks == sorted(ks, reverse=True)


@pytest.mark.parametrize("params,mem,act", [(1e6, 8 * GIB, 0), (3e6, 16 * GIB, 3 * GIB), (1e7, 24 * GIB, 8 * GIB),
                                            (5e5, 2 * GIB, 0)])
def test_memory_caps_the_packing(params, mem, act):
    k = default_per_gpu(params, mem, act)
    per_run = CONTEXT_BYTES + BYTES_PER_PARAM * params + act
    assert k == 1 or k * per_run <= MEM_SHARE * mem
    assert k == default_per_gpu(params, mem, act, max_k=99) or k == 8


def test_activation_bytes_logits_dominate_big_vocab():
    # 128x2 with a 50304 vocab, 16 x 1024 tokens: logits alone are 16*1024*50304 entries of 10 bytes
    a = activation_bytes(128, 2, 50304, 1024, 16)
    logits = 16 * 1024 * 50304 * 10
    assert logits < a < 1.1 * logits
    assert default_per_gpu(7.0e6, H100, a) == 4
    assert default_per_gpu(7.0e6, 16 * GIB, a) == 1


def test_study_rows_largest_run_decides():
    rows = [{"params": 3e6, "status": "done", "spec": {"shape": {"d_model": 4096, "n_layers": 48, "vocab": 50304, "seq_len": 4096}, "batch_size": 64}},
            {"params": 3e6, "status": "pending", "spec": '{"shape": {"d_model": 256, "n_layers": 4, "vocab": 256, "seq_len": 256}, "batch_size": 8}'},
            {"params": 15e6, "status": "pending", "spec": {"shape": {"d_model": 384, "n_layers": 6, "vocab": 256, "seq_len": 256}, "batch_size": 8}}]
    assert study_per_gpu(rows, H100) == 4  # the done giant is not run again; 15M -> 4
    assert study_per_gpu(rows[:2], H100) == 8
    assert study_per_gpu(rows, 0) == 1


def _bench():
    path = Path(__file__).resolve().parent.parent / "bench" / "packing.py"
    spec = importlib.util.spec_from_file_location("bench_packing", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_window_sums_concurrent_runs():
    """Two runs at 100 and 300 tokens/s, started 1 s apart: 400 tokens/s while both are warm and running."""
    bench = _bench()

    class P:
        def __init__(self, offset, rate, n):
            self.offset = offset
            self.lines = [{"time_s": 0.5 * i, "tokens": rate * 0.5 * i} for i in range(n)]

    tps, window = bench.aggregate([P(0.0, 100, 21), P(1.0, 300, 21)], 0.2)
    assert tps == pytest.approx(400.0)
    assert window == pytest.approx(10.0 - 3.0)  # from the later run's 4th line (t=1+2) to the first run's end (t=10)
