"""Hyperparameters: the literature defaults each planned run gets, `plan tune` + `fit hparams` (best settings per
point, power laws with intervals) and `plan isoflop --hparams` following the fitted laws."""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pytest

from scalinglab.accounting.shape import ModelShape
from scalinglab.laws.hparams import HparamsLaw, PowerLaw, TunePoint, best_point, fit_hparams, reach_notes
from scalinglab.plan.isoflop import plan_isoflop
from scalinglab.plan.recipe import Recipe, Resolver, deepseek_m, pow2_batch
from scalinglab.plan.wsd import plan_wsd
from test_sweep import cli


def test_recipe_lr_is_deepseeks_eta_opt_where_the_model_is_compute_optimal():
    """Bi et al. 2024 (DeepSeek LLM): eta_opt = 0.3118 C^-0.125 at the budget where M_opt = 0.1715 C^0.5243 is this model."""
    r = Recipe()
    for d, n in ((128, 2), (256, 4), (576, 9), (1024, 16)):
        s = ModelShape(d, n, 262, 512)
        c = (deepseek_m(s) / 0.1715) ** (1 / 0.5243)
        assert 0.1715 * c**0.5243 == pytest.approx(deepseek_m(s), rel=1e-12)
        assert r.lr(s) == pytest.approx(min(1e-2, 0.3118 * c**-0.125), rel=1e-12)
    lrs = [r.lr(ModelShape(d, d // 64, 262, 512)) for d in range(128, 577, 64)]
    assert all(a > b for a, b in itertools.pairwise(lrs))  # smaller LR for larger models, unlike Kaplan's ~constant
    assert 1e-3 < lrs[-1] < lrs[0] < 1e-2
    # DeepSeek's B_opt = 0.2920 C^0.3271 tokens, as a power of two sequences
    assert r.batch_tokens(1e15) == pytest.approx(0.2920 * 1e15**0.3271, rel=1e-12)
    assert pow2_batch(r.batch_tokens(1e15), 512) == 64 and pow2_batch(r.batch_tokens(1e14), 512) == 16


def test_recipe_warmup_and_beta2():
    r = Recipe()
    # Porian et al. 2024: warm up for N tokens; capped at a tenth of the run
    assert r.warmup(3_357_696, 32_768, 7000) == math.ceil(3_357_696 / 32_768) == 103
    assert r.warmup(3_357_696, 32_768, 500) == 50
    assert r.warmup(1000, 32_768, 5) == 1
    # beta2: 0.95 at GPT-3's 2^19-token batch, the same EMA horizon in tokens below it, at most 0.999
    assert r.beta2(2**19) == pytest.approx(0.95)
    assert r.beta2(2**14) == pytest.approx(0.95 ** (1 / 32))
    assert 1 / (1 - r.beta2(2**14)) * 2**14 == pytest.approx(1 / (1 - 0.95) * 2**19, rel=0.05)  # horizon in tokens
    assert r.beta2(64) == 0.999 and r.beta2(2**22) == 0.95


def test_plan_resolves_every_run_and_keeps_what_the_user_fixed():
    shapes = [ModelShape(d, 2, 262, 32) for d in (32, 48)]
    plan = plan_isoflop([3e10, 1e11], shapes, data="D", train_tokens=10**9, batch_size=0, min_steps=1)
    rec = Recipe()
    for r in plan.runs:
        s = r.spec
        assert s.batch_size == pow2_batch(rec.batch_tokens(r.budget), 32)
        assert s.lr == pytest.approx(rec.lr(s.shape)) and s.beta2 == pytest.approx(rec.beta2(s.tokens_per_step))
        assert s.schedule.warmup_steps == rec.warmup(s.shape.params(), s.tokens_per_step, s.steps)
    fixed = plan_isoflop(
        [3e10],
        shapes,
        data="D",
        train_tokens=10**9,
        batch_size=4,
        min_steps=1,
        hparams=Resolver(lr=1e-3, batch_size=4, warmup_steps=7, beta2=0.98),
    )
    assert {(r.spec.lr, r.spec.batch_size, r.spec.schedule.warmup_steps, r.spec.beta2) for r in fixed.runs} == {
        (1e-3, 4, 7, 0.98)
    }


def test_plan_json_lists_lr_and_batch_size(tiny_data, tmp_path):
    p = cli(
        "plan",
        "isoflop",
        "--data",
        str(tiny_data),
        "--budgets",
        "3e9,1e10",
        "--shapes",
        "16x1,24x1",
        "--seq-len",
        "32",
        "--min-steps",
        "5",
        "--out",
        str(tmp_path / "S"),
        "--json",
    )
    assert p.returncode == 0, p.stderr
    runs = json.loads(p.stdout)["runs"]
    rec = Recipe()
    for r in runs:
        s = ModelShape(r["d_model"], r["n_layers"], 262, 32)
        assert r["lr"] == pytest.approx(rec.lr(s)) and r["batch_size"] == pow2_batch(rec.batch_tokens(r["budget"]), 32)
        assert {"warmup_steps", "beta2"} <= set(r)


def synthetic_runs(lr_law, b_law, shapes, budgets, lrs, batches, noise=0.0, seed=0, b_of_d=False):
    """Losses exactly quadratic in log lr and log batch around known optima lr*(N), b*(C) (tokens, seq 32); with
    b_of_d, b*(D) of each run's tokens D = C / 6N, which the rows then carry."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        for name, n in shapes:
            for lr in lrs:
                for b in batches:
                    loss = (
                        3.0
                        + 0.1 * (math.log(lr) - math.log(lr_law(n))) ** 2
                        + 0.05 * (math.log(b * 32) - math.log(b_law(c / (6 * n) if b_of_d else c))) ** 2
                        + noise * rng.normal()
                    )
                    rows.append(
                        {
                            "budget": c,
                            "params": n,
                            "shape": name,
                            "lr": lr,
                            "batch_size": b,
                            "loss": loss,
                            "beta2": 0.0,
                            "warmup": 0,
                            **({"tokens": c / (6 * n)} if b_of_d else {}),
                        }
                    )
    return rows


def test_fit_hparams_recovers_known_laws():
    def lr_law(n):
        return 0.05 * n**-0.3

    def b_law(c):
        return 2.0 * c**0.3

    shapes = [("a", 1e5), ("b", 4e5), ("c", 1.6e6), ("d", 6.4e6)]
    budgets = [1e12, 1e13, 1e14]
    lrs = [1e-4 * 2**k for k in range(10)]
    batches = [2**k for k in range(12)]
    rows = synthetic_runs(lr_law, b_law, shapes, budgets, lrs, batches)
    pts = [
        best_point([r for r in rows if r["budget"] == c and r["shape"] == s], 32) for c in budgets for s, _ in shapes
    ]
    for p in pts:
        assert p.lr == pytest.approx(lr_law(p.params), rel=1e-6) and not p.edge
        assert p.batch_tokens == pytest.approx(b_law(p.budget), rel=1e-6)
    law = fit_hparams(pts, lr_of="N", bootstrap=200, seed=1)
    assert law.lr_law.exp == pytest.approx(-0.3, abs=1e-9) and law.lr_law.coef == pytest.approx(0.05, rel=1e-6)
    assert law.batch_law.exp == pytest.approx(0.3, abs=1e-9) and law.batch_law.coef == pytest.approx(2.0, rel=1e-6)
    lo, hi = law.lr_law.ci["exp"]
    assert lo == pytest.approx(-0.3, abs=1e-9) and hi == pytest.approx(-0.3, abs=1e-9)  # exact points: no spread
    back = HparamsLaw.from_dict(json.loads(json.dumps(law.to_dict())))
    assert back.lr(1e6, 1e13) == pytest.approx(lr_law(1e6), rel=1e-6)
    assert back.batch_tokens(3e13, 1e9) == pytest.approx(b_law(3e13), rel=1e-6)
    assert "batch*(C) is used: the points do not say their token counts D" in law.notes  # rows without tokens


def test_fit_hparams_follows_the_batch_of_tokens():
    """When the optimal batch follows each run's tokens D (Bergsma et al. 2025), batch*(D) is recovered exactly and
    is the law used; the law of C through the same points is kept beside it, and the note says how far each sits."""
    shapes = [("a", 1e5), ("b", 4e5), ("c", 1.6e6)]
    budgets = [1e13, 1e14]
    rows = synthetic_runs(
        lambda n: 0.05 * n**-0.3,
        lambda d: 3.0 * d**0.4,
        shapes,
        budgets,
        [1e-4 * 2**k for k in range(10)],
        [2**k for k in range(12)],
        b_of_d=True,
    )
    pts = [best_point([r for r in rows if (r["budget"], r["shape"]) == (c, s)], 32) for c in budgets for s, _ in shapes]
    assert all(p.tokens == pytest.approx(p.budget / (6 * p.params)) for p in pts)
    law = fit_hparams(pts, bootstrap=100, seed=1)
    assert law.batch_law.var == "D" and law.batch_law.exp == pytest.approx(0.4, abs=1e-9)
    assert law.batch_law.coef == pytest.approx(3.0, rel=1e-6) and law.batch_alt.var == "C"
    found = re.search(r"factor ([\d.]+) \(rms\) from its law of D and ([\d.]+) from", law.notes[0])
    d_fac, c_fac = (float(x) for x in found.groups())
    assert d_fac == 1.0 and c_fac > 1.2  # at one budget the sizes want batches up to 16^0.4 = 3x apart
    assert law.batch_tokens(1e20, 5e8) == pytest.approx(3.0 * 5e8**0.4, rel=1e-6)  # follows D, not C
    back = HparamsLaw.from_dict(json.loads(json.dumps(law.to_dict())))
    assert back.batch_alt.var == "C" and back.batch_law.var == "D" and back.points[0].tokens == pts[0].tokens
    assert fit_hparams(pts, batch_of="C", bootstrap=0).batch_law.var == "C"
    # the planner gives each run the batch of its own D = C / flops_per_token
    shapes_m = [ModelShape(d, 2, 262, 32) for d in (32, 96)]
    plan = plan_isoflop(
        [1e13], shapes_m, data="D", train_tokens=10**12, batch_size=0, min_steps=1, hparams=Resolver(law=law)
    )
    for r in plan.runs:
        assert r.spec.batch_size == pow2_batch(law.batch_law(1e13 / r.flops_per_token), 32)
    assert plan.runs[0].spec.batch_size > plan.runs[1].spec.batch_size  # the small model reads more tokens


def test_fit_hparams_flags_a_minimum_on_the_grid_edge():
    rows = synthetic_runs(lambda n: 1e-1, lambda c: 512.0, [("a", 1e5)], [1e12], [1e-3, 2e-3, 4e-3], [4, 16, 64])
    p = best_point(rows, 32)
    assert p.edge == ["lr"] and p.lr == pytest.approx(4e-3, rel=1e-12)
    law = fit_hparams([p], bootstrap=0)
    assert any("edge" in n for n in law.notes) and law.lr_law.exp == 0.0


def test_noisy_intervals_hold_the_truth():
    """Seed noise on the losses: the 95% bootstrap interval of the lr exponent holds -0.3 in most repetitions."""
    hits = 0
    shapes = [(str(i), 1e5 * 2**i) for i in range(8)]
    lrs = [1e-4 * 2**k for k in range(10)]
    for seed in range(20):
        rows = synthetic_runs(
            lambda n: 0.05 * n**-0.3, lambda c: 2.0 * c**0.3, shapes, [1e13], lrs, [8, 16, 32], noise=0.004, seed=seed
        )
        pts = [best_point([r for r in rows if r["shape"] == s], 32) for s, _ in shapes]
        lo, hi = fit_hparams(pts, bootstrap=300, seed=seed).lr_law.ci["exp"]
        hits += lo <= -0.3 <= hi
    assert hits >= 15


@pytest.mark.slow
def test_tune_sweep_fit_and_plan_with_hparams(tiny_data, tmp_path):
    tune = tmp_path / "TUNE"
    p = cli(
        "plan",
        "tune",
        "--data",
        str(tiny_data),
        "--budgets",
        "1e9",
        "--shapes",
        "8x1,16x1",
        "--lrs",
        "3e-3,1e-2,3e-2",
        "--batch-sizes",
        "4",
        "--seq-len",
        "16",
        "--min-steps",
        "5",
        "--evals",
        "1",
        "--out",
        str(tune),
        "--json",
    )
    assert p.returncode == 0, p.stderr
    planned = json.loads(p.stdout)["runs"]
    assert len(planned) == 6 and {r["lr"] for r in planned} == {3e-3, 1e-2, 3e-2}
    assert all(r["id"].endswith(f"_lr{r['lr']:.3g}_b4") for r in planned)
    p = cli("sweep", str(tune), "--workers", "1", timeout=600)
    assert p.returncode == 0, p.stderr
    p = cli("fit", "hparams", str(tune), "--out", str(tmp_path / "hp.json"), "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert (tmp_path / "hp.png").stat().st_size > 10_000 and len(d["points"]) == 2
    status = json.loads(cli("status", str(tune), "--json").stdout)["runs"]
    for pt in d["points"]:
        losses = {r["id"]: r["final_val_loss"] for r in status if f"_{pt['shape']}_" in r["id"]}
        assert pt["loss"] <= min(losses.values()) + 1e-12  # the interpolated optimum is no worse than the grid's
        assert 3e-3 <= pt["lr"] <= 3e-2
    law = HparamsLaw.from_dict(json.loads((tmp_path / "hp.json").read_text()))
    p = cli(
        "plan",
        "isoflop",
        "--data",
        str(tiny_data),
        "--budgets",
        "1e9,3e9",
        "--shapes",
        "8x1,16x1",
        "--seq-len",
        "16",
        "--min-steps",
        "5",
        "--hparams",
        str(tmp_path / "hp.json"),
        "--out",
        str(tmp_path / "S"),
        "--json",
    )
    assert p.returncode == 0, p.stderr
    planned = json.loads(p.stdout)
    assert law.batch_law.var == "D" and all(p.tokens for p in law.points)
    for r in planned["runs"]:
        assert r["lr"] == pytest.approx(law.lr(r["params"], r["budget"]), rel=1e-9)
        assert r["batch_size"] == pow2_batch(law.batch_law(r["budget"] / r["flops_per_token"]), 16)
    # tuned at 1e9 only, planned up to 3e9: the batch law is used 3x beyond the token counts it was fitted on (the
    # small shape at 3e9 reads 3x its tokens at 1e9); the lr law at its own sizes
    (note,) = [n for n in planned["notes"] if "layers deep" not in n]  # the tiny shapes are shallow: noted too
    assert note.startswith("batch*(D) was fitted on token counts") and "(3x beyond)" in note
    # a batch-only grid whose lr follows the fitted law, one per shape
    p = cli(
        "plan", "tune", "--data", str(tiny_data), "--budgets", "1e9", "--shapes", "8x1,16x1", "--batch-sizes", "2,4",
        "--hparams", str(tmp_path / "hp.json"), "--seq-len", "16", "--min-steps", "5", "--out", str(tmp_path / "T2"),
        "--json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    runs = json.loads(p.stdout)["runs"]
    assert sorted(r["id"][-3:] for r in runs) == ["_b2", "_b2", "_b4", "_b4"]
    assert all(r["lr"] == pytest.approx(law.lr(r["params"], 1e9), rel=1e-9) for r in runs)
    assert cli("sweep", str(tmp_path / "T2"), "--workers", "1", timeout=600).returncode == 0
    p = cli("fit", "hparams", str(tmp_path / "T2"), "--json")
    assert p.returncode == 0, p.stderr
    d2 = json.loads(p.stdout)
    assert d2["batch_tokens"]["var"] == "D" and d2["batch_tokens_alt"]["var"] == "C"
    assert "the grid did not sweep the lr (one per shape): lr* is the lr the runs were given" in d2["notes"]
    assert {pt["batch_grid"] for pt in d2["points"]} <= {2, 4} and all(pt["tokens"] > 0 for pt in d2["points"])
    p = cli("plan", "tune", "--data", str(tiny_data), "--budgets", "1e9", "--shapes", "8x1", "--batch-sizes", "2",
            "--seq-len", "16", "--out", str(tmp_path / "T3"))  # fmt: skip
    assert p.returncode == 2 and "--hparams" in p.stderr and not (tmp_path / "T3").exists()
    p = cli("fit", "hparams", str(tmp_path / "S"))
    assert p.returncode == 2 and "not a tuning study" in p.stderr


def test_reach_notes_say_how_far_past_the_fit_and_what_its_interval_allows_there():
    """A law used within 2x of its points says nothing; beyond, the note gives the factor and the values the
    exponent's interval allows there, which hold the law's own value (and equal it for a zero-width interval)."""
    pts = [TunePoint(c, int(n), "s", 1e-3, 8.0, 2048.0, 1.0, 1e-3, 8, 9) for c in (1e14, 4e14) for n in (4e5, 3e6)]
    batch = PowerLaw(0.04, 0.36, "C", {"exp": [-0.27, 1.0]})
    law = HparamsLaw(PowerLaw(0.17, -0.29, "N", {"exp": [-0.29, -0.29]}), batch, pts)
    assert reach_notes(law, [4e5, 3e6], [6e13, 7e14], [1e8], True, True) == []
    (lr_note, b_note) = reach_notes(law, [3e6, 1.5e7], [1e16], [1e8], True, True)
    assert "25x beyond" in b_note and "used at 1e+16" in b_note
    lo, hi = (float(x) for x in b_note.split(" allows ")[1].split(" tokens")[0].split(".."))
    assert lo < batch(1e16) < hi and hi / lo == pytest.approx((1e16 / 2e14) ** 1.27, rel=1e-2)
    assert "5x beyond" in lr_note
    lo, hi = (float(x) for x in lr_note.split(" allows ")[1].split(" there")[0].split(".."))
    assert lo == hi == pytest.approx(law.lr_law(1.5e7), rel=1e-2)
    assert reach_notes(law, [1.5e7], [1e16], [1e8], False, False) == []  # the user fixed both: nothing follows the laws
    # the planner (Python API, and the WSD plan built on it) carries them; a fixed batch size silences batch*'s
    shapes = [ModelShape(d, 2, 262, 32) for d in (32, 48)]
    kw = dict(data="D", train_tokens=10**12, batch_size=0, min_steps=1)
    for planner in (plan_isoflop, plan_wsd):
        plan = planner([1e12, 1e13], shapes, hparams=Resolver(law=law), **kw)
        reach = [n.split(" was fitted")[0] for n in plan.notes if "layers deep" not in n]
        assert reach == ["lr*(N)", "batch*(C)"] and "under 4 layers deep (32x2, 48x2)" in plan.notes[-1]
        assert "100x beyond" in plan.notes[1]
    plan = plan_isoflop([1e12], shapes, hparams=Resolver(law=law, batch_size=4), **kw)
    assert [n.split(" was fitted")[0] for n in plan.notes if "layers deep" not in n] == ["lr*(N)"]
