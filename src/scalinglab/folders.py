"""The three folder kinds scalinglab writes, RUN/, STUDY/ and DATA/ (docs/CONTRACTS.md as code): each class owns
its folder's file names and their parsing; no other module spells them. Plain files only, no torch."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scalinglab.errors import FolderError
from scalinglab.fileio import atomic_write_json, atomic_write_text
from scalinglab.records import RunRecord, RunSpec


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file in order, stopping at a torn line (a killed writer's last)."""
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            return
        if isinstance(row, dict):
            yield row


class RunDir:
    """RUN/: config.toml (the RunSpec), checkpoint.pt (latest, atomic), record.json (the RunRecord),
    metrics.jsonl (one line per logged step), branches.jsonl (WSD cooldown points), train.log, tb/,
    tracker.json (only with an experiment tracker), and .waiting-for-gpu while its trainer waits for a GPU's turn."""

    CONFIG = "config.toml"
    CHECKPOINT = "checkpoint.pt"
    RECORD = "record.json"
    METRICS = "metrics.jsonl"
    BRANCHES = "branches.jsonl"
    LOG = "train.log"
    TENSORBOARD = "tb"
    LAUNCH_SPEC = ".ddp-spec.toml"  # the spec handed to the ranks of a multi-process run, gone when it ends
    TRACKER = "tracker.json"  # which experiment-tracker run (MLflow) this run logs to, so a resume continues it
    WAITING = ".waiting-for-gpu"  # while the trainer waits for its GPU's turn (train/turns.py): shown as "waiting"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def record(self) -> Path:
        return self.path / self.RECORD

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def branches(self) -> Path:
        return self.path / self.BRANCHES

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def launch_spec(self) -> Path:
        return self.path / self.LAUNCH_SPEC

    @property
    def tracker(self) -> Path:
        return self.path / self.TRACKER

    @property
    def waiting(self) -> Path:
        return self.path / self.WAITING

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def has_config(self) -> bool:
        return self.config.is_file()

    def is_run(self) -> bool:
        """A folder the trainer wrote (it has a record or a checkpoint)."""
        return self.record.is_file() or self.checkpoint.is_file()

    # -- record.json: the one reader and writer ---------------------------------------------------
    def read_record_dict(self) -> dict[str, Any] | None:
        """record.json as stored (None when absent or unreadable): for readers that tolerate any state."""
        try:
            d = json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return d if isinstance(d, dict) else None

    def read_record(self) -> RunRecord:
        d = self.read_record_dict()
        if d is None:
            raise FolderError(f"{self.record} is missing or not valid JSON", hint="train the run again")
        try:
            return RunRecord.from_dict(d)
        except (KeyError, TypeError, ValueError) as e:
            raise FolderError(f"{self.record} is not a run record ({e})", hint="train the run again") from None

    def write_record(self, rec: RunRecord) -> None:
        atomic_write_json(self.record, rec.to_dict())

    # -- config.toml ------------------------------------------------------------------------------
    def read_spec(self) -> RunSpec:
        try:
            return RunSpec.from_toml(self.config.read_text(encoding="utf-8"))
        except OSError:
            raise FolderError(f"{self.path} has no {self.CONFIG}", hint="give a run folder with a spec") from None
        except tomllib.TOMLDecodeError as e:
            raise FolderError(f"{self.config} is not valid TOML ({e})", hint="fix the file") from None

    def write_spec(self, spec: RunSpec) -> None:
        atomic_write_text(self.config, spec.to_toml())

    # -- curves -----------------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        """metrics.jsonl rows (training lines, and evaluation lines with val_loss); [] when absent."""
        return list(_json_lines(self.metrics))

    def read_branches(self) -> list[dict[str, Any]]:
        """branches.jsonl rows (one per WSD cooldown point); [] when absent."""
        return list(_json_lines(self.branches))

    def clear_attempt(self) -> None:
        """Drop the curve and record of an attempt that died before its first checkpoint."""
        for p in (self.metrics, self.record):
            p.unlink(missing_ok=True)

    def data_path(self, spec: RunSpec) -> Path | None:
        """The run's DATA folder: as written in the spec (relative to cwd or to RUN), or None if gone."""
        if not spec.data:
            return None
        for p in (Path(spec.data), self.path / spec.data):
            if DataDir(p).is_data():
                return p
        return None


