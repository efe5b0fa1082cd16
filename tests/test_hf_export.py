"""Export to transformers: same logits (1e-5) through AutoModelForCausalLM, same loss from RUN and export, clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.cli import main
from scalinglab.errors import UserError
from scalinglab.hf import export_hf, require_hf
from scalinglab.records import LoggingConfig, RunSpec
from scalinglab.train.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def trained_run(tiny_data, tmp_path_factory):
    from scalinglab.train import run_training

    spec = RunSpec(
        shape=ModelShape(d_model=32, n_layers=2, vocab=262, seq_len=32, n_heads=2),
        data=str(tiny_data),
        steps=30,
        batch_size=4,
        lr=3e-3,
        seed=3,
        logging=LoggingConfig(tensorboard=False),
    )
    run = tmp_path_factory.mktemp("run") / "RUN"
    assert run_training(spec, run, progress=False).status == "done"
    return run


def handmade_run(path, shape, data="", seed=0):
    """A run folder holding a randomly initialised GPT (checkpoint in the trainer's format)."""
    from scalinglab.models import build_model

    torch.manual_seed(seed)
    model = build_model(shape)
    spec = RunSpec(shape=shape, data=str(data), steps=1)
    path.mkdir(parents=True)
    (path / "config.toml").write_text(spec.to_toml())
    save_checkpoint(
        path / "checkpoint.pt", {"model": model.state_dict(), "spec": spec.to_dict(), "step": 0, "optimizer": None}
    )
    return path, model


def hf_logits(folder, x):
    transformers = require_hf()
    m = transformers.AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.no_grad():
        return m(input_ids=x).logits


def test_export_round_trip_same_logits(trained_run, tmp_path):
    from scalinglab.train.checkpoint import load_run_model

    res = export_hf(trained_run, tmp_path / "HF")
    model, spec = load_run_model(trained_run)
    cfg = json.loads((tmp_path / "HF" / "config.json").read_text())
    assert cfg["model_type"] == "gpt2" and cfg["n_embd"] == 32 and cfg["n_layer"] == 2 and cfg["n_head"] == 2
    assert cfg["n_positions"] == 32 and cfg["vocab_size"] == 262 and cfg["activation_function"] == "gelu_new"
    assert res["params"] == spec.shape.params()  # tied lm_head counted once on both sides
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 262, size=(3, 32)))
    with torch.no_grad():
        ours = model(x)[0]
    theirs = hf_logits(tmp_path / "HF", x)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)
    assert ours.abs().max() > 0.1  # a trained model, not all-zero logits


def test_exported_tokenizer_is_the_byte_tokenizer(trained_run, tmp_path):
    export_hf(trained_run, tmp_path / "HF")
    tok = require_hf().AutoTokenizer.from_pretrained(str(tmp_path / "HF"), local_files_only=True)
    text = "déjà vu\n  x = 1  # ünïcode ✓"
    assert tok.encode(text, add_special_tokens=False) == list(text.encode("utf-8"))
    assert tok.decode(list(text.encode("utf-8"))) == text
    assert tok.eos_token == "[EOS]" and tok.eos_token_id == 258  # scalinglab's bytes tokenizer: [EOS] = 256 + 2


def test_untied_export_round_trips(tmp_path):
    shape = ModelShape(d_model=32, n_layers=1, vocab=100, seq_len=16, n_heads=4, tied=False, mlp_ratio=2)
    run, model = handmade_run(tmp_path / "RUN", shape)
    export_hf(run, tmp_path / "HF")
    x = torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        assert torch.allclose(model(x)[0], hf_logits(tmp_path / "HF", x), atol=1e-5, rtol=0)
    assert not (tmp_path / "HF" / "tokenizer.json").exists()  # no data, no tokenizer


