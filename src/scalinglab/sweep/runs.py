"""One run of a study as a subprocess: the train command line, run-folder hygiene, reading its result.

Shared by the local and Ray executors; reads and writes run folders through RunDir and knows nothing about
scheduling.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scalinglab.folders import RunDir
from scalinglab.records import RunSpec

TRAIN_CMD_ENV = "SCALINGLAB_TRAIN_CMD"  # e.g. "python fake_train.py": replaces `python -m scalinglab train`


def base_train_cmd(train_cmd: str | None = None) -> list[str]:
    text = train_cmd or os.environ.get(TRAIN_CMD_ENV, "")
    return shlex.split(text) if text else [sys.executable, "-m", "scalinglab", "train"]


def train_argv(run_dir: Path, train_cmd: str | None = None) -> list[str]:
    """Resume from the checkpoint when there is one, else start from the spec."""
    base, run = base_train_cmd(train_cmd), RunDir(run_dir)
    if run.has_checkpoint():
        return [*base, "--resume", str(run_dir), "--json"]
    return [*base, "--config", str(run.config), "--out", str(run_dir), "--json"]


def start_trainer(argv: list[str], run_dir: Path, env: dict[str, str], where: str, **popen_kw: Any) -> subprocess.Popen:
    """Start the trainer with its output appended to the run's log, after a header line saying when and where."""
    with open(RunDir(run_dir).log, "ab") as log:
        log.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} {where}: {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, **popen_kw
        )


def read_record(run_dir: Path) -> dict[str, Any] | None:
    return RunDir(run_dir).read_record_dict()


def prepare(run_dir: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    """Get RUN/ ready for an attempt. Returns a finished record to adopt instead of training (a trainer
    that outlived its sweep and finished), else None."""
    run = RunDir(run_dir)
    rec = run.read_record_dict()
    if rec and rec.get("status") in ("done", "diverged"):
        return rec
    if not run.has_config():
        run.write_spec(RunSpec.from_dict(spec))
    if not run.has_checkpoint():
        # A fresh start: a curve or record left by an attempt that died before its first checkpoint
        # would otherwise be mixed into the new one.
        run.clear_attempt()
    return None


def result(run_dir: Path, rc: int | None, log_tail: str = "") -> tuple[str, dict[str, Any] | None, str]:
    """(status, record, message) from the trainer's exit code and the run's record."""
    rec = read_record(run_dir)
    last = next((ln for ln in reversed(log_tail.strip().splitlines()) if ln.strip()), "")
    if rc == 0 and rec and rec.get("status") == "done":
        return "done", rec, ""
    if rc == 3 or (rec and rec.get("status") == "diverged"):
        return "diverged", rec, (rec or {}).get("message", "") or "loss diverged"
    if rc == 0:
        return "failed", rec, "trainer exited 0 without a done run record"
    if rc in (130, 143) and rec and rec.get("status") == "pending":
        # stopped by SIGINT/SIGTERM after writing a checkpoint (a preempted machine): it resumes, not a failure
        return "pending", rec, rec.get("message", "") or "stopped by a signal; resumes from its checkpoint"
    why = f"killed by signal {-rc}" if rc is not None and rc < 0 else f"exit code {rc}"
    msg = (rec or {}).get("message") or last
    return "failed", rec, f"{why}: {msg}"[:500] if msg else why


def _read_tail(path: Path, n: int) -> str | None:
    """The last n bytes of a file as text; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def log_tail(run_dir: Path, n: int = 4000) -> str:
    return _read_tail(RunDir(run_dir).log, n) or ""


def tail_metrics(run_dir: Path, n: int = 8192) -> dict[str, Any]:
    """The last training line of the run's metrics and the last val_loss seen near the end."""
    out: dict[str, Any] = {}
    text = _read_tail(RunDir(run_dir).metrics, n)
    if text is None:
        return out
    for ln in text.splitlines():
        try:
            d = json.loads(ln)
        except ValueError:
            continue  # a partial first line or one being written
        if "val_loss" in d:
            out["val_loss"] = d["val_loss"]
        out.update({k: d[k] for k in ("step", "train_loss", "time_s") if k in d})
    return out
