"""Shapes around a predicted optimum: every shape of a depth rule whose N lies within N_opt/spread .. spread*N_opt
(at least three, the nearest ones, where the rule's grid is coarse there), for extending a study to a new budget.
"""

from __future__ import annotations

import math
from functools import reduce

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import ConfigError
from scalinglab.plan.isoflop import layers_for


def width_step(widths: list[int]) -> int:
    """The grid step of a study's widths: their greatest common divisor (64 for minchilla's 128:576:64)."""
    return reduce(math.gcd, widths) if widths else 64


def shapes_around(
    n_opt: float,
    template: ModelShape,
    rule: str,
    step: int,
    spread: float = 3.0,
    at_least: int = 3,
    min_layers: int = 0,
) -> list[ModelShape]:
    """Shapes of widths k*step (depth from `rule`, at least `min_layers`) with N in [n_opt/spread, n_opt*spread],
    sorted by N."""
    if not (n_opt > 0 and math.isfinite(n_opt)):
        raise ConfigError(
            f"the law predicts no usable N_opt ({n_opt!r}) at this budget", hint="check the law file", keys=("around",)
        )
    if spread <= 1:
        raise ConfigError(
            f"bad spread {spread}: it must exceed 1", hint="3 places shapes from N_opt/3 to 3 N_opt", keys=("spread",)
        )
    cands: list[tuple[float, ModelShape]] = []
    for k in range(1, 4097):
        d = k * step
        n_layers = layers_for(d, rule, min_layers)
        if n_layers < 1:
            continue
        s = template.with_(d_model=d, n_layers=n_layers, n_heads=0)
        if s.d_model % s.n_heads:
            continue
        n = float(s.params())
        cands.append((n, s))
        if n > n_opt * spread * 4:
            break
    if not cands:
        raise ConfigError(
            f"no shape of rule {rule!r} with width step {step}",
            hint="give explicit shapes instead",
            keys=("rule", "shapes"),
        )
    inside = [s for n, s in cands if n_opt / spread <= n <= n_opt * spread]
    if len(inside) < at_least:
        near = sorted(cands, key=lambda t: abs(math.log(t[0] / n_opt)))[:at_least]
        inside = [s for _, s in near]
    return sorted(inside, key=lambda s: s.params())
