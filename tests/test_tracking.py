"""`--logger mlflow`: a run also logs to MLflow's local file store, offline; the tracker holds the same numbers as
RUN/metrics.jsonl, the spec as params, and a resumed run continues the same tracker run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalinglab.train.trackers import TrackerConfig, resolve_uri

PY = sys.executable
TINY = [
    "--d-model",
    "32",
    "--layers",
    "2",
    "--heads",
    "2",
    "--seq-len",
    "32",
    "--batch-size",
    "4",
    "--eval-every",
    "20",
    "--checkpoint-every",
    "20",
    "--log-every",
    "10",
    "--no-progress",
    "--json",
]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "scalinglab", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_ALLOW_FILE_STORE"},
    )


def test_resolve_uri(tmp_path):
    assert resolve_uri("none", "anything", tmp_path) == ""
    assert resolve_uri("mlflow", None, tmp_path) == (tmp_path / "mlruns").resolve().as_uri()
    assert resolve_uri("mlflow", "file:rel/ml", tmp_path).endswith("/rel/ml")
    assert resolve_uri("mlflow", "http://host:5000", tmp_path) == "http://host:5000"
    from scalinglab.records import LoggingConfig

    cfg = TrackerConfig("mlflow", "file:/x", "s")
    assert TrackerConfig.from_logging(LoggingConfig(**cfg.to_logging())) == cfg
    assert TrackerConfig.from_logging(LoggingConfig()) == TrackerConfig()


def test_bad_logger_is_one_line(tiny_data, tmp_path):
    p = cli("train", "--data", str(tiny_data), "--steps", "5", "--out", "RUN", "--logger", "comet", *TINY, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("error: unknown logger 'comet'") and "Traceback" not in p.stderr
    assert not (tmp_path / "RUN").exists()


def test_mlflow_file_store_matches_metrics_and_resumes(tiny_data, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'scalinglab[track]')")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own client (the trainer sets it itself)
    p = cli(
        "train",
        "--data",
        str(tiny_data),
        "--steps",
        "20",
        "--out",
        "RUN",
        "--logger",
        "mlflow",
        "--logger-uri",
        "file:./mlruns",
        *TINY,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    state = json.loads((tmp_path / "RUN" / "tracker.json").read_text())
    assert state["uri"] == (tmp_path / "mlruns").resolve().as_uri()
    # resume to 40 steps: the same tracker run continues
    p = cli("train", "--resume", "RUN", "--steps", "40", "--no-progress", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "RUN" / "tracker.json").read_text())["run_id"] == state["run_id"]

    client = mlflow.MlflowClient(tracking_uri=state["uri"])
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["scalinglab.status"] == "done"
    assert run.data.params["shape.d_model"] == "32" and run.data.params["batch_size"] == "4"
    assert int(run.data.params["params"]) == json.loads((tmp_path / "RUN" / "record.json").read_text())["params"]
    lines = [json.loads(x) for x in (tmp_path / "RUN" / "metrics.jsonl").read_text().splitlines()]
    for key in ("train_loss", "val_loss"):
        hist = {m.step: m.value for m in client.get_metric_history(state["run_id"], key)}
        want = {r["step"]: r[key] for r in lines if r.get(key) is not None}
        assert set(want) == {10, 20, 30, 40} if key == "train_loss" else set(want) == {20, 40}
        assert hist == pytest.approx(want, rel=1e-6)
    exps = [e.name for e in client.search_experiments()]
    assert "scalinglab" in exps


def test_study_runs_log_under_the_study_experiment(tiny_data, tmp_path):
    study = tmp_path / "STUDY"
    p = cli(
        "plan",
        "isoflop",
        "--data",
        str(tiny_data),
        "--budgets",
        "1e10",
        "--shapes",
        "32x2",
        "--seq-len",
        "32",
        "--batch-size",
        "4",
        "--min-steps",
        "20",
        "--logger",
        "mlflow",
        "--out",
        str(study),
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    from scalinglab.folders import RunDir

    spec = RunDir(next((study / "runs").iterdir())).read_spec()
    assert spec.logging.tracker == "mlflow" and spec.logging.tracker_uri == (study / "mlruns").resolve().as_uri()
    assert spec.logging.tracker_experiment == "STUDY"
