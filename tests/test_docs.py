"""The documentation site: `mkdocs build --strict` passes (no broken link, no missing page), every CLI command has
a generated reference page, the README links into pages that exist, its speed table is the committed benchmark
JSON, and the cheap console examples of the pages still print what the pages show."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None
    or importlib.util.find_spec("material") is None
    or importlib.util.find_spec("mkdocstrings") is None,
    reason="mkdocs, mkdocs-material or mkdocstrings is not installed "
    "(pip install -e '.[docs]'; `make test` installs them)",
)


def commands() -> list[tuple[str, ...]]:
    import hooks

    from scalinglab.cli import command

    return [path for path, _ in hooks.walk(command())]


def test_every_command_is_walked():
    paths = {" ".join(p) for p in commands()}
    assert {
        "prep",
        "train",
        "sweep",
        "status",
        "fit",
        "report",
        "demo",
        "plan isoflop",
        "plan experiment",
        "plan optimal",
        "plan staged",
        "eval perplexity",
        "eval lambada",
        "finetune-budget",
        "grow",
        "export",
        "flops",
    } <= paths


def test_command_page_has_every_option_and_its_default():
    import hooks

    from scalinglab.cli import command

    root = command()
    cmd = root.commands["status"]
    page = hooks.command_page(("status",), cmd)
    assert page.startswith("# `scalinglab status`") and "scalinglab status [OPTIONS] STUDY" in page
    for opt in ("`--json`", "`--csv`"):
        assert opt in page
    iso = hooks.command_page(("plan", "isoflop"), root.commands["plan"].commands["isoflop"])
    assert re.search(r"\| `--min-steps` \| INT \| `50` \|", iso)
    assert re.search(r"\| `--compile` / `--no-compile` \|  \| `--no-compile` \|", iso)
    assert "\\|" in iso  # help text with "a | b" stays inside its table cell


@needs_mkdocs
def test_site_builds_strict_with_a_page_per_command(tmp_path):
    site = tmp_path / "site"
    p = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    for path in commands():
        page = site / "reference" / "cli" / "-".join(path) / "index.html"
        assert page.is_file(), f"no reference page for `scalinglab {' '.join(path)}`"
        assert f"scalinglab {' '.join(path)}" in page.read_text()
    assert (site / "reference" / "api" / "index.html").read_text().count('class="doc doc-heading"') >= 10
    assert (site / "examples" / "python-code-gpu" / "figures" / "isoflop.png").is_file()


def test_every_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with mkdocs (pip install -e '.[docs]')")

    class Loader(yaml.SafeLoader):  # mkdocs.yml may hold !!python tags; they are not pages
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)["nav"]

    def pages(item):
        if isinstance(item, str):
            yield item
        elif isinstance(item, list):
            for x in item:
                yield from pages(x)
        elif isinstance(item, dict):
            for v in item.values():
                yield from pages(v)

    listed = set(pages(nav))
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk - listed == set(), "pages missing from mkdocs.yml's nav"
    assert listed - on_disk == set(), "nav entries without a page"


def test_readme_links_point_into_the_docs():
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(((?:docs|examples)/[^)#]+)", readme):
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_cheap_examples_have_not_drifted():
    import gen_examples

    assert gen_examples.main(["--check"]) == 0, "a docs example prints something else now: run docs/gen_examples.py"


def test_readme_speed_table_is_the_committed_benchmark():
    """Every row of the README's side-by-side table is the committed same-run JSON, rounded as shown."""
    import json

    doc = json.loads((ROOT / "bench" / "results" / "throughput-nvidia-h200.json").read_text())
    peak = doc["matmul_peak_flops"]
    got = {(r["impl"], r["d_model"], r["layers"], r["vocab"]): r for r in doc["rows"] if "error" not in r}
    rows = re.findall(
        r"^\| (\d+)x(\d+) \| (\d+) \| (\d+) \| ([\d.]+) \(([\d.]+)%\) \| ([\d.]+) \(([\d.]+)%\) \| ([\d.]+) \|$",
        (ROOT / "README.md").read_text(),
        re.M,
    )
    assert len(rows) == 8, "the README's speed table should have 8 rows (4 shapes x 2 vocabularies)"
    for d, L, v, batch, ours, ours_pct, hf, hf_pct, ratio in rows:
        a, b = (got[(i, int(d), int(L), int(v))] for i in ("scalinglab-graph", "hf-gpt2"))
        assert int(batch) == a["batch"] == b["batch"]
        for r, mtok, pct in ((a, ours, ours_pct), (b, hf, hf_pct)):
            assert f"{r['tokens_per_s'] / 1e6:.2f}" == mtok and f"{100 * r['model_flops_per_s'] / peak:.1f}" == pct
        assert f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}" == ratio
