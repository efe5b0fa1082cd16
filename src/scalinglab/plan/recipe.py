"""Training settings when nothing was tuned (peak LR, batch size, warmup, AdamW beta2), and the resolver that
fills them into each planned run from user-fixed values, a fitted hparams law, or these literature defaults.

Pure math (no torch). The planner writes the resolved numbers into every RunSpec, so a run's config says what it uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scalinglab.accounting.shape import ModelShape

RECIPE_NAME = "literature-2024"


def deepseek_m(shape: ModelShape) -> float:
    """DeepSeek LLM's model scale M (non-embedding FLOPs per token): 6 N_nonembed + 6 n_layers d_model seq_len."""
    return 6.0 * shape.params(embeddings=False) + 6.0 * shape.n_layers * shape.d_model * shape.seq_len


@dataclass(frozen=True)
class Recipe:
    """Literature defaults (docs/explanation/hyperparameters.md says why each rule and where it comes from).

    - lr(shape): DeepSeek LLM (Bi et al. 2024) fits eta_opt = 0.3118 C^-0.1250 and M_opt = 0.1715 C^0.5243 on
      compute-optimal models; eliminating C gives the LR of the budget at which this model is compute-optimal:
      eta(M) = 0.3118 ((M / 0.1715)^(1/0.5243))^-0.1250, about M^-0.24 (2.1e-3 at 36M params, 5.8e-3 at 0.5M).
    - batch_tokens(C): DeepSeek LLM's B_opt = 0.2920 C^0.3271 tokens, rounded to a power of two sequences.
    - warmup: Porian et al. 2024 warm up for as many tokens as the model has parameters (N tokens), here capped at
      a tenth of the run so short runs keep most of their steps at a useful LR.
    - beta2: keep the second-moment EMA's horizon in tokens fixed as the batch shrinks (Porian et al. 2024: small
      batches want 0.99-0.999; the rule beta2 = 0.95^(B / B_ref) as in Marek et al. 2025), with beta2 = 0.95 at
      B_ref = 2^19 tokens (GPT-3's smallest batch, Brown et al. 2020), capped at 0.999.
    """

    lr_coef: float = 0.3118
    lr_exp: float = -0.1250
    m_coef: float = 0.1715
    m_exp: float = 0.5243
    batch_coef: float = 0.2920
    batch_exp: float = 0.3271
    lr_max: float = 1e-2  # DeepSeek's fit extrapolated far below its smallest model exceeds this for < 100k params
    warmup_max_frac: float = 0.1
    beta2_ref: float = 0.95
    beta2_ref_tokens: float = 2.0**19
    beta2_max: float = 0.999

    def lr(self, shape: ModelShape) -> float:
        c_opt = (deepseek_m(shape) / self.m_coef) ** (1.0 / self.m_exp)
        return min(self.lr_max, self.lr_coef * c_opt**self.lr_exp)

    def batch_tokens(self, budget: float) -> float:
        return self.batch_coef * budget**self.batch_exp

    def warmup(self, params: int, tokens_per_step: int, steps: int) -> int:
        return max(1, min(math.ceil(params / tokens_per_step), int(steps * self.warmup_max_frac)))

    def beta2(self, tokens_per_step: int) -> float:
        return min(self.beta2_max, max(self.beta2_ref, self.beta2_ref ** (tokens_per_step / self.beta2_ref_tokens)))


def pow2_batch(tokens: float, per_sequence: int) -> int:
    """The power of two number of sequences nearest (in log) to `tokens` tokens per step."""
    return 2 ** max(0, round(math.log2(max(1.0, tokens / per_sequence))))


@dataclass(frozen=True)
class Resolver:
    """What each planned run trains with. Values > 0 are the user's and win; `law` (a fitted HparamsLaw) gives lr
    and batch size where the user gave none; the recipe gives the rest. legacy=True keeps a study planned before
    the recipe existed on its old meaning: 0 stays 0 (the trainer's Kaplan LR and min(200, steps/10) warmup)."""

    lr: float = 0.0
    batch_size: int = 0
    warmup_steps: int = 0
    beta2: float = 0.0
    law: Any = None  # scalinglab.laws.hparams.HparamsLaw
    recipe: Recipe = Recipe()
    legacy: bool = False

    def batch_for(self, shape: ModelShape, budget: float, tokens: float) -> int:
        """Sequences per step for `shape` trained on `tokens` tokens at compute `budget`."""
        if self.batch_size > 0:
            return self.batch_size
        if self.law is not None:
            return pow2_batch(self.law.batch_tokens(budget, tokens), shape.trained_per_sequence)
        return pow2_batch(self.recipe.batch_tokens(budget), shape.trained_per_sequence)

    def lr_for(self, shape: ModelShape, budget: float) -> float:
        """Under muP the LR is the base-width model's at every width (muP scales the hidden layers' own LR)."""
        if self.lr > 0 or self.legacy:
            return self.lr
        if self.law is not None:
            return float(self.law.lr(self.lr_params(shape), budget))
        return self.recipe.lr(_lr_shape(shape))

    @staticmethod
    def lr_params(shape: ModelShape) -> int:
        """The N the LR follows: the shape's own, or under muP the base-width model's."""
        return _lr_shape(shape).params()

    def reach_notes(self, points: list[tuple[ModelShape, float, float]]) -> list[str]:
        """For the (shape, budget, tokens) of each planned run: where the fitted law's lr* or batch* (those the user did not
        fix, as lr_for and batch_for decide) is used more than 2x beyond its points (laws.hparams.reach_notes)."""
        if self.law is None or not points:
            return []
        from scalinglab.laws.hparams import reach_notes

        lr_x = [self.lr_params(s) for s, _, _ in points]
        budgets = [c for _, c, _ in points]
        tokens = [d for _, _, d in points]
        return reach_notes(self.law, lr_x, budgets, tokens, self.lr <= 0 and not self.legacy, self.batch_size <= 0)

    def warmup_for(self, shape: ModelShape, tokens_per_step: int, steps: int) -> int:
        if self.warmup_steps > 0 or self.legacy:
            return self.warmup_steps
        return self.recipe.warmup(shape.params(), tokens_per_step, steps)

    def beta2_for(self, tokens_per_step: int) -> float:
        if self.beta2 > 0:
            return self.beta2
        return 0.95 if self.legacy else self.recipe.beta2(tokens_per_step)

    def settings(self) -> dict[str, Any]:
        """The user's choices as the study's settings keep them (0: resolved per run), so an extension resolves alike."""
        d: dict[str, Any] = {
            "recipe": "legacy" if self.legacy else RECIPE_NAME,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "warmup_steps": self.warmup_steps,
            "beta2": self.beta2,
        }
        if self.law is not None:
            d["hparams"] = _no_none(self.law.to_dict())  # TOML has no null
        return d


def _lr_shape(shape: ModelShape) -> ModelShape:
    return shape.with_(d_model=shape.mup_base, n_heads=0, mup_base=0) if shape.mup_base else shape


def _no_none(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _no_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_no_none(v) for v in x]
    return x
