"""Command-line interface. Each command lives in its own module and registers into cli.app.

Command modules import heavy libraries (torch, matplotlib) inside their functions so that
`scalinglab --help` and the pure-math commands start fast.
"""

from __future__ import annotations

import importlib
import sys

from scalinglab.cli.app import app
from scalinglab.cli.common import error_line
from scalinglab.errors import Interrupted, UserError

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


# `scalinglab --help` lists the study's path first, in the order a user runs it; every other command after it
PATH_COMMANDS = ("prep", "plan", "sweep", "status", "fit", "backtest", "predict", "report", "demo")


def command():
    """The click command behind the typer app, with help that shows a value's kind (INT, NUM, PATH, TEXT) and
    nothing for on/off flags, instead of typer's `<bool>`/`<str>` tags, and the commands in two panels (the study's
    path, then the other tools). The docs' CLI reference reads it too."""
    import typer.main

    cmd = typer.main.get_command(app)
    try:
        _tidy(cmd)
    except (AttributeError, ImportError):  # typer/click releases without these internals: plain help, same CLI
        pass
    first = [n for n in PATH_COMMANDS if n in cmd.commands]
    cmd.commands = {n: cmd.commands[n] for n in [*first, *(n for n in cmd.commands if n not in first)]}
    for name, sub in cmd.commands.items():
        sub.rich_help_panel = "The study, step by step" if name in first else "Other tools"
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
    if cmd.help and not getattr(cmd, "short_help", None):
        # the command lists show the first paragraph as one line (docstrings wrap theirs at 120 columns)
        cmd.short_help = " ".join(cmd.help.strip().split("\n\n")[0].split())
    for sub in getattr(cmd, "commands", {}).values():
        _tidy(sub)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback.

    OS errors (full disk, read-only folder, wrong kind of path) are user errors too; a stop signal prints
    what was kept and exits 128 + its number (130 for Ctrl-C, 143 for SIGTERM)."""
    try:
        # standalone_mode=False hands back typer.Exit(n)'s code instead of exiting with it
        rc = command().main(args=argv, prog_name="scalinglab", standalone_mode=False)
    except UserError as e:
        _fail(error_line(e))
    except Interrupted as e:
        sys.stderr.write(f"{e.message}\n")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except SystemExit:
        raise
    except OSError as e:  # ENOSPC, EROFS, EACCES, EISDIR, ...: the disk or the path, not a bug
        from scalinglab.fileio import os_error_message

        _fail(os_error_message(e))
    except Exception as e:  # click usage errors and the like
        # typer >= 0.2x vendors click as typer._click: match by class name so both flavours are caught.
        names = {c.__name__ for c in type(e).__mro__}
        if "Exit" in names:
            sys.exit(e.exit_code)
        if "ClickException" in names:
            msg = e.format_message()
            ctx = getattr(e, "ctx", None)
            if ";" not in msg and ctx is not None:  # name the fix: where the options are listed
                msg = f"{msg.rstrip('.')}; see `{ctx.command_path} --help`"
            _fail(msg)
        if "Abort" in names:
            sys.stderr.write("aborted\n")
            sys.exit(1)
        raise
    if isinstance(rc, int) and not isinstance(rc, bool) and rc:
        if rc == 130:  # typer's answer to a KeyboardInterrupt: say so
            sys.stderr.write("interrupted\n")
        sys.exit(rc)


def _fail(msg: str) -> None:
    """The one stderr line of a refused command (a message never spans lines), then exit 2."""
    line = " ".join(str(msg).split())
    sys.stderr.write(f"error: {line}\n")
    sys.exit(2)
