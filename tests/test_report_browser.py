"""Open report pages in headless Chromium: no console errors, no script errors, every image decoded.

Drives Debian's `chromium --headless --dump-dom` on a copy of the page with a probe script injected
first in <head>; the probe's findings come back in the dumped DOM. Skipped only when chromium is absent."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SHARED_DATA, needs_shared
from scalinglab.cli import main

DATA = SHARED_DATA
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE = """<script>
window.__probe = {errors: []};
addEventListener('error', function (e) {
  var t = e.target && e.target !== window ? (e.target.tagName + ' ' + (e.target.alt || e.target.src || '')) : '';
  __probe.errors.push('error: ' + (e.message || t));
}, true);
addEventListener('unhandledrejection', function (e) { __probe.errors.push('rejection: ' + e.reason); });
['error', 'warn'].forEach(function (k) {
  var f = console[k];
  console[k] = function () { __probe.errors.push('console.' + k + ': ' + Array.from(arguments).join(' ')); f.apply(console, arguments); };
});
addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var r = {errors: __probe.errors, images: imgs.length,
           broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0); })
                       .map(function (i) { return i.alt; }),
           sizes: imgs.map(function (i) { return [i.naturalWidth, i.naturalHeight]; })};
  var p = document.createElement('pre'); p.id = '__probe'; p.textContent = JSON.stringify(r);
  document.body.appendChild(p);
});
</script>"""


def open_in_chromium(page: Path, tmp: Path) -> tuple[dict, str]:
    """(probe findings, chromium's stderr) for `page` loaded from a copy in another folder, so that
    anything not inline in the page (a relative image path, a stylesheet) fails to load."""
    html = page.read_text(encoding="utf-8")
    assert "<head>" in html
    probe_copy = tmp / "probed" / "page.html"
    probe_copy.parent.mkdir(parents=True, exist_ok=True)
    probe_copy.write_text(html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp / 'chrome-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe_copy.as_uri(),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="__probe">(.*?)</pre>', p.stdout, re.S)
    assert m, f"probe did not report (chromium rc {p.returncode}): {p.stderr[-2000:]}"
    import html as h

    return json.loads(h.unescape(m.group(1))), p.stderr


def console_lines(stderr: str) -> list[str]:
    """Chromium logs every console message of the page as ...:CONSOLE...; the report writes none."""
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_probe_catches_a_broken_page(tmp_path):
    """The harness itself must fail on a page with a missing image and a console error."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><title>x</title></head><body><img alt="gone" src="missing.png">'
        '<script>console.error("boom")</script></body></html>'
    )
    probe, stderr = open_in_chromium(bad, tmp_path)
    assert probe["broken"] == ["gone"]
    assert any("boom" in e for e in probe["errors"])
    assert console_lines(stderr)


@needs_shared
@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
@pytest.mark.parametrize("kind", ["runs", "curves"])
def test_report_loads_cleanly_in_chromium(tmp_path, kind):
    out = tmp_path / "report.html"
    if kind == "runs":
        args = [
            "report",
            str(DATA / "minchilla" / "isoflop_runs.csv"),
            "--n-col",
            "params",
            "--d-col",
            "tokens",
            "--c-col",
            "budget_flops",
            "--loss-col",
            "final_loss",
            "--max-loss",
            "2",
            "--out",
            str(out),
        ]
    else:
        args = [
            "report",
            "--curves",
            str(DATA / "perceiver-ar-scaling" / "validation"),
            "--inline",
            "svg",
            "--out",
            str(out),
        ]
    try:
        main(args)
    except SystemExit as e:
        assert e.code in (0, None)
    probe, stderr = open_in_chromium(out, tmp_path)
    assert probe["errors"] == []
    assert console_lines(stderr) == []
    assert probe["images"] >= 3
    assert probe["broken"] == []
    assert all(w > 100 and h > 100 for w, h in probe["sizes"])
