"""Replicate runs: `plan isoflop --seeds K` trains K runs per budget and shape that differ only in seed, and the fits
treat them as one size measured K times (approach 2 by per-size means, approach 1 by averaged curves)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from scalinglab.laws.approach1 import Approach1
from scalinglab.laws.approach2 import Approach2
from test_sweep import cli, plan, plan_args


def specs(study: Path) -> dict[str, dict]:
    con = sqlite3.connect(study / "study.db")
    out = {rid: json.loads(spec) for rid, spec in con.execute("SELECT id, spec FROM runs")}
    con.close()
    return out


def test_plan_seeds_makes_replicates_that_differ_only_in_seed(tiny_data, tmp_path):
    study = tmp_path / "S"
    out = plan(tiny_data, study, "3e9", "16x1,24x1", "--seeds", "3", "--seed", "5")
    ids = [r["id"] for r in out["runs"]]
    assert ids == [f"C3e9_{s}{t}" for s in ("16x1", "24x1") for t in ("", "_s1", "_s2")]
    sp = specs(study)
    for shape in ("16x1", "24x1"):
        first = sp[f"C3e9_{shape}"]
        assert [sp[f"C3e9_{shape}{t}"]["seed"] for t in ("", "_s1", "_s2")] == [5, 6, 7]
        for t in ("_s1", "_s2"):
            other = dict(sp[f"C3e9_{shape}{t}"], seed=first["seed"], run_id=first["run_id"])
            assert other == first
    assert "seeds = 3" in (study / "study.toml").read_text()


def test_extend_with_more_seeds_adds_only_the_new_replicates(tiny_data, tmp_path):
    study = tmp_path / "S"
    plan(tiny_data, study, "3e9", "16x1,24x1")
    p = cli("plan", "isoflop", "--extend", str(study), "--budgets", "3e9", "--shapes", "16x1,24x1", "--seeds", "2")
    assert p.returncode == 0, p.stderr
    assert sorted(specs(study)) == ["C3e9_16x1", "C3e9_16x1_s1", "C3e9_24x1", "C3e9_24x1_s1"]
    assert specs(study)["C3e9_24x1_s1"]["seed"] == 1
    # a later extension keeps the study's replicates unless told otherwise: the new budget gets one run per shape
    p = cli("plan", "isoflop", "--extend", str(study), "--budgets", "6e9", "--shapes", "16x1", "--json")
    assert p.returncode == 0, p.stderr
    assert [r["id"] for r in json.loads(p.stdout)["runs"]] == ["C6e9_16x1"]


def test_seeds_must_be_positive_and_not_wsd(tiny_data, tmp_path):
    p = cli(*plan_args(tiny_data, tmp_path / "A", "3e9", "16x1,24x1", "--seeds", "0"))
    assert p.returncode == 2 and "--seeds" in p.stderr and "Traceback" not in p.stderr
    p = cli(*plan_args(tiny_data, tmp_path / "B", "3e9", "16x1,24x1", "--seeds", "2", "--schedule", "wsd"))
    assert p.returncode == 2 and "WSD" in p.stderr and not (tmp_path / "B").exists()


def _grid(replicates: int, noise: float = 0.01, seed: int = 0):
    """Three budgets x 7 sizes of a Chinchilla-like law, each size `replicates` times with noise."""
    rng = np.random.default_rng(seed)
    N, D, C, L = [], [], [], []
    for c in (1e17, 1e18, 1e19):
        for n in np.geomspace(c**0.5 / 60, c**0.5 / 3, 7):
            d = c / (6 * n)
            for _ in range(replicates):
                N.append(n), D.append(d), C.append(c)
                L.append(1.7 + 400 / n**0.34 + 410 / d**0.28 + noise * rng.standard_normal())
    return (np.array(v) for v in (N, D, C, L))


def test_approach2_fits_replicates_as_their_per_size_means():
    """Least squares on every replicate is least squares on the per-size means weighted by their count: the same
    vertices and exponents; the window and the bracket count sizes, not runs."""
    N, D, C, L = _grid(3)
    reps = Approach2(robust="lsq", window=5).fit(N, D, C, L)
    key = np.round(np.log(N) * 1e6)
    sizes = np.unique(np.stack([key, C]), axis=1, return_index=True)[1]
    mean = np.array([L[(key == key[i]) & (C == C[i])].mean() for i in sizes])
    means = Approach2(robust="lsq", window=5).fit(N[sizes], D[sizes], C[sizes], mean, sample_weight=np.full(21, 3.0))
    for a, b in zip(reps.per_budget_, means.per_budget_):
        assert a.n_used == 21 and b.n_used == 7
        assert a.window_n == b.window_n and a.best_n == b.best_n
        assert a.best_loss == pytest.approx(b.best_loss, rel=1e-12)
        assert a.n_opt == pytest.approx(b.n_opt, rel=1e-9) and a.loss_opt_n == pytest.approx(b.loss_opt_n, rel=1e-12)
    assert reps.a_ == pytest.approx(means.a_, rel=1e-9)
    # the window of 5 sizes holds 15 runs: 3 replicates of each
    w = reps.per_budget_[0].window_n
    assert ((N >= w[0]) & (N <= w[1]) & (C == 1e17)).sum() == 15


def test_approach2_bracket_is_judged_on_sizes():
    """The lowest single run lies at the second size, but the smallest size's mean is lower: not bracketed."""
    n = np.array([1e6, 1e6, 2e6, 2e6, 4e6, 4e6, 8e6, 8e6])
    loss = np.array([2.00, 2.02, 1.99, 2.05, 2.10, 2.10, 2.20, 2.20])
    law = Approach2(robust="lsq")
    law.profile(n, 1e17 / (6 * n), np.full(8, 1e17), loss)
    row = law.per_budget_[0]
    assert row.best_n == 1e6 and row.best_loss == pytest.approx(2.01) and not row.bracketed


