"""muP (Yang et al. 2022, "Tensor Programs V"): a coordinate check (after a few Adam steps at one LR, the logits'
scale stays O(1) across widths under muP while it grows with width under the standard parametrization, and wider
is better under muP at a fixed LR), parameter counts unchanged, HF export with the same logits, growth refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError
from scalinglab.models import build_model
from scalinglab.records import RunSpec
from scalinglab.train.optim import build_optimizer

WIDTHS = (32, 64, 128, 256)


def coord_check(mup_base: int, lr: float = 1e-2, steps: int = 3) -> list[tuple[float, float]]:
    """(std of the logits' change from init, loss) after `steps` Adam steps on one fixed batch, per width."""
    out = []
    for d in WIDTHS:
        torch.manual_seed(0)
        s = ModelShape(d, 2, 64, 32, mup_base=mup_base)
        m = build_model(s)
        opt = build_optimizer(m, RunSpec(shape=s), lr, "cpu")
        x = torch.randint(0, 64, (16, 33), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            logits0 = m(x[:, :-1])[0]
        for _ in range(steps):
            for g in opt.param_groups:  # as the trainer's train_step sets it
                g["lr"] = lr * g.get("lr_scale", 1.0)
            _, loss = m(x[:, :-1], x[:, 1:])
            loss.backward()
            opt.step()
            opt.zero_grad()
        with torch.no_grad():
            logits, loss = m(x[:, :-1], x[:, 1:])
        out.append(((logits - logits0).std().item(), loss.item()))
    return out


def test_coordinate_check_mup_keeps_scale_sp_does_not():
    sp, mup = coord_check(0), coord_check(32)
    sp_std, mup_std = [s for s, _ in sp], [s for s, _ in mup]
    assert sp_std[-1] / sp_std[0] > 3.0  # SP: the update of the logits grows ~ width at a fixed Adam LR
    assert max(mup_std) / min(mup_std) < 1.5  # muP: O(1) at every width
    sp_loss, mup_loss = [l for _, l in sp], [l for _, l in mup]
    assert all(a >= b for a, b in itertools.pairwise(mup_loss))  # muP: wider is better at the same LR
    assert sp_loss[-1] > sp_loss[0]  # SP: the LR tuned for the narrow model is too high for the wide one


def test_mup_groups_and_param_count():
    s = ModelShape(128, 2, 262, 32, mup_base=32)
    m = build_model(s)
    assert m.num_params() == s.params() == ModelShape(128, 2, 262, 32).params()
    opt = build_optimizer(m, RunSpec(shape=s), 1e-3, "cpu")
    scaled = [g for g in opt.param_groups if "lr_scale" in g]
    assert len(scaled) == 1 and scaled[0]["lr_scale"] == pytest.approx(0.25)
    assert len(scaled[0]["params"]) == 4 * 2  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    # SP optimizers are built as before: two groups, no lr_scale
    assert [
        ("lr_scale" in g)
        for g in build_optimizer(
            build_model(ModelShape(128, 2, 262, 32)), RunSpec(shape=ModelShape(128, 2, 262, 32)), 1e-3, "cpu"
        ).param_groups
    ] == [False, False]


def test_mup_export_same_logits(tmp_path):
    pytest.importorskip("transformers")
    from scalinglab.hf import export_hf
    from test_hf_export import handmade_run, hf_logits

    shape = ModelShape(d_model=64, n_layers=2, vocab=100, seq_len=16, n_heads=2, mup_base=16)
    run, model = handmade_run(tmp_path / "RUN", shape, seed=4)
    export_hf(run, tmp_path / "HF")
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 100, size=(2, 16)))
    with torch.no_grad():
        ours = model.eval()(x)[0]
    assert torch.allclose(ours, hf_logits(tmp_path / "HF", x), atol=1e-5, rtol=0)


def test_mup_refused_where_it_does_not_apply():
    from scalinglab.growth.operators import check_growable

    with pytest.raises(UserError, match="muP"):
        check_growable(ModelShape(64, 2, 100, 16, mup_base=32), width=2)
    with pytest.raises(UserError, match="muP"):
        build_model(ModelShape(64, 2, 100, 16, arch="perceiver-ar", latents=8, mup_base=32))


def test_planned_mup_runs_share_the_base_width_lr():
    from scalinglab.plan.isoflop import plan_isoflop
    from scalinglab.plan.recipe import Recipe

    shapes = [ModelShape(d, 2, 262, 32, mup_base=32) for d in (32, 64, 128)]
    plan = plan_isoflop([1e11], shapes, data="D", train_tokens=10**9, batch_size=4, min_steps=1)
    lrs = {r.spec.lr for r in plan.runs}
    assert len(plan.runs) == 3 and lrs == {Recipe().lr(ModelShape(32, 2, 262, 32))}


def test_trainer_applies_mups_lr_scale(tiny_data, tmp_path):
    """Adam's first step moves each weight by about its group's LR: the trainer's muP hidden weights move lr/m."""
    from scalinglab.records import LoggingConfig, ScheduleConfig
    from scalinglab.train import run_training
    from scalinglab.train.checkpoint import load_checkpoint

    shape = ModelShape(64, 1, 262, 32, mup_base=16)  # width_mult 4
    spec = RunSpec(
        shape=shape,
        data=str(tiny_data),
        steps=1,
        batch_size=4,
        lr=1e-3,
        weight_decay=0.0,
        seed=5,
        schedule=ScheduleConfig(kind="constant", warmup_steps=1),
        logging=LoggingConfig(tensorboard=False),
    )
    assert run_training(spec, tmp_path / "RUN", progress=False).status == "done"
    torch.manual_seed(spec.seed)
    init = build_model(shape).state_dict()
    after = load_checkpoint(tmp_path / "RUN" / "checkpoint.pt")["model"]
    hidden = (after["transformer.h.0.mlp.c_fc.weight"] - init["transformer.h.0.mlp.c_fc.weight"]).abs()
    emb = (after["transformer.wte.weight"] - init["transformer.wte.weight"]).abs()
    assert hidden.max().item() == pytest.approx(1e-3 / 4, rel=0.01)
    assert emb.max().item() == pytest.approx(1e-3, rel=0.01)
