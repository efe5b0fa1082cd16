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


_KINDS = {"int": "INT", "float": "NUM", "path": "PATH", "str": "TEXT", "file": "PATH", "dir": "PATH"}


def command():
    """The click command behind the typer app, with help that shows a value's kind (INT, NUM, PATH, TEXT) and
    nothing for on/off flags, instead of typer's `<bool>`/`<str>` tags. The docs' CLI reference reads it too."""
    import typer.main

    cmd = typer.main.get_command(app)
    _tidy(cmd)
    return cmd


def _kind(p) -> str:
    if getattr(p, "is_flag", False):
        return ""
    label = p.display_type(None).strip("<>")
    return _KINDS.get(label, label.upper())


def _tidy(cmd) -> None:
    from typer._click import Context

    help_opt = cmd.get_help_option(Context(cmd))  # made lazily by click: make it now to tidy it too
    for p in [*cmd.params, *([help_opt] if help_opt else [])]:
        kind = p.metavar if p.metavar and p.param_type_name == "option" else _kind(p)
        p.display_type_rich = lambda ctx, _k=kind: _k  # the help table's type column
        if p.param_type_name == "argument":
            name = p.metavar or (p.name or "").upper()
            p.metavar = name
            usage = name if p.required else f"[{name}]"
            p._usage_display_name = lambda _u=usage: _u  # `status STUDY`, not typer's `status {study}`
    for sub in getattr(cmd, "commands", {}).values():
        _tidy(sub)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        # standalone_mode=False hands back typer.Exit(n)'s code instead of exiting with it
        rc = command().main(args=argv, prog_name="scalinglab", standalone_mode=False)
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
