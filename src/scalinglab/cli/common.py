"""Helpers shared by command modules: JSON output, shape and number parsing, checks of numeric options."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from scalinglab.errors import UserError

# Settings whose flag is not "--" + the key with dashes (the library names keys, the CLI names flags).
FLAGS = {
    "budget_flops": "--budget",
    "n_layers": "--layers",
    "n_heads": "--heads",
    "warmup_steps": "--warmup-steps",
    "schedule.kind": "--schedule",
    "schedule.warmup_steps": "--warmup-steps",
    "schedule.restart_warmup_steps": "--restart-warmup-steps",
    "schedule.restart_steps": "--restart-steps",
}


def flag(key: str) -> str:
    """The CLI flag of a setting named by the library (RunSpec / plan field)."""
    return FLAGS.get(key) or "--" + key.rpartition(".")[2].replace("_", "-")


def error_line(e: UserError) -> str:
    """`<problem>; <hint> (<flags>)`: the library's error with the flags that set what it names, on one line."""
    msg = str(e)
    if e.keys:
        msg += f" ({', '.join(dict.fromkeys(flag(k) for k in e.keys))})"
    return " ".join(msg.split("\n"))


def emit_json(obj: Any) -> None:
    """Print JSON for scripts (NaN/inf become null)."""
    sys.stdout.write(json.dumps(_clean(obj), indent=2) + "\n")


def _clean(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return _clean(x.item())
    return x


def parse_shape(text: str) -> tuple[int, int]:
    """'512x9' -> (d_model, n_layers)."""
    try:
        d, l = text.lower().split("x")
        d_i, l_i = int(d), int(l)
    except ValueError:
        raise UserError(f"bad shape {text!r}: write D_MODELxLAYERS, e.g. 512x9") from None
    if d_i <= 0 or l_i <= 0:
        raise UserError(f"bad shape {text!r}: d_model and layers must be positive")
    return d_i, l_i


def parse_shapes(text: str) -> list[tuple[int, int]]:
    return [parse_shape(s) for s in text.split(",") if s.strip()]


def parse_floats(text: str, what: str) -> list[float]:
    """'1e15,3e15' -> [1e15, 3e15]: positive, finite numbers (budgets, FLOPs, token counts)."""
    try:
        vals = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"bad {what} {text!r}: give comma-separated numbers, e.g. 1e15,3e15") from None
    if not vals:
        raise UserError(f"no {what} given: give comma-separated numbers, e.g. 1e15,3e15")
    bad = [v for v in vals if not (math.isfinite(v) and v > 0)]
    if bad:
        raise UserError(f"bad {what} {text!r}: {bad[0]:g} is not a positive finite number; give e.g. 1e15,3e15")
    return vals


# What a numeric option may hold: (words for the message, test). Every value must also be finite.
RULES: dict[str, tuple[str, Any]] = {
    ">0": ("a positive number", lambda v: v > 0),
    ">=0": ("0 or more", lambda v: v >= 0),
    "-1|>0": ("-1 (all) or a positive number", lambda v: v == -1 or v > 0),
    "(0,1)": ("between 0 and 1, both excluded", lambda v: 0 < v < 1),
    "[0,1)": ("from 0 up to but excluding 1", lambda v: 0 <= v < 1),
    "[0,1]": ("between 0 and 1", lambda v: 0 <= v <= 1),
    "any": ("a finite number", lambda v: True),
    "0|>=3": ("0 (all) or 3 or more", lambda v: v == 0 or v >= 3),
}


def check_numbers(*checks: tuple[str, Any, str]) -> None:
    """(flag, value, rule) for each numeric option, rule a key of RULES; None values (not given) pass.
    Raises the one-line UserError for the first bad value: NaN, infinity, or outside the rule."""
    for opt, value, rule in checks:
        if value is None or isinstance(value, bool):
            continue
        words, ok = RULES[rule]
        v = float(value)
        if not math.isfinite(v):
            raise UserError(f"{opt} {_show(value)} is not a finite number; give {words}")
        if not ok(v):
            raise UserError(f"{opt} {_show(value)} is out of range; give {words}")


def _show(v: Any) -> str:
    return format(v, "g") if isinstance(v, float) else str(v)
