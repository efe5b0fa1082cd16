"""Accounting against published numbers (Perceiver AR article, GPT-2, nanoGPT's MFU formula) and exact
invariants of the FLOP conventions."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scalinglab.accounting import CONVENTIONS, ModelShape, flops_per_token, params
from scalinglab.accounting import perceiver_ar as par
from scalinglab.errors import UserError


def pa(d=512, L=9, vocab=32000, seq=2048, latents=512, dropout=0.5):
    return ModelShape(d, L, vocab, seq, arch="perceiver-ar", latents=latents, prefix_dropout=dropout)


# --- Perceiver AR article (Krasser 2023), "Compute estimates" and experiment 1 text -------------------------------


def test_article_per_token_flops():
    ce = par.ComputeEstimator(vocab_size=32000, max_seq_len=2048, num_latents=512)
    assert ce.num_prefix == 1536
    c_self = ce.self_attn(512, 9)
    c_cross = ce.cross_attn(512, prefix_dropout=0.5)
    assert f"{c_self:.2e}" == "2.82e+08"
    assert f"{c_cross:.2e}" == "7.10e+06"
    assert f"{c_cross / (c_cross + c_self) * 100:.2f}%" == "2.45%"
    n_self = par.num_self_attn_params(512, 9, num_latents=512, num_prefix=1536, vocab_size=32000)
    assert f"{c_self / (6 * n_self):.2f}" == "1.05"


def test_article_param_counts_via_shape():
    s = pa()
    assert f"{s.params():.2e}" == "4.58e+07"
    assert f"{s.params_self():.2e}" == "4.50e+07"
    assert f"{s.params_cross():.2e}" == "7.86e+05"
    assert s.params_cross() == 1536 * 512  # prefix position embedding
    assert s.params() == s.params_self() + s.params_cross()
    assert f"{pa(624, 11).params_self():.2e}" == "7.17e+07"  # the article's predicted compute-optimal model
    assert f"{s.flops_per_token_self():.2e}" == "2.82e+08"
    assert f"{s.flops_per_token_cross():.2e}" == "7.10e+06"
    assert s.flops_per_token() == s.flops_per_token_self() + s.flops_per_token_cross()


def test_perceiver_prefix_dropout_and_6n():
    full, half = pa(dropout=0.0), pa(dropout=0.5)
    assert full.flops_per_token_cross() > half.flops_per_token_cross()
    assert full.flops_per_token_self() == half.flops_per_token_self()
    assert half.flops_per_token("6n") == 6 * half.params_self()


# --- GPT: published parameter counts ---------------------------------------------------------------------------


def test_gpt2_small_published_count():
    g = ModelShape(768, 12, 50257, 1024)
    assert g.params() == 124_439_808  # GPT-2 small (HF gpt2)
    assert f"{(g.params() - 1024 * 768) / 1e6:.2f}M" == "123.65M"  # nanoGPT's print (wpe excluded)


@pytest.mark.parametrize(
    "vocab,d,L,printed",
    [
        (50304, 128, 2, "7.0M"),
        (50304, 256, 4, "16.3M"),
        (50304, 384, 6, "30.3M"),
        (50304, 512, 8, "51.5M"),
        (50304, 768, 12, "124M"),
        (50304, 1024, 16, "254M"),
        (256, 128, 2, "0.56M"),
        (256, 256, 4, "3.5M"),
        (256, 384, 6, "11.1M"),
        (256, 512, 8, "25.8M"),
        (256, 768, 12, "85.9M"),
        (256, 1024, 16, "203M"),
    ],
)
def test_anchor_throughput_table_params(vocab, d, L, printed):
    """nanoGPT's model (bias=False as its train.py, T=1024): parameters and 6N + 12LdT FLOPs per token."""
    n = ModelShape(d, L, vocab, 1024, bias=False).params()
    decimals = len(printed.rstrip("M").partition(".")[2])
    assert f"{n / 1e6:.{decimals}f}M" == printed


@pytest.mark.parametrize(
    "vocab,d,L,mtok,tflops",
    [
        (50304, 128, 2, 2.90, 130),
        (50304, 512, 8, 0.99, 357),
        (256, 128, 2, 15.0, 97),
        (256, 1024, 16, 0.31, 445),
    ],
)
def test_anchor_throughput_uses_palm_formula(vocab, d, L, mtok, tflops):
    f = ModelShape(d, L, vocab, 1024, bias=False).flops_per_token("palm")
    assert f == 6 * ModelShape(d, L, vocab, 1024, bias=False).params() + 12 * L * d * 1024
    assert abs(mtok * 1e6 * f / 1e12 - tflops) / tflops < 0.02  # Mtok/s is printed to 2-3 digits


