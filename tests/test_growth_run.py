"""`scalinglab grow` on a trained run folder: same loss, mapped optimizer state, and `train --resume GROWN`
continues with no loss spike above the pre-growth loss."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.cli import main
from scalinglab.data.loader import TokenData
from scalinglab.records import LoggingConfig, RunSpec
from scalinglab.train import run_training
from scalinglab.train.checkpoint import load_run_model


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("grow") / "RUN"
    spec = RunSpec(
        shape=ModelShape(d_model=32, n_layers=2, vocab=262, seq_len=32, n_heads=2),
        data=str(tiny_data),
        steps=24,
        batch_size=4,
        lr=3e-3,
        seed=3,
        logging=LoggingConfig(eval_batches=4, tensorboard=False),
    )
    run_training(spec, out, progress=False)
    return out


def _val_loss(folder, data):
    model, spec = load_run_model(folder)
    w = torch.from_numpy(TokenData(data).val_windows(spec.shape.seq_len, 16).astype("int64"))
    with torch.no_grad():
        return model(w[:, :-1], w[:, 1:])[1].item(), spec


def _grow(args):
    with pytest.raises(SystemExit) as e:
        main(["grow", *args])
    return e.value.code


@pytest.mark.slow
def test_grow_width_then_resume(run, tiny_data, capsys):
    grown = run.parent / "GROWN"
    main(["grow", str(run), "--width", "2", "--out", str(grown), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert (res["from_shape"], res["to_shape"], res["step"]) == ("32x2", "64x2", 24)
    for f in ("config.toml", "checkpoint.pt", "record.json", "metrics.jsonl"):
        assert (grown / f).is_file()
    assert (grown / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    before, _ = _val_loss(run, tiny_data)
    after, spec = _val_loss(grown, tiny_data)
    assert abs(before - after) < 1e-4
    assert spec.shape.d_model == 64 and spec.shape.n_heads == 4
    assert RunSpec.from_toml((grown / "config.toml").read_text()).shape == spec.shape
    rec = json.loads((grown / "record.json").read_text())
    assert rec["status"] == "pending" and rec["params"] == spec.shape.params()

    old = torch.load(run / "checkpoint.pt", weights_only=True)["optimizer"]["state"]
    new = torch.load(grown / "checkpoint.pt", weights_only=True)["optimizer"]["state"]
    assert len(old) == len(new)  # every parameter keeps (mapped) Adam state
    # parameter 0 is wte (the first >=2-D weight): its copied columns carry half the first moment
    assert torch.equal(new[0]["exp_avg"][:, 32:], old[0]["exp_avg"] / 2)

    spec.steps = 36  # 12 more steps, LR re-warmed over 4
    spec.logging = replace(spec.logging, eval_every=4, tensorboard=False)
    spec.schedule = replace(spec.schedule, restart_warmup_steps=4)
    rec = run_training(spec, grown, resume=True, progress=False)
    assert rec.status == "done" and rec.steps_done == 36
    vals = [json.loads(l) for l in (grown / "metrics.jsonl").read_text().splitlines()]
    post = [v["val_loss"] for v in vals if "val_loss" in v and v["step"] > 24]
    assert post and max(post) <= before + 1e-3, (before, post)
    assert post[-1] < before
    # compute: the first 24 steps at the small model's cost, the last 12 at the grown model's
    small = json.loads((run / "record.json").read_text())
    tps = spec.tokens_per_step
    assert rec.flops == pytest.approx(
        small["flops"] + 12 * tps * spec.shape.flops_per_token(spec.convention), rel=1e-12
    )


@pytest.mark.slow
def test_grow_depth_append_keeps_loss(run, tiny_data):
    grown = run.parent / "GROWN2"
    main(["grow", str(run), "--depth", "2", "--mode", "append", "--out", str(grown)])
    before, _ = _val_loss(run, tiny_data)
    after, spec = _val_loss(grown, tiny_data)
    assert spec.shape.n_layers == 4 and abs(before - after) < 1e-4


def test_bad_input_is_one_line_exit_2(run, tmp_path, capsys):
    assert _grow([str(tmp_path / "nope"), "--width", "2", "--out", str(tmp_path / "G")]) == 2
    assert _grow([str(run), "--out", str(tmp_path / "G")]) == 2  # nothing to grow
    assert _grow([str(run), "--depth", "2", "--mode", "middle", "--out", str(tmp_path / "G")]) == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    assert _grow([str(run), "--width", "2", "--out", str(tmp_path / "full")]) == 2
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err)
    assert not (tmp_path / "G").exists()
