"""Predictions from a fitted law, with percentile intervals where the law carries bootstrap draws: the loss at
(N, D[, U]), and N_opt, D_opt and the loss at a budget C. Pure functions of the law object."""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.bootstrap import interval


def _param_rows(law) -> tuple[str, np.ndarray | None]:
    """The law's family and its bootstrap draws (rows of that family's parameters), if any."""
    kind = getattr(law, "kind", "")
    draws = law.draws() if hasattr(law, "draws") else None
    return kind, draws


def _parametric(draws: np.ndarray, N, D) -> np.ndarray:
    E, A, B, al, be = (draws[:, i, None] for i in range(5))
    return (E + A / np.power(N, al) + B / np.power(D, be))[:, 0]


def loss_at(law, N: float, D: float, U: float | None = None, level: float = 0.95) -> dict[str, Any]:
    """The loss at (N, D) (and U unique tokens for the data-constrained law), with an interval from draws."""
    if not hasattr(law, "predict_loss"):
        raise UserError(
            f"the {law.kind} law gives N_opt and D_opt at a budget, not the loss at (N, D): predict at a "
            "budget instead, or use an approach 3 or data-constrained law"
        )
    if U is not None and law.kind != "data-constrained":
        raise UserError("unique tokens U apply to the data-constrained law only")
    out: dict[str, Any] = {"N": float(N), "D": float(D)}
    if U is not None:
        out["U"] = float(U)
        out["loss"] = float(law.predict_loss(N, D, U))
    else:
        out["loss"] = float(law.predict_loss(N, D))
    kind, draws = _param_rows(law)
    if draws is not None and kind == "approach3":
        out["loss_lo"], out["loss_hi"] = interval(_parametric(draws, N, D), level)
    return out


def at_budget_draws(law, at, draws: np.ndarray):
    """(n_opt, d_opt, loss) arrays (draws x budgets) of a law's draws at budgets `at`; loss None where the law
    does not predict one, n_opt/d_opt None where it carries no allocation."""
    C = np.asarray(at, dtype=float)[None, :]
    kind = getattr(law, "kind", "")
    with np.errstate(all="ignore"):
        if kind in ("approach3", "parametric"):
            E, A, B, al, be = (draws[:, i, None] for i in range(5))
            s = al + be
            G = (al * A / (be * B)) ** (1.0 / s)
            n = G * (C / 6.0) ** (be / s)
            d = (C / 6.0) ** (al / s) / G
            return n, d, E + A / n**al + B / d**be
        if kind == "lc":
            E, A, g = (draws[:, i, None] for i in range(3))
            loss = E + A * np.power(C, -g)
            if draws.shape[1] >= 7:
                return draws[:, 3, None] * C ** draws[:, 4, None], draws[:, 5, None] * C ** draws[:, 6, None], loss
            return None, None, loss
        # power-law allocation draws (k_n, a, k_d, b)
        return draws[:, 0, None] * C ** draws[:, 1, None], draws[:, 2, None] * C ** draws[:, 3, None], None


def at_budget(law, C: float, level: float = 0.95) -> dict[str, Any]:
    """N_opt, D_opt and (where the law knows it) the loss at budget C, with intervals from draws."""
    if not C > 0:
        raise UserError(f"budget C must be positive FLOPs, got {C}")
    out: dict[str, Any] = {"C": float(C)}
    kind, draws = _param_rows(law)
    try:
        n, d = law.allocate(C)
        out["N_opt"], out["D_opt"] = float(n), float(d)
    except UserError:
        if kind != "lc":
            raise
    if kind == "lc":
        out["loss"] = float(law.predict_loss_at(C))
    elif hasattr(law, "loss_at_optimum") and kind != "data-constrained":
        out["loss"] = float(law.loss_at_optimum(C))
    if draws is None:
        return out
    n, d, loss = at_budget_draws(law, [C], draws)
    if n is not None and "N_opt" in out:
        out["N_opt_lo"], out["N_opt_hi"] = interval(n[:, 0], level)
        out["D_opt_lo"], out["D_opt_hi"] = interval(d[:, 0], level)
    if loss is not None and "loss" in out:
        out["loss_lo"], out["loss_hi"] = interval(loss[:, 0], level)
    return out


def predict(
    law,
    *,
    n: float | None = None,
    d: float | None = None,
    u: float | None = None,
    at: float | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """One entry point: the loss at (n, d[, u]) or the allocation and loss at budget `at`."""
    if (at is None) == (n is None or d is None):
        raise UserError("predict either at a budget C or at a model size N with tokens D, not both or neither")
    return at_budget(law, at, level) if at is not None else loss_at(law, n, d, u, level)
