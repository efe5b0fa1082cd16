"""A stand-in for `scalinglab train` honouring the RUN/ contract (config.toml, checkpoint.pt, metrics.jsonl,
record.json, exit codes), fast and torch-free, so the scheduler is tested on its own.

FAKE_STEP_S: seconds per step; FAKE_FAIL: comma-separated run ids that crash; FAKE_LOG: append "run_id pid" here.
"""

import json
import os
import sys
import time
import tomllib
from pathlib import Path


def atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> int:
    a = sys.argv[1:]
    run = Path(a[a.index("--resume") + 1] if "--resume" in a else a[a.index("--out") + 1])
    spec = tomllib.loads((run / "config.toml").read_text())
    rid, steps = spec["run_id"], spec["steps"]
    if os.environ.get("FAKE_LOG"):
        with open(os.environ["FAKE_LOG"], "a") as f:
            f.write(f"{rid} {os.getpid()} {'resume' if '--resume' in a else 'fresh'}\n")
    if rid in os.environ.get("FAKE_FAIL", "").split(","):
        print("boom: injected failure", file=sys.stderr)
        return 1
    start = 0
    ck = run / "checkpoint.pt"
    if "--resume" in a and ck.exists():
        start = json.loads(ck.read_text())["step"]
        lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
        atomic(run / "metrics.jsonl", "".join(ln + "\n" for ln in lines if json.loads(ln)["step"] <= start))
    steps = spec["steps"]
    tps = spec["batch_size"] * spec.get("grad_accum", 1) * spec["shape"]["seq_len"]
    dt = float(os.environ.get("FAKE_STEP_S", "0.002"))
    with open(run / "metrics.jsonl", "a") as m:
        for step in range(start + 1, steps + 1):
            time.sleep(dt)
            line = {"step": step, "tokens": step * tps, "flops": step * tps * 6.0, "lr": 1e-3,
                    "train_loss": 5.0 / (1 + step / 100), "time_s": step * dt}
            if step % max(1, spec.get("eval_every", 0) or steps) == 0 or step == steps:
                m.write(json.dumps(line) + "\n")
                line["val_loss"] = line["train_loss"] + 0.1
            m.write(json.dumps(line) + "\n")
            m.flush()
            if spec.get("checkpoint_every") and step % spec["checkpoint_every"] == 0:
                atomic(ck, json.dumps({"step": step}))
    rec = {"spec": spec, "status": "done", "final_val_loss": 5.0 / (1 + steps / 100) + 0.1,
           "min_val_loss": 5.0 / (1 + steps / 100) + 0.1, "final_train_loss": 5.0 / (1 + steps / 100),
           "steps_done": steps, "tokens": steps * tps, "flops": steps * tps * 6.0, "wall_time_s": steps * dt,
           "device": "cuda:" + os.environ["CUDA_VISIBLE_DEVICES"] if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu",
           "message": ""}
    atomic(run / "record.json", json.dumps(rec))
    print(json.dumps({"status": "done"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
