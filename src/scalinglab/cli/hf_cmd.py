"""Commands `export`, `finetune-budget`, `eval perplexity` and `eval lambada` (transformers interop, the fine-tuning
study, and the WikiText / LAMBADA evaluations of Shen et al. 2022's staged-training code)."""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.app import app, eval_app
from scalinglab.cli.common import check_numbers, emit_json
from scalinglab.errors import UserError
from scalinglab.folders import RunDir


@app.command("export")
def export(
    run: Path = typer.Argument(..., help=f"Run folder ({RunDir.CONFIG}, {RunDir.CHECKPOINT}) of a GPT run."),
    format: str = typer.Option("hf", "--format", help="Only 'hf': a transformers GPT-2 model folder."),
    out: Path = typer.Option(..., "--out", help="New folder to write (config.json, model.safetensors, tokenizer)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Export a trained run as a transformers GPT-2 folder (loads with AutoModelForCausalLM, same logits)."""
    if format != "hf":
        raise UserError(f"unknown --format {format!r}: only 'hf' is supported")
    from scalinglab.fileio import check_output
    from scalinglab.hf import export_hf

    check_output(out, "dir", "--out")
    res = export_hf(run, out)
    if json_out:
        emit_json(res)
    else:
        tok = (
            f", tokenizer {res['tokenizer']}"
            if res["tokenizer"]
            else ", no tokenizer (data has none in transformers form)"
        )
        typer.echo(f"exported {run} -> {out} ({res['params']:,} params{tok})")


@app.command("finetune-budget")
def finetune_budget(
    model: str | None = typer.Option(None, "--model", help="A run folder or a local transformers causal-LM folder."),
    models: str | None = typer.Option(
        None, "--models", help="Comma-separated model folders: the isoFLOP curve of fine-tuning."
    ),
    data: Path = typer.Option(..., "--data", help="Prepared DATA folder (samples: consecutive --seq-len chunks)."),
    steps: int = typer.Option(100, "--steps", help="Step budget (with --models: the budget of the first model)."),
    data_sizes: str = typer.Option(
        "100,50,20,10,5",
        "--data-sizes",
        help="Comma-separated numbers of training samples d; each trains steps*batch/d epochs.",
    ),
    batch_size: int = typer.Option(1, "--batch-size", help="Training samples per step (the exercise uses 1)."),
    seq_len: int = typer.Option(64, "--seq-len", help="Tokens per sample."),
    eval_samples: int = typer.Option(
        10, "--eval-samples", help="Validation samples (the first ones of the val split)."
    ),
    eval_every: int = typer.Option(
        0,
        "--eval-every",
        help="Validate every N steps (0: about 10 times per run; 1: after "
        "every step, as the exercise does). Always before the first and after the last step.",
    ),
    lr: float = typer.Option(
        1e-4, "--lr", help="Peak learning rate (linear decay to 0, AdamW: the HF Trainer's defaults)."
    ),
    budget_flops: float = typer.Option(
        0.0, "--budget-flops", help="Compute budget C (6N x tokens); each model gets C/(6 N B L) steps."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the per-epoch shuffles."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N (auto: a GPU when there is one)."),
    out: Path = typer.Option(..., "--out", help="Folder for results.json, curves.csv and the PNG plots."),
    json_out: bool = typer.Option(False, "--json", help="Print rows (no curves) as JSON."),
) -> None:
    """Spend a fixed step budget as budget/d epochs on d samples, for each d (the fine-tuning study of Cerisara's
    exercise "Make your scaling law"); with several models, the isoFLOP curve of fine-tuning."""
    from scalinglab.evaluate.lm import TokenizerMismatch
    from scalinglab.fileio import check_output
    from scalinglab.finetune import Protocol, write_outputs
    from scalinglab.finetune import finetune_budget as run_study

    check_numbers(
        ("--steps", steps, ">0"),
        ("--batch-size", batch_size, ">0"),
        ("--seq-len", seq_len, ">0"),
        ("--eval-samples", eval_samples, ">0"),
        ("--lr", lr, ">0"),
        ("--budget-flops", budget_flops, ">=0"),
        ("--seed", seed, ">=0"),
        ("--eval-every", eval_every, ">=0"),
    )
    check_output(out, "dir", "--out")
    paths = [m.strip() for m in (models or "").split(",") if m.strip()] + ([model] if model else [])
    try:
        sizes = [int(s) for s in data_sizes.split(",") if s.strip()]
    except ValueError:
        raise UserError(
            f"bad --data-sizes {data_sizes!r}: give comma-separated sample counts, e.g. 100,50,20"
        ) from None
    p = Protocol(
        steps=steps,
        batch_size=batch_size,
        seq_len=seq_len,
        eval_samples=eval_samples,
        lr=lr,
        seed=seed,
        eval_every=eval_every,
    )
    try:
        res = run_study(paths, data, sizes, p, budget_flops=budget_flops, device=device, progress=not json_out)
    except TokenizerMismatch as e:
        raise UserError(
            e.problem, hint=f"{e.hint}: {_retokenize(paths[0] if len(paths) == 1 else 'MODEL')}, then --data DATA2"
        ) from None
    files = write_outputs(res, out)
    summary = {k: v for k, v in res.items() if k != "curves"} | {"files": [str(f) for f in files]}
    if json_out:
        emit_json(summary)
        return
    from rich.table import Table

    from scalinglab.fmt import si
    from scalinglab.sweep.table import make_console

    t = Table(title=f"fine-tuning budget ({res['budget_flops']:.3g} FLOPs, 6N)")
    for c in ("model", "params", "steps", "d", "epochs", "val before", "val final", "val best (step)"):
        t.add_column(c, no_wrap=c != "model", overflow="fold")
    for r in res["rows"]:
        t.add_row(
            Path(r["model"]).name,
            si(r["params"]),
            str(r["steps"]),
            str(r["data_size"]),
            f"{r['epochs']:.2f}",
            f"{r['initial_val_loss']:.4f}",
            f"{r['final_val_loss']:.4f}",
            f"{r['best_val_loss']:.4f} ({r['best_step']})",
        )
    make_console().print(t)
    if "isoflop" in res:
        iso = res["isoflop"]
        fit = (
            f"; parabola in log N: N_opt = {si(iso['fit']['params_opt'])}, loss {iso['fit']['loss_opt']:.4f}"
            if iso["fit"]
            else ""
        )
        typer.echo(f"compute-optimal model: {iso['optimal_model']} ({si(iso['optimal_params'])} params){fit}")
        if iso.get("note"):
            typer.echo(f"note: {iso['note']}")
    typer.echo(f"wrote {', '.join(f.name for f in files)} to {out}")


@eval_app.command("perplexity")
def perplexity(
    model: str = typer.Option(..., "--model", help="A run folder or a local transformers causal-LM folder."),
    data: Path | None = typer.Option(
        None, "--data", help="Prepared DATA folder (token ids already made by the model's tokenizer)."
    ),
    text: Path | None = typer.Option(None, "--text", help="A UTF-8 text file, tokenized with the model's tokenizer."),
    split: str = typer.Option("val", "--split", help="Split of --data."),
    seq_len: int = typer.Option(0, "--seq-len", help="Window length (0: the model's context)."),
    stride: int = typer.Option(
        0, "--stride", help="Window step (0 = --seq-len: non-overlapping; smaller: sliding, scoring only new tokens)."
    ),
    max_tokens: int = typer.Option(0, "--max-tokens", help="Evaluate only the first N tokens (0: all)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N (auto: a GPU when there is one)."),
    json_out: bool = typer.Option(
        False, "--json", help="Print the result as JSON (loss, perplexity, bits_per_byte, ...)."
    ),
) -> None:
    """Token-level loss, perplexity and bits per byte (the WikiText evaluation of Shen et al. 2022's code)."""
    from scalinglab.evaluate.lm import TokenizerMismatch, check_same_tokenizer, data_tokenizer, load_lm
    from scalinglab.evaluate.perplexity import perplexity as ppl
    from scalinglab.evaluate.perplexity import utf8_bytes

    check_numbers(
        ("--seq-len", seq_len, ">=0"),
        ("--stride", stride, ">=0"),
        ("--max-tokens", max_tokens, ">=0"),
        ("--batch-size", batch_size, ">0"),
    )
    if (data is None) == (text is None):
        raise UserError("give exactly one of --data DATA or --text FILE")
    if text is not None and not text.is_file():
        raise UserError(f"no file {text}: give a UTF-8 text file")
    lm = load_lm(model, device)
    if text is not None:
        if lm.tokenizer is None:
            raise UserError(
                f"model {model} has no tokenizer to read --text with: use --data with a DATA folder made by its tokenizer"
            )
        try:
            raw = text.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UserError(
                f"--text {text} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                "give a UTF-8 text file, or tokenize binary data with `scalinglab prep` and use --data"
            ) from None
        import numpy as np

        ids = np.asarray(lm.tokenizer.encode(raw), dtype=np.int64)
        n_bytes = len(raw.encode("utf-8"))
        if max_tokens and len(ids) > max_tokens:
            ids, n_bytes = ids[:max_tokens], utf8_bytes(lm.tokenizer, ids[:max_tokens])
        source = str(text)
    else:
        from scalinglab.data.loader import TokenData

        try:
            check_same_tokenizer(lm, data)
        except TokenizerMismatch as e:
            raise UserError(e.problem, hint=f"{e.hint}: {_retokenize(model)}, or pass --text FILE") from None
        ids = TokenData(data).split(split)
        ids = ids[:max_tokens] if max_tokens else ids
        n_bytes = utf8_bytes(data_tokenizer(data), ids)
        source = f"{data}:{split}"
    res = ppl(lm, ids, seq_len, stride, n_bytes, batch_size=batch_size, progress=not json_out)
    res = {"model": model, "source": source, **res}
    if json_out:
        emit_json(res)
        return
    bpb = f", {res['bits_per_byte']:.4f} bits/byte" if res["bits_per_byte"] is not None else ""
    typer.echo(
        f"{source}: loss {res['loss']:.4f} nats/token, perplexity {res['perplexity']:.3f}{bpb} "
        f"({res['tokens']:,} tokens scored, {res['windows']} windows of {res['seq_len']}, stride {res['stride']})"
    )


@eval_app.command("lambada")
def lambada(
    model: str = typer.Option(..., "--model", help="A run folder or a local transformers causal-LM folder."),
    jsonl: Path = typer.Option(
        ..., "--jsonl", help='LAMBADA-style JSONL: one {"text": ...} per line; the last word is the target.'
    ),
    max_examples: int = typer.Option(0, "--max-examples", help="Score only the first N examples (0: all)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Examples per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N (auto: a GPU when there is one)."),
    details: bool = typer.Option(False, "--details", help="With --json: include per-example results."),
    json_out: bool = typer.Option(
        False, "--json", help="Print the result as JSON (accuracy, last_token_accuracy, ...)."
    ),
) -> None:
    """Last-word accuracy: greedy decoding must give every token of the final word (not only its last)."""
    from scalinglab.evaluate.lambada import lambada as score
    from scalinglab.evaluate.lambada import read_jsonl
    from scalinglab.evaluate.lm import load_lm

    check_numbers(("--max-examples", max_examples, ">=0"), ("--batch-size", batch_size, ">0"))
    texts = read_jsonl(jsonl)
    texts = texts[:max_examples] if max_examples else texts
    res = score(load_lm(model, device), texts, batch_size=batch_size)
    if not details:
        res.pop("examples")
    res = {"model": model, "jsonl": str(jsonl), **res}
    if json_out:
        emit_json(res)
        return
    typer.echo(
        f"{jsonl}: last-word accuracy {res['accuracy']:.4f} over {res['n']} examples "
        f"(last token only: {res['last_token_accuracy']:.4f}; {res['mean_word_tokens']:.2f} tokens per word, target loss {res['target_loss']:.4f})"
    )


def _retokenize(model: str) -> str:
    """How to make a DATA folder with a model's own tokenizer."""
    from scalinglab.hf import is_hf_folder

    if model != "MODEL" and not is_hf_folder(model):
        return "`scalinglab prep TEXT --tokenizer SPEC --out DATA2` with the --tokenizer the run's data was made with"
    return f"`scalinglab prep TEXT --tokenizer hf:{model} --out DATA2`"
