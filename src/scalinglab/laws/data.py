"""Input for the fitters: run tables (N, D, C, loss) from a study folder or any CSV, and loss-vs-FLOPs
curves (run folders' metric lines or per-step CSV rows), validated so bad input is one UserError line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalinglab.errors import UserError
from scalinglab.folders import RunDir, StudyDir

# Column names tried in order when the user names none (study frames, Epoch's and minchilla's CSVs).
ALIASES = {
    "n": ["params", "N", "n", "model_size_N", "Model Size", "parameters", "Parameters"],
    "d": ["tokens", "D", "d", "training_tokens_D", "Training Tokens", "Tokens"],
    "c": ["flops", "C", "c", "training_flop_C", "Training FLOP", "budget_flops", "budget", "FLOPs"],
    "loss": ["final_val_loss", "loss", "final_loss", "val_loss", "Loss"],
    "budget": ["budget", "budget_flops"],
    "run": ["run_id", "run", "run_name"],
}


@dataclass
class Points:
    """One row per run: model size N, tokens D, compute C, final loss; `budget` is the planned C."""

    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    loss: np.ndarray
    budget: np.ndarray
    lines: np.ndarray  # where each row came from (CSV line number, or study row) for messages
    notes: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.N)

    def subset(self, mask) -> Points:
        m = np.asarray(mask)
        return Points(self.N[m], self.D[m], self.C[m], self.loss[m], self.budget[m], self.lines[m],
                      list(self.notes), self.source)


@dataclass
class Curves:
    """Loss-vs-FLOPs curves of many runs: per run arrays of cumulative C and loss, plus its N."""

    runs: list[str]
    N: np.ndarray
    C: list[np.ndarray]
    loss: list[np.ndarray]
    notes: list[str] = field(default_factory=list)


def _pick(df, given: str | None, kind: str, what: str, src: str, required: bool = True) -> str | None:
    if given:
        if given not in df.columns:
            raise UserError(f"column {given!r} not in {src} (columns: {', '.join(map(str, df.columns))}): fix --{kind}-col")
        return given
    for name in ALIASES[kind]:
        if name in df.columns:
            return name
    if required:
        raise UserError(f"no {what} column in {src} (columns: {', '.join(map(str, df.columns))}): name it with --{kind}-col")
    return None


def _numeric(df, col: str, src: str, line_of, positive: bool = True) -> np.ndarray:
    import pandas as pd

    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(vals))
    if bad.size:
        i = bad[0]
        cell = raw.iloc[i]
        empty = cell is None or (isinstance(cell, float) and np.isnan(cell)) or str(cell).strip() == ""
        shown = format(float(cell), "g") if isinstance(cell, (int, float, np.number)) else repr(str(cell))
        why = "is empty" if empty else f"is {shown}, not a finite number"
        raise UserError(f"{src} {line_of(i)}, column {col!r} {why}; fix or remove that row")
    if positive:
        bad = np.flatnonzero(vals <= 0)
        if bad.size:
            i = bad[0]
            raise UserError(f"{src} {line_of(i)}, column {col!r} is {vals[i]:g}, must be > 0; fix or remove that row")
    return vals


def _read_csv(path: Path):
    import pandas as pd

    if not path.exists():
        raise UserError(f"no such file or study folder: {path}")
    try:
        # only empty cells are missing: a literal "nan" stays text, so it is reported as what it is
        return pd.read_csv(path, skipinitialspace=True, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty: give a CSV with a header row and one row per run") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a readable CSV ({str(e).splitlines()[0]}): fix the file") from None


def load_frame(source: str | Path):
    """A pandas frame of runs and a label for messages: study folders via sweep.store, else a CSV."""
    p = Path(source)
    if p.is_dir():
        from scalinglab.sweep.store import is_study, load_runs_frame

        if not is_study(p):
            raise UserError(f"{p} is a folder but not a study (no {StudyDir.SETTINGS}): give a study folder or a CSV of runs")
        df = load_runs_frame(p)
        if "status" in df.columns:
            n_all = len(df)
            df = df[df["status"] == "done"].reset_index(drop=True)
            note = f"{n_all - len(df)} of {n_all} runs not done (pending/diverged/failed) left out" if len(df) < n_all else ""
        else:
            note = ""
        return df, f"study {p}", True, note
    return _read_csv(p), str(p), False, ""


def points_from_frame(df, src: str, *, n_col=None, d_col=None, c_col=None, loss_col=None, budget_col=None,
                      is_study: bool = False) -> Points:
    """Validate and convert a frame; D = C/(6N) or C = 6ND when one is missing (and say so)."""
    if len(df) == 0:
        raise UserError(f"{src} has no runs: nothing to fit")

    def line_of(i: int) -> str:
        return f"run {df['run_id'].iloc[i]}" if is_study and "run_id" in df.columns else f"line {i + 2}"

    notes = []
    nc = _pick(df, n_col, "n", "model-size (N)", src)
    lc = _pick(df, loss_col, "loss", "loss", src)
    dc = _pick(df, d_col, "d", "tokens (D)", src, required=False)
    cc = _pick(df, c_col, "c", "compute (C)", src, required=False)
    if dc is None and cc is None:
        raise UserError(f"{src} has neither a tokens (D) nor a compute (C) column", hint="name one", keys=("d_col", "c_col"))
    N = _numeric(df, nc, src, line_of)
    loss = _numeric(df, lc, src, line_of)
    D = _numeric(df, dc, src, line_of) if dc else None
    C = _numeric(df, cc, src, line_of) if cc else None
    if D is None:
        D = C / (6.0 * N)
        notes.append(f"D computed as C/(6N) from columns {cc!r}, {nc!r}")
    if C is None:
        C = 6.0 * N * D
        notes.append(f"C computed as 6ND from columns {nc!r}, {dc!r}")
    bc = _pick(df, budget_col, "budget", "budget", src, required=False) if (budget_col or is_study) else None
    budget = _numeric(df, bc, src, line_of) if bc else C.copy()
    cols = f"N={nc!r}, D={dc or 'C/6N'!r}, C={cc or '6ND'!r}, loss={lc!r}" + (f", budget={bc!r}" if bc else "")
    notes.insert(0, f"columns: {cols}")
    lines = np.array([line_of(i) for i in range(len(df))], dtype=object)
    return Points(N, D, C, loss, budget, lines, notes, src)


def load_points(source, **cols) -> Points:
    df, src, study, note = load_frame(source)
    pts = points_from_frame(df, src, is_study=study, **cols)
    if note:
        pts.notes.append(note)
    return pts


def read_metrics(run_dir: str | Path) -> tuple[list[float], list[float], list[float], list[float]]:
    """A run folder's metric lines -> (flops, val_loss) of the evaluation lines and (flops, train_loss) of the others."""
    c_val, l_val, c_tr, l_tr = [], [], [], []
    for m in RunDir(run_dir).read_metrics():  # a half-written last line of a crashed run is left out
        if m.get("val_loss") is not None:
            c_val.append(m.get("flops", 0.0)), l_val.append(m["val_loss"])
        elif m.get("train_loss") is not None:
            c_tr.append(m.get("flops", 0.0)), l_tr.append(m["train_loss"])
    return c_val, l_val, c_tr, l_tr


