"""N_opt, D_opt and the loss at a budget from approach 3 on a study, with 95% intervals from its bootstrap draws
(resampled runs), and approach 2's N_opt there: what examples/tuned-gpu predicts at 1e16 from its 1e14-1e15 runs.

Usage: python examples/tuned-gpu/predict.py STUDY C [--max-budget C_MAX] > prediction.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scalinglab.laws.data import load_points

from scalinglab.laws.approach2 import Approach2
from scalinglab.laws.approach3 import Approach3
from scalinglab.laws.base import ParametricLaw


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("study")
    ap.add_argument("c", type=float)
    ap.add_argument("--max-budget", type=float, default=float("inf"), help="fit only runs planned at budgets <= this")
    ap.add_argument("--bootstrap", type=int, default=200)
    a = ap.parse_args()
    pts = load_points(a.study)
    pts = pts.subset(pts.budget <= a.max_budget)
    law = Approach3(bootstrap=a.bootstrap, seed=42).fit(pts.N, pts.D, pts.loss)
    n, d = law.allocate(a.c)
    draws = []
    for e, aa, bb, alpha, beta, *_ in law.boot_:
        if not np.all(np.isfinite([e, aa, bb, alpha, beta])):
            continue
        lw = ParametricLaw(E=e, A=aa, B=bb, alpha=alpha, beta=beta)
        nn, dd = lw.allocate(a.c)
        draws.append((float(nn), float(dd), float(lw.predict_loss(nn, dd))))
    q = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    a2 = Approach2().fit(pts.N, pts.D, pts.budget, pts.loss)
    out = {
        "C": a.c,
        "runs": len(pts),
        "budgets": sorted(set(pts.budget.tolist())),
        "approach3": {
            "n_opt": float(n),
            "n_opt_ci": q[:, 0].tolist(),
            "d_opt": float(d),
            "d_opt_ci": q[:, 1].tolist(),
            "loss": float(law.predict_loss(n, d)),
            "loss_ci": q[:, 2].tolist(),
            "a": law.a_,
            "b": law.b_,
            "ci_a": law.ci_["a"],
            "bootstrap": len(draws),
        },
        "approach2": {
            "n_opt": float(a2.allocate(a.c)[0]),
            "a": a2.a_,
            "per_budget": [{k: r[k] for k in ("C", "n_opt", "loss_opt_n") if k in r} for r in a2.per_budget_],
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