def test_gpt_matches_transformers_gpt2():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=101, n_positions=48, n_embd=64, n_layer=3, n_head=4)
    model = transformers.GPT2LMHeadModel(cfg)
    n = sum(p.numel() for p in model.parameters())  # parameters() lists the tied wte/lm_head once
    assert ModelShape(64, 3, 101, 48, n_heads=4).params() == n


def test_gpt_layout_variants():
    d, L, V, T, r = 64, 3, 100, 32, 4
    g = ModelShape(d, L, V, T)
    no_bias = g.with_(bias=False)
    # per layer: 2 LN biases, qkv 3d, proj d, fc r*d, mlp proj d; plus ln_f bias
    assert g.params() - no_bias.params() == L * (2 * d + 3 * d + d + r * d + d) + d
    assert g.params() - g.with_(pos="rotary").params() == T * d
    assert g.with_(tied=False).params() - g.params() == V * d
    assert g.params() - g.params(embeddings=False) == V * d + T * d
    assert g.with_(tied=False).params(embeddings=False) == g.params(embeddings=False)


# --- FLOP convention invariants ----------------------------------------------------------------------------------

SHAPES = [
    ModelShape(768, 12, 50257, 1024),
    ModelShape(512, 8, 256, 2048, bias=False),
    ModelShape(4096, 32, 32000, 2048),
]


@pytest.mark.parametrize("s", SHAPES, ids=lambda s: s.name)
def test_convention_invariants(s):
    n, ne = params(s), params(s, embeddings=False)
    L, d, T, V, H, r = s.n_layers, s.d_model, s.seq_len, s.vocab, s.n_heads, s.mlp_ratio
    assert flops_per_token(s, "6n") == 6 * n
    assert flops_per_token(s, "6n-nonembed") == 6 * ne
    assert flops_per_token(s, "kaplan") == 6 * ne + 6 * L * T * d
    assert flops_per_token(s, "palm") == 6 * n + 12 * L * d * T
    # Appendix F collected: 2Vd embeddings + 2dV logits + per layer 8d^2 (kqv+proj) + 4Td + 3HT + 4 r d^2
    assert flops_per_token(s, "chinchilla") == 3 * (4 * V * d + L * (8 * d * d + 4 * T * d + 3 * H * T + 4 * r * d * d))
    assert set(CONVENTIONS["gpt"]) == {"6n", "6n-nonembed", "kaplan", "chinchilla", "palm"}


def test_chinchilla_near_6n_for_typical_shapes():
    # Billion-parameter shapes at seq 2048, vocab 32000: within 1.0-1.1 of 6N and closing in as models grow
    # (attention's 4Td and the embedding matmul shrink relative to 24 d^2 per layer).
    ratios = []
    for d, L in [(4096, 32), (5120, 40), (8192, 64), (12288, 96)]:
        s = ModelShape(d, L, 32000, 2048, n_heads=d // 128)
        ratios.append(s.flops_per_token("chinchilla") / (6 * s.params()))
    assert all(1.0 < r < 1.11 for r in ratios)
    assert ratios == sorted(ratios, reverse=True)


def test_bad_input_raises_user_error():
    with pytest.raises(UserError, match="convention"):
        flops_per_token(SHAPES[0], "bogus")
    with pytest.raises(UserError, match="convention"):
        pa().flops_per_token("kaplan")
    with pytest.raises(UserError, match="latents"):
        pa(latents=2048).params()
    with pytest.raises(UserError, match="d_model"):
        ModelShape(-8, 2, 100, 32).params()
    with pytest.raises(UserError, match="arch"):
        ModelShape(8, 2, 100, 32, arch="rnn").params()


def test_core_imports_without_torch():
    code = (
        "import sys; import scalinglab.accounting, scalinglab.laws.estimates, scalinglab.plan.experiment, "
        "scalinglab.plan.optimal; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"bias": False},
        {"pos": "rotary"},
        {"tied": False},
        {"arch": "perceiver-ar", "latents": 16, "prefix_dropout": 0.5},
    ],
)
def test_counts_match_the_trainers_models(kw):
    """The PyTorch models the trainer builds have exactly the counted parameters."""
    pytest.importorskip("torch")
    shape = ModelShape(64, 3, 101, 48, n_heads=4, **kw)
    if shape.arch == "gpt":
        model = pytest.importorskip("scalinglab.models.gpt").GPT(shape)
    else:
        model = pytest.importorskip("scalinglab.models.perceiver_ar").PerceiverAR(shape)
    assert sum(p.numel() for p in model.parameters()) == shape.params()
