"""When to grow (staged training, Shen et al. 2022): the compute-optimal single growth point for a target shape and
budget under a loss law L(N, D), and the compute it saves. Pure numpy/scipy: no torch.

Model: the small model follows its law curve l_s(C) = L(N_s, C/6N_s); a loss-preserving growth operator puts it on
the target model's curve at the compute C_eff where l_L(C_eff) = l_s(C_grow), and it continues from there. Staged
compute to the direct run's final loss is C_grow + C - C_eff; it is least where dl_s/dC = dl_L/dC at equal loss,
i.e. grow when the small model's loss-vs-compute slope falls below the large model's at the same loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError

OPS = ("width", "depth", "width+depth")

# The "Constants and hyperparameters" of Shen et al. 2022's code (github.com/allenai/staged-training), fitted by
# its authors; slopes are d ln L / d ln C.
SEED_CONSTANTS = {
    "threshold_optimality": -0.052,
    "threshold_depth_growth": -0.0575,
    "threshold_width_growth": -0.0475,
    "threshold_depth_width_growth_ours": -0.03,
    "constant_op_width": 1.776,
    "constant_op_depth": 1.412,
    "constant_op_depth_width": 2.455,
}
_OP_KEYS = {
    "width": ("threshold_width_growth", "constant_op_width"),
    "depth": ("threshold_depth_growth", "constant_op_depth"),
    "width+depth": ("threshold_depth_width_growth_ours", "constant_op_depth_width"),
}


@dataclass
class StagedPlan:
    op: str
    law: str
    small_shape: str
    target_shape: str
    n_small: float
    n_target: float
    budget_flops: float  # direct training of the target shape
    target_loss: float  # the direct run's predicted final loss
    grow_flops: float  # compute spent on the small model
    grow_tokens: float
    grow_loss: float
    effective_tokens: float  # target-model tokens with the same loss: where the grown model rejoins the schedule
    tokens_after_growth: float
    staged_flops: float
    saving_pct: float
    slope_small: float  # dL/dC of the small model at growth (equal to the target's at equal loss)
    slope_target: float
    loglog_slope_small: float  # d ln L / d ln C at growth, comparable to the paper's thresholds
    loglog_slope_target_end: float  # at the end of the direct run (seed: threshold_optimality)
    small_suffices: bool  # the small model reaches the target loss before its growth point
    lr_small: float
    lr_target: float
    seed_threshold: float
    seed_constant: float
    grow_step: int | None = None
    rejoin_step: int | None = None
    total_steps_direct: int | None = None
    steps_after_growth: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def small_shape(target: ModelShape, op: str, factor: int = 2) -> ModelShape:
    if op not in OPS:
        raise UserError(f"unknown growth op {op!r}: use one of {', '.join(OPS)}")
    s = target
    if "width" in op:
        if s.d_model % factor or s.n_heads % factor:
            raise UserError(
                f"{s.name} with {s.n_heads} heads cannot be halved in width: give d_model and heads divisible by {factor}"
            )
        s = s.with_(d_model=s.d_model // factor, n_heads=s.n_heads // factor)
    if "depth" in op:
        if s.n_layers % factor:
            raise UserError(f"{s.name} has {s.n_layers} layers, not divisible by {factor}: give an even layer count")
        s = s.with_(n_layers=s.n_layers // factor)
    return s


def _kaplan_lr(shape: ModelShape) -> float:
    from scalinglab.train.schedule import kaplan_lr, kaplan_n  # pure math, no torch

    return kaplan_lr(kaplan_n(shape.d_model, shape.n_layers))


class _Curve:
    """Loss of one model size against training compute C = 6 N D, and its inverse."""

    def __init__(self, law, n: float):
        self.law, self.n = law, float(n)

    def loss(self, c):
        c = np.asarray(c, dtype=float)
        return np.asarray(self.law.predict_loss(self.n, c / (6.0 * self.n)), dtype=float)

    def slope(self, c):  # dL/dC by a central difference in ln C
        h = 1e-4
        return (self.loss(c * math.exp(h)) - self.loss(c * math.exp(-h))) / (2 * h * np.asarray(c))

    def compute_at(self, loss):
        """C with loss(C) = loss (vectorised bisection in ln C); inf where the curve never gets that low."""
        loss = np.atleast_1d(np.asarray(loss, dtype=float))
        if getattr(self.law, "kind", "") == "parametric":  # closed form: D = (B / (L - E - A/N^alpha))^(1/beta)
            law = self.law
            r = loss - law.E_ - law.A_ / self.n**law.alpha_
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.where(r > 0, (law.B_ / np.where(r > 0, r, 1.0)) ** (1.0 / law.beta_), np.inf)
            return 6.0 * self.n * d
        lo, hi = np.full(loss.shape, math.log(6.0 * self.n)), np.full(loss.shape, math.log(1e45))
        out = np.full(loss.shape, np.inf)
        ok = self.loss(np.exp(hi)) < loss
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            above = self.loss(np.exp(mid)) > loss
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        out[ok] = np.exp(0.5 * (lo + hi))[ok]
        return out


def plan_staged(
    law,
    target: ModelShape,
    budget_flops: float,
    op: str = "width",
    factor: int = 2,
    tokens_per_step: int | None = None,
    law_name: str = "",
) -> StagedPlan:
    """The single growth point that minimises compute to the direct run's final loss (see module docstring)."""
    if not hasattr(law, "predict_loss"):
        raise UserError(
            f"law {law_name or law.kind!r} has no predict_loss(N, D): use a parametric law such as chinchilla-approach-3 or a fitted approach-3 law.json"
        )
    if not budget_flops > 0 or not math.isfinite(budget_flops):
        raise UserError(
            f"budget must be a positive number of FLOPs, got {budget_flops}", hint="give e.g. 1e19", keys=("budget",)
        )
    small = small_shape(target, op, factor)
    emb = getattr(law, "kind", "") != "kaplan"  # Kaplan's law counts non-embedding parameters
    n_s, n_l = float(small.params(embeddings=emb)), float(target.params(embeddings=emb))
    cs, cl = _Curve(law, n_s), _Curve(law, n_l)
    l_star = float(cl.loss(budget_flops))
    if not math.isfinite(l_star):
        raise UserError(
            f"law {law_name} gives no finite loss for {target.name} at {budget_flops:.3g} FLOPs: check the law's values"
        )
    c_reach = float(cs.compute_at(l_star)[0])  # small model alone reaches the target loss here (maybe never)
    c_hi = min(c_reach, 1e3 * budget_flops)
    c_lo = max(6.0 * n_s * 1.0, c_hi * 1e-8)

    def gain(ln_c):  # compute saved by growing at exp(ln_c)
        c = np.exp(ln_c)
        return cl.compute_at(cs.loss(c)) - c

    grid = np.linspace(math.log(c_lo), math.log(c_hi), 2001)
    g = gain(grid)
    g = np.where(np.isfinite(g), g, -np.inf)
    i = int(np.argmax(g))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    for _ in range(60):  # golden-section refinement of the grid optimum
        m1, m2 = a + 0.382 * (b - a), a + 0.618 * (b - a)
        if gain(np.array([m1]))[0] >= gain(np.array([m2]))[0]:
            b = m2
        else:
            a = m1
    c1 = float(math.exp(0.5 * (a + b)))
    l_g = float(cs.loss(c1))
    c_eff = float(cl.compute_at(l_g)[0])
    saved = max(c_eff - c1, 0.0)
    staged = budget_flops - saved
    thr_key, const_key = _OP_KEYS[op]
    plan = StagedPlan(
        op=op,
        law=law_name or getattr(law, "name", ""),
        small_shape=small.name,
        target_shape=target.name,
        n_small=n_s,
        n_target=n_l,
        budget_flops=budget_flops,
        target_loss=l_star,
        grow_flops=c1,
        grow_tokens=c1 / (6 * n_s),
        grow_loss=l_g,
        effective_tokens=c_eff / (6 * n_l),
        tokens_after_growth=max(budget_flops - c_eff, 0.0) / (6 * n_l),
        staged_flops=staged,
        saving_pct=100.0 * saved / budget_flops,
        slope_small=float(cs.slope(c1)),
        slope_target=float(cl.slope(c_eff)),
        loglog_slope_small=float(cs.slope(c1) * c1 / l_g),
        loglog_slope_target_end=float(cl.slope(budget_flops) * budget_flops / l_star),
        small_suffices=bool(c1 >= 0.999 * c_reach),
        lr_small=_kaplan_lr(small),
        lr_target=_kaplan_lr(target),
        seed_threshold=SEED_CONSTANTS[thr_key],
        seed_constant=SEED_CONSTANTS[const_key],
    )
    if tokens_per_step:
        plan.grow_step = round(plan.grow_tokens / tokens_per_step)
        plan.rejoin_step = round(plan.effective_tokens / tokens_per_step)
        plan.total_steps_direct = round(budget_flops / (6 * n_l) / tokens_per_step)
        plan.steps_after_growth = max(plan.total_steps_direct - plan.rejoin_step, 0)
    return plan
