"""Benchmark `scalinglab prep`: wall time, throughput and peak memory per tokenizer on the built-in corpora.

Run on the 16-core GPU machine: `python bench/prep_speed.py [--workers 16]`; writes bench/results/prep_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = [  # (source, tokenizer, extra args)
    ("stdlib", "bytes", []),
    ("stdlib", "bpe:8192", []),
    ("site-packages", "bytes", []),
    ("site-packages", "gpt2", []),
    ("site-packages", "sentencepiece:8192", ["--max-bytes", "100M"]),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--only", default="", help="substring filter on 'source tokenizer'")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (src, tok, extra) in enumerate(CASES):
            if args.only not in f"{src} {tok}":
                continue
            out = Path(tmp) / f"D{i}"
            cmd = [
                sys.executable,
                "-m",
                "scalinglab",
                "prep",
                src,
                "--tokenizer",
                tok,
                "--out",
                str(out),
                "--workers",
                str(args.workers),
                "--json",
                "-q",
                *extra,
            ]
            t0 = time.time()
            r = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.time() - t0
            if r.returncode:
                rows.append({"source": src, "tokenizer": tok, "error": r.stderr.strip()[-300:]})
                continue
            s = json.loads(r.stdout)
            mb = (s["bytes_train"] + s["bytes_val"]) / 1e6
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest child so far, MiB
            rows.append(
                {
                    "source": src,
                    "tokenizer": tok,
                    "mb": round(mb, 1),
                    "wall_s": round(wall, 1),
                    "mb_per_s": round(mb / wall, 1),
                    "tokens": s["tokens_train"] + s["tokens_val"],
                    "bytes_per_token": s["bytes_per_token"]["train"],
                    "peak_rss_mib_so_far": round(peak),
                }
            )
            print(f"{src:<14} {tok:<20} {mb:8.1f} MB {wall:7.1f} s {mb / wall:7.1f} MB/s", flush=True)
    res = Path(__file__).parent / "results"
    res.mkdir(exist_ok=True)
    (res / "prep_speed.json").write_text(
        json.dumps({"workers": args.workers, "cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
