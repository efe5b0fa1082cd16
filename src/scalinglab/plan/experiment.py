"""Iso-compute experiment tables (the Perceiver AR article's experiment_setup / experiment_ratios): from a
reference model and its steps, the budget C_ref, then for each candidate the steps, tokens, N and C parts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scalinglab.accounting import flops_parts, perceiver_ar
from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError

COLUMNS = (
    "d_model",
    "layers",
    "num_steps",
    "D_iso",
    "N",
    "N_cross",
    "N_self",
    "C",
    "C_cross",
    "C_self",
    "C_self_approx",
)
RATIOS = ("N_cross/N", "C_cross/C", "C_self/C_self_approx")


@dataclass(frozen=True)
class ExperimentRow:
    """One model of an iso-compute experiment. D_iso: (latent) training tokens that spend C_ref on the self
    part; C_self_approx = 6 N_self D_iso (the article's Ĉ_self)."""

    d_model: int
    layers: int
    num_steps: int
    D_iso: float
    N: int
    N_cross: int
    N_self: int
    C: float
    C_cross: float
    C_self: float
    C_self_approx: float

    @property
    def ratios(self) -> dict[str, float]:
        return {
            "N_cross/N": self.N_cross / self.N,
            "C_cross/C": self.C_cross / self.C,
            "C_self/C_self_approx": self.C_self / self.C_self_approx,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def tokens_per_step(shape: ModelShape, batch_size: int) -> int:
    return batch_size * shape.trained_per_sequence


def _per_token(shape: ModelShape, convention: str) -> tuple[float, float]:
    """(self, cross) training FLOPs per token, validated and computed in one pass."""
    parts = flops_parts(shape, convention)
    return parts["self"], parts["cross"]


def reference_budget(ref: ModelShape, steps: int, batch_size: int, convention: str = "chinchilla") -> tuple[float, int]:
    """(C_ref, D_ref): the reference model's self-part training FLOPs after `steps` steps (article's training_flops)."""
    if steps <= 0 or batch_size <= 0:
        raise UserError(f"steps and batch size must be positive (got {steps}, {batch_size}): give positive integers")
    d_ref = tokens_per_step(ref, batch_size) * steps
    return _per_token(ref, convention)[0] * d_ref, d_ref


def experiment_setup(
    shapes: Sequence[ModelShape], c_ref: float, batch_size: int, convention: str = "chinchilla"
) -> list[ExperimentRow]:
    """Each shape trained with the same self-part budget C_self = C_ref (the article's Table 1 layout)."""
    if c_ref <= 0 or batch_size <= 0:
        raise UserError(f"budget and batch size must be positive (got {c_ref}, {batch_size})")
    rows = []
    for s in shapes:
        c_self_tok, c_cross_tok = _per_token(s, convention)
        d_iso = c_ref / c_self_tok
        steps = perceiver_ar.num_training_steps(d_iso, s.trained_per_sequence, batch_size)
        n_self, n_cross = s.params_self(), s.params_cross()
        c_self, c_cross = c_self_tok * d_iso, c_cross_tok * d_iso
        rows.append(
            ExperimentRow(
                d_model=s.d_model,
                layers=s.n_layers,
                num_steps=steps,
                D_iso=d_iso,
                N=n_self + n_cross,
                N_cross=n_cross,
                N_self=n_self,
                C=c_self + c_cross,
                C_cross=c_cross,
                C_self=c_self,
                C_self_approx=6 * n_self * d_iso,
            )
        )
    return rows


def experiment_ratios(shapes: Sequence[ModelShape], convention: str = "chinchilla") -> list[dict[str, float]]:
    """Budget-independent ratios (the article's Table 2 layout), computed per token as the article does."""
    out = []
    for s in shapes:
        c_self, c_cross = _per_token(s, convention)
        n_self, n_cross = s.params_self(), s.params_cross()
        out.append(
            {
                "d_model": s.d_model,
                "layers": s.n_layers,
                "N_cross/N": n_cross / (n_cross + n_self),
                "C_cross/C": c_cross / (c_cross + c_self),
                "C_self/C_self_approx": c_self / (6 * n_self),
            }
        )
    return out


def plan_experiment(
    base: ModelShape,
    ref: tuple[int, int],
    ref_steps: int,
    models: Sequence[tuple[int, int]],
    batch_size: int,
    convention: str = "chinchilla",
) -> tuple[float, list[ExperimentRow], list[dict]]:
    """(C_ref, setup rows, ratio rows) for (d_model, layers) pairs sharing `base`'s vocab, seq_len, latents."""
    ref_shape = base.with_(d_model=ref[0], n_layers=ref[1])
    c_ref, _ = reference_budget(ref_shape, ref_steps, batch_size, convention)
    shapes = [base.with_(d_model=d, n_layers=l) for d, l in models]
    return c_ref, experiment_setup(shapes, c_ref, batch_size, convention), experiment_ratios(shapes, convention)
