"""Compute-optimal shape for a budget: N_opt from a published law, then (d_model, n_layers) candidates whose
N (N_self for perceiver-ar) is nearest N_opt at a chosen aspect ratio d_model / n_layers, ranked."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scalinglab.accounting import flops_parts, validate
from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError

# The Perceiver AR article's experiment-1 models (512x9, 624x11, 728x13) all have d_model/n_layers of 56-57.
DEFAULT_ASPECT = 56.0
DEFAULT_MULTIPLE = 8  # d_model a multiple of 8: divisible by 8 heads, tensor-core friendly
MAX_D_MODEL = 1 << 16


@dataclass(frozen=True)
class Candidate:
    d_model: int
    n_layers: int
    N: int  # the N the law speaks of: N_self (perceiver-ar), non-embedding N (kaplan), else all parameters
    N_total: int
    aspect: float
    n_error: float  # N / N_opt - 1
    score: float  # |ln(N/N_opt)| + aspect_weight * |ln(aspect / target)|; smaller is better
    tokens: float  # D = C / (self-part FLOPs per token)
    flops_total: float  # C including the cross part (perceiver-ar)

    @property
    def name(self) -> str:
        return f"{self.d_model}x{self.n_layers}"


@dataclass
class OptimalPlan:
    budget: float
    law: str
    n_opt: float
    d_opt: float
    aspect: float
    candidates: list[Candidate] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "budget": self.budget,
            "law": self.law,
            "N_opt": self.n_opt,
            "D_opt": self.d_opt,
            "aspect": self.aspect,
            "candidates": [dict(c.__dict__, name=c.name) for c in self.candidates],
        }


def law_n(shape: ModelShape, law_name: str) -> int:
    """The parameter count a law's N_opt refers to."""
    if shape.arch == "perceiver-ar":
        return shape.params_self()  # the article: laws apply to the self-attention part only
    return shape.params(embeddings=False) if law_name == "kaplan" else shape.params()


def _bracket(base: ModelShape, n_layers: int, n_opt: float, law_name: str, multiple: int) -> list[int]:
    """The multiples of `multiple` for d_model just below and just above N_opt (N grows with d_model)."""

    def n_of(d):
        return law_n(base.with_(d_model=d, n_layers=n_layers), law_name)

    lo, hi = 1, MAX_D_MODEL // multiple
    if n_of(hi * multiple) < n_opt:
        return [hi * multiple]
    while lo < hi:  # smallest k with N(k * multiple) >= n_opt
        mid = (lo + hi) // 2
        if n_of(mid * multiple) >= n_opt:
            hi = mid
        else:
            lo = mid + 1
    return [k * multiple for k in (lo - 1, lo) if k >= 1]


def candidate_shapes(
    base: ModelShape,
    n_opt: float,
    budget: float,
    law_name: str = "",
    aspect: float = DEFAULT_ASPECT,
    aspect_weight: float = 1.0,
    multiple: int = DEFAULT_MULTIPLE,
    top: int = 5,
    convention: str = "chinchilla",
) -> list[Candidate]:
    """For every depth the two widths bracketing N_opt, ranked by N error plus aspect-ratio deviation."""
    if aspect <= 0 or multiple <= 0 or top <= 0 or aspect_weight < 0:
        raise UserError("aspect, multiple and top must be positive and aspect weight >= 0: fix the option")
    cands = []
    max_layers = max(1, int(MAX_D_MODEL / aspect))
    for n_layers in range(1, min(max_layers, 512) + 1):
        for d in _bracket(base, n_layers, n_opt, law_name, multiple):
            s = validate(base.with_(d_model=d, n_layers=n_layers))
            if s.arch == "perceiver-ar" and s.d_model % 8:
                continue
            n = law_n(s, law_name)
            asp = d / n_layers
            score = abs(math.log(n / n_opt)) + aspect_weight * abs(math.log(asp / aspect))
            c = flops_parts(s, convention)
            tokens = budget / c["self"]
            cands.append(
                Candidate(
                    d, n_layers, n, s.params(), asp, n / n_opt - 1.0, score, tokens, tokens * (c["self"] + c["cross"])
                )
            )
    cands.sort(key=lambda c: c.score)
    return cands[:top]


def plan_optimal(
    budget: float,
    law_name: str,
    base: ModelShape,
    aspect: float = DEFAULT_ASPECT,
    aspect_weight: float = 1.0,
    multiple: int = DEFAULT_MULTIPLE,
    top: int = 5,
    convention: str = "chinchilla",
    law=None,
) -> OptimalPlan:
    """N_opt, D_opt at budget C (the self-part budget for perceiver-ar) from `law` (a law object, e.g. a fitted
    law.json) or else the published law `law_name`."""
    from scalinglab.laws.estimates import canonical_name, fit_table
    from scalinglab.laws.published import get_law

    if not (budget > 0 and math.isfinite(budget)):
        raise UserError(
            f"budget must be a positive number of FLOPs, got {budget}", hint="e.g. 5.78e17", keys=("budget",)
        )
    validate(base)
    if law is None:
        law = get_law(law_name)  # unknown names: UserError listing the known ones
        if canonical_name(law_name) is not None:
            # Chinchilla approaches 1/2: the unrounded fit to Tables 3/A3, as the article computes N_opt.
            law = fit_table(law_name)
    n_opt, d_opt = (float(x) for x in law.allocate(budget))
    kind = "kaplan" if getattr(law, "kind", "") == "kaplan" else law_name
    cands = candidate_shapes(base, n_opt, budget, kind, aspect, aspect_weight, multiple, top, convention)
    return OptimalPlan(budget, law_name, n_opt, d_opt, aspect, cands)
