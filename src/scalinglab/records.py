"""RunSpec (what to train, with its schedule, runtime, logging and origin sections) and RunRecord (what
happened): the records every stage reads and writes; `upgrade` reads the forms earlier versions wrote."""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from scalinglab.accounting.shape import ModelShape
from scalinglab.errors import ConfigError

STATUSES = ("pending", "running", "done", "diverged", "failed")


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule (scalinglab.train.schedule.Schedule is built from it)."""

    kind: str = "cosine"  # cosine | wsd | constant
    warmup_steps: int = 0  # 0: min(200, steps // 10)
    min_lr_ratio: float = 0.1  # cosine floor, as in Krasser (2023)'s Perceiver AR runs
    decay_frac: float = 0.2  # wsd: share of steps spent in the final decay
    restart_steps: int = -1  # growth: the step a restart begins at; -1: no restart
    restart_warmup_steps: int = 0  # growth: re-warm the LR over this many steps after restart_steps
    reset: bool = False  # restart the whole schedule at restart_steps
    branches: tuple[
        int, ...
    ] = ()  # wsd: token counts of the cooldown points (Hägele et al. 2024); last = the run's end
    branch_budgets: tuple[float, ...] = ()  # their planned C, when the planner gave them

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(int(t) for t in self.branches))
        object.__setattr__(self, "branch_budgets", tuple(float(c) for c in self.branch_budgets))


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the run executes; none of it changes what is learned (up to floating point)."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False
    compile_mode: str = ""  # "": the whole step as one CUDA graph (train/graph.py) or reduce-overhead on CUDA
    activation_checkpointing: bool = False
    threads: int = 0  # CPU threads; 0: train.loop.auto_threads (1 on a GPU and below 1M parameters on the CPU)
    allow_long: bool = False  # train even a run past train.guard's bounds (over 30 days at peak speed, 100 epochs)


@dataclass(frozen=True)
class LoggingConfig:
    """What the run writes and when: metric lines, evaluations, checkpoints."""

    log_every: int = 10  # steps between metric lines
    eval_every: int = 0  # 0: only at the end
    eval_batches: int = 8
    checkpoint_every: int = 0  # 0: only at the end
    checkpoint_minutes: float = 0.0  # periodic checkpoints at least this many minutes of training apart (0: no floor)
    tensorboard: bool = True
    tracker: str = "none"  # none | mlflow: also log to an experiment tracker (train/trackers.py)
    tracker_uri: str = ""  # its tracking URI, absolute (e.g. file:/abs/STUDY/mlruns)
    tracker_experiment: str = "scalinglab"  # the experiment the run is filed under


@dataclass(frozen=True)
class Origin:
    """Where a run came from: kept with it, never read by the trainer."""

    planned_budget: float = 0.0  # the planner's C for this run (0: none)
    grown_from: str = ""  # the run folder a growth operator started from
    growth: dict[str, Any] = field(default_factory=dict)  # its settings: width, depth, mode, noise, at_step, from_shape
    tune: dict[str, Any] = field(default_factory=dict)  # a tuning grid's point: lr, batch_size, beta2, warmup as given


SECTIONS: dict[str, type] = {
    "schedule": ScheduleConfig,
    "runtime": RuntimeConfig,
    "logging": LoggingConfig,
    "origin": Origin,
}


@dataclass
class RunSpec:
    """One training run. Exactly one of steps/tokens/budget_flops decides when it stops; steps
    is derived from it (tokens per step = batch_size * grad_accum * seq_len, or latents for
    perceiver-ar). Settings are grouped in frozen sections: change one with dataclasses.replace."""

    shape: ModelShape
    data: str = ""
    steps: int = 0
    tokens: int = 0
    budget_flops: float = 0.0
    convention: str = "chinchilla"  # FLOP accounting convention for budget_flops
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 0.0  # 0: Kaplan heuristic LR(N) = 0.003239 - 0.0001395 * log(N)
    optimizer: str = "adamw"  # adamw | adam
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    seed: int = 0
    run_id: str = ""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    origin: Origin = field(default_factory=Origin)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.shape.trained_per_sequence

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = self.shape.to_dict()
        for k in ("branches", "branch_budgets"):
            d["schedule"][k] = list(d["schedule"][k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """From to_dict()'s form, or an older one (flat settings, an `extra` table, flat shape keys): see upgrade."""
        d = upgrade(d)
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["shape"] = ModelShape.from_dict(d["shape"])
        for name, kind in SECTIONS.items():
            sub = d.get(name) or {}
            names = {f.name for f in fields(kind)}
            d[name] = kind(**{k: v for k, v in sub.items() if k in names})
        return cls(**d)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(_drop_none(self.to_dict()))

    @classmethod
    def from_toml(cls, text: str) -> RunSpec:
        return cls.from_dict(tomllib.loads(text))


