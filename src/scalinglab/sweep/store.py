"""The study store: StudyDir.store (SQLite, WAL), one row per planned run with its status and results.

Claims are atomic (BEGIN IMMEDIATE), so several sweep processes and a killed one never double-run a run.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.errors import FolderError
from scalinglab.folders import RunDir, StudyDir

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    spec TEXT NOT NULL,
    budget REAL, arch TEXT, d_model INTEGER, n_layers INTEGER, n_heads INTEGER,
    params INTEGER, planned_tokens INTEGER, steps INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    owner_host TEXT, owner_pid INTEGER, owner_start TEXT, child_pid INTEGER, child_start TEXT,
    worker TEXT, started_at REAL, finished_at REAL, updated_at REAL,
    last_step INTEGER, last_train_loss REAL, last_val_loss REAL, eta_s REAL,
    final_val_loss REAL, min_val_loss REAL, final_train_loss REAL,
    tokens INTEGER, flops REAL, wall_time_s REAL, device TEXT, exit_code INTEGER, message TEXT,
    run_dir TEXT NOT NULL
);
"""

FRAME_COLUMNS = [
    "run_id",
    "status",
    "arch",
    "d_model",
    "n_layers",
    "n_heads",
    "params",
    "tokens",
    "budget",
    "flops",
    "final_val_loss",
    "min_val_loss",
    "final_train_loss",
    "planned_tokens",
    "steps",
    "attempts",
    "wall_time_s",
    "device",
    "run_dir",
]
CSV_COLUMNS = tuple(c for c in FRAME_COLUMNS if c != "run_dir")  # `status --csv`: the table less the run folder


def is_study(path: str | os.PathLike) -> bool:
    return StudyDir(path).is_study()


