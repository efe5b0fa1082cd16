"""prep: dedup, skipped files, document-level split, determinism, reuse/refuse, nothing half-written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import stdlib_text
from scalinglab.data import prep as P
from scalinglab.data.loader import TokenData, bytes_per_token, epoch_check, load_tokenizer
from scalinglab.errors import UserError

DOCS = [f"document {i}: Grüße 🤖 日本語 " + stdlib_text(60_000)[i * 1000 : (i + 1) * 1000] for i in range(30)]


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    for i, t in enumerate(DOCS):
        (d / ("sub" if i % 3 else ".") / f"doc{i:02d}.txt").write_text(t, encoding="utf-8")
    (d / "copy.txt").write_text(DOCS[5], encoding="utf-8")  # duplicate content
    (d / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)  # binary
    (d / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))  # not UTF-8
    (d / "empty.txt").write_text("  \n")
    return d


def docs_of(data, split) -> list[str]:
    tok = load_tokenizer(data)
    arr = np.asarray(TokenData(data).split(split))
    cuts = np.flatnonzero(arr == tok.eot_id)
    assert len(arr) == 0 or cuts[-1] == len(arr) - 1  # every document ends with end-of-text
    return [tok.decode(arr[a + 1 : b].tolist()) for a, b in zip(np.r_[-1, cuts[:-1]], cuts)]


@pytest.mark.parametrize("spec", ["bytes", "char", "gpt2", "bpe:400"])
def test_documents_split_whole_and_disjoint(folder, tmp_path, spec):
    s = P.prepare([str(folder)], tmp_path / "DATA", tokenizer=spec, val_fraction=0.2, progress=False)
    train, val = docs_of(tmp_path / "DATA", "train"), docs_of(tmp_path / "DATA", "val")
    docs = DOCS
    if spec == "char":  # the vocabulary is the train split's characters; val-only characters are <unk>
        seen = set("".join(train))
        docs = ["".join(c if c in seen else "\ufffd" for c in d) for d in DOCS]
        assert load_tokenizer(tmp_path / "DATA").vocab_size == len(seen) + 2
    assert sorted(train + val) == sorted(docs)  # each unique document exactly once, never cut
    assert not set(train) & set(val) and len(val) >= 1
    assert s["skipped"]["duplicate"] == 1 and s["skipped"]["binary"] == 1
    assert s["skipped"]["non_utf8"] == 1 and s["skipped"]["empty"] == 1
    assert (s["docs_train"], s["docs_val"]) == (len(train), len(val))
    meta = json.loads((tmp_path / "DATA" / "meta.json").read_text())
    assert meta["splits"]["train"]["bytes"] == sum(len(t.encode()) for t in train)
    assert np.dtype(meta["dtype"]).itemsize * s["tokens_train"] == os.path.getsize(tmp_path / "DATA" / "train.bin")


def test_split_is_deterministic_and_seeded(folder, tmp_path):
    a = P.prepare([str(folder)], tmp_path / "A", val_fraction=0.3, seed=1, progress=False)
    b = P.prepare(
        [str(folder / "*.txt"), str(folder / "sub")], tmp_path / "B", val_fraction=0.3, seed=1, progress=False
    )
    c = P.prepare([str(folder)], tmp_path / "C", val_fraction=0.3, seed=2, progress=False)
    # the split is a function of (seed, document content), not of file order
    assert set(docs_of(tmp_path / "A", "val")) == set(docs_of(tmp_path / "B", "val"))
    assert set(docs_of(tmp_path / "A", "val")) != set(docs_of(tmp_path / "C", "val"))
    assert a["tokens_val"] + a["tokens_train"] == c["tokens_val"] + c["tokens_train"]
    assert b["tokens_val"] == a["tokens_val"]


def test_workers_give_identical_shards(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(P, "SCAN_PARALLEL", 0)
    monkeypatch.setattr(P, "SMALL_CORPUS", 0)
    monkeypatch.setattr(P, "TASK_BYTES", 3000)  # many tasks, so the pool reorders work
    P.prepare([str(folder)], tmp_path / "one", tokenizer="char", workers=1, progress=False)
    P.prepare([str(folder)], tmp_path / "two", tokenizer="char", workers=2, progress=False)
    for f in ("train.bin", "val.bin", "tokenizer/chars.json"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()


def test_at_least_one_val_doc_and_max_bytes(folder, tmp_path):
    s = P.prepare([str(folder)], tmp_path / "D", val_fraction=1e-9, progress=False)
    assert s["docs_val"] == 1
    s = P.prepare([str(folder)], tmp_path / "E", max_bytes="5K", progress=False)
    n = len(DOCS[0].encode())
    assert s["docs_train"] + s["docs_val"] == -(-5000 // n)  # documents in order until the cap is reached


def test_reuse_refuse_force(folder, tmp_path):
    out = tmp_path / "DATA"
    P.prepare([str(folder)], out, progress=False)
    mtime = (out / "train.bin").stat().st_mtime_ns
    assert P.prepare([str(folder)], out, progress=False)["reused"]
    assert (out / "train.bin").stat().st_mtime_ns == mtime
    with pytest.raises(UserError, match="other settings") as e:
        P.prepare([str(folder)], out, tokenizer="char", progress=False)
    assert "force" in e.value.keys  # the CLI names its flag (--force)
    (folder / "new.txt").write_text("a new document that changes the corpus")
    with pytest.raises(UserError, match="changed") as e:
        P.prepare([str(folder)], out, progress=False)
    assert "force" in e.value.keys
    s = P.prepare([str(folder)], out, tokenizer="char", force=True, progress=False)
    assert s["tokenizer"] == "char" and not s["reused"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DATA", "corpus"]  # no temp folders left


def test_failure_leaves_nothing(folder, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a scalinglab data folder"):
        P.prepare([str(folder)], tmp_path / "other", force=True, progress=False)
    with pytest.raises(UserError):  # fails while training, after the temp folder was made
        P.prepare(
            [str(tmp_path / "other"), str(folder)], tmp_path / "DATA", tokenizer="sentencepiece:260", progress=False
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "other"]


def test_bad_sources(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        P.prepare([str(tmp_path / "nope")], tmp_path / "D", progress=False)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "a.dat").write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match="no text found.*1 binary"):
        P.prepare([str(tmp_path / "bin")], tmp_path / "D", progress=False)
    with pytest.raises(UserError, match="matches no files"):
        P.prepare([str(tmp_path / "*.nothing")], tmp_path / "D", progress=False)
    assert not (tmp_path / "D").exists()


def test_jsonl_and_parquet_fields(tmp_path):
    recs = [{"body": t, "id": i} for i, t in enumerate(DOCS[:10])] + [{"id": 99}]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    s = P.prepare([str(tmp_path / "c")], tmp_path / "D", field="body", val_fraction=0.2, progress=False)
    assert s["docs_train"] + s["docs_val"] == 10 and s["skipped"]["no_field"] == 1
    with pytest.raises(UserError, match="text field") as e:
        P.prepare([str(tmp_path / "c")], tmp_path / "E", progress=False)
    assert e.value.keys == ("field",)
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": DOCS[10:20]}), tmp_path / "c" / "b.parquet")
    s = P.prepare([str(tmp_path / "c" / "b.parquet")], tmp_path / "F", field="body", progress=False)
    assert sorted(docs_of(tmp_path / "F", "train") + docs_of(tmp_path / "F", "val")) == sorted(DOCS[10:20])
    with pytest.raises(UserError, match="no column 'text'"):
        P.prepare([str(tmp_path / "c" / "b.parquet")], tmp_path / "G", progress=False)


def test_loader_on_prepped_data(folder, tmp_path):
    P.prepare([str(folder)], tmp_path / "D", tokenizer="gpt2", val_fraction=0.2, progress=False)
    d = TokenData(tmp_path / "D")
    assert d.dtype == np.uint16 and d.vocab_size == 50257
    a, b = d.train_batch(7, 4, 32, seed=3), d.train_batch(7, 4, 32, seed=3)
    assert a.shape == (4, 33) and (a == b).all() and not (a == d.train_batch(8, 4, 32, seed=3)).all()
    assert (d.val_windows(32, 5) == TokenData(tmp_path / "D").val_windows(32, 5)).all()
    meta = d.meta
    assert bytes_per_token(tmp_path / "D") == meta["splits"]["val"]["bytes"] / meta["splits"]["val"]["tokens"]
    assert 1.5 < bytes_per_token(tmp_path / "D", "train") < 4


def test_epoch_check():
    assert epoch_check(1000, 2000, seq_len=8).epochs == 2.0 and epoch_check(1000, 2000, 8).over
    assert not epoch_check(1000, 1000, 8).over
    # Perceiver AR (Krasser's scaling experiments): seq_len 2048 with 512 latents needs 4 passes to read all latent sequences
    c = epoch_check(1000, 2000, seq_len=2048, latents=512)
    assert c.epochs == 0.5 and not c.over


def test_hand_made_byte_folder_loads(tiny_data):
    tok = load_tokenizer(tiny_data)
    arr = TokenData(tiny_data).split("val")[:200].tolist()
    assert tok.decode(arr).encode("utf-8") == bytes(arr) and bytes_per_token(tiny_data) == 1.0


def test_output_and_other_data_folders_are_not_read_as_text(folder, tmp_path):
    a = P.prepare([str(folder)], folder / "DATA", progress=False)
    assert P.prepare([str(folder)], folder / "DATA", progress=False)["reused"]
    b = P.prepare([str(folder)], folder / "DATA2", progress=False)  # DATA, a sibling data folder, is skipped too
    assert b["tokens_train"] + b["tokens_val"] == a["tokens_train"] + a["tokens_val"]
