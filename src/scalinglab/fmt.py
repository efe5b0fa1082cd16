"""Number formatting for everything printed: significant digits, SI-abbreviated sizes, power-law formulas.
Pure Python (no numpy needed), so every layer can use it; one helper so tables and formulas agree."""

from __future__ import annotations

import math
import re

_SI = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def sig(x: float | None, digits: int = 3) -> str:
    """Significant digits, no fixed decimals: 0.000802 -> '0.000802', 1.8e21 -> '1.8e+21', 2143.2 -> '2.14e+03'.

    Never rounds a small number to zero, so a printed coefficient copied by a user gives the same law."""
    if x is None:
        return ""
    if not _finite(x):
        return str(x)
    return f"{x:.{digits}g}"


def decimals(x: float | None, places: int = 4, min_sig: int = 3) -> str:
    """Fixed decimals (`places`), widened where that would keep fewer than `min_sig` significant digits.

    0.0877 -> '0.0877', 1.896 -> '1.8960', 0.000802 -> '0.000802' (not '0.0008'), 0 -> '0.0000'."""
    if x is None:
        return ""
    if not _finite(x):
        return str(x)
    if x != 0:
        lead = math.floor(math.log10(abs(x)))  # position of the first significant digit
        places = max(places, min_sig - 1 - lead)
    return f"{x:.{places}f}"


def si(n: float | None, digits: int = 3) -> str:
    """SI-abbreviated count: 34880 -> '34.9k', 3324736 -> '3.32M', 2.02e8 -> '202M', 1.3e12 -> '1.3T'."""
    if n is None:
        return ""
    if not _finite(n):
        return str(n)
    r = float(f"{n:.{digits}g}")  # round first, so 999,960 is '1M', not '1e+03k'
    if abs(r) >= 1e15:
        return f"{r:.{digits}g}"
    for div, unit in _SI:
        if abs(r) >= div:
            return f"{r / div:.{digits}g}{unit}"
    return f"{r:.{digits}g}"


def power_law(lhs: str, k: float, exponent: float) -> str:
    """'N_opt = 0.000802 * C ** 0.61': 4 decimals (2 for the exponent), widened to keep 3 significant digits
    (2 for the exponent), so 0.000802 never prints as 0.0008 and a copied formula gives the same law."""
    return f"{lhs} = {decimals(k, 4)} * C ** {decimals(exponent, 2, min_sig=2)}"


def slug(name: str) -> str:
    """A device or machine name as part of a file name, as bench/results uses it: 'NVIDIA H200' -> 'nvidia-h200'."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
