"""`scalinglab grow` (function-preserving width/depth growth of a run folder) and `scalinglab plan staged`
(when to grow and how much compute it saves, from a loss law)."""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli import fit_options as O
from scalinglab.cli.app import app, plan_app
from scalinglab.cli.common import check_numbers, emit_json, parse_shape
from scalinglab.errors import UserError
from scalinglab.folders import RunDir


@app.command("grow")
def grow(
    run: Path = typer.Argument(..., help=f"a gpt run folder with {RunDir.CHECKPOINT} (from `scalinglab train`)"),
    out: Path = typer.Option(..., "--out", help="new run folder for the grown model"),
    width: int = typer.Option(1, "--width", help="multiply d_model, heads and MLP width by this (2: double)"),
    depth: int = typer.Option(1, "--depth", help="multiply the number of layers by this (2: double)"),
    mode: str = typer.Option("alternate", "--mode", help="depth: alternate (new identity block after each) or append"),
    noise: float = typer.Option(
        0.0,
        "--symmetry-noise",
        help="width: function-preserving perturbation (x weight std) "
        "that lets the copied units diverge; 0 = exact copies, as Shen et al. 2022",
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the symmetry noise"),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Grow RUN into OUT with the same function and mapped Adam state; continue with `train --resume OUT`."""
    from scalinglab.fileio import check_output
    from scalinglab.growth.run import grow_run

    check_numbers(
        ("--width", width, ">0"), ("--depth", depth, ">0"), ("--symmetry-noise", noise, ">=0"), ("--seed", seed, ">=0")
    )
    check_output(out, "dir", "--out")
    res = grow_run(run, out, width=width, depth=depth, mode=mode, noise=noise, seed=seed)
    if json_out:
        emit_json(res)
        return
    typer.echo(
        f"grew {res['from_shape']} -> {res['to_shape']} ({res['params_before']:,} -> {res['params_after']:,} params) "
        f"at step {res['step']}; optimizer state {'mapped' if res['optimizer_state'] else 'fresh'}"
    )
    typer.echo(f"wrote {out}; continue with: scalinglab train --resume {out} --restart-warmup-steps K")
    if width > 1 and noise == 0:  # no dropout in our GPT: exact copies get equal updates and never diverge
        typer.echo("note: the copied units stay equal in training; pass --symmetry-noise 0.3 to let them diverge")


@plan_app.command("staged")
def staged(
    shape: str = typer.Option(..., "--shape", help="target (final) shape D_MODELxLAYERS, e.g. 768x12"),
    budget: float = typer.Option(0.0, "--budget", help="compute C in FLOPs of training the target shape directly"),
    tokens: float = typer.Option(0.0, "--tokens", help="or: tokens D of the direct run (C = 6 N D)"),
    op: str = typer.Option("width", "--op", help="growth operator: width, depth or width+depth (each x2)"),
    law: str = typer.Option("chinchilla-approach-3", "--law", help="published law with predict_loss"),
    law_json: Path | None = O.LAW_JSON,
    approach: str | None = O.LAW_APPROACH,
    vocab: int = typer.Option(50257, "--vocab", help="Vocabulary size of the target model (GPT-2's by default)."),
    seq_len: int = typer.Option(1024, "--seq-len", help="Sequence length of the target model."),
    heads: int = typer.Option(0, "--heads", help="attention heads of the target (0: d_model/64)"),
    tokens_per_step: int = typer.Option(0, "--tokens-per-step", help="batch x seq_len: also print steps"),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """When to grow a half-size model into SHAPE (equal loss-vs-compute slopes) and the compute it saves."""
    from scalinglab.cli.flops_cmd import build_shape
    from scalinglab.growth.schedule import plan_staged

    check_numbers(
        ("--budget", budget, ">=0"),
        ("--tokens", tokens, ">=0"),
        ("--vocab", vocab, ">0"),
        ("--seq-len", seq_len, ">0"),
        ("--heads", heads, ">=0"),
        ("--tokens-per-step", tokens_per_step, ">=0"),
    )
    d, n_layers = parse_shape(shape)
    if heads == 0 and "width" in op and d < 128 and d % 2 == 0:
        heads = 2  # d_model/64 would give 1 head, which width growth cannot halve
    target = build_shape("gpt", d, n_layers, vocab, seq_len, heads)
    if law_json is not None:
        law_obj, law_name = O.read_law(law_json, approach)
        if not hasattr(law_obj, "predict_loss"):
            raise UserError(
                f"{law_name} is a {law_obj.kind} law without a loss L(N, D): plan staged needs one "
                "(fit approach 3, --approach 3)"
            )
    else:
        if approach is not None:
            raise UserError("--approach picks a law of a --law-json file: give --law-json LAW.json too")
        from scalinglab.laws.published import get_law

        law_obj, law_name = get_law(law), law
    if (budget > 0) == (tokens > 0):
        raise UserError("give exactly one of --budget FLOPS or --tokens D for the direct run of the target shape")
    emb = getattr(law_obj, "kind", "") != "kaplan"
    c = budget if budget > 0 else 6.0 * target.params(embeddings=emb) * tokens
    p = plan_staged(law_obj, target, c, op=op, tokens_per_step=tokens_per_step or None, law_name=law_name)
    if json_out:
        emit_json(p.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"staged training: {p.small_shape} --{op} x2--> {p.target_shape} ({law_name})")
    t.add_column("")
    t.add_column("value", justify="right")
    rows = [
        (
            "direct: compute / tokens / final loss",
            f"{p.budget_flops:.3e} / {p.budget_flops / 6 / p.n_target:.3e} / {p.target_loss:.4f}",
        ),
        ("grow after (small model) compute / tokens", f"{p.grow_flops:.3e} / {p.grow_tokens:.3e}"),
        ("loss at growth", f"{p.grow_loss:.4f}"),
        ("target tokens with that loss (rejoin point)", f"{p.effective_tokens:.3e}"),
        ("tokens after growth", f"{p.tokens_after_growth:.3e}"),
        ("staged compute", f"{p.staged_flops:.3e}"),
        ("compute saved", f"{p.saving_pct:.1f} %"),
        ("dL/dC small = target at growth", f"{p.slope_small:.3e} = {p.slope_target:.3e}"),
        ("d lnL/d lnC at growth (Shen et al. threshold)", f"{p.loglog_slope_small:.4f} ({p.seed_threshold})"),
        ("d lnL/d lnC at end of direct run (Shen et al. optimality)", f"{p.loglog_slope_target_end:.4f} (-0.052)"),
        ("Shen et al. operator constant", f"{p.seed_constant}"),
        ("Kaplan LR small / target", f"{p.lr_small:.6f} / {p.lr_target:.6f}"),
    ]
    if p.grow_step is not None:
        rows += [
            ("grow at step (small)", str(p.grow_step)),
            ("rejoin step of the target schedule (equal loss)", str(p.rejoin_step)),
            ("target steps (direct) / after growth", f"{p.total_steps_direct} / {p.steps_after_growth}"),
        ]
    for r in rows:
        t.add_row(*r)
    Console().print(t)
    if p.small_suffices:
        typer.echo(
            "note: the small model reaches the target loss before its growth point; train the small shape instead"
        )
