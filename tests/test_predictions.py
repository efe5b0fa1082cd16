"""Predictions users can trust: approach 2 hygiene on Porian et al.'s 15 configurations, approach 3 ties, fixed
values and diagnostics, the compute-optimal loss law's backtest, Gadre et al.'s held-out runs, the data-constrained
law of Muennighoff et al., predictions with intervals, and interval coverage on synthetic data from known laws."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import shared
from scalinglab.errors import UserError
from scalinglab.laws.approach2 import Approach2
from scalinglab.laws.approach3 import Approach3, hoffmann_grid
from scalinglab.laws.base import ParametricLaw
from scalinglab.laws.datacon import DataConstrainedLaw
from scalinglab.laws.lc import LossComputeLaw
from scalinglab.laws.predict import at_budget, loss_at, predict

PORIAN_MAIN = "rw_tuned_short_const_standard_val"


def _porian():
    df = pd.read_csv(shared("porian2024-resolving", "isoflop_points.csv"))
    pub = json.loads(shared("porian2024-resolving", "published_fits.json").read_text())
    key = "{dataset}_{hparams}_{warmup}_{decay}_{param_count}_{val}"
    return df, {key.format(**p): p for p in pub}


def test_porian_approach2_exponents_with_default_settings():
    """Porian et al. 2024 keep a budget only where its minimum is interior; with that rule and a 5-size window
    (the defaults) approach 2 matches their published exponent within 0.03 on all 15 configurations (measured:
    15 of 15; without the hygiene, 7 of 15)."""
    df, pub = _porian()
    assert len(pub) == 15
    a = {}
    for cfg in pub:
        c = df[df.config == cfg]
        a[cfg] = Approach2().fit(c.N, c.D, c.flops, c.loss).a_
    close = [cfg for cfg, p in pub.items() if abs(a[cfg] - p["a"]) < 0.03]
    assert len(close) >= 13, {cfg: round(a[cfg] - pub[cfg]["a"], 3) for cfg in pub}
    assert abs(a[PORIAN_MAIN] - 0.497) < 0.01  # their headline: 0.497 (0.49, 0.50)
    rw = [
        "rw_base_long_kaplan_kaplan_train",
        "rw_base_long_kaplan_standard_val",
        "rw_base_short_kaplan_standard_val",
        "rw_base_short_chinchilla_standard_val",
        PORIAN_MAIN,
    ]
    assert [a[c] for c in rw] == sorted((a[c] for c in rw), reverse=True)  # 0.835 > 0.706 > 0.602 > 0.571 > 0.497


def test_porian_kaplan_config_without_hygiene_is_flagged():
    """Keeping unbracketed budgets and fitting all sizes gives the Kaplan-like configuration a > 1 and b < 0:
    the fit must say so."""
    df, _ = _porian()
    c = df[df.config == "rw_base_long_kaplan_kaplan_train"]
    law = Approach2(window=None, keep_unbracketed=True).fit(c.N, c.D, c.flops, c.loss)
    assert law.a_ > 1 and law.b_ < 0
    assert any("outside (0, 1)" in w for w in law.warnings_) and any("negative" in w for w in law.warnings_)
    assert any("kept, its vertex is an extrapolation" in w for w in law.warnings_)
    clean = Approach2().fit(c.N, c.D, c.flops, c.loss)
    assert not clean.warnings_ and abs(clean.a_ - 0.835) < 0.03
    no_window = Approach2(window=None).fit(c.N, c.D, c.flops, c.loss)
    assert no_window.n_budgets_ == 8 and sum("left out of the exponent fit" in n for n in no_window.notes_) == 3


def _isoflop(law: ParametricLaw, budgets, spread=8.0, per=9, noise=0.0, rng=None, shift=1.0):
    rows = []
    for C in budgets:
        for n in law.n_opt(C) * shift * np.geomspace(1 / spread, spread, per):
            rows.append((n, C / (6 * n), C))
    N, D, C = map(np.array, zip(*rows))
    L = law.predict_loss(N, D)
    if noise:
        L = L * np.exp(noise * rng.standard_normal(len(L)))
    return N, D, C, L


CHIN = ParametricLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def test_approach2_bracketing_and_window():
    budgets = np.geomspace(1e18, 1e21, 4)
    N, D, C, L = _isoflop(CHIN, budgets)
    # the last budget sampled only below its optimum: its lowest loss is at the largest size
    last = C == budgets[-1]
    N[last] /= 20
    D[last] = C[last] / (6 * N[last])
    L[last] = CHIN.predict_loss(N[last], D[last])
    law = Approach2(robust="lsq").fit(N, D, C, L)
    row = law.per_budget_[-1]
    assert row.skipped == "minimum not bracketed" and row.bracketed is False
    assert law.n_budgets_ == 3 and any("1e+21" in n and "largest size" in n for n in law.notes_)
    assert abs(law.a_ - CHIN.a) < 0.01 and not law.warnings_
    kept = Approach2(robust="lsq", keep_unbracketed=True).fit(N, D, C, L)
    assert kept.n_budgets_ == 4 and any("kept" in w for w in kept.warnings_)
    # the window: the 5 sizes nearest the lowest loss of 9 spread over 64x
    assert row.window_n[1] / row.window_n[0] == pytest.approx(64**0.5)
    # an IsoFLOP curve is a parabola in log N only near its minimum: the window's vertex is closer
    wide = Approach2(robust="lsq", window=None).fit(*_isoflop(CHIN, budgets[:3], spread=30))
    near = Approach2(robust="lsq").fit(*_isoflop(CHIN, budgets[:3], spread=30))
    # (per budget: the exponent comes out exact from both, as every budget's vertex is off by the same factor)
    for w, n in zip(wide.per_budget_, near.per_budget_):
        assert abs(np.log(n.n_opt / CHIN.n_opt(n.C))) < 0.5 * abs(np.log(w.n_opt / CHIN.n_opt(w.C)))
    with pytest.raises(UserError, match="window"):
        Approach2(window=2).fit(N, D, C, L)


def test_approach2_residual_summary():
    N, D, C, L = _isoflop(CHIN, np.geomspace(1e18, 1e21, 4))
    law = Approach2(robust="lsq").fit(N, D, C, L)
    assert law.residuals_["of"] == "n_opt" and law.residuals_["n"] == 4
    assert 0 <= law.residuals_["rms_rel"] <= law.residuals_["max_rel"] < 0.05


def test_approach3_tie_and_fix():
    rng = np.random.default_rng(3)
    tied = ParametricLaw(E=1.8, A=300.0, B=900.0, alpha=0.3, beta=0.3)
    N, D, _C, L = _isoflop(tied, np.geomspace(1e18, 1e21, 5), per=7, noise=0.002, rng=rng)
    grid = hoffmann_grid()[::9]
    fit = Approach3(grid=grid, n_jobs=1, tie="alpha=beta").fit(N, D, L)
    assert fit.alpha_ == fit.beta_ and abs(fit.alpha_ - 0.3) < 0.02 and fit.free_ == ["A", "B", "E", "alpha"]
    fix = Approach3(grid=grid, n_jobs=1, fix={"E": 1.8, "beta": 0.3}).fit(N, D, L)
    assert fix.E_ == pytest.approx(1.8, rel=1e-12) and fix.beta_ == 0.3 and fix.free_ == ["A", "B", "alpha"]
    assert abs(fix.alpha_ - 0.3) < 0.01
    both = Approach3(grid=grid, n_jobs=1, tie="alpha=beta", fix="alpha=0.3").fit(N, D, L)
    assert both.alpha_ == both.beta_ == 0.3
    assert json.loads(fit.to_json())["tie"] == [["alpha", "beta"]]
    for bad, match in (
        ({"tie": "alpha=E"}, "cannot tie"),
        ({"fix": "gamma=1"}, "cannot fix"),
        ({"fix": "E=oops"}, "NAME=NUMBER"),
        ({"loss": "l1"}, "huber or lsq"),
    ):
        with pytest.raises(UserError, match=match):
            Approach3(grid=grid, n_jobs=1, **bad).fit(N, D, L)


def test_gadre_held_out_runs_with_tied_exponents_and_least_squares():
    """Gadre et al. 2024: 5 small RedPajama runs, C4-eval loss, tied exponents, plain least squares on L; the
    1.4B (M = 640) and 6.9B (M = 20) runs, ~300x the fit set's compute, are predicted within 0.71% and 0.73%."""
    r = pd.read_csv(shared("gadre2024-overtraining", "runs.csv"))
    r = r[r.dataset_name == "rpj"]
    small = r.model_name.isin(["d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8"])
    fit_set = r[small & ((r.tok_mult == 20) | ((r.model_name == "d=96_l=8_h=4") & (r.tok_mult == 320)))]
    assert len(fit_set) == 5
    law = Approach3(tie="alpha=beta", loss="lsq", n_jobs=1).fit(fit_set.N, fit_set.D, fit_set.loss_c4_val)
    ref = json.loads(shared("gadre2024-overtraining", "fits_reproduced_with_authors_code.json").read_text())["rpj"]
    assert law.alpha_ == pytest.approx(-ref["b"], abs=1e-5) and law.E_ == pytest.approx(ref["E"], rel=1e-4)
    errs = []
    for name, m in (("open_lm_1b", 640), ("open_lm_7b", 20)):
        row = r[(r.model_name == name) & (r.tok_mult == m)].iloc[0]
        errs.append(100 * (law.predict_loss(row.N, row.D) / row.loss_c4_val - 1))
    assert [round(e, 2) for e in errs] == [0.71, 0.73]
    assert any("5 points for 4 free parameters" in w for w in law.warnings_)  # honest: a thin fit


