"""`scalinglab plan experiment` (the article's iso-compute tables) and `scalinglab plan optimal` (N_opt from a
law, then the nearest shapes)."""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli import fit_options as O
from scalinglab.cli.app import plan_app
from scalinglab.cli.common import check_numbers, emit_json, parse_shape, parse_shapes
from scalinglab.cli.flops_cmd import build_shape, check_convention
from scalinglab.errors import UserError

_E = "{:.2e}".format


@plan_app.command("experiment")
def experiment(
    arch: str = typer.Option("perceiver-ar", "--arch", help="gpt or perceiver-ar"),
    vocab: int = typer.Option(..., "--vocab", help="Vocabulary size (e.g. 262 for bytes, 32000, 50257)."),
    seq_len: int = typer.Option(..., "--seq-len", help="Sequence length (prefix + latents for perceiver-ar)."),
    latents: int = typer.Option(0, "--latents", help="perceiver-ar: latent tokens"),
    batch_size: int = typer.Option(80, "--batch-size", help="sequences per step"),
    ref: str = typer.Option(..., "--ref", help="reference model D_MODELxLAYERS, e.g. 512x9"),
    ref_steps: int = typer.Option(..., "--ref-steps", help="training steps of the reference model"),
    models: str = typer.Option(..., "--models", help="comma-separated shapes, e.g. 512x9,624x11,728x13"),
    prefix_dropout: float = typer.Option(0.5, "--prefix-dropout", help="perceiver-ar: share of prefix dropped"),
    heads: int = typer.Option(0, "--heads", help="Attention heads (0: d_model // 64, at least 1)."),
    convention: str = typer.Option(
        "chinchilla",
        "--convention",
        help="FLOP convention: chinchilla, 6n, kaplan, palm, ... (see `scalinglab flops`).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train every model with the reference model's self-part budget: steps, D_iso, N and C parts, ratios."""
    from scalinglab.plan.experiment import plan_experiment

    check_numbers(
        ("--batch-size", batch_size, ">0"),
        ("--ref-steps", ref_steps, ">0"),
        ("--prefix-dropout", prefix_dropout, "[0,1)"),
    )
    ref_dl = parse_shape(ref)
    shapes = parse_shapes(models)
    if not shapes:
        raise UserError("no --models given: write e.g. --models 512x9,624x11")
    base = build_shape(arch, ref_dl[0], ref_dl[1], vocab, seq_len, heads, latents, prefix_dropout)
    check_convention(arch, convention)
    for d, l in shapes:
        build_shape(arch, d, l, vocab, seq_len, heads, latents, prefix_dropout)
    c_ref, rows, ratios = plan_experiment(base, ref_dl, ref_steps, shapes, batch_size, convention)
    if json_out:
        emit_json([dict(r.to_dict(), **r.ratios) for r in rows])
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"C_ref = {_E(c_ref)} FLOPs ({ref}, {ref_steps} steps, batch {batch_size})")
    setup = ("d_model", "layers", "num_steps", "D_iso", "N", "N_cross", "N_self")
    compute = ("C", "C_cross", "C_self", "Ĉ_self")
    values = [
        [
            str(r.d_model),
            str(r.layers),
            str(r.num_steps),
            *(_E(x) for x in (r.D_iso, r.N, r.N_cross, r.N_self, r.C, r.C_cross, r.C_self, r.C_self_approx)),
        ]
        for r in rows
    ]
    # the article's one 12-column table where it fits (124 columns), else its two halves: numbers are never cut
    parts = (
        [("iso-compute setup", setup + compute)]
        if con.width >= 124
        else [("iso-compute setup", setup), ("compute (FLOPs)", compute)]
    )
    for title, cols in parts:
        t = Table(title=title, show_edge=con.width >= 124)
        for col in ("", *cols):
            t.add_column(col, justify="right", no_wrap=True)
        idx = [(*setup, *compute).index(c) for c in cols]
        for i, v in enumerate(values, 1):
            t.add_row(str(i), *(v[j] for j in idx))
        con.print(t)
    t2 = Table(title="ratios")
    for col in ("", "N_cross/N", "C_cross/C", "C_self/Ĉ_self"):
        t2.add_column(col, justify="right")
    for i, q in enumerate(ratios, 1):
        t2.add_row(str(i), *(f"{q[k]:.4f}" for k in ("N_cross/N", "C_cross/C", "C_self/C_self_approx")))
    con.print(t2)


@plan_app.command("optimal")
def optimal(
    budget: float = typer.Option(..., "--budget", help="compute budget C in FLOPs (perceiver-ar: the self part)"),
    law: str = typer.Option("chinchilla-approach-2", "--law", help="published law name"),
    law_json: Path | None = O.LAW_JSON,
    approach: str | None = O.LAW_APPROACH,
    arch: str = typer.Option("gpt", "--arch", help="gpt or perceiver-ar"),
    vocab: int = typer.Option(..., "--vocab", help="Vocabulary size (e.g. 262 for bytes, 32000, 50257)."),
    seq_len: int = typer.Option(..., "--seq-len", help="Sequence length (prefix + latents for perceiver-ar)."),
    latents: int = typer.Option(0, "--latents", help="perceiver-ar: latent tokens (0 for gpt)."),
    prefix_dropout: float = typer.Option(
        0.5, "--prefix-dropout", help="perceiver-ar: share of the prefix dropped in training (the article uses 0.5)."
    ),
    heads: int = typer.Option(0, "--heads", help="Attention heads (0: d_model // 64, at least 1)."),
    aspect: float = typer.Option(56.0, "--aspect", help="target d_model / n_layers (the article's models: 56-57)"),
    aspect_weight: float = typer.Option(1.0, "--aspect-weight", help="weight of |ln aspect/target| in the score"),
    multiple: int = typer.Option(8, "--multiple", help="d_model is a multiple of this"),
    top: int = typer.Option(5, "--top", help="candidates to show"),
    batch_size: int = typer.Option(0, "--batch-size", help="if given, also the training steps per candidate"),
    convention: str = typer.Option(
        "chinchilla",
        "--convention",
        help="FLOP convention: chinchilla, 6n, kaplan, palm, ... (see `scalinglab flops`).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """N_opt and D_opt from a law at budget C, and the shapes nearest N_opt at the chosen aspect ratio."""
    import math

    from scalinglab.plan.experiment import tokens_per_step
    from scalinglab.plan.optimal import plan_optimal

    check_numbers(
        ("--budget", budget, ">0"),
        ("--prefix-dropout", prefix_dropout, "[0,1)"),
        ("--aspect", aspect, ">0"),
        ("--aspect-weight", aspect_weight, ">=0"),
        ("--multiple", multiple, ">0"),
        ("--top", top, ">0"),
        ("--batch-size", batch_size, ">=0"),
    )
    base = build_shape(arch, 512, 8, vocab, seq_len, heads, latents, prefix_dropout)
    check_convention(arch, convention)
    if batch_size < 0:
        raise UserError(f"--batch-size must be positive, got {batch_size}")
    law_obj = None
    if law_json is not None:
        law_obj, law = O.read_law(law_json, approach)
    elif approach is not None:
        raise UserError("--approach picks a law of a --law-json file: give --law-json LAW.json too")
    plan = plan_optimal(budget, law, base, aspect, aspect_weight, multiple, top, convention, law=law_obj)
    out = plan.to_dict()
    if batch_size:
        per_step = tokens_per_step(base, batch_size)
        for c in out["candidates"]:
            c["num_steps"] = math.ceil(c["tokens"] / per_step)
    if json_out:
        emit_json(out)
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.width = max(con.width, 100)
    con.print(f"{law}: C = {_E(budget)} -> N_opt = {_E(plan.n_opt)}, D_opt = {_E(plan.d_opt)}")
    t = Table(title=f"nearest shapes (target d_model/n_layers = {aspect:g})")
    cols = ["rank", "shape", "N_self" if arch == "perceiver-ar" else "N", "N/N_opt - 1", "d/L", "D", "C total"]
    if batch_size:
        cols.append("steps")
    for col in cols:
        t.add_column(col, justify="right")
    for i, c in enumerate(out["candidates"], 1):
        row = [
            str(i),
            c["name"],
            _E(c["N"]),
            f"{c['n_error']:+.1%}",
            f"{c['aspect']:.1f}",
            _E(c["tokens"]),
            _E(c["flops_total"]),
        ]
        if batch_size:
            row.append(str(c["num_steps"]))
        t.add_row(*row)
    con.print(t)
