"""The fit options `fit`, `report` (and `backtest`) share: one definition of each flag, the FitOptions they build,
the runs a SOURCE names (study folder or CSV), and the progress bars of long fits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from scalinglab.cli.common import check_numbers, parse_floats
from scalinglab.errors import UserError

APPROACH = typer.Option(
    "all",
    "--approach",
    help="Approaches to fit: 1, 2, 3, lc (compute-optimal loss L*(C)), "
    "data-constrained (needs unique tokens), a comma list, or all (1, 2, 3, lc).",
)
AT = typer.Option(None, "--at", help="Budgets C to allocate (N_opt, D_opt, loss with intervals), e.g. 1e18,1e19.")
N_COL = typer.Option(None, "--n-col", help="CSV column of model sizes N (default: params, N, ...).")
D_COL = typer.Option(None, "--d-col", help="CSV column of training tokens D (else C/6N).")
C_COL = typer.Option(None, "--c-col", help="CSV column of compute C (else 6ND); approach 2 groups by it.")
LOSS_COL = typer.Option(None, "--loss-col", help="CSV column of final losses.")
BUDGET_COL = typer.Option(None, "--budget-col", help="CSV column of planned budgets (approach 2 groups by it).")
RUN_COL = typer.Option(None, "--run-col", help="CSV run id column; several rows per run = per-step curves.")
MAX_LOSS = typer.Option(
    None,
    "--max-loss",
    help="Leave runs above this final loss out of every approach "
    "(did not converge; approach 1 drops their curves too).",
)
ROBUST = typer.Option("ransac", "--robust", help="Approach 2 parabola fit: ransac, huber or lsq.")
BUDGET_TOL = typer.Option(0.05, "--budget-tol", help="Approach 2: budgets within this relative gap are one.")
DROP_HIGHEST = typer.Option(0, "--drop-highest", help="Approach 3: drop the K highest losses first (Epoch: 5).")
BOOTSTRAP = typer.Option(
    None, "--bootstrap", help="Approach 3: resamples of whole runs for intervals (default 100; 0: none)."
)
RUNS_BOOTSTRAP = typer.Option(
    400,
    "--runs-bootstrap",
    help="Approaches 2 and lc: resamples (each run's residual "
    "within its budget) for intervals of a, b, L* and the --at values (0: none).",
)
WINDOW = typer.Option(
    5, "--window", help="Approach 2: fit each budget's parabola on the K sizes nearest its lowest loss (0: all sizes)."
)
KEEP_UNBRACKETED = typer.Option(
    False,
    "--keep-unbracketed",
    help="Approach 2: keep budgets whose minimum is not "
    "bracketed by their sizes (default: left out of the exponent fit, with a note).",
)
TIE = typer.Option(None, "--tie", help="Approach 3: fit parameters as one, e.g. alpha=beta (Gadre et al. 2024).")
FIX = typer.Option(
    None,
    "--fix",
    help="Approach 3 and data-constrained: hold parameters at values, e.g. "
    "E=1.69,alpha=0.34 (E, A, B, alpha, beta; data-constrained also r_star_d, r_star_n).",
)
LOSS = typer.Option(
    "huber",
    "--loss",
    help="Approach 3: huber (Huber δ on log loss) or lsq (least squares on the loss, as Gadre et al. 2024).",
)
STRICT = typer.Option(
    False, "--strict", help="Exit 2 when a fit carries a warning (e.g. the data cannot identify the law)."
)
UNIQUE_COL = typer.Option(
    None, "--unique-col", help="Data-constrained law: CSV column of unique tokens U (default: U, unique_tokens)."
)
DELTA = typer.Option(1e-3, "--delta", help="Approach 3: Huber δ on log loss.")
CI = typer.Option(0.95, "--ci", help="Level of the bootstrap intervals.")
SEED = typer.Option(42, "--seed", help="Seed of RANSAC and of every bootstrap.")
JOBS = typer.Option(-1, "--jobs", help="Parallel workers for approach 3 (-1: all cores).")


def build_options(
    approach: str,
    at: str | None,
    max_loss: float | None,
    robust: str,
    budget_tol: float,
    drop_highest: int,
    bootstrap: int | None,
    runs_bootstrap: int,
    delta: float,
    ci: float,
    seed: int,
    jobs: int,
    window: int = 5,
    keep_unbracketed: bool = False,
    tie: str | None = None,
    fix: str | None = None,
    loss: str = "huber",
    unique_col: str | None = None,
):
    """FitOptions from the flags; a bad value is a UserError naming its flag."""
    from scalinglab.analysis import FitOptions, parse_approaches
    from scalinglab.laws.approach3 import free_map, parse_fix, parse_tie

    if bootstrap is None:
        bootstrap = FitOptions.bootstrap
    check_numbers(("--window", window, "0|>=3"))
    if loss not in ("huber", "lsq"):
        raise UserError(f"unknown --loss {loss!r}: use huber or lsq")
    try:
        ties = parse_tie(tie)
    except UserError as e:
        raise UserError(f"{e} (--tie)") from None
    try:
        fixed = parse_fix(fix)
        if "data-constrained" not in approach:
            free_map(ties, fixed)
    except UserError as e:
        raise UserError(f"{e} (--tie/--fix)") from None

    check_numbers(
        ("--max-loss", max_loss, ">0"),
        ("--budget-tol", budget_tol, ">=0"),
        ("--drop-highest", drop_highest, ">=0"),
        ("--bootstrap", bootstrap, ">=0"),
        ("--runs-bootstrap", runs_bootstrap, ">=0"),
        ("--delta", delta, ">0"),
        ("--ci", ci, "(0,1)"),
        ("--seed", seed, ">=0"),
        ("--jobs", jobs, "-1|>0"),
    )
    try:
        approaches = parse_approaches(approach)
    except UserError:
        raise UserError(
            f"unknown --approach {approach!r}: use 1, 2, 3, lc, data-constrained, a comma list of them, or all"
        ) from None
    budgets = tuple(parse_floats(at, "--at budgets")) if at else ()
    if any(not (c > 0) for c in budgets):
        raise UserError(f"--at budgets must be positive FLOPs, got {at}")
    if drop_highest < 0 or bootstrap < 0 or runs_bootstrap < 0:
        raise UserError("--drop-highest, --bootstrap and --runs-bootstrap must be 0 or more")
    if not (0 < ci < 1) or not (delta > 0):
        raise UserError("--ci must lie in (0, 1) and --delta be positive")
    if robust not in ("ransac", "huber", "lsq"):
        raise UserError(f"unknown --robust {robust!r}: use ransac, huber or lsq")
    if max_loss is not None and not max_loss > 0:
        raise UserError(f"--max-loss must be a positive loss, got {max_loss}")
    return FitOptions(
        approaches=approaches,
        max_loss=max_loss,
        at=budgets,
        robust=robust,
        budget_tol=budget_tol,
        window=window or None,
        keep_unbracketed=keep_unbracketed,
        tie=tie,
        fix=fix,
        loss=loss,
        unique_col=unique_col,
        delta=delta,
        drop_highest=drop_highest,
        bootstrap=bootstrap,
        runs_bootstrap=runs_bootstrap,
        ci=ci,
        seed=seed,
        jobs=jobs,
    ).validate()


def load_runs(source: str | Path, n_col=None, d_col=None, c_col=None, loss_col=None, budget_col=None, run_col=None):
    """The Runs of a STUDY folder (its store) or a runs CSV (with the column flags); a column error's key
    (n_col, loss_col, ...) becomes its flag in the error line."""
    from scalinglab.analysis import Columns, Runs
    from scalinglab.folders import StudyDir
    from scalinglab.sweep.store import is_study
    from scalinglab.sweep.store import load_runs as study_runs

    p = Path(source)
    if p.is_dir() and not is_study(p) and (p / "runs.csv").is_file():  # an exported study (examples/*/runs.csv)
        p = p / "runs.csv"
    if p.is_dir():
        if not is_study(p):
            raise UserError(
                f"{p} is a folder but not a study (no {StudyDir.SETTINGS}/{StudyDir.STORE}): give a STUDY "
                "folder or a CSV"
            )
        return study_runs(p)
    return Runs.from_csv(p, Columns(n=n_col, d=d_col, c=c_col, loss=loss_col, budget=budget_col, run=run_col))


def progress_bars(enabled: bool):
    """(rich Progress or None, callback (label, done, total) or None): bars on stderr when it is a terminal."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def cb(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = prog.add_task(label, total=total)
        prog.update(tasks[label], completed=done)

    return prog, cb