def proc_start(pid: int) -> str:
    """Start time of a process (clock ticks since boot), to tell a live owner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def pid_alive(pid: int | None, start: str | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False  # a zombie has finished; its parent just has not reaped it
    except (OSError, IndexError):
        return Path("/proc/self").exists() is False  # no procfs: trust kill(0)
    return not start or proc_start(pid) == start


HOST = socket.gethostname()
STALE_S = 600  # a 'running' row of another machine not updated for this long is shown as stale


class StoreError(FolderError):
    """A write to the study store failed (disk full, read-only, locked): the first SQLite error, kept."""

    def __init__(self, path: Path, err: sqlite3.Error | str):
        self.path, self.err = path, str(err)
        msg = str(err)
        fix = (
            "free some disk space"
            if "full" in msg
            else "make the study folder writable"
            if "readonly" in msg or "read-only" in msg
            else "check the disk and that no other program holds the file"
        )
        super().__init__(f"the study store {path} failed: {msg}", hint=f"{fix}, then rerun the command (runs resume)")

    def __reduce__(self):
        return (self.__class__, (self.path, self.err))


class Store:
    """One connection to the study's SQLite store. Every write is a short transaction."""

    def __init__(self, study_dir: str | os.PathLike, create: bool = False, readonly: bool = False):
        """readonly=True for commands that only read (status, fit, report): they never write to the file,
        not even the header SQLite would put into an empty one."""
        self.dir = Path(study_dir)
        path = StudyDir(self.dir).store
        if not create and not path.is_file():
            raise FolderError(
                f"{self.dir} is not a study (no {path.name})", hint="plan one first (`scalinglab plan isoflop`)"
            )
        if not create and path.stat().st_size == 0:
            raise FolderError(f"{path} is empty (0 bytes)", hint="restore it from a backup or re-plan the study")
        try:
            if readonly:
                self.con = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60, isolation_level=None
                )
            else:
                self.con = sqlite3.connect(path, timeout=60, isolation_level=None)
        except sqlite3.Error as e:
            raise FolderError(f"{path} cannot be opened ({e})", hint="check the folder's permissions") from None
        self.con.row_factory = sqlite3.Row
        try:
            if not readonly:
                self.con.execute("PRAGMA journal_mode=WAL")
                self.con.execute("PRAGMA synchronous=NORMAL")
            self.con.execute("PRAGMA busy_timeout=60000")
            if create:
                self.con.executescript(SCHEMA)
            self.con.execute("SELECT id, status FROM runs LIMIT 1")
        except sqlite3.DatabaseError as e:
            self.con.close()
            raise FolderError(
                f"{path} is not a readable study database ({e})", hint="restore it or re-plan the study"
            ) from None

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. A failed statement or COMMIT ("database or disk is full") may already
        have ended it: roll back only if one is still open, so the first error is the one reported."""
        try:
            self.con.execute("BEGIN IMMEDIATE")
            try:
                yield self.con
                self.con.execute("COMMIT")
            except BaseException:
                if self.con.in_transaction:
                    try:
                        self.con.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise
        except sqlite3.OperationalError as e:
            raise StoreError(StudyDir(self.dir).store, e) from None

    def add_runs(self, rows: list[dict[str, Any]]) -> None:
        """Append runs after the ones already stored (a study extended later keeps its first runs' order)."""
        with self.tx() as c:
            start = c.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM runs").fetchone()[0]
            for i, r in enumerate(rows, start):
                c.execute(
                    "INSERT INTO runs (id, idx, spec, budget, arch, d_model, n_layers, n_heads, params, planned_tokens,"
                    " steps, run_dir, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        r["id"],
                        i,
                        json.dumps(r["spec"]),
                        r["budget"],
                        r["arch"],
                        r["d_model"],
                        r["n_layers"],
                        r["n_heads"],
                        r["params"],
                        r["planned_tokens"],
                        r["steps"],
                        r["run_dir"],
                        time.time(),
                    ),
                )

    def runs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.con.execute("SELECT * FROM runs ORDER BY idx")]

    def run_path(self, row: dict[str, Any]) -> Path:
        """A run's folder, refused unless it lies inside the study folder (StudyDir.run)."""
        return StudyDir(self.dir).run(row["run_dir"]).path

    def check_run_dirs(self) -> None:
        for r in self.con.execute("SELECT id, run_dir FROM runs"):
            self.run_path(dict(r))

    def shown_status(self, r: dict[str, Any]) -> str:
        """The status to show: a 'running' row whose sweep and trainer are gone is 'interrupted' (this machine)
        or, on another machine, 'stale' when not updated for STALE_S seconds."""
        if r["status"] != "running":
            return r["status"]
        if r.get("owner_host") == HOST:
            return "interrupted" if self._orphaned(r) else "running"
        return "stale" if r.get("updated_at") and time.time() - r["updated_at"] > STALE_S else "running"

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")}

    def _orphaned(self, r: sqlite3.Row | dict[str, Any]) -> bool:
        """A 'running' row whose sweep and trainer are both gone (killed, crashed, machine rebooted)."""
        if r["owner_host"] != HOST:
            return False  # another machine's processes cannot be checked from here
        return not pid_alive(r["owner_pid"], r["owner_start"]) and not pid_alive(r["child_pid"], r["child_start"])

    def claim(
        self,
        worker: str = "",
        owner_pid: int | None = None,
        pick: Callable[[list[dict[str, Any]]], tuple[dict[str, Any], str] | None] | None = None,
    ) -> dict[str, Any] | None:
        """Atomically take a pending (or orphaned running) run: status -> running, attempts += 1. Without `pick`,
        the first in plan order (orphans first); pick(candidates) -> (row, worker) or None chooses instead."""
        pid = owner_pid or os.getpid()
        with self.tx() as c:
            rows = [
                dict(r)
                for r in c.execute(
                    "SELECT * FROM runs WHERE status IN ('pending', 'running') ORDER BY status = 'running' DESC, idx"
                ).fetchall()
            ]
            rows = [r for r in rows if r["status"] == "pending" or self._orphaned(r)]
            if not rows:
                return None
            if pick is None:
                r = rows[0]
            else:
                chosen = pick(rows)
                if chosen is None:
                    return None
                r, worker = chosen
            now = time.time()
            c.execute(
                "UPDATE runs SET status='running', attempts=attempts+1, owner_host=?, owner_pid=?,"
                " owner_start=?, child_pid=NULL, child_start=NULL, worker=?, started_at=?, updated_at=?,"
                " message='' WHERE id=?",
                (HOST, pid, proc_start(pid), worker, now, now, r["id"]),
            )
            return dict(c.execute("SELECT * FROM runs WHERE id=?", (r["id"],)).fetchone())

    def set_child(self, run_id: str, pid: int | None) -> None:
        with self.tx() as c:
            c.execute(
                "UPDATE runs SET child_pid=?, child_start=?, updated_at=? WHERE id=?",
                (pid, proc_start(pid) if pid else None, time.time(), run_id),
            )

    def progress(
        self, run_id: str, step: int | None, train_loss: float | None, val_loss: float | None, eta_s: float | None
    ) -> None:
        with self.tx() as c:
            c.execute(
                "UPDATE runs SET last_step=?, last_train_loss=?, last_val_loss=COALESCE(?, last_val_loss),"
                " eta_s=?, updated_at=? WHERE id=? AND status='running'",
                (step, train_loss, val_loss, eta_s, time.time(), run_id),
            )

    def finish(
        self, run_id: str, status: str, record: dict[str, Any] | None, exit_code: int | None, message: str = ""
    ) -> None:
        rec = record or {}
        with self.tx() as c:
            c.execute(
                "UPDATE runs SET status=?, final_val_loss=?, min_val_loss=?, final_train_loss=?, tokens=?, flops=?,"
                " wall_time_s=?, device=COALESCE(?, device), exit_code=?, message=?, finished_at=?, updated_at=?,"
                " eta_s=NULL, child_pid=NULL WHERE id=?",
                (
                    status,
                    rec.get("final_val_loss"),
                    rec.get("min_val_loss"),
                    rec.get("final_train_loss"),
                    rec.get("tokens"),
                    rec.get("flops"),
                    rec.get("wall_time_s"),
                    rec.get("device") or None,
                    exit_code,
                    message or rec.get("message", ""),
                    time.time(),
                    time.time(),
                    run_id,
                ),
            )

    def release(self, run_id: str, message: str = "interrupted") -> None:
        """Hand a run back (sweep stopped on purpose): it resumes from its checkpoint next time."""
        with self.tx() as c:
            c.execute(
                "UPDATE runs SET status='pending', child_pid=NULL, eta_s=NULL, message=?, updated_at=?"
                " WHERE id=? AND status='running'",
                (message, time.time(), run_id),
            )

    def retry_failed(self) -> int:
        with self.tx() as c:
            return c.execute("UPDATE runs SET status='pending', message='retry' WHERE status='failed'").rowcount


