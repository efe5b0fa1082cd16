"""A study folder: STUDY/study.toml (plan settings), STUDY/study.db (run store), STUDY/runs/<id>/config.toml.

Created whole in a temp folder and renamed into place (fileio.staged_dir), so a failed plan leaves nothing behind.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.fileio import atomic_write_text, staged_dir
from scalinglab.sweep.store import DB, RUNS, TOML, Store, is_study


def create_study(out: str | os.PathLike, plan: Any, settings: dict[str, Any]) -> Path:
    """Write an IsoflopPlan as a study folder at `out` (which must not exist or be empty)."""
    import tomli_w

    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a study" if is_study(out) else "not empty"
        raise UserError(f"{out} already exists and is {what}; choose a new --out or delete it first")
    if not plan.runs:
        from scalinglab.plan.isoflop import drop_summary

        raise UserError(f"no runs left to plan: all {len(plan.dropped)} were dropped ({drop_summary(plan.dropped)}); "
                        "raise the budgets, lower --min-steps or --batch-size, or use more data")
    with staged_dir(out, "plan") as tmp:
        doc = {"study": {**settings, "kind": "isoflop", "n_runs": len(plan.runs), "n_dropped": len(plan.dropped)},
               "law": [{k: v for k, v in row.items() if v is not None} for row in plan.law_report],
               "dropped": [d.to_dict() for d in plan.dropped]}
        rows = []
        for pr in plan.runs:
            s = pr.spec
            rel = f"{RUNS}/{s.run_id}"
            atomic_write_text(tmp / rel / "config.toml", s.to_toml())
            rows.append({"id": s.run_id, "spec": s.to_dict(), "budget": pr.budget, "arch": s.shape.arch,
                         "d_model": s.shape.d_model, "n_layers": s.shape.n_layers, "n_heads": s.shape.n_heads,
                         "params": pr.params, "planned_tokens": pr.tokens, "steps": s.steps, "run_dir": rel})
        with Store(tmp, create=True) as st:
            st.add_runs(rows)
        atomic_write_text(tmp / TOML, tomli_w.dumps(doc))
    return out


def load_study_toml(study_dir: str | os.PathLike) -> dict[str, Any]:
    p = Path(study_dir) / TOML
    if not is_study(study_dir):
        raise UserError(f"{study_dir} is not a study (no {TOML} / {DB}); create one with `scalinglab plan isoflop --out {study_dir}`")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{p} is not valid TOML ({e}); fix it or re-plan the study") from None
