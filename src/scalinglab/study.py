"""Creating a study folder (StudyDir: plan settings, run store, one run folder with its spec per planned run).

Created whole in a temp folder and renamed into place (fileio.staged_dir), so a failed plan leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from scalinglab.errors import ConfigError, FolderError
from scalinglab.fileio import staged_dir
from scalinglab.folders import StudyDir
from scalinglab.sweep.store import Store


def create_study(out: str | os.PathLike, plan: Any, settings: dict[str, Any]) -> Path:
    """Write an IsoflopPlan as a study folder at `out` (which must not exist or be empty)."""
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a study" if StudyDir(out).is_study() else "not empty"
        raise FolderError(
            f"{out} already exists and is {what}", hint="choose a new folder or delete it first", keys=("out",)
        )
    if not plan.runs:
        from scalinglab.plan.isoflop import drop_summary

        raise ConfigError(
            f"no runs left to plan: all {len(plan.dropped)} were dropped ({drop_summary(plan.dropped)})",
            hint="raise the budgets, lower the minimum steps or the batch size, or use more data",
            keys=("min_steps", "max_epochs", "batch_size"),
        )
    with staged_dir(out, "plan") as tmp:
        doc = {
            "study": {"kind": "isoflop", **settings, "n_runs": len(plan.runs), "n_dropped": len(plan.dropped)},
            "law": [{k: v for k, v in row.items() if v is not None} for row in plan.law_report],
            "dropped": [d.to_dict() for d in plan.dropped],
        }
        folder = StudyDir(tmp)
        rows = _write_runs(folder, plan.runs)
        with Store(tmp, create=True) as st:
            st.add_runs(rows)
        folder.write_settings(doc)
    return out


def _write_runs(folder: StudyDir, runs: list[Any]) -> list[dict[str, Any]]:
    """Each planned run's spec in its run folder, and its store row."""
    rows = []
    for pr in runs:
        s = pr.spec
        rel = folder.run_rel(s.run_id)
        folder.run(rel).write_spec(s)
        rows.append(
            {
                "id": s.run_id,
                "spec": s.to_dict(),
                "budget": pr.budget,
                "arch": s.shape.arch,
                "d_model": s.shape.d_model,
                "n_layers": s.shape.n_layers,
                "n_heads": s.shape.n_heads,
                "params": pr.params,
                "planned_tokens": pr.tokens,
                "steps": s.steps,
                "run_dir": rel,
            }
        )
    return rows


def extend_study(study_dir: str | os.PathLike, plan: Any, note: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """Add a plan's runs to an existing study: new run folders, new store rows after the old ones, the settings
    updated (budgets, law report, dropped, an `extensions` entry). Runs whose id is already stored are skipped
    and nothing of them is touched. Returns (added runs, skipped ids)."""
    folder = StudyDir(Path(study_dir).resolve())
    doc = folder.settings()
    with Store(folder.path) as st:
        have = {r["id"] for r in st.runs()}
    new = [r for r in plan.runs if r.spec.run_id not in have]
    skipped = [r.spec.run_id for r in plan.runs if r.spec.run_id in have]
    for r in new:  # a folder left by an extension that failed before its store rows: only a bare spec may be there
        run = folder.run(folder.run_rel(r.spec.run_id))
        if run.is_run() or run.metrics.exists():
            raise FolderError(
                f"{run.path} holds training output but is not in the study's store",
                hint="move that folder away and extend again",
            )
    if not new:
        return [], skipped
    rows = _write_runs(folder, new)
    with Store(folder.path) as st:
        st.add_runs(rows)
    s = doc.setdefault("study", {})
    s["budgets"] = sorted(set(s.get("budgets", [])) | set(plan.budgets))
    s["n_runs"] = int(s.get("n_runs", 0)) + len(new)
    s["n_dropped"] = int(s.get("n_dropped", 0)) + len(plan.dropped)
    law = {row.get("budget"): row for row in doc.get("law", [])}
    for row in plan.law_report:
        law[row["budget"]] = {k: v for k, v in row.items() if v is not None}
    doc["law"] = [law[c] for c in sorted(law)]
    doc["dropped"] = list(doc.get("dropped", [])) + [d.to_dict() for d in plan.dropped]
    doc["extensions"] = list(doc.get("extensions", [])) + [{**note, "runs": [r.spec.run_id for r in new]}]
    folder.write_settings(doc)
    return new, skipped


def load_study_toml(study_dir: str | os.PathLike) -> dict[str, Any]:
    """The study's plan settings (StudyDir.settings)."""
    return StudyDir(study_dir).settings()
