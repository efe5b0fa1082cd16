"""IsoFLOP grid design: compute budgets x model shapes -> RunSpecs, with dropped runs and their reasons.

Pure planning (no torch, no files): D = C / flops_per_token, steps = round(D / tokens_per_step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError
from scalinglab.plan.recipe import Resolver
from scalinglab.records import RunSpec

PUBLISHED_LAW = "chinchilla-approach-3"


def fmt_budget(c: float) -> str:
    """3e10 -> '3e10', 1.5e16 -> '1.5e16' (for run ids and tables)."""
    m, e = f"{c:.2e}".split("e")
    return f"{m.rstrip('0').rstrip('.')}e{int(e)}"


def run_id(budget: float, shape: ModelShape) -> str:
    return f"C{fmt_budget(budget)}_{shape.d_model}x{shape.n_layers}"


def parse_range(text: str) -> list[int]:
    """'256:1024:64' (inclusive) or '256,320,384' -> list of ints."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            start, stop, step = parts if len(parts) == 3 else (parts[0], parts[1], 64)
            if step <= 0 or stop < start:
                raise ValueError
            return list(range(start, stop + 1, step))
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UserError(
            f"bad widths {text!r}",
            hint="write START:STOP:STEP (inclusive), e.g. 256:1024:64, or a list 256,320",
            keys=("d_models",),
        ) from None


def layers_for(d_model: int, rule: str, min_layers: int = 0) -> int:
    """Depth from width. 'minchilla': n_layers = d_model // 64 (and n_heads = d_model // 64);
    'aspect:R': n_layers = round(d_model / R), Kaplan's aspect ratio d_model / n_layers = R. Never fewer than
    `min_layers` (0: the rule's depth as it is)."""
    if min_layers < 0:
        raise UserError(
            f"bad minimum depth {min_layers}", hint="give 0 (the rule's depth) or more layers", keys=("min_layers",)
        )
    return max(min_layers, _rule_layers(d_model, rule))


def _rule_layers(d_model: int, rule: str) -> int:
    if rule == "minchilla":
        return d_model // 64
    if rule.startswith("aspect:"):
        try:
            r = float(rule.split(":", 1)[1])
        except ValueError:
            r = 0.0
        if r <= 0:
            raise UserError(
                f"bad depth rule {rule!r}: the aspect ratio must be a positive number",
                hint="e.g. aspect:64",
                keys=("rule",),
            )
        return max(1, round(d_model / r))
    raise UserError(f"unknown depth rule {rule!r}", hint="use minchilla or aspect:R (e.g. aspect:64)", keys=("rule",))


@dataclass
class PlannedRun:
    spec: RunSpec
    budget: float
    tokens: int
    params: int
    flops_per_token: float
    epochs: float


@dataclass
class Dropped:
    run_id: str
    budget: float
    d_model: int
    n_layers: int
    params: int
    steps: int
    reason: str
    kind: str = ""  # shape | steps | epochs

    @property
    def key(self) -> str:
        """The plan setting that dropped the run ("" for a bad shape): the CLI names its flag."""
        return {"steps": "min_steps", "epochs": "max_epochs"}.get(self.kind, "")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class IsoflopPlan:
    runs: list[PlannedRun]
    dropped: list[Dropped]
    budgets: list[float]
    settings: dict[str, Any] = field(default_factory=dict)
    law_name: str = PUBLISHED_LAW
    law_report: list[dict[str, Any]] = field(default_factory=list)
    law_note: str = ""
    notes: list[str] = field(default_factory=list)


