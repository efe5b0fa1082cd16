"""`scalinglab prep`: sources -> dedup -> document-level train/val split -> tokenizer -> token shards.

Two streaming passes in worker processes (scan+hash, then encode); shards are written incrementally
into a temp folder beside the output and renamed into place at the end, so nothing is half-written.
"""

from __future__ import annotations

import collections
import hashlib
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalinglab.data import sources as S
from scalinglab.data import tokenizers as T
from scalinglab.errors import UserError
from scalinglab.fileio import check_output, recover_dir, staged_dir
from scalinglab.folders import DataDir

FORMAT_VERSION = 1
TASK_BYTES = 4 << 20  # text per encode task: big enough to amortise IPC, small enough to bound memory
SMALL_CORPUS = 8 << 20  # below this, encoding in worker processes costs more (start-up, IPC) than it saves
SCAN_PARALLEL = 64 << 20  # reading and hashing runs at ~100 MB/s per core: worth workers only past this
TRAIN_SAMPLE_BYTES = 200 << 20  # bpe/sentencepiece learn from at most this much of the train split


@dataclass
class Doc:
    ref: int  # index into the file list
    rec: int  # record index inside the file (0 for plain text)
    nbytes: int
    digest: bytes
    split: str = "train"


# ---- work done in worker processes (or in-process for small corpora) ----

_W: dict = {}


def _init_worker(refs, field, quiet: bool) -> None:
    if quiet:
        T.quiet_workers()
    _W.update(refs=refs, field=field, tok=None, tok_dir=None)


def _tokenizer(tok_dir: str) -> T.Tokenizer:
    if _W["tok_dir"] != tok_dir:
        _W.update(tok=T.Tokenizer.from_dir(tok_dir), tok_dir=tok_dir)
    return _W["tok"]


def _scan(i: int):
    counts: collections.Counter = collections.Counter()
    docs = []
    for rec, why, text in S.iter_docs(_W["refs"][i], _W["field"]):
        if why:
            counts[why] += 1
        else:
            b = text.encode("utf-8")
            docs.append((rec, len(b), hashlib.sha256(b).digest()))
    return i, counts, docs


def _texts(groups):
    return [t for ref, recs in groups for t in S.read_docs(_W["refs"][ref], _W["field"], recs)]


def _encode(task):
    split, groups, nbytes, tok_dir, dtype = task
    texts = _texts(groups)
    ids = _tokenizer(tok_dir).encode_docs(texts).astype(dtype)  # narrow before IPC
    return split, ids, nbytes, len(texts)


def _chars(task):
    codes = [np.unique(np.frombuffer(t.encode("utf-32-le"), dtype="<u4")) for t in _texts(task[1])]
    return np.unique(np.concatenate(codes)) if codes else np.zeros(0, "<u4")


