"""IsoFLOP planning: D = C / flops_per_token, step rounding, dropped runs, minchilla's shape rule, the N_opt report."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA, needs_shared
from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError
from scalinglab.plan.isoflop import fmt_budget, layers_for, parse_range, plan_isoflop

PY = sys.executable


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "scalinglab", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def chinchilla3_n_opt(c: float) -> float:
    """Hoffmann et al. eq. (4) with the approach-3 fit E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28."""
    A, B, a, b = 406.4, 410.7, 0.34, 0.28
    G = (a * A / (b * B)) ** (1 / (a + b))
    return G * (c / 6) ** (b / (a + b))


def test_tokens_steps_follow_flops_per_token():
    shapes = [ModelShape(d, 2, 262, 32) for d in (32, 48, 64)]
    plan = plan_isoflop([3e10, 1e11], shapes, data="D", train_tokens=10**9, batch_size=4, min_steps=1)
    assert len(plan.runs) == 6 and not plan.dropped
    for r in plan.runs:
        fpt = r.spec.shape.flops_per_token("chinchilla")
        tps = 4 * 32
        # the one stop criterion is steps; tokens and spent C are within half a step of the plan
        assert r.spec.steps == round(r.budget / fpt / tps)
        assert r.tokens == r.spec.steps * tps and r.spec.tokens == 0 and r.spec.budget_flops == 0
        assert abs(r.tokens * fpt - r.budget) <= fpt * tps / 2
        assert r.params == r.spec.shape.params()
        assert r.spec.logging.eval_every >= 1 and r.spec.logging.checkpoint_every >= 1
        assert r.spec.logging.checkpoint_minutes == 5.0  # checkpoints at least 5 minutes of training apart
    again = plan_isoflop([3e10], shapes, data="D", train_tokens=10**9, batch_size=4, min_steps=1, checkpoint_minutes=0)
    assert {r.spec.logging.checkpoint_minutes for r in again.runs} == {0.0}


def test_drops_runs_with_too_few_steps_or_repeated_data():
    shapes = [ModelShape(d, 2, 262, 32) for d in (32, 64)]
    # 32x2 at 1e11 reads 365,952 tokens; 64x2 at 3e10 takes 279 steps
    plan = plan_isoflop([3e10, 1e11], shapes, data="D", train_tokens=300_000, batch_size=4, min_steps=300)
    dropped = {d.run_id: d for d in plan.dropped}
    assert dropped["C3e10_64x2"].kind == "steps" and "279 < min_steps 300" in dropped["C3e10_64x2"].reason
    assert dropped["C1e11_32x2"].kind == "epochs" and "1.22 epochs" in dropped["C1e11_32x2"].reason
    assert {r.spec.run_id for r in plan.runs} == {"C3e10_32x2", "C1e11_64x2"}


@needs_shared
def test_minchilla_rule_matches_published_shapes():
    """minchilla (github.com/BenAgro314/CSC2541): d_model 256..1024 step 64, n_layers = n_heads = d_model // 64."""
    rows = list(csv.DictReader(open(SHARED_DATA / "minchilla" / "isoflop_runs.csv")))
    published = {(int(r["d_model"]), int(r["n_layers"]), int(r["n_heads"])) for r in rows}
    ours = set()
    for d in parse_range("256:1024:64"):
        s = ModelShape(d, layers_for(d, "minchilla"), 174, 128)
        ours.add((s.d_model, s.n_layers, s.n_heads))
    assert published <= ours and len(ours) == 13
    assert layers_for(512, "aspect:64") == 8 and layers_for(512, "aspect:128") == 4


def test_published_law_report_brackets():
    shapes = [ModelShape(d, 2, 262, 32) for d in (32, 48, 64)]
    plan = plan_isoflop([3e10, 1e11], shapes, data="D", train_tokens=10**9, batch_size=4)
    rows = {r["budget"]: r for r in plan.law_report}
    for c in (3e10, 1e11):
        assert rows[c]["n_opt"] == pytest.approx(chinchilla3_n_opt(c), rel=1e-9)
    # N_opt(3e10) = 32.3k lies below the smallest model (34,880 params); N_opt(1e11) = 55.6k is inside
    assert rows[3e10]["brackets"] is False and rows[1e11]["brackets"] is True


def test_fmt_budget():
    assert [fmt_budget(c) for c in (3e10, 1e15, 1.5e16, 100.0)] == ["3e10", "1e15", "1.5e16", "1e2"]


