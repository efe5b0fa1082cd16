"""Every numeric option of every command, fed 0, -1, nan, inf, 1e400 and 'abc': values outside the option's
domain end in exit 2 with one `error:` line naming the option; none ends in a traceback.

DOMAINS says what each option accepts (independently of the code that checks it); an option missing from it
fails the test, so a new numeric option needs a declared domain."""

from __future__ import annotations

import functools
import math
import typing
from pathlib import Path

import pytest
import typer

from scalinglab.cli import app, main

DOMAINS: dict[str, dict[str, str]] = {
    "flops": {
        "--d-model": ">0",
        "--layers": ">0",
        "--vocab": ">0",
        "--seq-len": ">0",
        "--heads": ">=0",
        "--latents": ">=0",
        "--prefix-dropout": "[0,1)",
        "--mlp-ratio": ">0",
    },
    "prep": {"--val-fraction": "(0,1)", "--seed": "any", "--workers": ">0"},
    "train": {
        "--d-model": ">0",
        "--layers": ">0",
        "--heads": ">=0",
        "--seq-len": ">0",
        "--vocab": ">0",
        "--latents": ">=0",
        "--prefix-dropout": "[0,1)",
        "--batch-size": ">0",
        "--grad-accum": ">0",
        "--steps": ">0",
        "--tokens": ">0",
        "--budget": ">0",
        "--lr": ">=0",
        "--warmup-steps": ">=0",
        "--min-lr-ratio": "[0,1]",
        "--weight-decay": ">=0",
        "--grad-clip": ">=0",
        "--seed": ">=0",
        "--eval-every": ">=0",
        "--eval-batches": ">0",
        "--checkpoint-every": ">=0",
        "--checkpoint-minutes": ">=0",
        "--log-every": ">=0",
        "--threads": ">=0",
        "--restart-warmup-steps": ">=0",
        "--restart-steps": ">=0",
        "--nproc": ">0",
        "--mup-base-width": ">=0",
    },
    "sweep": {"--per-gpu": ">0", "--workers": ">=0"},
    "fit": {
        "--max-loss": ">0",
        "--budget-tol": ">=0",
        "--drop-highest": ">=0",
        "--bootstrap": ">=0",
        "--delta": ">0",
        "--ci": "(0,1)",
        "--seed": ">=0",
        "--jobs": "-1|>0",
        "--a": ">0",
        "--b": ">0",
        "--runs-bootstrap": ">=0",
        "--window": "0|>=3",
    },
    "report": {
        "--max-loss": ">0",
        "--data-tokens": ">0",
        "--budget-tol": ">=0",
        "--drop-highest": ">=0",
        "--bootstrap": ">=0",
        "--runs-bootstrap": ">=0",
        "--delta": ">0",
        "--ci": "(0,1)",
        "--seed": ">=0",
        "--jobs": "-1|>0",
        "--window": "0|>=3",
        "--holdout-above": ">0",
        "--holdout-largest": ">0",
    },
    "backtest": {
        "--holdout-above": ">0",
        "--holdout-largest": ">0",
        "--max-loss": ">0",
        "--budget-tol": ">=0",
        "--drop-highest": ">=0",
        "--bootstrap": ">=0",
        "--runs-bootstrap": ">=0",
        "--window": "0|>=3",
        "--delta": ">0",
        "--ci": "(0,1)",
        "--seed": ">=0",
        "--jobs": "-1|>0",
    },
    "predict": {"--n": ">0", "--d": ">0", "--u": ">0", "--at": ">0", "--ci": "(0,1)"},
    "demo": {"--max-minutes": ">0", "--workers": ">=0"},
    "grow": {"--width": ">0", "--depth": ">0", "--symmetry-noise": ">=0", "--seed": ">=0"},
    "finetune-budget": {
        "--steps": ">0",
        "--batch-size": ">0",
        "--seq-len": ">0",
        "--eval-samples": ">0",
        "--lr": ">0",
        "--budget-flops": ">=0",
        "--seed": ">=0",
        "--eval-every": ">=0",
    },
    "plan experiment": {
        "--vocab": ">0",
        "--seq-len": ">0",
        "--latents": ">=0",
        "--batch-size": ">0",
        "--ref-steps": ">0",
        "--prefix-dropout": "[0,1)",
        "--heads": ">=0",
    },
    "plan optimal": {
        "--budget": ">0",
        "--vocab": ">0",
        "--seq-len": ">0",
        "--latents": ">=0",
        "--prefix-dropout": "[0,1)",
        "--heads": ">=0",
        "--aspect": ">0",
        "--aspect-weight": ">=0",
        "--multiple": ">0",
        "--top": ">0",
        "--batch-size": ">=0",
    },
    "plan isoflop": {
        "--seq-len": ">0",
        "--batch-size": ">=0",
        "--grad-accum": ">0",
        "--latents": ">=0",
        "--min-steps": ">=0",
        "--max-epochs": ">0",
        "--lr": ">=0",
        "--beta2": "[0,1)",
        "--warmup-steps": ">=0",
        "--seed": ">=0",
        "--seeds": ">0",
        "--evals": ">=0",
        "--checkpoints": ">=0",
        "--checkpoint-minutes": ">=0",
        "--eval-batches": ">0",
        "--spread": ">0",
        "--width-step": ">=0",
        "--min-layers": ">=0",
        "--mup-base-width": ">=0",
    },
    "plan tune": {
        "--seq-len": ">0",
        "--min-steps": ">=0",
        "--max-epochs": ">0",
        "--seed": ">=0",
        "--evals": ">=0",
        "--checkpoints": ">=0",
        "--eval-batches": ">0",
        "--mup-base-width": ">=0",
    },
    "plan staged": {
        "--budget": ">=0",
        "--tokens": ">=0",
        "--vocab": ">0",
        "--seq-len": ">0",
        "--heads": ">=0",
        "--tokens-per-step": ">=0",
    },
    "eval perplexity": {"--seq-len": ">=0", "--stride": ">=0", "--max-tokens": ">=0", "--batch-size": ">0"},
    "eval lambada": {"--max-examples": ">=0", "--batch-size": ">0"},
}
OK = {
    ">0": lambda v: v > 0,
    ">=0": lambda v: v >= 0,
    "-1|>0": lambda v: v == -1 or v > 0,
    "(0,1)": lambda v: 0 < v < 1,
    "[0,1)": lambda v: 0 <= v < 1,
    "[0,1]": lambda v: 0 <= v <= 1,
    "any": lambda v: True,
    "0|>=3": lambda v: v == 0 or v >= 3,
}
VALUES = ["0", "-1", "nan", "inf", "1e400", "abc"]


