"""Hyperparameter laws from a tuning grid: the best (lr, batch) per (shape, budget) point, interpolated around the
grid minimum (a parabola in log lr, then in log batch), and power laws lr*(N) or lr*(C) and batch*(D) or batch*(C)
with bootstrap intervals. DeepSeek LLM (Bi et al. 2024) fits lr* and batch* as power laws of compute along the
compute-optimal frontier; Porian et al. 2024 fit lr* of N. Off the frontier (an IsoFLOP set trains small models on
many tokens and large ones on few) the batch follows the tokens D, not N or C: the critical batch size grows with D
and barely with N (Zhang et al. 2024, "How does critical batch size scale in pre-training?"), and the optimal batch
is a power law of D (Bergsma et al. 2025, "Power Lines", B_opt ~ D^0.38).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scalinglab.errors import ConfigError, FolderError


@dataclass
class TunePoint:
    """The best settings of one (shape, budget) point of the grid.

    lr_grid / batch_grid: the grid's best run; lr / batch: the interpolated optimum (the grid value where the
    minimum sits on the grid's edge, said in `edge`)."""

    budget: float
    params: int
    shape: str
    lr: float
    batch: float  # sequences per step
    batch_tokens: float
    loss: float
    lr_grid: float
    batch_grid: int
    runs: int
    edge: list[str] = field(default_factory=list)
    beta2: float | None = None
    warmup: int | None = None
    tokens: float | None = None  # D of the best run (absent in laws fitted before batch*(D))


