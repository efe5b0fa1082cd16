"""Backtests: fit on the smaller budgets of a study, predict the held-out larger ones, and score each approach's
N_opt and loss (with intervals) against the observed optimum (the best run, and the parabola's vertex when bracketed)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from scalinglab.analysis.fit import StudyFit, fit_study
from scalinglab.analysis.options import FitOptions
from scalinglab.analysis.runs import Runs
from scalinglab.errors import ConfigError
from scalinglab.laws.approach2 import Approach2, group_budgets


@dataclass(frozen=True)
class Observed:
    """The optimum observed at one held-out budget."""

    budget: float
    best_n: float
    """N of the run with the lowest loss."""
    best_loss: float
    vertex_n: float | None
    """N at the vertex of the budget's parabola (None where its minimum is not bracketed by the sampled sizes)."""
    vertex_loss: float | None
    n_runs: int

    @property
    def n_opt(self) -> float:
        return self.vertex_n if self.vertex_n is not None else self.best_n

    @property
    def loss(self) -> float:
        return self.vertex_loss if self.vertex_loss is not None else self.best_loss


@dataclass(frozen=True)
class BacktestRow:
    """One approach's prediction at one held-out budget against what was observed."""

    budget: float
    approach: str
    n_opt_pred: float | None
    n_opt_lo: float | None
    n_opt_hi: float | None
    n_opt_obs: float
    """The held-out parabola's vertex where bracketed, else the best run's N."""
    loss_pred: float | None
    loss_lo: float | None
    loss_hi: float | None
    loss_obs: float
    """The vertex's loss where bracketed, else the best run's loss."""
    loss_err: float | None
    """loss_pred / loss_obs - 1."""
    best_n: float
    best_loss: float
    vertex_n: float | None
    vertex_loss: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Backtest:
    """A fit on the kept budgets (`fit`), the held-out budgets' optima and the rows scoring each prediction."""

    fit: StudyFit
    held_out: tuple[Observed, ...]
    rows: tuple[BacktestRow, ...]
    holdout: dict[str, Any]

    @property
    def fit_budgets(self) -> list[float]:
        """The budgets fitted on (geometric mean of each group of runs)."""
        runs = self.fit.runs.subset(self.fit.runs.done)
        gid = group_budgets(runs.budget, self.fit.options.budget_tol)
        return [_centre(runs.budget[gid == g]) for g in np.unique(gid)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.fit.runs.source,
            "holdout": self.holdout,
            "fit_budgets": self.fit_budgets,
            "held_out": [o.__dict__ for o in self.held_out],
            "rows": [r.to_dict() for r in self.rows],
            "fit": self.fit.to_dict(),
        }


def _centre(budgets: np.ndarray) -> float:
    """A budget group's C: the planned value when all agree, else the geometric mean (as approach 2 names it)."""
    return float(budgets[0]) if np.all(budgets == budgets[0]) else float(np.exp(np.mean(np.log(budgets))))


def observed_optimum(runs: Runs, options: FitOptions) -> Observed:
    """The optimum of one budget's runs: its best run, and its parabola's vertex under the fit's own rules."""
    i = int(np.nanargmin(runs.loss))
    law = Approach2(
        robust=options.robust,
        max_loss=options.max_loss,
        seed=options.seed,
        budget_tol=float("inf"),
        window=options.window,
    )
    law.profile(runs.N, runs.D, runs.budget, runs.loss)
    r = law.per_budget_[0]
    vertex = r.ok and r.bracketed
    return Observed(
        _centre(runs.budget),
        float(runs.N[i]),
        float(runs.loss[i]),
        r.n_opt if vertex else None,
        r.loss_opt_n if vertex else None,
        len(runs),
    )


def backtest(
    runs: Runs,
    options: FitOptions | None = None,
    *,
    holdout_above: float | None = None,
    holdout_largest: int | None = None,
    progress=None,
) -> Backtest:
    """Hold out the budgets above `holdout_above` (or the `holdout_largest` largest), fit every approach on the
    rest with `options`, and score the predictions at each held-out budget."""
    options = (options or FitOptions()).validate()
    if (holdout_above is None) == (holdout_largest is None):
        raise ConfigError(
            "say which budgets to hold out: those above a budget C, or the K largest",
            keys=("holdout_above", "holdout_largest"),
        )
    done = runs.subset(runs.done)
    if not len(done):
        raise ConfigError(f"{runs.source} has no finished run", hint="run the study first")
    gid = group_budgets(done.budget, options.budget_tol)
    groups = np.unique(gid)
    centre = np.array([_centre(done.budget[gid == g]) for g in groups])
    names = ", ".join(f"{c:.3g}" for c in centre)
    if holdout_above is not None:
        held = groups[centre > holdout_above * (1 + options.budget_tol)]
        if not len(held):
            raise ConfigError(
                f"no budget above {holdout_above:.3g} to hold out (budgets: {names})",
                hint="hold out above a smaller budget, or the K largest",
                keys=("holdout_above",),
            )
    else:
        if not 0 < holdout_largest < len(groups):
            raise ConfigError(
                f"cannot hold out the {holdout_largest} largest of {len(groups)} budgets ({names})",
                hint=f"hold out between 1 and {len(groups) - 1}",
                keys=("holdout_largest",),
            )
        held = groups[-holdout_largest:]
    is_held = np.isin(gid, held)
    if len(np.unique(gid[~is_held])) < 2:
        raise ConfigError(
            f"holding out {len(held)} of {len(groups)} budgets leaves fewer than 2 to fit on (budgets: {names})",
            hint="hold out fewer budgets",
            keys=("holdout_above", "holdout_largest"),
        )
    obs = tuple(observed_optimum(done.subset(gid == g), options) for g in held)
    opts = replace(options, at=tuple(o.budget for o in obs))
    fit = fit_study(done.subset(~is_held), opts, progress)
    pred = fit.prediction()
    rows = []
    for i, o in enumerate(obs):
        for name, f in fit.approaches.items():
            if i < len(f.at):
                a = f.at[i]
                rows.append(_row(o, name, a.n_opt, a.n_opt_ci, a.loss, a.loss_ci))
        p = pred[i] if i < len(pred) else {}
        if p.get("N_opt_ci_calibrated") or p.get("loss_ci_calibrated"):
            rows.append(
                _row(
                    o,
                    CALIBRATED,
                    p.get("N_opt"),
                    p.get("N_opt_ci_calibrated"),
                    p.get("loss"),
                    p.get("loss_ci_calibrated"),
                )
            )
    how = {"above": holdout_above} if holdout_above is not None else {"largest": holdout_largest}
    return Backtest(fit, obs, tuple(rows), how)


CALIBRATED = "2/lc calibrated"
"""The row of the recommended pair (approach 2's N_opt, lc's loss) with its calibrated 95% intervals (fit.prediction)."""


def _row(o: Observed, approach: str, n_opt, n_ci, loss, l_ci) -> BacktestRow:
    """One prediction (intervals may be None) scored against the observed optimum o."""
    n_ci, l_ci = n_ci or (None, None), l_ci or (None, None)
    return BacktestRow(
        o.budget,
        approach,
        n_opt,
        n_ci[0],
        n_ci[1],
        o.n_opt,
        loss,
        l_ci[0],
        l_ci[1],
        o.loss,
        None if loss is None else loss / o.loss - 1,
        o.best_n,
        o.best_loss,
        o.vertex_n,
        o.vertex_loss,
    )
