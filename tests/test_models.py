"""Models: parameter counts equal the accounting module's (one source of truth for N), causality, prefix dropout."""

from __future__ import annotations

import random

import pytest
import torch

from scalinglab.accounting import params
from scalinglab.accounting import perceiver_ar as acc_par
from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError
from scalinglab.models import build_model
from scalinglab.train.checkpoint import load_run_model


def random_shapes(arch: str, n: int, seed: int):
    rng = random.Random(seed)
    for _ in range(n):
        heads = rng.choice([1, 2, 4])
        d = heads * rng.choice([4, 8, 12, 16])
        seq = rng.randint(8, 80)
        kw = dict(
            d_model=d,
            n_layers=rng.randint(1, 4),
            vocab=rng.randint(5, 400),
            seq_len=seq,
            arch=arch,
            n_heads=heads,
            mlp_ratio=rng.choice([2, 4]),
        )
        if arch == "gpt":
            kw.update(bias=rng.random() < 0.5, tied=rng.random() < 0.5, pos=rng.choice(["learned", "rotary"]))
        else:
            kw.update(latents=rng.randint(1, seq - 1), prefix_dropout=rng.choice([0.0, 0.5]))
        yield ModelShape(**kw)


@pytest.mark.parametrize("arch", ["gpt", "perceiver-ar"])
def test_param_count_equals_accounting(arch):
    for shape in random_shapes(arch, 25, seed=hash(arch) % 1000):
        model = build_model(shape)
        assert sum(p.numel() for p in model.parameters()) == params(shape), shape


def test_perceiver_ar_self_cross_split_matches_article():
    # article Table 1 model 1: N = 4.58e7, N_cross = 7.86e5 (= m*d), N_self = 4.50e7
    shape = ModelShape(d_model=512, n_layers=9, vocab=32000, seq_len=2048, arch="perceiver-ar", latents=512)
    with torch.device("meta"):
        model = build_model(shape)
    n = sum(p.numel() for p in model.parameters())
    n_cross = model.wpe.weight[: shape.prefix].numel()  # the prefix position rows are the whole cross part
    assert f"{n:.2e}" == "4.58e+07" and f"{n_cross:.2e}" == "7.86e+05" and f"{n - n_cross:.2e}" == "4.50e+07"
    assert n_cross == acc_par.params_cross(shape) and n - n_cross == acc_par.params_self(shape)


def test_gpt2_small_param_count():
    # GPT-2 small: 124,439,808 parameters (wte 50257x768 tied, wpe 1024x768, 12 layers with biases)
    shape = ModelShape(d_model=768, n_layers=12, vocab=50257, seq_len=1024, n_heads=12)
    with torch.device("meta"):
        model = build_model(shape)
    assert sum(p.numel() for p in model.parameters()) == 124_439_808


@pytest.mark.parametrize(
    "shape",
    [
        ModelShape(d_model=16, n_layers=2, vocab=50, seq_len=12, n_heads=2),
        ModelShape(d_model=16, n_layers=2, vocab=50, seq_len=12, n_heads=2, pos="rotary", bias=False),
        ModelShape(d_model=16, n_layers=2, vocab=50, seq_len=12, n_heads=2, arch="perceiver-ar", latents=5),
    ],
)
def test_outputs_are_causal(shape):
    torch.manual_seed(0)
    model = build_model(shape).eval()
    x = torch.randint(0, 50, (2, 12))
    y = x.clone()
    y[:, 9] = (y[:, 9] + 1) % 50  # change one latent-position token
    lx, ly = model(x)[0], model(y)[0]
    n = lx.shape[1]
    cut = n - (12 - 9)  # output index of input position 9
    assert torch.allclose(lx[:, :cut], ly[:, :cut], atol=1e-6)
    assert not torch.allclose(lx[:, cut:], ly[:, cut:], atol=1e-6)


def test_perceiver_ar_prefix_reaches_latents_and_dropout_only_in_training():
    shape = ModelShape(
        d_model=16, n_layers=2, vocab=50, seq_len=20, arch="perceiver-ar", latents=4, n_heads=2, prefix_dropout=0.5
    )
    torch.manual_seed(0)
    model = build_model(shape)
    x = torch.randint(0, 50, (3, 20))
    y = x.clone()
    y[:, 0] = (y[:, 0] + 1) % 50
    model.eval()
    assert model(x)[0].shape == (3, 4, 50)
    assert not torch.allclose(model(x)[0], model(y)[0])  # the first prefix token reaches every latent
    assert torch.equal(model(x)[0], model(x)[0])
    model.train()
    a, b = model(x)[0], model(x)[0]
    assert not torch.allclose(a, b)  # a fresh prefix mask per call
    model.dropout_rng.manual_seed(7)
    a = model(x)[0]
    model.dropout_rng.manual_seed(7)
    assert torch.equal(a, model(x)[0])  # masks come only from the model's own generator


def test_bad_shapes_are_user_errors():
    with pytest.raises(UserError):
        build_model(ModelShape(d_model=30, n_layers=1, vocab=10, seq_len=8, n_heads=4))
    with pytest.raises(UserError):
        build_model(ModelShape(d_model=16, n_layers=1, vocab=10, seq_len=8, arch="perceiver-ar", latents=8))


def test_load_run_model_roundtrip(tiny_data, tmp_path):
    from scalinglab.records import LoggingConfig, RunSpec
    from scalinglab.train import run_training

    shape = ModelShape(d_model=16, n_layers=1, vocab=262, seq_len=16, n_heads=1)
    spec = RunSpec(shape=shape, data=str(tiny_data), steps=3, batch_size=2, logging=LoggingConfig(tensorboard=False))
    rec = run_training(spec, tmp_path / "RUN", progress=False)
    model, spec2 = load_run_model(tmp_path / "RUN")
    assert spec2 == spec and not model.training
    from scalinglab.data.loader import TokenData

    w = torch.from_numpy(TokenData(tiny_data).val_windows(16, spec.logging.eval_batches * spec.batch_size))
    with torch.no_grad():
        loss = model(w[:, :-1], w[:, 1:])[1].item()
    assert loss == pytest.approx(rec.final_val_loss, rel=1e-6)
