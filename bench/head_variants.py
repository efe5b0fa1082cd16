"""The GPT-2-vocabulary output head at small shapes, side by side in one process: graph breaks of the fused loss,
its chunk size (2^28, 2^30, one chunk) against the plain lm_head + F.cross_entropy path and HF GPT-2, and a kernel
profile of five steps of each (torch.compile default mode, so kernels are visible). Rows come from
bench/throughput.py's bench_one (reduce-overhead mode, seq 1024, batch 64). CUDA only; prints, writes nothing.

    python bench/head_variants.py > bench/results/head-variants-<device>.txt
"""

import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
import throughput as T  # noqa: E402 - bench/throughput.py, beside this file

from scalinglab.accounting.shape import ModelShape
from scalinglab.models import losses
from scalinglab.records import RunSpec
from scalinglab.train.loop import autocast_ctx
from scalinglab.train.optim import build_optimizer
from scalinglab.train.step import Accum, Stepper

VOCAB = 50304


def set_chunk(n: int) -> None:
    losses.chunk_rows.__defaults__ = (n,)
    losses.linear_cross_entropy.__defaults__ = (n,)


def main() -> None:
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    defaults = losses.chunk_rows.__defaults__, losses.linear_cross_entropy.__defaults__
    # graph breaks of the fused path
    shape = ModelShape(d_model=128, n_layers=2, vocab=VOCAB, seq_len=1024)
    m = T.build("scalinglab", shape).to(dev)
    x = torch.randint(0, VOCAB, (8, 1024), device=dev)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ex = torch._dynamo.explain(m)(x, x)
    reasons = [str(b.reason)[:200] for b in ex.break_reasons][:3]
    print("fused: graphs", ex.graph_count, "breaks", ex.graph_break_count, reasons, flush=True)
    torch._dynamo.reset()

    for d, L in [(128, 2), (256, 4)]:
        for name, chunk in [("fused-2^28", 2**28), ("fused-2^30", 2**30), ("fused-1chunk", 2**40)]:
            set_chunk(chunk)
            r = T.bench_one("scalinglab", d, L, VOCAB, 1024, 64, "reduce-overhead", 0.6, dev)
            print(f"{d}x{L} {name}: {r['tokens_per_s'] / 1e6:.3f} Mtok/s step {r['step_s'] * 1e3:.2f} ms", flush=True)
            T.free(dev)
        losses.chunk_rows.__defaults__, losses.linear_cross_entropy.__defaults__ = defaults
        for impl in ["scalinglab-plain-ce", "hf-gpt2"]:
            r = T.bench_one(impl, d, L, VOCAB, 1024, 64, "reduce-overhead", 0.6, dev)
            print(f"{d}x{L} {impl}: {r['tokens_per_s'] / 1e6:.3f} Mtok/s step {r['step_s'] * 1e3:.2f} ms", flush=True)
            T.free(dev)

    # kernel profiles, default mode (kernels visible), 128x2
    for impl in ["scalinglab", "scalinglab-plain-ce", "hf-gpt2"]:
        torch.manual_seed(0)
        raw = T.build(impl, shape).to(dev)
        model = torch.compile(raw)
        spec = RunSpec(shape=shape, batch_size=64, optimizer="adamw")
        opt = build_optimizer(raw, spec, 1e-4, "cuda")
        st = Stepper(model, opt, list(raw.parameters()), autocast_ctx(spec, dev), 1.0)
        acc = Accum.zeros(dev)
        t = torch.randint(0, VOCAB, (64, 1025), device=dev)
        mb = [(t[:, :-1], t[:, 1:])]
        for _ in range(4):
            st(mb, 1e-4, acc)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as p:
            for _ in range(5):
                st(mb, 1e-4, acc)
            torch.cuda.synchronize()
        print(f"==== {impl} (5 steps, default compile mode)")
        print(p.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=70))
        T.free(dev)


if __name__ == "__main__":
    main()
