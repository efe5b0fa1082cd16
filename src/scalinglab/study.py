"""Creating a study folder (StudyDir: plan settings, run store, one run folder with its spec per planned run).

Created whole in a temp folder and renamed into place, so a failed plan leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from scalinglab.errors import ConfigError, FolderError
from scalinglab.folders import StudyDir
from scalinglab.sweep.store import Store


def create_study(out: str | os.PathLike, plan: Any, settings: dict[str, Any]) -> Path:
    """Write an IsoflopPlan as a study folder at `out` (which must not exist or be empty)."""
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a study" if StudyDir(out).is_study() else "not empty"
        raise FolderError(f"{out} already exists and is {what}", hint="choose a new folder or delete it first", keys=("out",))
    if not plan.runs:
        from scalinglab.plan.isoflop import drop_summary

        raise ConfigError(f"no runs left to plan: all {len(plan.dropped)} were dropped ({drop_summary(plan.dropped)})",
                          hint="raise the budgets, lower the minimum steps or the batch size, or use more data",
                          keys=("min_steps", "batch_size"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        doc = {"study": {**settings, "kind": "isoflop", "n_runs": len(plan.runs), "n_dropped": len(plan.dropped)},
               "law": [{k: v for k, v in row.items() if v is not None} for row in plan.law_report],
               "dropped": [d.to_dict() for d in plan.dropped]}
        rows = []
        folder = StudyDir(tmp)
        for pr in plan.runs:
            s = pr.spec
            rel = folder.run_rel(s.run_id)
            folder.run(rel).write_spec(s)
            rows.append({"id": s.run_id, "spec": s.to_dict(), "budget": pr.budget, "arch": s.shape.arch,
                         "d_model": s.shape.d_model, "n_layers": s.shape.n_layers, "n_heads": s.shape.n_heads,
                         "params": pr.params, "planned_tokens": pr.tokens, "steps": s.steps, "run_dir": rel})
        with Store(tmp, create=True) as st:
            st.add_runs(rows)
        folder.write_settings(doc)
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_study_toml(study_dir: str | os.PathLike) -> dict[str, Any]:
    """The study's plan settings (StudyDir.settings)."""
    return StudyDir(study_dir).settings()
