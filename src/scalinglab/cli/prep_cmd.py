"""`scalinglab prep`: text sources -> tokenizer -> memory-mapped token shards + their description (a DataDir)."""

from __future__ import annotations

import typer

from scalinglab.cli.app import app
from scalinglab.cli.common import check_numbers, emit_json
from scalinglab.folders import DataDir


@app.command("prep")
def prep(
    sources: list[str] = typer.Argument(..., help="Files, folders, globs (quoted), `stdlib` or `site-packages`."),
    out: str = typer.Option(
        ..., "--out", "-o", help=f"DATA folder to write ({DataDir.META}, token shards, {DataDir.TOKENIZER}/)."
    ),
    tokenizer: str = typer.Option(
        "bytes", "--tokenizer", "-t", help="bytes, char, gpt2, bpe:V, sentencepiece:V or hf:DIR."
    ),
    val_fraction: float = typer.Option(
        0.01, "--val-fraction", help="Share of documents for validation (at least 1 document)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the document-level train/val split."),
    field: str | None = typer.Option(
        None, "--field", help="Text field of .jsonl records / .parquet column (default: text)."
    ),
    max_bytes: str | None = typer.Option(
        None, "--max-bytes", help="Cap the corpus, e.g. 20M: documents in order until the cap."
    ),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Worker processes (default: all cores)."),
    force: bool = typer.Option(False, "--force", help="Replace shards in --out made with other settings."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Tokenize text into shards for training: deduplicated, document-level train/val split."""
    from scalinglab.data.prep import prepare

    check_numbers(("--val-fraction", val_fraction, "(0,1)"), ("--seed", seed, "any"), ("--workers", workers, ">0"))
    s = prepare(
        sources,
        out,
        tokenizer=tokenizer,
        val_fraction=val_fraction,
        seed=seed,
        field=field,
        max_bytes=max_bytes,
        workers=workers,
        force=force,
        progress=not quiet,
    )
    if json_out:
        emit_json(s)
        return
    from rich.console import Console

    c = Console()
    verb = "up to date (reused)" if s["reused"] else f"written in {s['seconds']:.1f} s"
    c.print(f"[bold]{s['out']}[/bold] {verb}: tokenizer {s['tokenizer']} (vocab {s['vocab_size']}, {s['dtype']})")
    for sp in ("train", "val"):
        bpt = s["bytes_per_token"][sp]
        c.print(f"  {sp:<5} {s[f'tokens_{sp}']:>13,} tokens {s[f'docs_{sp}']:>8,} docs {bpt or 0:7.3f} bytes/token")
    skipped = ", ".join(f"{v:,} {k.replace('_', '-')}" for k, v in s["skipped"].items() if v)
    if skipped:
        c.print(f"  skipped: {skipped}")
