"""A run's checkpoint (RunDir.checkpoint): one file, written atomically, loadable with torch.load(weights_only=True).

Keys of the checkpoint dict (the growth operators write the same format):
  "format": "scalinglab-checkpoint", "version": 1
  "model": model.state_dict() (the plain module's, never the torch.compile wrapper's)
  "optimizer": optimizer.state_dict(), or None -> a fresh optimizer on load (e.g. after growth)
  (write it with save_checkpoint(), which adds "format"/"version"; load_checkpoint() checks them)
  "step": int, optimizer steps done (the next batch is TokenData.train_batch(step * grad_accum + i, ...))
  "spec": RunSpec.to_dict() (the shape inside must match "model")
  "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...], "dropout": ByteTensor or absent}; absent -> reseeded
  "state": {"elapsed_s": float, "min_val_loss": float|None, "last_val_loss": float|None,
            "last_train_loss": float|None, "tokens": int, "flops": float}  (all optional)
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from scalinglab.errors import FolderError
from scalinglab.folders import RunDir
from scalinglab.models import build_model
from scalinglab.records import RunSpec

FORMAT = "scalinglab-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, ckpt: dict[str, Any]) -> None:
    """torch.save into a temp file in the same folder, fsync, os.replace: never a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {"format": FORMAT, "version": VERSION, **ckpt}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load on CPU with weights_only=True; a missing, truncated or foreign file is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise FolderError(f"no checkpoint at {path}", hint="train the run first (`scalinglab train`)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing: the error line says it
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle of arbitrary objects, not a torch file at all
        raise FolderError(
            f"{path} {load_failure(e)}", hint=f"delete it to restart the run from {RunDir.CONFIG}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt or "spec" not in ckpt:
        raise FolderError(
            f"{path} is not a scalinglab checkpoint (no format/model/spec keys)",
            hint="resume a run folder written by `scalinglab train`",
            keys=("resume",),
        )
    return ckpt


def load_failure(e: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in a few words (no ANSI codes, one line)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    if "unsupported global" in text.lower():
        return "holds Python objects besides tensors and was refused (loading it could run code)"
    text = text.split("WeightsUnpickler error:", 1)[-1].strip()  # torch's own words come after its preamble
    reason = text.splitlines()[0][:120] if text else type(e).__name__
    return f"is truncated or not a scalinglab checkpoint ({reason})"


def load_run_model(run: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, RunSpec]:
    """(model in eval mode, RunSpec) from a run folder's checkpoint (or a checkpoint file path)."""
    path = Path(run)
    if path.is_dir():
        if not RunDir(path).has_checkpoint():
            raise FolderError(f"{path} has no {RunDir.CHECKPOINT}", hint="train it first (`scalinglab train`)")
        path = RunDir(path).checkpoint
    ckpt = load_checkpoint(path)
    spec = RunSpec.from_dict(ckpt["spec"])
    model = build_model(spec.shape)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), spec


def rng_state(dropout_rng: torch.Generator | None) -> dict[str, Any]:
    st: dict[str, Any] = {"torch": torch.get_rng_state()}
    st["cuda"] = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    if dropout_rng is not None:
        st["dropout"] = dropout_rng.get_state()
    return st


def set_rng_state(st: dict[str, Any], dropout_rng: torch.Generator | None) -> None:
    torch.set_rng_state(st["torch"])
    if st.get("cuda") and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])
    if dropout_rng is not None and st.get("dropout") is not None:
        dropout_rng.set_state(st["dropout"])
