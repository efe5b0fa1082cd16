"""`FitOptions`: every setting of a study fit in one frozen recipe, shared by `fit`, `report`, `demo`,
`backtest` and Python callers, so the same options give the same numbers everywhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scalinglab.errors import UserError

ROBUST = ("ransac", "huber", "lsq")


@dataclass(frozen=True)
class FitOptions:
    """Defaults follow the papers: RANSAC parabolas as minchilla, Huber δ = 1e-3 on log loss with Hoffmann's
    grid (Hoffmann et al. 2022; Besiroglu et al. 2024), bootstrap seeds fixed so reruns agree."""

    approaches: tuple[str, ...] = ("1", "2", "3")
    """Which approaches to fit, by registry name (scalinglab.analysis.approaches.APPROACHES)."""
    max_loss: float | None = None
    """Runs with a higher final loss did not converge: left out of every approach (approach 1's curves too)."""
    at: tuple[float, ...] = ()
    """Budgets C (FLOPs) at which to report N_opt, D_opt and loss, with intervals where there are draws."""
    robust: str = "ransac"
    """Approach 2 parabola fit: ransac, huber or lsq."""
    budget_tol: float = 0.05
    """Approach 2: runs whose budgets differ by less than this relative gap are one budget."""
    delta: float = 1e-3
    """Approach 3: Huber δ on log loss."""
    drop_highest: int = 0
    """Approach 3: leave out the K highest losses first (Besiroglu et al. 2024 drop 5)."""
    bootstrap: int = 0
    """Approach 3: resamples of its points for parameter intervals (Besiroglu et al. 2024: 4000)."""
    runs_bootstrap: int = 400
    """Resamples of whole runs (within each budget; Bayesian bootstrap weights, Rubin 1981) for approach 2's
    intervals of a, b and the `at` values."""
    ci: float = 0.95
    """Level of every interval."""
    seed: int = 42
    """Seed of RANSAC and of every bootstrap."""
    jobs: int = -1
    """Parallel workers of approach 3 (-1: all cores)."""

    def validate(self) -> "FitOptions":
        """Raise UserError naming the first bad setting; returns self."""
        if not self.approaches:
            raise UserError("no approach to fit: name at least one")
        if self.robust not in ROBUST:
            raise UserError(f"unknown robust fit {self.robust!r}: use one of {', '.join(ROBUST)}")
        if self.drop_highest < 0 or self.bootstrap < 0 or self.runs_bootstrap < 0:
            raise UserError("drop_highest, bootstrap and runs_bootstrap must be 0 or more")
        if not (0 < self.ci < 1) or not (self.delta > 0) or not (self.budget_tol >= 0):
            raise UserError(f"ci must lie in (0, 1), delta be positive and budget_tol >= 0 (got ci {self.ci}, "
                            f"delta {self.delta}, budget_tol {self.budget_tol})")
        if any(not (c > 0) for c in self.at):
            raise UserError(f"budgets to predict at must be positive FLOPs, got {list(self.at)}")
        if self.max_loss is not None and not self.max_loss > 0:
            raise UserError(f"max_loss must be a positive loss, got {self.max_loss}")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["approaches"], d["at"] = list(self.approaches), list(self.at)
        return d
