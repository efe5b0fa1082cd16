"""The chunked linear + cross-entropy gives F.cross_entropy's loss and gradients (models/losses.py)."""

import pytest
import torch
import torch.nn.functional as F

from scalinglab.accounting.shape import ModelShape
from scalinglab.models import build_model
from scalinglab.models.losses import chunk_rows, linear_cross_entropy


def _plain(h, w, y, scale):
    h, w = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    loss = F.cross_entropy(h @ w.t(), y)
    (loss * scale).backward()
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize("chunk", [None, 7, 32])  # one chunk; uneven chunks (the last one short); exact split
def test_loss_and_grads_match_cross_entropy(chunk):
    g = torch.Generator().manual_seed(chunk or 0)
    n, d, v = 96, 12, 37
    h = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(v, d, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, v, (n,), generator=g)
    scale = 0.37  # the incoming gradient (e.g. 1 / grad_accum) must scale both gradients
    loss = linear_cross_entropy(h, w, y, chunk_elements=(chunk or n) * v)
    (loss * scale).backward()
    ref, gh, gw = _plain(h, w, y, scale)
    assert torch.allclose(loss, ref, rtol=1e-12, atol=0)
    assert torch.allclose(h.grad, gh, rtol=1e-10, atol=1e-14)
    assert torch.allclose(w.grad, gw, rtol=1e-10, atol=1e-14)


def test_chunk_rows():
    assert chunk_rows(1000, 256, 2**28) == 1000  # small logits: one chunk, no loop
    rows = chunk_rows(65536, 50304, 2**28)
    assert rows % 128 == 0 and rows * 50304 <= 2**28 and (rows + 128) * 50304 > 2**28
    assert chunk_rows(10**6, 10**7, 2**20) == 128  # never fewer rows than one matmul tile


def _grads(model, x, y):
    model.zero_grad()
    _, loss = model(x, y)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("tied,mup_base", [(True, 0), (False, 0), (True, 16)])  # muP scales the readout by 1/2
def test_gpt_fused_loss_equals_plain_path(tied, mup_base):
    torch.manual_seed(0)
    model = build_model(
        ModelShape(d_model=32, n_layers=2, vocab=300, seq_len=16, tied=tied, mup_base=mup_base)
    ).double()
    x = torch.randint(0, 300, (3, 17))
    assert model(x[:, :-1], x[:, 1:])[0] is not None  # default: the fused loss on CUDA only
    model.fused_loss = True
    assert model(x[:, :-1], x[:, 1:])[0] is None
    fused_loss, fused = _grads(model, x[:, :-1], x[:, 1:])
    model.fused_loss = False
    plain_loss, plain = _grads(model, x[:, :-1], x[:, 1:])
    # the plain path takes its cross-entropy in fp32 (logits.float()), so agreement is to fp32 precision
    assert torch.allclose(fused_loss.float(), plain_loss, rtol=1e-6, atol=0)
    for k in plain:  # the tied embedding gets both its input and its output-head gradient
        assert torch.allclose(fused[k], plain[k], rtol=1e-5, atol=1e-7), k
    with torch.no_grad():  # evaluation keeps the logits path
        logits, loss = model(x[:, :-1], x[:, 1:])
    assert logits.shape == (3, 16, 300) and torch.equal(loss, plain_loss)


def test_bf16_autocast_matches_plain_to_bf16_precision():
    torch.manual_seed(1)
    h = torch.randn(200, 64, requires_grad=True)
    w = (torch.randn(500, 64) * 0.1).requires_grad_()
    y = torch.randint(0, 500, (200,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(h, w, y, chunk_elements=64 * 500)
    loss.backward()
    assert h.grad.dtype == torch.float32 and w.grad.dtype == torch.float32
    ref, gh, gw = _plain(h, w, y, 1.0)
    assert abs(loss.item() - ref.item()) / ref.item() < 1e-2
    assert (h.grad - gh).norm() / gh.norm() < 2e-2 and (w.grad - gw).norm() / gw.norm() < 2e-2
