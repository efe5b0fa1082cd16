"""`scalinglab sweep` / `status`: failures that do not stop the sweep, --retry-failed, GPU slots, bad input.
A fake trainer (same RUN/ contract) keeps these scheduler tests fast; test_sweep_resume.py uses the real one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalinglab.sweep.local import make_devices
from scalinglab.sweep.store import Store, load_runs_frame

PY = sys.executable

FAKE_TRAINER = r'''"""A stand-in for `scalinglab train` honouring the RUN/ contract (config.toml, checkpoint.pt, metrics.jsonl,
record.json, exit codes), fast and torch-free, so the scheduler is tested on its own.

FAKE_STEP_S: seconds per step; FAKE_FAIL: comma-separated run ids that crash; FAKE_LOG: append start/end lines here.
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
    log = os.environ.get("FAKE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"start {rid} {time.time()} {'resume' if '--resume' in a else 'fresh'}\n")
    if os.environ.get("FAKE_ENV_LOG"):  # the MPS pipe folder this trainer was given
        with open(os.environ["FAKE_ENV_LOG"], "a") as f:
            f.write(os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "-") + "\n")
    if os.environ.get("FAKE_TURN_LOG"):  # the GPU turn's lock file this trainer was given
        with open(os.environ["FAKE_TURN_LOG"], "a") as f:
            f.write(f"{rid} {os.environ.get('SCALINGLAB_GPU_TURN', '-')}\n")
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
            if step % max(1, spec["logging"]["eval_every"] or steps) == 0 or step == steps:
                m.write(json.dumps(line) + "\n")
                line["val_loss"] = line["train_loss"] + 0.1
            m.write(json.dumps(line) + "\n")
            m.flush()
            if spec["logging"]["checkpoint_every"] and step % spec["logging"]["checkpoint_every"] == 0:
                atomic(ck, json.dumps({"step": step}))
    rec = {"spec": spec, "status": "done", "final_val_loss": 5.0 / (1 + steps / 100) + 0.1,
           "min_val_loss": 5.0 / (1 + steps / 100) + 0.1, "final_train_loss": 5.0 / (1 + steps / 100),
           "steps_done": steps, "tokens": steps * tps, "flops": steps * tps * 6.0, "wall_time_s": steps * dt,
           "device": "cuda:" + os.environ["CUDA_VISIBLE_DEVICES"] if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu",
           "message": ""}
    atomic(run / "record.json", json.dumps(rec))
    if log:
        with open(log, "a") as f:
            f.write(f"end {rid} {time.time()} done\n")
    print(json.dumps({"status": "done"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def cli(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "scalinglab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def plan_args(data: Path, out: Path, budgets: str, shapes: str, *extra: str) -> list[str]:
    """`plan isoflop` arguments of the tests' tiny studies (seq 32, batch 4, at least 20 steps, --json)."""
    return ["plan", "isoflop", "--data", str(data), "--budgets", budgets, "--shapes", shapes, "--seq-len", "32"] + [
        "--batch-size",
        "4",
        "--min-steps",
        "20",
        "--out",
        str(out),
        "--json",
        *extra,
    ]


def plan(data: Path, out: Path, budgets: str, shapes: str, *extra: str) -> dict:
    p = cli(*plan_args(data, out, budgets, shapes, *extra))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture()
def fake(tmp_path) -> dict:
    f = tmp_path / "fake_train.py"
    f.write_text(FAKE_TRAINER)
    return {"SCALINGLAB_TRAIN_CMD": f"{PY} {f}", "FAKE_LOG": str(tmp_path / "fake.log"), "FAKE_STEP_S": "0.001"}


def fake_log(env: dict) -> list[list[str]]:
    p = Path(env["FAKE_LOG"])
    return [ln.split() for ln in p.read_text().splitlines()] if p.exists() else []


def check_curve(run_dir: Path, steps: int, tokens_per_step: int) -> None:
    """An intact curve: steps strictly increasing, none repeated, ending at the planned step with a val loss."""
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    s = [r["step"] for r in rows]
    assert s == sorted(set(s)), f"{run_dir.name}: repeated or unordered steps {s}"
    assert s[-1] == steps and "val_loss" in rows[-1]
    assert all(r["tokens"] == r["step"] * tokens_per_step for r in rows)


def test_make_devices():
    gpus = make_devices("0,1", 4, 0)  # --per-gpu 4: four runs each, whatever their size
    assert [(d.name, d.max_runs, d.mem) for d in gpus] == [("gpu0", 4, 0.0), ("gpu1", 4, 0.0)]
    assert [d.env["CUDA_VISIBLE_DEVICES"] for d in gpus] == ["0", "1"]
    cpu = make_devices(None, None, 2)
    assert len(cpu) == 1 and cpu[0].max_runs == 2 and cpu[0].env["CUDA_VISIBLE_DEVICES"] == ""


def test_failure_does_not_stop_sweep_and_retry(tiny_data, tmp_path, fake):
    study = tmp_path / "STUDY"
    plan(tiny_data, study, "1e10,3e10", "32x2,48x2")
    p = cli("sweep", str(study), "--workers", "2", env={**fake, "FAKE_FAIL": "C1e10_32x2"})
    assert p.returncode == 1 and "--retry-failed" in p.stderr and "Traceback" not in p.stderr
    s = json.loads(cli("status", str(study), "--json").stdout)
    assert s["counts"] == {"done": 3, "failed": 1}
    failed = next(r for r in s["runs"] if r["status"] == "failed")
    assert failed["id"] == "C1e10_32x2" and "boom" in failed["message"] and failed["final_val_loss"] is None
    n_starts = len(fake_log(fake))
    assert cli("sweep", str(study), "--workers", "2", env=fake).returncode == 1  # failed runs stay failed
    assert len(fake_log(fake)) == n_starts
    p = cli("sweep", str(study), "--workers", "2", "--retry-failed", env=fake)
    assert p.returncode == 0, p.stderr
    starts = [x[1] for x in fake_log(fake) if x[0] == "start"]
    assert sorted(starts) == sorted(["C1e10_32x2", "C1e10_48x2", "C3e10_32x2", "C3e10_48x2", "C1e10_32x2"])
    s = json.loads(cli("status", str(study), "--json").stdout)
    assert s["counts"] == {"done": 4}
    assert next(r for r in s["runs"] if r["id"] == "C1e10_32x2")["attempts"] == 2
    human = cli("status", str(study))
    assert human.returncode == 0 and "4/4 done" in human.stdout and "C3e10_48x2" in human.stdout


def test_gpu_slots_pack_runs_per_gpu(tiny_data, tmp_path, fake):
    """--gpus 0 --per-gpu 4: four runs share GPU 0 at once (CUDA_VISIBLE_DEVICES=0 for each)."""
    study = tmp_path / "STUDY"
    plan(tiny_data, study, "1e10,2e10,3e10", "48x2,64x2")
    p = cli("sweep", str(study), "--gpus", "0", "--per-gpu", "4", env={**fake, "FAKE_STEP_S": "0.02"})
    assert p.returncode == 0, p.stderr
    df = load_runs_frame(study)
    assert (df.status == "done").all() and len(df) == 6
    st = Store(study)
    assert {r["device"] for r in st.runs()} == {"cuda:0"}
    assert {r["worker"] for r in st.runs()} <= {"gpu0.0", "gpu0.1", "gpu0.2", "gpu0.3"}
    events = sorted((float(t), +1 if kind == "start" else -1) for kind, _, t, _ in fake_log(fake))
    live, peak = 0, 0
    for _, d in events:
        live += d
        peak = max(peak, live)
    assert peak == 4


def test_compiled_runs_take_turns_on_their_gpu(tiny_data, tmp_path, fake):
    """Packed by size (no --per-gpu), compiled runs get their GPU's turn lock and at most TURN_DEPTH are placed on
    a GPU at once; uncompiled runs get none."""
    from scalinglab.sweep.packing import TURN_DEPTH, gpu_devices

    log = tmp_path / "turns.log"
    env = {**fake, "FAKE_STEP_S": "0.01", "FAKE_TURN_LOG": str(log)}
    study = tmp_path / "STUDY"
    plan(tiny_data, study, "1e10,2e10,3e10", "48x2,64x2", "--compile")
    p = cli("sweep", str(study), "--gpus", "0", env=env)
    assert p.returncode == 0, p.stderr
    assert sorted(log.read_text().split()[1::2]) == [str(study.resolve() / ".turns" / "gpu0.lock")] * 6
    events = sorted((float(t), +1 if kind == "start" else -1) for kind, _, t, _ in fake_log(fake))
    live = [sum(d for _, d in events[: i + 1]) for i in range(len(events))]
    assert max(live) == min(TURN_DEPTH, gpu_devices([0], 0)[0].max_runs)  # and the CPU cores' limit
    log.unlink()
    plan(tiny_data, tmp_path / "S2", "1e10", "48x2,64x2")
    assert cli("sweep", str(tmp_path / "S2"), "--gpus", "0", env=env).returncode == 0
    assert log.read_text().split()[1::2] == ["-", "-"]


FAKE_MPS = """#!/bin/sh
# stand-in for nvidia-cuda-mps-control: logs how it was called and which pipe folder it was given
if [ "$#" -gt 0 ]; then echo "start $* $CUDA_MPS_PIPE_DIRECTORY" >> "$FAKE_MPS_LOG"
else echo "command $(cat) $CUDA_MPS_PIPE_DIRECTORY" >> "$FAKE_MPS_LOG"; fi
"""


def test_mps_daemon_serves_the_gpu_runs(tiny_data, tmp_path, fake):
    """--mps: a private MPS control daemon is started (-d) before the runs, every trainer gets its pipe folder, and
    it is told to quit (and its folder removed) when the sweep ends."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-cuda-mps-control").write_text(FAKE_MPS)
    (bin_dir / "nvidia-cuda-mps-control").chmod(0o755)
    env = {
        **fake,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_MPS_LOG": str(tmp_path / "mps.log"),
        "FAKE_ENV_LOG": str(tmp_path / "env.log"),
    }
    study = tmp_path / "STUDY"
    plan(tiny_data, study, "1e10,2e10", "48x2,64x2")
    p = cli("sweep", str(study), "--gpus", "0", "--per-gpu", "2", "--mps", env=env)
    assert p.returncode == 0, p.stderr
    calls = [ln.split() for ln in (tmp_path / "mps.log").read_text().splitlines()]
    assert [c[:2] for c in calls] == [["start", "-d"], ["command", "quit"]]
    pipe = calls[0][2]
    assert calls[1][2] == pipe and Path(pipe).name == "pipe" and not Path(pipe).parent.exists()
    assert (tmp_path / "env.log").read_text().split() == [pipe] * 4  # all four runs
    # no GPU, another backend, no daemon binary: one line, exit 2, nothing started
    q = cli("sweep", str(study), "--workers", "1", "--mps", env=env)
    assert (
        q.returncode == 2
        and "MPS is for runs on GPUs, and this sweep has none; leave MPS off (--mps)" in q.stderr
        and "Traceback" not in q.stderr
    )
    q = cli("sweep", str(study), "--backend", "ray", "--mps", env=env)
    assert q.returncode == 2 and "--mps works with the local backend" in q.stderr
    q = cli("sweep", str(study), "--gpus", "0", "--mps", env={**fake, "PATH": str(Path(PY).parent)})
    assert q.returncode == 2 and "MPS needs nvidia-cuda-mps-control on the PATH" in q.stderr
    assert len((tmp_path / "mps.log").read_text().splitlines()) == 2


def test_sweep_bad_input(tmp_path):
    p = cli("sweep", str(tmp_path / "nope"), "--workers", "1")
    assert p.returncode == 2 and "is not a study" in p.stderr
    p = cli("status", str(tmp_path), "--json")
    assert p.returncode == 2 and "is not a study" in p.stderr
