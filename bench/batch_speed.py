"""The trainer's host cost of one training batch: random windows gathered from a memory-mapped token file.

Times scalinglab.data.loader._windows (one fancy-indexing gather) against the copy-per-window it replaced
(np.stack of slices), side by side in one process on the same file and offsets, and checks they give the same
array. A GPU step of a small model takes about a millisecond, so this host work counts.

    python bench/batch_speed.py        # writes bench/results/batch-speed-<machine>.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scalinglab.data.loader import _windows


def per_window(arr: np.ndarray, starts: np.ndarray, seq_len: int) -> np.ndarray:
    """The previous implementation: one slice copy per window, then a stack."""
    return np.stack([arr[s : s + seq_len + 1] for s in starts]).astype(np.int64)


def time_ms(f, arr: np.ndarray, batch: int, seq: int, n: int) -> float:
    t = time.perf_counter()
    for step in range(n):
        f(arr, np.random.default_rng([0, step]).integers(0, len(arr) - seq - 1, size=batch), seq)
    return (time.perf_counter() - t) / n * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=float, default=1e8, help="size of the uint16 token file")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.bin"
        np.random.default_rng(0).integers(0, 256, size=int(a.tokens), dtype=np.uint16).tofile(path)
        arr = np.memmap(path, dtype=np.uint16, mode="r")
        for batch, seq in ((32, 64), (64, 512), (128, 512), (16, 1024)):
            starts = np.random.default_rng(1).integers(0, len(arr) - seq - 1, size=batch)
            assert np.array_equal(_windows(arr, starts, seq), per_window(arr, starts, seq))
            old, new = (time_ms(f, arr, batch, seq, a.steps) for f in (per_window, _windows))
            rows.append({"batch": batch, "seq_len": seq, "per_window_ms": old, "gather_ms": new, "speedup": old / new})
    machine = platform.machine()
    doc = {
        "machine": machine,
        "processor": platform.processor(),
        "command": "python bench/batch_speed.py",
        "rows": rows,
    }
    out = Path(a.out) if a.out else Path(__file__).parent / "results" / f"batch-speed-{machine}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print("| batch x seq+1 | copy per window ms | one gather ms | speedup |\n|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']} x {r['seq_len'] + 1} | {r['per_window_ms']:.3f} | {r['gather_ms']:.3f} | {r['speedup']:.2f} |"
        )
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
