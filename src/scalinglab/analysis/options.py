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

    approaches: tuple[str, ...] = ("1", "2", "3", "lc")
    """Which approaches to fit, by registry name (scalinglab.analysis.approaches.APPROACHES)."""
    max_loss: float | None = None
    """Runs with a higher final loss did not converge: left out of every approach (approach 1's curves too)."""
    at: tuple[float, ...] = ()
    """Budgets C (FLOPs) at which to report N_opt, D_opt and loss, with intervals where there are draws."""
    robust: str = "ransac"
    """Approach 2 parabola fit: ransac, huber or lsq."""
    window: int | None = 5
    """Approach 2: fit each budget's parabola on this many sizes nearest its lowest loss (None: all sizes)."""
    keep_unbracketed: bool = False
    """Approach 2: keep budgets whose minimum is not bracketed by their sizes (default: leave them out, noted)."""
    budget_tol: float = 0.05
    """Approach 2: runs whose budgets differ by less than this relative gap are one budget."""
    delta: float = 1e-3
    """Approach 3: Huber δ on log loss."""
    tie: str | None = None
    """Approach 3: parameters fitted as one, e.g. "alpha=beta" (Gadre et al. 2024)."""
    fix: str | None = None
    """Approach 3 and data-constrained: parameters held at values, e.g. "E=1.69,alpha=0.34"."""
    loss: str = "huber"
    """Approach 3: huber (Huber δ on log loss) or lsq (least squares on the loss, as Gadre et al. 2024)."""
    unique_col: str | None = None
    """Data-constrained law: the column of unique tokens U (None: U, unique_tokens)."""
    drop_highest: int = 0
    """Approach 3: leave out the K highest losses first (Besiroglu et al. 2024 drop 5)."""
    bootstrap: int = 100
    """Approach 3: resamples of whole runs for intervals of its parameters and `at` values (Besiroglu et al. 2024
    use 4000; 0: none)."""
    runs_bootstrap: int = 400
    """Resamples for approach 2's and lc's intervals of a, b, L* and the `at` values: each run's residual from its
    budget's parabola is resampled within the budget (whole runs as units; see laws.approach2)."""
    ci: float = 0.95
    """Level of every interval."""
    seed: int = 42
    """Seed of RANSAC and of every bootstrap."""
    jobs: int = -1
    """Parallel workers of approach 3 (-1: all cores)."""

    def validate(self) -> FitOptions:
        """Raise UserError naming the first bad setting; returns self."""
        if not self.approaches:
            raise UserError("no approach to fit: name at least one")
        if self.robust not in ROBUST:
            raise UserError(f"unknown robust fit {self.robust!r}: use one of {', '.join(ROBUST)}")
        if self.drop_highest < 0 or self.bootstrap < 0 or self.runs_bootstrap < 0:
            raise UserError("drop_highest, bootstrap and runs_bootstrap must be 0 or more")
        if not (0 < self.ci < 1) or not (self.delta > 0) or not (self.budget_tol >= 0):
            raise UserError(
                f"ci must lie in (0, 1), delta be positive and budget_tol >= 0 (got ci {self.ci}, "
                f"delta {self.delta}, budget_tol {self.budget_tol})"
            )
        if any(not (c > 0) for c in self.at):
            raise UserError(f"budgets to predict at must be positive FLOPs, got {list(self.at)}")
        if self.window is not None and self.window < 3:
            raise UserError(f"a parabola window of {self.window} sizes is too small: use 3 or more (or all sizes)")
        if self.loss not in ("huber", "lsq"):
            raise UserError(f"unknown fit loss {self.loss!r}: use huber or lsq")
        if self.max_loss is not None and not self.max_loss > 0:
            raise UserError(f"max_loss must be a positive loss, got {self.max_loss}")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["approaches"], d["at"] = list(self.approaches), list(self.at)
        return d
