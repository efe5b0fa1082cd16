"""Run metrics: the run folder's metric lines (one JSON object per logged step), its TensorBoard scalars, and an
optional experiment tracker (train/trackers.py) that gets the same lines."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from scalinglab.fileio import atomic_write_text
from scalinglab.folders import RunDir


class MetricsLog:
    """Appends lines; on resume first drops every line past the checkpoint step so no step repeats."""

    def __init__(self, run_dir: Path, start_step: int, tensorboard: bool = True, tracker: Any = None):
        run = RunDir(run_dir)
        self.path = run.metrics
        keep = []
        if start_step > 0:
            for row in run.read_metrics():  # stops at a torn last line from a killed run
                if not isinstance(row.get("step"), int):
                    break
                if row["step"] <= start_step:
                    keep.append(json.dumps(row))
        atomic_write_text(self.path, "".join(l + "\n" for l in keep))
        self._f = open(self.path, "a", encoding="utf-8")
        self.tracker = tracker  # has log(row) and close(status)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run.tensorboard), purge_step=start_step + 1 if start_step else None)
            except ImportError:  # tensorboard is optional at run time; the JSONL is the record
                self.tb = None

    def log(self, row: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        self._f.write(json.dumps(clean) + "\n")
        self._f.flush()
        if self.tb is not None:
            for k in ("train_loss", "val_loss", "lr"):
                v = row.get(k)
                if v is not None and math.isfinite(v):
                    self.tb.add_scalar(k, v, row["step"])
        if self.tracker is not None:
            self.tracker.log(clean)

    def close(self, status: str = "done") -> None:
        self._f.close()
        if self.tb is not None:
            self.tb.close()
        if self.tracker is not None:
            self.tracker.close(status)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    return RunDir(run_dir).read_metrics()
