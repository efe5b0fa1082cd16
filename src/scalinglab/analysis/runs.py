"""`Runs`: the one typed table of runs every fit reads (N, D, C, budget, final loss, status, loss curves),
built from a frame (a study's store, via scalinglab.sweep), a runs CSV with a column mapping, or per-step rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.errors import ConfigError, UserError

# Column names tried in order when the mapping names none (study frames, Epoch's and minchilla's CSVs).
ALIASES: dict[str, list[str]] = {
    "n": ["params", "N", "n", "model_size_N", "Model Size", "parameters", "Parameters"],
    "d": ["tokens", "D", "d", "training_tokens_D", "Training Tokens", "Tokens"],
    "c": ["flops", "C", "c", "training_flop_C", "Training FLOP", "budget_flops", "budget", "FLOPs"],
    "loss": ["final_val_loss", "loss", "final_loss", "val_loss", "Loss"],
    "budget": ["budget", "budget_flops"],
    "run": ["run_id", "run", "run_name"],
}
WHAT = {
    "n": "model-size (N)",
    "d": "tokens (D)",
    "c": "compute (C)",
    "loss": "loss",
    "budget": "budget",
    "run": "run id",
}


class ColumnError(ConfigError):
    """A named column is missing, or none of a quantity's usual names is there; `kind` is n, d, c, loss, ..."""

    def __init__(self, problem: str, kind: str, hint: str = "name the column that holds it"):
        super().__init__(problem, hint=hint, keys=(f"{kind}_col",))
        self.kind = kind


@dataclass(frozen=True)
class Columns:
    """Which column of a table holds each quantity; None: try the usual names (ALIASES)."""

    n: str | None = None
    """Model size N (parameters)."""
    d: str | None = None
    """Training tokens D; when absent, D = C / (6N)."""
    c: str | None = None
    """Compute C spent in FLOPs; when absent, C = 6ND."""
    loss: str | None = None
    """Final loss of the run."""
    budget: str | None = None
    """Planned budget, the group key of approach 2; when absent, C."""
    run: str | None = None
    """Run id; a table with several rows per run is per-step curves (its last row is the run's final point)."""


@dataclass(frozen=True)
class Curve:
    """One run's loss against cumulative training FLOPs, in increasing C."""

    C: np.ndarray
    loss: np.ndarray


