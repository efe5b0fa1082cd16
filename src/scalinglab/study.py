"""A study folder: STUDY/study.toml (plan settings), STUDY/study.db (run store), STUDY/runs/<id>/config.toml.

Created whole in a temp folder and renamed into place, so a failed plan leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.fileio import atomic_write_text
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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        doc = {"study": {"kind": "isoflop", **settings, "n_runs": len(plan.runs), "n_dropped": len(plan.dropped)},
               "law": [{k: v for k, v in row.items() if v is not None} for row in plan.law_report],
               "dropped": [d.to_dict() for d in plan.dropped]}
        rows = _write_runs(tmp, plan.runs)
        with Store(tmp, create=True) as st:
            st.add_runs(rows)
        atomic_write_text(tmp / TOML, tomli_w.dumps(doc))
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_runs(root: Path, runs: list[Any]) -> list[dict[str, Any]]:
    """Each planned run's RUN/config.toml under root, and its store row."""
    rows = []
    for pr in runs:
        s = pr.spec
        rel = f"{RUNS}/{s.run_id}"
        atomic_write_text(root / rel / "config.toml", s.to_toml())
        rows.append({"id": s.run_id, "spec": s.to_dict(), "budget": pr.budget, "arch": s.shape.arch,
                     "d_model": s.shape.d_model, "n_layers": s.shape.n_layers, "n_heads": s.shape.n_heads,
                     "params": pr.params, "planned_tokens": pr.tokens, "steps": s.steps, "run_dir": rel})
    return rows


def extend_study(study_dir: str | os.PathLike, plan: Any, note: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """Add a plan's runs to an existing study: new run folders, new store rows after the old ones, study.toml
    updated (budgets, law report, dropped, an `extensions` entry). Runs whose id is already stored are skipped
    and nothing of them is touched. Returns (added runs, skipped ids)."""
    import tomli_w

    study = Path(study_dir).resolve()
    doc = load_study_toml(study)
    with Store(study) as st:
        have = {r["id"] for r in st.runs()}
    new = [r for r in plan.runs if r.spec.run_id not in have]
    skipped = [r.spec.run_id for r in plan.runs if r.spec.run_id in have]
    for r in new:  # a folder left by an extension that failed before its store rows: only a bare config may be there
        d = study / RUNS / r.spec.run_id
        if any((d / f).exists() for f in ("checkpoint.pt", "record.json", "metrics.jsonl")):
            raise UserError(f"{d} holds training output but is not in the study's store; move it away and extend again")
    if not new:
        return [], skipped
    rows = _write_runs(study, new)
    with Store(study) as st:
        st.add_runs(rows)
    s = doc.setdefault("study", {})
    s["budgets"] = sorted(set(s.get("budgets", [])) | set(plan.budgets))
    s["n_runs"] = int(s.get("n_runs", 0)) + len(new)
    s["n_dropped"] = int(s.get("n_dropped", 0)) + len(plan.dropped)
    old_law = {row.get("budget"): row for row in doc.get("law", [])}
    for row in plan.law_report:
        old_law[row["budget"]] = {k: v for k, v in row.items() if v is not None}
    doc["law"] = [old_law[c] for c in sorted(old_law)]
    doc["dropped"] = list(doc.get("dropped", [])) + [d.to_dict() for d in plan.dropped]
    doc["extensions"] = list(doc.get("extensions", [])) + [{**note, "runs": [r.spec.run_id for r in new]}]
    atomic_write_text(study / TOML, tomli_w.dumps(doc))
    return new, skipped


def load_study_toml(study_dir: str | os.PathLike) -> dict[str, Any]:
    p = Path(study_dir) / TOML
    if not is_study(study_dir):
        raise UserError(f"{study_dir} is not a study (no {TOML} / {DB}); create one with `scalinglab plan isoflop --out {study_dir}`")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{p} is not valid TOML ({e}); fix it or re-plan the study") from None
