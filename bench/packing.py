"""Packing benchmark: aggregate model FLOP/s of K concurrent `scalinglab train` processes on one GPU
(K = 1, 2, 4, 8) for small models, and the ratio to one run alone (what `scalinglab sweep --per-gpu K` gains).

    python bench/packing.py                 # CUDA: 3.5M / 7M / 11M-param models, K = 1,2,4,8, ~10-20 s per point
    python bench/packing.py --quick         # CPU smoke test: a tiny model, K = 1,2

Throughput is measured in the window where all K runs are past their warmup steps and none has finished:
each run's metrics.jsonl lines are timestamped by polling, and the tokens they add in that window count.
Model FLOPs per token = 6N + 12*L*d*T (N all params), as nanoGPT's estimate_mfu counts them.
Writes bench/results/packing-<device>[-compiled][-mps].json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # the repo's package, also without `pip install -e .`


def make_data(path: Path, vocab: int, tokens: int, seed: int = 0) -> Path:
    """A DATA folder of random token ids (throughput does not care what the tokens say)."""
    import numpy as np

    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    meta = {"version": 1, "vocab_size": vocab, "dtype": "uint16", "tokenizer": {"kind": "raw-bytes"}, "splits": {}}
    for name, n in (("train", tokens), ("val", max(100_000, tokens // 50))):
        rng.integers(0, vocab, size=n, dtype=np.uint16).tofile(path / f"{name}.bin")
        meta["splits"][name] = {"tokens": n, "file": f"{name}.bin"}
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    return "cpu"


EXTRA_ENV: dict[str, str] = {}  # NVIDIA MPS's pipe folder under --mps


def child_env() -> dict[str, str]:
    env = {**os.environ, **EXTRA_ENV}
    if os.environ.get("PACKING_CPU"):
        env["OMP_NUM_THREADS"] = "1"  # CPU smoke test: K processes share the cores
    env["PYTHONPATH"] = str(ROOT / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Proc:
    def __init__(self, argv: list[str], run: Path, log: Path):
        self.run, self.lines, self.offset, self.pos = run, [], math.inf, 0
        self.log = log
        self.p = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=child_env())

    def poll_lines(self, now: float) -> None:
        f = self.run / "metrics.jsonl"
        if not f.exists():
            return
        with open(f, "rb") as fh:
            fh.seek(self.pos)
            chunk = fh.read()
        if not chunk:
            return
        end = chunk.rfind(b"\n") + 1
        self.pos += end
        for ln in chunk[:end].decode().splitlines():
            d = json.loads(ln)
            self.lines.append(d)
            self.offset = min(self.offset, now - d["time_s"])  # line seen soon after written: best clock offset


def run_group(k: int, steps: int, args, shape, data: Path, tmp: Path, log_every: int) -> list[Proc]:
    tmp.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(k):
        run = tmp / f"k{k}_{i}_{shape[0]}x{shape[1]}"
        argv = [
            sys.executable,
            "-m",
            "scalinglab",
            "train",
            "--data",
            str(data),
            "--out",
            str(run),
            "--d-model",
            str(shape[0]),
            "--layers",
            str(shape[1]),
            "--seq-len",
            str(args.seq_len),
            "--batch-size",
            str(args.batch_size),
            "--steps",
            str(steps),
            "--log-every",
            str(log_every),
            "--eval-batches",
            "1",
            "--device",
            args.device,
            "--seed",
            str(i),
            "--no-progress",
            "--compile" if args.compile else "--no-compile",
        ]
        procs.append(Proc(argv, run, tmp / f"{run.name}.log"))
    while any(p.p.poll() is None for p in procs):
        now = time.monotonic()
        for p in procs:
            p.poll_lines(now)
        time.sleep(0.02)
    now = time.monotonic()
    for p in procs:
        p.poll_lines(now)
        if p.p.returncode != 0:
            sys.exit(f"a training process failed (exit {p.p.returncode}):\n{p.log.read_text()[-3000:]}")
    return procs


def aggregate(procs: list[Proc], warm_frac: float) -> tuple[float, float]:
    """(tokens/s of all runs together, window seconds) over the window where every run is warm and none done."""
    import numpy as np

    start = end = None
    series = []
    for p in procs:
        t = np.array([p.offset + d["time_s"] for d in p.lines])
        tok = np.array([d["tokens"] for d in p.lines], float)
        warm = max(1, int(len(t) * warm_frac))
        start = t[warm] if start is None else max(start, t[warm])
        end = t[-1] if end is None else min(end, t[-1])
        series.append((t, tok))
    if end <= start:
        return float("nan"), 0.0
    total = sum(np.interp(end, t, tok) - np.interp(start, t, tok) for t, tok in series)
    return total / (end - start), end - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--models",
        default="256x4:256,128x2:50304,384x6:256",
        help="D_MODELxLAYERS:VOCAB,... (default: nanoGPT-style models of 3.5M, 7.0M, 11.1M params)",
    )
    ap.add_argument("--ks", default="1,2,4,8", help="runs per GPU to try")
    ap.add_argument("--seconds", type=float, default=10.0, help="target length of the K=1 run")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--compile", action="store_true", help="torch.compile every run (as with plan --compile)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--mps", action="store_true", help="the K runs share the GPU through NVIDIA MPS (sweep --mps)")
    ap.add_argument("--quick", action="store_true", help="CPU smoke test: tiny model, K = 1,2, short runs")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    if args.quick:
        args.models, args.ks, args.seconds, args.seq_len, args.batch_size, args.device = (
            "32x1:262",
            "1,2",
            3.0,
            64,
            4,
            "cpu",
        )
        os.environ["PACKING_CPU"] = "1"
    from scalinglab import fmt
    from scalinglab.accounting.shape import ModelShape
    from scalinglab.sweep.packing import compute_share

    dev = device_name(args.device)
    ks = [int(k) for k in args.ks.split(",")]
    rows = []
    print(
        f"device: {dev}  seq_len {args.seq_len}  batch {args.batch_size}  compile {args.compile}  mps {args.mps}",
        flush=True,
    )
    print(
        f"{'model':>12} {'params':>8} {'K':>3} {'steps/run':>9} {'Mtok/s':>8} {'TFLOP/s':>8} {'x K=1':>6} {'window s':>8}",
        flush=True,
    )
    from scalinglab.sweep.mps import MPS

    with tempfile.TemporaryDirectory(prefix="packing-") as td, MPS() if args.mps else contextlib.nullcontext() as m:
        EXTRA_ENV.update(m.env if args.mps else {})
        tmp = Path(td)
        for spec in args.models.split(","):
            m = re.fullmatch(r"(\d+)x(\d+):(\d+)", spec.strip())
            if not m:
                sys.exit(f"bad --models entry {spec!r}: write D_MODELxLAYERS:VOCAB, e.g. 256x4:256")
            d, layers, vocab = map(int, m.groups())
            shape = ModelShape(d_model=d, n_layers=layers, vocab=vocab, seq_len=args.seq_len)
            n = shape.params()
            mfpt = 6 * n + 12 * layers * d * args.seq_len
            data = make_data(tmp / f"data{vocab}", vocab, 4_000_000)
            # calibrate: steps per second of one run alone
            cal = run_group(1, 40, args, (d, layers), data, tmp / "cal", 5)[0]
            t = [c["time_s"] for c in cal.lines]
            rate = (cal.lines[-1]["step"] - cal.lines[1]["step"]) / max(1e-6, t[-1] - t[1])
            steps1 = max(40, int(rate * args.seconds))
            log_every = max(1, round(rate * 0.1))
            base = None
            for k in ks:
                steps = steps1 if k == 1 else max(40, math.ceil(steps1 * 2 / k))  # each K point: ~2x seconds if no gain
                procs = run_group(k, steps, args, (d, layers), data, tmp / f"k{k}", log_every)
                tps, window = aggregate(procs, 0.2)
                base = tps if k == 1 else base
                ratio = tps / base if base else float("nan")
                row = {
                    "model": f"{d}x{layers}",
                    "vocab": vocab,
                    "params": n,
                    "k": k,
                    "steps_per_run": steps,
                    "tokens_per_s": tps,
                    "model_flops_per_s": tps * mfpt,
                    "ratio_to_single": ratio,
                    "window_s": window,
                    "model_flops_per_token": mfpt,
                }
                rows.append(row)
                print(
                    f"{row['model']:>12} {n / 1e6:7.1f}M {k:>3} {steps:>9} {tps / 1e6:8.3f} {tps * mfpt / 1e12:8.2f} "
                    f"{ratio:6.2f} {window:8.1f}",
                    flush=True,
                )
            best = max(
                (r for r in rows if r["model"] == f"{d}x{layers}" and r["vocab"] == vocab),
                key=lambda r: r["tokens_per_s"],
            )
            print(
                f"{'':>12} best K={best['k']} ({best['ratio_to_single']:.2f}x); the sweep packs "
                f"{round(1 / compute_share(n))} such runs per GPU (compute share)",
                flush=True,
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = fmt.slug(dev)
    tag = ("-compiled" if args.compile else "") + ("-mps" if args.mps else "") + ("-quick" if args.quick else "")
    path = out / f"packing-{slug}{tag}.json"
    import torch

    doc = {
        "device": dev,
        "torch": torch.__version__,
        "settings": {
            k: getattr(args, k)
            for k in ("models", "ks", "seconds", "seq_len", "batch_size", "compile", "mps", "device")
        },
        "results": rows,
    }
    path.write_text(json.dumps(doc, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
