"""Training throughput of scalinglab's GPT step against a peer, side by side in one process and one run.

The peer is Hugging Face transformers' GPT2LMHeadModel (SDPA attention) on the same shape, batch and data,
through the same step (scalinglab.train.step.Stepper): torch.compile (same mode), bf16 autocast, fused AdamW, gradient clipping at 1.0. Each
row is tagged "impl": "scalinglab", "hf-gpt2", or on CUDA "scalinglab-graph" (the trainer's default there: the
whole step recorded as one CUDA graph, scalinglab.train.graph.GraphedStep), which leads the table. Model FLOPs per token are 6N + 12*L*d*T (N all parameters,
the 'palm' convention), and every rate is also a ratio to a bf16 8192^3 matmul measured in the same run.

    python bench/throughput.py            # 128x2 .. 1024x16, vocab 256 and 50304, seq 1024 (CUDA)
    python bench/throughput.py --quick    # two tiny shapes, a few steps; also runs on CPU (smoke test)
Writes bench/results/throughput-<device>.json (rows written as they finish) and prints the table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from scalinglab import fmt
from scalinglab.accounting.shape import ModelShape
from scalinglab.models import build_model
from scalinglab.records import RunSpec
from scalinglab.train.graph import GraphedStep
from scalinglab.train.loop import autocast_ctx
from scalinglab.train.optim import build_optimizer
from scalinglab.train.step import Accum, Stepper

# (d_model, layers): sequences per step, as in the side-by-side nanoGPT measurement this bench replaces
BATCH = {(128, 2): 64, (256, 4): 64, (512, 8): 32, (1024, 16): 16}
IMPLS = ("scalinglab", "hf-gpt2")
GPU_IMPLS = ("scalinglab-graph", "scalinglab", "hf-gpt2")  # on CUDA also the trainer's default, the whole-step graph


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device) -> float:
    """FLOP/s of a bf16 8192^3 matmul on random data (fp32 1024^3 on CPU), the median of timed repeats."""
    cuda = device.type == "cuda"
    n, reps, dt = (8192, 20, torch.bfloat16) if cuda else (1024, 3, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
    times = []
    for i in range(reps + 3):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        if i >= 3:
            times.append(time.perf_counter() - t)
    return 2 * n**3 / sorted(times)[len(times) // 2]


class HFPeer(torch.nn.Module):
    """GPT2LMHeadModel behind scalinglab's (x, y) -> (logits, loss) call; the loss is transformers' own
    causal-LM loss function, given the already shifted targets (shift_labels)."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        import transformers

        from scalinglab.hf import gpt2_config

        config = gpt2_config(shape)
        config._attn_implementation = "sdpa"
        self.hf = transformers.GPT2LMHeadModel(config)
        self.vocab = shape.vocab

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        logits = self.hf(input_ids=x, use_cache=False).logits
        return None, self.hf.loss_function(logits, None, vocab_size=self.vocab, shift_labels=y.contiguous())


def build(impl: str, shape: ModelShape) -> torch.nn.Module:
    if impl == "hf-gpt2":
        return HFPeer(shape)
    model = build_model(shape)
    if impl == "scalinglab-plain-ce":  # the plain lm_head + F.cross_entropy path, to see what the fused loss buys
        model.fused_loss = False
    return model


