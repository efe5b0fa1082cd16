"""Rerun the console examples of the docs pages and write their real output back, so the pages cannot drift.

A page marks an example with an HTML comment just above its fenced block:

    <!-- gen: scalinglab flops --arch gpt --d-model 768 --layers 12 --vocab 50257 -->
    ```console
    (replaced by "$ COMMAND" and what it printed)
    ```

`<!-- gen check: ... -->` marks an example cheap enough for the test suite to rerun (tests/test_docs.py fails when
its output changed). `<!-- gen-setup: COMMAND -->` runs a command first and shows nothing (e.g. a `prep` the
examples read). A ```` ```pycon ```` block under `<!-- gen python -->` (or `<!-- gen check python -->`) is a Python
session: its `>>>` lines run in one namespace per page and their printed output is rewritten (a notebook, kept
true).

Commands run with bash in one scratch folder, where `data/` is the folder of public datasets beside the checkout
(../shared/data, or $SCALINGLAB_SHARED_DATA) and `scalinglab` is this checkout's program. CPU-cheap commands only.

    python docs/gen_examples.py            # rewrite every page
    python docs/gen_examples.py --check    # exit 1 if a `gen check` example differs (what the test runs)
    python docs/gen_examples.py docs/howto/train.md --list
"""

from __future__ import annotations

import argparse
import code
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SHARED = Path(os.environ.get("SCALINGLAB_SHARED_DATA") or ROOT.parent / "shared" / "data")
MARK = re.compile(
    r"^<!-- gen(?P<check> check)?: (?P<cmd>.+?) -->\n```(?P<lang>\w*)\n(?P<body>.*?)^```\n", re.MULTILINE | re.DOTALL
)
SETUP = re.compile(r"^<!-- gen-setup: (?P<cmd>.+?) -->$", re.MULTILINE)
PYBLOCK = re.compile(r"^<!-- gen(?P<check> check)? python -->\n```pycon\n(?P<body>.*?)^```\n", re.MULTILINE | re.DOTALL)
WIDTH = "100"


@dataclass
class Example:
    page: Path
    cmd: str
    check: bool
    old: str
    new: str = ""


def workdir() -> Path:
    w = Path(tempfile.mkdtemp(prefix="scalinglab-docs-"))
    (w / "bin").mkdir()
    prog = w / "bin" / "scalinglab"
    prog.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m scalinglab "$@"\n')
    prog.chmod(0o755)
    if SHARED.is_dir():
        (w / "data").symlink_to(SHARED)
    return w


def run(cmd: str, w: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{w / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "COLUMNS": WIDTH,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "OMP_NUM_THREADS": "1",
    }
    p = subprocess.run(["bash", "-c", cmd], cwd=w, env=env, capture_output=True, text=True, timeout=1800, check=False)
    out = (p.stdout + p.stderr).replace(str(w) + "/", "").replace(str(w), ".")
    return "\n".join(line.rstrip() for line in out.splitlines()) + "\n"


def run_python(body: str, w: Path, namespace: dict) -> str:
    """Replay a >>> session in folder w: each statement runs as the REPL would, its output replaces the old one.
    The blocks of one page share `namespace`, like the cells of a notebook."""
    lines, stmts, cur = body.splitlines(), [], None
    for line in lines:
        if line.startswith(">>> "):
            cur = [line[4:]]
            stmts.append(cur)
        elif line.startswith("...") and cur is not None:
            cur.append(line[4:])
    interp, out = code.InteractiveInterpreter(locals=namespace), []
    sys.path.insert(0, str(ROOT / "src"))
    here = os.getcwd()
    os.chdir(w)
    try:
        return _replay(interp, stmts, out)
    finally:
        os.chdir(here)


def _replay(interp: code.InteractiveInterpreter, stmts: list[list[str]], out: list[str]) -> str:
    for st in stmts:
        out += [">>> " + st[0]] + ["... " + s for s in st[1:]]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            src = "\n".join(st) + ("\n" if len(st) > 1 else "")
            interp.runsource(src, symbol="single")
        out += [line.rstrip() for line in buf.getvalue().splitlines()]
    return "\n".join(out) + "\n"


def process(page: Path, w: Path, only_check: bool, write: bool) -> list[Example]:
    text = page.read_text()
    found: list[Example] = []
    namespace: dict = {}
    for m in SETUP.finditer(text):
        if not only_check:
            run(m["cmd"], w)

    def sub(m: re.Match) -> str:
        ex = Example(page, m["cmd"], bool(m["check"]), m["body"])
        found.append(ex)
        if only_check and not ex.check:
            return m.group(0)
        ex.new = f"$ {ex.cmd}\n" + run(ex.cmd, w)
        return f"<!-- gen{m['check'] or ''}: {ex.cmd} -->\n```{m['lang']}\n{ex.new}```\n"

    def sub_py(m: re.Match) -> str:
        ex = Example(page, "python session", bool(m["check"]), m["body"])
        found.append(ex)
        if only_check and not ex.check:
            return m.group(0)
        ex.new = run_python(m["body"], w, namespace)
        return f"<!-- gen{m['check'] or ''} python -->\n```pycon\n{ex.new}```\n"

    new = PYBLOCK.sub(sub_py, MARK.sub(sub, text))
    if write and new != text:
        page.write_text(new)
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pages", nargs="*", type=Path, help="pages to process (default: every page under docs/)")
    ap.add_argument("--check", action="store_true", help="rerun only `gen check` examples; exit 1 if one changed")
    ap.add_argument("--list", action="store_true", help="list the examples, run nothing")
    a = ap.parse_args(argv)
    pages = [p.resolve() for p in a.pages] or sorted(DOCS.rglob("*.md"))
    if a.list:
        for page in pages:
            text = page.read_text()
            for m in MARK.finditer(text):
                print(f"{page.relative_to(ROOT)}: {'check ' if m['check'] else ''}{m['cmd']}")
            for _ in PYBLOCK.finditer(text):
                print(f"{page.relative_to(ROOT)}: python session")
        return 0
    w, drift = workdir(), []
    for page in pages:
        for ex in process(page, w, only_check=a.check, write=not a.check):
            if ex.new and ex.new != ex.old:
                drift.append(ex)
                print(f"{'differs' if a.check else 'updated'}: {page.relative_to(ROOT)}: {ex.cmd}", file=sys.stderr)
    if a.check and drift:
        for ex in drift:
            import difflib

            sys.stderr.writelines(
                difflib.unified_diff(ex.old.splitlines(True), ex.new.splitlines(True), f"{ex.page.name} (page)", "now")
            )
        print("run `python docs/gen_examples.py` to write the real outputs into the pages", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
