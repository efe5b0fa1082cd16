"""Benchmark: the fine-tuning study's cost per run, same model, data and protocol, three ways, in one process:
per-sample validation after every step (the code before batching), batched validation after every step
(`--eval-every 1`), and the default (batched, about 10 evaluations per run). CPU time on one thread, so the ratios
hold on a loaded machine. Prints a table and writes bench/results/finetune_speed-<device>.json.

    python bench/finetune_speed.py [--steps 30] [--d-model 256 --layers 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import scalinglab.finetune as ft
from scalinglab.accounting.shape import ModelShape
from scalinglab.data.loader import TokenData
from scalinglab.data.prep import prepare
from scalinglab.evaluate.lm import load_lm
from scalinglab.models import build_model
from scalinglab.records import RunSpec
from scalinglab.train.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def per_sample_val_loss(lm, val: torch.Tensor, batch: int = 1) -> float:
    """The validation before batching: one sample per forward pass."""
    lm.module.eval()
    with torch.no_grad():
        return float(np.mean([ft.lm_loss(lm, val[i : i + 1]).item() for i in range(len(val))]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--eval-samples", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "DATA"
        prepare(["stdlib"], data, tokenizer="bytes", max_bytes=2_000_000, progress=False)
        td = TokenData(data)
        shape = ModelShape(
            d_model=a.d_model,
            n_layers=a.layers,
            n_heads=max(1, a.d_model // 64),
            vocab=td.vocab_size,
            seq_len=a.seq_len,
        )
        run = Path(tmp) / "M"
        run.mkdir()
        spec = RunSpec(shape=shape, data=str(data), steps=1)
        (run / "config.toml").write_text(spec.to_toml())
        save_checkpoint(
            run / "checkpoint.pt",
            {"model": build_model(shape).state_dict(), "spec": spec.to_dict(), "step": 0, "optimizer": None},
        )
        train = ft.samples(td.split("train"), a.seq_len, 20, "train")
        val = torch.from_numpy(ft.samples(td.split("val"), a.seq_len, a.eval_samples, "val"))
        lm = load_lm(run, "cpu")
        rows = []
        for name, fn, every in (
            ("per-sample, every step", per_sample_val_loss, 1),
            ("batched, every step", ft.val_loss, 1),
            ("batched, default", ft.val_loss, 0),
        ):
            orig, ft.val_loss = ft.val_loss, fn
            try:
                p = ft.Protocol(steps=a.steps, seq_len=a.seq_len, eval_samples=a.eval_samples, eval_every=every)
                t = time.process_time()
                r = ft.run_one(lm, train, val, 20, p, a.steps)
                rows.append(
                    {
                        "variant": name,
                        "cpu_s": round(time.process_time() - t, 3),
                        "evaluations": sum(c["val_loss"] is not None for c in r["curve"]),
                        "final_val_loss": r["final_val_loss"],
                    }
                )
            finally:
                ft.val_loss = orig
    base = rows[0]["cpu_s"]
    print(
        f"{shape.params():,} params, {a.steps} steps, {a.eval_samples} validation samples of {a.seq_len} tokens, 1 thread"
    )
    print(f"{'variant':<24} {'evals':>5} {'CPU s':>7} {'speed-up':>8}  final val loss")
    for r in rows:
        r["speedup"] = round(base / r["cpu_s"], 2)
        print(
            f"{r['variant']:<24} {r['evaluations']:>5} {r['cpu_s']:>7.2f} {r['speedup']:>7.2f}x  {r['final_val_loss']:.6f}"
        )
    device = (platform.processor() or platform.machine() or "cpu").replace(" ", "-").lower()
    out = ROOT / "bench" / "results" / f"finetune_speed-{device}.json"
    out.write_text(
        json.dumps(
            {
                "device": device,
                "machine": platform.node(),
                "params": shape.params(),
                "steps": a.steps,
                "eval_samples": a.eval_samples,
                "seq_len": a.seq_len,
                "threads": 1,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
