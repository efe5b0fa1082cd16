"""What a fit can and cannot say: residual summaries for every law, and the checks that tell when the data
cannot identify approach 3's law (spans, points per parameter, runaway parameters, flat directions)."""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_SPAN = 4.0  # N or D must vary by at least this factor for its exponent to be identified
MIN_POINTS_PER_PARAM = 3.0
MAX_EXPONENT = 1.5  # language-model exponents are ~0.1-0.8; larger ones fit noise on a short range
MAX_COND = 1e4  # condition number of the column-scaled Jacobian of log L̂: larger means a flat direction
MAX_REL_SE = 0.5  # an exponent whose standard error exceeds half its value is not determined


def residual_summary(rel, of: str) -> dict[str, Any]:
    """Max and RMS of relative residuals (prediction / observation - 1) of the quantity `of`."""
    rel = np.asarray(rel, dtype=float)
    rel = rel[np.isfinite(rel)]
    if not rel.size:
        return {"of": of, "n": 0}
    return {
        "of": of,
        "n": int(rel.size),
        "max_rel": float(np.abs(rel).max()),
        "rms_rel": float(np.sqrt(np.mean(rel**2))),
    }


def log_jacobian(theta: np.ndarray, lN: np.ndarray, lD: np.ndarray) -> np.ndarray:
    """d log L̂ / d theta (n x 5) for theta = (ln A, ln B, ln E, alpha, beta), with log N and log D centred in
    the exponent columns: centring is a change of intercept (a' = a - alpha mean log N), not of the law, and
    keeps the exponent columns from looking collinear with the coefficient columns on any narrow range."""
    a, b, e, al, be = theta
    x1 = np.exp(a - al * lN)
    x2 = np.exp(b - be * lD)
    x3 = np.full_like(lN, np.exp(e))
    s = x1 + x2 + x3
    return np.column_stack([x1 / s, x2 / s, x3 / s, -(lN - lN.mean()) * x1 / s, -(lD - lD.mean()) * x2 / s])


def identifiability_warnings(obj, z: np.ndarray, free: list[str]) -> list[str]:
    """Warnings for approach 3's fit at free parameters z of objective `obj` (laws.approach3.Objective)."""
    out: list[str] = []
    theta = obj.theta(z[None, :])[0]
    lN, lD, L = obj.lN, obj.lD, obj.L
    n, k = len(L), len(free)
    names = {"A": np.exp(theta[0]), "B": np.exp(theta[1]), "E": np.exp(theta[2]), "alpha": theta[3], "beta": theta[4]}
    for var, lx, params in (("N", lN, ("A", "alpha")), ("D", lD, ("B", "beta"))):
        span = float(np.exp(lx.max() - lx.min()))
        if span < MIN_SPAN and any(p in free for p in params):
            out.append(
                f"{var} spans only {span:.2g}x (< {MIN_SPAN:g}x): the data cannot identify {params[1]} and "
                f"{params[0]}; add runs over a wider range of {var} or fix {params[1]}"
            )
    if k and n / k < MIN_POINTS_PER_PARAM:
        out.append(
            f"{n} points for {k} free parameters (< {MIN_POINTS_PER_PARAM:g} per parameter): the fit can "
            "pass through the noise; add runs, or tie or fix parameters"
        )
    if "E" in free and names["E"] < 1e-3 * L.min():
        out.append(f"E ran to its bound 0 (E = {names['E']:.3g}): the irreducible loss is not identified")
    for c in ("A", "B"):
        if c in free and names[c] > 1e30:
            out.append(f"{c} ran off to {names[c]:.3g}: its term is not identified")
    for ex in ("alpha", "beta"):
        v = names[ex]
        if v <= 0:
            out.append(
                f"{ex} = {v:.3g} is at or below its bound 0: the loss does not fall with "
                f"{'N' if ex == 'alpha' else 'D'}"
            )
        elif v > MAX_EXPONENT:
            out.append(
                f"{ex} = {v:.3g} is above {MAX_EXPONENT:g}: implausible for a language model; the data "
                "likely spans too little to fix it"
            )
    if k:
        J = log_jacobian(theta, lN, lD) @ obj.P
        norms = np.linalg.norm(J, axis=0)
        Js = J / np.where(norms > 0, norms, 1.0)
        sv = np.linalg.svd(Js, compute_uv=False)
        cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else float("inf")
        if cond > MAX_COND or not np.all(norms > 0):
            v = np.linalg.svd(Js)[2][-1]
            mix = " + ".join(f"{abs(c):.2f} {free[i]}" for i, c in enumerate(v) if abs(c) > 0.2)
            out.append(
                f"the objective is flat along {mix} (condition number {cond:.2g} > {MAX_COND:g}): those "
                "parameters trade off against each other; widen N and D or fix one"
            )
        elif n > k:
            pred = np.log(np.exp(theta[0] - theta[3] * lN) + np.exp(theta[1] - theta[4] * lD) + np.exp(theta[2]))
            sigma2 = float(np.sum((pred - np.log(L)) ** 2) / (n - k))
            cov = sigma2 * np.linalg.pinv(J.T @ J)
            for ex in ("alpha", "beta"):
                if ex in free:
                    j = free.index(ex)
                    se = float(np.sqrt(max(cov[j, j], 0.0)))
                    if names[ex] > 0 and se > MAX_REL_SE * names[ex]:
                        out.append(
                            f"{ex} = {names[ex]:.3g} has a standard error of {se:.2g} (> {MAX_REL_SE:.0%} "
                            "of its value): the data do not determine it; add runs over a wider range"
                        )
    return out