def run_fit(runs, options):
    """fit_study with progress bars on a terminal."""
    import contextlib
    import sys

    from scalinglab.analysis import fit_study

    prog, cb = progress_bars(sys.stderr.isatty())
    with prog or contextlib.nullcontext():
        return fit_study(runs, options, progress=cb)


LAW_JSON = typer.Option(None, "--law-json", help="A fitted law file (scalinglab fit --out); overrides --law.")
LAW_APPROACH = typer.Option(None, "--approach", help="With --law-json: which law of a file holding several (1, 2, 3).")


def read_law(path: Path, approach: str | None):
    """(law, label) from a law file; a file of several laws needs --approach. Says on stderr which law it used."""
    import sys

    from scalinglab.laws.registry import LawChoiceError, load_law_choice

    try:
        key, law = load_law_choice(path, approach)
    except LawChoiceError as e:
        names = "|".join(c.removeprefix("approach") for c in e.choices)
        raise UserError(f"{e.problem}; pick one with --approach {names}") from None
    label = f"{path} ({key})"
    sys.stderr.write(f"using law {key} ({law.kind}) from {path}\n")
    return law, label


def check_strict(fit, strict: bool) -> None:
    """With --strict, a fit carrying warnings (printed already) ends with exit 2."""
    if strict and fit.warnings:
        raise UserError(
            f"the fit carries {len(fit.warnings)} warning(s), first: {fit.warnings[0]}",
            hint="fix the data (see the warnings above) or run without --strict",
        )
