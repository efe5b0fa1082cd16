"""Scheduling by each run's own size (scalinglab.sweep.packing): which run starts next and where, the capacity
invariants, a simulated sweep against one K for all runs, and the packing benchmark's throughput window."""

from __future__ import annotations

import heapq
import importlib.util
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from scalinglab.sweep.packing import (
    BYTES_PER_PARAM,
    CONTEXT_BYTES,
    GIB,
    MAX_PER_GPU,
    MEM_SHARE,
    TURN_DEPTH,
    Device,
    Need,
    activation_bytes,
    assign,
    choose,
    compute_share,
    gpu_devices,
    run_need,
)
from scalinglab.sweep.store import Store

H200 = 141 * GIB


def need(params: float, seconds: float, act: float = 0.0) -> Need:
    return Need(CONTEXT_BYTES + BYTES_PER_PARAM * params + act, compute_share(params), seconds)


def h200s(n: int = 1) -> list[Device]:
    return gpu_devices(list(range(n)), H200, cpus=16 * n)


def test_small_runs_pack_many_large_few():
    # 1M-param runs: 8 to a GPU (MAX_PER_GPU); 40M: 2; 200M: 1 -- decided per run, not by the largest pending one
    for params, k in ((1e6, 8), (12e6, 4), (40e6, 2), (200e6, 1)):
        devs = h200s()
        placed = assign([(f"r{i}", need(params, 10.0)) for i in range(12)], devs)
        assert len(placed) == k == devs[0].runs, params
    devs = h200s()  # one 40M run beside small ones: it takes half the GPU and four 1M runs the other half
    placed = assign([("big", need(40e6, 100.0))] + [(f"s{i}", need(1e6, 10.0)) for i in range(10)], devs)
    assert placed[0] == ("big", 0) and len(placed) == 5


def test_longest_first_and_backfill():
    devs = h200s()
    pending = [
        ("short-big", need(40e6, 5.0)),
        ("long-big", need(40e6, 50.0)),
        ("mid-big", need(40e6, 20.0)),
        ("tiny", need(1e6, 1.0)),
    ]
    assert choose(pending, devs) == ("long-big", 0)
    placed = [rid for rid, _ in assign(pending, devs)]
    # the two longest 40M runs fill the GPU's compute; the 1M run no longer fits either
    assert placed == ["long-big", "mid-big"]
    devs = h200s()
    devs[0].add(need(40e6, 1.0))
    devs[0].add(need(12e6, 1.0))  # 0.75 used: no 40M run fits, the longest run that does starts (backfill)
    assert choose(pending, devs) == ("tiny", 0)


def test_compiled_runs_take_turns_on_a_gpu():
    """Compiled runs: TURN_DEPTH to a GPU whatever their size (one trains, the next ones compile and wait), counting
    no compute share; uncompiled runs beside them still pack by share; a fixed --per-gpu K has no turns."""
    for params in (1e6, 40e6, 200e6):
        devs = h200s()
        compiled = [(f"r{i}", replace(need(params, 10.0), compiled=True)) for i in range(12)]
        assert len(assign(compiled, devs)) == TURN_DEPTH == devs[0].turn_runs
        assert devs[0].used_share == 0.0
        assert len(assign([(f"u{i}", need(1e6, 1.0)) for i in range(12)], devs)) == MAX_PER_GPU - TURN_DEPTH
        devs[0].remove(compiled[0][1])
        assert devs[0].turn_runs == TURN_DEPTH - 1 and choose(compiled[TURN_DEPTH:], devs) == (f"r{TURN_DEPTH}", 0)
    devs = gpu_devices([0], H200, per_gpu=5)
    assert len(assign([(f"r{i}", replace(need(1e6, 1.0), compiled=True)) for i in range(12)], devs)) == 5


