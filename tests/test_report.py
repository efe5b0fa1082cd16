"""`scalinglab report`: the Perceiver AR article's experiments from its CSVs (Tables 1-3 numbers, the final
losses its validation curves give), minchilla's IsoFLOP report (exponent 0.48), self-contained HTML, bad input -> exit 2."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, needs_shared, shared
from scalinglab.cli import main

DATA = SHARED_DATA
VALIDATION = DATA / "perceiver-ar-scaling" / "validation"
MINCHILLA = DATA / "minchilla" / "isoflop_runs.csv"


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def table_rows(html: str) -> list[list[str]]:
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", html)]


def external_refs(html: str) -> list[str]:
    """Every src/href that would make the browser fetch something (the page must need nothing)."""
    return [u for u in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html) if not u.startswith(("data:", "#"))]


@needs_shared
def test_scaling_1_table_shows_the_article_numbers_and_final_losses(tmp_path):
    out, figs = tmp_path / "exp1.html", tmp_path / "figs"
    assert (
        run(
            [
                "report",
                "--curves",
                str(VALIDATION),
                "--experiment",
                "scaling-1",
                "--out",
                str(out),
                "--figures",
                str(figs),
            ]
        )
        == 0
    )
    html = out.read_text()
    rows = {r[0]: r for r in table_rows(html) if r and r[0].startswith("Model")}
    header = next(r for r in table_rows(html) if r and r[0] == "model")
    col = {h: i for i, h in enumerate(header)}
    # the article: model 2 (predicted optimal) has the lowest loss at the common budget
    finals = {k: r[col["final loss"]] for k, r in rows.items()}
    assert finals == {"Model 1 (ref)": "3.2629", "Model 2 (opt)": "3.2453", "Model 3": "3.2601"}
    assert "Model 2 (opt): 3.2453" in html
    # the article's Table 1: D_iso, N, N_self, C, C_self per model
    table1 = {
        "Model 1 (ref)": ("2.05e+09", "4.58e+07", "4.50e+07", "5.93e+17", "5.78e+17"),
        "Model 2 (opt)": ("1.29e+09", "7.27e+07", "7.17e+07", "5.91e+17", "5.78e+17"),
        "Model 3": ("8.70e+08", "1.08e+08", "1.06e+08", "5.89e+17", "5.78e+17"),
    }
    for k, want in table1.items():
        assert tuple(rows[k][col[c]] for c in ("D_iso", "N", "N_self", "C", "C_self")) == want
    # the budget line sits at C_self; the reference model ends at C / C_self = 1 / (1 - 0.0245) (Table 2)
    assert float(rows["Model 1 (ref)"][col["C / C_ref"]]) == pytest.approx(1 / (1 - 0.0245), abs=2e-4)
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == 1
    assert external_refs(html) == []
    png, svg = figs / "scaling-1-loss-vs-compute.png", figs / "scaling-1-loss-vs-compute.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ET.parse(svg).getroot().tag.endswith("svg")


@needs_shared
def test_all_three_experiments_and_their_tables(tmp_path):
    out = tmp_path / "all.html"
    assert run(["report", "--curves", str(VALIDATION), "--out", str(out), "--inline", "svg"]) == 0
    html = out.read_text()
    assert len(re.findall(r'<img src="data:image/svg\+xml;base64,', html)) == 3
    rows = {r[0]: r for r in table_rows(html) if r and r[0].startswith("Model")}
    # Table 3 (experiment 2a): model 5 768x13, N_self 9.26e+07, C 2.09e+17; Table 5 (2b) model 2: C 2.05e+17
    assert "9.26e+07" in rows["Model 5"] and "2.09e+17" in rows["Model 5"]
    assert "Model 1 (ref): 0.8694" in html and "Model 1 (ref): 0.8713" in html  # 2a and 2b: the reference wins


@needs_shared
def test_retrained_model_2_is_recognised_by_its_length(tmp_path):
    out = tmp_path / "wip.html"
    assert (
        run(
            [
                "report",
                "--curves",
                str(DATA / "perceiver-ar-scaling" / "validation-wip-scaling"),
                "--experiment",
                "scaling-1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    html = out.read_text()
    assert "Model 2 (opt, updated)" in html and "592x10" in html and "3.2582" in html


@needs_shared
@pytest.mark.parametrize("bad", ["missing-folder", "bad-columns", "unknown-experiment", "no-source", "bad-inline"])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, bad):
    out = tmp_path / "r.html"
    curves = tmp_path / "curves"
    curves.mkdir()
    (curves / "run-logs_scaling-1_version_0-tag-val_loss.csv").write_text("when,what\n1,2\n")
    args = {
        "missing-folder": ["report", "--curves", str(tmp_path / "nope"), "--out", str(out)],
        "bad-columns": ["report", "--curves", str(curves), "--experiment", "scaling-1", "--out", str(out)],
        "unknown-experiment": ["report", "--curves", str(VALIDATION), "--experiment", "scaling-9", "--out", str(out)],
        "no-source": ["report", "--out", str(out)],
        "bad-inline": ["report", "--curves", str(VALIDATION), "--inline", "gif", "--out", str(out)],
    }[bad]
    assert run(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert not out.exists()


@needs_shared
@pytest.mark.slow
def test_minchilla_report_shows_exponent_and_figures(tmp_path):
    """minchilla (github.com/BenAgro314/CSC2541) approach 2 (drop loss > 2, RANSAC parabolas, OLS of log N_opt on log C) gives a = 0.478."""
    out, figs = tmp_path / "report.html", tmp_path / "figs"
    assert (
        run(
            [
                "report",
                str(MINCHILLA),
                "--n-col",
                "params",
                "--d-col",
                "tokens",
                "--c-col",
                "budget_flops",
                "--loss-col",
                "final_loss",
                "--max-loss",
                "2",
                "--out",
                str(out),
                "--figures",
                str(figs),
                "--at",
                "1e18",
                "--window",
                "0",
                "--keep-unbracketed",
            ]
        )
        == 0
    )  # minchilla's method: every size
    html = out.read_text()
    m = re.search(r"N_opt ∝ C\^a \(approach 2\)</td><td[^>]*>a = (\d\.\d+)", html)
    assert m and abs(float(m.group(1)) - 0.478) < 0.005
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) >= 3
    assert external_refs(html) == []
    assert "loss &gt; --max-loss 2" in html  # the runs that did not converge are named in the warnings
    for name in ("isoflop", "allocation"):
        assert (figs / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert ET.parse(figs / f"{name}.svg").getroot().tag.endswith("svg")


def minchilla_study(root: Path) -> Path:
    """A study folder holding minchilla's runs as finished runs (loss > 2 stored as diverged), two with curves."""
    import csv
    import json

    from scalinglab.sweep.store import Store

    study = root / "STUDY"
    study.mkdir()
    st = Store(study, create=True)
    rows = list(csv.DictReader(shared("minchilla", "isoflop_runs.csv").open()))
    st.add_runs(
        [
            {
                "id": f"r{i:02d}",
                "spec": {},
                "budget": float(r["budget_flops"]),
                "arch": "gpt",
                "d_model": int(r["d_model"]),
                "n_layers": int(r["n_layers"]),
                "n_heads": int(r["n_heads"]),
                "params": int(r["params"]),
                "planned_tokens": int(r["tokens"]),
                "steps": int(r["train_iters"]),
                "run_dir": f"runs/r{i:02d}",
            }
            for i, r in enumerate(rows)
        ]
    )
    for i, r in enumerate(rows):
        loss = float(r["final_loss"])
        st.finish(
            f"r{i:02d}",
            "diverged" if loss > 2 else "done",
            {"final_val_loss": loss, "tokens": int(r["tokens"]), "flops": float(r["budget_flops"])},
            0,
        )
        if i < 2:  # a curve: val loss falling to the final loss as FLOPs reach the budget
            c = float(r["budget_flops"])
            lines = [
                {
                    "step": s,
                    "tokens": s,
                    "flops": c * s / 10,
                    "lr": 1e-3,
                    "train_loss": loss + 1 / s,
                    "time_s": s,
                    "val_loss": loss + 1 / s,
                }
                for s in range(1, 11)
            ]
            (study / "runs" / f"r{i:02d}").mkdir(parents=True)
            (study / "runs" / f"r{i:02d}" / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    st.close()
    (study / "study.toml").write_text('[study]\nkind = "isoflop"\n')
    return study


@pytest.mark.slow
def test_study_report_with_predictions(tmp_path):
    study = minchilla_study(tmp_path)
    out = study / "report.html"
    assert run(["report", str(study), "--out", str(out), "--at", "1e18", "--window", "0", "--keep-unbracketed"]) == 0
    html = out.read_text()
    m = re.search(r"N_opt ∝ C\^a \(approach 2\)</td><td[^>]*>a = (\d\.\d+)", html)
    assert m and abs(float(m.group(1)) - 0.478) < 0.005  # the same runs as the CSV, the same fit
    assert "diverged run(s) left out" in html
    assert "Loss vs compute" in html and 'id="fig-loss-vs-compute"' in html
    preds = [r for r in table_rows(html) if r and r[0] == "1.00e+18"]
    # Chinchilla approach 1 at 1e18: N_opt = 0.0877 * 1e9 = 8.77e7, D_opt = 1.896 * 1e9
    assert ["1.00e+18", "chinchilla-approach-1", "8.77e+07", "1.90e+09"] in [r[:4] for r in preds]
    assert any(
        r[1]
        not in ("chinchilla-approach-1", "chinchilla-approach-2", "chinchilla-approach-3", "epoch-approach-3", "kaplan")
        for r in preds
    )  # and the study's own laws


def three_point_budgets():
    """Exact parabolas in log10 N: C=1e15 has its minimum at N=1e7 (sampled 1e6..1e8), C=1e16 at 10^8.5
    (off the sampled range), C=1e17 has 2 runs only. So approach 2's line is log N_opt = 7 + 1.5 (log C - 15)."""
    import pandas as pd

    rows = []
    for c, xs, f in [
        (1e15, (6, 7, 8), lambda x: 2 + 0.1 * (x - 7) ** 2),
        (1e16, (6, 7, 8), lambda x: 1.5 + 0.1 * (x - 8.5) ** 2),
        (1e17, (7, 8), lambda x: 1.2 + 0.1 * (x - 8) ** 2),
    ]:
        rows += [{"n": 10.0**x, "d": c / (6 * 10.0**x), "c": c, "loss": f(x)} for x in xs]
    return pd.DataFrame(rows)


def test_isoflop_minima_warnings_and_outliers_drawn_from_the_approach2_fitter():
    from scalinglab.analysis import FitOptions, Runs, fit_study

    df = three_point_budgets()
    fit = fit_study(Runs.from_arrays(df.n, df.d, df.c, df.loss), FitOptions(approaches=("2",), keep_unbracketed=True))
    law = fit.approaches["2"].law
    assert law.a_ == pytest.approx(1.5, abs=1e-9)
    assert [r.n_opt for r in law.per_budget_ if r.ok] == pytest.approx([1e7, 10**8.5], rel=1e-9)
    assert [r.loss_opt_n for r in law.per_budget_ if r.ok] == pytest.approx([2.0, 1.5], abs=1e-9)
    warn = " | ".join(fit.warnings)
    assert "1e+16: minimum not bracketed by the sampled sizes (the lowest loss is at the largest size); kept" in warn
    assert "1e+17: only 2 usable runs, need 3" in warn
    assert fit.approaches["2"].draws is None and "only 2 budgets" in warn  # a line through 2 points: no interval


@needs_shared
def test_minchilla_inliers_and_seeded_bootstrap_interval():
    """minchilla: with loss > 2 dropped, RANSAC leaves out d640 at 6 and 10 PF: 32 - 2 inliers of 61 runs."""
    import pandas as pd

    from scalinglab.analysis import FitOptions, Runs, fit_study

    raw = pd.read_csv(MINCHILLA)
    runs = Runs.from_arrays(raw.params, raw.tokens, budget=raw.budget_flops, C=raw.budget_flops, loss=raw.final_loss)
    opts = FitOptions(approaches=("2",), max_loss=2, at=(1e18, 1e20), window=None, keep_unbracketed=True)
    f = fit_study(runs, opts).approaches["2"]
    assert int(f.used.sum()) == 30 and not f.used[(raw.final_loss > 2).to_numpy()].any()
    assert sorted(raw.params[~f.used & (raw.final_loss <= 2).to_numpy()].tolist()) == [49458094, 49458094]
    lo, hi = f.intervals["a"]
    assert lo < f.law.a_ < hi and hi - lo < 0.2 and f.draws.n >= 300 and f.draws.method == "residuals"
    for r in f.at:  # the fitted allocation lies inside its own bootstrap interval
        assert r.n_opt_ci[0] < r.n_opt < r.n_opt_ci[1] and r.d_opt_ci[0] < r.d_opt < r.d_opt_ci[1]
    again = fit_study(runs, opts).approaches["2"]
    assert np.array_equal(again.draws.values["a"], f.draws.values["a"])  # seeded