class StudyDir:
    """STUDY/: study.toml (plan settings), study.db (the SQLite run store), runs/<run_id>/ (run folders)."""

    SETTINGS = "study.toml"
    STORE = "study.db"
    RUNS = "runs"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"StudyDir({str(self.path)!r})"

    @property
    def settings_file(self) -> Path:
        return self.path / self.SETTINGS

    @property
    def store(self) -> Path:
        return self.path / self.STORE

    def is_study(self) -> bool:
        return self.path.is_dir() and self.store.is_file() and self.settings_file.is_file()

    def run_rel(self, run_id: str) -> str:
        """A run's folder relative to the study (what the store keeps)."""
        return f"{self.RUNS}/{run_id}"

    def run(self, rel: str) -> RunDir:
        """The run folder the store names `rel` (relative to the study, or absolute), refused unless it lies
        inside the study folder (a hand-edited or corrupt store must not send a sweep elsewhere)."""
        root = self.path.resolve()
        p = (root / str(rel)).resolve()
        if p == root or not p.is_relative_to(root):
            raise FolderError(
                f"{self.store}: run_dir {rel!r} lies outside the study folder",
                hint="the store was edited or is corrupt: restore it or re-plan the study",
            )
        return RunDir(p)

    def settings(self) -> dict[str, Any]:
        if not self.is_study():
            raise FolderError(
                f"{self.path} is not a study (no {self.SETTINGS} / {self.STORE})",
                hint="plan one first",
                keys=("study",),
            )
        try:
            return tomllib.loads(self.settings_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise FolderError(
                f"{self.settings_file} is not valid TOML ({e})", hint="fix it or re-plan the study"
            ) from None

    def write_settings(self, doc: dict[str, Any]) -> None:
        import tomli_w

        atomic_write_text(self.settings_file, tomli_w.dumps(doc))


class DataDir:
    """DATA/: meta.json (vocab, dtype, splits, tokenizer), train.bin and val.bin (flat token ids), tokenizer/."""

    META = "meta.json"
    TOKENIZER = "tokenizer"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r})"

    @property
    def meta_file(self) -> Path:
        return self.path / self.META

    @staticmethod
    def split_file(name: str) -> str:
        """The shard file name of a split, as prep writes it into meta.json's splits."""
        return f"{name}.bin"

    @staticmethod
    def looks_like_data(filenames: list[str] | set[str]) -> bool:
        """Whether a folder listing is a prepared DATA folder's (tokens, not text to read)."""
        return DataDir.META in filenames and DataDir.split_file("train") in filenames

    def is_data(self) -> bool:
        return self.meta_file.is_file()

    def read_meta(self) -> dict[str, Any]:
        if not self.meta_file.is_file():
            raise FolderError(
                f"{self.path} is not a prepared data folder (no {self.META})",
                hint="prepare it first (`scalinglab prep`)",
                keys=("data",),
            )
        try:
            meta = json.loads(self.meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise FolderError(
                f"{self.meta_file} is not valid JSON ({e})", hint="prepare the data again into a fresh folder"
            ) from None
        if not isinstance(meta, dict):
            raise FolderError(
                f"{self.meta_file} is not a data description", hint="prepare the data again into a fresh folder"
            )
        return meta

    def read_meta_or_none(self) -> dict[str, Any] | None:
        try:
            return self.read_meta()
        except FolderError:
            return None

    def write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_json(self.meta_file, meta)

    def tokenizer_info(self) -> dict[str, Any] | None:
        meta = self.read_meta_or_none()
        return meta.get("tokenizer") if meta else None

    def tokenizer_dir(self, meta: dict[str, Any] | None = None) -> Path:
        info = ((meta if meta is not None else self.read_meta_or_none()) or {}).get("tokenizer") or {}
        return self.path / info.get("dir", self.TOKENIZER)
