"""The sweep loop: claim runs from the store onto devices with room (packing.choose), watch them, record results.

Executors (local subprocesses, Ray tasks) only start and poll commands; all store writes happen here.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scalinglab.errors import Interrupted
from scalinglab.folders import RunDir
from scalinglab.sweep import runs as R
from scalinglab.sweep.packing import Device, choose, run_need
from scalinglab.sweep.store import Store
from scalinglab.train import turns


@dataclass
class Slot:
    """Where one run starts: its worker name, environment and its share of a GPU's compute (0: unsized)."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    share: float = 0.0


class Executor(Protocol):
    devices: list[Device]

    def start(self, run_id: str, argv: list[str], run_dir: Path, slot: Slot) -> int | None: ...  # child pid

    def poll(self) -> list[tuple[str, int | None]]: ...  # finished (run_id, exit code)

    def stop_all(self) -> None: ...


class _Stop(Exception):
    pass


def _on_term(signum: int, frame: Any) -> None:
    # One stop is enough: a second TERM (e.g. from `timeout` to the group) must not interrupt the hand-back.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stop()


def _report(console: Any, rid: str, status: str, rec: dict | None, msg: str, counts: dict[str, int]) -> None:
    rec = rec or {}
    loss = f" val {rec['final_val_loss']:.4f}" if rec.get("final_val_loss") is not None else ""
    took = f" in {rec['wall_time_s']:.1f} s" if rec.get("wall_time_s") else ""
    n = sum(counts.values())
    console.print(
        f"[{counts.get('done', 0)}/{n} done] {status} {rid}{loss}{took}" + (f": {msg}" if msg else ""),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def sweep(
    study_dir: str | Path,
    executor: Executor,
    *,
    retry_failed: bool = False,
    train_cmd: str | None = None,
    console: Any = None,
    live: bool = True,
    poll_s: float = 0.5,
    deadline: float | None = None,
) -> dict[str, int]:
    """Run every pending run of the study; returns the final status counts. A failing run never stops
    the sweep; SIGINT/SIGTERM hands in-flight runs back (they resume from their checkpoints next time), and
    so does reaching `deadline` (a time.time() value), after which it returns normally."""
    from rich.console import Console
    from rich.live import Live

    from scalinglab.sweep.table import live_view, summary

    study_dir = Path(study_dir).resolve()
    st = Store(study_dir)
    st.check_run_dirs()  # a tampered store must not make the sweep write outside the study
    if retry_failed:
        st.retry_failed()
    devices = executor.devices
    busy: list[set[int]] = [set() for _ in devices]  # worker numbers in use on each device
    inflight: dict[str, dict[str, Any]] = {}
    main = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _on_term) if main else None
    console = console or Console(stderr=True)
    # The live table needs a terminal; in logs each finished run is one line instead.
    view = Live(console=console, auto_refresh=False, transient=False) if live and console.is_terminal else None
    last_progress = 0.0

    def record(rid: str, status: str, rec: dict | None, rc: int | None, msg: str) -> None:
        st.finish(rid, status, rec, rc, msg)
        _report(console, rid, status, rec, msg, st.counts())

    def pick(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], str] | None:
        # the longest pending run that fits on a device now (packing.choose), and a free worker number there
        needs = {r["id"]: run_need(r) for r in rows}
        chosen = choose(list(needs.items()), devices)
        if chosen is None:
            return None
        rid, i = chosen
        k = min(set(range(devices[i].max_runs)) - busy[i])
        placed.update(device=i, k=k, need=needs[rid])
        return next(r for r in rows if r["id"] == rid), f"{devices[i].name}.{k}"

    placed: dict[str, Any] = {}
    turn_dir = study_dir / ".turns"

    def hand_back(msg: str) -> None:
        executor.stop_all()
        for rid in inflight:
            st.release(rid, msg)

    try:
        if view:
            view.start()
        while True:
            if deadline is not None and time.time() >= deadline:
                hand_back("stopped at the sweep's deadline; resumes from its checkpoint on the next sweep")
                break
            while True:
                row = st.claim(pick=pick)
                if row is None:
                    break
                run_dir = st.run_path(row)
                RunDir(run_dir).waiting.unlink(missing_ok=True)  # left by a trainer killed while it waited
                adopted = R.prepare(run_dir, json.loads(row["spec"]))
                if adopted:
                    record(row["id"], adopted["status"], adopted, None, "adopted a finished record")
                    continue
                i, k, need = placed["device"], placed["k"], placed["need"]
                dev = devices[i]
                slot = Slot(row["worker"], dict(dev.env), need.share)
                if dev.takes_turns(need):  # compiled runs on this GPU train one at a time (train/turns.py)
                    turn_dir.mkdir(exist_ok=True)
                    slot.env[turns.ENV] = str(turn_dir / f"{dev.name}.lock")
                try:
                    pid = executor.start(row["id"], R.train_argv(run_dir, train_cmd), run_dir, slot)
                except OSError as e:  # cannot even launch (bad train command, disk full): this run fails
                    record(row["id"], "failed", None, None, f"could not start the trainer: {e}")
                    continue
                dev.add(need)
                busy[i].add(k)
                st.set_child(row["id"], pid)
                inflight[row["id"]] = {**row, "device": i, "k": k, "need": need, "run_path": run_dir}
            if not inflight:
                break
            for rid, rc in executor.poll():
                info = inflight.pop(rid)
                devices[info["device"]].remove(info["need"])
                busy[info["device"]].discard(info["k"])
                status, rec, msg = R.result(info["run_path"], rc, R.log_tail(info["run_path"]))
                record(rid, status, rec, rc, msg)
                last_progress = 0.0  # redraw now
            now = time.time()
            if now - last_progress > 2.0:
                last_progress = now
                for rid, info in inflight.items():
                    m = R.tail_metrics(info["run_path"])
                    step = m.get("step")
                    eta = None
                    if step and m.get("time_s"):
                        eta = m["time_s"] / step * max(0, info["steps"] - step)
                    st.progress(rid, step, m.get("train_loss"), m.get("val_loss"), eta)
                if view:
                    waiting = frozenset(r for r, i in inflight.items() if RunDir(i["run_path"]).waiting.exists())
                    view.update(live_view(st.runs(), st.counts(), waiting), refresh=True)
            time.sleep(poll_s)
    except (KeyboardInterrupt, _Stop) as e:
        n = len(inflight)
        hand_back("interrupted; resumes from its checkpoint on the next sweep")
        signum = signal.SIGTERM if isinstance(e, _Stop) else signal.SIGINT
        raise Interrupted(
            f"interrupted: {n} run(s) in flight stopped and handed back; "
            f"rerun `scalinglab sweep {study_dir}` to resume them",
            signum,
        ) from None
    except BaseException:
        # A store error (disk full) or a bug: stop the trainers rather than leave them running without a sweep,
        # and keep the first error (the hand-back may fail the same way).
        with contextlib.suppress(Exception):
            executor.stop_all()
        for rid in inflight:
            with contextlib.suppress(Exception):
                st.release(rid, "the sweep stopped on an error; resumes from its checkpoint on the next sweep")
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, old_term)
        counts = {}
        with contextlib.suppress(Exception):  # never hide the error that ended the sweep
            counts = st.counts()
            if view:
                view.update(live_view(st.runs(), counts), refresh=True)
            elif console is not None and live:
                console.print(summary(counts))
        if view:
            view.stop()
        st.close()
    return counts
