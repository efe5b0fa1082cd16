"""Does the learning rate transfer across width? The same LR grid at several widths (fixed depth, fixed tokens),
under standard parametrization and under muP (Yang et al. 2022, "Tensor Programs V"): under muP the best LR should
stay put as width grows; under SP it falls. Fixed tokens, not fixed compute: muP's claim is about width alone, and
at fixed compute a wider model also trains fewer steps, which moves its best LR by itself.

Drives the CLI (plan tune -> sweep -> status) on byte-level data, one tuning study per (parametrization, width):

    scalinglab prep stdlib --tokenizer bytes --out DATA
    python bench/mup_transfer.py --data DATA --out /tmp/mup --lrs 6.25e-4,1.25e-3,2.5e-3,5e-3,1e-2,2e-2
    python bench/mup_transfer.py --data DATA --out /tmp/mup --lrs 4e-2,8e-2     # more LRs: the table covers both
On a 2-core CPU, 800 steps at widths 32, 64, 128: about 8 minutes per 6 LRs.
Writes bench/results/mup-transfer-<device>.json and prints the loss table (best LR per width marked).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from wsd import cli  # noqa: E402 - `python -m scalinglab ARGS` with this checkout's src, exits on failure


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared DATA folder (scalinglab prep)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--widths", default="32,64,128")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lrs", default="6.25e-4,1.25e-3,2.5e-3,5e-3,1e-2,2e-2")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--result", default=None)
    a = ap.parse_args()
    out, widths = Path(a.out), [int(w) for w in a.widths.split(",")]
    tokens = a.steps * a.batch * a.seq_len
    rows, studies = [], []
    for p in ("sp", "mup"):
        for w in widths:
            study = out / f"{p}-{w}" / ("lrs-" + a.lrs.replace(",", "_"))  # a later call may add LRs beside it
            shape = f"{w}x{a.layers}"
            common = ["--data", a.data, "--shapes", shape, "--lrs", a.lrs, "--batch-sizes", str(a.batch)]
            common += ["--seq-len", str(a.seq_len), "--parametrization", p, "--min-steps", "1", "--max-epochs", "100"]
            common += ["--mup-base-width", str(widths[0])] if p == "mup" else []
            if not (study / "study.db").exists():
                probe = out / "probe"
                shutil.rmtree(probe, ignore_errors=True)
                plan = json.loads(cli("plan", "tune", *common, "--budgets", "1e12", "--out", str(probe), "--json"))
                fpt = plan["runs"][0]["flops_per_token"]
                shutil.rmtree(probe)
                cli("plan", "tune", *common, "--budgets", f"{fpt * tokens:.6g}", "--out", str(study), "--json")
            cli("sweep", str(study), "--workers", str(a.workers))
    for p in ("sp", "mup"):
        for w in widths:
            for study in sorted((out / f"{p}-{w}").glob("lrs-*")):
                studies.append(str(study))
                for r in json.loads(cli("status", str(study), "--json"))["runs"]:
                    lr = float(re.search(r"_lr([0-9.e+-]+)_b", r["id"]).group(1))
                    rows.append({"parametrization": p, "width": w, "lr": lr, "loss": r["final_val_loss"]})
    doc = {
        "device": "cpu",
        "machine": platform.machine(),
        "command": " ".join(["python", "bench/mup_transfer.py", *sys.argv[1:]]),
        "layers": a.layers,
        "tokens": tokens,
        "steps": a.steps,
        "batch": a.batch,
        "seq_len": a.seq_len,
        "base_width": widths[0],
        "studies": studies,  # every LR grid found under --out, from this call or an earlier one
        "runs": rows,
        "best_lr": {},
    }
    lrs = sorted({r["lr"] for r in rows})
    print(f"final validation loss, {a.layers} layers, {tokens:,} tokens ({a.steps} steps); * best LR of the width")
    print(f"{'':5s} {'width':>5s} " + " ".join(f"{lr:>8.3g}" for lr in lrs))
    for p in ("sp", "mup"):
        for w in widths:
            mine = {r["lr"]: r["loss"] for r in rows if r["parametrization"] == p and r["width"] == w}
            best = min(mine, key=lambda k: mine[k] if mine[k] is not None else float("inf"))
            doc["best_lr"].setdefault(p, {})[str(w)] = best
            cells = [
                ("      --" if mine.get(lr) is None else f"{mine[lr]:8.4f}") + ("*" if lr == best else " ")
                for lr in lrs
            ]
            print(f"{p:5s} {w:5d} " + "".join(cells))
    result = Path(a.result) if a.result else ROOT / "bench" / "results" / "mup-transfer-cpu.json"
    result.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