def branch_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Frame rows for a WSD run's finished cooldown branches other than its own end: the same run otherwise,
    with tokens D_i, budget C_i, flops = the point's C and its val loss."""
    out = []
    for b in RunDir(row.get("run_dir") or ".").read_branches():
        if b.get("end") or b.get("val_loss") is None:
            continue
        out.append(
            {
                **row,
                "run_id": f"{row['run_id']}@{b['tokens']}",
                "status": "done",
                "tokens": b["tokens"],
                "planned_tokens": b["tokens"],
                "steps": b["steps"],
                "budget": b.get("budget"),
                "flops": b["flops_at_point"],
                "final_val_loss": b["val_loss"],
                "min_val_loss": b["val_loss"],
                "final_train_loss": b.get("train_loss"),
            }
        )
    return out


def load_runs_frame(study_dir: str | os.PathLike):
    """One row per run: run_id, status, arch, d_model, n_layers, params (N), tokens (D: trained, else
    planned), budget (planned C), flops (spent C), final/min val loss, run_dir (absolute), ...
    plus one row per cooldown branch of a WSD run (run_id RUN_ID@TOKENS; RunDir.read_branches)."""
    import pandas as pd

    with Store(study_dir, readonly=True) as st:
        rows = st.runs()
        paths = [st.run_path(r) for r in rows]
    out = []
    for r, path in zip(rows, paths):
        d = {k: r.get(k) for k in FRAME_COLUMNS if k in r}
        d["run_id"] = r["id"]
        d["tokens"] = r["tokens"] if r["tokens"] is not None else r["planned_tokens"]
        d["run_dir"] = str(path)
        out.append(d)
        out.extend(branch_rows(d))  # a WSD run's cooldown branches are points of their own
    return pd.DataFrame(out, columns=FRAME_COLUMNS)


def load_runs(study_dir: str | os.PathLike):
    """The study's runs as the analysis layer's table (scalinglab.analysis.Runs): N = params, D = tokens,
    C = flops spent (planned budget while not done), budget, final val loss, status; each done run's loss curve
    from its metric lines (val_loss points if 3 or more, else train_loss)."""
    from scalinglab.analysis.runs import Columns, Curve, Runs

    p = Path(study_dir)
    df = load_runs_frame(p)
    curves: dict[str, Curve] = {}
    for rid, run_dir, status in zip(df["run_id"], df["run_dir"], df["status"]):
        if status != "done":
            continue
        rows = RunDir(run_dir).read_metrics()
        val = [(m.get("flops"), m["val_loss"]) for m in rows if m.get("val_loss") is not None]
        pts = (
            val
            if len(val) >= 3
            else [
                (m.get("flops"), m["train_loss"])
                for m in rows
                if m.get("val_loss") is None and m.get("train_loss") is not None
            ]
        )
        c, l = (np.array([x[i] for x in pts], float) if pts else np.array([]) for i in (0, 1))
        ok = np.isfinite(c) & np.isfinite(l) & (c > 0) & (l > 0)
        if ok.sum() >= 2:
            order = np.argsort(c[ok], kind="stable")
            curves[str(rid)] = Curve(c[ok][order], l[ok][order])
    cols = Columns(n="params", d="tokens", c="flops", loss="final_val_loss", budget="budget", run="run_id")
    runs = Runs.from_frame(df, f"study {p}", cols, curves=curves, is_study=True)
    return runs.with_notes(f"loss curves of {len(curves)} runs from study {p}" if curves else "")
