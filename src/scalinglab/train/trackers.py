"""Optional experiment trackers a run also logs to, beside its metric lines and TensorBoard scalars: MLflow's local
store (or any MLflow tracking URI). Off by default; the tracker's package is imported only when one is asked for."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from scalinglab.errors import UserError
from scalinglab.fileio import atomic_write_json
from scalinglab.folders import RunDir

KINDS = ("none", "mlflow")


@dataclass(frozen=True)
class TrackerConfig:
    """Where a run logs: `kind` (none | mlflow), `uri` (an MLflow tracking URI, e.g. file:/abs/mlruns) and the
    experiment name the run is filed under."""

    kind: str = "none"
    uri: str = ""
    experiment: str = "scalinglab"

    @classmethod
    def from_logging(cls, logging_cfg: Any) -> TrackerConfig:
        """From a RunSpec's logging section (fields tracker, tracker_uri, tracker_experiment)."""
        return cls(
            kind=logging_cfg.tracker or "none",
            uri=logging_cfg.tracker_uri,
            experiment=logging_cfg.tracker_experiment or "scalinglab",
        )

    def to_logging(self) -> dict[str, str]:
        """The logging-section fields that select this tracker (for dataclasses.replace)."""
        return {"tracker": self.kind, "tracker_uri": self.uri, "tracker_experiment": self.experiment}


def resolve_uri(kind: str, uri: str | None, default_dir: Path) -> str:
    """A tracking URI every process of a sweep reads the same way: relative file paths become absolute file: URIs.
    No URI: `default_dir`/mlruns."""
    if kind not in KINDS:
        raise UserError(f"unknown logger {kind!r}: choose one of {', '.join(KINDS)}")
    if kind == "none":
        return ""
    if not uri:
        return (default_dir / "mlruns").resolve().as_uri()
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else uri).expanduser()
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise UserError(f"logger URI {uri!r} names a host; give a local path such as file:./mlruns")
        return path.resolve().as_uri()
    return uri  # http(s), databricks, sqlite...: MLflow's own


class MlflowTracker:
    """Logs a run's spec as params and each metrics line as MLflow metrics at its step."""

    def __init__(self, cfg: TrackerConfig, run_dir: Path, run_name: str, params: dict[str, Any]):
        if cfg.uri.startswith("file:"):
            # MLflow 3 keeps the file store in maintenance mode behind this switch; it is the store asked for here
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            import mlflow
        except ImportError:
            raise UserError(
                "logger mlflow needs the mlflow package: pip install 'scalinglab[track]' "
                "(or mlflow-skinny), or train without a logger"
            ) from None
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "creating experiment" chatter on stderr
        self._mlflow = mlflow
        self._client = mlflow.MlflowClient(tracking_uri=cfg.uri)
        state_path = RunDir(run_dir).tracker  # which MLflow run this run logs to, so a resume continues it
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        run_id = state.get("run_id") if state.get("uri") == cfg.uri else None
        if run_id is None:
            exp = self._client.get_experiment_by_name(cfg.experiment)
            exp_id = exp.experiment_id if exp is not None else self._client.create_experiment(cfg.experiment)
            run = self._client.create_run(exp_id, run_name=run_name, tags={"scalinglab.run_dir": str(run_dir)})
            run_id = run.info.run_id
            self._client.log_batch(
                run_id, params=[mlflow.entities.Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
            )
            atomic_write_json(
                state_path, {"kind": "mlflow", "uri": cfg.uri, "run_id": run_id, "experiment": cfg.experiment}
            )
        else:
            self._client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def log(self, row: dict[str, Any]) -> None:
        import time

        from mlflow.entities import Metric

        ts, step = int(time.time() * 1000), int(row["step"])
        ms = [
            Metric(k, float(row[k]), ts, step)
            for k in ("train_loss", "val_loss", "lr", "tokens", "flops")
            if row.get(k) is not None
        ]
        self._client.log_batch(self.run_id, metrics=ms)

    def close(self, status: str) -> None:
        # MLflow's statuses: a run that will resume is not FAILED
        end = {"done": "FINISHED", "diverged": "FAILED", "failed": "FAILED"}.get(status, "KILLED")
        self._client.set_tag(self.run_id, "scalinglab.status", status)
        self._client.set_terminated(self.run_id, status=end)


def flat_params(spec_dict: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'shape': {'d_model': 64}} -> {'shape.d_model': 64}; lists and None as text."""
    out: dict[str, Any] = {}
    for k, v in spec_dict.items():
        if isinstance(v, dict):
            out.update(flat_params(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def make_tracker(cfg: TrackerConfig, run_dir: Path, run_name: str, params: dict[str, Any]) -> MlflowTracker | None:
    if cfg.kind == "none":
        return None
    if cfg.kind == "mlflow":
        return MlflowTracker(cfg, run_dir, run_name, params)
    raise UserError(f"unknown logger {cfg.kind!r} in the run's spec: choose one of {', '.join(KINDS)}")