def bench_one(
    impl: str,
    d: int,
    L: int,
    vocab: int,
    seq: int,
    batch: int,
    mode: str,
    target_s: float,
    device: torch.device,
    warm_only: bool = False,
) -> dict:
    shape = ModelShape(d_model=d, n_layers=L, vocab=vocab, seq_len=seq)
    spec = RunSpec(shape=shape, batch_size=batch, optimizer="adamw")
    torch.manual_seed(0)
    raw = build(impl, shape).to(device)
    n_params = sum(p.numel() for p in raw.parameters())
    graphed = impl == "scalinglab-graph"  # the trainer's default on CUDA: the whole step as one CUDA graph
    mode = "default" if graphed else mode
    model = raw if mode == "none" else torch.compile(raw, mode=None if mode == "default" else mode)
    opt = build_optimizer(raw, spec, 1e-4, device.type)
    amp = autocast_ctx(spec, device)
    params = [p for p in raw.parameters() if p.requires_grad]
    step_fn = (GraphedStep if graphed else Stepper)(model, opt, params, amp, grad_clip=1.0)  # the trainer's steps
    acc = Accum.zeros(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    cuda = device.type == "cuda"
    # a few distinct batches, pinned and copied non_blocking each step, as the trainer does
    host = [torch.randint(0, vocab, (batch, seq + 1), generator=gen) for _ in range(4)]
    host = [h.pin_memory() for h in host] if cuda else host

    def fetch(i: int):
        t = host[i % len(host)].to(device, non_blocking=True)
        return [(t[:, :-1], t[:, 1:])]

    slot = [fetch(0)]
    step = [0]

    def run(n: int) -> float:
        sync(device)
        t = time.perf_counter()
        for _ in range(n):
            i = step[0]
            slot[0] = step_fn(slot[0], 1e-4, acc, prefetch=lambda i=i: fetch(i + 1))
            step[0] += 1
        sync(device)
        return time.perf_counter() - t

    if graphed:  # compile, warm up and record the whole step (as the trainer does before its first step)
        t = time.perf_counter()
        step_fn.warm_up(slot[0], 1e-4)
        sync(device)
        warmup_s = time.perf_counter() - t
    if warm_only:  # one compiled step: fills the compile caches for the measuring process (--prewarm)
        return {"warmup_s": warmup_s if graphed else run(1)}
    if not graphed:
        warmup_s = run(3)  # compile, then CUDA-graph recording in reduce-overhead mode
    probe = run(3) / 3
    steps = max(5, min(500, int(target_s / max(probe, 1e-6))))
    dt = run(steps)
    tok_s = steps * batch * seq / dt
    fpt = shape.flops_per_token("palm")  # 6N + 12 L d T, the same for both impls (same shape, tied head)
    finite = bool(torch.isfinite(acc.loss_sum).item()) and acc.bad.item() == 0
    return {
        "impl": impl,
        "d_model": d,
        "layers": L,
        "vocab": vocab,
        "seq_len": seq,
        "batch": batch,
        "mode": mode,
        "params": shape.params(),
        "params_counted": n_params,
        "tokens_per_s": tok_s,
        "model_flops_per_s": tok_s * fpt,
        "flops_per_token": fpt,
        "step_s": dt / steps,
        "steps": steps,
        "warmup_s": warmup_s,
        "finite": finite,
    }


def free(device: torch.device) -> None:
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def table(rows: list[dict], peak: float) -> str:
    """Markdown: the trainer's default step (the whole-step graph on CUDA when it was measured, else `scalinglab`)
    beside hf-gpt2 and their ratio, then any other impl's column."""
    ok = {(r["impl"], r["d_model"], r["layers"], r["vocab"]): r for r in rows}
    keys = sorted({(r["d_model"], r["layers"], r["vocab"]) for r in rows}, key=lambda k: (k[2], k[0]))
    impls = {r["impl"] for r in rows}
    main = "scalinglab-graph" if "scalinglab-graph" in impls else "scalinglab"
    extra = sorted(impls - {main, "hf-gpt2"})
    head = f"| shape | vocab | batch | {main} Mtok/s (ratio to peak) | hf-gpt2 Mtok/s (ratio) | {main} / hf |"
    head += "".join(f" {e} Mtok/s (ratio) |" for e in extra)
    lines = [head, "|" + "---|" * (6 + len(extra))]

    def cell(r):
        if not r:
            return ""
        return "error" if "error" in r else f"{r['tokens_per_s'] / 1e6:.2f} ({r['model_flops_per_s'] / peak:.1%})"

    for d, L, v in keys:
        a, b = ok.get((main, d, L, v)), ok.get(("hf-gpt2", d, L, v))
        both = a and b and "error" not in a and "error" not in b
        ratio = f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}" if both else ""
        batch = (a or b or {}).get("batch", "")
        line = f"| {d}x{L} | {v} | {batch} | {cell(a)} | {cell(b)} | {ratio} |"
        line += "".join(f" {cell(ok.get((e, d, L, v)))} |" for e in extra)
        lines.append(line)
    return "\n".join(lines)


