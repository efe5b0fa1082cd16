"""RunSpec's sections (schedule, runtime, logging, origin): round trips, and the forms earlier versions wrote
(flat settings, an untyped `extra` table, flat shape keys) still load, from config files, records and study stores."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace

import pytest

from scalinglab.accounting.shape import ModelShape
from scalinglab.folders import RunDir, StudyDir
from scalinglab.records import LoggingConfig, Origin, RunRecord, RunSpec, RuntimeConfig, ScheduleConfig, upgrade

# RUN/config.toml as scalinglab wrote it before the sections (RunSpec.to_toml of that version, verbatim).
OLD_TOML = """data = "/d"
steps = 40
tokens = 0
budget_flops = 0.0
convention = "chinchilla"
batch_size = 4
grad_accum = 1
lr = 0.0
schedule = "wsd"
warmup_steps = 4
min_lr_ratio = 0.1
decay_frac = 0.25
optimizer = "adamw"
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
seed = 0
eval_every = 5
eval_batches = 2
checkpoint_every = 10
device = "cpu"
dtype = "fp32"
compile = true
activation_checkpointing = true
run_id = "wsd_32x2"

[shape]
d_model = 32
n_layers = 2
vocab = 262
seq_len = 32
arch = "gpt"
n_heads = 1
mlp_ratio = 4
bias = true
pos = "learned"
tied = true
latents = 0
prefix_dropout = 0.0

[extra]
branches = [
    1280,
    5120,
]
branch_budgets = [
    1000000000000.0,
    4000000000000.0,
]
isoflop_budget = 4000000000000.0
log_every = 1
tensorboard = false
threads = 2
compile_mode = "max-autotune-no-cudagraphs"
restart_steps = 12
restart_warmup_steps = 3
reset_schedule = true
grown_from = "/runs/a"

