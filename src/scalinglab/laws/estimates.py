"""Chinchilla's published N_opt/D_opt estimates (Table 3 = approach 1, Table A3 = approach 2) and the fit
N_opt = k_N C^a, D_opt = k_D C^b to them (fixed exponents: linear least squares, as the article does)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.base import PowerLawAllocation
from scalinglab.laws.chinchilla_tables import TABLE_3_APPROACH_1, TABLE_A3_APPROACH_2

# name -> (the paper's table, exponents a, b the paper reports for that approach)
ESTIMATES = {
    "approach-1": (TABLE_3_APPROACH_1, 0.50, 0.50),
    "approach-2": (TABLE_A3_APPROACH_2, 0.49, 0.51),
}
_ALIASES = {
    "1": "approach-1",
    "2": "approach-2",
    "approach_1": "approach-1",
    "approach_2": "approach-2",
    "chinchilla-approach-1": "approach-1",
    "chinchilla-approach-2": "approach-2",
}
COLUMNS = ("FLOPs", "Parameters", "Tokens")


@dataclass(frozen=True)
class Estimates:
    """Compute budgets C with estimated N_opt and D_opt; unpacks as `C, N, D = load_estimates(...)`."""

    flops: np.ndarray
    params: np.ndarray
    tokens: np.ndarray
    source: str
    a: float | None = None  # the exponents published with this table, if it is a known one
    b: float | None = None

    def __iter__(self):
        return iter((self.flops, self.params, self.tokens))

    def __len__(self) -> int:
        return len(self.flops)


def canonical_name(name: str) -> str | None:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in ESTIMATES else None


def load_estimates(name_or_csv: str | Path) -> Estimates:
    """A packaged table ('approach-1', 'approach-2', 'chinchilla-approach-1', ...) or a CSV with columns
    FLOPs, Parameters, Tokens (all positive)."""
    name = canonical_name(str(name_or_csv))
    if name is not None:
        table, a, b = ESTIMATES[name]
        C, N, D = (np.array(col, dtype=float) for col in zip(*table))
        return Estimates(C, N, D, source=name, a=a, b=b)
    path = Path(name_or_csv)
    if not path.is_file():
        raise UserError(
            f"no estimates table {str(name_or_csv)!r}: give approach-1, approach-2 or a CSV file with columns "
            + ", ".join(COLUMNS)
        )
    return _parse(path.read_text(), source=str(path))


def _parse(text: str, source: str, a: float | None = None, b: float | None = None) -> Estimates:
    rows = list(csv.DictReader(io.StringIO(text)))
    missing = [c for c in COLUMNS if not rows or c not in rows[0]]
    if missing:
        raise UserError(f"{source}: missing column(s) {', '.join(missing)}: the CSV needs columns {', '.join(COLUMNS)}")
    try:
        cols = [np.array([float(r[c]) for r in rows]) for c in COLUMNS]
    except (TypeError, ValueError):
        raise UserError(f"{source}: a value in {', '.join(COLUMNS)} is not a number: fix the CSV") from None
    if len(rows) < 2 or any(not np.all(np.isfinite(x) & (x > 0)) for x in cols):
        raise UserError(f"{source}: need at least 2 rows of positive finite {', '.join(COLUMNS)}: fix the CSV")
    return Estimates(*cols, source=source, a=a, b=b)


def _fixed(x: np.ndarray, y: np.ndarray, m: float) -> float:
    # argmin_k sum (y - k x^m)^2: the same minimum scipy's curve_fit reaches in the article's code.
    u = np.power(x, m)
    return float(np.dot(u, y) / np.dot(u, u))


def _free(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)  # OLS in log-log space
    return float(np.exp(intercept)), float(slope)


def fit_estimates(C, N, D, a: float | None = None, b: float | None = None) -> PowerLawAllocation:
    """N_opt = k_n C^a, D_opt = k_d C^b. A given exponent is held fixed and k fitted by least squares in
    linear space (Krasser's fit_scaling_law); a missing one is fitted with k in log-log space."""
    C, N, D = (np.asarray(v, dtype=float) for v in (C, N, D))
    if not (C.shape == N.shape == D.shape) or C.ndim != 1 or len(C) < 2:
        raise UserError("fit_estimates needs three equally long 1-d sequences C, N, D with at least 2 values")
    if any(not np.all(np.isfinite(v) & (v > 0)) for v in (C, N, D)):
        raise UserError("fit_estimates needs positive finite C, N, D: drop the bad rows")
    if a is None:
        k_n, a = _free(C, N)
    else:
        k_n = _fixed(C, N, a)
    if b is None:
        k_d, b = _free(C, D)
    else:
        k_d = _fixed(C, D, b)
    return PowerLawAllocation(
        k_n=k_n, a=a, k_d=k_d, b=b, name="estimates-fit", citation="k_N, k_D fitted to N_opt/D_opt estimates"
    )


def fit_table(
    name_or_csv: str | Path, a: float | None = None, b: float | None = None, published_exponents: bool = True
) -> PowerLawAllocation:
    """Load and fit; a packaged table uses its paper's exponents unless a/b are given."""
    est = load_estimates(name_or_csv)
    if published_exponents:
        a = est.a if a is None else a
        b = est.b if b is None else b
    law = fit_estimates(est.flops, est.params, est.tokens, a=a, b=b)
    law.name = f"fit:{est.source}"
    return law
