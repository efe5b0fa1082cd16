"""TokenData: reads a prepared DATA folder (DataDir: its description and flat token arrays) and serves batches.

Batches are a pure function of (seed, step): a resumed run replays exactly the same windows.
numpy only, so planning can read token counts without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalinglab.data.tokenizers import load_tokenizer
from scalinglab.errors import ConfigError, FolderError
from scalinglab.folders import DataDir


class TokenData:
    """The token arrays of a DataDir (dtype and splits in its description), memory-mapped on first use."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta = DataDir(self.path).read_meta()
        self.vocab_size: int = int(self.meta["vocab_size"])
        self.dtype = np.dtype(self.meta["dtype"])
        self._arrays: dict[str, np.ndarray] = {}

    def split(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            info = self.meta["splits"].get(name)
            if info is None:
                raise FolderError(
                    f"{self.path} has no split {name!r}", hint=f"splits: {', '.join(self.meta['splits'])}"
                )
            f = self.path / info["file"]
            n = int(info["tokens"])
            if not f.is_file() or f.stat().st_size != n * self.dtype.itemsize:
                raise FolderError(
                    f"{f} is missing or truncated",
                    hint="prepare the data again into a fresh folder (`scalinglab prep`)",
                )
            self._arrays[name] = np.memmap(f, dtype=self.dtype, mode="r", shape=(n,)) if n else np.zeros(0, self.dtype)
        return self._arrays[name]

    def tokens(self, split: str = "train") -> int:
        return int(self.meta["splits"][split]["tokens"])

    def train_batch(self, step: int, batch_size: int, seq_len: int, seed: int = 0) -> np.ndarray:
        """[batch_size, seq_len + 1] int64 windows at random offsets (the random train shift)."""
        arr = self.split("train")
        hi = len(arr) - seq_len - 1
        if hi <= 0:
            raise ConfigError(
                f"train split of {self.path} has {len(arr)} tokens, fewer than seq_len+1={seq_len + 1}",
                hint="use more text or a shorter context",
                keys=("seq_len",),
            )
        rng = np.random.default_rng([seed, step])
        return _windows(arr, rng.integers(0, hi + 1, size=batch_size), seq_len)

    def val_windows(self, seq_len: int, n_windows: int) -> np.ndarray:
        """Fixed validation windows, evenly spaced over the val split: [n, seq_len + 1] int64."""
        arr = self.split("val")
        hi = len(arr) - seq_len - 1
        if hi < 0:
            raise ConfigError(
                f"val split of {self.path} has {len(arr)} tokens, fewer than seq_len+1={seq_len + 1}",
                hint="prepare the data with a larger validation fraction or use a shorter context",
                keys=("seq_len",),
            )
        n_windows = max(1, min(n_windows, hi // max(1, seq_len) + 1))
        return _windows(arr, np.linspace(0, hi, n_windows).astype(np.int64), seq_len)

    def epochs(self, tokens: float, seq_len: int, latents: int = 0) -> float:
        """Epochs of the train split a run reading `tokens` (latent) tokens covers (see `epochs`)."""
        return epochs(self.tokens("train"), tokens, seq_len, latents)

    def epoch_check(self, tokens: float, seq_len: int, latents: int = 0) -> EpochCheck:
        """Flags a run that would read more than one epoch of the train split (see `epoch_check`)."""
        return epoch_check(self.tokens("train"), tokens, seq_len, latents)


def _windows(arr: np.ndarray, starts: np.ndarray, seq_len: int) -> np.ndarray:
    """[len(starts), seq_len + 1] int64: the windows of `arr` beginning at `starts`, gathered in one indexing
    operation, not a copy per window (bench/batch_speed.py times the two side by side)."""
    return arr[np.asarray(starts)[:, None] + np.arange(seq_len + 1)].astype(np.int64)


def read_meta(path: str | Path) -> dict:
    """The description of a DATA folder, without opening the shards."""
    return DataDir(path).read_meta()


__all__ = ["EpochCheck", "TokenData", "bytes_per_token", "epoch_check", "epochs", "load_tokenizer", "read_meta"]


def bytes_per_token(path: str | Path, split: str = "val") -> float:
    """UTF-8 bytes of text per token in a split (end-of-text tokens included), for bits per byte:
    bpb = loss_nats_per_token / ln(2) / bytes_per_token."""
    meta = read_meta(path)
    info = meta["splits"][split]
    if info.get("bytes") is None:  # hand-made byte-level folders: one byte per token
        return 1.0
    return info["bytes"] / info["tokens"] if info["tokens"] else float("nan")


@dataclass(frozen=True)
class EpochCheck:
    epochs: float
    over: bool  # True: the run repeats train data (more than `limit` epochs)
    message: str


def epoch_check(train_tokens: int, tokens: float, seq_len: int, latents: int = 0, limit: float = 1.0) -> EpochCheck:
    """Would a run reading `tokens` training tokens go past `limit` epochs of `train_tokens`?

    Chinchilla's laws come from runs of less than one epoch.
    """
    n = epochs(train_tokens, tokens, seq_len, latents)
    over = n > limit
    msg = (
        f"reads {n:.2f} epochs of {train_tokens:,} train tokens (more than {limit:g}); use more text "
        f"(scalinglab prep) or fewer tokens"
        if over
        else f"reads {n:.2f} epochs of the train split"
    )
    return EpochCheck(n, over, msg)


def epochs(train_tokens: int, tokens: float, seq_len: int, latents: int = 0) -> float:
    """Epochs of `train_tokens` a run reading `tokens` (latent) tokens covers.

    Perceiver AR (the 'Approximations' note of Krasser's scaling experiments): reading all non-overlapping latent sequences
    takes seq_len / latents passes, so one 'epoch' of latent tokens is train_tokens * seq_len / latents.
    """
    per_epoch = train_tokens * seq_len / latents if latents else train_tokens
    return tokens / per_epoch if per_epoch else float("inf")