[extra.growth]
width = 2
depth = 1
mode = "alternate"
noise = 0.0
at_step = 12
from_shape = "16x2"
"""

# RUN/record.json of that version (RunRecord.to_dict), verbatim.
OLD_RECORD = json.loads(
    '{"spec": {"shape": {"d_model": 32, "n_layers": 2, "vocab": 262, "seq_len": 32, "arch": "gpt", "n_heads": 1, "mlp_ratio": 4, "bias": true, "pos": "learned", "tied": true, "latents": 0, "prefix_dropout": 0.0}, "data": "/d", "steps": 40, "tokens": 0, "budget_flops": 0.0, "convention": "chinchilla", "batch_size": 4, "grad_accum": 1, "lr": 0.0, "schedule": "wsd", "warmup_steps": 4, "min_lr_ratio": 0.1, "decay_frac": 0.25, "optimizer": "adamw", "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "grad_clip": 1.0, "seed": 0, "eval_every": 5, "eval_batches": 2, "checkpoint_every": 10, "device": "cpu", "dtype": "fp32", "compile": true, "activation_checkpointing": true, "run_id": "wsd_32x2", "extra": {"branches": [1280, 5120], "branch_budgets": [1000000000000.0, 4000000000000.0], "isoflop_budget": 4000000000000.0, "log_every": 1, "tensorboard": false, "threads": 2, "compile_mode": "max-autotune-no-cudagraphs", "restart_steps": 12, "restart_warmup_steps": 3, "reset_schedule": true, "grown_from": "/runs/a", "growth": {"width": 2, "depth": 1, "mode": "alternate", "noise": 0.0, "at_step": 12, "from_shape": "16x2"}}}, "status": "done", "final_val_loss": 2.5, "min_val_loss": null, "final_train_loss": null, "steps_done": 40, "tokens": 5120, "flops": 0.0, "convention": "chinchilla", "params": 0, "wall_time_s": 0.0, "model_flops_per_s": 0.0, "device": "", "message": "", "curve": "metrics.jsonl"}'
)

EXPECTED = RunSpec(
    shape=ModelShape(d_model=32, n_layers=2, vocab=262, seq_len=32),
    data="/d",
    steps=40,
    batch_size=4,
    run_id="wsd_32x2",
    schedule=ScheduleConfig(
        kind="wsd",
        warmup_steps=4,
        decay_frac=0.25,
        restart_steps=12,
        restart_warmup_steps=3,
        reset=True,
        branches=(1280, 5120),
        branch_budgets=(1e12, 4e12),
    ),
    runtime=RuntimeConfig(
        device="cpu",
        dtype="fp32",
        compile=True,
        compile_mode="max-autotune-no-cudagraphs",
        activation_checkpointing=True,
        threads=2,
    ),
    logging=LoggingConfig(log_every=1, eval_every=5, eval_batches=2, checkpoint_every=10, tensorboard=False),
    origin=Origin(
        planned_budget=4e12,
        grown_from="/runs/a",
        growth={"width": 2, "depth": 1, "mode": "alternate", "noise": 0.0, "at_step": 12, "from_shape": "16x2"},
    ),
)


def test_old_config_file_loads_into_sections():
    assert RunSpec.from_toml(OLD_TOML) == EXPECTED


def test_old_record_loads_through_the_run_folder(tmp_path):
    run = RunDir(tmp_path / "RUN")
    run.path.mkdir()
    run.record.write_text(json.dumps(OLD_RECORD))
    rec = run.read_record()
    assert rec.spec == EXPECTED and rec.status == "done" and rec.final_val_loss == 2.5 and rec.tokens == 5120


def test_round_trips():
    d = EXPECTED.to_dict()
    assert RunSpec.from_dict(d) == EXPECTED
    assert RunSpec.from_dict(json.loads(json.dumps(d))) == EXPECTED
    assert RunSpec.from_toml(EXPECTED.to_toml()) == EXPECTED
    assert set(d) >= {"schedule", "runtime", "logging", "origin"} and "extra" not in d
    assert d["schedule"]["branches"] == [1280, 5120]  # plain lists in JSON and TOML
    rec = RunRecord(spec=EXPECTED, status="diverged", final_val_loss=None, message="x")
    assert RunRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec


def test_one_name_per_field():
    """The written form has each setting once, under one name; flat shape keys are read, never written."""
    d = EXPECTED.to_dict()
    names = [k for k, v in d.items() if not isinstance(v, dict)]
    for section in ("schedule", "runtime", "logging", "origin"):
        names += list(d[section])
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    written = tomllib.loads(EXPECTED.to_toml())
    assert not {"layers", "heads", "n_layers", "d_model", "extra"} & set(written)
    assert not {"layers", "heads"} & set(written["shape"])
    flat = upgrade({"d_model": 16, "layers": 1, "heads": 1, "vocab": 262, "seq_len": 16, "budget": 1e9})
    assert flat["shape"] == {"d_model": 16, "n_layers": 1, "n_heads": 1, "vocab": 262, "seq_len": 16}
    assert flat["budget_flops"] == 1e9


def test_sectioned_value_wins_over_a_legacy_one():
    d = upgrade({"shape": EXPECTED.shape.to_dict(), "eval_every": 3, "logging": {"eval_every": 7}})
    assert d["logging"]["eval_every"] == 7


def test_sections_are_frozen_and_specs_do_not_share_them():
    a = RunSpec(shape=EXPECTED.shape)
    b = replace(a, logging=replace(a.logging, eval_every=9))
    assert a.logging.eval_every == 0 and b.logging.eval_every == 9
    with pytest.raises(AttributeError):
        a.logging.eval_every = 3  # type: ignore[misc]


def test_old_study_store_runs_prepare_and_load(tmp_path):
    """A study planned by the earlier version: the store's spec JSON is the old dict; the sweep writes the run's
    config from it in today's form, which loads back to the same spec."""
    from scalinglab.sweep import runs as R
    from scalinglab.sweep.store import Store, load_runs_frame

    study = StudyDir(tmp_path / "S")
    study.path.mkdir()
    study.settings_file.write_text('[study]\nkind = "isoflop"\n')
    rel = study.run_rel("wsd_32x2")
    with Store(study.path, create=True) as st:
        st.add_runs(
            [
                {
                    "id": "wsd_32x2",
                    "spec": OLD_RECORD["spec"],
                    "budget": 4e12,
                    "arch": "gpt",
                    "d_model": 32,
                    "n_layers": 2,
                    "n_heads": 1,
                    "params": 1,
                    "planned_tokens": 5120,
                    "steps": 40,
                    "run_dir": rel,
                }
            ]
        )
        row = st.runs()[0]
    run = study.run(rel)
    run.path.mkdir(parents=True)
    assert R.prepare(run.path, json.loads(row["spec"])) is None
    assert run.read_spec() == EXPECTED
    assert "[schedule]" in run.config.read_text() and "[extra]" not in run.config.read_text()
    assert load_runs_frame(study.path).run_id.tolist() == ["wsd_32x2"]
