"""Token-level loss, perplexity and bits per byte of a causal LM over a token stream.

Windows follow Hugging Face's perplexity guide: each window scores only the tokens no earlier window scored.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from scalinglab.errors import UserError
from scalinglab.evaluate.lm import progress_bar


def windows(n: int, seq_len: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first_scored) per window over n tokens. stride == seq_len: non-overlapping
    windows, each scoring all but its first token; stride < seq_len: every token but the very first
    is scored exactly once, with up to seq_len - stride tokens of context before it."""
    out, prev_end = [], 0
    for begin in range(0, n - 1, stride):
        end = min(begin + seq_len, n)
        out.append((begin, end, max(prev_end, begin + 1)))
        prev_end = end
        if end == n:
            break
    return out


def perplexity(
    lm,
    ids: np.ndarray,
    seq_len: int = 0,
    stride: int = 0,
    n_bytes: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> dict:
    """Loss (nats/token over scored tokens), perplexity, bits per byte (bits/token x tokens/byte of
    the evaluated text, when its UTF-8 size n_bytes is known)."""
    seq_len = seq_len or lm.max_len
    stride = stride or seq_len
    if seq_len < 2 or seq_len > lm.max_len:
        raise UserError(
            f"window length {seq_len} must be between 2 and the model's context {lm.max_len}", keys=("seq_len",)
        )
    if not 1 <= stride <= seq_len:
        raise UserError(
            f"stride {stride} must be between 1 and the window length {seq_len}", keys=("stride", "seq_len")
        )
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) < 2:
        raise UserError(f"only {len(ids)} token(s) to evaluate: give a longer text or split")
    lm.check_ids(int(ids.max()), "the evaluated text")
    wins = windows(len(ids), seq_len, stride)
    nll, scored = 0.0, 0
    with progress_bar(progress, len(wins), "evaluating") as advance, torch.inference_mode():
        for group in _same_length_batches(wins, batch_size):
            x = torch.from_numpy(np.stack([ids[b:e] for b, e, _ in group])).to(lm.device)
            logp = F.log_softmax(lm.logits(x)[:, :-1], dim=-1)
            tok_nll = -logp.gather(-1, x[:, 1:, None])[..., 0].double()  # [B, T-1]: nll of x[t+1]
            for row, (b, e, first) in enumerate(group):
                nll += tok_nll[row, first - b - 1 :].sum().item()
                scored += e - first
            advance(len(group))
    loss = nll / scored
    out = {
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "bits_per_token": loss / math.log(2),
        "bits_per_byte": None,
        "tokens": scored,
        "total_tokens": len(ids),
        "bytes": n_bytes,
        "windows": len(wins),
        "seq_len": seq_len,
        "stride": stride,
    }
    if n_bytes:
        out["bits_per_byte"] = loss / math.log(2) * len(ids) / n_bytes
    return out


def utf8_bytes(tokenizer, ids: np.ndarray, chunk: int = 1 << 20) -> int | None:
    """UTF-8 size of the decoded ids (chunked; a character split at a chunk edge is off by a few bytes)."""
    if tokenizer is None:
        return None
    return sum(len(tokenizer.decode(ids[i : i + chunk].tolist()).encode("utf-8")) for i in range(0, len(ids), chunk))


def _same_length_batches(wins, batch_size: int):
    group: list = []
    for w in wins:
        if group and (len(group) == batch_size or w[1] - w[0] != group[0][1] - group[0][0]):
            yield group
            group = []
        group.append(w)
    if group:
        yield group
