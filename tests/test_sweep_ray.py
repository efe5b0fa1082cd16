"""`scalinglab sweep --backend ray` against a Ray head node started on localhost (`ray start --head`), on the
same 3-run CPU study as test_sweep_resume.py, with the real trainer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_sweep import check_curve, cli, plan

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'scalinglab[ray]')")
RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def ray_head():
    """A private head node: own port, own temp dir (short: Ray's socket paths are length-limited), own
    process group, so stopping it touches no other Ray on this machine (no `ray stop`)."""
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="slray", dir="/tmp")
    log = open(Path(tmp) / "head.log", "w")
    p = subprocess.Popen(
        [
            str(RAY),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--num-gpus=0",
            "--include-dashboard=false",
            f"--temp-dir={tmp}",
            "--disable-usage-stats",
            # Ray's fixed default ports would clash with a second head node on this machine
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 45
        while "Ray runtime started" not in (Path(tmp) / "head.log").read_text():
            if p.poll() is not None or time.time() > deadline:
                pytest.skip(f"ray head node did not start here: {(Path(tmp) / 'head.log').read_text()[-300:]}")
            time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        p.send_signal(signal.SIGTERM)  # the leader drains and stops its raylet and GCS
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # anything of this head node still running
        except ProcessLookupError:
            pass
        p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_ray_sweep_local_head(tiny_data, tmp_path, ray_head):
    study = tmp_path / "STUDY"
    planned = {r["id"]: r for r in plan(tiny_data, study, "5e9", "32x2,48x2,64x2")["runs"]}
    p = cli("sweep", str(study), "--backend", "ray", "--address", ray_head, "--json", timeout=120)
    assert p.returncode == 0, p.stderr
    status = json.loads(p.stdout)
    assert status["counts"] == {"done": 3}
    for r in status["runs"]:
        rec = json.loads((study / r["run_dir"] / "record.json").read_text())
        assert rec["status"] == "done" and r["attempts"] == 1 and r["final_val_loss"] == rec["final_val_loss"]
        assert r["tokens"] == planned[r["id"]]["tokens"] and r["device"] == "cpu"
        check_curve(study / r["run_dir"], planned[r["id"]]["steps"], 4 * 32)
        assert "ray@" in (study / r["run_dir"] / "train.log").read_text()


def test_ray_unreachable_is_a_user_error(tiny_data, tmp_path):
    study = tmp_path / "STUDY"
    plan(tiny_data, study, "5e9", "64x2")
    p = cli("sweep", str(study), "--backend", "ray", "--address", f"127.0.0.1:{free_port()}", timeout=120)
    assert p.returncode == 2 and "cannot reach a Ray cluster" in p.stderr and "Traceback" not in p.stderr
