"""Matplotlib figures without pyplot (Agg canvas, no global state) and their PNG/SVG bytes.
A rendered figure is a `Rendered` (name, caption, PNG bytes, SVG text); the HTML page inlines it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from scalinglab.fileio import atomic_write_bytes, atomic_write_text

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


@dataclass
class Rendered:
    name: str  # file stem for --figures DIR
    caption: str
    png: bytes
    svg: str


def new_figure(width: float = 6.4, height: float = 4.4):
    """A Figure with an Agg canvas attached; never touches pyplot's global figure manager."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def render(fig, name: str, caption: str = "", dpi: int = 110) -> Rendered:
    """PNG and SVG of `fig` (SVG text as paths, so it looks the same without the fonts)."""
    import matplotlib

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi, metadata={"Software": None})
    svg = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": name}):
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return Rendered(name=name, caption=caption, png=png.getvalue(), svg=svg.getvalue())


def write_figures(figs: list[Rendered], out_dir: str | Path) -> list[Path]:
    """Each figure as out_dir/<name>.png and .svg (atomic writes)."""
    out = Path(out_dir)
    paths = []
    for f in figs:
        atomic_write_bytes(out / f"{f.name}.png", f.png)
        atomic_write_text(out / f"{f.name}.svg", f.svg)
        paths += [out / f"{f.name}.png", out / f"{f.name}.svg"]
    return paths


def log_axes(ax, x: bool = True, y: bool = True) -> None:
    if x:
        ax.set_xscale("log")
    if y:
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
