"""Command-line interface. Each command lives in its own module and registers into cli.app.

Command modules import heavy libraries (torch, matplotlib) inside their functions so that
`scalinglab --help` and the pure-math commands start fast.
"""

from __future__ import annotations

import importlib
import sys

from scalinglab.cli.app import app
from scalinglab.cli.common import error_line
from scalinglab.errors import UserError

COMMAND_MODULES = [
    "flops_cmd",  # flops
    "plan_cmd",  # plan experiment / optimal
    "prep_cmd",  # prep
    "train_cmd",  # train
    "study_cmd",  # plan isoflop, sweep, status
    "fit_cmd",  # fit
    "report_cmd",  # report
    "demo_cmd",  # demo
    "grow_cmd",  # grow, plan staged
    "hf_cmd",  # export, eval perplexity / lambada, finetune-budget
    "hparams_cmd",  # plan tune (fit hparams dispatches here from fit_cmd)
]

for _m in COMMAND_MODULES:
    try:
        importlib.import_module(f"scalinglab.cli.{_m}")
    except ModuleNotFoundError as e:  # a command module not written yet
        if e.name != f"scalinglab.cli.{_m}":
            raise


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        # standalone_mode=False hands back typer.Exit(n)'s code instead of exiting with it
        rc = app(args=argv, standalone_mode=False)
    except UserError as e:
        sys.stderr.write(f"error: {error_line(e)}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors and the like
        # typer >= 0.2x vendors click as typer._click: match by class name so both flavours are caught.
        names = {c.__name__ for c in type(e).__mro__}
        if "Exit" in names:
            sys.exit(e.exit_code)
        if "ClickException" in names:
            sys.stderr.write(f"error: {e.format_message()}\n")
            sys.exit(2)
        if "Abort" in names:
            sys.stderr.write("aborted\n")
            sys.exit(1)
        raise
    if isinstance(rc, int) and not isinstance(rc, bool) and rc:
        sys.exit(rc)