def prewarm(jobs: list[tuple[str, int, int, int]], n: int, a: argparse.Namespace, limit_s: float) -> float:
    """Compile every row in n processes at once (each with a few compile threads) so the measuring process finds
    inductor's caches filled: compiling 16 models one after another takes longer than measuring them. Rows are
    still measured one at a time in this process; only their compile time shrinks."""
    t0 = time.perf_counter()
    queue = sorted(jobs, key=lambda j: -j[1] * j[2])  # the slowest compiles first
    running: list[subprocess.Popen] = []
    env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": str(max(1, (os.cpu_count() or 2) // n))}
    while queue or running:
        while queue and len(running) < n:
            i, d, L, v = queue.pop(0)
            cmd = [sys.executable, __file__, "--warm-only", f"{i}@{d}x{L}@{v}", "--mode", a.mode or "reduce-overhead"]
            cmd += ["--seq-len", str(a.seq_len)] if a.seq_len else []
            cmd += ["--batch", str(a.batch)] if a.batch else []
            running.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        running = [p for p in running if p.poll() is None]
        if time.perf_counter() - t0 > limit_s:
            for p in running:
                p.kill()
            break
        time.sleep(0.2)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two tiny shapes, few steps (CPU smoke test)")
    ap.add_argument(
        "--impls",
        default=None,
        help="comma list of scalinglab, hf-gpt2, scalinglab-plain-ce, scalinglab-graph (the whole step as a CUDA graph,"
        " CUDA only); default: scalinglab-graph,scalinglab,hf-gpt2 on CUDA, scalinglab,hf-gpt2 on the CPU",
    )
    ap.add_argument("--extra", default="", help="impl@shape@vocab rows to add, e.g. scalinglab-plain-ce@128x2@50304")
    ap.add_argument(
        "--mode", default=None, help="torch.compile mode for both: reduce-overhead (CUDA default), default, none"
    )
    ap.add_argument("--vocabs", default=None, help="default 256,50304 (256,4096 with --quick)")
    ap.add_argument("--shapes", default=None, help="e.g. 128x2,256x4 (default: the four of BATCH)")
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--batch", type=int, default=0, help="sequences per step (0: BATCH's, by shape)")
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per row (after warmup)")
    ap.add_argument("--prewarm", type=int, default=0, help="compile all rows first in N processes at once (CUDA)")
    ap.add_argument("--prewarm-limit", type=float, default=180.0, help="seconds after which prewarming stops")
    ap.add_argument("--warm-only", default=None, help=argparse.SUPPRESS)  # impl@DxL@V: one compiled step, no output
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    shapes = (
        [tuple(int(x) for x in s.split("x")) for s in a.shapes.split(",")]
        if a.shapes
        else ([(32, 1), (64, 2)] if a.quick else list(BATCH))
    )
    seq = a.seq_len or (1024 if cuda else 64)
    mode = a.mode or ("reduce-overhead" if cuda else "none")
    impls = [i for i in (a.impls or ",".join(GPU_IMPLS if cuda else IMPLS)).split(",") if i]
    jobs = [
        (i, d, L, v)
        for v in (int(x) for x in (a.vocabs or ("256,4096" if a.quick else "256,50304")).split(","))
        for d, L in shapes
        for i in impls
    ]
    for e in filter(None, a.extra.split(",")):
        i, s, v = e.split("@")
        d, L = (int(x) for x in s.split("x"))
        jobs.append((i, d, L, int(v)))
    if a.warm_only:
        i, sh, v = a.warm_only.split("@")
        d, L = (int(x) for x in sh.split("x"))
        bench_one(i, d, L, int(v), seq, a.batch or BATCH.get((d, L), 16), mode, 0.0, device, warm_only=True)
        return 0
    dev_name = torch.cuda.get_device_name() if cuda else "cpu"
    slug = fmt.slug(dev_name)
    out = Path(a.out) if a.out else Path(__file__).parent / "results" / f"throughput-{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    peak = matmul_peak(device)
    print(
        f"device {dev_name}: matmul peak {peak / 1e12:.1f} TFLOP/s ({'bf16 8192^3' if cuda else 'fp32 1024^3'})",
        file=sys.stderr,
    )
    cmd = "python bench/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
    doc = {
        "device": dev_name,
        "torch": torch.__version__,
        "command": cmd.strip(),
        "matmul_peak_flops": peak,
        "seq_len": seq,
        "mode": mode,
        "flops_per_token": "6N + 12*L*d*T (palm)",
        "rows": [],
    }
    try:
        import transformers

        doc["transformers"] = transformers.__version__
    except ImportError:
        pass
    t0 = time.perf_counter()
    if a.prewarm and cuda:
        doc["prewarm_s"] = prewarm(jobs, a.prewarm, a, a.prewarm_limit)
        print(f"prewarmed the compile caches in {doc['prewarm_s']:.0f} s ({a.prewarm} processes)", file=sys.stderr)
    for impl, d, L, vocab in jobs:
        batch = a.batch or (BATCH.get((d, L), 16) if cuda else 2)
        try:
            r = bench_one(impl, d, L, vocab, seq, batch, mode, a.seconds if cuda else 0.2, device)
            r["ratio_to_matmul_peak"] = r["model_flops_per_s"] / peak
            print(
                f"{impl} {d}x{L} V={vocab}: {r['tokens_per_s'] / 1e6:.3f} Mtok/s, {r['ratio_to_matmul_peak']:.1%} of peak,"
                f" warmup {r['warmup_s']:.0f} s",
                file=sys.stderr,
            )
        except Exception as e:  # noqa: BLE001 - an OOM or compile failure on one row: record it, keep going
            r = {
                "impl": impl,
                "d_model": d,
                "layers": L,
                "vocab": vocab,
                "batch": batch,
                "mode": mode,
                "error": f"{type(e).__name__}: {e}"[:400],
            }
            print(f"{impl} {d}x{L} V={vocab}: {r['error']}", file=sys.stderr)
        free(device)
        doc["rows"].append(r)
        doc["wall_s"] = time.perf_counter() - t0
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(out)
    print(table(doc["rows"], peak))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