def test_gemstones_one_width_is_not_identified():
    """McLeish et al. 2025's single-width subset (N spans 1.2x) fits a runaway alpha: the fit must say so."""
    g = pd.read_json(
        shared("gemstones2025", "raw", "wandb_dfs", "wandb_df_for_fitting_hot_100b+_512x.jsonl"), lines=True
    )
    law = Approach3(grid=hoffmann_grid()[::9], n_jobs=1).fit(g.params_active_precise, g.tokens, g.final_loss)
    assert law.alpha_ > 1.5
    w = " | ".join(law.warnings_)
    assert "N spans only 1.2x" in w and "above 1.5" in w


def test_flat_direction_is_reported():
    """Losses that depend on D only: A/N^alpha and E are one constant, a flat direction of the objective."""
    rng = np.random.default_rng(0)
    N = np.full(30, 1e8)
    D = np.geomspace(1e9, 1e11, 30)
    L = 2.0 + 500 / D**0.3 * np.exp(0.001 * rng.standard_normal(30))
    law = Approach3(grid=hoffmann_grid()[::25], n_jobs=1, fix={"alpha": 0.3}).fit(N, D, L)
    assert any("flat along" in w for w in law.warnings_), law.warnings_


def test_porian_compute_optimal_loss_backtest():
    """Porian et al. 2024 fit L*(C) = E + A C^-gamma on budgets <= 4e17 and predict 6.4e18 within +0.78%. Here:
    the same law fitted to approach 2's vertices (default settings) on those budgets."""
    df, _ = _porian()
    c = df[df.config == PORIAN_MAIN]
    opt = pd.read_csv(shared("porian2024-resolving", "optimal_pairs.csv"))
    opt = opt[opt.config == PORIAN_MAIN]
    a2 = Approach2().fit(*(c[c.flops <= 4e17][k] for k in ("N", "D", "flops", "loss")))
    assert a2.n_budgets_ == 6
    lc = LossComputeLaw.from_minima(a2)
    held = Approach2().fit(c.N, c.D, c.flops, c.loss)
    vertex = next(r for r in held.per_budget_ if r.C == 6.4e18)
    authors = float(opt[opt.flops == 6.4e18].loss_opt.iloc[0])
    err_vertex = 100 * (lc.predict_loss_at(6.4e18) / vertex.loss_opt_n - 1)
    err_authors = 100 * (lc.predict_loss_at(6.4e18) / authors - 1)
    assert round(err_vertex, 2) == 0.24 and round(err_authors, 2) == 0.18  # measured; published +0.78%
    # fitted to the authors' own optimal losses (1e16 < C < 5e17) the law predicts as theirs did
    m = (opt.flops > 1e16) & (opt.flops < 5e17)
    own = LossComputeLaw().fit(opt.flops[m], opt.loss_opt[m])
    published = LossComputeLaw(E=2.00556, A=128.932, gamma=0.105970)
    assert round(100 * (published.predict_loss_at(6.4e18) / authors - 1), 2) == 0.78
    assert abs(own.predict_loss_at(6.4e18) / authors - 1) < 0.0078
    assert lc.allocation and at_budget(lc, 6.4e18)["N_opt"] == pytest.approx(a2.n_opt(6.4e18))


