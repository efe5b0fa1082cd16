"""RunSpec (what to train) and RunRecord (what happened): the records every stage reads and writes."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from scalinglab.accounting.shape import ModelShape

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
    """What a run did. Written to its run folder (scalinglab.folders.RunDir) and to the study store."""

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
    curve: str = ""  # the run's metric lines, relative to its folder (the trainer sets RunDir.METRICS)

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
