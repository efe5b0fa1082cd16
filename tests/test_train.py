"""Trainer: learning on real text, exact stop criteria, bit-exact resume, divergence, checkpoint errors, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError
from scalinglab.records import LoggingConfig, RunRecord, RunSpec, ScheduleConfig
from scalinglab.train import run_training
from scalinglab.train.metrics import read_metrics


def spec_for(data, schedule: dict | None = None, logging: dict | None = None, **kw) -> RunSpec:
    shape = kw.pop("shape", None) or ModelShape(d_model=32, n_layers=2, vocab=262, seq_len=32, n_heads=2)
    base = dict(data=str(data), steps=60, batch_size=4, seed=1)
    base.update(kw)
    log = {"eval_every": 20, "checkpoint_every": 20, "eval_batches": 4, "tensorboard": False, **(logging or {})}
    return RunSpec(shape=shape, schedule=ScheduleConfig(**(schedule or {})), logging=LoggingConfig(**log), **base)


NO_EVAL = {"eval_every": 0, "checkpoint_every": 0}


def unigram_entropy_nats(data: Path) -> float:
    ids = np.fromfile(data / "val.bin", dtype=np.uint16)
    p = np.bincount(ids) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_tiny_gpt_learns_below_unigram_entropy(tiny_data, tmp_path):
    spec = spec_for(tiny_data, steps=300, batch_size=8, lr=3e-3, logging=NO_EVAL)
    rec = run_training(spec, tmp_path / "RUN", progress=False)
    h1 = unigram_entropy_nats(tiny_data)
    assert 2.8 < h1 < 3.6  # bytes of Python source
    assert rec.status == "done" and rec.final_val_loss < h1 - 0.6
    on_disk = RunRecord.from_dict(json.loads((tmp_path / "RUN" / "record.json").read_text()))
    assert on_disk.status == "done" and on_disk.final_val_loss == rec.final_val_loss


def test_auto_threads_one_on_a_gpu_and_for_small_cpu_models(tiny_data, tmp_path):
    from dataclasses import replace

    from scalinglab.train.loop import GPU_THREADS, auto_threads

    small = spec_for(tiny_data)
    big = spec_for(tiny_data, shape=ModelShape(d_model=256, n_layers=4, vocab=262, seq_len=32, n_heads=4))
    assert small.shape.params() < 1_000_000 < big.shape.params()
    with_rt = lambda s, **kw: replace(s, runtime=replace(s.runtime, **kw))  # noqa: E731
    assert GPU_THREADS == 1
    assert auto_threads(small, cuda=False) == 1
    assert auto_threads(big, cuda=False) == 0  # torch's own default
    assert auto_threads(big, cuda=True) == GPU_THREADS
    assert auto_threads(with_rt(big, device="cuda:0"), cuda=True) == GPU_THREADS
    assert auto_threads(with_rt(big, device="cpu"), cuda=True) == 0
    assert auto_threads(with_rt(small, device="cpu"), cuda=True) == 1
    assert auto_threads(with_rt(big, threads=3), cuda=True) == 3
    assert auto_threads(with_rt(big, threads=3), cuda=False) == 3
    before = torch.get_num_threads()
    run_training(spec_for(tiny_data, steps=2, logging=NO_EVAL), tmp_path / "RUN", progress=False)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("minutes,expected", [(0.0, [10, 20, 30, 40, 50, 60]), (60.0, [60])])
def test_checkpoint_minutes_is_a_floor_between_periodic_checkpoints(
    tiny_data, tmp_path, monkeypatch, minutes, expected
):
    from scalinglab.train.loop import Trainer

    steps, original = [], Trainer.checkpoint

    def record(self, step):
        steps.append(step)
        original(self, step)

    monkeypatch.setattr(Trainer, "checkpoint", record)
    spec = spec_for(tiny_data, logging={"eval_every": 0, "checkpoint_every": 10, "checkpoint_minutes": minutes})
    rec = run_training(spec, tmp_path / "RUN", progress=False)
    assert rec.status == "done" and steps == expected  # the last step is always checkpointed


def test_run_folder_contract(tiny_data, tmp_path):
    spec = spec_for(tiny_data, steps=40, logging={"log_every": 10})
    rec = run_training(spec, tmp_path / "RUN", progress=False)
    run = tmp_path / "RUN"
    assert RunSpec.from_toml((run / "config.toml").read_text()) == spec
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    fpt = spec.shape.flops_per_token("chinchilla")
    for r in rows:
        assert {"step", "tokens", "flops", "lr", "train_loss", "time_s"} <= set(r)
        assert r["tokens"] == r["step"] * 4 * 32 and r["flops"] == pytest.approx(r["tokens"] * fpt, rel=1e-12)
    assert [("val_loss" in r) for r in rows] == [False, True, False, True]
    assert rec.final_val_loss == rows[-1]["val_loss"] and rec.min_val_loss == min(
        r["val_loss"] for r in rows if "val_loss" in r
    )
    assert rec.params == spec.shape.params() and rec.convention == "chinchilla" and rec.flops == rows[-1]["flops"]


def test_stop_exactly_at_budget_and_tokens(tiny_data, tmp_path):
    shape = ModelShape(d_model=16, n_layers=1, vocab=262, seq_len=16, n_heads=1)
    fps = shape.flops_per_token("chinchilla") * 2 * 16  # batch 2
    spec = spec_for(tiny_data, shape=shape, steps=0, budget_flops=7.5 * fps, batch_size=2, logging=NO_EVAL)
    rec = run_training(spec, tmp_path / "A", progress=False)
    assert rec.steps_done == 8 and rec.flops == 8 * fps  # the smallest step count that reaches the budget
    spec = spec_for(tiny_data, shape=shape, steps=0, tokens=5 * 32, batch_size=2, logging=NO_EVAL)
    rec = run_training(spec, tmp_path / "B", progress=False)
    assert rec.steps_done == 5 and rec.tokens == 160
    with pytest.raises(UserError, match="exactly one of"):
        run_training(spec_for(tiny_data, steps=5, tokens=100), tmp_path / "C", progress=False)


@pytest.mark.parametrize("arch", ["gpt", "perceiver-ar"])
def test_resume_is_bit_exact(tiny_data, tmp_path, arch):
    shape = None
    if arch == "perceiver-ar":  # prefix dropout draws random numbers every step: its RNG must resume too
        shape = ModelShape(
            d_model=32, n_layers=2, vocab=262, seq_len=48, arch=arch, latents=16, n_heads=2, prefix_dropout=0.5
        )
    spec = spec_for(tiny_data, shape=shape, steps=60, logging={"log_every": 5})
    a = run_training(spec, tmp_path / "A", progress=False)
    b1 = run_training(spec, tmp_path / "B", progress=False, stop_at_step=25)
    assert b1.status == "pending" and b1.steps_done == 25
    b = run_training(spec, tmp_path / "B", resume=True, progress=False)
    assert b.status == "done" and b.final_val_loss == a.final_val_loss and b.min_val_loss == a.min_val_loss
    ra, rb = read_metrics(tmp_path / "A"), read_metrics(tmp_path / "B")
    assert [r["step"] for r in rb] == [r["step"] for r in ra]  # no step logged twice
    assert [r["train_loss"] for r in rb] == [r["train_loss"] for r in ra]
    sa = torch.load(tmp_path / "A" / "checkpoint.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "B" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _cli(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "scalinglab", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        **kw,
    )


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tiny_data, tmp_path):
    args = [
        "--data",
        str(tiny_data),
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "1",
        "--seq-len",
        "16",
        "--batch-size",
        "2",
        "--steps",
        "300",
        "--eval-every",
        "100",
        "--checkpoint-every",
        "100",
        "--log-every",
        "5",
        "--seed",
        "3",
        "--no-progress",
    ]
    a = _cli(*args, "--out", str(tmp_path / "A"), "--json")
    out_a, _ = a.communicate(timeout=120)
    assert a.returncode == 0
    b = _cli(*args, "--out", str(tmp_path / "B"))
    ck, deadline = tmp_path / "B" / "checkpoint.pt", time.time() + 60
    # kill once a checkpoint exists and steps past it are logged: with checkpoints 100 steps apart that
    # state lasts ~95 steps, so polling cannot miss it however fast the machine is
    while time.time() < deadline:
        rows = read_metrics(tmp_path / "B") if ck.exists() else []
        if rows and rows[-1]["step"] % 100 != 0:
            break
        time.sleep(0.02)
    b.send_signal(signal.SIGKILL)
    b.wait()
    rows = read_metrics(tmp_path / "B")
    assert rows and rows[-1]["step"] < 300, "run ended before it could be killed"
    c = _cli("--resume", str(tmp_path / "B"), "--json", "--no-progress")
    out_c, err = c.communicate(timeout=120)
    assert c.returncode == 0, err
    assert json.loads(out_c)["final_val_loss"] == json.loads(out_a)["final_val_loss"]
    steps = [r["step"] for r in read_metrics(tmp_path / "B")]
    assert steps == sorted(set(steps)) and steps == [r["step"] for r in read_metrics(tmp_path / "A")]


def test_divergence_keeps_last_good_checkpoint(tiny_data, tmp_path, capsys):
    from scalinglab.cli import main

    run = tmp_path / "RUN"
    args = [
        "train",
        "--data",
        str(tiny_data),
        "--d-model",
        "16",
        "--layers",
        "1",
        "--seq-len",
        "16",
        "--batch-size",
        "2",
        "--steps",
        "50",
        "--lr",
        "1e30",
        "--grad-clip",
        "0",
        "--warmup-steps",
        "30",
        "--checkpoint-every",
        "1",
        "--log-every",
        "1",
        "--no-progress",
        "--out",
        str(run),
    ]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 3
    err = capsys.readouterr().err
    assert "diverged" in err and "last good checkpoint: step" in err and "Traceback" not in err
    rec = json.loads((run / "record.json").read_text())
    assert rec["status"] == "diverged" and rec["steps_done"] < 50
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert 0 < ck["step"] < 50 and all(torch.isfinite(v).all() for v in ck["model"].values())


def test_bad_checkpoints_are_one_line_user_errors(tiny_data, tmp_path, capsys):
    from scalinglab.cli import main

    spec = spec_for(tiny_data, steps=5, logging=NO_EVAL)
    run_training(spec, tmp_path / "RUN", progress=False)
    ck = tmp_path / "RUN" / "checkpoint.pt"
    good = ck.read_bytes()
    for payload in (good[: len(good) // 2], b"not a checkpoint", None):
        if payload is None:
            torch.save({"weights": torch.zeros(2)}, ck)  # a foreign torch file
        else:
            ck.write_bytes(payload)
        with pytest.raises(SystemExit) as e:
            main(["train", "--resume", str(tmp_path / "RUN"), "--no-progress"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "checkpoint" in err


def test_cli_config_flat_keys_flags_override_and_resume_from_config(tiny_data, tmp_path, capsys):
    from scalinglab.cli import main

    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'data = "{tiny_data}"\nd_model = 16\nlayers = 1\nseq_len = 16\nbatch_size = 2\nsteps = 1000\n'
        "eval_every = 0\n[extra]\ntensorboard = false\n"
    )
    shape = ModelShape(d_model=16, n_layers=1, vocab=262, seq_len=16)
    budget = 4 * shape.flops_per_token("chinchilla") * 32
    main(
        [
            "train",
            "--config",
            str(cfg),
            "--budget",
            str(budget),
            "--out",
            str(tmp_path / "R"),
            "--json",
            "--no-progress",
        ]
    )
    rec = json.loads(capsys.readouterr().out)
    assert rec["status"] == "done" and rec["steps_done"] == 4 and rec["spec"]["steps"] == 0
    # the sweep writes RUN/config.toml and launches --resume RUN: it starts the run
    (tmp_path / "S").mkdir()
    (tmp_path / "S" / "config.toml").write_text((tmp_path / "R" / "config.toml").read_text())
    main(["train", "--resume", str(tmp_path / "S"), "--json", "--no-progress"])
    assert json.loads(capsys.readouterr().out)["final_val_loss"] == rec["final_val_loss"]


def test_growth_restart_rewarms_lr(tiny_data, tmp_path, capsys):
    from scalinglab.cli import main

    run = tmp_path / "G"
    spec = spec_for(
        tiny_data,
        steps=20,
        lr=1e-3,
        schedule={"kind": "constant", "warmup_steps": 1},
        logging={**NO_EVAL, "log_every": 1},
    )
    run_training(spec, run, progress=False)
    main(["train", "--resume", str(run), "--steps", "40", "--restart-warmup-steps", "10", "--json", "--no-progress"])
    rec = json.loads(capsys.readouterr().out)
    lrs = {r["step"]: r["lr"] for r in read_metrics(run)}
    assert rec["steps_done"] == 40 and lrs[20] == 1e-3
    assert [lrs[s] for s in (21, 25, 30, 31)] == pytest.approx([1e-4, 5e-4, 1e-3, 1e-3])


def test_library_error_gets_its_flags_from_the_cli(tiny_data, tmp_path, capsys):
    """The trainer raises in its own terms (steps, tokens, budget_flops); the CLI adds the flags, on one line."""
    from scalinglab.cli import main

    with pytest.raises(UserError) as e:
        run_training(spec_for(tiny_data, steps=0), tmp_path / "A", progress=False)
    assert "--" not in str(e.value) and e.value.keys == ("steps", "tokens", "budget_flops")
    with pytest.raises(SystemExit) as ex:
        main(
            [
                "train",
                "--data",
                str(tiny_data),
                "--d-model",
                "16",
                "--layers",
                "1",
                "--seq-len",
                "16",
                "--out",
                str(tmp_path / "B"),
                "--no-progress",
            ]
        )
    err = capsys.readouterr().err
    assert ex.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: a run needs exactly one of steps, tokens, budget_flops (got none); give one")
    assert err.rstrip().endswith("(--steps, --tokens, --budget)")


def test_taking_turns_waits_for_the_gpu_and_changes_nothing(tiny_data, tmp_path):
    """SCALINGLAB_GPU_TURN (set by a sweep for compiled runs on one GPU): the trainer warms up on a snapshot, waits
    while another process holds the turn, then trains exactly as without it; stopped while waiting, it hands back
    a resumable run."""
    import fcntl

    from scalinglab.folders import RunDir

    args = ["--data", str(tiny_data), "--d-model", "16", "--layers", "1", "--heads", "1", "--seq-len", "16"]
    args += ["--batch-size", "2", "--steps", "60", "--eval-every", "30", "--log-every", "5", "--seed", "3"]
    args += ["--no-progress", "--json"]
    a = _cli(*args, "--out", str(tmp_path / "A"))
    out_a, err = a.communicate(timeout=120)
    assert a.returncode == 0, err
    lock = tmp_path / "gpu0.lock"
    env = dict(os.environ, OMP_NUM_THREADS="1", SCALINGLAB_GPU_TURN=str(lock))

    def started(run: Path) -> subprocess.Popen:  # a trainer set up, warmed up and waiting: its record says running
        p = subprocess.Popen(
            [sys.executable, "-m", "scalinglab", "train", *args, "--out", str(run)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        deadline = time.time() + 60
        while not (run / "record.json").exists() and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # a 60-step run of this model takes well under that once it trains
        assert p.poll() is None and not read_metrics(run), "trained while another process held the turn"
        assert (run / RunDir.WAITING).exists()  # what the sweep's live table shows as "waiting"
        return p

    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        b = started(tmp_path / "B")
        c = started(tmp_path / "C")
        c.send_signal(signal.SIGTERM)
        _, err_c = c.communicate(timeout=60)
        assert c.returncode != 0 and "stopped by SIGTERM at step 0" in err_c
        assert json.loads((tmp_path / "C" / "record.json").read_text())["status"] == "pending"
        assert not (tmp_path / "C" / RunDir.WAITING).exists()
    out_b, err = b.communicate(timeout=120)  # the turn is free: B trains
    assert b.returncode == 0, err
    assert f"waiting for the GPU's turn ({lock})" in err and not (tmp_path / "B" / RunDir.WAITING).exists()
    assert json.loads(out_b)["final_val_loss"] == json.loads(out_a)["final_val_loss"]
    assert [r["train_loss"] for r in read_metrics(tmp_path / "B")] == [
        r["train_loss"] for r in read_metrics(tmp_path / "A")
    ]
    sa = torch.load(tmp_path / "A" / "checkpoint.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "B" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    resumed = _cli("--resume", str(tmp_path / "C"), "--json", "--no-progress")
    out_c, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert json.loads(out_c)["final_val_loss"] == json.loads(out_a)["final_val_loss"]
