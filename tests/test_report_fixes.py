"""The report says what it did: the legend names the real --max-loss cut, the text names the parabola fitter each
budget really used, the approach-1 envelope is the black line its caption says, approach 1's points on the
allocation panels are one marker per run, text columns of wide tables wrap, and --out has a default."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from conftest import shared  # noqa: E402
from scalinglab.report.html import CSS  # noqa: E402
from scalinglab.report.plots import Parabola, allocation_figure, envelope_figure, isoflop_figure  # noqa: E402
from scalinglab.report.study import _methods  # noqa: E402


def _legend(fig) -> list[str]:
    ax = fig.axes[0]
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_isoflop_legend_names_the_max_loss_cut_not_the_plot_edge():
    N = np.array([1e5, 2e5, 4e5, 8e5, 1.6e6, 1e5, 2e5])
    budget = np.array([1e15] * 5 + [1e15] * 2)
    loss = np.array([1.6, 1.5, 1.45, 1.5, 1.62, 2.4, 3.1])  # the last two did not converge
    used = np.array([True] * 5 + [False] * 2)
    coef = np.polyfit(np.log10(N[:5]), loss[:5], 2)
    p = Parabola(1e15, coef, 10 ** (-coef[1] / (2 * coef[0])), 1.45, (1e5, 1.6e6))
    labels = _legend(isoflop_figure(N, budget, loss, used, [p], max_loss=2.0))
    assert "left out: loss > 2, --max-loss (2)" in labels
    assert not any("1.6" in t or "1.7" in t for t in labels if t.startswith("left out"))  # not the plot's top edge
    assert "(off the scale: on the top edge)" in labels
    # without a cut, a left-out run is a parabola outlier
    labels = _legend(isoflop_figure(N, budget, loss, used, [p]))
    assert "left out: parabola outlier (2)" in labels


@dataclass
class _Budget:
    C: float
    method_n: str | None


def test_fit_method_text_says_where_ransac_fell_back():
    assert _methods([_Budget(1e15, "ransac"), _Budget(3e15, "ransac")], "ransac") == "RANSAC"
    text = _methods([_Budget(1e15, "lsq"), _Budget(3e15, "ransac"), _Budget(1e16, None)], "ransac")
    assert text.startswith("RANSAC; least squares at C = 1e+15") and "RANSAC needs 5 runs" in text
    assert _methods([_Budget(1e15, "lsq")], "lsq") == "least squares"


def test_envelope_is_a_black_line_and_allocation_marks_one_point_per_run():
    C = [np.logspace(10, 12, 20), np.logspace(10, 12.5, 20)]
    L = [3.0 - 0.3 * np.log10(c / 1e10) for c in C]
    frontier = [
        {"C": c, "loss": 2.5, "N": n, "D": c / (6 * n)}
        for c, n in [(1e11, 1e5), (2e11, 1e5), (4e11, 1e5), (8e11, 2e5), (1.6e12, 2e5)]
    ]
    fig = envelope_figure([1e5, 2e5], C, L, frontier)
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("lower envelope"))
    assert matplotlib.colors.to_hex(line.get_color()) == "#000000" and line.get_alpha() in (None, 1.0)
    fig = allocation_figure([1e11, 1e12], [1e5, 2e5], [1e6, 2e6], envelope=frontier)
    env = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "approach 1: runs on the envelope")
    x, y = env.get_data()
    assert len(x) == 2 and list(y) == pytest.approx([1e5, 2e5])  # one marker per run, not one per grid point
    assert x[0] == pytest.approx(np.sqrt(1e11 * 4e11))


def test_text_columns_of_wide_tables_wrap():
    assert "td.l{white-space:normal" in CSS and "th{white-space:normal" in CSS


def test_report_out_defaults_beside_the_csv(tmp_path):
    from scalinglab.cli import main

    src = tmp_path / "isoflop_runs.csv"
    shutil.copy(shared("minchilla", "isoflop_runs.csv"), src)
    try:
        main(
            [
                "report",
                str(src),
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
                "--approach",
                "2",
            ]
        )
    except SystemExit as e:
        assert e.code in (0, None)
    assert (tmp_path / "isoflop_runs-report.html").read_text().startswith("<!DOCTYPE html>")