@dataclass(frozen=True, eq=False)
class Runs:
    """One row per run. Arrays are aligned; `loss` is NaN for runs not done. `curves` maps a run id to its
    loss curve (approach 1); `info` holds other per-run columns (d_model, n_layers, run_dir, ...) as arrays."""

    run: np.ndarray
    """Run ids (str)."""
    N: np.ndarray
    """Model size (parameters)."""
    D: np.ndarray
    """Training tokens."""
    C: np.ndarray
    """Compute spent, FLOPs."""
    budget: np.ndarray
    """Planned compute budget, FLOPs: the group approach 2 fits one parabola to."""
    loss: np.ndarray
    """Final loss (NaN when the run is not done)."""
    status: np.ndarray
    """done, pending, running, failed or diverged (a CSV without a status column: done)."""
    curves: Mapping[str, Curve] = field(default_factory=dict)
    info: Mapping[str, np.ndarray] = field(default_factory=dict)
    lines: np.ndarray | None = None
    """Where each row came from (CSV line, run id), for messages."""
    source: str = ""
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.N)

    @property
    def done(self) -> np.ndarray:
        """Mask of the runs a fit can use: status done and a finite positive loss."""
        return (self.status == "done") & np.isfinite(self.loss) & (np.nan_to_num(self.loss, nan=-1.0) > 0)

    def subset(self, mask) -> Runs:
        """The rows where `mask` (bool array or indices) holds; curves and info follow (indices may repeat)."""
        m = np.asarray(mask)
        arrays = {f.name: getattr(self, f.name)[m] for f in fields(self) if f.name in ARRAY_FIELDS}
        info = {k: np.asarray(v)[m] for k, v in self.info.items()}
        lines = None if self.lines is None else self.lines[m]
        ids = set(arrays["run"].tolist())
        curves = {k: v for k, v in self.curves.items() if k in ids}
        return replace(self, **arrays, info=info, lines=lines, curves=curves)

    def with_notes(self, *notes: str) -> Runs:
        return replace(self, notes=self.notes + tuple(n for n in notes if n))

    def to_frame(self):
        """A pandas frame: run, N, D, C, budget, loss, status and the info columns."""
        import pandas as pd

        cols = {k: getattr(self, k) for k in ARRAY_FIELDS}
        cols.update({k: v for k, v in self.info.items() if k not in cols})
        return pd.DataFrame(cols)

    # -- builders ---------------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls, N, D=None, C=None, loss=None, budget=None, run=None, status=None, source: str = "arrays"
    ) -> Runs:
        """From numbers: D = C/(6N) or C = 6ND where one is missing; budget defaults to C."""
        if loss is None:
            raise UserError("Runs.from_arrays needs the loss of each run")
        N = np.asarray(N, float).ravel()
        cols = {"n": N, "loss": np.asarray(loss, float).ravel()}
        if D is not None:
            cols["d"] = np.asarray(D, float).ravel()
        if C is not None:
            cols["c"] = np.asarray(C, float).ravel()
        if budget is not None:
            cols["budget"] = np.asarray(budget, float).ravel()
        if run is not None:
            cols["run"] = np.asarray(run).astype(str).ravel()
        if status is not None:
            cols["status"] = np.asarray(status).astype(str).ravel()
        import pandas as pd

        if len({len(v) for v in cols.values()}) != 1:
            raise UserError("Runs.from_arrays got arrays of different lengths: give one value of each per run")
        return cls.from_frame(
            pd.DataFrame(cols),
            source,
            Columns(
                n="n",
                d="d" if D is not None else None,
                c="c" if C is not None else None,
                loss="loss",
                budget="budget" if budget is not None else None,
                run="run" if run is not None else None,
            ),
        )

    @classmethod
    def from_csv(cls, path: str | Path, columns: Columns | None = None) -> Runs:
        """A CSV of runs (one row per run) or of per-step rows (several rows per run id: curves)."""
        return cls.from_frame(read_csv(Path(path)), str(path), columns or Columns())

    @classmethod
    def from_frame(
        cls,
        df,
        source: str,
        columns: Columns | None = None,
        *,
        curves: Mapping[str, Curve] | None = None,
        is_study: bool = False,
    ) -> Runs:
        """Validate and convert a frame. Rows with a status other than done keep a NaN loss and are not checked.
        A frame with several rows per run id is per-step curves: each run's last row is its final point."""
        cols = columns or Columns()
        if len(df) == 0:
            raise UserError(f"{source} has no runs: nothing to fit")
        df = df.reset_index(drop=True)
        rc = _pick(df, cols.run, "run", source, required=bool(cols.run))
        if rc is not None and df[rc].nunique() < len(df):
            if is_study:
                raise UserError(f"{source} has repeated run ids: the study store is damaged")
            return _from_steps(df, source, cols, rc)
        status = df["status"].astype(str).to_numpy() if "status" in df.columns else np.full(len(df), "done")
        if rc is not None:
            ids = df[rc].astype(str).to_numpy()
        else:
            ids = np.array([f"row{i + 1}" for i in range(len(df))])
        lines = ids.astype(object) if is_study else np.array([f"line {i + 2}" for i in range(len(df))], dtype=object)
        done = status == "done"
        nc = _pick(df, cols.n, "n", source)
        lc = _pick(df, cols.loss, "loss", source)
        dc = _pick(df, cols.d, "d", source, required=False)
        cc = _pick(df, cols.c, "c", source, required=False)
        if dc is None and cc is None:
            raise ColumnError(
                f"{source} has neither a tokens (D) nor a compute (C) column", "d", hint="name one of them"
            )
        notes = []
        N = _numeric(df, nc, source, lines, done)
        loss = _numeric(df, lc, source, lines, done)
        D = _numeric(df, dc, source, lines, done) if dc else None
        C = _numeric(df, cc, source, lines, done) if cc else None
        if D is None:
            D = C / (6.0 * N)
            notes.append(f"D computed as C/(6N) from columns {cc!r}, {nc!r}")
        if C is None:
            C = 6.0 * N * D
            notes.append(f"C computed as 6ND from columns {nc!r}, {dc!r}")
        bc = _pick(df, cols.budget, "budget", source, required=False) if (cols.budget or is_study) else None
        budget = _numeric(df, bc, source, lines, done) if bc else C.copy()
        if is_study:  # a run not done has no spent C yet: its planned budget stands in
            C = np.where(np.isfinite(C), C, budget)
        loss = np.where(done, loss, np.nan)
        mapping = f"N={nc!r}, D={dc or 'C/6N'!r}, C={cc or '6ND'!r}, loss={lc!r}" + (f", budget={bc!r}" if bc else "")
        used = {nc, lc, dc, cc, bc, rc, "status"}
        info = {str(k): df[k].to_numpy() for k in df.columns if k not in used}
        return cls(
            ids, N, D, C, budget, loss, status, dict(curves or {}), info, lines, source, (f"columns: {mapping}", *notes)
        )