def test_cli_plan_json_as_documented(tiny_data, tmp_path):
    out = tmp_path / "STUDY"
    p = cli(
        "plan",
        "isoflop",
        "--data",
        str(tiny_data),
        "--budgets",
        "3e10,1e11,1e12",
        "--shapes",
        "32x2,48x2,64x2",
        "--seq-len",
        "32",
        "--batch-size",
        "4",
        "--out",
        str(out),
        "--json",
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert isinstance(doc["runs"], list) and len(doc["runs"]) + len(doc["dropped"]) == 9
    # ~360k train tokens: every 1e12 run would repeat the data
    assert {d["run_id"] for d in doc["dropped"]} == {"C1e12_32x2", "C1e12_48x2", "C1e12_64x2"}
    assert all("epochs" in d["reason"] for d in doc["dropped"])
    assert (out / "study.toml").is_file() and (out / "study.db").is_file()
    assert sorted(x.name for x in (out / "runs").iterdir()) == sorted(r["id"] for r in doc["runs"])
    from scalinglab.records import RunSpec

    spec = RunSpec.from_toml((out / "runs" / "C1e11_48x2" / "config.toml").read_text())
    assert spec.steps == 1502 and spec.data == str(tiny_data.resolve())
    # planning again into the same folder is refused, nothing changes
    before = (out / "study.toml").read_text()
    p2 = cli(
        "plan",
        "isoflop",
        "--data",
        str(tiny_data),
        "--budgets",
        "3e10",
        "--shapes",
        "32x2",
        "--seq-len",
        "32",
        "--batch-size",
        "4",
        "--out",
        str(out),
    )
    assert p2.returncode == 2 and p2.stderr.startswith("error: ") and len(p2.stderr.strip().splitlines()) == 1
    assert (out / "study.toml").read_text() == before


def test_cli_plan_d_models_range(tmp_path):
    """The minchilla grid on a (meta-only) 1.9e9-character corpus: 13 widths x 4 budgets."""
    data = tmp_path / "BIG"
    data.mkdir()
    meta = {
        "version": 1,
        "vocab_size": 174,
        "dtype": "uint8",
        "tokenizer": {"kind": "chars"},
        "splits": {
            "train": {"tokens": 1_902_092_921, "file": "train.bin"},
            "val": {"tokens": 10**6, "file": "val.bin"},
        },
    }
    (data / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "STUDY"
    p = cli(
        "plan",
        "isoflop",
        "--data",
        str(data),
        "--budgets",
        "1e15,3e15,1e16,3e16",
        "--d-models",
        "256:1024:64",
        "--seq-len",
        "128",
        "--batch-size",
        "128",
        "--out",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    assert "dropped C1e15_1024x16: too few steps (49 < min_steps 50) (--min-steps)" in p.stdout
    assert p.stdout.count("bracketed by the grid") == 4
    from scalinglab.sweep.store import load_runs_frame

    df = load_runs_frame(out)
    assert len(df) == 51 and (df.n_layers == df.d_model // 64).all() and (df.n_heads == df.d_model // 64).all()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--shapes", "32x2", "--d-models", "64:128:64"], "exactly one of"),
        (["--d-models", "256:128:64"], "bad widths '256:128:64'"),
        (["--shapes", "32x2", "--rule", "aspect:x"], None),  # the rule is unused with explicit shapes
        (
            ["--d-models", "64:128:64", "--rule", "wide"],
            "unknown depth rule 'wide'; use minchilla or aspect:R (e.g. aspect:64) (--rule)",
        ),
        (["--shapes", "32x2", "--budgets", "1e5"], "no runs left to plan"),
    ],
)
def test_cli_plan_bad_input(tiny_data, tmp_path, args, needle):
    out = tmp_path / "S"
    base = ["plan", "isoflop", "--data", str(tiny_data), "--seq-len", "32", "--batch-size", "4", "--out", str(out)]
    if "--budgets" not in args:
        base += ["--budgets", "3e10"]
    p = cli(*base, *args)
    if needle is None:
        assert p.returncode == 0, p.stderr
        return
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr
    assert not out.exists() and not [x for x in tmp_path.iterdir() if x.name.startswith(".S.")]


def test_min_layers_floors_the_rules_depth():
    assert [layers_for(d, "minchilla", 4) for d in (32, 128, 256, 320, 512)] == [4, 4, 4, 5, 8]
    assert layers_for(128, "minchilla") == 2 and layers_for(512, "aspect:128", 6) == 6
    with pytest.raises(UserError, match="bad minimum depth -1"):
        layers_for(128, "minchilla", -1)


def test_shallow_shapes_get_a_note_deep_ones_none():
    def notes(shapes):
        plan = plan_isoflop([1e11], shapes, data="D", train_tokens=10**9, batch_size=4)
        return [n for n in plan.notes if "layers deep" in n]

    shallow = notes([ModelShape(32, 2, 262, 32), ModelShape(48, 3, 262, 32), ModelShape(64, 4, 262, 32)])
    assert len(shallow) == 1 and "under 4 layers deep (32x2, 48x3)" in shallow[0] and "64x4" not in shallow[0]
    assert notes([ModelShape(32, 4, 262, 32), ModelShape(64, 5, 262, 32)]) == []
    perceiver = ModelShape(32, 2, 262, 64, arch="perceiver-ar", latents=16)  # its depth means something else
    assert notes([perceiver]) == []
