"""Perplexity: window bookkeeping, agreement with a direct forward pass, uniform model = ln V, bits per byte."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scalinglab.accounting.shape import ModelShape
from scalinglab.cli import main
from scalinglab.evaluate.lm import CausalLM
from scalinglab.evaluate.perplexity import perplexity, windows
from scalinglab.models.gpt import GPT
from scalinglab.records import RunSpec
from scalinglab.train.checkpoint import save_checkpoint

SHAPE = ModelShape(d_model=32, n_layers=2, vocab=262, seq_len=32, n_heads=2)


def lm_of(model):
    from scalinglab.data.tokenizers import BytesTokenizer

    return CausalLM(model.eval(), "run", "test", model.shape.seq_len, model.shape.vocab, BytesTokenizer())


def random_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(SHAPE)


@pytest.mark.parametrize("n, seq_len, stride", [(100, 32, 32), (100, 32, 8), (97, 32, 5), (10, 32, 32), (64, 32, 1)])
def test_windows_score_each_token_once(n, seq_len, stride):
    seen = np.zeros(n, int)
    for begin, end, first in windows(n, seq_len, stride):
        assert end - begin <= seq_len and begin < first <= end
        seen[first:end] += 1
        if stride < seq_len:  # each scored token keeps at least seq_len - stride tokens of context
            assert all(t - begin >= min(t, seq_len - stride) for t in range(first, end))
    assert seen[0] == 0
    if stride < seq_len:  # sliding: every token but the first scored exactly once
        assert (seen[1:] == 1).all()
    else:  # non-overlapping: all but each window's first token
        assert seen.sum() == n - math.ceil((n - 1) / seq_len) and seen.max() == 1


def test_non_overlapping_matches_direct_forward():
    model = random_gpt()
    ids = np.random.default_rng(1).integers(0, 256, size=32 * 5)
    res = perplexity(lm_of(model), ids, seq_len=32, stride=32)
    x = torch.from_numpy(ids).view(5, 32)
    with torch.no_grad():
        direct = F.cross_entropy(model(x[:, :-1], x[:, 1:])[0].reshape(-1, 262), x[:, 1:].reshape(-1)).item()
    assert abs(res["loss"] - direct) < 1e-5 and res["tokens"] == 5 * 31 and res["windows"] == 5


def test_sliding_window_longer_than_text_is_one_pass():
    model = random_gpt(2)
    ids = np.random.default_rng(2).integers(0, 256, size=20)
    x = torch.from_numpy(ids)[None]
    with torch.no_grad():
        direct = model(x[:, :-1], x[:, 1:])[1].item()
    for stride in (1, 7, 32):
        assert abs(perplexity(lm_of(model), ids, seq_len=32, stride=stride)["loss"] - direct) < 1e-5


def test_sliding_window_scores_with_the_context_it_promises():
    """stride 4, seq_len 32: the token at position t is predicted from tokens max(0, ...)..t-1 of its window."""
    model = random_gpt(3)
    ids = np.random.default_rng(3).integers(0, 256, size=50)
    want = []
    with torch.no_grad():
        for begin, end, first in windows(50, 32, 4):
            logp = F.log_softmax(model(torch.from_numpy(ids[begin:end])[None])[0][0], -1)
            want += [-logp[t - begin - 1, ids[t]].item() for t in range(first, end)]
    res = perplexity(lm_of(model), ids, seq_len=32, stride=4, batch_size=3)
    assert len(want) == 49 == res["tokens"] and abs(res["loss"] - np.mean(want)) < 1e-5


def test_uniform_model_has_perplexity_vocab_and_bpb():
    model = random_gpt()
    with torch.no_grad():
        model.transformer.wte.weight.zero_()  # tied head: all logits 0, every token has p = 1/262
    ids = np.frombuffer("héllo wörld, plain ascii and more".encode() * 4, dtype=np.uint8).astype(np.int64)
    res = perplexity(lm_of(model), ids, seq_len=32, stride=8, n_bytes=len(ids))
    assert abs(res["loss"] - math.log(262)) < 1e-6 and abs(res["perplexity"] - 262) < 1e-3
    assert abs(res["bits_per_byte"] - math.log2(262)) < 1e-6  # one byte per token


def test_cli_text_counts_utf8_bytes_and_rejects_bad_args(tmp_path, capsys, tiny_data):
    model = random_gpt(4)
    run = tmp_path / "RUN"
    run.mkdir()
    spec = RunSpec(shape=SHAPE, data=str(tiny_data), steps=1)
    (run / "config.toml").write_text(spec.to_toml())
    save_checkpoint(
        run / "checkpoint.pt", {"model": model.state_dict(), "spec": spec.to_dict(), "step": 0, "optimizer": None}
    )
    text = "Größe über alles — ünïcödé text ✓ " * 5
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    main(["eval", "perplexity", "--model", str(run), "--text", str(tmp_path / "t.txt"), "--stride", "16", "--json"])
    out = json.loads(capsys.readouterr().out)
    n_bytes = len(text.encode("utf-8"))
    assert out["bytes"] == n_bytes == out["total_tokens"]  # bytes tokenizer: one token per byte
    assert abs(out["bits_per_byte"] - out["loss"] / math.log(2)) < 1e-9
    for bad in (
        ["--data", str(tiny_data), "--text", str(tmp_path / "t.txt")],
        ["--data", str(tiny_data), "--seq-len", "64"],
        ["--data", str(tiny_data), "--stride", "40"],
        ["--text", str(tmp_path / "missing.txt")],
    ):
        with pytest.raises(SystemExit) as e:
            main(["eval", "perplexity", "--model", str(run), *bad])
        assert e.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
