"""WSD study plans (Hägele et al. 2024): budgets x shapes -> one warmup-stable-decay run per shape whose
cooldowns branch off at each budget's token count, and the FLOPs that saves over one run per point.

Pure planning (no torch): the isoFLOP grid of plan_isoflop, regrouped by shape.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from scalinglab.plan.isoflop import Dropped, IsoflopPlan, PlannedRun, plan_isoflop
from scalinglab.plan.steps import cooldown_start, default_warmup


def run_id(shape) -> str:
    return f"wsd_{shape.d_model}x{shape.n_layers}"


def plan_wsd(budgets: list[float], shapes: list, **kw: Any) -> IsoflopPlan:
    """Same arguments as plan_isoflop. Each shape's kept points become one run of the largest D with
    schedule.branches = the token counts of all its points (the last is the run's own end) and
    schedule.branch_budgets = their C. A point whose cooldown would start inside the trunk's warmup is dropped."""
    grid = plan_isoflop(budgets, shapes, **kw)
    by_shape: dict[Any, list[PlannedRun]] = {}
    for r in grid.runs:
        by_shape.setdefault(r.spec.shape, []).append(r)
    runs, dropped = [], list(grid.dropped)
    for shape, pts in by_shape.items():
        pts.sort(key=lambda r: r.budget)
        last = pts[-1]
        total = last.spec.steps
        w = last.spec.schedule.warmup_steps
        warmup = w if w > 0 else default_warmup(total)  # as the trainer
        keep = []
        for p in pts:
            s = p.spec.steps
            if s < total and cooldown_start(s, p.spec.schedule.decay_frac) < warmup:
                dropped.append(
                    Dropped(
                        p.spec.run_id,
                        p.budget,
                        shape.d_model,
                        shape.n_layers,
                        p.params,
                        s,
                        f"its cooldown would start inside the trunk's warmup ({warmup} steps)",
                        "steps",
                    )
                )
                continue
            if keep and s == keep[-1].spec.steps:
                continue  # two budgets rounding to one step count: one point
            keep.append(p)
        sched = replace(
            last.spec.schedule, kind="wsd", branches=[p.tokens for p in keep], branch_budgets=[p.budget for p in keep]
        )
        spec = replace(last.spec, schedule=sched, run_id=run_id(shape))
        runs.append(PlannedRun(spec, last.budget, last.tokens, last.params, last.flops_per_token, last.epochs))
    return replace(grid, runs=runs, dropped=dropped, settings={**grid.settings, "schedule": "wsd"})


def flop_cost(plan: IsoflopPlan) -> dict[str, float]:
    """Training FLOPs of a WSD plan against training every point on its own (the cosine sweep):
    WSD = trunk to the largest D + every other point's cooldown. saving = 1 - wsd / separate."""
    separate = wsd = 0.0
    points = 0
    for r in plan.runs:
        per_step = r.spec.tokens_per_step * r.flops_per_token
        tps = r.spec.tokens_per_step
        steps = [round(t / tps) for t in r.spec.schedule.branches or [r.tokens]]
        total = r.spec.steps
        separate += sum(steps) * per_step
        wsd += (total + sum(s - cooldown_start(s, r.spec.schedule.decay_frac) for s in steps if s < total)) * per_step
        points += len(steps)
    return {
        "separate_flops": separate,
        "wsd_flops": wsd,
        "saving": 1 - wsd / separate if separate else 0.0,
        "runs": len(plan.runs),
        "points": points,
    }


def saving_bound(budgets: list[float], decay_frac: float = 0.2) -> float:
    """The saving for a shape present at every budget: (1 - f) (1 - 1/S), S = sum(C) / max(C).

    The trunk costs the largest point; each other point costs only its cooldown, f of itself."""
    s = sum(budgets) / max(budgets)
    return (1 - decay_frac) * (1 - 1 / s)


def budgets_needed(target: float, decay_frac: float = 0.2) -> float:
    """The S = sum(C) / max(C) a grid needs for `target` saving (inf when even S -> inf cannot give it)."""
    k = 1 - target / (1 - decay_frac)
    return 1 / k if k > 0 else float("inf")