def test_muennighoff_data_constrained_law():
    """Muennighoff et al. 2023: with the base terms frozen, R*_D = 15.39 and R*_N = 5.31 on the 182 runs. Our
    optimiser (float64) finds a slightly lower objective at R*_D = 15.372, R*_N = 5.315: within SOURCE's +-0.05,
    +-0.02; the published point is reached to the printed digits only by an optimiser stopping earlier."""
    df = pd.read_csv(shared("muennighoff2023-datablations", "c4_runs_fit182.csv"))
    alpha = 0.3526596
    base = {"E": np.exp(0.6254804), "A": np.exp(6.255414), "B": np.exp(7.3049974), "alpha": alpha, "beta": alpha}
    pub = DataConstrainedLaw(**base, r_star_d=15.387756, r_star_n=5.309743)
    assert pub.predict_loss(6.34e9, 242e9, 25e9) == pytest.approx(2.2256440889984477, rel=1e-9)
    assert pub.predict_loss(8.67e9, 178e9, 25e9) == pytest.approx(2.2269634075087867, rel=1e-9)
    law = DataConstrainedLaw(fix=base).fit(df.N, df.D, df.U, df.loss)
    assert abs(law.r_star_d_ - 15.39) < 0.05 and abs(law.r_star_n_ - 5.31) < 0.02
    assert law.objective_ <= 0.0158259353  # the published point's objective (notebook: 0.015825936570763588)
    d = json.loads(law.to_json())
    assert {"r_star_d", "r_star_n"} <= set(d) and d["kind"] == "data-constrained"
    # with 25B unique tokens the smaller, longer-trained model is the better use of the same compute
    assert pub.predict_loss(6.34e9, 242e9, 25e9) < pub.predict_loss(8.67e9, 178e9, 25e9)
    # fresh data (U = D): Chinchilla's law with the base terms
    assert pub.predict_loss(1e9, 2e10) == pytest.approx(ParametricLaw(**base).predict_loss(1e9, 2e10))


