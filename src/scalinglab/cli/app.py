"""The typer apps every command module registers into (kept apart to avoid import cycles)."""

import typer

app = typer.Typer(
    name="scalinglab",
    help="Plan, run and fit compute-optimal scaling-law studies for transformer language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plan_app = typer.Typer(help="Plan experiments: iso-compute tables, optimal shapes, IsoFLOP studies, staged growth.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate a model: perplexity, LAMBADA last-word accuracy.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")
app.add_typer(eval_app, name="eval")