def plan_isoflop(
    budgets: list[float],
    shapes: list[ModelShape],
    *,
    data: str,
    train_tokens: int,
    batch_size: int,
    convention: str = "chinchilla",
    min_steps: int = 50,
    max_epochs: float = 1.0,
    base: RunSpec | None = None,
    evals: int = 10,
    checkpoints: int = 10,
    checkpoint_minutes: float = 5.0,
    epochs_fn: Any = None,
    hparams: Resolver | None = None,
    seeds: int = 1,
) -> IsoflopPlan:
    """Every (budget, shape) pair becomes a RunSpec unless it has too few steps or would repeat data.

    `base` carries the training settings every run shares (schedule, seed, ...); `hparams` resolves each run's
    batch size, peak LR, warmup and beta2 (default: batch_size as given, the rest from the literature recipe);
    `epochs_fn(tokens, shape)` gives the epochs a run covers (TokenData.epochs), else tokens / train_tokens.
    Each run evaluates `evals` times and checkpoints `checkpoints` times, at least `checkpoint_minutes` of
    training apart (a checkpoint holds the GPU while it is written; the last step is always checkpointed).
    `seeds` runs per (budget, shape), seeded base.seed, base.seed + 1, ...: the first keeps the plain run id, the
    others add _s1, _s2, ... (fits average them per size: laws/approach2.size_window, approach1.mean_replicates).
    """
    if seeds < 1:
        raise UserError(f"bad seeds {seeds!r}", hint="give 1 or more runs per budget and shape", keys=("seeds",))
    for c in budgets:
        if not (c > 0 and math.isfinite(c)):
            raise UserError(f"bad budget {c!r}: budgets must be positive FLOP counts, e.g. 1e15")
    if batch_size < 0:
        raise UserError(
            f"bad batch size {batch_size}",
            hint="give a positive number of sequences per step (0: by budget)",
            keys=("batch_size",),
        )
    if not shapes:
        raise UserError(
            "no model shapes",
            hint="give shapes such as 512x9 or widths such as 256:1024:64",
            keys=("shapes", "d_models"),
        )
    base = base or RunSpec(shape=shapes[0])
    hp = hparams or Resolver(lr=base.lr, batch_size=batch_size, warmup_steps=base.schedule.warmup_steps)
    runs: list[PlannedRun] = []
    dropped: list[Dropped] = []
    for c in sorted(budgets):
        for shape in shapes:
            rid = run_id(c, shape)
            if shape.n_layers < 1 or shape.d_model % shape.n_heads:  # dropped below; no N or C to count
                reason = (
                    f"no layers (d_model {shape.d_model} too small for the depth rule)"
                    if shape.n_layers < 1
                    else f"d_model {shape.d_model} is not divisible by n_heads {shape.n_heads}"
                )
                dropped.append(Dropped(rid, c, shape.d_model, shape.n_layers, 0, 0, reason, "shape"))
                continue
            n = int(shape.params())
            fpt = float(shape.flops_per_token(convention))
            spec = replace(
                base,
                shape=shape,
                data=data,
                batch_size=hp.batch_for(shape, c, c / fpt),
                convention=convention,
                run_id=rid,
            )
            tps = spec.tokens_per_step
            steps = int(round(c / fpt / tps))
            tokens = steps * tps
            epochs = epochs_fn(tokens, shape) if epochs_fn else tokens / max(1, train_tokens)
            reason, kind = "", ""
            if steps < min_steps:
                reason, kind = f"too few steps ({steps} < min_steps {min_steps})", "steps"
            elif epochs > max_epochs:
                reason, kind = f"{epochs:.2f} epochs of the data (> max_epochs {max_epochs:g})", "epochs"
            if reason:
                dropped.append(Dropped(rid, c, shape.d_model, shape.n_layers, n, steps, reason, kind))
                continue
            # The trainer stops on exactly one criterion: steps. The planned C lives in the study store
            # (and in the spec's origin, for a run folder read on its own).
            spec.steps, spec.tokens, spec.budget_flops = steps, 0, 0.0
            spec.lr = hp.lr_for(shape, c)
            spec.schedule = replace(spec.schedule, warmup_steps=hp.warmup_for(shape, tps, steps))
            spec.beta2 = hp.beta2_for(tps)
            spec.origin = replace(spec.origin, planned_budget=float(c))
            log = spec.logging
            if evals > 0 and log.eval_every == 0:
                log = replace(log, eval_every=max(1, steps // evals))
            if checkpoints > 0 and log.checkpoint_every == 0:
                log = replace(log, checkpoint_every=max(1, steps // checkpoints), checkpoint_minutes=checkpoint_minutes)
            spec.logging = log
            for i in range(seeds):  # replicates differ in seed (initialisation, batch order) and id only
                rep = spec if i == 0 else replace(spec, seed=base.seed + i, run_id=f"{rid}_s{i}")
                runs.append(PlannedRun(rep, float(c), tokens, n, fpt, float(epochs)))
    plan = IsoflopPlan(runs, dropped, sorted(budgets))
    report_published_law(plan)
    plan.notes = hp.reach_notes([(r.spec.shape, r.budget, r.tokens) for r in runs]) + shallow_notes(runs)
    return plan


MIN_DEPTH = 4  # below it, sizes sat off the trend of deeper ones (Kaplan et al. 2020, sec. 3.1; the GPU check)


def shallow_notes(runs: list[PlannedRun]) -> list[str]:
    """A note when GPT runs are fewer than MIN_DEPTH layers deep: in the GPU check (docs/reproductions/tuned-gpu.md)
    small budgets of 2- and 3-layer models overpredicted the 1e16 optimum, 4-layer ones did not."""
    shallow = sorted({(r.spec.shape.d_model, r.spec.shape.n_layers) for r in runs if _shallow(r.spec.shape)})
    if not shallow:
        return []
    names = ", ".join(f"{d}x{n}" for d, n in shallow)
    return [
        f"shapes under {MIN_DEPTH} layers deep ({names}): in the GPU check, small budgets of 2- and 3-layer models "
        "overpredicted the 1e16 loss by 2.4-9.2% and N_opt 1.5-2.4x, where 4-layer ones missed by -1.3% to +2.1% "
        f"and 0.8-1.5x (docs/reproductions/tuned-gpu.md): give every size {MIN_DEPTH} or more layers (min_layers)"
    ]


def _shallow(shape: ModelShape) -> bool:
    return shape.arch == "gpt" and shape.n_layers < MIN_DEPTH


def drop_summary(dropped: list[Dropped]) -> str:
    """'40 repeat data (> max_epochs), 12 too few steps (< min_steps)'."""
    label = {"epochs": "repeat data (> max_epochs)", "steps": "too few steps (< min_steps)", "shape": "bad shape"}
    kinds = [d.kind for d in dropped]
    return ", ".join(f"{kinds.count(k)} {label[k]}" for k in label if k in kinds)


def report_published_law(plan: IsoflopPlan) -> None:
    """Per budget: N_opt under the published law and whether the kept runs' N range brackets it."""
    law = None
    try:
        from scalinglab.laws.published import get_law

        law = get_law(plan.law_name)
    except Exception as e:  # laws not available: planning still works, the report says why
        plan.law_note = f"published law {plan.law_name} unavailable ({e.__class__.__name__}: {e})"
    for c in plan.budgets:
        ns = [r.params for r in plan.runs if r.budget == c]
        row: dict[str, Any] = {
            "budget": c,
            "runs": len(ns),
            "n_min": min(ns) if ns else None,
            "n_max": max(ns) if ns else None,
            "n_opt": None,
            "d_opt": None,
            "brackets": None,
        }
        if law is not None:
            n_opt, d_opt = law.allocate(c)
            row.update(n_opt=float(n_opt), d_opt=float(d_opt))
            if ns:
                row["brackets"] = bool(min(ns) <= n_opt <= max(ns))
        plan.law_report.append(row)
