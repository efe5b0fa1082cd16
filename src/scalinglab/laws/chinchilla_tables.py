"""Hoffmann et al. 2022 (Training Compute-Optimal Large Language Models, arXiv:2203.15556): the estimated
compute-optimal FLOPs and tokens per model size of Table 3 (approach 1) and Table A3 (approach 2)."""

from __future__ import annotations

CITATION = (
    "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, arXiv:2203.15556, "
    "Table 3 (approach 1) and Table A3 (approach 2); the values Krasser 2023 (Training compute-optimal "
    "Perceiver AR language models) fits k_N and k_D to"
)

# Rows (FLOPs C, parameters N_opt, tokens D_opt), model sizes 400M .. 10T as the paper lists them.
TABLE_3_APPROACH_1: tuple[tuple[float, float, float], ...] = (
    (1.920e19, 4.000e8, 8.000e9),
    (1.210e20, 1.000e9, 2.020e10),
    (1.230e22, 1.000e10, 2.051e11),
    (5.760e23, 6.700e10, 1.500e12),
    (3.850e24, 1.750e11, 3.700e12),
    (9.900e24, 2.800e11, 5.900e12),
    (3.430e25, 5.200e11, 1.100e13),
    (1.270e26, 1.000e12, 2.120e13),
    (1.300e28, 1.000e13, 2.162e14),
)

TABLE_A3_APPROACH_2: tuple[tuple[float, float, float], ...] = (
    (1.840e19, 4.000e8, 7.700e9),
    (1.200e20, 1.000e9, 2.000e10),
    (1.320e22, 1.000e10, 2.195e11),
    (6.880e23, 6.700e10, 1.700e12),
    (4.540e24, 1.750e11, 4.300e12),
    (1.180e25, 2.800e11, 7.100e12),
    (4.190e25, 5.200e11, 1.340e13),
    (1.590e26, 1.000e12, 2.650e13),
    (1.750e28, 1.000e13, 2.920e14),
)
