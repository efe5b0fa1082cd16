"""Training: one run from a RunSpec into a run folder (checkpoint, metrics, record), resumable (bit-exactly on CPU).

Parts: schedule (LR), optim (Adam/AdamW), checkpoint (file format), metrics (JSONL + TensorBoard), loop.
"""

from __future__ import annotations


def run_training(spec, out_dir, resume: bool = False, progress: bool = True, stop_at_step: int | None = None):
    """See scalinglab.train.loop.run_training (imported lazily: torch is heavy)."""
    from scalinglab.train.loop import run_training as _run

    return _run(spec, out_dir, resume=resume, progress=progress, stop_at_step=stop_at_step)


def load_run_model(run, device: str = "cpu"):
    """See scalinglab.train.checkpoint.load_run_model."""
    from scalinglab.train.checkpoint import load_run_model as _load

    return _load(run, device=device)


__all__ = ["load_run_model", "run_training"]
