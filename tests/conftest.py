"""Shared fixtures: small real data made on the fly (no downloads)."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parent / "data"


def stdlib_text(max_bytes: int = 400_000) -> str:
    """Real text: the running interpreter's own standard-library sources, in sorted order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out, n = [], 0
    for p in sorted(root.glob("*.py")):
        t = p.read_text(encoding="utf-8", errors="ignore")
        out.append(t)
        n += len(t)
        if n >= max_bytes:
            break
    return "\n".join(out)


def write_byte_data(path: Path, text: str, val_fraction: float = 0.1) -> Path:
    """A DATA folder in scalinglab's shard layout, UTF-8 bytes as token ids (vocab 256 + 6 specials)."""
    path.mkdir(parents=True, exist_ok=True)
    ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)
    n_val = int(len(ids) * val_fraction)
    splits = {"train": ids[: len(ids) - n_val], "val": ids[len(ids) - n_val :]}
    meta = {"version": 1, "vocab_size": 262, "dtype": "uint16", "tokenizer": {"kind": "raw-bytes"}, "splits": {}}
    for name, arr in splits.items():
        arr.tofile(path / f"{name}.bin")
        meta["splits"][name] = {"tokens": int(len(arr)), "file": f"{name}.bin"}
    (path / "meta.json").write_text(json.dumps(meta))
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """~400 KB of stdlib source as a byte-level DATA folder."""
    return write_byte_data(tmp_path_factory.mktemp("data") / "DATA", stdlib_text())


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test: with two xdist workers on two cores, more threads only contend."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
