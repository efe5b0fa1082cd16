"""LAMBADA-style last-word accuracy: greedy decoding must produce every token of the final word.

Also reports last-token accuracy (only the word's final token checked), the common shortcut, to show the gap.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from scalinglab.errors import UserError


def read_jsonl(path: str | Path) -> list[str]:
    """Texts of a JSONL file: objects with a "text" key (LAMBADA's format) or bare JSON strings."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f'no file {p}: give a JSONL file with one {{"text": ...}} per line')
    texts = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f'{p} line {i} is not JSON: write one {{"text": ...}} object per line') from None
        text = obj.get("text") if isinstance(obj, dict) else obj
        if not isinstance(text, str):
            raise UserError(f'{p} line {i} has no "text" string: write one {{"text": ...}} object per line')
        texts.append(text)
    if not texts:
        raise UserError(f'{p} holds no examples: write one {{"text": ...}} object per line')
    return texts


def split_last_word(text: str) -> tuple[str, str]:
    """('context', ' word'): the target keeps its leading space, as a GPT-2 style tokenizer attaches it."""
    ctx, sep, word = text.strip().rpartition(" ")
    if not sep or not ctx or not word:
        raise UserError(
            f"example {text[:40]!r} has no last word after a space: each text needs context, a space, then the word"
        )
    return ctx, " " + word


def lambada(lm, texts: list[str], batch_size: int = 16) -> dict:
    """Accuracy (all tokens of the last word greedy-correct), last-token accuracy, mean target loss."""
    tok = lm.tokenizer
    if tok is None:
        raise UserError(
            f"model {lm.source} has no tokenizer to read text with: export a run whose data has one, or use a model folder with tokenizer files"
        )
    items = []
    for t in texts:
        ctx, word = split_last_word(t)
        c, w = tok.encode(ctx), tok.encode(word)
        if not c or not w:
            raise UserError(f"example {t[:40]!r} tokenizes to an empty context or word: check the file's text")
        if len(w) >= lm.max_len:
            raise UserError(f"last word of {t[:40]!r} has {len(w)} tokens, more than the model's context {lm.max_len}")
        c = c[-(lm.max_len + 1 - len(w)) :]  # keep the nearest context; the input drops the word's last token
        lm.check_ids(max(c + w), "the JSONL text")
        items.append((c, w))
    examples = []
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            batch = items[i : i + batch_size]
            seqs = [c + w[:-1] for c, w in batch]
            width = max(map(len, seqs))
            x = torch.zeros(len(seqs), width, dtype=torch.long)  # right padding: causal attention never sees it
            for r, s in enumerate(seqs):
                x[r, : len(s)] = torch.tensor(s)
            logp = F.log_softmax(lm.logits(x.to(lm.device)), dim=-1).cpu()
            for r, (c, w) in enumerate(batch):
                rows = logp[r, len(c) - 1 : len(c) - 1 + len(w)]
                target = torch.tensor(w)
                pred = rows.argmax(-1)
                examples.append(
                    {
                        "word_tokens": len(w),
                        "correct": bool((pred == target).all()),
                        "last_token_correct": bool(pred[-1] == target[-1]),
                        "nll": float(-rows.gather(-1, target[:, None]).sum()),
                    }
                )
    n = len(examples)
    return {
        "accuracy": sum(e["correct"] for e in examples) / n,
        "last_token_accuracy": sum(e["last_token_correct"] for e in examples) / n,
        "target_loss": sum(e["nll"] for e in examples) / sum(e["word_tokens"] for e in examples),
        "mean_word_tokens": sum(e["word_tokens"] for e in examples) / n,
        "n": n,
        "examples": examples,
    }
