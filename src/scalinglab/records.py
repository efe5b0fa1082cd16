"""RunSpec (what to train) and RunRecord (what happened): the records every stage reads and writes."""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import UserError

STATUSES = ("pending", "running", "done", "diverged", "failed")


@dataclass
class RunSpec:
    """One training run. Exactly one of steps/tokens/budget_flops decides when it stops; steps
    is derived from it (tokens per step = batch_size * grad_accum * seq_len, or latents for
    perceiver-ar)."""

    shape: ModelShape
    data: str = ""
    steps: int = 0
    tokens: int = 0
    budget_flops: float = 0.0
    convention: str = "chinchilla"  # FLOP accounting convention for budget_flops
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 0.0  # 0: Kaplan heuristic LR(N) = 0.003239 - 0.0001395 * log(N)
    schedule: str = "cosine"  # cosine | wsd | constant
    warmup_steps: int = 0  # 0: min(200, steps // 10)
    min_lr_ratio: float = 0.1  # cosine floor, as in seeds/001
    decay_frac: float = 0.2  # wsd: share of steps spent in the final decay
    optimizer: str = "adamw"  # adamw | adam
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 0  # 0: only at the end
    eval_batches: int = 8
    checkpoint_every: int = 0  # 0: only at the end
    device: str = "auto"
    dtype: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False
    activation_checkpointing: bool = False
    run_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.shape.trained_per_sequence

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = self.shape.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["shape"] = ModelShape.from_dict(d["shape"])
        return cls(**d)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(_drop_none(self.to_dict()))

    @classmethod
    def from_toml(cls, text: str) -> "RunSpec":
        return cls.from_dict(tomllib.loads(text))


@dataclass
class RunRecord:
    """What a run did. Written to RUN/record.json and to the study store."""

    spec: RunSpec
    status: str = "pending"
    final_val_loss: float | None = None
    min_val_loss: float | None = None
    final_train_loss: float | None = None
    steps_done: int = 0
    tokens: int = 0
    flops: float = 0.0
    convention: str = "chinchilla"
    params: int = 0
    wall_time_s: float = 0.0
    model_flops_per_s: float = 0.0
    device: str = ""
    message: str = ""
    curve: str = "metrics.jsonl"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunRecord":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["spec"] = RunSpec.from_dict(d["spec"])
        return cls(**d)


def _drop_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    return d


# ---- checking a spec before anything is planned or trained (from flags, a TOML file or a study) ----

DTYPES = ("auto", "fp32", "bf16")
OPTIMIZERS = ("adamw", "adam")


class SpecError(UserError):
    """One bad RunSpec (or shape) field: `field`, its `value` and what it should be (`want`)."""

    def __init__(self, field: str, value: Any, want: str):
        self.field, self.value, self.want = field, value, want
        super().__init__(f"run setting {field} = {value!r} is not {want}; fix it where it is set (flag or config file)")


def _num(v: Any, integer: bool) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (not integer and isinstance(v, float) and math.isfinite(v))


# field -> (test, words); numbers must also be finite and of the right type (a whole number for ints)
_INT, _NUM = True, False
_SPEC_RULES: dict[str, tuple[bool, Any, str]] = {
    "steps": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "tokens": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "budget_flops": (_NUM, lambda v: v >= 0, "a finite number >= 0"),
    "batch_size": (_INT, lambda v: v > 0, "a whole number > 0"),
    "grad_accum": (_INT, lambda v: v > 0, "a whole number > 0"),
    "lr": (_NUM, lambda v: v >= 0, "a finite number >= 0 (0: Kaplan's heuristic)"),
    "warmup_steps": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "min_lr_ratio": (_NUM, lambda v: 0 <= v <= 1, "a number from 0 to 1"),
    "decay_frac": (_NUM, lambda v: 0 < v <= 1, "a number above 0, at most 1"),
    "weight_decay": (_NUM, lambda v: v >= 0, "a finite number >= 0"),
    "beta1": (_NUM, lambda v: 0 <= v < 1, "a number from 0 up to 1 (excluded)"),
    "beta2": (_NUM, lambda v: 0 <= v < 1, "a number from 0 up to 1 (excluded)"),
    "grad_clip": (_NUM, lambda v: v >= 0, "a finite number >= 0 (0: off)"),
    "seed": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "eval_every": (_INT, lambda v: v >= 0, "a whole number >= 0 (0: only at the end)"),
    "eval_batches": (_INT, lambda v: v > 0, "a whole number > 0"),
    "checkpoint_every": (_INT, lambda v: v >= 0, "a whole number >= 0 (0: only at the end)"),
}
_SHAPE_RULES: dict[str, tuple[bool, Any, str]] = {
    "d_model": (_INT, lambda v: v > 0, "a whole number > 0"),
    "n_layers": (_INT, lambda v: v > 0, "a whole number > 0"),
    "vocab": (_INT, lambda v: v > 0, "a whole number > 0"),
    "seq_len": (_INT, lambda v: v > 0, "a whole number > 0"),
    "n_heads": (_INT, lambda v: v >= 0, "a whole number > 0 (0: d_model // 64)"),
    "mlp_ratio": (_INT, lambda v: v > 0, "a whole number > 0"),
    "latents": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "prefix_dropout": (_NUM, lambda v: 0 <= v < 1, "a number from 0 up to 1 (excluded)"),
}
_CHOICES = {"dtype": DTYPES, "optimizer": OPTIMIZERS, "schedule": ("cosine", "wsd", "constant")}


def check_fields(d: dict[str, Any]) -> None:
    """Check the numeric fields present in a RunSpec dict (and its "shape" dict) before any record is built from
    it: a TOML `d_model = "64"` must name the key, not fail later as arithmetic on a string."""
    for rules, obj in ((_SPEC_RULES, d), (_SHAPE_RULES, d.get("shape") or {})):
        for name, (integer, ok, words) in rules.items():
            if name in obj and not (_num(obj[name], integer) and ok(obj[name])):
                raise SpecError(name, obj[name], words)


def validate_spec(spec: RunSpec) -> RunSpec:
    """Raise SpecError for the first field of `spec` (or its shape) with a wrong type or an impossible value:
    negative steps, NaN lr, an unknown schedule, dtype or optimizer, a non-numeric TOML value, ...
    Checked when a run is planned and before it trains, so a study never holds runs that all fail."""
    check_fields(spec.to_dict())
    for name, choices in _CHOICES.items():
        v = getattr(spec, name)
        if v not in choices:
            raise SpecError(name, v, "one of " + ", ".join(choices))
    dev = spec.device
    if not isinstance(dev, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", dev):
        raise SpecError("device", dev, "auto, cpu, cuda or cuda:N")
    for name in ("compile", "activation_checkpointing"):
        if not isinstance(getattr(spec, name), bool):
            raise SpecError(name, getattr(spec, name), "true or false")
    for name in ("data", "convention", "run_id"):
        if not isinstance(getattr(spec, name), str):
            raise SpecError(name, getattr(spec, name), "a string")
    if not isinstance(spec.extra, dict):
        raise SpecError("extra", spec.extra, "a table")
    return spec