def test_same_loss_from_run_and_export(trained_run, tiny_data, tmp_path, capsys):
    assert main(["export", str(trained_run), "--format", "hf", "--out", str(tmp_path / "HF"), "--json"]) is None
    capsys.readouterr()
    losses = []
    for m in (trained_run, tmp_path / "HF"):
        main(
            [
                "eval",
                "perplexity",
                "--model",
                str(m),
                "--data",
                str(tiny_data),
                "--split",
                "val",
                "--max-tokens",
                "4000",
                "--json",
            ]
        )
        out = json.loads(capsys.readouterr().out)
        assert {"loss", "perplexity", "bits_per_byte"} <= set(out)
        losses.append(out)
    assert abs(losses[0]["loss"] - losses[1]["loss"]) < 1e-5
    assert losses[0]["loss"] < math.log(262) - 0.5  # trained: well below uniform
    assert math.isclose(losses[1]["perplexity"], math.exp(losses[1]["loss"]))


@pytest.mark.parametrize("kw, word", [({"pos": "rotary"}, "rotary"), ({"bias": False}, "biases")])
def test_unexportable_shapes_are_user_errors(tmp_path, capsys, kw, word):
    shape = ModelShape(d_model=32, n_layers=1, vocab=64, seq_len=16, **kw)
    run, _ = handmade_run(tmp_path / "RUN", shape)
    with pytest.raises(SystemExit) as e:
        main(["export", str(run), "--format", "hf", "--out", str(tmp_path / "HF")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and word in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "HF").exists()  # nothing half-written


def test_export_refuses_non_empty_out_and_bad_format(trained_run, tmp_path):
    (tmp_path / "HF").mkdir()
    (tmp_path / "HF" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        export_hf(trained_run, tmp_path / "HF")
    assert [p.name for p in (tmp_path / "HF").iterdir()] == ["keep.txt"]
    with pytest.raises(SystemExit) as e:
        main(["export", str(trained_run), "--format", "onnx", "--out", str(tmp_path / "X")])
    assert e.value.code == 2


def test_model_folder_kinds(trained_run, tmp_path):
    from scalinglab.evaluate.lm import load_lm

    export_hf(trained_run, tmp_path / "HF")
    assert load_lm(trained_run, "cpu").kind == "run"
    hf = load_lm(tmp_path / "HF", "cpu")
    assert hf.kind == "hf" and hf.max_len == 32 and hf.vocab_size == 262
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a run folder"):
        load_lm(tmp_path / "empty", "cpu")


def test_gpt2_tokenizer_exports_identically(tmp_path):
    from scalinglab.data.tokenizers import gpt2

    tok = gpt2()
    data = tmp_path / "DATA"
    ids = np.asarray(tok.encode("def f(x):\n    return x + 1\n" * 20), dtype=np.uint16)
    data.mkdir()
    ids.tofile(data / "train.bin")
    ids.tofile(data / "val.bin")
    tok.to_dir(data / "tokenizer")
    meta = {
        "version": 1,
        "vocab_size": tok.vocab_size,
        "dtype": "uint16",
        "tokenizer": dict(tok.config(), dir="tokenizer"),
        "splits": {s: {"tokens": len(ids), "file": f"{s}.bin"} for s in ("train", "val")},
    }
    (data / "meta.json").write_text(json.dumps(meta))
    run, _ = handmade_run(tmp_path / "RUN", ModelShape(d_model=16, n_layers=1, vocab=50257, seq_len=16), data=data)
    res = export_hf(run, tmp_path / "HF")
    assert res["tokenizer"] == "gpt2"
    hf_tok = require_hf().AutoTokenizer.from_pretrained(str(tmp_path / "HF"), local_files_only=True)
    text = "Hello world <|endoftext|> ünï  spaces\n\tx"
    assert hf_tok.encode(text, add_special_tokens=False) == tok.encode(text)
    assert hf_tok.encode(" Hello", add_special_tokens=False) == [18435]  # GPT-2's published id for " Hello"
    assert hf_tok.eos_token_id == 50256 == json.loads((tmp_path / "HF" / "config.json").read_text())["eos_token_id"]


def test_missing_transformers_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(UserError, match=r"pip install 'scalinglab\[hf\]'"):
        require_hf()
