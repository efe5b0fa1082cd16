"""Each run's training rate in a (partial) sweep, from its metric lines: tokens/s and model FLOP/s between its first
and last logged step. Shows how packed runs share a GPU (bench/results/demo-run-rates-*.txt).

    python bench/run_rates.py STUDY
"""

import json
import sys
from pathlib import Path


def main(study: str) -> None:
    for m in sorted(Path(study).glob("runs/*/metrics.jsonl")):
        rows = [json.loads(line) for line in m.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if "time_s" in r and "flops" in r]
        if len(rows) < 2:
            print(m.parent.name, "rows", len(rows))
            continue
        a, b = rows[0], rows[-1]
        dt = max(b["time_s"] - a["time_s"], 1e-9)
        print(
            f"{m.parent.name:28s} steps {a['step']}-{b['step']} t {a['time_s']:.0f}-{b['time_s']:.0f}s "
            f"{(b['tokens'] - a['tokens']) / dt / 1e6:7.3f} Mtok/s {(b['flops'] - a['flops']) / dt / 1e12:7.1f} TFLOP/s"
        )


if __name__ == "__main__":
    main(sys.argv[1])
