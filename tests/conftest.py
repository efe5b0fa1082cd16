"""Shared fixtures: small real data made on the fly (no downloads)."""

from __future__ import annotations

import json
import os
import sysconfig
from pathlib import Path

import numpy as np
import pytest

# Public data taken from public repositories lives beside the checkout in ../shared/data (CI has it); it is
# never copied into the project. SCALINGLAB_SHARED_DATA points elsewhere.
SHARED_DATA = Path(os.environ.get("SCALINGLAB_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def shared(*parts: str) -> Path:
    """A path under ../shared/data, or skip the calling test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"public data {path} is absent: run beside the ../shared/data folder or set SCALINGLAB_SHARED_DATA")
    return path


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


needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"public data folder {SHARED_DATA} is absent "
    "(../shared/data beside the checkout, or SCALINGLAB_SHARED_DATA)",
)