def test_memory_caps_the_packing():
    act = activation_bytes(128, 2, 50304, 1024, 64)  # logits of a 50k vocabulary dominate
    assert 64 * 1024 * 50304 * 6 < act < 1.1 * 64 * 1024 * 50304 * 6
    devs = gpu_devices([0], 80 * GIB, cpus=16)
    placed = assign([(f"r{i}", need(7e6, 1.0, act)) for i in range(8)], devs)
    per_run = CONTEXT_BYTES + BYTES_PER_PARAM * 7e6 + act
    assert len(placed) == int(MEM_SHARE * 80 * GIB // per_run) == 3  # compute alone would let 4 in
    lone = gpu_devices([0], 1 * GIB, cpus=16)  # an oversized run still gets an empty GPU (and only that one)
    assert len(assign([("a", need(1e6, 1.0, 4 * GIB)), ("b", need(1e6, 1.0))], lone)) == 1


def test_fixed_per_gpu_and_cpu_count_limit():
    devs = gpu_devices([0, 1], H200, per_gpu=3)
    placed = assign([(f"r{i}", need(200e6, 1.0)) for i in range(10)], devs)
    assert [d.runs for d in devs] == [3, 3] and len(placed) == 6  # K each, whatever the size
    assert [d.max_runs for d in gpu_devices([0, 1], H200, cpus=6)] == [3, 3]  # compiles need cores
    assert gpu_devices([0], H200, cpus=64)[0].max_runs == MAX_PER_GPU


@pytest.mark.parametrize("seed", range(5))
def test_invariants_on_random_runs(seed):
    """Random runs and GPUs: capacity never exceeded (a lone run aside), and no pending run fits anywhere after."""
    rng = random.Random(seed)
    devs = gpu_devices(
        list(range(rng.randint(1, 3))), rng.choice([16, 40, 80, 141]) * GIB, cpus=rng.choice([4, 16, 64])
    )
    pending = [
        (f"r{i}", need(10 ** rng.uniform(5, 8.5), rng.uniform(1, 100), rng.uniform(0, 20) * GIB))
        for i in range(rng.randint(1, 40))
    ]
    placed = assign(pending, devs)
    for d in devs:
        assert d.runs <= d.max_runs
        if d.runs > 1:
            assert d.used_mem <= d.mem and d.used_share <= 1.0 + 1e-9
    left = [(r, n) for r, n in pending if r not in {p for p, _ in placed}]
    assert not any(d.fits(n) for d in devs for _, n in left)


def simulate(needs: dict[str, Need], devices: list[Device], per_gpu: int | None = None) -> tuple[float, list[float]]:
    """Event simulation of the sweep loop; a run takes need.seconds x (share sum on its GPU, if over 1).
    Returns (makespan, idle GPU-seconds left while runs were pending)."""
    t, pending, running, idle = 0.0, dict(needs), [], []
    while pending or running:
        if per_gpu is None:
            for rid, i in assign(list(pending.items()), devices):
                heapq.heappush(running, (t + pending[rid].seconds, rid, i))
                del pending[rid]
        else:  # the old rule: one K for all, from the largest pending run; plan order
            for rid in list(pending):
                i = min(range(len(devices)), key=lambda j: devices[j].runs)
                if devices[i].runs >= per_gpu:
                    break
                devices[i].add(pending[rid])
                heapq.heappush(running, (t + pending[rid].seconds, rid, i))
                del pending[rid]
        end, rid, i = heapq.heappop(running)
        idle.append(sum(max(0.0, 1 - d.used_share) for d in devices) * (end - t) if pending else 0.0)
        devices[i].remove(needs[rid])
        t = end
    return t, idle


def test_simulated_sweep_beats_one_k_for_all():
    """An IsoFLOP grid like the GPU demo's (0.5M..36M params): sized packing ends sooner than K from the largest."""
    needs = {}
    for c in (1e15, 3e15, 1e16, 3e16):
        for params in (0.5e6, 1.5e6, 3.4e6, 6.4e6, 11e6, 17e6, 26e6, 36e6):
            steps = c / (6 * params * 32768)
            if 50 <= steps and c / (6 * params) < 2 * 1.2e9:
                n = need(params, 0.0)
                needs[f"C{c:g}_{params:g}"] = Need(n.mem, n.share, c / (n.share * 8e14) + steps * 0.004)
    sized, _ = simulate(needs, h200s())
    one_k, _ = simulate(needs, h200s(), per_gpu=2)  # 36M is the largest: K = 2 for every run
    assert sized < 0.8 * one_k


def test_run_need_from_store_row():
    spec = {"shape": {"d_model": 256, "n_layers": 4, "vocab": 256, "seq_len": 512}, "batch_size": 64, "steps": 1000}
    n = run_need({"params": 3.4e6, "steps": 1000, "spec": json.dumps(spec)})
    assert n.share == compute_share(3.4e6) == 1 / 8
    assert n.mem == CONTEXT_BYTES + BYTES_PER_PARAM * 3.4e6 + activation_bytes(256, 4, 256, 512, 64)
    longer = run_need({"params": 3.4e6, "steps": 2000, "spec": spec})
    assert longer.seconds > n.seconds and not n.compiled
    assert run_need({"params": 3.4e6, "steps": 1000, "spec": {**spec, "runtime": {"compile": True}}}).compiled


def test_store_claim_takes_the_picked_run(tmp_path):
    st = Store(tmp_path, create=True)
    st.add_runs(
        [
            {
                "id": f"r{i}",
                "spec": {"steps": 10},
                "budget": 1.0,
                "arch": "gpt",
                "d_model": 8,
                "n_layers": 1,
                "n_heads": 1,
                "params": 10,
                "planned_tokens": 10,
                "steps": 10,
                "run_dir": f"runs/r{i}",
            }
            for i in range(3)
        ]
    )
    assert st.claim(pick=lambda rows: None) is None
    row = st.claim(pick=lambda rows: (rows[-1], "gpu0.5"))
    assert row["id"] == "r2" and row["status"] == "running" and row["worker"] == "gpu0.5"
    assert [r["id"] for r in st.runs() if r["status"] == "pending"] == ["r0", "r1"]
    assert st.claim()["id"] == "r0"
    st.close()


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
