"""Rich tables of a study's runs: the live sweep view (running runs) and `scalinglab status` (all runs)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from scalinglab.fmt import si
from scalinglab.plan.isoflop import fmt_budget

STYLE = {
    "done": "green",
    "running": "cyan",
    "waiting": "dim cyan",
    "failed": "red",
    "diverged": "yellow",
    "pending": "dim",
    "interrupted": "magenta",
    "stale": "magenta",
}


def make_console(stderr: bool = False) -> Console:
    """A terminal's own width; logs and pipes get wide lines rather than cut-off run names and losses."""
    con = Console(stderr=stderr)
    return con if con.is_terminal else Console(stderr=stderr, width=160)


def _f(x: Any, fmt: str = "{:.4f}") -> str:
    return "" if x is None else fmt.format(x)


def human(n: float | None) -> str:
    """34880 -> '34.9k', 2.02e8 -> '202M' (scalinglab.fmt.si)."""
    return si(n)


def _steps(n: int | None) -> str:
    return "" if n is None else (str(n) if n < 10_000 else si(n))


def _eta(s: float | None) -> str:
    if s is None:
        return ""
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def summary(counts: dict[str, int]) -> Text:
    total = sum(counts.values())
    parts = [
        f"{counts.get(k, 0)} {k}"
        for k in ("running", "waiting", "interrupted", "stale", "pending", "failed", "diverged")
        if counts.get(k)
    ]
    return Text(f"{counts.get('done', 0)}/{total} done" + (" | " + ", ".join(parts) if parts else ""), style="bold")


def runs_table(rows: list[dict[str, Any]], title: str = "", waiting: frozenset[str] = frozenset()) -> Table:
    """Fits 80 columns: numbers are SI-abbreviated and never cut; only a long run id wraps onto a second line.
    `waiting`: ids of running runs whose trainer waits for its GPU's turn (shown as "waiting")."""
    t = Table(title=title or None, show_edge=False, header_style="bold", pad_edge=False)
    # planned run ids already say their budget (C1e15_256x4): the C column only for others (WSD trunks)
    with_c = not all(r.get("budget") and r["id"].startswith(f"C{fmt_budget(r['budget'])}_") for r in rows)
    cols = ("run", "C", "N", "status", "step", "train", "val", "ETA", "device")
    for col in cols if with_c else [c for c in cols if c != "C"]:
        t.add_column(
            col,
            justify="left" if col in ("run", "status", "device") else "right",
            overflow="fold",
            no_wrap=col != "run",
            min_width=len(col),
        )
    for r in rows:
        st = r["status"]
        shown = "waiting" if st == "running" and r["id"] in waiting else st
        done = st in ("done", "diverged")
        val = r.get("final_val_loss") if done else r.get("last_val_loss")
        step = (
            f"{_steps(r.get('last_step') or 0)}/{_steps(r['steps'])}"
            if st in ("running", "interrupted", "stale")
            else (_steps(r["steps"]) if done else "")
        )
        t.add_row(
            r["id"],
            *([fmt_budget(r["budget"]) if r.get("budget") else ""] if with_c else []),
            human(r["params"]),
            Text(shown, style=STYLE.get(shown, "")),
            step,
            _f(r.get("final_train_loss") if done else r.get("last_train_loss")),
            _f(val),
            _eta(r.get("eta_s")) if st == "running" else "",
            r.get("device") or r.get("worker") or "",
        )
    return t


def _split_waiting(rows: list[dict[str, Any]], counts: dict[str, int], waiting: frozenset[str]) -> dict[str, int]:
    n = sum(1 for r in rows if r["status"] == "running" and r["id"] in waiting)
    return {**counts, "running": counts.get("running", 0) - n, "waiting": n} if n else counts


def live_view(rows: list[dict[str, Any]], counts: dict[str, int], waiting: frozenset[str] = frozenset()) -> Group:
    running = [r for r in rows if r["status"] == "running"]
    table = runs_table(running, waiting=waiting) if running else Text("no runs in flight")
    return Group(summary(_split_waiting(rows, counts, waiting)), table)


def status_view(rows: list[dict[str, Any]], counts: dict[str, int], waiting: frozenset[str] = frozenset()) -> Group:
    return Group(summary(_split_waiting(rows, counts, waiting)), runs_table(rows, waiting=waiting))
