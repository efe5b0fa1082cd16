"""The approaches fit_study knows, by name: each entry turns the finished runs and the options into a fitted law
(+ which runs it used, bootstrap draws, notes, warnings). A new approach is one entry in APPROACHES."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from scalinglab.analysis.bootstrap import Draws, bootstrap_runs, law_draws
from scalinglab.analysis.options import FitOptions
from scalinglab.analysis.runs import Runs
from scalinglab.errors import UserError
from scalinglab.laws.approach1 import Approach1
from scalinglab.laws.approach2 import Approach2, group_budgets
from scalinglab.laws.approach3 import Approach3
from scalinglab.laws.base import Law, ParametricLaw

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Fitted:
    """What one approach's fitter returns."""

    law: Law
    """The fitted law object (allocate, to_dict; predict_loss where the law has one)."""
    used: np.ndarray
    """Over the runs given: True where the run entered the final fit."""
    draws: Draws | None = None
    """Bootstrap draws of the law's values and of its `at` predictions, if any."""
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Approach:
    name: str
    """Registry key and CLI name (1, 2, 3, ...)."""
    title: str
    """What it fits, in a few words."""
    fit: Callable[[Runs, FitOptions, Progress | None], Fitted]
    """fit(finished runs, options, progress) -> Fitted; raises UserError when the data cannot give this law."""


def converged(runs: Runs, options: FitOptions) -> np.ndarray:
    """The one max-loss rule: runs above options.max_loss did not converge and leave every approach."""
    return np.ones(len(runs), bool) if options.max_loss is None else runs.loss <= options.max_loss


def fit_approach1(runs: Runs, options: FitOptions, progress: Progress | None = None) -> Fitted:
    """Lower envelope of the loss curves of the converged runs; without curves, their Pareto frontier."""
    keep = converged(runs, options)
    sub = runs.subset(keep)
    has = np.array([r in sub.curves and len(sub.curves[r].C) >= 2 for r in sub.run], bool)
    notes: list[str] = []
    if has.sum() >= 2:
        ix = np.flatnonzero(has)
        law = Approach1().fit_curves(sub.N[ix], [sub.curves[sub.run[i]].C for i in ix],
                                     [sub.curves[sub.run[i]].loss for i in ix])
        notes.append(f"approach 1: loss curves of {len(ix)} runs")
        used = np.zeros(len(runs), bool)
        used[np.flatnonzero(keep)[ix]] = True
    else:
        law = Approach1().fit_points(sub.N, sub.D, sub.C, sub.loss)
        used = keep
    warns = []
    if law.n_sizes_ < 3:
        warns.append(f"only {law.n_sizes_} model sizes reach the loss envelope; its exponent is a line through very "
                     "few sizes (add sizes or longer runs)")
    return Fitted(law, used, None, tuple(notes), tuple(warns))


def fit_approach2(runs: Runs, options: FitOptions, progress: Progress | None = None) -> Fitted:
    """IsoFLOP parabolas per budget (robust), then the power laws through their vertices; intervals from whole
    runs resampled within each budget (Bayesian bootstrap weights), refitted by weighted least squares on the
    inliers (RANSAC's final fit is least squares on them)."""
    law = Approach2(robust=options.robust, max_loss=options.max_loss, seed=options.seed,
                    budget_tol=options.budget_tol).fit(runs.N, runs.D, runs.budget, runs.loss)
    used = np.asarray(law.inlier_, bool)
    warns = list(law.warnings_)
    draws = None
    if law.n_budgets_ < 3:
        warns.append(f"minima at only {law.n_budgets_} budgets: the exponents are a line through 2 points, with no "
                     "interval (plan 3 or more budgets)")
    elif options.runs_bootstrap:
        gid = group_budgets(runs.budget, options.budget_tol)
        n_ok = law.n_budgets_

        def refit(r: Runs, w: np.ndarray) -> Law:
            b = Approach2(robust="lsq", budget_tol=options.budget_tol).fit(r.N, r.D, r.budget, r.loss, sample_weight=w)
            if b.n_budgets_ != n_ok:
                raise UserError("a budget lost its vertex")
            return b

        draws = bootstrap_runs(runs.subset(used), refit, resamples=options.runs_bootstrap, seed=options.seed,
                               at=options.at, names=("a", "b", "k_n", "k_d"), strata=gid[used])
    notes = tuple(n for n in law.notes_ if not n.startswith("dropped "))  # fit_study states the loss cut once
    return Fitted(law, used, draws, notes, tuple(warns))


def fit_approach3(runs: Runs, options: FitOptions, progress: Progress | None = None) -> Fitted:
    """L(N, D) = E + A/N^α + B/D^β on the converged runs (Huber on log loss over Hoffmann's grid); intervals from
    its own bootstrap of points when options.bootstrap > 0."""
    keep = converged(runs, options)
    sub = runs.subset(keep)
    law = Approach3(delta=options.delta, drop_highest=options.drop_highest, bootstrap=options.bootstrap,
                    seed=options.seed, n_jobs=options.jobs, ci=options.ci).fit(sub.N, sub.D, sub.loss,
                                                                               progress=progress)
    law.allocate(1e20)  # raises when the fit has no compute-optimal allocation: reported as skipped
    used = keep.copy()
    if options.drop_highest:
        top = np.argsort(sub.loss, kind="stable")[len(sub) - options.drop_highest:]
        used[np.flatnonzero(keep)[top]] = False
    draws = None
    if law.boot_ is not None:
        b5 = law.boot_[:, :5]  # E, A, B, alpha, beta per resample
        rows = b5[np.all(np.isfinite(b5), axis=1) & np.all(b5[:, 1:] > 0, axis=1)]
        laws = [ParametricLaw(E=r[0], A=r[1], B=r[2], alpha=r[3], beta=r[4]) for r in rows]
        draws = law_draws(laws, options.at, ("E", "A", "B", "alpha", "beta", "a", "b"), options.bootstrap, "points")
    return Fitted(law, used, draws, tuple(law.notes_), ())


APPROACHES: dict[str, Approach] = {
    "1": Approach("1", "lower envelope of loss curves", fit_approach1),
    "2": Approach("2", "IsoFLOP profiles", fit_approach2),
    "3": Approach("3", "parametric loss L(N, D)", fit_approach3),
}


def parse_approaches(text: str) -> tuple[str, ...]:
    """'all' -> every registered approach; '2,3' or 'approach2' -> ('2', '3') / ('2',)."""
    key = text.strip().lower()
    if key == "all":
        return tuple(APPROACHES)
    names = tuple(dict.fromkeys(a.strip().removeprefix("approach").strip("-_ ") for a in key.split(",") if a.strip()))
    bad = [a for a in names if a not in APPROACHES]
    if not names or bad:
        raise UserError(f"unknown approach {text!r}: use {', '.join(APPROACHES)}, a comma list of them, or all")
    return names