def test_approach1_averages_replicates_instead_of_taking_the_luckiest():
    N, D, C, L = _grid(2, noise=0.02, seed=3)
    key = np.round(np.log(N) * 1e6) + C
    first = np.unique(key, return_index=True)[1]
    mean = np.array([L[key == key[i]].mean() for i in first])
    a = Approach1().fit_points(N, D, C, L)
    b = Approach1().fit_points(N[first], D[first], C[first], mean)
    assert a.frontier_ == b.frontier_
    # curves: two replicates of each size, the second a constant 0.1 above: the envelope follows their mean
    c = [np.geomspace(1e15, 1e17 * k, 30) for k in (1, 4, 16)]
    curves = [(1e6 * k, x, 3 - 0.2 * np.log10(x / 1e15) / k**0.1) for k, x in zip((1, 4, 16), c)]
    n = [p[0] for p in curves for _ in range(2)]
    cc = [p[1] for p in curves for _ in range(2)]
    ll = [p[2] + off for p in curves for off in (0.0, 0.1)]
    rep = Approach1().fit_curves(n, cc, ll)
    one = Approach1().fit_curves([p[0] for p in curves], [p[1] for p in curves], [p[2] + 0.05 for p in curves])
    assert [r["N"] for r in rep.frontier_] == [r["N"] for r in one.frontier_]
    assert np.allclose([r["loss"] for r in rep.frontier_], [r["loss"] for r in one.frontier_])
    assert any("replicate" in s for s in rep.notes_)


@pytest.mark.slow
def test_seeds_train_different_runs(tiny_data, tmp_path):
    """Two replicates of one shape, swept on the CPU: both finish, and their seeds make their losses differ."""
    study = tmp_path / "S"
    plan(tiny_data, study, "3e9", "16x1", "--seeds", "2")
    p = cli("sweep", str(study), "--workers", "2")
    assert p.returncode == 0, p.stderr
    con = sqlite3.connect(study / "study.db")
    rows = dict(con.execute("SELECT id, final_val_loss FROM runs"))
    con.close()
    assert set(rows) == {"C3e9_16x1", "C3e9_16x1_s1"}
    assert all(np.isfinite(v) for v in rows.values())
    assert rows["C3e9_16x1"] != rows["C3e9_16x1_s1"]
