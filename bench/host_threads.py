"""Does a small run holding the GPU slow down while other runs compile beside it, as in a sweep, and how do the
trainer's CPU threads decide it? One process trains the GPU demo's C3e15_128x2 (0.5M parameters, whole-step CUDA
graph) holding the GPU's turn; once it trains, three 1e16 runs start beside it with cold compile caches, compile,
warm up and wait for the turn, as a sweep's placed runs do. Its tokens/s in 2 s windows, and the share of busy CPU
cores, are sampled while the others compile and after they wait; each configuration also runs alone.

    python bench/host_threads.py                       # GPU machine: the demo's data is prepared under --work
    python bench/host_threads.py --configs alone-t1,beside-t1

Configurations: alone-tN / beside-tN, the trained run with N torch threads (t1: the trainer's GPU default, 1;
t16: 16, torch's default on a 16-core host). Writes bench/results/host-threads-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

TRAINED = "C3e15_128x2"
BESIDE = ["C1e16_320x5", "C1e16_384x6", "C1e16_448x7"]
CONFIGS = {"alone-t1": (1, False), "beside-t1": (1, True), "alone-t16": (16, False), "beside-t16": (16, True)}


def cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of all cores."""
    a = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return a[3] + a[4], sum(a)


def busy_since(prev: tuple[int, int]) -> tuple[float, tuple[int, int]]:
    now = cpu_times()
    return 1 - (now[0] - prev[0]) / max(1, now[1] - prev[1]), now


def mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 3) if xs else None


def one_config(name: str, threads: int, beside: bool, specs: dict, work: Path) -> dict:
    from scalinglab.folders import RunDir
    from scalinglab.records import RunSpec
    from scalinglab.sweep import runs as R
    from scalinglab.train import turns

    lock, tokens_per_step = work / f"{name}.lock", RunSpec.from_dict(specs[TRAINED]).tokens_per_step

    def start(rid: str, env: dict[str, str], threads: int = 0) -> tuple[Path, subprocess.Popen]:
        rd = work / name / rid
        shutil.rmtree(rd, ignore_errors=True)
        rd.mkdir(parents=True)
        spec = json.loads(json.dumps(specs[rid]))
        spec["runtime"]["threads"] = threads
        RunDir(rd).write_spec(RunSpec.from_dict(spec))
        return rd, R.start_trainer(R.train_argv(rd), rd, {**env, turns.ENV: str(lock)}, name)

    rd0, p0 = start(TRAINED, {}, threads)
    while R.tail_metrics(rd0).get("step", 0) < 10:  # compiled, warmed up, holding the turn, training
        if p0.poll() is not None:
            sys.exit(f"{TRAINED} ended before training: see {RunDir(rd0).log}")
        time.sleep(0.1)
    t0, others = time.time(), []
    if beside:
        for i, rid in enumerate(BESIDE):  # cold caches, as for a sweep's first runs of a shape
            cache = work / f"cache-{name}-{i}"
            others.append((rid, *start(rid, {"TORCHINDUCTOR_CACHE_DIR": str(cache), "TRITON_CACHE_DIR": str(cache)})))
    samples, waiting_at, prev = [], {}, cpu_times()
    while p0.poll() is None:
        time.sleep(0.5)
        busy, prev = busy_since(prev)
        tokens = R.tail_metrics(rd0)["step"] * tokens_per_step
        samples.append((round(time.time() - t0, 2), tokens, round(busy, 3)))
        for rid, rd, _ in others:
            if rid not in waiting_at and RunDir(rd).waiting.exists():
                waiting_at[rid] = round(time.time() - t0, 2)
    for _, _, p in others:
        p.send_signal(signal.SIGTERM)
    for _, _, p in others:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
    for _ in range(30):  # let the stopped runs' compile workers go before the next configuration
        prev = cpu_times()
        time.sleep(0.5)
        if busy_since(prev)[0] < 0.1:
            break
    rows = RunDir(rd0).read_metrics()
    a, b = rows[0], rows[-1]
    windows = [  # (start s, Mtok/s, busy share of CPU cores) over 2 s
        (t1, round((k2 - k1) / (t2 - t1) / 1e6, 2), u)
        for (t1, k1, _), (t2, k2, u) in zip(samples[::4], samples[4::4], strict=False)
    ]
    first_wait = min(waiting_at.values()) if waiting_at else None
    body = windows[1:-2]  # without the windows that hold the start or the end of training
    compiling = [w for w in body if first_wait is None or w[0] + 2 <= first_wait]
    waiting = [w for w in body if first_wait is not None and w[0] >= first_wait + 2]
    return {
        "threads": threads,
        "beside": BESIDE if beside else [],
        "mtok_s": round((b["tokens"] - a["tokens"]) / (b["time_s"] - a["time_s"]) / 1e6, 3),
        "mtok_s_while_others_compile": mean([w[1] for w in compiling]),
        "cpu_busy_while_others_compile": mean([w[2] for w in compiling]),
        "mtok_s_after_others_wait": mean([w[1] for w in waiting]),
        "others_waiting_at_s": waiting_at,
        "windows": windows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/host-threads", help="scratch folder (data, study, runs, caches)")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--result", default=None, help="JSON path (default bench/results/host-threads-<device>.json)")
    a = ap.parse_args()
    import torch

    from scalinglab import fmt
    from scalinglab.demo import Demo
    from scalinglab.sweep.store import Store

    if not torch.cuda.is_available():
        sys.exit("host_threads.py needs a CUDA GPU")
    names = a.configs.split(",")
    if bad := [n for n in names if n not in CONFIGS]:
        sys.exit(f"unknown configuration {bad[0]!r}; use {', '.join(CONFIGS)}")
    work = Path(a.work)
    demo = Demo(work / "demo", scale="gpu")
    demo.prep()
    if not demo.study.exists():
        demo.plan()
    with Store(demo.study) as st:
        specs = {r["id"]: json.loads(r["spec"]) for r in st.runs()}
    dev = torch.cuda.get_device_name()
    slug = fmt.slug(dev)
    result = Path(a.result) if a.result else ROOT / "bench" / "results" / f"host-threads-{slug}.json"
    out = {
        "device": dev,
        "cpu_cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", "bench/host_threads.py", *sys.argv[1:]]),
        "configs": {},
    }
    print(f"{'configuration':14s} {'Mtok/s':>7s} {'while others compile':>21s} {'CPU busy':>9s} {'after':>7s}")
    for name in names:
        r = one_config(name, *CONFIGS[name], specs, work)
        out["configs"][name] = r
        result.parent.mkdir(parents=True, exist_ok=True)
        result.write_text(json.dumps(out, indent=1) + "\n")
        print(
            f"{name:14s} {r['mtok_s']:7.2f} {r['mtok_s_while_others_compile'] or 0:21.2f} "
            f"{r['cpu_busy_while_others_compile'] or 0:9.2f} {r['mtok_s_after_others_wait'] or 0:7.2f}",
            flush=True,
        )
    print(f"wrote {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
