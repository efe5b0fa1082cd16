"""External loss curves (TensorBoard CSV exports: Wall time, Step, Value) and the Perceiver AR article's
experiments (Krasser 2023: scaling-1, scaling-2a, scaling-2b) that turn them into loss vs compute / budget."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalinglab.errors import UserError

BATCH = 80  # sequences per step in every experiment of the article
LATENTS = 512
PREFIX_DROPOUT = 0.5  # the article's ComputeEstimator.cross_attn default, used by its plot_experiment


@dataclass(frozen=True)
class PAModel:
    label: str
    d_model: int
    n_layers: int
    steps: int  # planned training steps (the article's tables)


@dataclass(frozen=True)
class PAExperiment:
    """One article experiment: tokenizer/sequence setup, its models in version order, plot limits."""

    vocab: int
    seq_len: int
    models: tuple[PAModel, ...]
    alternates: tuple[
        tuple[int, PAModel], ...
    ] = ()  # (version, model) retrained later (the article's training commands)
    xlim: tuple[float, float] = (0.1, 1.2)
    ylim: tuple[float, float] = (0.85, 1.0)
    title: str = ""

    @property
    def ref(self) -> PAModel:
        return self.models[0]


EXPERIMENTS: dict[str, PAExperiment] = {
    "scaling-1": PAExperiment(
        vocab=32000,
        seq_len=2048,
        models=(
            PAModel("Model 1 (ref)", 512, 9, 50000),
            PAModel("Model 2 (opt)", 624, 11, 31421),
            PAModel("Model 3", 728, 13, 21231),
        ),
        alternates=((1, PAModel("Model 2 (opt, updated)", 592, 10, 34336)),),
        xlim=(0.1, 1.1),
        ylim=(3.2, 3.6),
        title="Experiment 1: SentencePiece vocab 32000, seq 2048, 512 latents",
    ),
    "scaling-2a": PAExperiment(
        vocab=262,
        seq_len=4096,
        models=(
            PAModel("Model 1 (ref)", 512, 9, 26144),
            PAModel("Model 2 (opt 2)", 584, 10, 18275),
            PAModel("Model 3 (opt 1)", 584, 9, 20298),
            PAModel("Model 4", 432, 7, 46451),
            PAModel("Model 5", 768, 13, 8276),
        ),
        title="Experiment 2a: UTF-8 bytes vocab 262, seq 4096, 512 latents",
    ),
    "scaling-2b": PAExperiment(
        vocab=262,
        seq_len=2048,
        models=(PAModel("Model 1 (ref)", 512, 9, 26144), PAModel("Model 2 (opt)", 584, 10, 18275)),
        title="Experiment 2b: UTF-8 bytes vocab 262, seq 2048, 512 latents",
    ),
}


def read_curve_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(step, loss) from a TensorBoard scalar export (Step, Value) or a CSV with step and (val_)loss."""
    import pandas as pd

    p = Path(path)
    try:
        df = pd.read_csv(p)
    except FileNotFoundError:
        raise UserError(f"no curve CSV at {p}: give an existing file or folder") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(
            f"{p} is not a readable CSV ({str(e).splitlines()[0]}): export it again from TensorBoard"
        ) from None
    cols = {c.lower().strip(): c for c in df.columns}
    step = cols.get("step")
    val = next((cols[c] for c in ("value", "val_loss", "loss") if c in cols), None)
    if step is None or val is None:
        raise UserError(f"{p} has columns {list(df.columns)}: a curve CSV needs Step and Value (TensorBoard export)")
    s = pd.to_numeric(df[step], errors="coerce").to_numpy(float)
    y = pd.to_numeric(df[val], errors="coerce").to_numpy(float)
    # NaN/inf losses are kept (a diverged run, reported as such); text where a number belongs is an error
    text = df[val].astype(str).str.strip().str.lower()
    bad = np.isnan(y) & df[val].notna().to_numpy() & ~text.isin(["nan", "inf", "-inf"]).to_numpy()
    if len(y) == 0 or not np.isfinite(s).all() or bad.any():
        raise UserError(f"{p} has no rows or a non-numeric Step or Value: fix or drop those rows")
    order = np.argsort(s, kind="stable")
    return s[order], y[order]