# Names of settings before they were grouped (records, checkpoints, study stores and config files written by
# earlier versions): old name -> (section, field). `extra` was an untyped table; its keys are mapped the same way.
LEGACY = {
    "warmup_steps": ("schedule", "warmup_steps"),
    "min_lr_ratio": ("schedule", "min_lr_ratio"),
    "decay_frac": ("schedule", "decay_frac"),
    "restart_steps": ("schedule", "restart_steps"),
    "restart_warmup_steps": ("schedule", "restart_warmup_steps"),
    "reset_schedule": ("schedule", "reset"),
    "branches": ("schedule", "branches"),
    "branch_budgets": ("schedule", "branch_budgets"),
    "device": ("runtime", "device"),
    "dtype": ("runtime", "dtype"),
    "compile": ("runtime", "compile"),
    "compile_mode": ("runtime", "compile_mode"),
    "activation_checkpointing": ("runtime", "activation_checkpointing"),
    "threads": ("runtime", "threads"),
    "log_every": ("logging", "log_every"),
    "eval_every": ("logging", "eval_every"),
    "eval_batches": ("logging", "eval_batches"),
    "checkpoint_every": ("logging", "checkpoint_every"),
    "checkpoint_minutes": ("logging", "checkpoint_minutes"),
    "tensorboard": ("logging", "tensorboard"),
    "isoflop_budget": ("origin", "planned_budget"),
    "grown_from": ("origin", "grown_from"),
    "growth": ("origin", "growth"),
    "tune": ("origin", "tune"),
}
# Shape fields written flat in hand-made config files, and their short names there.
LEGACY_SHAPE = {
    "d_model": "d_model",
    "n_layers": "n_layers",
    "layers": "n_layers",
    "n_heads": "n_heads",
    "heads": "n_heads",
    "vocab": "vocab",
    "seq_len": "seq_len",
    "arch": "arch",
    "mlp_ratio": "mlp_ratio",
    "bias": "bias",
    "pos": "pos",
    "tied": "tied",
    "latents": "latents",
    "prefix_dropout": "prefix_dropout",
}


def upgrade(d: dict[str, Any]) -> dict[str, Any]:
    """A RunSpec dict in today's form from any earlier one: flat settings move into their sections, `extra`'s
    keys too, `schedule = "wsd"` becomes schedule.kind, `budget` becomes budget_flops, and flat shape keys
    (d_model, layers, heads, ...) move into shape. Keys it does not know are kept for the caller to judge.
    A setting given both ways keeps the sectioned value."""
    d = dict(d)
    shape = dict(d.get("shape") or {})
    for k in [k for k in d if k in LEGACY_SHAPE]:
        shape.setdefault(LEGACY_SHAPE[k], d.pop(k))
    d["shape"] = shape
    if "budget" in d:
        d.setdefault("budget_flops", d.pop("budget"))
    sections = {name: dict(d.get(name) or {}) if isinstance(d.get(name), dict) else {} for name in SECTIONS}
    if isinstance(d.get("schedule"), str):
        sections["schedule"].setdefault("kind", d["schedule"])
    old = {k: d.pop(k) for k in list(d) if k in LEGACY}
    extra = d.pop("extra", None) or {}
    unknown_extra = {}
    for k, v in {**extra, **old}.items():
        if k in LEGACY:
            section, name = LEGACY[k]
            sections[section].setdefault(name, v)
        else:
            unknown_extra[k] = v
    if unknown_extra:
        d["extra"] = unknown_extra
    d.update(sections)
    return d


def unknown_keys(d: dict[str, Any]) -> list[str]:
    """Keys of an upgraded RunSpec dict that no field takes (dotted within sections), for a config file's check."""
    known = {f.name for f in fields(RunSpec)}
    bad = [k for k in d if k not in known]
    bad += [f"extra.{k}" for k in (d.get("extra") or {})]
    bad = [k for k in bad if k != "extra"]
    for name, kind in SECTIONS.items():
        names = {f.name for f in fields(kind)}
        bad += [f"{name}.{k}" for k in (d.get(name) or {}) if k not in names]
    shape_names = {f.name for f in fields(ModelShape)}
    bad += [f"shape.{k}" for k in (d.get("shape") or {}) if k not in shape_names]
    return bad


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
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
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
SCHEDULES = ("cosine", "wsd", "constant")


class SpecError(ConfigError):
    """One bad RunSpec setting: `key` (dotted within sections; shape fields by their bare name), its `value`
    and what it should be (`want`). The CLI names the flag or the config file key it came from."""

    def __init__(self, key: str, value: Any, want: str):
        self.key, self.value, self.want = key, value, want
        super().__init__(f"run setting {key} = {value!r} is not {want}", hint="fix it where it is set", keys=(key,))

    def __reduce__(self):
        return (self.__class__, (self.key, self.value, self.want))


def _num(v: Any, integer: bool) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (not integer and isinstance(v, float) and math.isfinite(v))