def vertex(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """Vertex (x*, y*) of the parabola through the grid minimum and its two neighbours (x sorted, log scale);
    None when the minimum sits on an edge or the three points do not curve upwards."""
    i = int(np.argmin(y))
    if i == 0 or i == len(x) - 1:
        return None
    xs, ys = x[i - 1 : i + 2], y[i - 1 : i + 2]
    a, b, c = np.polyfit(xs, ys, 2)
    if a <= 0:
        return None
    xv = -b / (2 * a)
    xv = float(min(max(xv, xs[0]), xs[-1]))  # never past the neighbours: a parabola on 3 points extrapolates badly
    return xv, float(a * xv * xv + b * xv + c)


def best_point(rows: list[dict[str, Any]], seq_tokens: int) -> TunePoint:
    """rows: one (shape, budget) point's runs with keys lr, batch_size, loss (inf/NaN for diverged), params,
    budget, shape, and optionally beta2, warmup, tokens. Other swept settings (beta2, warmup) are taken at the best run's values."""
    ok = [r for r in rows if r["loss"] is not None and math.isfinite(r["loss"])]
    if not ok:
        raise FolderError(
            f"no finished run at {rows[0]['shape']}, C={rows[0]['budget']:.3g}", hint="sweep the tuning study first"
        )
    best = min(ok, key=lambda r: r["loss"])
    same = [r for r in ok if r.get("beta2") == best.get("beta2") and r.get("warmup") == best.get("warmup")]
    edge: list[str] = []
    # per batch size: the best loss over lr (interpolated in log lr where bracketed)
    per_batch: dict[int, tuple[float, float]] = {}
    for bs in sorted({r["batch_size"] for r in same}):
        rs = sorted((r for r in same if r["batch_size"] == bs), key=lambda r: r["lr"])
        x = np.log([r["lr"] for r in rs])
        y = np.array([r["loss"] for r in rs])
        v = vertex(x, y) if len(rs) >= 3 else None
        i = int(np.argmin(y))
        per_batch[bs] = (math.exp(v[0]), v[1]) if v else (rs[i]["lr"], float(y[i]))
        if bs == best["batch_size"] and v is None and len(rs) > 1:
            edge.append("lr")
    bss = sorted(per_batch)
    xb = np.log([float(b) for b in bss])
    yb = np.array([per_batch[b][1] for b in bss])
    vb = vertex(xb, yb) if len(bss) >= 3 else None
    ib = int(np.argmin(yb))
    if vb is None and len(bss) > 1:
        edge.append("batch")
    batch = math.exp(vb[0]) if vb else float(bss[ib])
    # the lr at the optimal batch: interpolate log lr* between the neighbouring batch sizes
    lr = math.exp(float(np.interp(math.log(batch), xb, np.log([per_batch[b][0] for b in bss]))))
    loss = vb[1] if vb else float(yb[ib])
    return TunePoint(
        budget=float(best["budget"]),
        params=int(best["params"]),
        shape=str(best["shape"]),
        lr=lr,
        batch=batch,
        batch_tokens=batch * seq_tokens,
        loss=loss,
        lr_grid=float(best["lr"]),
        batch_grid=int(best["batch_size"]),
        runs=len(rows),
        edge=edge,
        beta2=best.get("beta2"),
        warmup=best.get("warmup"),
        tokens=float(best["tokens"]) if best.get("tokens") else None,
    )


def power_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(coef, exp) of y = coef x^exp by least squares in log-log; exp = 0 (geometric mean) when x spans < 1.5x."""
    lx, ly = np.log(x), np.log(y)
    if len(x) < 2 or lx.max() - lx.min() < math.log(1.5):
        return float(math.exp(ly.mean())), 0.0
    e, c = np.polyfit(lx, ly, 1)
    return float(math.exp(c)), float(e)


@dataclass
class PowerLaw:
    """y = coef * x^exp, with bootstrap percentile intervals (ci: name -> (lo, hi))."""

    coef: float
    exp: float
    var: str  # "N", "C" or "D"
    ci: dict[str, list[float]] = field(default_factory=dict)

    def __call__(self, x: float) -> float:
        return self.coef * x**self.exp

    def to_dict(self) -> dict[str, Any]:
        return {"coef": self.coef, "exp": self.exp, "var": self.var, "ci": self.ci}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PowerLaw:
        return cls(float(d["coef"]), float(d["exp"]), str(d.get("var", "C")), dict(d.get("ci") or {}))

    def __str__(self) -> str:
        return f"{self.coef:.4g} * {self.var}^{self.exp:.4f}"


def fit_power(
    x: np.ndarray, y: np.ndarray, var: str, bootstrap: int, seed: int, level: float, at: list[float]
) -> PowerLaw:
    """Power law of y on x, with intervals from resampling the points (the per-point optima) with replacement."""
    coef, e = power_fit(x, y)
    law = PowerLaw(coef, e, var)
    if bootstrap > 0 and len(x) >= 3:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(bootstrap):
            idx = rng.integers(0, len(x), len(x))
            if len(set(x[idx].tolist())) < 2:
                continue
            draws.append(power_fit(x[idx], y[idx]))
        if draws:
            q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
            cs, es = np.array([d[0] for d in draws]), np.array([d[1] for d in draws])
            law.ci = {"coef": np.percentile(cs, q).tolist(), "exp": np.percentile(es, q).tolist()}
            for v in at:
                law.ci[f"at:{v:.6g}"] = np.percentile(cs * v**es, q).tolist()
    return law


@dataclass
class HparamsLaw:
    """lr*(N or C) and batch*(D or C) in tokens, fitted from a tuning study; what `plan isoflop --hparams` follows.
    batch_alt: the batch law of the other variable, kept to compare (notes say which fits the points better)."""

    lr_law: PowerLaw
    batch_law: PowerLaw
    points: list[TunePoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lr_by_c: PowerLaw | None = None
    ci_level: float = 0.95
    bootstrap: int = 0
    batch_alt: PowerLaw | None = None

    kind = "hparams"

    def lr(self, params: float, budget: float) -> float:
        return self.lr_law(params if self.lr_law.var == "N" else budget)

    def batch_tokens(self, budget: float, tokens: float) -> float:
        """Tokens per step for a run of `tokens` tokens at compute `budget`."""
        return self.batch_law(tokens if self.batch_law.var == "D" else budget)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "lr": self.lr_law.to_dict(),
            "batch_tokens": self.batch_law.to_dict(),
            "ci_level": self.ci_level,
            "bootstrap": self.bootstrap,
            "points": [dict(p.__dict__) for p in self.points],
            "notes": list(self.notes),
        }
        if self.lr_by_c is not None:
            d["lr_of_c"] = self.lr_by_c.to_dict()
        if self.batch_alt is not None:
            d["batch_tokens_alt"] = self.batch_alt.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HparamsLaw:
        if d.get("kind") != cls.kind or "lr" not in d or "batch_tokens" not in d:
            raise FolderError(
                "not an hparams law (kind 'hparams' with lr and batch_tokens)",
                hint="write one by fitting a tuning study (`fit hparams`)",
                keys=("hparams",),
            )
        return cls(
            PowerLaw.from_dict(d["lr"]),
            PowerLaw.from_dict(d["batch_tokens"]),
            [TunePoint(**p) for p in d.get("points", [])],
            list(d.get("notes", [])),
            PowerLaw.from_dict(d["lr_of_c"]) if d.get("lr_of_c") else None,
            float(d.get("ci_level", 0.95)),
            int(d.get("bootstrap", 0)),
            PowerLaw.from_dict(d["batch_tokens_alt"]) if d.get("batch_tokens_alt") else None,
        )


def log_sd(law: PowerLaw, x: np.ndarray, y: np.ndarray) -> float:
    """Root mean square of log(y / law(x)): how far the points sit from the law (0.69: a factor of 2)."""
    return float(np.sqrt(np.mean((np.log(y) - np.log(law.coef * x**law.exp)) ** 2)))


def fit_hparams(
    points: list[TunePoint],
    *,
    lr_of: str = "N",
    batch_of: str = "D",
    bootstrap: int = 1000,
    seed: int = 42,
    level: float = 0.95,
) -> HparamsLaw:
    """Power laws through the per-point optima: lr* of N (or C) and batch* (tokens) of D (or C). batch* falls back to
    C, with a note, where a point does not say its D (laws fitted before batch*(D))."""
    if not points:
        raise FolderError("no tuned points to fit", hint="sweep the tuning study first")
    if lr_of not in ("N", "C"):
        raise ConfigError(f"unknown lr variable {lr_of!r}", hint="use N or C", keys=("lr_of",))
    if batch_of not in ("D", "C"):
        raise ConfigError(f"unknown batch variable {batch_of!r}", hint="use D or C", keys=("batch_of",))
    n = np.array([p.params for p in points], float)
    c = np.array([p.budget for p in points], float)
    lr = np.array([p.lr for p in points], float)
    bt = np.array([p.batch_tokens for p in points], float)
    notes = []
    lr_n = fit_power(n, lr, "N", bootstrap, seed, level, sorted(set(n.tolist())))
    lr_c = fit_power(c, lr, "C", bootstrap, seed, level, sorted(set(c.tolist())))
    batch = fit_power(c, bt, "C", bootstrap, seed, level, sorted(set(c.tolist())))
    batch_d = None
    if all(p.tokens for p in points):
        d = np.array([p.tokens for p in points], float)
        batch_d = fit_power(d, bt, "D", bootstrap, seed, level, sorted(set(d.tolist())))
        notes.append(
            f"batch* sits a factor {math.exp(log_sd(batch_d, d, bt)):.2f} (rms) from its law of D and "
            f"{math.exp(log_sd(batch, c, bt)):.2f} from its law of C"
        )
    elif batch_of == "D":
        notes.append("batch*(C) is used: the points do not say their token counts D")
    if batch_of == "D" and batch_d is not None:
        batch, batch_d = batch_d, batch
    for what, law in (("lr*(N)", lr_n), ("lr*(C)", lr_c), (f"batch*({batch.var})", batch)):
        if law.exp == 0.0:
            notes.append(f"{what}: the points span too little to fit an exponent; a constant (geometric mean) is used")
    edges = [f"{p.shape} at C={p.budget:.3g}: {', '.join(p.edge)}" for p in points if p.edge]
    if edges:
        notes.append("minimum on the grid's edge (widen the grid there): " + "; ".join(edges))
    main = lr_n if lr_of == "N" else lr_c
    other = lr_c if lr_of == "N" else lr_n
    return HparamsLaw(main, batch, points, notes, other if lr_of == "N" else None, level, bootstrap, batch_d)


REACH = 2.0
"""How far (a factor) beyond the points it was fitted on a law may be used before a plan says so."""


def reach_notes(
    law: HparamsLaw, params: list[float], budgets: list[float], tokens: list[float], use_lr: bool, use_batch: bool
) -> list[str]:
    """What a plan should know when it uses the laws beyond the points they were fitted on: for lr* and batch*, the
    factor past the fitted range and, where the fit has an exponent interval, the spread of values it allows there
    (the law pivoted at the geometric middle of its points with each end of the interval). A batch law fitted on
    two budgets and used 25x beyond them allowed anything from 8 to 1,200 sequences at 1e16, where 64 instead of
    128 moved that budget's optimal size by 15% (examples/tuned-gpu)."""
    if not law.points:
        return []
    out = []
    checks = []
    if use_lr:
        x = params if law.lr_law.var == "N" else budgets
        fitted = [p.params if law.lr_law.var == "N" else p.budget for p in law.points]
        checks.append(("lr*", law.lr_law, x, fitted, "", "sizes" if law.lr_law.var == "N" else "budgets"))
    if use_batch and law.batch_law.var == "D":
        checks.append(
            ("batch*", law.batch_law, tokens, [p.tokens or 0.0 for p in law.points], " tokens", "token counts")
        )
    elif use_batch:
        checks.append(("batch*", law.batch_law, budgets, [p.budget for p in law.points], " tokens", "budgets"))
    for name, pl, xs, fitted, unit, over in checks:
        lo, hi = min(fitted), max(fitted)
        far = max(xs, key=lambda v: max(v / hi, lo / v))
        factor = max(far / hi, lo / far)
        if factor < REACH:
            continue
        what = (
            f"{name}({pl.var}) was fitted on {over} {lo:.3g}..{hi:.3g} and is used at {far:.3g} ({factor:.0f}x beyond)"
        )
        e_ci = pl.ci.get("exp")
        if e_ci:
            mid = math.sqrt(lo * hi)
            ends = sorted(pl(mid) * (far / mid) ** e for e in e_ci)
            what += (
                f"; its exponent's {law.ci_level:.0%} interval {e_ci[0]:.2f}..{e_ci[1]:.2f} allows "
                f"{ends[0]:.3g}..{ends[1]:.3g}{unit} there (the law: {pl(far):.3g})"
            )
        out.append(what + f": tune at {over} nearer {far:.3g} (plan tune) or set the value yourself")
    return out
