"""`fit_study(runs, options) -> StudyFit`: the one fit path of `fit`, `report`, `demo` and Python users. StudyFit
holds each approach's law, intervals, predictions at budgets, residuals, notes and warnings; to_dict is the JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scalinglab.analysis.approaches import APPROACHES, Fitted, Progress
from scalinglab.analysis.bootstrap import Draws
from scalinglab.analysis.options import FitOptions
from scalinglab.analysis.runs import Runs
from scalinglab.errors import UserError
from scalinglab.laws.base import Law


@dataclass(frozen=True)
class AtBudget:
    """One law's compute-optimal allocation at one budget."""

    C: float
    """Budget in FLOPs."""
    n_opt: float
    """Compute-optimal model size."""
    d_opt: float
    """Compute-optimal training tokens."""
    loss: float | None = None
    """Predicted loss at (n_opt, d_opt), for laws that predict a loss."""
    n_opt_ci: tuple[float, float] | None = None
    """Bootstrap interval of n_opt (at the fit's ci level)."""
    d_opt_ci: tuple[float, float] | None = None
    loss_ci: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "C": self.C,
            "N_opt": self.n_opt,
            "D_opt": self.d_opt,
            "loss": self.loss,
            "N_opt_ci": _pair(self.n_opt_ci),
            "D_opt_ci": _pair(self.d_opt_ci),
            "loss_ci": _pair(self.loss_ci),
        }


@dataclass(frozen=True)
class Residuals:
    """Relative residuals observed / predicted - 1 over the runs a law was fitted on."""

    n: int
    rms: float
    max_abs: float

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "rms": self.rms, "max_abs": self.max_abs}


@dataclass(frozen=True)
class ApproachFit:
    """One approach's result within a StudyFit."""

    approach: str
    title: str
    law: Law
    used: np.ndarray
    """Over StudyFit.runs: True where the run entered this law's final fit."""
    draws: Draws | None
    intervals: dict[str, tuple[float, float]]
    """Bootstrap intervals of the law's values (a, b, k_n, ... or E, A, B, alpha, beta, a, b)."""
    at: tuple[AtBudget, ...]
    residuals: Residuals | None
    notes: tuple[str, ...]
    warnings: tuple[str, ...]

    def to_dict(self, ci: float) -> dict[str, Any]:
        d = self.law.to_dict()
        d.update(
            approach=self.approach,
            title=self.title,
            n_runs=int(self.used.sum()),
            intervals={k: list(v) for k, v in self.intervals.items()},
            ci_level=ci,
            bootstrap_draws=None
            if self.draws is None
            else {"method": self.draws.method, "n": self.draws.n, "resamples": self.draws.resamples},
            at=[r.to_dict() for r in self.at],
            residuals=None if self.residuals is None else self.residuals.to_dict(),
            notes=list(self.notes),
            warnings=list(self.warnings),
        )
        return d


