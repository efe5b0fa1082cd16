"""mkdocs hooks: the CLI reference, one page per command, generated at build time from the Typer app (so it never
drifts from `--help`), and the repository's examples/ folder mounted into the site so pages can link its files."""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLI_DIR = "reference/cli"
PLACEHOLDER = "CLI reference"  # the nav section whose children this hook fills in
MOUNTS = ("examples",)  # repository folders served under the same path in the site


def _root_command():
    sys.path.insert(0, str(ROOT / "src"))  # the checkout's sources, also when not installed
    from scalinglab.cli import command

    return command()


def walk(cmd, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf command as (('plan', 'isoflop'), click command), in the app's order; hidden ones left out."""
    subs = getattr(cmd, "commands", None)
    if not subs:
        return [(path, cmd)]
    out = []
    for name, sub in subs.items():
        if not getattr(sub, "hidden", False):
            out += walk(sub, (*path, name))
    return out


def page_name(path: tuple[str, ...]) -> str:
    return f"{CLI_DIR}/{'-'.join(path)}.md"


def _md(text: str) -> str:
    """Help text as Markdown table-cell text: HTML-escaped, pipes and emphasis characters escaped."""
    text = html.escape(" ".join((text or "").split()), quote=False)
    return re.sub(r"([|*_\[\]`])", r"\\\1", text)


def _default(p) -> str:
    if p.required:
        return "required"
    if getattr(p, "is_flag", False) and p.secondary_opts:
        return f"`{(p.opts if p.default else p.secondary_opts)[0]}`"
    if getattr(p, "is_flag", False):
        return "off" if not p.default else "on"
    d = p.default
    if d is None or callable(d):
        return "—"  # the help says what happens without it
    if d == "":
        return '`""`'
    if isinstance(d, (list, tuple)):
        return ", ".join(f"`{x}`" for x in d) or "none"
    return f"`{d}`"


def _kind(p) -> str:
    k = p.display_type_rich(None) if hasattr(p, "display_type_rich") else ""
    return k or ""


def command_page(path: tuple[str, ...], cmd) -> str:
    name = " ".join(("scalinglab", *path))
    from typer._click import Context

    ctx = Context(cmd, info_name=name)
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    lines = [f"# `{name}`", "", "<!-- generated from the Typer app by docs/hooks.py: edit the command's help -->", ""]
    help_text = (cmd.help or "").strip()
    if help_text:
        lines += [html.escape(help_text, quote=False), ""]
    lines += ["```", f"{name} {usage}", "```", ""]
    args = [p for p in cmd.params if p.param_type_name == "argument"]
    opts = [p for p in cmd.params if p.param_type_name == "option" and not getattr(p, "hidden", False)]
    if args:
        lines += ["## Arguments", "", "| argument | kind | required | description |", "|---|---|---|---|"]
        for p in args:
            lines.append(
                f"| `{p.metavar or p.name.upper()}` | {_kind(p)} | {'yes' if p.required else 'no'} "
                f"| {_md(getattr(p, 'help', '') or '')} |"
            )
        lines.append("")
    if opts:
        lines += ["## Options", "", "| option | kind | default | description |", "|---|---|---|---|"]
        for p in opts:
            names = " / ".join(f"`{o}`" for o in (*p.opts, *p.secondary_opts))
            lines.append(f"| {names} | {_kind(p)} | {_default(p)} | {_md(getattr(p, 'help', '') or '')} |")
        lines.append("")
    return "\n".join(lines)


def index_page(commands) -> str:
    intro = (
        "Every command of `scalinglab`, generated from the program itself at each docs build: the same text as "
        "`scalinglab COMMAND --help`. `scalinglab --version` prints the version."
    )
    lines = ["# CLI reference", "", intro, "", "| command | what it does |", "|---|---|"]
    for path, cmd in commands:
        first = getattr(cmd, "short_help", None) or (cmd.help or "").strip().split("\n")[0]
        lines.append(f"| [`scalinglab {' '.join(path)}`]({'-'.join(path)}.md) | {_md(first)} |")
    return "\n".join(lines) + "\n"


# -- mkdocs events ---------------------------------------------------------------------------------------------------

_COMMANDS: list = []


def on_config(config, **kwargs):
    _COMMANDS[:] = walk(_root_command())
    entries = [{"Overview": f"{CLI_DIR}/index.md"}] + [
        {f"scalinglab {' '.join(path)}": page_name(path)} for path, _ in _COMMANDS
    ]

    def fill(nav):
        for item in nav or []:
            if isinstance(item, dict):
                for key, val in item.items():
                    if key == PLACEHOLDER:
                        item[key] = entries
                    elif isinstance(val, list):
                        fill(val)

    fill(config["nav"])
    return config


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    files.append(File.generated(config, f"{CLI_DIR}/index.md", content=index_page(_COMMANDS)))
    for path, cmd in _COMMANDS:
        files.append(File.generated(config, page_name(path), content=command_page(path, cmd)))
    for mount in MOUNTS:
        for src in sorted((ROOT / mount).rglob("*")):
            if src.is_file() and "__pycache__" not in src.parts:
                files.append(File.generated(config, src.relative_to(ROOT).as_posix(), abs_src_path=str(src)))
    return files
