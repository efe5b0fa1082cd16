"""LAMBADA scoring: the whole last word must be greedy-correct; last-token-only scoring differs on a handmade case."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn

from scalinglab.cli import main
from scalinglab.data.tokenizers import BytesTokenizer
from scalinglab.errors import UserError
from scalinglab.evaluate.lambada import lambada, read_jsonl, split_last_word
from scalinglab.evaluate.lm import CausalLM


class Bigram(nn.Module):
    """Greedy next byte = table[current byte] (logit 5 for it, 0 for the rest)."""

    def __init__(self, table: dict[str, str], vocab: int = 262):
        super().__init__()
        t = torch.zeros(vocab, dtype=torch.long)
        for a, b in table.items():
            t[ord(a)] = ord(b)
        self.register_buffer("table", t)
        self.vocab = vocab

    def forward(self, idx):
        return torch.nn.functional.one_hot(self.table[idx], self.vocab).float() * 5.0, None


def bigram_lm(table, max_len=64):
    return CausalLM(Bigram(table), "run", "bigram", max_len, 262, BytesTokenizer())


def write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def test_whole_word_vs_last_token_differ(tmp_path):
    # target " mat" is 4 byte tokens: ' ' after "the", then m, a, t. The model gets ' ', 'm' and 't' right
    # but says 'o' after 'm': the last token alone looks right, the word as a whole is wrong.
    lm = bigram_lm({"e": " ", " ": "m", "m": "o", "a": "t"})
    res = lambada(lm, read_jsonl(write_jsonl(tmp_path / "a.jsonl", ["the cat sat on the mat"])))
    assert res["n"] == 1 and res["mean_word_tokens"] == 4
    assert res["last_token_accuracy"] == 1.0 and res["accuracy"] == 0.0
    # fix the middle prediction: now the whole word comes out greedily
    lm = bigram_lm({"e": " ", " ": "m", "m": "a", "a": "t"})
    res = lambada(lm, ["the cat sat on the mat"])
    assert res["accuracy"] == 1.0 == res["last_token_accuracy"]


def test_accuracy_over_a_small_file_and_target_loss(tmp_path):
    lm = bigram_lm({"x": " ", " ": "d", "d": "o", "o": "g"})  # any other byte -> byte 0
    texts = [
        "ax dog",  # ' ' d o g: 4/4 right, correct
        "bx dot",  # ' ' d o, then 'g' for 't': 3/4, last token wrong
        "cx cog",  # ' ', 'd' for 'c', 0 for 'o', g: 2/4, last token right, word wrong
        "zz go",
    ]  # 0 for ' ', 'd' for 'g', 0 for 'o': 0/3
    res = lambada(lm, read_jsonl(write_jsonl(tmp_path / "b.jsonl", texts)), batch_size=3)
    assert [e["correct"] for e in res["examples"]] == [True, False, False, False]
    assert [e["last_token_correct"] for e in res["examples"]] == [True, False, True, False]
    assert res["accuracy"] == 0.25 and res["last_token_accuracy"] == 0.5 and res["mean_word_tokens"] == 15 / 4
    # logit 5 for the greedy byte, 0 for the other 261: nll = log(e^5 + 261) - 5 when right, log(e^5 + 261) when wrong
    z = math.log(math.exp(5) + 261)
    right, n = 4 + 3 + 2 + 0, 15
    assert abs(res["target_loss"] - (right * (z - 5) + (n - right) * z) / n) < 1e-5


def test_long_context_is_truncated_to_the_model(tmp_path):
    lm = bigram_lm({"d": " ", " ": "m", "m": "a", "a": "t"}, max_len=8)
    res = lambada(lm, ["word " * 50 + "mat"])
    assert res["accuracy"] == 1.0
    with pytest.raises(UserError, match="more than the model's context"):
        lambada(bigram_lm({}, max_len=4), ["a verylongword"])


def test_bad_input_is_one_line(tmp_path, capsys):
    assert split_last_word("  the end \n") == ("the", " end")
    with pytest.raises(UserError, match="no last word"):
        split_last_word("oneword")
    (tmp_path / "bad.jsonl").write_text('{"text": "fine text"}\nnot json\n')
    with pytest.raises(UserError, match="line 2 is not JSON"):
        read_jsonl(tmp_path / "bad.jsonl")
    (tmp_path / "nokey.jsonl").write_text('{"sentence": "x y"}\n')
    with pytest.raises(SystemExit) as e:
        main(["eval", "lambada", "--model", str(tmp_path), "--jsonl", str(tmp_path / "nokey.jsonl")])
    assert e.value.code == 2 and 'no "text"' in capsys.readouterr().err


def test_cli_same_accuracy_from_run_and_export(tmp_path, capsys, tiny_data):
    from scalinglab.accounting.shape import ModelShape
    from scalinglab.hf import export_hf
    from scalinglab.models.gpt import GPT
    from scalinglab.records import RunSpec
    from scalinglab.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    shape = ModelShape(d_model=32, n_layers=1, vocab=262, seq_len=32, n_heads=2)
    run = tmp_path / "RUN"
    run.mkdir()
    spec = RunSpec(shape=shape, data=str(tiny_data), steps=1)
    (run / "config.toml").write_text(spec.to_toml())
    save_checkpoint(
        run / "checkpoint.pt", {"model": GPT(shape).state_dict(), "spec": spec.to_dict(), "step": 0, "optimizer": None}
    )
    export_hf(run, tmp_path / "HF")
    f = write_jsonl(tmp_path / "l.jsonl", ["import os and import sys", "def f(x): return x", "the cat sat on the mat"])
    outs = []
    for m in (run, tmp_path / "HF"):
        main(["eval", "lambada", "--model", str(m), "--jsonl", str(f), "--json"])
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0]["n"] == 3 and "accuracy" in outs[0] and "examples" not in outs[0]
    assert outs[0]["accuracy"] == outs[1]["accuracy"] and abs(outs[0]["target_loss"] - outs[1]["target_loss"]) < 1e-5