class _Runner:
    """Ordered map over tasks, in-process or in a worker pool (started on first use, shared by all
    passes) with at most 2 x workers tasks in flight, so memory stays bounded."""

    def __init__(self, workers: int, refs, field):
        self.workers, self.args, self.pool = workers, (refs, field), None
        _init_worker(refs, field, quiet=False)

    def map(self, fn, tasks, parallel: bool = True):
        if self.workers <= 1 or not parallel:
            yield from map(fn, tasks)
            return
        if self.pool is None:
            self.pool = mp.get_context("spawn").Pool(self.workers, _init_worker, (*self.args, True))
        pending: collections.deque = collections.deque()
        for t in tasks:
            pending.append(self.pool.apply_async(fn, (t,)))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    return Progress(
        TextColumn("[bold]{task.description:<16}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


# ---- the pipeline ----


def parse_size(text: str | int | None) -> int | None:
    """'400M', '1.5G', '20000', 20000 -> bytes (decimal units, like `du --si`)."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        n = text
    else:
        s = str(text).strip().upper().removesuffix("B")
        mult = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}.get(s[-1:], 1)
        try:
            n = int(float(s[:-1] if mult > 1 else s) * mult)
        except ValueError:
            raise UserError(
                f"maximum size {text!r} is not a size", hint="write e.g. 20M or 400000000", keys=("max_bytes",)
            ) from None
    if n <= 0:
        raise UserError(f"maximum size {text!r} must be positive", hint="write e.g. 20M", keys=("max_bytes",))
    return n


def _split_score(seed: int, digest: bytes) -> float:
    h = hashlib.sha256(seed.to_bytes(8, "little", signed=True) + digest).digest()
    return int.from_bytes(h[:8], "little") / 2.0**64


def _settings(descs, tokenizer, val_fraction, seed, field, max_bytes) -> dict:
    kind, arg = T.parse_spec(tokenizer)
    tok = {"spec": tokenizer if kind != "hf" else f"hf:{arg}"}
    if kind == "hf":  # a changed tokenizer.json is a different tokenizer
        tok["sha256"] = hashlib.sha256((Path(str(arg)) / "tokenizer.json").read_bytes()).hexdigest()
    return {
        "version": FORMAT_VERSION,
        "sources": [d["path"] for d in descs],
        "tokenizer": tok,
        "val_fraction": val_fraction,
        "seed": seed,
        "field": field,
        "max_bytes": max_bytes,
    }


def _check_out(out: Path) -> dict | None:
    """The existing description of the data folder `out`, None if `out` is free; refuses folders that are not data folders."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} is a file", hint="choose a folder path for the shards", keys=("out",))
    if not out.is_dir() or not any(out.iterdir()):
        return None
    meta = DataDir(out).read_meta_or_none()
    if meta is None:
        raise UserError(
            f"output {out} exists and is not a scalinglab data folder",
            hint="choose a new or empty folder",
            keys=("out",),
        )
    return meta


def _summary(meta: dict, out: Path, reused: bool, seconds: float) -> dict:
    sp = meta["splits"]
    return {
        "out": str(out),
        "tokenizer": meta["tokenizer"]["spec"],
        "vocab_size": meta["vocab_size"],
        "dtype": meta["dtype"],
        "eot_id": meta["eot_id"],
        "tokens_train": sp["train"]["tokens"],
        "tokens_val": sp["val"]["tokens"],
        "docs_train": sp["train"]["docs"],
        "docs_val": sp["val"]["docs"],
        "bytes_train": sp["train"]["bytes"],
        "bytes_val": sp["val"]["bytes"],
        "bytes_per_token": meta["bytes_per_token"],
        "skipped": meta["skipped"],
        "reused": reused,
        "seconds": round(seconds, 2),
    }


def prepare(
    sources: list[str],
    out: str | Path,
    tokenizer: str = "bytes",
    val_fraction: float = 0.01,
    seed: int = 0,
    field: str | None = None,
    max_bytes: int | str | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Tokenize `sources` into the DataDir `out` (description, token shards, tokenizer); returns a summary dict."""
    t0 = time.time()
    if not 0.0 < val_fraction < 1.0:
        raise UserError(
            f"validation fraction {val_fraction} must be between 0 and 1", hint="use e.g. 0.01", keys=("val_fraction",)
        )
    max_bytes = parse_size(max_bytes)
    if workers is not None and workers < 1:
        raise UserError(f"{workers} worker processes asked for; give 1 or more (or leave it unset for all cores)")
    workers = int(workers if workers is not None else (os.cpu_count() or 1))
    kind, _ = T.parse_spec(tokenizer)
    out = Path(out).resolve()
    for note in recover_dir(out):  # a killed earlier prep: its old data back in place, its temp folders gone
        if progress:
            sys.stderr.write(f"note: {note}\n")
    old = _check_out(out)
    descs, refs = S.resolve(sources)
    # never read our own output (prep . --out DATA): it would change the corpus on every run
    refs = [r for r in refs if not Path(r.path).is_relative_to(out)]
    if not refs:
        raise UserError(
            f"the only files in {' '.join(sources)} are inside the output folder {out}",
            hint="choose sources outside the output folder",
        )
    for j, d in enumerate(descs):
        d["files"] = sum(r.source == j for r in refs)
    settings = _settings(descs, tokenizer, val_fraction, seed, field, max_bytes)
    if old is not None and old.get("settings") != settings and not force:
        diff = sorted(k for k in settings if (old.get("settings") or {}).get(k) != settings[k])
        raise UserError(
            f"output {out} holds shards made with other settings ({', '.join(diff)})",
            hint="force a rebuild to replace them or choose another folder",
            keys=("force", "out"),
        )

    sizes = [_size(r.path) for r in refs]
    size = min(sum(sizes), max_bytes or sum(sizes))
    # bytes and char shards hold 2+ bytes per byte of text; subword ids at least a quarter of that
    check_output(out, "dir", "the output folder", need_bytes=2 * size if kind in ("bytes", "char") else size // 4)
    runner = _Runner(min(workers, len(refs)), refs, field)
    with _progress(progress) as bar, runner:
        docs, skipped, descs = _scan_all(runner, sizes, size, descs, max_bytes, bar, parallel=size >= SCAN_PARALLEL)
        content = hashlib.sha256("".join(d["sha256"] for d in descs).encode()).hexdigest()
        if old is not None and old.get("settings") == settings:
            if old.get("content_sha256") == content and _intact(out, old):
                return _summary(old, out, True, time.time() - t0)
            if not force:
                raise UserError(
                    f"output {out} was made from sources that have changed since",
                    hint="force a rebuild or choose another folder",
                    keys=("force", "out"),
                )
        _split(docs, seed, val_fraction)
        # built beside `out` and renamed in; old shards are replaced only once the new ones are whole
        with staged_dir(out, "prep", replace=True) as tmp:
            # bytes "encoding" is a copy: shipping ids between processes would cost more than it saves
            meta = _build(docs, runner, tokenizer, kind, tmp, bar, parallel=kind != "bytes" and size >= SMALL_CORPUS)
            meta.update(
                version=FORMAT_VERSION, settings=settings, content_sha256=content, sources=descs, skipped=skipped
            )
            DataDir(tmp).write_meta(meta)  # readable by all but the umask, like every stored file
    return _summary(meta, out, False, time.time() - t0)


def _scan_all(runner, sizes, total, descs, max_bytes, bar, parallel):
    """Pass 1: read and hash every document in order; dedupe by content and stop at --max-bytes.
    `total`: the bytes the bar counts to (all files' bytes, at most max_bytes)."""
    task = bar.add_task("scan", total=total)
    seen: set[bytes] = set()
    docs: list[Doc] = []
    skipped: collections.Counter = collections.Counter()
    hashers = [hashlib.sha256() for _ in descs]
    per_src = [collections.Counter() for _ in descs]
    kept = 0
    refs = runner.args[0]
    for i, counts, found in runner.map(_scan, range(len(refs)), parallel):
        skipped.update(counts)
        for rec, nbytes, dig in found:
            if dig in seen:
                skipped["duplicate"] += 1
                continue
            seen.add(dig)
            docs.append(Doc(i, rec, nbytes, dig))
            src = refs[i].source
            hashers[src].update(dig)
            per_src[src]["docs"] += 1
            per_src[src]["bytes"] += nbytes
            kept += nbytes
            if max_bytes and kept >= max_bytes:
                break
        if max_bytes:  # with a cap the bar counts kept bytes up to it, else the bytes of files read
            bar.update(task, completed=min(kept, total))
        else:
            bar.update(task, advance=sizes[i])
        if max_bytes and kept >= max_bytes:
            break
    bar.update(task, completed=total)
    descs = [
        dict(d, docs=per_src[j]["docs"], bytes=per_src[j]["bytes"], sha256=hashers[j].hexdigest())
        for j, d in enumerate(descs)
    ]
    skipped = {k: int(skipped.get(k, 0)) for k in (*S.SKIP_REASONS, "duplicate")}
    names = " ".join(d["source"] for d in descs)
    if not docs:
        why = ", ".join(f"{v} {k.replace('_', '-')}" for k, v in skipped.items() if v) or "nothing readable"
        field_hint = skipped["no_field"] > 0
        raise UserError(
            f"no text found in {names} ({why})",
            keys=("field",) if field_hint else (),
            hint="give files of UTF-8 text" + ("; for .jsonl/.parquet name the text field" if field_hint else ""),
        )
    if len(docs) < 2:
        raise UserError(
            f"{names} holds only 1 document; the train/val split is by document, so give at least 2 files or records"
        )
    return docs, skipped, descs


def _split(docs: list[Doc], seed: int, val_fraction: float) -> None:
    """Document-level split from a hash of (seed, content): independent of order, worker count and machine."""
    scores = [_split_score(seed, d.digest) for d in docs]
    for d, s in zip(docs, scores):
        d.split = "val" if s < val_fraction else "train"
    if not any(d.split == "val" for d in docs):  # at least one validation document
        docs[int(np.argmin(scores))].split = "val"
    if not any(d.split == "train" for d in docs):
        docs[int(np.argmax(scores))].split = "train"


def _tasks(docs: list[Doc], split: str | None = None, fraction: float = 1.0, seed: int = 0):
    """Consecutive documents grouped into (split, [(file, [records])], bytes) tasks of about TASK_BYTES."""
    groups: list = []
    size, cur = 0, None
    for d in docs:
        if split and d.split != split:
            continue
        if fraction < 1.0 and _split_score(seed + 1, d.digest) >= fraction:
            continue
        if groups and (d.split != cur or size >= TASK_BYTES):
            yield cur, groups, size
            groups, size = [], 0
        cur = d.split
        if groups and groups[-1][0] == d.ref:
            groups[-1][1].append(d.rec)
        else:
            groups.append((d.ref, [d.rec]))
        size += d.nbytes
    if groups:
        yield cur, groups, size


def _train_texts(docs, bar):
    """The train split (or a spread-out sample of it, past TRAIN_SAMPLE_BYTES) as an iterator of texts."""
    total = sum(d.nbytes for d in docs if d.split == "train")
    frac = min(1.0, TRAIN_SAMPLE_BYTES / max(1, total))
    task = bar.add_task("train tokenizer", total=int(total * frac))
    for _, groups, _ in _tasks(docs, "train", frac):
        for ref, recs in groups:
            for t in S.read_docs(_W["refs"][ref], _W["field"], recs):
                bar.update(task, advance=len(t.encode("utf-8")))
                yield t


def _build(docs, runner, spec, kind, tmp: Path, bar, parallel) -> dict:
    tok_dir = tmp / DataDir.TOKENIZER
    if kind == "char":  # the exact character set of the whole train split
        codes = list(runner.map(_chars, _tasks(docs, "train"), parallel))
        chars = np.unique(np.concatenate(codes)) if codes else []
        tok: T.Tokenizer = T.CharTokenizer("".join(map(chr, chars)))
    else:
        tok = T.build_tokenizer(
            spec, _train_texts(docs, bar) if kind in ("bpe", "sentencepiece") else (), runner.workers
        )
    tok.to_dir(tok_dir)
    dtype = np.dtype(T.smallest_dtype(tok.vocab_size))
    counts = {s: {"tokens": 0, "file": DataDir.split_file(s), "docs": 0, "bytes": 0} for s in ("train", "val")}
    task = bar.add_task("encode", total=sum(d.nbytes for d in docs))
    files = {s: open(tmp / DataDir.split_file(s), "wb") for s in counts}
    tasks = ((*t, str(tok_dir), dtype.name) for t in _tasks(docs))
    try:
        for split, ids, nbytes, ndocs in runner.map(_encode, tasks, parallel):
            files[split].write(ids.tobytes())
            c = counts[split]
            c["tokens"] += len(ids)
            c["bytes"] += nbytes
            c["docs"] += ndocs
            bar.update(task, advance=nbytes)
    finally:
        for f in files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
    return {
        "vocab_size": tok.vocab_size,
        "dtype": dtype.name,
        "eot_id": tok.eot_id,
        "tokenizer": dict(tok.config(), dir=DataDir.TOKENIZER),
        "splits": counts,
        "bytes_per_token": {s: (c["bytes"] / c["tokens"] if c["tokens"] else None) for s, c in counts.items()},
    }


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # a broken link: read_docs counts it as unreadable
        return 0


def _intact(out: Path, meta: dict) -> bool:
    try:
        dt = np.dtype(meta["dtype"])
        return all((out / s["file"]).stat().st_size == s["tokens"] * dt.itemsize for s in meta["splits"].values())
    except (OSError, KeyError, TypeError):
        return False
