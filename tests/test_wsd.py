"""WSD branches: a branch equals an independent WSD run to its token count, the trunk is untouched by its
branches, FLOPs add up, resume replays them, the planner and the study frame see one point per branch."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError
from scalinglab.records import LoggingConfig, RunSpec, RuntimeConfig, ScheduleConfig
from scalinglab.train.wsd import read_branches

SHAPE = ModelShape(d_model=32, n_layers=1, vocab=262, seq_len=32)
TPS = 4 * 32  # batch_size * seq_len


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids spin-wait contention."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _spec(data, steps, **branches) -> RunSpec:
    return RunSpec(
        shape=SHAPE,
        data=str(data),
        steps=steps,
        batch_size=4,
        lr=3e-3,
        schedule=ScheduleConfig(kind="wsd", warmup_steps=4, decay_frac=0.2, **branches),
        runtime=RuntimeConfig(device="cpu"),
        logging=LoggingConfig(eval_batches=2, tensorboard=False, log_every=1),
    )


def _curve(run):
    return [
        (r["step"], r["train_loss"]) for r in map(json.loads, (Path(run) / "metrics.jsonl").read_text().splitlines())
    ]


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    from scalinglab.train import run_training

    tmp = tmp_path_factory.mktemp("wsd")
    out = {}
    out["branched"] = run_training(
        _spec(tiny_data, 40, branches=[15 * TPS, 25 * TPS, 40 * TPS], branch_budgets=[1.0, 2.0, 3.0]),
        tmp / "branched",
        progress=False,
    )
    out["plain"] = run_training(_spec(tiny_data, 40), tmp / "plain", progress=False)
    out["alone15"] = run_training(_spec(tiny_data, 15), tmp / "alone15", progress=False)
    out["alone25"] = run_training(_spec(tiny_data, 25), tmp / "alone25", progress=False)
    return tmp, out


def test_branch_equals_independent_run(runs):
    tmp, r = runs
    br = read_branches(tmp / "branched")
    assert [b["steps"] for b in br] == [15, 25, 40]
    assert [b["end"] for b in br] == [False, False, True]
    assert br[0]["val_loss"] == pytest.approx(r["alone15"].final_val_loss, abs=1e-5)
    assert br[1]["val_loss"] == pytest.approx(r["alone25"].final_val_loss, abs=1e-5)
    assert br[2]["val_loss"] == r["branched"].final_val_loss
    assert [b["budget"] for b in br] == [1.0, 2.0, 3.0]


def test_trunk_untouched_and_flops_add_up(runs):
    tmp, r = runs
    assert _curve(tmp / "branched") == _curve(tmp / "plain")
    assert r["branched"].final_val_loss == r["plain"].final_val_loss
    fpt = SHAPE.flops_per_token("chinchilla")
    # trunk 40 steps + cooldowns of 3 (15 - 12) and 5 (25 - 20) steps
    assert r["branched"].flops == pytest.approx((40 + 3 + 5) * TPS * fpt, rel=1e-12)
    assert r["plain"].flops == pytest.approx(40 * TPS * fpt, rel=1e-12)
    rec = json.loads((tmp / "branched" / "record.json").read_text())
    assert rec["flops"] == r["branched"].flops
    br = read_branches(tmp / "branched")
    assert [b["flops_at_point"] for b in br] == [s * TPS * fpt for s in (15, 25, 40)]
    assert [b["cooldown_steps"] for b in br] == [3, 5, 8]


def test_resume_replays_branches(runs, tiny_data):
    from scalinglab.train import run_training

    tmp, r = runs
    spec = _spec(tiny_data, 40, branches=[15 * TPS, 25 * TPS, 40 * TPS], branch_budgets=[1.0, 2.0, 3.0])
    spec.logging = replace(spec.logging, checkpoint_every=18)
    a = run_training(spec, tmp / "resumed", progress=False, stop_at_step=18)
    assert a.status == "pending" and len(read_branches(tmp / "resumed")) == 1
    b = run_training(spec, tmp / "resumed", resume=True, progress=False)
    assert b.status == "done"

    def strip(rows):
        return [{k: v for k, v in x.items() if k != "branch_time_s"} for x in rows]

    assert strip(read_branches(tmp / "resumed")) == strip(read_branches(tmp / "branched"))
    assert b.flops == r["branched"].flops


def test_bad_branches(tiny_data, tmp_path):
    from scalinglab.train import run_training

    with pytest.raises(UserError, match="past the run's end"):
        run_training(_spec(tiny_data, 10, branches=[20 * TPS]), tmp_path / "a", progress=False)
    with pytest.raises(UserError, match="inside the warmup"):
        run_training(_spec(tiny_data, 40, branches=[4 * TPS, 40 * TPS]), tmp_path / "b", progress=False)
    with pytest.raises(UserError, match="need schedule 'wsd'"):
        spec = _spec(tiny_data, 40, branches=[40 * TPS])
        run_training(replace(spec, schedule=replace(spec.schedule, kind="cosine")), tmp_path / "c", progress=False)


def test_plan_wsd_regroups_grid_and_saving():
    from scalinglab.plan.isoflop import plan_isoflop
    from scalinglab.plan.wsd import budgets_needed, flop_cost, plan_wsd, saving_bound

    shapes = [ModelShape(d_model=d, n_layers=2, vocab=262, seq_len=64) for d in (64, 128)]
    budgets = [1e12, 2e12, 4e12]
    kw = dict(
        data="DATA",
        train_tokens=10**12,
        batch_size=8,
        min_steps=10,
        base=RunSpec(shape=shapes[0], schedule=ScheduleConfig(kind="wsd")),
    )
    grid = plan_isoflop(budgets, shapes, **kw)
    plan = plan_wsd(budgets, shapes, **kw)
    assert len(plan.runs) == 2 and len(grid.runs) == 6
    for run in plan.runs:
        pts = sorted((p for p in grid.runs if p.spec.shape == run.spec.shape), key=lambda p: p.budget)
        assert run.spec.schedule.branches == tuple(p.tokens for p in pts)
        assert run.spec.schedule.branch_budgets == tuple(budgets)
        assert run.spec.steps == pts[-1].spec.steps and run.spec.schedule.kind == "wsd"
    # budgets 1:2:4 -> S = 1.75; saving (1 - 0.2)(1 - 1/1.75) = 0.342857...
    assert saving_bound(budgets, 0.2) == pytest.approx(0.8 * 0.75 / 1.75)
    cost = flop_cost(plan)
    assert cost["saving"] == pytest.approx(0.8 * 0.75 / 1.75, abs=0.01)  # step rounding only
    assert cost["separate_flops"] == pytest.approx(
        sum(p.spec.steps * p.spec.tokens_per_step * p.flops_per_token for p in grid.runs)
    )
    assert budgets_needed(0.4, 0.2) == pytest.approx(2.0)
    assert budgets_needed(0.85, 0.2) == float("inf")


def test_cli_plan_wsd_and_frame_rows(tiny_data, tmp_path):
    """plan isoflop --schedule wsd -> one run per shape; a branch line in the run folder becomes a frame row."""
    from scalinglab.sweep.store import load_runs_frame

    study = tmp_path / "S"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "scalinglab",
            "plan",
            "isoflop",
            "--data",
            str(tiny_data),
            "--budgets",
            "1e10,2e10,4e10",
            "--shapes",
            "32x1,48x1",
            "--seq-len",
            "32",
            "--batch-size",
            "4",
            "--min-steps",
            "10",
            "--max-epochs",
            "100",
            "--schedule",
            "wsd",
            "--out",
            str(study),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    runs = json.loads(p.stdout)["runs"]
    assert sorted(r["id"] for r in runs) == ["wsd_32x1", "wsd_48x1"]
    df = load_runs_frame(study)
    assert len(df) == 2
    run_dir = Path(df.run_dir[0])
    spec = RunSpec.from_toml((run_dir / "config.toml").read_text())
    toks, budgets = spec.schedule.branches, spec.schedule.branch_budgets
    assert budgets == (1e10, 2e10, 4e10) and len(toks) == 3
    (run_dir / "branches.jsonl").write_text(
        json.dumps(
            {
                "steps": toks[0] // TPS,
                "tokens": toks[0],
                "budget": budgets[0],
                "flops_at_point": 1e10,
                "val_loss": 3.5,
                "branch_flops": 2e9,
                "end": False,
            }
        )
        + "\n"
    )
    df = load_runs_frame(study)
    assert len(df) == 3
    row = df[df.run_id == f"{df.run_id[0]}@{toks[0]}"].iloc[0]
    assert (row.tokens, row.budget, row.final_val_loss, row.status) == (toks[0], 1e10, 3.5, "done")
    assert row.params == df.params[0]
