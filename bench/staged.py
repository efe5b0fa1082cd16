"""Staged vs direct training of the same final shape (Shen et al. 2022): compute to reach the direct run's final loss.

Direct: the target shape trained for --steps with the run's cosine schedule. Staged (per growth op): the half-size
shape trained on the same schedule up to --grow-frac of the steps, grown (scalinglab grow, function-preserving, Adam
state mapped), then resumed with the LR re-warmed over --restart-warmup steps and trained to the same last step.
Compute counts each step at the FLOPs per token of the model that took it. Saving = 1 - C_staged(L*) / C_direct(L*),
L* = the direct run's final val loss, C(L*) read off each run's val curve (log-linear interpolation).

    python bench/staged.py                 # GPU: 512x8 target, 3000 steps, width and depth growth
    python bench/staged.py --quick         # CPU smoke run in a few minutes
Writes bench/results/staged-<device>.json and prints a table. The seed reports 13-25% saved (paper: up to 22%).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.folders import RunDir
from scalinglab.growth.run import grow_run
from scalinglab.growth.schedule import small_shape
from scalinglab.records import LoggingConfig, RunSpec
from scalinglab.train import run_training
from scalinglab.train.metrics import read_metrics


def byte_data(folder: Path, max_bytes: int) -> Path:
    """The embedded default corpus (this Python's standard-library source) as UTF-8 byte tokens."""
    from scalinglab.data.prep import prepare

    prepare(["stdlib"], folder, tokenizer="bytes", max_bytes=max_bytes, val_fraction=0.02, progress=False)
    return folder


def val_curve(run: Path) -> list[tuple[int, float]]:
    pts = {int(j["step"]): float(j["val_loss"]) for j in read_metrics(run) if j.get("val_loss") is not None}
    return sorted(pts.items())


def compute_to_loss(curve, flops_at, target: float) -> float | None:
    """FLOPs at which the val curve first reaches `target` (log-linear interpolation between evals)."""
    prev = None
    for step, loss in curve:
        if loss <= target:
            if prev is None:
                return flops_at(step)
            (s0, l0) = prev
            c0, c1 = math.log(max(flops_at(s0), 1.0)), math.log(flops_at(step))
            return math.exp(c0 + (c1 - c0) * (l0 - target) / (l0 - loss))
        prev = (step, loss)
    return None


def device_name() -> str:
    if not torch.cuda.is_available():
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny CPU-sized run")
    ap.add_argument("--data", help="DATA folder (default: stdlib source as bytes)")
    ap.add_argument("--shape", default=None, help="target D_MODELxLAYERS (default 512x8; quick 64x4)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--ops", default="width,depth")
    ap.add_argument("--grow-frac", type=float, default=0.4, help="share of the steps trained at the small size")
    ap.add_argument("--restart-warmup", type=int, default=None)
    ap.add_argument("--symmetry-noise", type=float, default=0.3, help="width growth: see `scalinglab grow --help`")
    ap.add_argument("--lr", type=float, default=0.0, help="0: Kaplan heuristic of each model size (Shen et al. 2022)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    q = a.quick
    d, n_layers = (int(x) for x in (a.shape or ("64x4" if q else "512x8")).split("x"))
    steps = a.steps or (160 if q else 3000)
    batch, seq = a.batch or (8 if q else 64), a.seq_len or (64 if q else 512)
    warm = a.restart_warmup if a.restart_warmup is not None else max(steps // 50, 2)
    evals = max(steps // 20, 1)
    work = Path(tempfile.mkdtemp(prefix="staged-bench-"))
    data = Path(a.data) if a.data else byte_data(work / "DATA", 3_000_000 if q else 60_000_000)
    target = ModelShape(d_model=d, n_layers=n_layers, vocab=262, seq_len=seq, n_heads=max(2, d // 64))

    def spec(shape, n_steps=steps) -> RunSpec:
        return RunSpec(
            shape=shape,
            data=str(data),
            steps=n_steps,
            batch_size=batch,
            lr=a.lr,
            seed=0,
            logging=LoggingConfig(eval_every=evals, eval_batches=4 if q else 16, tensorboard=False, log_every=evals),
        )

    def cost(shape) -> float:  # training FLOPs per optimizer step
        return shape.flops_per_token("chinchilla") * batch * seq

    t0 = time.time()
    run_training(spec(target), work / "direct", progress=not q)
    direct = val_curve(work / "direct")
    l_star = direct[-1][1]
    c_direct = compute_to_loss(direct, lambda s: s * cost(target), l_star)
    rows = []
    for op in [o for o in a.ops.split(",") if o]:
        small = small_shape(target, op)
        g = round(steps * a.grow_frac)
        run_training(spec(small), work / f"small-{op}", progress=not q, stop_at_step=g)
        grown = work / f"grown-{op}"
        grow_run(
            work / f"small-{op}",
            grown,
            width=2 if "width" in op else 1,
            depth=2 if "depth" in op else 1,
            noise=a.symmetry_noise if "width" in op else 0.0,
        )
        s = RunDir(grown).read_spec()
        s.schedule = replace(s.schedule, restart_warmup_steps=warm, restart_steps=g)
        run_training(s, grown, resume=True, progress=not q)
        curve = val_curve(grown)

        def flops_at(step, g=g, small=small):
            return min(step, g) * cost(small) + max(step - g, 0) * cost(target)

        c_staged = compute_to_loss(curve, flops_at, l_star)
        pre = [lv for st, lv in curve if st <= g]
        post = [lv for st, lv in curve if st > g]
        rows.append(
            {
                "op": op,
                "small_shape": small.name,
                "grow_step": g,
                "final_val_loss": curve[-1][1],
                "pre_growth_val_loss": pre[-1] if pre else None,
                "max_val_loss_after_growth": max(post) if post else None,
                "flops_total": flops_at(steps),
                "flops_to_direct_loss": c_staged,
                "saving_pct": None if c_staged is None else 100.0 * (1.0 - c_staged / c_direct),
            }
        )
    res = {
        "device": device_name(),
        "target_shape": target.name,
        "steps": steps,
        "batch": batch,
        "seq_len": seq,
        "grow_frac": a.grow_frac,
        "restart_warmup": warm,
        "symmetry_noise": a.symmetry_noise,
        "direct_final_val_loss": l_star,
        "direct_flops": steps * cost(target),
        "seed_reported_saving_pct": [13, 25],
        "staged": rows,
        "wall_s": round(time.time() - t0, 1),
        "torch": torch.__version__,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"staged-{res['device']}{'-quick' if q else ''}.json"
    path.write_text(json.dumps(res, indent=2))
    print(f"direct {target.name}: final val loss {l_star:.4f}, {res['direct_flops']:.3e} FLOPs")
    print(f"{'op':<12}{'small':>8}{'grow@':>7}{'final':>9}{'pre':>9}{'max after':>11}{'C to L*':>12}{'saved':>9}")
    for r in rows:
        sv = "n/a" if r["saving_pct"] is None else f"{r['saving_pct']:.1f}%"
        ct = "not reached" if r["flops_to_direct_loss"] is None else f"{r['flops_to_direct_loss']:.3e}"
        print(
            f"{r['op']:<12}{r['small_shape']:>8}{r['grow_step']:>7}{r['final_val_loss']:>9.4f}"
            f"{r['pre_growth_val_loss'] or float('nan'):>9.4f}{r['max_val_loss_after_growth'] or float('nan'):>11.4f}{ct:>12}{sv:>9}"
        )
    print(f"wrote {path}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
