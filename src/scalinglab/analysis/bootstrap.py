"""Bootstrap by whole runs: weight or resample run ids (within strata, e.g. budgets) with a seeded RNG, refit, and
collect the law's exponents and N_opt, D_opt, loss at given budgets; percentile intervals of those draws."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from scalinglab.analysis.runs import Runs
from scalinglab.errors import UserError


@dataclass(frozen=True)
class Draws:
    """Bootstrap draws of one law: a row per successful resample."""

    values: dict[str, np.ndarray]
    """Scalar parameters by name (a, b, k_n, k_d, alpha, ...), one value per draw."""
    at: tuple[float, ...] = ()
    """Budgets C of the columns of n_opt, d_opt, loss."""
    n_opt: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    """(draws, len(at)) N_opt of each draw at each budget."""
    d_opt: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    """(draws, len(at)) D_opt."""
    loss: np.ndarray | None = None
    """(draws, len(at)) loss at the optimum, for laws that predict a loss."""
    resamples: int = 0
    """Resamples tried (draws that failed to fit are left out)."""
    method: str = "runs"
    """What was resampled: runs (whole runs within strata) or points (approach 3's own bootstrap)."""

    @property
    def n(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def interval(self, name: str, level: float) -> tuple[float, float]:
        q = (1 - level) / 2 * 100
        lo, hi = np.nanpercentile(self.values[name], [q, 100 - q])
        return float(lo), float(hi)

    def intervals(self, level: float) -> dict[str, tuple[float, float]]:
        return {k: self.interval(k, level) for k in self.values}

    def at_interval(self, what: str, level: float) -> np.ndarray | None:
        """(len(at), 2) lower and upper bound of n_opt, d_opt or loss at each budget."""
        x = getattr(self, what)
        if x is None or x.size == 0:
            return None
        q = (1 - level) / 2 * 100
        return np.nanpercentile(x, [q, 100 - q], axis=0).T


def law_draws(laws: Sequence, at: Sequence[float], names: Sequence[str], resamples: int, method: str) -> Draws:
    """Draws from refitted law objects: their `names` attributes (trailing _) and allocation at `at`."""
    at = tuple(float(c) for c in at)
    vals = {k: np.array([float(getattr(law, k + "_")) for law in laws]) for k in names}
    cs = np.asarray(at, float)
    if laws and at:
        nd = [law.allocate(cs) for law in laws]
        n_opt, d_opt = np.array([x[0] for x in nd]), np.array([x[1] for x in nd])
        loss = (
            np.array([law.predict_loss(n, d) for law, (n, d) in zip(laws, nd)])
            if hasattr(laws[0], "predict_loss")
            else None
        )
    else:
        n_opt = d_opt = np.empty((len(laws), len(at)))
        loss = None
    return Draws(vals, at, n_opt, d_opt, loss, resamples, method)


METHODS = ("bayesian", "counts")


def run_weights(rng: np.random.Generator, groups: list[np.ndarray], n: int, method: str) -> np.ndarray:
    """One resample as a weight per run: `counts` draws each stratum's runs with replacement (how often each run
    is drawn); `bayesian` gives them Dirichlet(1, ..., 1) weights scaled to the stratum size (Rubin 1981, the
    smooth form of the same resampling: no run's weight is exactly 0, so a small budget keeps all its sizes)."""
    w = np.zeros(n)
    for g in groups:
        if method == "counts":
            w[g] = rng.multinomial(len(g), np.full(len(g), 1.0 / len(g)))
        else:
            w[g] = len(g) * rng.dirichlet(np.ones(len(g)))
    return w


def bootstrap_runs(
    runs: Runs,
    refit: Callable[[Runs, np.ndarray], object],
    *,
    resamples: int,
    seed: int,
    at: Sequence[float] = (),
    names: Sequence[str] = ("a", "b"),
    strata: np.ndarray | None = None,
    method: str = "bayesian",
    min_success: float = 0.5,
) -> Draws | None:
    """Refit `refit(runs, weights) -> law` on `resamples` resamples of whole runs within each stratum (seeded;
    `method` as in run_weights). A resample whose refit raises UserError is left out; None when fewer than
    `min_success` of them fit."""
    if method not in METHODS:
        raise UserError(f"unknown bootstrap method {method!r}: use one of {', '.join(METHODS)}")
    if resamples <= 0 or len(runs) == 0:
        return None
    strata = np.zeros(len(runs), int) if strata is None else np.asarray(strata)
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    rng = np.random.default_rng(seed)
    laws = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(resamples):
            w = run_weights(rng, groups, len(runs), method)
            try:
                laws.append(refit(runs, w))
            except UserError:
                continue
    if len(laws) < max(1, int(np.ceil(min_success * resamples))):
        return None
    return law_draws(laws, at, names, resamples, f"runs ({method})")
