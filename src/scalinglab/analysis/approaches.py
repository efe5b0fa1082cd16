"""The approaches fit_study knows, by name: each entry turns the finished runs and the options into a fitted law
(+ which runs it used, bootstrap draws, notes, warnings). A new approach is one entry in APPROACHES."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scalinglab.analysis.bootstrap import Draws
from scalinglab.analysis.options import FitOptions
from scalinglab.analysis.runs import Runs
from scalinglab.errors import ConfigError, UserError
from scalinglab.laws.approach1 import Approach1
from scalinglab.laws.approach2 import Approach2
from scalinglab.laws.approach3 import Approach3
from scalinglab.laws.base import Law
from scalinglab.laws.datacon import DataConstrainedLaw
from scalinglab.laws.lc import LossComputeLaw

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
        law = Approach1().fit_curves(
            sub.N[ix], [sub.curves[sub.run[i]].C for i in ix], [sub.curves[sub.run[i]].loss for i in ix]
        )
        notes.append(f"approach 1: loss curves of {len(ix)} runs")
        used = np.zeros(len(runs), bool)
        used[np.flatnonzero(keep)[ix]] = True
    else:
        law = Approach1().fit_points(sub.N, sub.D, sub.C, sub.loss)
        used = keep
    notes += [f"approach 1: {n.rsplit('; ', 1)[1]}" for n in law.notes_ if "replicate" in n]
    warns = []
    if law.n_sizes_ < 3:
        warns.append(
            f"only {law.n_sizes_} model sizes reach the loss envelope; its exponent is a line through very "
            "few sizes (add sizes or longer runs)"
        )
    return Fitted(law, used, None, tuple(notes), tuple(warns))


def _approach2(runs: Runs, options: FitOptions) -> Approach2:
    return Approach2(
        robust=options.robust,
        max_loss=options.max_loss,
        seed=options.seed,
        budget_tol=options.budget_tol,
        window=options.window,
        keep_unbracketed=options.keep_unbracketed,
        bootstrap=options.runs_bootstrap,
        ci=options.ci,
    ).fit(runs.N, runs.D, runs.budget, runs.loss, groups=runs.run)


def _allocation_draws(law, at, names, resamples: int, method: str) -> Draws | None:
    """Draws from a law's own bootstrap (rows of k_n, a, k_d, b, or of its parameters) at budgets `at`."""
    from scalinglab.laws.predict import at_budget_draws

    B = law.draws()
    if B is None:
        return None
    ok = np.all(np.isfinite(B), axis=1)
    if law.kind == "approach3":  # a resample with a non-positive coefficient or exponent has no allocation
        ok &= np.all(B[:, 1:5] > 0, axis=1)
    if ok.sum() < max(1, resamples // 2):
        return None
    cols = dict(zip(law.draw_names(), B[ok].T))
    if "alpha" in cols and "beta" in cols:
        s = cols["alpha"] + cols["beta"]
        cols.update(a=cols["beta"] / s, b=cols["alpha"] / s)
    n_opt, d_opt, loss = at_budget_draws(law, at, B[ok])
    return Draws(
        {k: cols[k] for k in names if k in cols}, tuple(float(c) for c in at), n_opt, d_opt, loss, resamples, method
    )


def fit_approach2(runs: Runs, options: FitOptions, progress: Progress | None = None) -> Fitted:
    """IsoFLOP parabolas per budget (robust, on the sizes nearest each minimum; unbracketed budgets left out),
    then the power laws through their vertices; intervals from each run's residual resampled within its budget
    (laws.approach2: resampling the runs themselves over-covered on synthetic laws)."""
    law = _approach2(runs, options)
    used = np.asarray(law.inlier_, bool)
    warns = list(law.warnings_)
    draws = None
    if law.n_budgets_ < 3:
        warns.append(
            f"minima at only {law.n_budgets_} budgets: the exponents are a line through 2 points, with no "
            "interval (plan 3 or more budgets)"
        )
    else:
        draws = _allocation_draws(law, options.at, ("a", "b", "k_n", "k_d"), options.runs_bootstrap, "residuals")
    notes = tuple(n for n in law.notes_ if not n.startswith("dropped "))  # fit_study states the loss cut once
    return Fitted(law, used, draws, notes, tuple(warns))


def fit_approach3(runs: Runs, options: FitOptions, progress: Progress | None = None) -> Fitted:
    """L(N, D) = E + A/N^α + B/D^β on the converged runs (Huber on log loss over Hoffmann's grid, or least
    squares; ties and fixed values as options say); intervals from resampling whole runs."""
    keep = converged(runs, options)
    sub = runs.subset(keep)
    law = Approach3(
        delta=options.delta,
        drop_highest=options.drop_highest,
        bootstrap=options.bootstrap,
        seed=options.seed,
        n_jobs=options.jobs,
        ci=options.ci,
        tie=options.tie,
        fix=options.fix,
        loss=options.loss,
    ).fit(sub.N, sub.D, sub.loss, progress=progress, groups=sub.run)
    law.allocate(1e20)  # raises when the fit has no compute-optimal allocation: reported as skipped
    used = keep.copy()
    if options.drop_highest:
        top = np.argsort(sub.loss, kind="stable")[len(sub) - options.drop_highest :]
        used[np.flatnonzero(keep)[top]] = False
    draws = _allocation_draws(law, options.at, ("E", "A", "B", "alpha", "beta", "a", "b"), options.bootstrap, "runs")
    return Fitted(law, used, draws, tuple(law.notes_), tuple(law.warnings_))


def fit_lc(runs: Runs, options: FitOptions, progress: Progress | None = None) -> Fitted:
    """L*(C) = E + A C^-gamma (Porian et al. 2024) through approach 2's vertices (the same options), carrying
    approach 2's allocation; intervals from the same resamples as approach 2's."""
    a2 = _approach2(runs, options)
    law = LossComputeLaw.from_minima(a2, delta=options.delta)
    draws = _allocation_draws(law, options.at, ("E", "A", "gamma"), options.runs_bootstrap, "residuals")
    return Fitted(law, np.asarray(a2.inlier_, bool), draws, tuple(a2.notes_), tuple(law.warnings_))


UNIQUE_ALIASES = ("U", "unique_tokens", "tokens_unique", "unique")


def fit_data_constrained(runs: Runs, options: FitOptions, progress: Progress | None = None) -> Fitted:
    """Muennighoff et al. 2023's law L(N, D, U) on the converged runs, U from options.unique_col."""
    from scalinglab.laws.approach3 import parse_fix

    col = options.unique_col or next((c for c in UNIQUE_ALIASES if c in runs.info), None)
    if col is None or col not in runs.info:
        raise ConfigError(
            f"no unique-tokens column {'(' + col + ') ' if col else ''}in {runs.source}",
            hint="name the column of unique tokens U",
            keys=("unique_col",),
        )
    keep = converged(runs, options)
    sub = runs.subset(keep)
    U = np.asarray(runs.info[col], float)[keep]
    law = DataConstrainedLaw(delta=options.delta, fix=parse_fix(options.fix)).fit(sub.N, sub.D, U, sub.loss)
    return Fitted(law, keep, None, (f"unique tokens from column {col!r}",), tuple(law.warnings_))


APPROACHES: dict[str, Approach] = {
    "1": Approach("1", "lower envelope of loss curves", fit_approach1),
    "2": Approach("2", "IsoFLOP profiles", fit_approach2),
    "3": Approach("3", "parametric loss L(N, D)", fit_approach3),
    "lc": Approach("lc", "compute-optimal loss L*(C)", fit_lc),
    "data-constrained": Approach("data-constrained", "data-constrained loss L(N, D, U)", fit_data_constrained),
}
DEFAULT = ("1", "2", "3", "lc")  # what `all` fits: data-constrained needs a column of unique tokens


def parse_approaches(text: str) -> tuple[str, ...]:
    """'all' -> every registered approach; '2,3' or 'approach2' -> ('2', '3') / ('2',)."""
    key = text.strip().lower()
    if key == "all":
        return DEFAULT
    names = tuple(dict.fromkeys(a.strip().removeprefix("approach").strip("-_ ") for a in key.split(",") if a.strip()))
    bad = [a for a in names if a not in APPROACHES]
    if not names or bad:
        raise UserError(f"unknown approach {text!r}: use {', '.join(APPROACHES)}, a comma list of them, or all")
    return names