# setting -> (whole number?, test, words); every number must also be finite. Shape fields live under "shape".
_INT, _NUM = True, False
_RULES: dict[str, tuple[bool, Any, str]] = {
    "steps": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "tokens": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "budget_flops": (_NUM, lambda v: v >= 0, "a finite number >= 0"),
    "batch_size": (_INT, lambda v: v > 0, "a whole number > 0"),
    "grad_accum": (_INT, lambda v: v > 0, "a whole number > 0"),
    "lr": (_NUM, lambda v: v >= 0, "a finite number >= 0 (0: Kaplan's heuristic)"),
    "weight_decay": (_NUM, lambda v: v >= 0, "a finite number >= 0"),
    "beta1": (_NUM, lambda v: 0 <= v < 1, "a number from 0 up to 1 (excluded)"),
    "beta2": (_NUM, lambda v: 0 <= v < 1, "a number from 0 up to 1 (excluded)"),
    "grad_clip": (_NUM, lambda v: v >= 0, "a finite number >= 0 (0: off)"),
    "seed": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "schedule.warmup_steps": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "schedule.min_lr_ratio": (_NUM, lambda v: 0 <= v <= 1, "a number from 0 to 1"),
    "schedule.decay_frac": (_NUM, lambda v: 0 < v <= 1, "a number above 0, at most 1"),
    "schedule.restart_steps": (_INT, lambda v: v >= -1, "a whole number >= 0 (-1: no restart)"),
    "schedule.restart_warmup_steps": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "runtime.threads": (_INT, lambda v: v >= 0, "a whole number >= 0 (0: automatic)"),
    "logging.log_every": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "logging.eval_every": (_INT, lambda v: v >= 0, "a whole number >= 0 (0: only at the end)"),
    "logging.eval_batches": (_INT, lambda v: v > 0, "a whole number > 0"),
    "logging.checkpoint_every": (_INT, lambda v: v >= 0, "a whole number >= 0 (0: only at the end)"),
    "logging.checkpoint_minutes": (_NUM, lambda v: v >= 0, "a finite number >= 0 (0: every checkpoint_every steps)"),
    "shape.d_model": (_INT, lambda v: v > 0, "a whole number > 0"),
    "shape.n_layers": (_INT, lambda v: v > 0, "a whole number > 0"),
    "shape.vocab": (_INT, lambda v: v > 0, "a whole number > 0"),
    "shape.seq_len": (_INT, lambda v: v > 0, "a whole number > 0"),
    "shape.n_heads": (_INT, lambda v: v >= 0, "a whole number > 0 (0: d_model // 64)"),
    "shape.mlp_ratio": (_INT, lambda v: v > 0, "a whole number > 0"),
    "shape.latents": (_INT, lambda v: v >= 0, "a whole number >= 0"),
    "shape.prefix_dropout": (_NUM, lambda v: 0 <= v < 1, "a number from 0 up to 1 (excluded)"),
}
_CHOICES = {"optimizer": OPTIMIZERS, "schedule.kind": SCHEDULES, "runtime.dtype": DTYPES}
_BOOLS = (
    "schedule.reset",
    "runtime.compile",
    "runtime.activation_checkpointing",
    "runtime.allow_long",
    "logging.tensorboard",
)


def _get(d: dict[str, Any], key: str) -> tuple[bool, Any]:
    """(present, value) of a dotted key in a RunSpec dict."""
    section, _, name = key.rpartition(".")
    sub = d.get(section) if section else d
    if not isinstance(sub, dict) or name not in sub:
        return False, None
    return True, sub[name]


def _name(key: str) -> str:
    return key.removeprefix("shape.")  # shape fields go by their own names (d_model, n_layers, ...)


def check_fields(d: dict[str, Any]) -> None:
    """Check the settings present in a RunSpec dict (to_dict()'s form) before a spec is built from it: a TOML
    `d_model = "64"` must name its key, not fail later as arithmetic on a string."""
    for key, (integer, ok, words) in _RULES.items():
        present, v = _get(d, key)
        if present and not (_num(v, integer) and ok(v)):
            raise SpecError(_name(key), v, words)
    for key, choices in _CHOICES.items():
        present, v = _get(d, key)
        if present and v not in choices:
            raise SpecError(key, v, "one of " + ", ".join(choices))
    for key in _BOOLS:
        present, v = _get(d, key)
        if present and not isinstance(v, bool):
            raise SpecError(key, v, "true or false")
    present, dev = _get(d, "runtime.device")
    if present and not (isinstance(dev, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", dev)):
        raise SpecError("runtime.device", dev, "auto, cpu, cuda or cuda:N")
    for key in ("data", "convention", "run_id"):
        present, v = _get(d, key)
        if present and not isinstance(v, str):
            raise SpecError(key, v, "a string")


def validate_spec(spec: RunSpec) -> RunSpec:
    """Raise SpecError for the first setting of `spec` with a wrong type or an impossible value: negative steps,
    NaN lr, an unknown schedule, dtype or optimizer, a non-numeric TOML value, ... Checked when a run is planned
    and before it trains, so a study never holds runs that all fail."""
    check_fields(spec.to_dict())
    return spec
