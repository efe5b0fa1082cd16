"""A CPU study end to end with the real trainer: SIGKILL to the whole sweep's process group mid-study, then
`scalinglab sweep` again leaves every planned run done exactly once, with intact curves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from scalinglab.sweep.store import Store, load_runs_frame
from test_sweep import PY, check_curve, cli, plan


@pytest.mark.slow
def test_cpu_study_killed_and_resumed(tiny_data, tmp_path):
    """SIGKILL to the sweep's process group mid-study, then `sweep` again: every run done exactly once."""
    study = tmp_path / "STUDY"
    planned = {r["id"]: r for r in plan(tiny_data, study, "5e9", "32x2,48x2,64x2", "--checkpoint-minutes", "0")["runs"]}
    assert len(planned) == 3
    log = open(tmp_path / "sweep1.log", "w")
    p = subprocess.Popen(
        [PY, "-m", "scalinglab", "sweep", str(study), "--workers", "2"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    st = Store(study)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and p.poll() is None:
            rows = st.runs()
            done = [r for r in rows if r["status"] == "done"]
            # a run in the middle of training: checkpointed, its record not yet final
            ckpt = [
                r
                for r in rows
                if r["status"] == "running"
                and (study / r["run_dir"] / "checkpoint.pt").exists()
                and '"status": "running"' in (study / r["run_dir"] / "record.json").read_text()
            ]
            if done and ckpt:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no run finished while another had a checkpoint: {(tmp_path / 'sweep1.log').read_text()}")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    rows = {r["id"]: r for r in st.runs()}
    first_done = {
        k: (study / r["run_dir"] / "record.json").read_text() for k, r in rows.items() if r["status"] == "done"
    }
    interrupted = [k for k, r in rows.items() if r["status"] == "running"]
    never_started = [k for k, r in rows.items() if r["status"] == "pending"]
    assert first_done and interrupted  # the kill left runs marked running with a dead owner

    p2 = cli("sweep", str(study), "--workers", "2", "--json")
    assert p2.returncode == 0, p2.stderr
    status = json.loads(p2.stdout)
    assert status["counts"] == {"done": 3}
    by_id = {r["id"]: r for r in status["runs"]}
    for k, r in by_id.items():
        run_dir = study / r["run_dir"]
        rec = json.loads((run_dir / "record.json").read_text())
        assert rec["status"] == "done" and rec["tokens"] == planned[k]["tokens"] == r["tokens"]
        assert r["final_val_loss"] == rec["final_val_loss"] and 0 < r["final_val_loss"] < 6
        check_curve(run_dir, planned[k]["steps"], 4 * 32)
        if k in first_done:  # finished before the kill: never trained again
            assert r["attempts"] == 1 and (run_dir / "record.json").read_text() == first_done[k]
        else:
            assert r["attempts"] == (1 if k in never_started else 2)
    resumed = [k for k in interrupted if "--resume" in (study / by_id[k]["run_dir"] / "train.log").read_text()]
    assert resumed  # at least the run with a checkpoint continued from it
    df = load_runs_frame(study)
    assert set(df.run_id) == set(planned) and (df.status == "done").all() and (df.flops > 0).all()
