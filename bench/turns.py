"""Compiled runs on one GPU: taking turns (the sweep's default) against training K at once (`--per-gpu K`), side by
side in one call. The same small IsoFLOP study (random tokens) is swept both ways after a first sweep that fills the
compile caches, and each sweep's wall time is set against its FLOPs over a bf16 matmul peak measured in the call.

    python bench/turns.py                       # CUDA: 128x2, 256x4, 384x6 at 3e14 and 1e15, K = 4 for the other way
    python bench/turns.py --quick               # CPU smoke test: tiny runs, no compile
Writes bench/results/turns-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from wsd import cli  # noqa: E402 - `python -m scalinglab ARGS` with this checkout's src, exits on failure


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="3e14,1e15")
    ap.add_argument("--shapes", default="128x2,256x4,384x6")
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--k", type=int, default=4, help="runs training at once on the GPU in the other way")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    import torch
    from packing import make_data
    from throughput import matmul_peak

    cuda = torch.cuda.is_available() and not a.quick
    if a.quick:
        a.budgets, a.shapes, a.seq_len, a.batch_size, a.k = "2e9,4e9", "16x1,24x1", 32, 4, 2
    dev = torch.cuda.get_device_name() if cuda else "cpu"
    peak = matmul_peak(torch.device("cuda" if cuda else "cpu"))
    gpu = ["--gpus", "0"] if cuda else ["--workers", "1"]
    ways = [  # (name, sweep flags): the first fills the compile caches for the two measured after it
        ("fill caches", gpu),
        (f"{a.k} at once", [*gpu, "--per-gpu", str(a.k)] if cuda else ["--workers", str(a.k)]),
        ("taking turns", gpu),
    ]
    rows = []
    print(f"device: {dev}  matmul peak {peak / 1e12:.0f} TFLOP/s")
    print(f"{'sweep':>14} {'runs':>5} {'FLOPs':>9} {'wall s':>7} {'of peak':>8}")
    with tempfile.TemporaryDirectory(prefix="turns-") as td:
        data = make_data(Path(td) / "data", 256, 20_000_000)
        for i, (name, flags) in enumerate(ways):
            study = Path(td) / f"study{i}"
            plan = cli(
                *("plan", "isoflop", "--data", str(data), "--budgets", a.budgets, "--shapes", a.shapes),
                *("--seq-len", str(a.seq_len), "--batch-size", str(a.batch_size), "--min-steps", "10"),
                *("--max-epochs", "100", "--compile" if cuda else "--no-compile", "--out", str(study), "--json"),
            )
            runs = json.loads(plan)["runs"]
            flops = sum(float(r["budget"]) for r in runs)
            t = time.perf_counter()
            cli("sweep", str(study), *flags)
            wall = time.perf_counter() - t
            row = {"sweep": name, "flags": flags, "runs": len(runs), "flops": flops, "wall_s": wall}
            row["ratio_to_matmul_peak"] = flops / wall / peak
            rows.append(row)
            print(f"{name:>14} {len(runs):>5} {flops:9.2e} {wall:7.1f} {row['ratio_to_matmul_peak']:8.1%}", flush=True)
    turns, together = rows[2], rows[1]
    print(f"taking turns / {a.k} at once: {together['wall_s'] / turns['wall_s']:.2f}x faster")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from scalinglab import fmt

    slug = fmt.slug(dev)
    doc = {
        "device": dev,
        "torch": torch.__version__,
        "command": " ".join(["python", "bench/turns.py", *sys.argv[1:]]),
        "matmul_peak_flops": peak,
        "settings": {k: getattr(a, k) for k in ("budgets", "shapes", "seq_len", "batch_size", "k")},
        "rows": rows,
        "speedup_of_turns": together["wall_s"] / turns["wall_s"],
    }
    path = out / f"turns-{slug}{'-quick' if a.quick else ''}.json"
    path.write_text(json.dumps(doc, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
