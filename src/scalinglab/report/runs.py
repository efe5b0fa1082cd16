"""Runs for a report: a study folder's store or a runs CSV as one frame (n, d, c, loss, status, ...),
their loss curves (each run folder's metric lines) and the epochs of data each run read (the over-one-epoch warning)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from scalinglab.folders import RunDir
from scalinglab.report.plots import Curve
from scalinglab.laws.data import read_metrics


def study_frame(study_dir: str | Path):
    """load_runs_frame(STUDY) renamed to the report's columns; runs not done keep loss NaN."""
    from scalinglab.sweep.store import load_runs_frame

    df = load_runs_frame(study_dir)
    out = df.rename(columns={"params": "n", "tokens": "d", "budget": "c", "final_val_loss": "loss"})
    out["loss"] = out["loss"].astype(float)
    return out


def study_epochs(df) -> list[float]:
    """Epochs of its data each run of a study read (NaN where its config or data is gone)."""
    from scalinglab.data.loader import TokenData
    cache: dict[str, object] = {}
    out = []
    for run_dir, tokens in zip(df.get("run_dir", []), df["d"]):
        try:
            spec = RunDir(run_dir).read_spec()
            if spec.data not in cache:
                cache[spec.data] = TokenData(spec.data)
            out.append(float(cache[spec.data].epochs(float(tokens), spec.shape.seq_len, spec.shape.latents)))
        except Exception:  # noqa: BLE001 - a missing config/data only loses this warning, never the report
            out.append(math.nan)
    return out


def run_curves(df, max_runs: int = 200) -> list[Curve]:
    """Validation loss vs cumulative training FLOPs of each run that has metric lines."""
    curves = []
    if "run_dir" not in df:
        return curves
    for _, r in df.head(max_runs).iterrows():
        run = RunDir(str(r["run_dir"]))
        if not run.metrics.is_file():
            continue
        xs, ys, _, _ = read_metrics(run.path)
        keep = [i for i, x in enumerate(xs) if x]
        xs, ys = [float(xs[i]) for i in keep], [float(ys[i]) for i in keep]
        if xs:
            label = f"N = {float(r['n']):.3g}" + (f" ({r['d_model']}x{r['n_layers']})" if "d_model" in r else "")
            curves.append(Curve(label, np.array(xs), np.array(ys), budget=float(r["c"])))
    return curves
