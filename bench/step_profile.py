"""Where a compiled small model's training step goes on a GPU: the trainer's step (Stepper) timed with and without
gradient clipping, its parts timed alone (forward + backward, AdamW step, clipping, batch copy), and a
torch.profiler table of 20 steps (CPU ops by self time, GPU kernels by self time).

    python bench/step_profile.py bench/results/step-profile-nvidia-h200.json > bench/results/step-profile-nvidia-h200.txt

Shapes 128x2 (batch 64 and 128) and 384x6 (batch 64), vocab 256, seq 512, compile mode reduce-overhead: the demo's
smallest and a mid-sized model. Needs CUDA.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.models import build_model
from scalinglab.records import RunSpec
from scalinglab.train.loop import autocast_ctx
from scalinglab.train.optim import build_optimizer
from scalinglab.train.step import Accum, Stepper

DEV = torch.device("cuda")


def setup(d: int, layers: int, batch: int, clip: float, seq: int = 512):
    shape = ModelShape(d_model=d, n_layers=layers, vocab=256, seq_len=seq)
    spec = RunSpec(shape=shape, batch_size=batch, optimizer="adamw")
    torch.manual_seed(0)
    raw = build_model(shape).to(DEV)
    model = torch.compile(raw, mode="reduce-overhead")
    opt = build_optimizer(raw, spec, 1e-4, "cuda")
    st = Stepper(model, opt, [p for p in raw.parameters() if p.requires_grad], autocast_ctx(spec, DEV), clip)
    host = [torch.randint(0, 256, (batch, seq + 1)).pin_memory() for _ in range(4)]

    def fetch(i: int):
        t = host[i % 4].to(DEV, non_blocking=True)
        return [(t[:, :-1], t[:, 1:])]

    return model, opt, st, fetch


def timed(fn, n: int) -> float:
    """Milliseconds per call of fn(i), synchronised before and after."""
    torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e3


def parts(key: str, model, opt, st, fetch, slot, out: dict) -> None:
    x, y = slot[0][0]
    amp = torch.autocast("cuda", dtype=torch.bfloat16)

    def fwd_bwd(i: int) -> None:
        with amp:
            _, loss = model(x, y)
        loss.backward()

    timed(fwd_bwd, 3)
    out[f"{key}_fwdbwd_ms"] = timed(fwd_bwd, 200)
    timed(lambda i: opt.step(), 3)
    out[f"{key}_optstep_ms"] = timed(lambda i: opt.step(), 200)
    opt.zero_grad(set_to_none=True)
    for p in st.params:
        p.grad = torch.zeros_like(p)
    clip = lambda i: torch.nn.utils.clip_grad_norm_(st.params, 1.0)  # noqa: E731
    timed(clip, 3)
    out[f"{key}_clip_ms"] = timed(clip, 200)
    opt.zero_grad(set_to_none=True)
    out[f"{key}_fetch_ms"] = timed(fetch, 200)
    print(key, {k: round(v, 3) for k, v in out.items() if k.startswith(key) and k.endswith("_ms")}, flush=True)


def main(path: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    out: dict = {}
    for d, layers, batch in [(128, 2, 64), (128, 2, 128), (384, 6, 64)]:
        key = f"{d}x{layers}_b{batch}"
        for clip in (1.0, 0.0):
            model, opt, st, fetch = setup(d, layers, batch, clip)
            acc, slot = Accum.zeros(DEV), [fetch(0)]

            def step(i: int, st=st, acc=acc, slot=slot, fetch=fetch) -> None:
                slot[0] = st(slot[0], 1e-4, acc, prefetch=lambda: fetch(i + 1))

            t0 = time.perf_counter()
            timed(step, 5)
            first = time.perf_counter() - t0
            ms = timed(step, 200)
            out[f"{key}_clip{clip:g}"] = {"step_ms": ms, "compile_s": first}
            print(key, "clip", clip, f"step {ms:.3f} ms  first 5 steps {first:.1f} s", flush=True)
            if clip == 1.0:
                parts(key, model, opt, st, fetch, slot, out)
                from torch.profiler import ProfilerActivity, profile

                with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                    for i in range(20):
                        step(i)
                    torch.cuda.synchronize()
                ka = prof.key_averages()
                print(ka.table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=60))
                print(ka.table(sort_by="self_device_time_total", row_limit=12, max_name_column_width=60), flush=True)
            del model, opt, st
            torch._dynamo.reset()
            torch.cuda.empty_cache()
    with open(path, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, **out}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