def test_predict_with_intervals_and_round_trip():
    from scalinglab.laws.registry import law_from_dict

    rng = np.random.default_rng(5)
    N, D, C, L = _isoflop(CHIN, np.geomspace(1e18, 1e21, 5), per=7, noise=0.005, rng=rng)
    law = Approach3(grid=hoffmann_grid()[::25], n_jobs=1, bootstrap=40, seed=1).fit(N, D, L)
    p = predict(law, n=1e9, d=2e10)
    assert p["loss"] == pytest.approx(law.predict_loss(1e9, 2e10)) and p["loss_lo"] < p["loss"] < p["loss_hi"]
    q = predict(law, at=1e22)
    assert q["N_opt_lo"] < q["N_opt"] < q["N_opt_hi"] and q["loss_lo"] < q["loss"] < q["loss_hi"]
    back = law_from_dict(json.loads(law.to_json()))
    assert predict(back, at=1e22) == pytest.approx(q, rel=1e-5)  # draws stored to 7 digits
    a2 = Approach2(robust="lsq", bootstrap=50).fit(N, D, C, L)
    r = at_budget(a2, 1e22)
    assert r["N_opt_lo"] < r["N_opt"] < r["N_opt_hi"] and "loss" not in r
    with pytest.raises(UserError, match="not the loss at"):
        loss_at(a2, 1e9, 1e10)
    with pytest.raises(UserError, match="not both or neither"):
        predict(law, n=1e9, d=1e10, at=1e20)