def experiment_files(folder: str | Path, experiment: str) -> dict[int, Path]:
    """{version: csv} for run-logs-*_<experiment>_version_<i>-tag-*.csv files in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"no curves folder at {folder}: give the folder holding the *_version_N-tag-val_loss.csv files")
    pat = re.compile(rf"(^|_){re.escape(experiment)}_version_(\d+)\b")
    found = {int(m.group(2)): p for p in sorted(folder.glob("*.csv")) if (m := pat.search(p.name))}
    if not found:
        raise UserError(
            f"no CSV for experiment {experiment!r} in {folder}: expected names like "
            f"run-logs-0.8.0_{experiment}_version_0-tag-val_loss.csv"
        )
    return dict(sorted(found.items()))


def _shape(exp: PAExperiment, m: PAModel):
    from scalinglab.accounting.shape import ModelShape

    return ModelShape(
        d_model=m.d_model,
        n_layers=m.n_layers,
        vocab=exp.vocab,
        seq_len=exp.seq_len,
        arch="perceiver-ar",
        latents=LATENTS,
        prefix_dropout=PREFIX_DROPOUT,
    )


def budget(exp: PAExperiment) -> float:
    """C_ref: the reference model's self-attention FLOPs over its planned steps (the common budget)."""
    from scalinglab.accounting import perceiver_ar as pa

    d_ref = pa.num_training_tokens(exp.ref.steps, LATENTS, BATCH)
    return pa.flops_per_token_self(_shape(exp, exp.ref)) * d_ref


def _pick_model(exp: PAExperiment, version: int, last_step: float) -> PAModel:
    """The article's model for this version; a retrained alternate when the curve's length says so."""
    if version >= len(exp.models):
        raise UserError(
            f"version_{version} is not a model of this experiment (it has {len(exp.models)}): remove the extra CSV"
        )
    cands = [exp.models[version]] + [m for v, m in exp.alternates if v == version]
    return min(cands, key=lambda m: abs(m.steps - last_step))


def experiment_runs(folder: str | Path, experiment: str) -> tuple[PAExperiment, float, list[dict]]:
    """Per CSV: the model, its accounting (N, N_self, FLOPs per latent token) and its curve against
    compute relative to the budget: x = step * batch * latents * (C_self + C_cross per token) / C_ref."""
    from scalinglab.accounting import perceiver_ar as pa

    if experiment not in EXPERIMENTS:
        raise UserError(f"unknown experiment {experiment!r}: known are {', '.join(EXPERIMENTS)}")
    exp = EXPERIMENTS[experiment]
    c_ref = budget(exp)
    runs = []
    for version, path in experiment_files(folder, experiment).items():
        step, loss = read_curve_csv(path)
        m = _pick_model(exp, version, step[-1])
        shape = _shape(exp, m)
        c_self, c_cross = pa.flops_per_token_self(shape), pa.flops_per_token_cross(shape)
        tokens = step * BATCH * LATENTS
        d_plan = pa.num_training_tokens(m.steps, LATENTS, BATCH)
        runs.append(
            {
                "version": version,
                "model": m,
                "shape": shape,
                "file": path.name,
                "n": pa.params(shape),
                "n_self": pa.params_self(shape),
                "c_self_per_token": c_self,
                "c_cross_per_token": c_cross,
                "tokens": d_plan,
                "c_self": c_self * d_plan,
                "c": (c_self + c_cross) * d_plan,
                "x": tokens * (c_self + c_cross) / c_ref,
                "step": step,
                "loss": loss,
            }
        )
    return exp, c_ref, runs
