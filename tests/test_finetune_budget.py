"""finetune-budget (Cerisara's exercise "Make your scaling law") on a model our trainer pretrained: the protocol, its curves, the isoFLOP summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.cli import main
from scalinglab.finetune import Protocol, finetune_budget, isoflop, order, samples
from scalinglab.records import RunSpec

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def pretrained(tiny_data, tmp_path_factory):
    """(RUN, HF): a tiny GPT pretrained by scalinglab's trainer, and its transformers export."""
    from scalinglab.hf import export_hf
    from scalinglab.records import LoggingConfig
    from scalinglab.train import run_training

    root = tmp_path_factory.mktemp("ft")
    spec = RunSpec(
        shape=ModelShape(d_model=32, n_layers=2, vocab=262, seq_len=32, n_heads=2),
        data=str(tiny_data),
        steps=30,
        batch_size=4,
        lr=3e-3,
        seed=5,
        logging=LoggingConfig(tensorboard=False),
    )
    assert run_training(spec, root / "RUN", progress=False).status == "done"
    export_hf(root / "RUN", root / "HF")
    return root / "RUN", root / "HF"


def test_order_is_epochs_of_shuffles():
    idx = order(5, 20, seed=0)
    assert len(idx) == 20 and all(sorted(idx[i : i + 5]) == list(range(5)) for i in range(0, 20, 5))
    idx = order(20, 7, seed=0)  # fewer steps than samples: part of one epoch, no repeats
    assert len(set(idx)) == 7 and max(idx) < 20
    assert (order(20, 7, seed=1) != idx).any()


def test_cli_as_written(pretrained, tiny_data, tmp_path, capsys):
    _, hf = pretrained
    out = tmp_path / "FB"
    main(
        [
            "finetune-budget",
            "--model",
            str(hf),
            "--data",
            str(tiny_data),
            "--steps",
            "20",
            "--data-sizes",
            "20,10,5",
            "--batch-size",
            "1",
            "--seq-len",
            "32",
            "--eval-samples",
            "4",
            "--eval-every",
            "1",
            "--out",
            str(out),
            "--json",
        ]
    )
    res = json.loads(capsys.readouterr().out)
    rows = res["rows"]
    assert [(r["data_size"], r["epochs"], r["steps"]) for r in rows] == [(20, 1.0, 20), (10, 2.0, 20), (5, 4.0, 20)]
    for r in rows:
        assert {"data_size", "epochs", "final_val_loss", "best_val_loss"} <= set(r)
        assert r["best_val_loss"] <= r["final_val_loss"] and 1 <= r["best_step"] <= 20
        assert r["tokens"] == 20 * 32 and r["flops"] == 6 * r["params"] * 20 * 32
    assert len({r["initial_val_loss"] for r in rows}) == 1  # every data size starts from the same model
    saved = json.loads((out / "results.json").read_text())
    for curve in saved["curves"].values():
        assert [c["step"] for c in curve] == list(range(21))  # evaluated before training and after every step
        assert curve[1]["lr"] == 1e-4 and curve[-1]["lr"] == pytest.approx(1e-4 / 20)  # linear decay to 0
    assert len((out / "curves.csv").read_text().splitlines()) == 1 + 3 * 21
    for png in ("finetune_budget.png", "curves.png"):
        assert (out / png).read_bytes()[:8] == PNG


def test_default_evaluates_about_ten_times_and_agrees_with_every_step(pretrained, tiny_data):
    """Without eval_every the curve is validated every ceil(steps/10) steps, at the same values per-step
    evaluation gives there (evaluation does not touch the training), and best/final come from those points."""
    _, hf = pretrained
    every = finetune_budget(
        [str(hf)],
        tiny_data,
        [5],
        Protocol(steps=25, seq_len=32, eval_samples=3, eval_every=1),
        device="cpu",
        progress=False,
    )
    auto = finetune_budget(
        [str(hf)], tiny_data, [5], Protocol(steps=25, seq_len=32, eval_samples=3), device="cpu", progress=False
    )
    ce, ca = every["curves"][f"{hf}|5"], auto["curves"][f"{hf}|5"]
    assert [c["step"] for c in ca if c["val_loss"] is not None] == [0, 3, 6, 9, 12, 15, 18, 21, 24, 25]
    for a, e in zip(ca, ce):
        assert a["train_loss"] == e["train_loss"]
        if a["val_loss"] is not None:
            assert a["val_loss"] == pytest.approx(e["val_loss"], abs=1e-6)
    row = auto["rows"][0]
    assert row["eval_every"] == 3 and row["final_val_loss"] == ca[-1]["val_loss"]
    assert row["best_val_loss"] == min(c["val_loss"] for c in ca[1:] if c["val_loss"] is not None)


def test_protocol_matches_an_hf_trainer_style_loop(pretrained, tiny_data):
    """Independent reference: the model's own shifted-label loss, transformers' linear schedule, AdamW,
    clip 1.0, eval batch 1 -- the HF Trainer's arithmetic for the exercise's arguments."""
    from transformers import AutoModelForCausalLM, get_linear_schedule_with_warmup

    from scalinglab.data.loader import TokenData

    _, hf = pretrained
    p = Protocol(steps=6, seq_len=32, eval_samples=3)
    res = finetune_budget([str(hf)], tiny_data, [4], p, device="cpu", progress=False)
    got = [c["val_loss"] for c in res["curves"][f"{hf}|4"]]

    td = TokenData(tiny_data)
    train = torch.from_numpy(samples(td.split("train"), 32, 4, "train"))
    val = torch.from_numpy(samples(td.split("val"), 32, 3, "val"))
    m = AutoModelForCausalLM.from_pretrained(str(hf), local_files_only=True)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.0)
    sched = get_linear_schedule_with_warmup(opt, 0, 6)

    def evaluate():
        m.eval()
        with torch.no_grad():
            return float(np.mean([m(input_ids=v[None], labels=v[None]).loss.item() for v in val]))

    want = [evaluate()]
    for i in order(4, 6, seed=0):
        m.train()
        loss = m(input_ids=train[i][None], labels=train[i][None]).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        sched.step()
        want.append(evaluate())
    assert np.allclose(got, want, atol=2e-5, rtol=0)
    assert want[-1] != want[0]


