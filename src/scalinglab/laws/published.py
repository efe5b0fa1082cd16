"""Registry of published scaling laws (Chinchilla approaches 1-3, Epoch's refit, Kaplan) as law objects.
`get_law(name)` returns a fresh copy; unknown names raise UserError listing the known ones."""

from __future__ import annotations

from scalinglab.errors import UserError
from scalinglab.laws.base import KaplanLaw, Law, ParametricLaw, PowerLawAllocation

_HOFFMANN = "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, arXiv:2203.15556"
_KRASSER = "k_N, k_D fitted with fixed exponents to Table {t} of Hoffmann et al. (Krasser 2023, Perceiver AR scaling)"


def _build() -> dict[str, Law]:
    return {
        "chinchilla-approach-1": PowerLawAllocation(
            k_n=0.0877,
            a=0.50,
            k_d=1.8960,
            b=0.50,
            name="chinchilla-approach-1",
            citation=f"{_HOFFMANN}, approach 1 (a=b=0.50); " + _KRASSER.format(t=3),
        ),
        "chinchilla-approach-2": PowerLawAllocation(
            k_n=0.1448,
            a=0.49,
            k_d=1.1519,
            b=0.51,
            name="chinchilla-approach-2",
            citation=f"{_HOFFMANN}, approach 2 (a=0.49, b=0.51); " + _KRASSER.format(t="A3"),
        ),
        "chinchilla-approach-3": ParametricLaw(
            E=1.69,
            A=406.4,
            B=410.7,
            alpha=0.34,
            beta=0.28,
            name="chinchilla-approach-3",
            citation=f"{_HOFFMANN}, approach 3, eq. (10)",
        ),
        "chinchilla-approach-3-unrounded": ParametricLaw(
            E=1.69,
            A=406.4,
            B=410.7,
            alpha=0.3392,
            beta=0.2849,
            name="chinchilla-approach-3-unrounded",
            citation=f"{_HOFFMANN}, approach 3, unrounded exponents as reported by Besiroglu et al. 2024",
        ),
        "epoch-approach-3": ParametricLaw(
            E=1.8172,
            A=482.01,
            B=2085.43,
            alpha=0.3478,
            beta=0.3658,
            name="epoch-approach-3",
            citation="Besiroglu, Erdil, Barnett, You 2024, Chinchilla Scaling: A replication attempt, arXiv:2404.10102",
        ),
        "kaplan": KaplanLaw(
            alpha_n=0.076,
            alpha_d=0.095,
            n_c=8.8e13,
            d_c=5.4e13,
            k_n_pfday=1.3e9,
            a=0.73,
            name="kaplan",
            citation="Kaplan et al. 2020, Scaling Laws for Neural Language Models, arXiv:2001.08361, "
            "eq. (1.5) and Fig. 14 (N_opt = 1.3e9 (C/PF-day)^0.73, non-embedding N; D = C/6N)",
        ),
    }


PUBLISHED: dict[str, Law] = _build()


def get_law(name: str) -> Law:
    """A fresh copy of the published law `name` (so callers may change it freely)."""
    if name not in PUBLISHED:
        raise UserError(f"unknown published law {name!r}: known laws are {', '.join(PUBLISHED)}")
    return _build()[name]
