"""Wall time of `scalinglab demo --scale gpu` against its compute limit: the study's model FLOPs over a bf16 matmul
peak measured in the same call (what the whole preset would take at 100% of the GPU's matmul rate).

    python bench/demo_speed.py --out /tmp/demo-gpu                   # the whole preset
    python bench/demo_speed.py --out /tmp/demo-gpu --max-minutes 5    # stop cleanly; run again to continue
    python bench/demo_speed.py --out /tmp/demo-mps --mps               # the sweep under NVIDIA MPS
Writes bench/results/demo-<device>.json; calls on the same --out add up (each call's wall time, FLOPs and seconds per
demo stage listed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def study_progress(study: Path) -> dict:
    """Planned FLOPs (each run's budget) and those trained: done runs' records, others' last logged step."""
    from scalinglab.sweep.store import Store

    with Store(study) as st:
        rows = st.runs()
    planned = sum(float(r["budget"] or 0) for r in rows)
    trained = sum(
        float(r["flops"] or r["budget"] or 0)
        if r["status"] == "done"
        else float(r["budget"] or 0) * (r["last_step"] or 0) / max(1, r["steps"] or 1)
        for r in rows
    )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {"runs": len(rows), "counts": counts, "flops_planned": planned, "flops_trained": trained}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the demo's folder (reused: a second call continues)")
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--result", default=None, help="JSON path (default bench/results/demo-<device>.json)")
    ap.add_argument("--mps", action="store_true", help="sweep under NVIDIA MPS (demo --mps)")
    a = ap.parse_args()
    import torch
    from throughput import matmul_peak

    from scalinglab import fmt
    from scalinglab.demo import Demo
    from scalinglab.folders import StudyDir

    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peak = matmul_peak(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    slug = fmt.slug(dev)
    result = Path(a.result) if a.result else ROOT / "bench" / "results" / f"demo-{slug}.json"
    out = Path(a.out)
    study = out / "study"
    before = study_progress(study) if StudyDir(study).store.exists() else {"flops_trained": 0.0}
    cmd = [sys.executable, "-m", "scalinglab", "demo", "--scale", "gpu", "--out", str(out), "--json"]
    if a.max_minutes:
        cmd += ["--max-minutes", f"{a.max_minutes:g}"]
    if a.mps:
        cmd += ["--mps"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    print(f"{dev}: bf16 matmul peak {peak / 1e12:.1f} TFLOP/s", flush=True)  # kept in the log if this call is killed
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    # SIGTERM (e.g. from `timeout`) stops the demo the way the sweep expects (its runs checkpoint and are handed
    # back), and the JSON below is still written with what was done.
    signal.signal(signal.SIGTERM, lambda *_: p.send_signal(signal.SIGTERM))
    stdout, _ = p.communicate()
    rc, wall = p.returncode, time.perf_counter() - t
    try:
        stage_s = json.loads(stdout).get("stage_s", {})  # the demo's summary: seconds per stage in this call
    except ValueError:
        stage_s = {}
    empty = {"runs": 0, "counts": {}, "flops_planned": 0.0, "flops_trained": 0.0}  # stopped before the plan
    now = study_progress(study) if StudyDir(study).store.exists() else empty
    done = now["counts"].get("done", 0) == now["runs"] and Demo(out, scale="gpu").report_path.exists()
    doc = json.loads(result.read_text()) if result.exists() else {"device": dev, "preset": "gpu", "calls": []}
    doc["calls"].append(
        {
            "command": " ".join(["python", "bench/demo_speed.py", *sys.argv[1:]]),
            "mps": a.mps,
            "exit_code": rc,
            "wall_s": wall,
            "matmul_peak_flops": peak,
            "flops_trained_in_call": now["flops_trained"] - before["flops_trained"],
            "stage_s": stage_s,
        }
    )
    wall_total = sum(c["wall_s"] for c in doc["calls"])
    doc.update(
        complete=done,
        runs=now["runs"],
        counts=now["counts"],
        flops_planned=now["flops_planned"],
        flops_trained=now["flops_trained"],
        wall_s=wall_total,
        matmul_peak_flops=peak,
        compute_limit_s=now["flops_planned"] / peak,
        ratio_to_compute_limit=(now["flops_trained"] / peak) / wall_total if wall_total else None,
    )
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps(doc, indent=2) + "\n")
    print(
        f"demo --scale gpu: {'complete' if done else 'not complete'}, {now['counts']} of {now['runs']} runs, "
        f"{wall_total:.0f} s wall in {len(doc['calls'])} call(s); planned {now['flops_planned']:.3g} FLOPs = "
        f"{doc['compute_limit_s']:.0f} s at the measured {peak / 1e12:.0f} TFLOP/s; trained {now['flops_trained']:.3g} "
        f"FLOPs at {doc['ratio_to_compute_limit']:.1%} of that rate; wrote {result}"
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