@dataclass(frozen=True)
class StudyFit:
    """Every approach fitted to one Runs table with one FitOptions."""

    runs: Runs
    options: FitOptions
    approaches: dict[str, ApproachFit]
    skipped: dict[str, str] = field(default_factory=dict)
    """Approaches that could not be fitted, with the reason."""
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    """Every approach's warnings, each prefixed by its approach."""

    @property
    def laws(self) -> dict[str, Law]:
        return {k: v.law for k, v in self.approaches.items()}

    def to_dict(self) -> dict[str, Any]:
        ok = self.runs.done
        return {
            "source": self.runs.source,
            "runs": len(self.runs),
            "fitted": int(ok.sum()),
            "budgets": int(len(np.unique(self.runs.budget[ok]))),
            "options": self.options.to_dict(),
            "laws": {f"approach{k}": v.to_dict(self.options.ci) for k, v in self.approaches.items()},
            "skipped": {f"approach{k}": v for k, v in self.skipped.items()},
            "prediction": self.prediction(),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }

    def summary(self) -> list[tuple[str, str]]:
        """(what, value) lines: the numbers `fit` and `report` both print."""
        out = []
        pct = f"{100 * self.options.ci:g}%"
        for k, f in self.approaches.items():
            law = f.law
            extra = {
                "1": f" ({getattr(law, 'n_sizes_', 0)} sizes on the envelope)",
                "2": f" ({getattr(law, 'n_budgets_', 0)} budgets)",
            }.get(k, "")
            for sym, what in (("a", "N_opt ∝ C^a"), ("b", "D_opt ∝ C^b")):
                v = getattr(law, sym + "_", None) if law.kind != "data-constrained" else None
                if v is None:
                    continue
                ci = f.intervals.get(sym)
                txt = f"{sym} = {v:.4f}" + (f" ({pct} CI {ci[0]:.4f}–{ci[1]:.4f})" if ci else "") + extra
                out.append((f"{what} (approach {k})", txt))
            if hasattr(law, "predict_loss_at"):
                out.append(
                    (
                        f"L*(C) = E + A C^-γ ({k})",
                        f"E = {law.E_:.4g}, A = {law.A_:.4g}, γ = {law.gamma_:.4f}"
                        + (
                            f" ({pct} CI γ {f.intervals['gamma'][0]:.4f}–{f.intervals['gamma'][1]:.4f})"
                            if "gamma" in f.intervals
                            else ""
                        ),
                    )
                )
            if getattr(law, "r_star_d_", None) is not None:
                out.append((f"data-constrained ({k})", f"R*_D = {law.r_star_d_:.4g}, R*_N = {law.r_star_n_:.4g}"))
            if (
                hasattr(law, "predict_loss")
                and getattr(law, "alpha_", None) is not None
                and law.kind != "data-constrained"
            ):
                out.append(
                    (
                        f"L = E + A/N^α + B/D^β (approach {k})",
                        f"E = {law.E_:.4g}, A = {law.A_:.4g}, B = {law.B_:.4g}, α = {law.alpha_:.4f}, "
                        f"β = {law.beta_:.4f}",
                    )
                )
        return out + self.recommended()

    def prediction(self) -> list[dict[str, Any]]:
        """At each `at` budget: N_opt from approach 2 and the optimal loss from lc, where fitted. In backtests of
        small studies on Porian et al.'s 15 IsoFLOP grids (docs/reproductions/predictions.md) these held best:
        approach 2's N_opt within 1.12x and lc's loss within 1.7% (medians, 16x ahead), approach 3 2.25x and 7.8%.
        Each comes with its bootstrap interval and, for 95% intervals, that interval widened as those backtests
        needed to hold 95% (analysis/calibration.py)."""
        from scalinglab.analysis.calibration import WIDEN_95, widened

        a2, lc = self.approaches.get("2"), self.approaches.get("lc")
        ninety_five = abs(self.options.ci - 0.95) < 1e-9
        out = []
        for i, c in enumerate(self.options.at):
            row: dict[str, Any] = {"C": c}
            if a2 is not None and i < len(a2.at):
                r = a2.at[i]
                row.update(N_opt=r.n_opt, N_opt_from="approach2", N_opt_ci=_pair(r.n_opt_ci))
                row["N_opt_ci_calibrated"] = _pair(
                    widened(r.n_opt, r.n_opt_ci, WIDEN_95["n_opt"]) if ninety_five else None
                )
            if lc is not None and i < len(lc.at) and lc.at[i].loss is not None:
                r = lc.at[i]
                row.update(loss=r.loss, loss_from="lc", loss_ci=_pair(r.loss_ci))
                row["loss_ci_calibrated"] = _pair(widened(r.loss, r.loss_ci, WIDEN_95["loss"]) if ninety_five else None)
            if len(row) > 1:
                out.append(row)
        return out

    def recommended(self) -> list[tuple[str, str]]:
        """prediction() as summary lines."""
        pct = f"{100 * self.options.ci:g}%"

        def ci(row, key) -> str:
            pair, cal = row.get(f"{key}_ci"), row.get(f"{key}_ci_calibrated")
            if not pair:
                return ""
            txt = f"{pct} {pair[0]:.3g}–{pair[1]:.3g}"
            return f" ({txt}, calibrated {cal[0]:.3g}–{cal[1]:.3g})" if cal else f" ({txt})"

        out = []
        for row in self.prediction():
            parts = []
            if "N_opt" in row:
                parts.append(f"N_opt = {row['N_opt']:.3g}{ci(row, 'N_opt')} (approach 2)")
            if "loss" in row:
                parts.append(f"loss = {row['loss']:.4g}{ci(row, 'loss')} (lc)")
            out.append((f"prediction at C = {row['C']:.3g} (best in backtests)", ", ".join(parts)))
        return out


def _pair(x) -> list[float] | None:
    return None if x is None else [float(x[0]), float(x[1])]


