"""Tuning grids: every (budget, shape) point trained at each learning rate x batch size (optionally x AdamW beta2 x
warmup), at equal compute, so `fit hparams` can find the best settings per point and their laws.

Pure planning (no torch): an IsoFLOP plan per grid setting, with the setting in each run's id and extra["tune"].
"""

from __future__ import annotations

from dataclasses import replace
from itertools import product
from typing import Any

from scalinglab.errors import ConfigError
from scalinglab.plan.isoflop import Dropped, IsoflopPlan, PlannedRun, plan_isoflop
from scalinglab.plan.recipe import Resolver


def setting_suffix(lr: float, batch: int, beta2: float, warmup: int) -> str:
    """'_lr0.003_b32' ('_b32' where the lr follows a law; + '_bt0.99' / '_w100' where swept)."""
    s = (f"_lr{lr:.3g}" if lr > 0 else "") + f"_b{batch}"
    if beta2 > 0:
        s += f"_bt{beta2:g}"
    if warmup > 0:
        s += f"_w{warmup}"
    return s


def plan_tune(
    budgets: list[float],
    shapes: list,
    *,
    lrs: list[float],
    batch_sizes: list[int],
    beta2s: list[float] | None = None,
    warmups: list[int] | None = None,
    law: Any = None,
    **kw: Any,
) -> IsoflopPlan:
    """plan_isoflop's arguments (batch_size and hparams excepted) plus the grid. beta2 or warmup 0 (the default
    when not swept): the recipe's rule for that run. `law` (an HparamsLaw) and no lrs: each run's lr follows the
    law's lr* (one per shape), and only the batch size (and beta2, warmup) is swept."""
    if law is not None and not lrs:
        lrs = [0.0]
    elif not lrs or any(not (x > 0) for x in lrs):
        raise ConfigError("the grid's learning rates must be positive", hint="e.g. 1e-3,2e-3,4e-3", keys=("lrs",))
    if not batch_sizes or any(b <= 0 for b in batch_sizes):
        raise ConfigError(
            "the grid's batch sizes must be positive numbers of sequences per step",
            hint="e.g. 16,32,64",
            keys=("batch_sizes",),
        )
    beta2s, warmups = beta2s or [0.0], warmups or [0]
    if any(not (0 <= b < 1) for b in beta2s) or any(w < 0 for w in warmups):
        raise ConfigError(
            "beta2 values must lie in [0, 1) and warmups be >= 0 steps",
            hint="e.g. 0.95,0.99,0.999",
            keys=("beta2s", "warmups"),
        )
    runs: list[PlannedRun] = []
    dropped: list[Dropped] = []
    law_report: list[dict[str, Any]] = []
    law_name, law_note = "", ""
    for lr, bs, b2, w in product(lrs, batch_sizes, beta2s, warmups):
        hp = Resolver(lr=lr, batch_size=bs, beta2=b2, warmup_steps=w, law=law if lr == 0 else None)
        p = plan_isoflop(budgets, shapes, batch_size=bs, hparams=hp, **kw)
        suf = setting_suffix(lr, bs, b2, w)
        for r in p.runs:
            # the grid's own values (0: the recipe's rule, resolved per run in the spec), so runs group by setting;
            # an lr from the law is the run's own
            tune = {"lr": lr or r.spec.lr, "batch_size": bs, "beta2": b2, "warmup": w}
            origin = replace(r.spec.origin, tune=tune)
            spec = replace(r.spec, run_id=r.spec.run_id + suf, origin=origin)
            runs.append(replace(r, spec=spec))
        dropped += [replace(d, run_id=d.run_id + suf) for d in p.dropped]
        law_report, law_name, law_note = p.law_report, p.law_name, p.law_note
    return IsoflopPlan(runs, dropped, sorted(budgets), law_name=law_name, law_report=law_report, law_note=law_note)
