"""The whole-step CUDA graph (train/graph.py): in-place optimizer restore (CPU), and on a GPU, graphed runs that
train like reduce-overhead ones and resume."""

from __future__ import annotations

import copy

import pytest
import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.models import build_model
from scalinglab.records import RuntimeConfig
from scalinglab.train import graph, run_training
from scalinglab.train.metrics import read_metrics
from scalinglab.train.optim import build_optimizer
from test_train import spec_for

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")


def _steps(model, opt, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randint(0, 262, (2, 17), generator=g)
        _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("steps_before", [0, 3])
def test_restore_in_place_equals_load_state_dict(tiny_data, steps_before):
    """A recorded graph holds the optimizer's tensors: restoring must copy into them, and give exactly what
    load_state_dict gives (a parameter with no saved state restarts from zeros, as a fresh Adam state does)."""
    spec = spec_for(tiny_data)
    model = build_model(ModelShape(d_model=16, n_layers=1, vocab=262, seq_len=16, n_heads=1))
    twin = copy.deepcopy(model)
    opt, opt2 = build_optimizer(model, spec, 1e-3, "cpu"), build_optimizer(twin, spec, 1e-3, "cpu")
    _steps(model, opt, steps_before, 0)
    _steps(twin, opt2, steps_before, 0)
    saved, weights = copy.deepcopy(opt.state_dict()), copy.deepcopy(model.state_dict())
    _steps(model, opt, 4, 1)  # the warm-up: moves weights and state away from the snapshot
    held = {id(v) for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)}
    opt.param_groups[0]["lr"] = torch.tensor(5e-3)  # a graphed step's LR is a tensor the restore must fill
    graph.restore_optimizer(opt, saved)
    model.load_state_dict(weights)
    assert {id(v) for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)} == held
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(1e-3)
    opt.param_groups[0]["lr"] = 1e-3
    _steps(model, opt, 2, 2)
    _steps(twin, opt2, 2, 2)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters(), strict=True))
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert all(torch.equal(opt.state[p][k], opt2.state[q][k]) for k in ("exp_avg", "exp_avg_sq", "step"))


def test_portable_state_has_float_hyperparameters(tiny_data):
    spec = spec_for(tiny_data)
    model = build_model(ModelShape(d_model=16, n_layers=1, vocab=262, seq_len=16, n_heads=1))
    opt = build_optimizer(model, spec, 1e-3, "cpu")
    _steps(model, opt, 1, 0)
    for g in opt.param_groups:  # as a graphed step leaves them (step counts are on the device there)
        g["lr"], g["capturable"] = torch.tensor(2e-3), True
    sd = graph.portable_state(opt)
    assert type(sd["param_groups"][1]["lr"]) is float and sd["param_groups"][1]["lr"] == pytest.approx(2e-3)
    twin = copy.deepcopy(model)
    fresh = build_optimizer(twin, spec, 1e-3, "cpu")
    fresh.load_state_dict(sd)
    assert fresh.param_groups[1]["lr"] == pytest.approx(2e-3) and not fresh.param_groups[1]["capturable"]
    _steps(twin, fresh, 1, 1)  # a capturable Adam would refuse to step on the CPU


def test_eligible_only_for_one_cuda_gpu_without_rng_or_an_explicit_mode():
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert graph.eligible(gpu, "", False, None, False)
    assert not graph.eligible(cpu, "", False, None, False)
    assert not graph.eligible(gpu, "reduce-overhead", False, None, False)
    assert not graph.eligible(gpu, "", True, None, False)
    assert not graph.eligible(gpu, "", False, torch.Generator(), False)
    assert not graph.eligible(gpu, "", False, None, True)


def _gpu_spec(data, **kw):
    shape = ModelShape(d_model=64, n_layers=2, vocab=262, seq_len=64, n_heads=2)
    rt = RuntimeConfig(device="cuda", compile=True, **kw)
    return spec_for(data, shape=shape, steps=80, batch_size=8, logging={"log_every": 5}, runtime=rt)


@cuda
def test_graphed_run_trains_like_reduce_overhead_and_resumes(tiny_data, tmp_path):
    """GPU kernels (cuDNN attention's backward, split-K matmuls) are not bitwise deterministic: measured on one
    H200, two identical runs differ from their first logged losses, graphed or not. So resuming is checked against
    that noise: the same steps logged once, the same loss to 1e-3."""
    a = run_training(_gpu_spec(tiny_data), tmp_path / "A", progress=False)
    ro = run_training(_gpu_spec(tiny_data, compile_mode="reduce-overhead"), tmp_path / "RO", progress=False)
    assert a.status == ro.status == "done"
    la, lro = ([r["train_loss"] for r in read_metrics(tmp_path / d)] for d in ("A", "RO"))
    assert la[-1] < la[0] - 1.0  # it learns
    assert la == pytest.approx(lro, rel=2e-2)  # the same step, up to bf16 and kernel-order rounding
    assert a.final_val_loss == pytest.approx(ro.final_val_loss, rel=2e-2)
    b1 = run_training(_gpu_spec(tiny_data), tmp_path / "B", progress=False, stop_at_step=35)
    assert b1.status == "pending" and b1.steps_done == 35
    b = run_training(_gpu_spec(tiny_data), tmp_path / "B", resume=True, progress=False)
    rows = read_metrics(tmp_path / "B")
    assert [r["step"] for r in rows] == [r["step"] for r in read_metrics(tmp_path / "A")]
    assert b.final_val_loss == pytest.approx(a.final_val_loss, rel=1e-3)
    assert [r["train_loss"] for r in rows] == pytest.approx(la, rel=1e-3)
