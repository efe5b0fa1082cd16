"""The package's structure: no import cycles between its modules (imports inside functions count), and the folder
file names spelled only by scalinglab.folders. Read from the source with ast, so nothing is imported."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "scalinglab"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted((SRC / PKG).rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:`: they never run."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    return skip


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its file (module level or inside functions).

    Importing a.b.c runs the __init__ of a.b first, so an import also depends on the packages above its target
    (but not on the importer's own packages, which are already running)."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_only(tree)
        own = {".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 1)}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = m.split(".") if path.name == "__init__.py" else m.split(".")[:-1]
                    base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for t in targets:
                r = resolve(t) if t.split(".")[0] == PKG else None
                if r is None or r == m:
                    continue
                graph[m].add(r)
                parts = r.split(".")
                graph[m].update(
                    a
                    for a in (".".join(parts[:i]) for i in range(2, len(parts)))
                    if a in mods and a not in own and a != m
                )
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports_inside_functions(tmp_path):
    """The checker itself: a cycle made only by a function-level import, and one through a package __init__."""
    pkg = tmp_path / PKG
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from scalinglab import b\n")
    (pkg / "b.py").write_text("def f():\n    from scalinglab.a import x\n")
    (pkg / "sub" / "__init__.py").write_text("def g():\n    from scalinglab.sub import impl\n")
    (pkg / "sub" / "impl.py").write_text("from scalinglab import c\n")
    (pkg / "c.py").write_text("def h():\n    from scalinglab.sub.other import y\n")
    (pkg / "sub" / "other.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from scalinglab import a\n"
    )
    global SRC
    saved, SRC = SRC, tmp_path
    try:
        found = cycles(import_graph(_modules()))
    finally:
        SRC = saved
    assert sorted(found) == [
        ["scalinglab.a", "scalinglab.b"],
        ["scalinglab.c", "scalinglab.sub", "scalinglab.sub.impl"],
    ]


def test_no_import_cycles():
    found = cycles(import_graph(_modules()))
    assert found == [], f"import cycles (imports inside functions count): {found}"


FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
OTHER_TOOLS = re.compile(r"`(?!scalinglab)[^`]*`")  # another tool's command line, e.g. `ray start --head`


def test_library_errors_name_no_flags():
    """Library code raises domain errors (problem, hint, keys); only scalinglab.cli names flags (cli.common.flag)."""
    offenders = []
    for m, path in _modules().items():
        if m.startswith(f"{PKG}.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                texts = [
                    OTHER_TOOLS.sub("", n.value)
                    for n in ast.walk(node.exc)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)
                ]
                flags = sorted({f for t in texts for f in FLAG.findall(t)})
                if flags:
                    offenders.append(f"{m}:{node.lineno} {flags}")
    assert offenders == []


def test_cli_adds_the_flags_of_the_keys(capsys):
    from scalinglab.cli.common import error_line, flag
    from scalinglab.errors import ConfigError

    e = ConfigError(
        "a run needs exactly one of steps, tokens, budget_flops (got none)",
        hint="give one",
        keys=("steps", "tokens", "budget_flops"),
    )
    assert str(e) == "a run needs exactly one of steps, tokens, budget_flops (got none); give one"
    assert error_line(e) == str(e) + " (--steps, --tokens, --budget)"
    assert [flag(k) for k in ("n_layers", "schedule.warmup_steps", "max_bytes")] == [
        "--layers",
        "--warmup-steps",
        "--max-bytes",
    ]


FOLDER_FILES = (
    "record.json",
    "metrics.jsonl",
    "meta.json",
    "study.toml",
    "study.db",
    "checkpoint.pt",
    "config.toml",
    "branches.jsonl",
    "train.log",
    ".ddp-spec.toml",
)


def test_only_folders_spells_folder_file_names():
    """RunDir, StudyDir and DataDir own their file names: no other module's string constants hold them."""
    offenders = []
    for m, path in _modules().items():
        if m == f"{PKG}.folders":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                hits = [f for f in FOLDER_FILES if f in node.value]
                if hits:
                    offenders.append(f"{m}:{node.lineno} {hits}")
    assert offenders == []
