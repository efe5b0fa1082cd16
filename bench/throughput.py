"""Training throughput of GPT shapes with the trainer's own step (scalinglab.train.step.Stepper).

Tokens/s and model FLOP/s (6N + 12*L*d*T per token, N = all params: the 'palm' convention) and their
ratio to a bf16 8192^3 matmul measured in the same run; compares torch.compile modes.

    python bench/throughput.py            # full: 6 shapes x vocab 50304/256, seq 1024 (CUDA)
    python bench/throughput.py --quick    # 2 small shapes, few steps; also runs on CPU (smoke)
Writes bench/results/throughput-<device>.json and prints the ANCHORS.md-style table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.models import build_model
from scalinglab.records import RunSpec
from scalinglab.train.loop import autocast_ctx
from scalinglab.train.optim import build_optimizer
from scalinglab.train.step import Accum, Stepper

SHAPES = [(128, 2), (256, 4), (384, 6), (512, 8), (768, 12), (1024, 16)]
# nanoGPT on one H100 (ANCHORS.md), Mtok/s by (d_model, layers, vocab)
ANCHOR = {(128, 2, 50304): 2.90, (256, 4, 50304): 2.22, (384, 6, 50304): 1.45, (512, 8, 50304): 0.99, (768, 12, 50304): 0.47,
          (1024, 16, 50304): 0.26, (128, 2, 256): 15.0, (256, 4, 256): 8.00, (384, 6, 256): 3.24, (512, 8, 256): 1.76,
          (768, 12, 256): 0.63, (1024, 16, 256): 0.31}


def matmul_peak(device: torch.device, n: int = 8192, reps: int = 20) -> float:
    dt = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type != "cuda":
        n, reps = 1024, 3
    a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def default_batch(d: int, vocab: int, seq: int) -> int:
    # large enough to fill the GPU, small enough that fp32 logits of a 50304 vocabulary fit 80 GB
    tokens = (65536 if d <= 512 else 32768) if vocab <= 4096 else (32768 if d <= 768 else 16384)
    return max(1, tokens // seq)


def bench_one(d, L, vocab, seq, batch, mode, steps, warmup, device) -> dict:
    shape = ModelShape(d_model=d, n_layers=L, vocab=vocab, seq_len=seq)
    spec = RunSpec(shape=shape, batch_size=batch, optimizer="adamw")
    torch.manual_seed(0)
    raw = build_model(shape).to(device)
    model = raw if mode == "none" else torch.compile(raw, mode=None if mode == "default" else mode)
    opt = build_optimizer(raw, spec, 1e-4, device.type)
    amp = autocast_ctx(spec, device)
    step = Stepper(model, opt, list(raw.parameters()), amp, grad_clip=1.0)
    acc = Accum.zeros(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    # a few distinct batches, pinned and copied non_blocking each step as the trainer does
    host = [torch.randint(0, vocab, (batch, seq + 1), generator=gen).pin_memory() if device.type == "cuda"
            else torch.randint(0, vocab, (batch, seq + 1), generator=gen) for _ in range(4)]

    def fetch(i):
        t = host[i % len(host)].to(device, non_blocking=True)
        return [(t[:, :-1], t[:, 1:])]

    micro = fetch(0)
    t_compile = time.perf_counter()
    for i in range(warmup):
        micro = step(micro, 1e-4, acc, prefetch=lambda i=i: fetch(i + 1))
    sync(device)
    t_compile = time.perf_counter() - t_compile
    t = time.perf_counter()
    for i in range(steps):
        micro = step(micro, 1e-4, acc, prefetch=lambda i=i: fetch(i + 1))
    sync(device)
    dt = time.perf_counter() - t
    tok_s = steps * batch * seq / dt
    fpt = shape.flops_per_token("palm")  # 6N + 12 L d T
    ok = bool(torch.isfinite(acc.loss_sum).item())
    del model, raw, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"d_model": d, "layers": L, "vocab": vocab, "seq_len": seq, "batch": batch, "mode": mode, "params": shape.params(),
            "tokens_per_s": tok_s, "model_flops_per_s": tok_s * fpt, "flops_per_token": fpt, "step_s": dt / steps,
            "warmup_s": t_compile, "finite": ok}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 small shapes, few steps (CPU smoke test)")
    ap.add_argument("--modes", default=None, help="comma list of torch.compile modes: none, default, max-autotune-no-cudagraphs, reduce-overhead")
    ap.add_argument("--vocabs", default="50304,256")
    ap.add_argument("--shapes", default=None, help="e.g. 128x2,256x4 (default: the six ANCHORS.md shapes)")
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--batch", type=int, default=0, help="sequences per step (0: by size)")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    shapes = [tuple(int(x) for x in s.split("x")) for s in a.shapes.split(",")] if a.shapes else (SHAPES[:2] if a.quick else SHAPES)
    modes = a.modes.split(",") if a.modes else (["max-autotune-no-cudagraphs", "reduce-overhead"] if cuda else ["none"])
    if a.quick and cuda and not a.modes:
        modes = ["default"]
    seq = a.seq_len or (1024 if cuda else 64)
    steps = a.steps or (30 if cuda and not a.quick else 10 if cuda else 3)
    warmup = 10 if cuda else 1
    peak = matmul_peak(device)
    dev_name = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"device {dev_name}: matmul peak {peak / 1e12:.1f} TFLOP/s ({'bf16 8192^3' if cuda else 'fp32 1024^3'})", file=sys.stderr)
    rows = []
    for vocab in [int(v) for v in a.vocabs.split(",")]:
        for d, L in shapes:
            batch = a.batch or (default_batch(d, vocab, seq) if cuda else 2)
            for mode in modes:
                try:
                    r = bench_one(d, L, vocab, seq, batch, mode, steps, warmup, device)
                except Exception as e:  # OOM or a compile failure on one shape: record it, keep going
                    r = {"d_model": d, "layers": L, "vocab": vocab, "mode": mode, "error": f"{type(e).__name__}: {e}"[:300]}
                    if cuda:
                        torch.cuda.empty_cache()
                else:
                    r["ratio_to_matmul_peak"] = r["model_flops_per_s"] / peak
                    r["anchor_mtok_s"] = ANCHOR.get((d, L, vocab))
                    print(f"{d}x{L} V={vocab} {mode}: {r['tokens_per_s'] / 1e6:.3f} Mtok/s, {r['model_flops_per_s'] / 1e12:.1f} TFLOP/s", file=sys.stderr)
                rows.append(r)
    out = Path(a.out) if a.out else Path(__file__).parent / "results" / f"throughput-{re.sub(r'[^A-Za-z0-9]+', '-', dev_name).strip('-').lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": dev_name, "torch": torch.__version__, "matmul_peak_flops": peak, "seq_len": seq,
                               "steps": steps, "rows": rows}, indent=2) + "\n")
    print("| d_model | layers | vocab | params | mode | Mtok/s | TFLOP/s | ratio to matmul peak | nanoGPT Mtok/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['d_model']} | {r['layers']} | {r['vocab']} | | {r['mode']} | error: {r['error'][:60]} | | | |")
            continue
        anc = f"{r['anchor_mtok_s']:.2f}" if r["anchor_mtok_s"] else ""
        print(f"| {r['d_model']} | {r['layers']} | {r['vocab']} | {r['params'] / 1e6:.2f}M | {r['mode']} | {r['tokens_per_s'] / 1e6:.3f} | "
              f"{r['model_flops_per_s'] / 1e12:.1f} | {r['ratio_to_matmul_peak']:.0%} | {anc} |")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