ARRAY_FIELDS = ("run", "N", "D", "C", "budget", "loss", "status")


def _from_steps(df, source: str, cols: Columns, rc: str) -> Runs:
    """Per-step rows: the curve of each run (C, loss in increasing C) and its last row as its final point."""
    steps = Runs.from_frame(df.drop(columns=[rc]), source, replace(cols, run=None))
    ids = df[rc].astype(str).to_numpy()
    curves, last = {}, []
    for r in dict.fromkeys(ids):
        ix = np.flatnonzero(ids == r)
        order = np.argsort(steps.C[ix], kind="stable")
        curves[r] = Curve(steps.C[ix][order], steps.loss[ix][order])
        last.append(ix[-1])
    final = df.iloc[last].reset_index(drop=True)
    runs = Runs.from_frame(final, source, replace(cols, run=rc))
    return replace(
        runs,
        curves=curves,
        lines=np.array([f"run {r}" for r in runs.run], dtype=object),
        notes=runs.notes
        + (f"curves from per-step rows of {source} grouped by {rc!r}; each run's last row is its final point",),
    )


def _pick(df, given: str | None, kind: str, src: str, required: bool = True) -> str | None:
    if given:
        if given not in df.columns:
            raise ColumnError(
                f"column {given!r} not in {src} (columns: {', '.join(map(str, df.columns))})",
                kind,
                hint="name a column the table has",
            )
        return given
    for name in ALIASES[kind]:
        if name in df.columns:
            return name
    if required:
        raise ColumnError(f"no {WHAT[kind]} column in {src} (columns: {', '.join(map(str, df.columns))})", kind)
    return None


def _numeric(df, col: str, src: str, lines: np.ndarray, check: np.ndarray) -> np.ndarray:
    """Column `col` as floats; rows where `check` holds must be finite and positive."""
    import pandas as pd

    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(check & ~np.isfinite(vals))
    if bad.size:
        i = bad[0]
        cell = raw.iloc[i]
        empty = cell is None or (isinstance(cell, float) and np.isnan(cell)) or str(cell).strip() == ""
        shown = format(float(cell), "g") if isinstance(cell, (int, float, np.number)) else repr(str(cell))
        why = "is empty" if empty else f"is {shown}, not a finite number"
        raise UserError(f"{src} {lines[i]}, column {col!r} {why}", hint="fix or remove that row")
    bad = np.flatnonzero(check & (np.nan_to_num(vals, nan=1.0) <= 0))
    if bad.size:
        i = bad[0]
        raise UserError(f"{src} {lines[i]}, column {col!r} is {vals[i]:g}, must be > 0", hint="fix or remove that row")
    return vals


def read_csv(path: Path):
    """A CSV as a pandas frame; a missing, empty or unreadable file is one UserError line."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"no such file or study folder: {path}")
    try:
        # only empty cells are missing: a literal "nan" stays text, so it is reported as what it is
        return pd.read_csv(path, skipinitialspace=True, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty: give a CSV with a header row and one row per run") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a readable CSV ({str(e).splitlines()[0]}): fix the file") from None


def describe(runs: Runs) -> dict[str, Any]:
    """Counts for summaries: runs, fittable runs, budgets."""
    ok = runs.done
    budgets = int(len(np.unique(runs.budget[ok]))) if ok.any() else 0
    return {"runs": len(runs), "done": int(ok.sum()), "budgets": budgets}
