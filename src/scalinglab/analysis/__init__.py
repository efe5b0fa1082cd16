"""Analysis layer: one typed runs table (`Runs`), one fit path (`fit_study` with `FitOptions` -> `StudyFit`) and the
bootstrap by whole runs. Pure numpy/scipy/pandas on top of scalinglab.laws: no torch, no matplotlib."""

from scalinglab.analysis.approaches import APPROACHES, Approach, Fitted, parse_approaches
from scalinglab.analysis.backtest import Backtest, BacktestRow, backtest
from scalinglab.analysis.bootstrap import Draws, bootstrap_runs
from scalinglab.analysis.fit import ApproachFit, AtBudget, Residuals, StudyFit, fit_study
from scalinglab.analysis.options import FitOptions
from scalinglab.analysis.runs import Columns, Curve, Runs

__all__ = [
    "APPROACHES",
    "Approach",
    "Backtest",
    "BacktestRow",
    "backtest",
    "ApproachFit",
    "AtBudget",
    "Columns",
    "Curve",
    "Draws",
    "FitOptions",
    "Fitted",
    "Residuals",
    "Runs",
    "StudyFit",
    "bootstrap_runs",
    "fit_study",
    "parse_approaches",
]