def _at_rows(law: Law, draws: Draws | None, at: tuple[float, ...], ci: float) -> tuple[AtBudget, ...]:
    rows = []
    cis = {
        w: (draws.at_interval(w, ci) if draws is not None and draws.at == at else None)
        for w in ("n_opt", "d_opt", "loss")
    }
    for i, c in enumerate(at):
        n, d = (float(x) for x in law.allocate(c))
        if hasattr(law, "predict_loss_at"):  # the compute-optimal loss law
            loss = float(law.predict_loss_at(c))
        else:
            loss = float(law.predict_loss(n, d)) if hasattr(law, "predict_loss") else None
        rows.append(
            AtBudget(
                float(c),
                n,
                d,
                loss,
                *(None if cis[w] is None else tuple(cis[w][i]) for w in ("n_opt", "d_opt", "loss")),
            )
        )
    return tuple(rows)


def _residuals(law: Law, runs: Runs, used: np.ndarray) -> Residuals | None:
    """Relative residuals of the loss the law predicts (approach 3) or the parabola of its budget (approach 2)."""
    if not used.any():
        return None
    own = getattr(law, "residuals_", None)
    if getattr(law, "kind", "") in ("lc", "data-constrained") and own and own.get("n"):
        # lc: of the per-budget optimal losses; data-constrained: its loss needs each run's unique tokens
        return Residuals(int(own["n"]), float(own["rms_rel"]), float(own["max_rel"]))
    if hasattr(law, "predict_loss"):
        pred = np.asarray(law.predict_loss(runs.N[used], runs.D[used]), float)
    elif getattr(law, "per_budget_", None):
        from scalinglab.laws.approach2 import group_budgets

        gid = group_budgets(runs.budget, getattr(law, "budget_tol", 0.05))[used]
        coef = [r.coef_n for r in law.per_budget_]
        pred = np.array(
            [np.polyval(coef[g], np.log10(n)) if coef[g] is not None else np.nan for g, n in zip(gid, runs.N[used])]
        )
    else:
        return None
    rel = runs.loss[used] / pred - 1
    rel = rel[np.isfinite(rel)]
    if not rel.size:
        return None
    return Residuals(int(rel.size), float(np.sqrt(np.mean(rel**2))), float(np.max(np.abs(rel))))


def fit_study(runs: Runs, options: FitOptions | None = None, progress: Progress | None = None) -> StudyFit:
    """Fit every approach in options.approaches to the finished runs. With one approach its failure raises;
    with several, a failed approach is listed in `skipped` and the others stand (none fitted: UserError)."""
    options = (options or FitOptions()).validate()
    bad = [a for a in options.approaches if a not in APPROACHES]
    if bad:
        raise UserError(f"unknown approach {', '.join(bad)}: use {', '.join(APPROACHES)} or all")
    done = runs.done
    notes = list(runs.notes)
    if not done.all():
        notes.append(f"{int((~done).sum())} of {len(runs)} runs not done (pending/diverged/failed) left out")
    if not done.any():
        raise UserError(f"{runs.source} has no finished run with a finite loss: nothing to fit")
    if options.max_loss is not None:
        n_high = int((runs.loss[done] > options.max_loss).sum())
        notes.append(f"{n_high} runs with loss > {options.max_loss:g} left out of every approach (not converged)")
    finished = runs.subset(done)
    fits: dict[str, ApproachFit] = {}
    skipped: dict[str, str] = {}
    for name in options.approaches:
        ap = APPROACHES[name]
        try:
            f: Fitted = ap.fit(finished, options, progress)
        except UserError as e:
            if len(options.approaches) == 1:
                raise
            skipped[name] = str(e)
            continue
        used = np.zeros(len(runs), bool)
        used[np.flatnonzero(done)] = f.used
        intervals = f.draws.intervals(options.ci) if f.draws is not None and f.draws.n else {}
        fits[name] = ApproachFit(
            name,
            ap.title,
            f.law,
            used,
            f.draws,
            intervals,
            _at_rows(f.law, f.draws, tuple(options.at), options.ci),
            _residuals(f.law, runs, used),
            f.notes,
            f.warnings,
        )
    if not fits:
        raise UserError("no approach could be fitted: " + "; ".join(f"approach {k}: {v}" for k, v in skipped.items()))
    warns = tuple(f"approach {k}: {w}" for k, f in fits.items() for w in f.warnings)
    return StudyFit(runs, options, fits, skipped, tuple(notes), warns)