@functools.cache
def numeric_options() -> dict[str, dict[str, type]]:
    """{command path: {flag: int | float}} from the CLI itself."""
    found: dict[str, dict[str, type]] = {}

    def walk(cmd, path: list[str]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
            return
        for p in cmd.params:
            t = p.type_descriptor.annotation
            t = next((a for a in typing.get_args(t) if a is not type(None)), t)
            if t in (int, float):
                found.setdefault(" ".join(path), {})[p.opts[0]] = t

    walk(typer.main.get_command(app), [])
    return found


def test_every_numeric_option_has_a_domain():
    found = {cmd: set(opts) for cmd, opts in numeric_options().items()}
    assert found == {cmd: set(opts) for cmd, opts in DOMAINS.items()}


def bases(tmp: Path) -> dict[str, list[str]]:
    """Arguments that pass every check but the one fuzzed, then fail cheaply on a missing input (or run a pure-math
    command to its end), so a valid value never starts real work."""
    nope = str(tmp / "nope")
    return {
        "flops": ["--d-model", "64", "--layers", "2", "--vocab", "100", "--seq-len", "32"],
        "prep": [nope, "--out", str(tmp / "D"), "-q"],
        "train": [],  # no --out: refused after the option checks
        "sweep": [nope],
        "fit": [nope + ".csv"],
        "report": [nope + ".csv", "--out", str(tmp / "r.html")],
        "backtest": [nope + ".csv"],
        "predict": [nope + ".json"],
        "demo": ["--out", str(tmp / "demo"), "--stage", "nope"],
        "grow": [nope, "--out", str(tmp / "G")],
        "finetune-budget": ["--model", nope, "--data", nope, "--out", str(tmp / "FT")],
        "plan experiment": [
            "--vocab",
            "32000",
            "--seq-len",
            "2048",
            "--latents",
            "512",
            "--ref",
            "512x9",
            "--ref-steps",
            "1000",
            "--models",
            "512x9,624x11",
        ],
        "plan optimal": ["--budget", "1e18", "--vocab", "32000", "--seq-len", "2048"],
        "plan isoflop": [
            "--data",
            nope,
            "--budgets",
            "1e15",
            "--shapes",
            "64x2",
            "--seq-len",
            "32",
            "--batch-size",
            "4",
            "--out",
            str(tmp / "S"),
        ],
        "plan staged": ["--shape", "256x4", "--budget", "1e18"],
        "plan tune": [
            "--data",
            nope,
            "--shapes",
            "64x2",
            "--budgets",
            "1e15",
            "--lrs",
            "1e-3",
            "--batch-sizes",
            "4",
            "--seq-len",
            "32",
            "--out",
            str(tmp / "T"),
        ],
        "eval perplexity": ["--model", nope, "--data", nope],
        "eval lambada": ["--model", nope, "--jsonl", nope],
    }


def valid(value: str, kind: type, rule: str) -> bool:
    try:
        v = kind(value)
    except ValueError:
        return False
    return math.isfinite(v) and OK[rule](v)


CASES = [(cmd, flag, value) for cmd, opts in DOMAINS.items() for flag in opts for value in VALUES]


@pytest.mark.parametrize("cmd, flag, value", CASES, ids=[f"{c}:{f}={v}" for c, f, v in CASES])
def test_numeric_option(cmd, flag, value, tmp_path, capsys):
    kind = numeric_options()[cmd][flag]
    try:
        main([*cmd.split(), *bases(tmp_path)[cmd], flag, value])
        code = 0
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    if valid(value, kind, DOMAINS[cmd][flag]):
        assert code == 0 or (code == 2 and len(lines) == 1 and lines[0].startswith("error: ")), err
    else:
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], err
    assert not any((tmp_path / name).exists() for name in ("D", "S", "T", "FT"))
