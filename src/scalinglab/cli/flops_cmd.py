"""`scalinglab flops`: parameter count and training FLOPs per token of one model shape, under every convention."""

from __future__ import annotations

import typer

from scalinglab.accounting import CONVENTIONS, flops_parts, validate
from scalinglab.accounting.shape import ARCHS, ModelShape
from scalinglab.cli.app import app
from scalinglab.cli.common import check_numbers, emit_json
from scalinglab.errors import UserError


def build_shape(
    arch: str,
    d_model: int,
    layers: int,
    vocab: int,
    seq_len: int,
    heads: int = 0,
    latents: int = 0,
    prefix_dropout: float = 0.5,
    mlp_ratio: int = 4,
    bias: bool = True,
    pos: str = "learned",
    tied: bool = True,
) -> ModelShape:
    """A validated ModelShape from CLI flags (UserError, one line, for anything impossible)."""
    check_numbers(
        ("--d-model", d_model, ">0"),
        ("--layers", layers, ">0"),
        ("--vocab", vocab, ">0"),
        ("--seq-len", seq_len, ">0"),
        ("--heads", heads, ">=0"),
        ("--latents", latents, ">=0"),
        ("--prefix-dropout", prefix_dropout, "[0,1)"),
        ("--mlp-ratio", mlp_ratio, ">0"),
    )
    if arch not in ARCHS:
        raise UserError(f"unknown arch {arch!r}: use --arch {' or --arch '.join(ARCHS)}")
    if arch == "gpt" and latents:
        raise UserError("--latents is for --arch perceiver-ar only: drop it or switch the arch")
    if arch == "perceiver-ar" and latents <= 0:
        raise UserError("perceiver-ar needs --latents N (latent tokens, 0 < N < --seq-len), e.g. --latents 512")
    shape = ModelShape(
        d_model=d_model,
        n_layers=layers,
        vocab=vocab,
        seq_len=seq_len,
        arch=arch,
        n_heads=heads,
        mlp_ratio=mlp_ratio,
        bias=bias,
        pos=pos,
        tied=tied,
        latents=latents if arch == "perceiver-ar" else 0,
        prefix_dropout=prefix_dropout if arch == "perceiver-ar" else 0.0,
    )
    return validate(shape)


def check_heads(shape: ModelShape, heads: int) -> None:
    """The attention heads must divide d_model, as `train` requires (FLOP accounting alone does not need it)."""
    if shape.d_model % shape.n_heads:
        what = f"--heads {heads}" if heads else f"the default heads (d_model // 64 = {shape.n_heads})"
        raise UserError(
            f"--d-model {shape.d_model} is not divisible by {what}; give a --heads that divides it, "
            "e.g. a power of two (each head is d_model / heads wide)"
        )


def check_convention(arch: str, convention: str) -> None:
    if convention not in CONVENTIONS[arch]:
        raise UserError(f"unknown --convention {convention!r} for {arch}: use one of {', '.join(CONVENTIONS[arch])}")


def flops_report(shape: ModelShape, convention: str) -> dict:
    parts = flops_parts(shape, convention)
    return {
        "arch": shape.arch,
        "d_model": shape.d_model,
        "layers": shape.n_layers,
        "heads": shape.n_heads,
        "vocab": shape.vocab,
        "seq_len": shape.seq_len,
        "latents": shape.latents,
        "prefix_dropout": shape.prefix_dropout,
        "params": shape.params(),
        "params_nonembed": shape.params(embeddings=False),
        "params_self": shape.params_self(),
        "params_cross": shape.params_cross(),
        "flops_per_token_self": parts["self"],
        "flops_per_token_cross": parts["cross"],
        "flops_per_token": parts["total"],
        "convention": convention,
        "conventions": {c: flops_parts(shape, c)["total"] for c in CONVENTIONS[shape.arch]},
    }


@app.command("flops")
def flops(
    arch: str = typer.Option("gpt", "--arch", help="gpt or perceiver-ar"),
    d_model: int = typer.Option(..., "--d-model", help="model width"),
    layers: int = typer.Option(..., "--layers", help="transformer layers (perceiver-ar: incl. the hybrid layer)"),
    vocab: int = typer.Option(..., "--vocab", help="vocabulary size"),
    seq_len: int = typer.Option(..., "--seq-len", help="sequence length (perceiver-ar: prefix + latents)"),
    heads: int = typer.Option(0, "--heads", help="attention heads (0: d_model // 64)"),
    latents: int = typer.Option(0, "--latents", help="perceiver-ar: latent tokens"),
    prefix_dropout: float = typer.Option(0.5, "--prefix-dropout", help="perceiver-ar: share of prefix dropped"),
    mlp_ratio: int = typer.Option(4, "--mlp-ratio", help="MLP hidden width as a multiple of d_model."),
    bias: bool = typer.Option(True, "--bias/--no-bias", help="gpt: biases in linears and LayerNorms"),
    pos: str = typer.Option("learned", "--pos", help="gpt: learned or rotary positions"),
    tied: bool = typer.Option(True, "--tied/--untied", help="gpt: output head tied to the token embedding"),
    convention: str = typer.Option("chinchilla", "--convention", help="FLOP convention (all are shown in the table)"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Parameters and training FLOPs per token (per latent token for perceiver-ar)."""
    shape = build_shape(
        arch, d_model, layers, vocab, seq_len, heads, latents, prefix_dropout, mlp_ratio, bias, pos, tied
    )
    check_heads(shape, heads)
    check_convention(arch, convention)
    rep = flops_report(shape, convention)
    if json_out:
        emit_json(rep)
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"{arch} {shape.name}, vocab {vocab}, seq {seq_len}" + (f", {latents} latents" if latents else ""))
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_row("N (params)", f"{rep['params']:,} ({rep['params']:.2e})")
    t.add_row("N non-embedding", f"{rep['params_nonembed']:,}")
    if arch == "perceiver-ar":
        t.add_row("N_self", f"{rep['params_self']:,} ({rep['params_self']:.2e})")
        t.add_row("N_cross", f"{rep['params_cross']:,} ({rep['params_cross']:.2e})")
        t.add_row(f"C_self / token ({convention})", f"{rep['flops_per_token_self']:.2e}")
        t.add_row(f"C_cross / token ({convention})", f"{rep['flops_per_token_cross']:.2e}")
        if rep["flops_per_token"]:
            t.add_row("cross share of C", f"{rep['flops_per_token_cross'] / rep['flops_per_token'] * 100:.2f}%")
        t.add_row("C_self / 6 N_self", f"{rep['flops_per_token_self'] / (6 * rep['params_self']):.2f}")
    for c, v in rep["conventions"].items():
        mark = " *" if c == convention else ""
        t.add_row(f"C / token ({c}){mark}", f"{v:.4e}  ({v / (6 * rep['params']):.3f} x 6N)")
    con.print(t)
