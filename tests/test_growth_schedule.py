"""`plan staged`: the growth point minimises staged compute (equal dL/dC at equal loss), the LR table of Shen et al. 2022's code,
and the planning path stays free of torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from scalinglab.accounting.shape import ModelShape
from scalinglab.cli import main
from scalinglab.errors import UserError
from scalinglab.growth.schedule import SEED_CONSTANTS, plan_staged, small_shape
from scalinglab.laws.published import get_law

BASE = ModelShape(d_model=768, n_layers=12, vocab=50257, seq_len=1024, n_heads=12)  # GPT2_base


def test_seed_lr_table_for_gpt2_base():
    # Shen et al. 2022's code: GPT2_base 0.002132892651963921, _div2_width 0.002216880020754172, _div2_depth 0.0021748863363590465
    law = get_law("chinchilla-approach-3")
    w = plan_staged(law, BASE, 1e19, op="width")
    d = plan_staged(law, BASE, 1e19, op="depth")
    assert w.lr_target == pytest.approx(0.002132892651963921, rel=1e-12)
    assert w.lr_small == pytest.approx(0.002216880020754172, rel=1e-12)
    assert d.lr_small == pytest.approx(0.0021748863363590465, rel=1e-12)
    assert (w.seed_threshold, w.seed_constant) == (-0.0475, 1.776)
    assert SEED_CONSTANTS["threshold_optimality"] == -0.052


@pytest.mark.parametrize("name", ["chinchilla-approach-3", "epoch-approach-3", "kaplan"])
@pytest.mark.parametrize("op", ["width", "depth", "width+depth"])
def test_grow_point_minimises_staged_compute(name, op):
    law = get_law(name)
    emb = name != "kaplan"
    p = plan_staged(law, BASE, 2e19, op=op)
    n_s, n_l = small_shape(BASE, op).params(embeddings=emb), BASE.params(embeddings=emb)
    # the rule: equal loss-vs-compute slopes at equal loss
    assert p.slope_small == pytest.approx(p.slope_target, rel=1e-3)
    # brute force, independent of the planner: staged compute C1 + C - C_eff over a grid of growth points
    c1 = np.geomspace(p.grow_flops / 30, p.grow_flops * 3, 4001)
    loss_s = law.predict_loss(n_s, c1 / (6 * n_s))
    d_eff = _tokens_for_loss(law, n_l, loss_s)
    staged = c1 + 2e19 - 6 * n_l * d_eff
    assert p.staged_flops <= staged.min() * (1 + 1e-6)
    assert p.staged_flops == pytest.approx(staged.min(), rel=1e-4)
    assert 0 < p.saving_pct < 50
    assert p.grow_loss > p.target_loss
    assert law.predict_loss(n_l, p.effective_tokens) == pytest.approx(p.grow_loss, rel=1e-9)


def _tokens_for_loss(law, n, loss):  # plain bisection in log D
    lo, hi = np.zeros_like(loss), np.full_like(loss, 70.0)
    for _ in range(100):
        mid = (lo + hi) / 2
        above = law.predict_loss(n, np.exp(mid)) > loss
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.exp(lo)


def test_bad_shapes_and_laws():
    with pytest.raises(UserError):
        small_shape(BASE.with_(n_layers=11), "depth")
    with pytest.raises(UserError):
        small_shape(BASE, "sideways")
    with pytest.raises(UserError):
        plan_staged(get_law("chinchilla-approach-1"), BASE, 1e19)


def test_cli_plan_staged_json_and_law_json(tmp_path, capsys):
    law_file = tmp_path / "law.json"
    law_file.write_text(get_law("epoch-approach-3").to_json())
    main(
        [
            "plan",
            "staged",
            "--shape",
            "768x12",
            "--tokens",
            "2.5e9",
            "--law-json",
            str(law_file),
            "--tokens-per-step",
            "524288",
            "--json",
        ]
    )
    p = json.loads(capsys.readouterr().out)
    assert p["small_shape"] == "384x12" and p["target_shape"] == "768x12"
    assert p["rejoin_step"] < p["grow_step"] < p["total_steps_direct"]
    assert p["budget_flops"] == pytest.approx(6 * BASE.params() * 2.5e9)
    with pytest.raises(SystemExit) as e:
        main(["plan", "staged", "--shape", "768x12", "--budget", "1e19", "--tokens", "1e9"])
    assert e.value.code == 2


def test_planning_path_imports_no_torch():
    code = (
        "import sys; from scalinglab.growth.schedule import plan_staged; from scalinglab.laws.published import get_law;"
        "from scalinglab.accounting.shape import ModelShape;"
        "plan_staged(get_law('chinchilla-approach-3'), ModelShape(256, 4, 1000, 128), 1e16);"
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