def test_run_and_export_agree_and_zero_lr_is_flat(pretrained, tiny_data):
    run, hf = pretrained
    p = Protocol(steps=3, seq_len=32, eval_samples=2, lr=0.0)
    a = finetune_budget([str(run)], tiny_data, [2], p, device="cpu", progress=False)
    b = finetune_budget([str(hf)], tiny_data, [2], p, device="cpu", progress=False)
    ca, cb = a["curves"][f"{run}|2"], b["curves"][f"{hf}|2"]
    assert max(abs(x["val_loss"] - y["val_loss"]) for x, y in zip(ca, cb)) < 1e-5
    assert max(c["val_loss"] for c in ca) - min(c["val_loss"] for c in ca) < 1e-6  # lr 0: nothing moves
    assert a["rows"][0]["params"] == b["rows"][0]["params"]


def test_isoflop_finds_the_parabola_vertex():
    n_opt, rows = 3e6, []
    for n in (1e6, 2e6, 4e6, 8e6):
        loss = 2.0 + 0.7 * (math.log10(n) - math.log10(n_opt)) ** 2
        rows += [
            {"model": f"m{n:g}", "params": n, "steps": 1, "data_size": d, "final_val_loss": loss + extra}
            for d, extra in ((10, 0.3), (40, 0.0), (160, 0.1))
        ]
    iso = isoflop(rows)
    assert [q["data_size"] for q in iso["points"]] == [40] * 4
    assert iso["optimal_params"] == 4e6  # the lowest measured point: log10(4/3) < log10(3/2)
    assert iso["fit"]["params_opt"] == pytest.approx(n_opt, rel=1e-6)
    assert iso["fit"]["loss_opt"] == pytest.approx(2.0, abs=1e-9) and iso["note"] == ""


def test_isoflop_fits_no_parabola_when_the_minimum_is_not_bracketed():
    # losses falling all the way to the largest model (as a too-small grid gives): the lowest point is at the edge
    rows = [
        {"model": f"m{n:g}", "params": n, "steps": 1, "data_size": 10, "final_val_loss": 3.0 - 0.2 * i + 0.05 * i * i}
        for i, n in enumerate((1e4, 3e4, 1e5))
    ]
    iso = isoflop(rows)
    assert iso["optimal_model"] == "m100000" and iso["fit"] is None
    assert iso["note"].startswith("minimum not bracketed: the lowest loss is at the largest model")


def test_several_models_share_one_compute_budget(tiny_data, tmp_path, capsys):
    from scalinglab.models import build_model
    from scalinglab.train.checkpoint import save_checkpoint

    paths = []
    for d in (16, 32):
        shape = ModelShape(d_model=d, n_layers=1, vocab=262, seq_len=16, n_heads=2)
        spec = RunSpec(shape=shape, data=str(tiny_data), steps=1)
        run = tmp_path / f"m{d}"
        run.mkdir()
        (run / "config.toml").write_text(spec.to_toml())
        save_checkpoint(
            run / "checkpoint.pt",
            {"model": build_model(shape).state_dict(), "spec": spec.to_dict(), "step": 0, "optimizer": None},
        )
        paths.append((run, shape.params()))
    C = 6.0 * paths[1][1] * 4 * 16  # 4 steps of the larger model
    main(
        [
            "finetune-budget",
            "--models",
            ",".join(str(p) for p, _ in paths),
            "--data",
            str(tiny_data),
            "--data-sizes",
            "4,2",
            "--seq-len",
            "16",
            "--eval-samples",
            "2",
            "--budget-flops",
            str(C),
            "--out",
            str(tmp_path / "FB"),
            "--json",
        ]
    )
    res = json.loads(capsys.readouterr().out)
    steps = {r["model"]: r["steps"] for r in res["rows"]}
    for p, n in paths:
        assert steps[str(p)] == round(C / (6 * n * 16))
    assert steps[str(paths[1][0])] == 4 and steps[str(paths[0][0])] > 4  # the smaller model trains longer
    assert res["isoflop"]["optimal_model"] in steps
    assert (tmp_path / "FB" / "isoflop.png").read_bytes()[:8] == PNG


def test_bad_input_exits_2(pretrained, tiny_data, tmp_path, capsys):
    _, hf = pretrained
    base = [
        "finetune-budget",
        "--model",
        str(hf),
        "--data",
        str(tiny_data),
        "--out",
        str(tmp_path / "FB"),
        "--steps",
        "2",
    ]
    for extra, word in (
        (["--data-sizes", "10000000"], "fewer than"),
        (["--seq-len", "64"], "longer than the context"),
        (["--data-sizes", "a,b"], "bad --data-sizes"),
    ):
        with pytest.raises(SystemExit) as e:
            main(base + extra)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert word in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "FB").exists()
