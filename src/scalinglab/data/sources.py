"""Text sources: files, folders, globs, .jsonl/.parquet records and the built-ins stdlib / site-packages.

Resolves sources to an ordered file list and reads documents from them (skipping binary, non-UTF-8, empty).
"""

from __future__ import annotations

import glob
import json
import os
import site
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scalinglab.errors import UserError
from scalinglab.folders import DataDir

BUILTINS = ("stdlib", "site-packages")
RECORD_FORMATS = {".jsonl": "jsonl", ".parquet": "parquet"}
SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages", "node_modules"}
SKIP_REASONS = ("binary", "non_utf8", "empty", "no_field", "bad_record", "unreadable")


@dataclass(frozen=True)
class FileRef:
    path: str
    source: int  # index of the source argument it came from
    fmt: str  # text, jsonl or parquet


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def site_packages_dirs() -> list[Path]:
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # old virtualenv's site module
        pass
    out: list[Path] = []
    for d in dirs:
        p = Path(d).resolve()
        if p.is_dir() and p not in out:
            out.append(p)
    return out


def _walk(root: Path, pattern: str | None = None, skip: set[str] = frozenset()) -> list[str]:
    """Files under root in sorted order; hidden folders, caches and `skip` names are left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if DataDir.looks_like_data(filenames):  # a prepared DATA folder: tokens, not text
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__" and d not in skip)
        for f in sorted(filenames):
            if f.startswith(".") or (pattern and not f.endswith(pattern)):
                continue
            found.append(os.path.join(dirpath, f))
    return found


def _fmt(path: str) -> str:
    return RECORD_FORMATS.get(Path(path).suffix.lower(), "text")


def resolve(sources: list[str]) -> tuple[list[dict], list[FileRef]]:
    """Each source argument -> its files, in argument order then sorted path order."""
    if not sources:
        raise UserError("no sources given; pass files, folders, globs, `stdlib` or `site-packages`")
    descs, refs = [], []
    for i, src in enumerate(sources):
        if src == "stdlib":
            root = stdlib_root()
            files, kind, where = _walk(root, ".py", SKIP_DIRS), "builtin", str(root)
        elif src == "site-packages":
            dirs = site_packages_dirs()
            files = [f for d in dirs for f in _walk(d, ".py")]
            kind, where = "builtin", os.pathsep.join(map(str, dirs))
        elif any(c in src for c in "*?["):
            files = sorted(f for f in glob.glob(src, recursive=True) if os.path.isfile(f))
            kind, where = "glob", src
            if not files:
                raise UserError(
                    f"glob {src!r} matches no files; check the pattern (quote it so the shell does not expand it)"
                )
        else:
            p = Path(src)
            if not p.exists():
                raise UserError(
                    f"source {src!r} does not exist; give an existing file or folder, a glob, `stdlib` or `site-packages`"
                )
            if p.is_dir():
                files, kind = _walk(p), "folder"
            else:
                files, kind = [str(p)], "file"
            where = str(p.resolve())
        if not files:
            raise UserError(f"source {src!r} holds no files; give a folder with text files in it")
        descs.append({"source": src, "kind": kind, "path": where, "files": len(files)})
        refs += [FileRef(os.path.abspath(f), i, _fmt(f)) for f in files]
    return descs, refs


def _text_file(path: str) -> Iterator[tuple[int, str | None, str]]:
    with open(path, "rb") as f:
        head = f.read(8192)
        if b"\x00" in head:  # NUL bytes: a binary file, not text
            yield 0, "binary", ""
            return
        data = head + f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        yield 0, "non_utf8", ""
        return
    yield 0, (None if text.strip() else "empty"), text


def _jsonl_file(path: str, field: str) -> Iterator[tuple[int, str | None, str]]:
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                yield i, "bad_record", ""
                continue
            text = rec.get(field) if isinstance(rec, dict) else None
            if not isinstance(text, str):
                yield i, "no_field", ""
            else:
                yield i, (None if text.strip() else "empty"), text


def _parquet_file(path: str, field: str) -> Iterator[tuple[int, str | None, str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{path}: reading .parquet needs pyarrow; pip install pyarrow") from None
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    if field not in names:
        raise UserError(
            f"{path} has no column {field!r} (columns: {', '.join(names[:10])})",
            hint="name the text column",
            keys=("field",),
        )
    i = 0
    for batch in pf.iter_batches(columns=[field], batch_size=4096):
        for text in batch.column(0).to_pylist():
            if not isinstance(text, str):
                yield i, "no_field", ""
            else:
                yield i, (None if text.strip() else "empty"), text
            i += 1


def iter_docs(ref: FileRef, field: str | None) -> Iterator[tuple[int, str | None, str]]:
    """(record index, skip reason or None, text) for each document of one file."""
    try:
        if ref.fmt == "jsonl":
            yield from _jsonl_file(ref.path, field or "text")
        elif ref.fmt == "parquet":
            yield from _parquet_file(ref.path, field or "text")
        else:
            yield from _text_file(ref.path)
    except OSError:
        yield 0, "unreadable", ""


def read_docs(ref: FileRef, field: str | None, records: list[int]) -> list[str]:
    """The texts of the given records of one file, in record order."""
    want = set(records)
    return [t for i, why, t in iter_docs(ref, field) if why is None and i in want]
