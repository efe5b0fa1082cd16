"""The study store: WAL mode, atomic claims across processes, reclaiming runs of a dead sweep, the frame contract."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from scalinglab.accounting.shape import ModelShape
from scalinglab.plan.isoflop import plan_isoflop
from scalinglab.study import create_study
from scalinglab.sweep.store import Store, is_study, load_runs_frame


@pytest.fixture()
def study(tmp_path):
    shapes = [ModelShape(d, 2, 262, 32) for d in (32, 48, 64, 80)]
    plan = plan_isoflop([1e10, 3e10, 1e11], shapes, data="D", train_tokens=10**9, batch_size=4, min_steps=1)
    return create_study(tmp_path / "STUDY", plan, {"data": "D"})


def test_wal_and_layout(study):
    assert is_study(study) and not is_study(study / "runs")
    con = sqlite3.connect(study / "study.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*) FROM runs WHERE status='pending'").fetchone()[0] == 12


CLAIMER = """
import sys
from scalinglab.sweep.store import Store
st = Store(sys.argv[1])
while (r := st.claim(worker="w")) is not None:
    print(r["id"], flush=True)
    st.finish(r["id"], "done", {"final_val_loss": 1.0}, 0)
"""


def test_concurrent_claims_never_double_run(study):
    procs = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, str(study)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    ids = [ln for p in procs for ln in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 12
    st = Store(study)
    assert st.counts() == {"done": 12} and {r["attempts"] for r in st.runs()} == {1}


def test_runs_of_a_dead_sweep_are_reclaimed_live_ones_are_not(study):
    st = Store(study)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    b = st.claim()  # owned by this process: alive
    a = st.claim(owner_pid=dead.pid)  # owned by a sweep that has since died (SIGKILL)
    assert a["attempts"] == 1 and b["id"] != a["id"]
    again = st.claim()
    assert again["id"] == a["id"] and again["attempts"] == 2  # orphaned runs go first
    # a trainer that outlived its sweep keeps its run until it exits
    c = st.claim(owner_pid=dead.pid)
    st.set_child(c["id"], os.getpid())
    ids = set()
    while (r := st.claim()) is not None:
        ids.add(r["id"])
    assert not ids & {a["id"], b["id"], c["id"]} and len(ids) == 9
    st.release(b["id"])
    assert st.counts() == {"running": 11, "pending": 1}


def test_retry_failed_and_frame(study):
    st = Store(study)
    r = st.claim()
    st.finish(r["id"], "failed", None, 1, "exit code 1: boom")
    r2 = st.claim()
    st.finish(
        r2["id"],
        "done",
        {"final_val_loss": 2.5, "min_val_loss": 2.4, "tokens": 1234, "flops": 5e9, "wall_time_s": 3.0, "device": "cpu"},
        0,
    )
    df = load_runs_frame(study)
    for col in (
        "run_id",
        "status",
        "arch",
        "d_model",
        "n_layers",
        "params",
        "tokens",
        "budget",
        "flops",
        "final_val_loss",
        "min_val_loss",
        "run_dir",
    ):
        assert col in df.columns
    row = df.set_index("run_id").loc[r2["id"]]
    assert row.tokens == 1234 and row.final_val_loss == 2.5 and row.flops == 5e9 and row.status == "done"
    pending = df[df.status == "pending"].iloc[0]
    assert pending.tokens == st.runs()[2]["planned_tokens"] and pending.budget in (1e10, 3e10, 1e11)
    assert df.set_index("run_id").loc[r["id"]].status == "failed"
    assert st.retry_failed() == 1 and st.counts() == {"pending": 11, "done": 1}
