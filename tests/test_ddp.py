"""`scalinglab train --nproc 2` (torch.distributed.run, gloo on CPU): the loss curve matches the one-process
run up to float reassociation, and rank 0 leaves one complete run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = [
    "--d-model",
    "32",
    "--layers",
    "1",
    "--seq-len",
    "32",
    "--batch-size",
    "4",
    "--steps",
    "6",
    "--log-every",
    "1",
    "--eval-every",
    "3",
    "--eval-batches",
    "2",
    "--lr",
    "3e-3",
    "--device",
    "cpu",
    "--no-progress",
]


def _train(data, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "scalinglab", "train", "--data", str(data), "--out", str(out), *ARGS, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )


def _lines(run):
    return [json.loads(l) for l in (Path(run) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_ranks_match_one_process(tiny_data, tmp_path):
    one = _train(tiny_data, tmp_path / "one")
    assert one.returncode == 0, one.stderr
    two = _train(tiny_data, tmp_path / "two", "--nproc", "2", "--json")
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = _lines(tmp_path / "one"), _lines(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for x, y in zip(a, b):
        assert (x["tokens"], x["flops"], x["lr"]) == (y["tokens"], y["flops"], y["lr"])
        assert y["train_loss"] == pytest.approx(x["train_loss"], abs=1e-4)
        assert y.get("val_loss", 0.0) == pytest.approx(x.get("val_loss", 0.0), abs=1e-4)
    rec = json.loads(two.stdout)  # --json: the record rank 0 wrote, printed once
    assert rec == json.loads((tmp_path / "two" / "record.json").read_text())
    assert rec["status"] == "done" and rec["steps_done"] == 6
    assert rec["final_val_loss"] == pytest.approx(
        json.loads((tmp_path / "one" / "record.json").read_text())["final_val_loss"], abs=1e-4
    )
    names = {p.name for p in (tmp_path / "two").iterdir()}
    assert {"config.toml", "checkpoint.pt", "metrics.jsonl", "record.json"} <= names
    assert not any(n.startswith(".") for n in names)  # no launcher spec file or temp files left
    assert two.stderr.count("done:") == 1  # rank 0 says it once, not once per rank

    # the two-rank checkpoint resumes in one process, from the same state
    import torch

    ck1 = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    ck2 = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert ck1["step"] == ck2["step"] == 6
    for k, v in ck1["model"].items():
        assert torch.allclose(v, ck2["model"][k], atol=1e-5), k


def test_batch_not_divisible(tiny_data, tmp_path):
    p = _train(tiny_data, tmp_path / "bad", "--nproc", "3")
    assert p.returncode == 2
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: batch size 4 is not divisible by 3 processes") and last.endswith(
        "(--batch-size, --nproc)"
    )
    assert not (tmp_path / "bad" / "checkpoint.pt").exists()
