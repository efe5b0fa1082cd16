"""The typer apps every command module registers into (kept apart to avoid import cycles)."""

import typer

from scalinglab import __version__

app = typer.Typer(
    name="scalinglab",
    help="Plan, run and fit compute-optimal scaling-law studies for transformer language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plan_app = typer.Typer(
    help="Plan experiments: iso-compute tables, optimal shapes, IsoFLOP studies, staged growth.", no_args_is_help=True
)
eval_app = typer.Typer(help="Evaluate a model: perplexity, LAMBADA last-word accuracy.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")
app.add_typer(eval_app, name="eval")


def _version(value: bool) -> None:
    if value:
        print(f"scalinglab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Plan, run and fit compute-optimal scaling-law studies for transformer language models."""
