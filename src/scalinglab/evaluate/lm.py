"""One face for every causal LM we evaluate or fine-tune: a scalinglab run folder or a local HF folder.

`load_lm(path)` -> CausalLM (module, logits(ids), max_len, vocab_size, tokenizer); tokenizers of DATA folders.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scalinglab import hf
from scalinglab.data.tokenizers import data_tokenizer
from scalinglab.errors import FolderError, UserError
from scalinglab.folders import DataDir, RunDir


@dataclass
class CausalLM:
    module: torch.nn.Module
    kind: str  # "run" | "hf"
    source: str
    max_len: int
    vocab_size: int
    tokenizer: Any = None  # encode(text) -> ids, decode(ids) -> str; None when unknown
    device: str = "cpu"

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T, V] float32 logits (grad flows when enabled by the caller)."""
        if self.kind == "hf":
            out = self.module(input_ids=ids, use_cache=False).logits
        else:
            out = self.module(ids)[0]
        return out.float()

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())  # tied weights count once

    def check_ids(self, max_id: int, what: str) -> None:
        if max_id >= self.vocab_size:
            raise UserError(
                f"{what} has token id {max_id} but the model's vocabulary is {self.vocab_size}: evaluate with data made by the model's own tokenizer"
            )


# Text on which two tokenizers that differ almost surely disagree: words, digits, punctuation, non-ASCII.
PROBE = "Hello world! The quick brown fox, 1234 ünïcödé ✓\n\tdef f(x): return x  # end"


class TokenizerMismatch(UserError):
    """A model and a DATA folder made with different tokenizers: its ids would mean other text to the model."""


def check_same_tokenizer(lm: CausalLM, data: str | Path) -> None:
    """Refuse DATA whose tokenizer (the one its shards were made with) encodes a probe text differently from the model's.
    Nothing to compare when either is unknown; token ids past the vocabulary are still refused by check_ids."""
    data_tok = data_tokenizer(data)
    if lm.tokenizer is None or data_tok is None:
        return
    a, b = list(map(int, lm.tokenizer.encode(PROBE))), list(map(int, data_tok.encode(PROBE)))
    if a != b:
        info = DataDir(data).tokenizer_info() or {}
        kind = info.get("kind") or info.get("spec") or type(data_tok).__name__
        raise TokenizerMismatch(
            f"model {lm.source} and data {data} use different tokenizers (data: {kind}, vocab {data_tok.vocab_size}; "
            f"'Hello world' is {a[:4]}... for the model, {b[:4]}... for the data)",
            hint="tokenize the text with the model's own tokenizer",
        )


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextmanager
def progress_bar(show: bool, total: int, description: str):
    """A transient rich progress bar on stderr (stdout stays clean for --json), or nothing; yields advance(n=1)."""
    if not show:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import Progress

    p = Progress(transient=True, console=Console(stderr=True))
    p.start()
    task = p.add_task(description, total=total)
    try:
        yield lambda n=1: p.advance(task, n)
    finally:
        p.stop()


def is_run_folder(path: str | Path) -> bool:
    return RunDir(path).is_run()


def load_lm(path: str | Path, device: str = "auto") -> CausalLM:
    """A folder with config.json is a transformers model; one with a run record or checkpoint is our run."""
    p, device = Path(path), pick_device(device)
    if not p.is_dir():
        raise FolderError(
            f"model {p} is not a folder",
            hint=f"give a run folder ({RunDir.RECORD}, {RunDir.CHECKPOINT}) or a transformers model folder (config.json)",
        )
    if hf.is_hf_folder(p):
        module = hf.load_hf_model(p, device)
        cfg = module.config
        max_len = int(getattr(cfg, "n_positions", 0) or getattr(cfg, "max_position_embeddings", 0) or 1024)
        tok = hf.load_hf_tokenizer(p)
        tok = HFTokenizerAdapter(tok) if tok is not None else _export_data_tokenizer(p)
        vocab = int(module.get_output_embeddings().weight.shape[0])
        return CausalLM(module, "hf", str(p), max_len, vocab, tok, device)
    if is_run_folder(p):
        model, spec = load_run(p)
        if spec.shape.arch != "gpt":
            raise UserError(
                f"{p} is a {spec.shape.arch} run; evaluation and fine-tuning take GPT runs or transformers models"
            )
        data = RunDir(p).data_path(spec)
        return CausalLM(
            model.to(device).eval(),
            "run",
            str(p),
            spec.shape.seq_len,
            spec.shape.vocab,
            data_tokenizer(data) if data else None,
            device,
        )
    raise FolderError(
        f"{p} is neither a run folder ({RunDir.RECORD}/{RunDir.CHECKPOINT}) nor a transformers model folder (config.json)"
    )


def load_run(run: str | Path):
    """(model in eval mode on CPU in float32, RunSpec) from the run's checkpoint, through the trainer's loader."""
    from scalinglab.train.checkpoint import load_run_model

    model, spec = load_run_model(run)
    return model.float().eval(), spec


def _export_data_tokenizer(hf_dir: Path):
    """An export without a transformers tokenizer falls back on its source data's tokenizer."""
    try:
        info = json.loads((hf_dir / hf.EXPORT_INFO).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data_tokenizer(info["data"]) if info.get("data") and DataDir(info["data"]).is_data() else None


class HFTokenizerAdapter:
    """transformers tokenizer -> encode/decode without added BOS/EOS (we score raw text)."""

    def __init__(self, tok):
        self.tok = tok
        self.vocab_size = len(tok)
        self.kind = "hf"

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False)
