"""The report page: sections of text, tables and figures, assembled into ONE self-contained HTML file
(figures inline as base64 data URIs, CSS inline, no scripts, nothing fetched)."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalinglab.fileio import atomic_write_text
from scalinglab.report.figures import Rendered, write_figures

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
.meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em;max-width:100%}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;white-space:nowrap}
th{white-space:normal;vertical-align:bottom}td.l{white-space:normal;overflow-wrap:anywhere;min-width:8em}
.tw{overflow-x:auto}th{background:#f4f4f4}
td.l,th.l{text-align:left}caption{caption-side:top;text-align:left;color:#555;padding:.2em 0}
figure{margin:1em 0;display:inline-block;vertical-align:top;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.88em;max-width:640px}
.warn{background:#fff6e0;border-left:4px solid #e6a700;padding:.5em 1em}
.warn li{margin:.2em 0}.summary td{text-align:left}
code{background:#f4f4f4;padding:0 .2em}
"""


@dataclass
class Table:
    """Rows of already formatted cells; `left` names the columns aligned left (text)."""

    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    left: tuple[str, ...] = ()

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], caption: str = "", left: tuple[str, ...] = ()) -> Table:
        cols: list[str] = []
        for r in records:
            cols += [k for k in r if k not in cols]
        return cls(cols, [[r.get(c, "") for c in cols] for r in records], caption, left)


@dataclass
class Section:
    title: str
    text: str = ""  # paragraphs separated by blank lines; HTML-escaped
    tables: list[Table] = field(default_factory=list)
    figures: list[Rendered] = field(default_factory=list)


@dataclass
class Report:
    title: str
    source: str = ""
    summary: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def figures(self) -> list[Rendered]:
        return [f for s in self.sections for f in s.figures]

    def to_html(self, inline: str = "png") -> str:
        e = html.escape
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{e(self.title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        if self.source:
            out.append(f'<p class="meta">{e(self.source)}</p>')
        if self.summary:
            out.append(_table_html(Table(["", ""], [[k, v] for k, v in self.summary], left=("",)), cls="summary"))
        if self.warnings:
            out.append('<div class="warn"><strong>Warnings</strong><ul>')
            out += [f"<li>{e(w)}</li>" for w in self.warnings]
            out.append("</ul></div>")
        for s in self.sections:
            out.append(f"<section><h2>{e(s.title)}</h2>")
            out += [f"<p>{e(p.strip())}</p>" for p in s.text.split("\n\n") if p.strip()]
            for f in s.figures:
                out.append(_figure_html(f, inline))
            out += [_table_html(t) for t in s.tables]
            out.append("</section>")
        out.append('<p class="meta">Made by <code>scalinglab report</code>.</p></body></html>')
        return "\n".join(out) + "\n"

    def write(self, out: str | Path, figures_dir: str | Path | None = None, inline: str = "png") -> None:
        """The HTML page at `out`; with figures_dir, each figure also as PNG and SVG there."""
        atomic_write_text(out, self.to_html(inline))
        if figures_dir is not None:
            write_figures(self.figures(), figures_dir)


def _figure_html(f: Rendered, inline: str) -> str:
    if inline == "svg":
        src = "data:image/svg+xml;base64," + base64.b64encode(f.svg.encode("utf-8")).decode("ascii")
    else:
        src = "data:image/png;base64," + base64.b64encode(f.png).decode("ascii")
    cap = html.escape(f.caption)
    return f'<figure id="fig-{html.escape(f.name)}"><img src="{src}" alt="{cap or html.escape(f.name)}"><figcaption>{cap}</figcaption></figure>'


def _table_html(t: Table, cls: str = "") -> str:
    e = html.escape
    out = ['<div class="tw">', f'<table class="{cls}">' if cls else "<table>"]
    if t.caption:
        out.append(f"<caption>{e(t.caption)}</caption>")
    if any(t.columns):
        out.append("<tr>" + "".join(f"<th{_l(c, t)}>{e(str(c))}</th>" for c in t.columns) + "</tr>")
    for row in t.rows:
        out.append("<tr>" + "".join(f"<td{_l(c, t)}>{e(fmt(v))}</td>" for c, v in zip(t.columns, row)) + "</tr>")
    out.append("</table></div>")
    return "".join(out)


def _l(col: str, t: Table) -> str:
    return ' class="l"' if col in t.left else ""


def fmt(v: Any, digits: int = 3) -> str:
    """Numbers for tables: ints plain, large/small floats in e-notation, others to `digits` significant."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iu"):
        return str(int(v))
    if isinstance(v, float) or hasattr(v, "dtype"):
        x = float(v)
        if math.isnan(x):
            return "–"
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return str(v)
