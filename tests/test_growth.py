"""Growth operators: the grown GPT computes the same function (fp32, 1e-5), duplicated units get equal gradients
(each 1/k of the old one), Adam moments map accordingly, depth growth inserts exact identities."""

from __future__ import annotations

import pytest
import torch

from scalinglab.accounting.shape import ModelShape
from scalinglab.growth.operators import depth_map, grow_model, grow_state
from scalinglab.models.gpt import GPT

D, H, V, T = 32, 4, 53, 16


def _model(pos="learned", bias=True, tied=True, seed=0) -> GPT:
    torch.manual_seed(seed)
    m = GPT(ModelShape(d_model=D, n_layers=2, vocab=V, seq_len=T, n_heads=H, pos=pos, bias=bias, tied=tied))
    with torch.no_grad():  # move LayerNorms and biases off their trivial init so every rule is exercised
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (3, T), generator=g), torch.randint(0, V, (3, T), generator=g)


@pytest.mark.parametrize("pos,bias,tied", [("learned", True, True), ("rotary", False, True), ("learned", True, False)])
@pytest.mark.parametrize(
    "kw", [dict(width=2), dict(depth=2), dict(depth=2, mode="append"), dict(width=2, depth=2), dict(width=2, noise=0.1)]
)
def test_grown_model_computes_the_same_function(pos, bias, tied, kw):
    m = _model(pos, bias, tied)
    g = grow_model(m, **kw)
    assert g.shape.d_model == D * kw.get("width", 1) and g.shape.n_heads == H * kw.get("width", 1)
    assert g.shape.n_layers == 2 * kw.get("depth", 1)
    assert g.num_params() > m.num_params()
    x, y = _batch()
    for seed in (1, 2, 3):
        x, y = _batch(seed)
        l0, l1 = m(x)[0], g(x)[0]
        loss0, loss1 = m(x, y)[1], g(x, y)[1]  # the training loss path (fused head + cross-entropy)
        assert torch.allclose(l0, l1, atol=1e-5, rtol=0), (l0 - l1).abs().max()
        assert abs(loss0.item() - loss1.item()) < 1e-5


def test_width_doubles_every_part_and_keeps_tied_head():
    g = grow_model(_model(), width=2)
    assert g.lm_head.weight is g.transformer.wte.weight
    assert g.transformer.wte.weight.shape == (V, 2 * D)
    assert g.transformer.wpe.weight.shape == (T, 2 * D)
    assert g.transformer.h[0].attn.c_attn.weight.shape == (6 * D, 2 * D)
    assert g.transformer.h[0].mlp.c_fc.weight.shape == (8 * D, 2 * D)


def _grads(model, x, y):
    model.zero_grad()
    model(x, y)[1].backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_duplicated_units_get_equal_gradients_each_half_the_old():
    m = _model()
    g = grow_model(m, width=2)
    x, y = _batch()
    go, gn = _grads(m, x, y), _grads(g, x, y)
    d, f = D, 4 * D

    def same(a, b, tol=1e-6):
        assert torch.allclose(a, b, atol=tol, rtol=1e-4), (a - b).abs().max()

    # embeddings (tied: input and output paths together): both column copies = old / 2
    for n in ("transformer.wte.weight", "transformer.wpe.weight"):
        same(gn[n][:, :d], go[n] / 2)
        same(gn[n][:, d:], go[n] / 2)
    # final LayerNorm feeds the head halved, so its copies get the full old gradient
    for n in ("transformer.ln_f.weight", "transformer.ln_f.bias"):
        same(gn[n][:d], go[n])
        same(gn[n][d:], go[n])
    for i in range(2):
        p = f"transformer.h.{i}."
        for n in ("ln_1.weight", "ln_1.bias", "ln_2.weight", "attn.c_proj.bias", "mlp.c_fc.bias"):
            k = gn[p + n].shape[0] // 2
            same(gn[p + n][:k], go[p + n] / 2)
            same(gn[p + n][k:], go[p + n] / 2)
        for j in range(3):  # q, k, v: the diagonal blocks of each are the two copies
            new, old = (
                gn[p + "attn.c_attn.weight"][2 * d * j : 2 * d * (j + 1)],
                go[p + "attn.c_attn.weight"][d * j : d * (j + 1)],
            )
            same(new[:d, :d], old / 2)
            same(new[d:, d:], old / 2)
        same(gn[p + "mlp.c_fc.weight"][:f, :d], go[p + "mlp.c_fc.weight"] / 2)
        same(gn[p + "mlp.c_fc.weight"][f:, d:], go[p + "mlp.c_fc.weight"] / 2)
        same(gn[p + "mlp.c_proj.weight"][:d, :f], go[p + "mlp.c_proj.weight"] / 2)
        same(gn[p + "mlp.c_proj.weight"][d:, f:], go[p + "mlp.c_proj.weight"] / 2)


def test_symmetry_noise_keeps_function_but_splits_gradients():
    m = _model()
    g = grow_model(m, width=2, noise=0.1)
    x, y = _batch()
    assert torch.allclose(m(x)[0], g(x)[0], atol=1e-5, rtol=0)
    gw = _grads(g, x, y)["transformer.wte.weight"]
    assert (gw[:, :D] - gw[:, D:]).abs().max() > 1e-4 * gw.abs().max()


def test_adam_moments_map_half_and_quarter():
    m = _model()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x, y = _batch()
    m(x, y)[1].backward()
    opt.step()
    moments = {n: dict(opt.state[p]) for n, p in m.named_parameters()}
    _, _, new = grow_state(m.state_dict(), moments, m.shape, width=2, depth=2, mode="alternate")
    old = moments["transformer.h.1.mlp.c_fc.weight"]
    mapped = new["transformer.h.2.mlp.c_fc.weight"]  # old block 1 is new block 2 in alternate mode
    f = 4 * D
    assert torch.equal(mapped["exp_avg"][f:, D:], old["exp_avg"] / 2)
    assert torch.equal(mapped["exp_avg_sq"][:f, :D], old["exp_avg_sq"] / 4)
    assert torch.count_nonzero(mapped["exp_avg"][:f, D:]) == 0
    assert torch.equal(new["transformer.ln_f.weight"]["exp_avg"][D:], moments["transformer.ln_f.weight"]["exp_avg"])
    assert "transformer.h.1.mlp.c_fc.weight" not in new and "transformer.h.3.attn.c_attn.weight" not in new  # fresh
    assert float(mapped["step"]) == 1.0


def test_new_depth_blocks_are_identities_and_placed_as_asked():
    assert depth_map(3, 2, "alternate") == [(0, False), (0, True), (1, False), (1, True), (2, False), (2, True)]
    assert depth_map(2, 2, "append") == [(0, False), (1, False), (0, True), (1, True)]
    m = _model()
    g = grow_model(m, depth=2)
    x = torch.randn(2, T, D)
    for i in (1, 3):
        assert torch.equal(g.transformer.h[i](x), x)
    assert torch.equal(g.transformer.h[2].mlp.c_fc.weight, m.transformer.h[1].mlp.c_fc.weight)