def curves_from_study(df, src: str) -> Curves | None:
    """Curves from each done run's metric lines (val_loss lines if any, else train_loss)."""
    runs, Ns, Cs, Ls = [], [], [], []
    for _, row in df.iterrows():
        run = RunDir(str(row.get("run_dir", "")))
        if not run.metrics.exists():
            continue
        c_val, l_val, c_tr, l_tr = read_metrics(run.path)
        c, l = (c_val, l_val) if len(c_val) >= 3 else (c_tr, l_tr)
        c, l = np.asarray(c, float), np.asarray(l, float)
        ok = np.isfinite(c) & np.isfinite(l) & (c > 0) & (l > 0)
        if ok.sum() >= 2:
            runs.append(str(row["run_id"])), Ns.append(float(row["params"])), Cs.append(c[ok]), Ls.append(l[ok])
    if not runs:
        return None
    return Curves(runs, np.array(Ns), Cs, Ls, [f"curves from {len(runs)} runs' metric lines in {src}"])


def curves_from_frame(df, src: str, *, run_col=None, n_col=None, c_col=None, loss_col=None, d_col=None) -> Curves | None:
    """Per-step CSV rows (run id, N, C, loss): None when every run has one row (a table of final points)."""
    rc = _pick(df, run_col, "run", "run id", src, required=bool(run_col))
    if rc is None or df[rc].nunique() == len(df):
        return None
    pts = points_from_frame(df, src, n_col=n_col, d_col=d_col, c_col=c_col, loss_col=loss_col)
    runs, Ns, Cs, Ls = [], [], [], []
    ids = df[rc].astype(str).to_numpy()
    for r in dict.fromkeys(ids):
        m = ids == r
        order = np.argsort(pts.C[m])
        runs.append(r), Ns.append(pts.N[m][0]), Cs.append(pts.C[m][order]), Ls.append(pts.loss[m][order])
    return Curves(runs, np.array(Ns), Cs, Ls, [f"curves from per-step rows of {src} grouped by {rc!r}"])