# Interval coverage: 95% bootstrap intervals on synthetic data from known laws should hold the truth ~95% of the
# time. Binomial: with 50-60 trials a true 95% gives >= 85% with probability ~0.99. Coverage alone cannot catch
# intervals that are too wide, so their median width is also held against the spread of the estimates across
# trials (a 95% interval of a normal estimate is 3.92 standard deviations wide).


def _check_intervals(est, lo, hi, truth):
    est, lo, hi = (np.asarray(x, float) for x in (est, lo, hi))
    cover = np.mean((lo <= truth) & (truth <= hi))
    width_ratio = np.median(hi - lo) / (3.92 * np.std(est))
    assert 0.85 <= cover and 0.6 <= width_ratio <= 1.6, (cover, width_ratio)


def test_interval_coverage_approach3():
    truth = ParametricLaw(E=1.8, A=480.0, B=2000.0, alpha=0.34, beta=0.36)
    budgets = np.geomspace(1e18, 1e20, 5)
    c_far = 1e21  # 10x the largest budget
    grid = np.array(
        [
            [np.log(480) + dx, np.log(2000) + dx, np.log(1.8) + de, 0.34 + da, 0.36 + da]
            for dx in (-1, 1)
            for de in (-0.1, 0.1)
            for da in (-0.05, 0.05)
        ]
    )
    rows = []
    for s in range(50):
        N, D, _C, L = _isoflop(truth, budgets, spread=4, per=7, noise=0.01, rng=np.random.default_rng(s))
        fit = Approach3(grid=grid, bootstrap=50, seed=s, n_jobs=1).fit(N, D, L)
        p = at_budget(fit, c_far)
        rows.append((fit.a_, *fit.ci_["a"], p["loss"], p["loss_lo"], p["loss_hi"]))
    r = np.array(rows)
    _check_intervals(r[:, 0], r[:, 1], r[:, 2], truth.a)
    _check_intervals(r[:, 3], r[:, 4], r[:, 5], truth.loss_at_optimum(c_far))


def test_interval_coverage_approach2_and_lc():
    """A known IsoFLOP law: per budget, loss = L*(C) + k (log10 N/N_opt)^2 with N_opt = k_n C^a and
    L*(C) = E + A C^-gamma, plus noise; truth for approach 2 (a, N_opt at 10x) and lc (L* at 10x)."""
    a, k_n, E, A, g = 0.5, 0.1, 1.8, 400.0, 0.12
    budgets = np.geomspace(1e18, 1e20, 5)
    c_far = 1e21
    rows = []
    for s in range(60):
        rng = np.random.default_rng(s)
        pts = []
        for C in budgets:
            n0 = k_n * C**a
            for n in n0 * np.geomspace(1 / 8, 8, 9):
                pts.append((n, C / (6 * n), C, E + A * C**-g + 0.25 * np.log10(n / n0) ** 2))
        N, D, C, L = map(np.array, zip(*pts))
        L = L + 0.005 * rng.standard_normal(len(L))
        a2 = Approach2(robust="lsq", bootstrap=60, seed=s).fit(N, D, C, L)
        lc = LossComputeLaw.from_minima(a2)
        p2, pl = at_budget(a2, c_far), at_budget(lc, c_far)
        rows.append(
            (a2.a_, *a2.ci_["a"], p2["N_opt"], p2["N_opt_lo"], p2["N_opt_hi"], pl["loss"], pl["loss_lo"], pl["loss_hi"])
        )
    r = np.array(rows)
    _check_intervals(r[:, 0], r[:, 1], r[:, 2], a)
    _check_intervals(np.log(r[:, 3]), np.log(r[:, 4]), np.log(r[:, 5]), np.log(k_n * c_far**a))
    _check_intervals(r[:, 6], r[:, 7], r[:, 8], E + A * c_far**-g)
