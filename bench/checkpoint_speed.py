"""Seconds to write a run's checkpoint (model, AdamW state, atomic write with fsync: the trainer's save_checkpoint)
for the GPU demo's shapes, and what ten per run (a study's default --checkpoints) add up to over the demo's 30 runs.

    python bench/checkpoint_speed.py                   # on this host's disk, tensors on the CPU
    python bench/checkpoint_speed.py --device cuda     # tensors on the GPU, as a GPU run writes them
Writes bench/results/checkpoint-speed-<host>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

SHAPES = [(128, 2), (192, 3), (256, 4), (320, 5), (384, 6), (448, 7), (512, 8), (576, 9)]
DEMO_RUNS = {s: 4 for s in SHAPES} | {(128, 2): 3, (192, 3): 3}  # runs per shape in the GPU demo's 30


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    ap.add_argument("--result", default=None)
    a = ap.parse_args()
    import torch

    from scalinglab import fmt
    from scalinglab.accounting.shape import ModelShape
    from scalinglab.models import build_model
    from scalinglab.train.checkpoint import save_checkpoint

    dev = torch.device(a.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.machine()
    slug = fmt.slug(name)
    result = Path(a.result) if a.result else ROOT / "bench" / "results" / f"checkpoint-speed-{slug}.json"
    rows, total = [], 0.0
    print(f"{'shape':>6s} {'params':>7s} {'MB':>6s} {'s each':>7s}   (median of {a.repeats})")
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        for d, n in SHAPES:
            m = build_model(ModelShape(d_model=d, n_layers=n, vocab=262, seq_len=512, n_heads=max(1, d // 64))).to(dev)
            opt = torch.optim.AdamW(m.parameters())
            for p in m.parameters():
                p.grad = torch.zeros_like(p)
            opt.step()  # AdamW's two moments exist, as in a run's checkpoint
            path, times = Path(tmp) / f"{d}x{n}.pt", []
            for _ in range(a.repeats):
                t = time.perf_counter()
                save_checkpoint(path, {"model": m.state_dict(), "optimizer": opt.state_dict(), "step": 1})
                times.append(time.perf_counter() - t)
            s, mb = statistics.median(times), path.stat().st_size / 1e6
            params = sum(p.numel() for p in m.parameters())
            total += 11 * s * DEMO_RUNS[(d, n)]  # ten periodic checkpoints and the last one
            rows.append(
                {"shape": f"{d}x{n}", "params": params, "mb": round(mb, 1), "seconds": [round(x, 3) for x in times]}
            )
            print(f"{d}x{n:<3d} {params / 1e6:6.1f}M {mb:6.0f} {s:7.3f}")
    print(f"the GPU demo's 30 runs, 11 checkpoints each: {total:.0f} s of writing")
    doc = {"device": name, "tensors_on": a.device, "shapes": rows, "demo_11_per_run_s": round(total, 1)}
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
