"""LR schedules and the Kaplan LR heuristic against the table of Shen et al. 2022's staged-training code."""

from __future__ import annotations

import math

import pytest

from scalinglab.train.schedule import Schedule, kaplan_lr, kaplan_n

# The "Learning rate" table of Shen et al. 2022's code; GPT2_base = 768x12, GPT2_large = 1536x24 (GPT-3 paper's "Large")
SEED_TABLE = [
    ((768, 12), 0.002132892651963921),
    ((768, 6), 0.0021748863363590465),  # GPT2_base_div2_depth
    ((384, 12), 0.002216880020754172),  # GPT2_base_div2_width
    ((1536, 24), 0.002006911598778545),  # GPT2_large
    ((768, 24), 0.002090898967568796),  # GPT2_large_div2_width
    ((1536, 12), 0.0020489052831736704),  # GPT2_large_div2_depth
    ((1536, 6), 0.002090898967568796),  # GPT2_large_div4_depth
    ((384, 24), 0.0021748863363590465),  # GPT2_large_div4_width
]


@pytest.mark.parametrize("dl,lr", SEED_TABLE)
def test_kaplan_lr_reproduces_seed_table(dl, lr):
    assert kaplan_lr(kaplan_n(*dl)) == pytest.approx(lr, rel=1e-12)


def test_cosine_warmup_then_decay_to_ten_percent():
    s = Schedule(peak=2e-4, total=1000, kind="cosine", warmup=200, min_ratio=0.1)
    assert s(0) == pytest.approx(1e-6) and s(199) == pytest.approx(2e-4)
    assert s(200) == pytest.approx(2e-4) and s(999) == pytest.approx(2e-5)
    mid = 200 + (999 - 200) / 2
    assert s(int(mid)) == pytest.approx(1.1e-4, rel=2e-3)
    assert all(s(i) >= s(i + 1) for i in range(200, 999))


def test_wsd_and_constant():
    s = Schedule(peak=1.0, total=100, kind="wsd", warmup=10, min_ratio=0.0, decay_frac=0.2)
    assert [s(i) for i in (10, 50, 79)] == [1.0, 1.0, 1.0]
    assert s(80) < 1.0 and s(99) == pytest.approx(0.0) and s(89) == pytest.approx(1 - math.sqrt(10 / 20))
    c = Schedule(peak=0.5, total=100, kind="constant", warmup=4)
    assert [c(i) for i in (0, 3, 4, 99)] == [0.125, 0.5, 0.5, 0.5]


def test_restart_rewarms_and_reset_restarts():
    base = Schedule(peak=1.0, total=100, kind="cosine", warmup=10, min_ratio=0.1)
    r = Schedule(peak=1.0, total=100, kind="cosine", warmup=10, min_ratio=0.1, restart_at=50, restart_warmup=5)
    assert r(49) == base(49) and r(50) == pytest.approx(base(50) / 5) and r(54) == base(54) and r(70) == base(70)
    z = Schedule(
        peak=1.0, total=100, kind="cosine", warmup=10, min_ratio=0.1, restart_at=50, restart_warmup=5, reset=True
    )
    assert z(50) == pytest.approx(0.2) and z(54) == pytest.approx(1.0) and z(99) == pytest.approx(0.1)
