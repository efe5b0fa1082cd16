"""`scalinglab demo`: prep -> plan isoflop -> sweep -> fit (approaches 2, 3) -> report on a built-in corpus.

Owns the presets (cpu, gpu, tiny) and the resumable stage driver; every stage calls the real command's code.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.folders import DataDir, RunDir, StudyDir

STAGES = ("prep", "plan", "sweep", "fit", "report")

# cpu: sized for 2 cores, about 8 minutes (README, "make demo"); tiny: the test suite's; gpu: one H100/H200, about
# 9 minutes on an H200 (docs/benchmarks.md: the whole demo in 542 s; budgets 1e15..3e16 were 2.6x the FLOPs).
# batch_size 0: each budget's batch size from the literature rule (plan/recipe.py), as for the learning rate.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": dict(
        source="stdlib",
        max_bytes=None,
        seq_len=64,
        batch_size=32,
        budgets="2e11,5e11,1.2e12",
        shapes="12x1,20x1,32x1,48x2,64x2",
        max_epochs=1.0,
        compile=False,
    ),
    "tiny": dict(
        source="stdlib",
        max_bytes="8M",
        seq_len=64,
        batch_size=32,
        budgets="6e10,1.2e11,2.4e11",
        shapes="16x1,24x1,32x1,48x2",
        max_epochs=1.0,
        compile=False,
        min_steps=20,
    ),
    "gpu": dict(
        source="site-packages",
        max_bytes=None,
        seq_len=512,
        batch_size=0,
        budgets="3e14,1e15,3e15,1e16",
        d_models="128:576:64",
        min_layers=4,
        max_epochs=2.0,
        compile=True,
    ),
}


def plan_args(p: dict[str, Any], data: Path, study: Path) -> list[str]:
    """The `scalinglab plan isoflop` command line of a preset."""
    grid = ["--shapes", p["shapes"]] if p.get("shapes") else ["--d-models", p["d_models"], "--rule", "minchilla"]
    if p.get("min_layers"):
        grid += ["--min-layers", str(p["min_layers"])]
    return [
        "plan",
        "isoflop",
        "--data",
        str(data),
        "--budgets",
        p["budgets"],
        *grid,
        "--seq-len",
        str(p["seq_len"]),
        "--batch-size",
        str(p["batch_size"]),
        "--max-epochs",
        f"{p['max_epochs']:g}",
        "--min-steps",
        str(p.get("min_steps", 50)),
        "--compile" if p["compile"] else "--no-compile",
        "--out",
        str(study),
    ]


class Demo:
    def __init__(
        self,
        out: str | os.PathLike,
        scale: str = "cpu",
        workers: int = 0,
        max_minutes: float | None = None,
        console: Any = None,
        mps: bool = False,
    ):
        if scale not in PRESETS:
            raise UserError(f"unknown scale {scale!r}", hint="use cpu or gpu", keys=("scale",))
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise UserError(
                f"output {out} is a file", hint="give a folder for the demo's outputs (default demo-out)", keys=("out",)
            )
        if workers < 0:
            raise UserError(
                f"bad worker count {workers}",
                hint="give how many CPU runs to train at once (0: all cores)",
                keys=("workers",),
            )
        if max_minutes is not None and not max_minutes > 0:
            raise UserError(
                f"bad time limit {max_minutes}", hint="give a positive number of minutes", keys=("max_minutes",)
            )
        self.out, self.scale, self.preset = out.resolve(), scale, PRESETS[scale]
        self.data, self.study = self.out / "data", self.out / "study"
        self.law_path, self.report_path, self.figures = (
            self.out / "law.json",
            self.out / "report.html",
            self.out / "figures",
        )
        self.workers, self.t0, self.mps = workers, time.time(), mps
        self.stage_s: dict[str, float] = {}
        self.deadline = self.t0 + 60 * max_minutes if max_minutes else None
        self.console = console
        self.counts: dict[str, int] = {}
        self.laws: dict[str, Any] = {}
        self.fitted: Any = None  # the StudyFit of the fit stage, rendered by the report stage

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"[bold]{text}[/bold]", highlight=False, soft_wrap=True)

    # -- stages ------------------------------------------------------------------------------------
    def prep(self) -> dict:
        from scalinglab.data.prep import prepare

        self._say(f"== prep: {self.preset['source']} -> {self.data} (bytes tokenizer)")
        s = prepare(
            [self.preset["source"]],
            self.data,
            tokenizer="bytes",
            max_bytes=self.preset["max_bytes"],
            progress=self.console is not None,
        )
        self._say(
            f"   {s['tokens_train']:,} train / {s['tokens_val']:,} val tokens"
            + (" (reused)" if s["reused"] else f" in {s['seconds']:.1f} s")
        )
        return s

    def plan(self) -> None:
        from scalinglab.cli.app import app
        from scalinglab.sweep.store import is_study

        if not DataDir(self.data).is_data():
            raise UserError(
                f"no prepared data in {self.data}",
                hint=f"run the demo's prep stage into {self.out} first",
                keys=("stage", "out"),
            )
        args = plan_args(self.preset, self.data, self.study)
        stamp = self.out / "demo.json"
        if is_study(self.study):
            old = json.loads(stamp.read_text()) if stamp.is_file() else {}
            if old.get("plan_args") == args:
                self._say(f"== plan: {self.study} exists with the same plan (reused)")
                return
            raise UserError(
                f"{self.study} holds a study planned with other settings",
                hint="delete it or choose another folder",
                keys=("out",),
            )
        self._say("== plan: " + " ".join(["scalinglab", *args]))
        app(args=args, standalone_mode=False)
        from scalinglab.fileio import atomic_write_json

        atomic_write_json(stamp, {"scale": self.scale, "plan_args": args})

    def sweep(self) -> dict[str, int]:
        from scalinglab.sweep.local import LocalExecutor, gpu_count, make_devices
        from scalinglab.sweep.mps import mps_for
        from scalinglab.sweep.packing import TURN_DEPTH
        from scalinglab.sweep.scheduler import sweep
        from scalinglab.sweep.table import make_console

        self._need_study()
        if gpu_count() and not self.workers:
            devices = make_devices(None, None, 0)  # packed per run: many small runs to a GPU, few large ones
        else:
            devices = make_devices(None, None, self.workers or os.cpu_count() or 1)
        where = ", ".join(
            f"{d.name} (up to {d.max_runs} runs"
            + (f"; compiled runs train one at a time, {TURN_DEPTH} placed)" if d.turns else ")")
            for d in devices
        )
        where += ", under NVIDIA MPS" if self.mps else ""
        self._say(
            f"== sweep: {where}" + (f", stopping {self._left():.0f} s from now at the latest" if self.deadline else "")
        )
        with mps_for(devices, self.mps):
            self.counts = sweep(
                self.study, LocalExecutor(devices), console=make_console(stderr=True), deadline=self.deadline
            )
        if self.counts.get("failed"):  # the fit goes on with the runs that finished
            sys.stderr.write(
                f"warning: {self.counts['failed']} run(s) failed (see {StudyDir(self.study).run_rel('<id>')}/{RunDir.LOG}); "
                f"`scalinglab sweep {self.study} --retry-failed` runs them again\n"
            )
        return self.counts

    def fit(self) -> dict[str, Any]:
        """fit_study on the study (approaches 2 and 3, `fit`'s defaults); writes law.json as `fit --out` does."""
        from scalinglab.analysis import FitOptions, fit_study
        from scalinglab.cli.fit_options import progress_bars
        from scalinglab.fileio import atomic_write_json
        from scalinglab.sweep.store import load_runs

        self._need_study()
        approaches = fit_approaches(self.budgets())
        lc = " and lc (L*(C) = E + A/C^γ)" if "lc" in approaches else ""
        self._say(f"== fit: approaches 2 (IsoFLOP parabolas), 3 (L = E + A/N^α + B/D^β){lc}")
        prog, cb = progress_bars(self.console is not None and sys.stderr.isatty())
        with prog or contextlib.nullcontext():
            # the tiny demo's few sizes per budget rarely straddle every minimum: its vertices are kept, with the
            # warnings that say so, so that approach 2 has a line to show
            opts = FitOptions(approaches=approaches, at=(self.target_budget(),), keep_unbracketed=True)
            self.fitted = fit_study(load_runs(self.study), opts, progress=cb)
        self.laws = self.fitted.laws
        for w in self.fitted.warnings:
            sys.stderr.write(f"warning: {w}\n")
        for ap, err in self.fitted.skipped.items():
            sys.stderr.write(f"warning: approach {ap} skipped: {err}\n")
        atomic_write_json(self.law_path, _json_safe(self.fitted.to_dict()))
        return self.laws

    def report(self) -> Path:
        from scalinglab.report.study import study_report

        self._need_study()
        if self.fitted is None:
            self.fit()
        self._say(f"== report: {self.report_path}")
        rep = study_report(self.fitted, f"Scaling-law report: {self.study.name}")
        rep.write(self.report_path, figures_dir=self.figures)
        for w in rep.warnings:
            sys.stderr.write(f"warning: report: {w}\n")
        return self.report_path

    # -- driver ------------------------------------------------------------------------------------
    def run(self, stage: str = "all") -> dict[str, Any]:
        """Run one stage or all of them; returns the summary (complete=False when the sweep ran out of time)."""
        if stage not in (*STAGES, "all"):
            raise UserError(f"unknown stage {stage!r}", hint=f"use one of {', '.join(STAGES)} or all", keys=("stage",))
        todo = STAGES if stage == "all" else (stage,)
        if todo[0] in ("prep", "plan"):
            self.out.mkdir(parents=True, exist_ok=True)
        for s in todo:
            if s in ("fit", "report") and stage == "all" and not self._sweep_complete():
                return self.summary(complete=False)
            t = time.time()
            getattr(self, s)()
            self.stage_s[s] = round(time.time() - t, 1)
        return self.summary(complete=self._sweep_complete() if stage in ("sweep", "all") else True)

    def summary(self, complete: bool = True) -> dict[str, Any]:
        counts = self._counts()
        d: dict[str, Any] = {
            "out": str(self.out),
            "scale": self.scale,
            "complete": complete,
            "counts": counts,
            "elapsed_s": round(time.time() - self.t0, 1),
            "stage_s": dict(self.stage_s),  # wall seconds of each stage run in this call
        }
        if not complete:
            d["message"] = (
                f"sweep stopped with {counts.get('done', 0)}/{sum(counts.values())} runs done; "
                "run the same command again to continue"
            )
            return d
        laws = self.laws or self._load_laws()
        if not laws:
            return d
        c = self.target_budget()
        d["budget"] = c
        for ap, law in laws.items():
            if ap == "lc":  # the compute-optimal loss alone: no allocation of its own
                d["lc"] = {"loss": float(law.predict_loss_at(c)), "E": law.E_, "A": law.A_, "gamma": law.gamma_}
                continue
            dd = law.to_dict()
            n, dt = law.allocate(c)
            row = {"a": dd["a"], "b": dd["b"], "N_opt": float(n), "D_opt": float(dt)}
            if hasattr(law, "predict_loss"):
                row["loss"] = float(law.predict_loss(n, dt))
            if ap == "3":
                row.update({k: dd[k] for k in ("E", "A", "B", "alpha", "beta")})
            d[f"approach{ap}"] = row
        if self.report_path.is_file():
            d["report"] = str(self.report_path)
        d["law"] = str(self.law_path)
        return d

    def budgets(self) -> list[float]:
        from scalinglab.study import load_study_toml

        return list(load_study_toml(self.study)["study"]["budgets"])

    def target_budget(self) -> float:
        return 10.0 * max(self.budgets())

    # -- helpers -----------------------------------------------------------------------------------
    def _need_study(self) -> None:
        from scalinglab.sweep.store import is_study

        if not is_study(self.study):
            raise UserError(
                f"no study in {self.study}",
                hint=f"run the demo's plan stage into {self.out} first",
                keys=("stage", "out"),
            )

    def _counts(self) -> dict[str, int]:
        from scalinglab.sweep.store import Store, is_study

        if not is_study(self.study):
            return {}
        with Store(self.study) as st:
            return st.counts()

    def _sweep_complete(self) -> bool:
        counts = self._counts()
        return bool(counts) and not counts.get("pending") and not counts.get("running")

    def _left(self) -> float:
        return max(0.0, (self.deadline or 0) - time.time())

    def _load_laws(self) -> dict[str, Any]:
        from scalinglab.laws.registry import law_from_dict, read_law_file

        if not self.law_path.is_file():
            return {}
        return {k.removeprefix("approach"): law_from_dict(v) for k, v in read_law_file(self.law_path).items()}


def fit_approaches(budgets: list[float]) -> tuple[str, ...]:
    """Approaches 2 and 3, and lc where the study has the 4 budgets its 3 parameters need: in 42 backtests on
    Porian et al.'s grids (docs/reproductions/predictions.md) lc predicted the optimal loss 16x ahead within 1.7%
    (median), approach 3 within 7.8%."""
    return ("2", "3", "lc") if len(set(budgets)) >= 4 else ("2", "3")


def _json_safe(x: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, as `fit --out` writes."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if hasattr(x, "item") and callable(x.item):
        return _json_safe(x.item())
    return x


def format_summary(d: dict[str, Any]) -> list[str]:
    """The demo's closing lines: the fitted laws, the recommendation at 10x the largest budget, the report."""
    from scalinglab.sweep.table import human

    if not d.get("complete", True):
        return [d["message"]]
    lines = []
    for ap, what in (("2", "IsoFLOP parabolas"), ("3", "parametric L(N, D)")):
        r = d.get(f"approach{ap}")
        if r and all(math.isfinite(r[k]) for k in ("a", "b")):
            lines.append(f"approach {ap} ({what}): N_opt ∝ C^{r['a']:.2f}, D_opt ∝ C^{r['b']:.2f}")
    r3 = d.get("approach3")
    if r3:
        lines.append(
            f"  L(N, D) = {r3['E']:.3f} + {r3['A']:.4g} / N^{r3['alpha']:.3f} + {r3['B']:.4g} / D^{r3['beta']:.3f}"
        )
    if "budget" in d:
        lines.append(f"at C = {d['budget']:.3g} FLOPs (10x the largest budget):")
        for ap in ("2", "3"):
            r = d.get(f"approach{ap}")
            if r:
                loss = f", predicted loss {r['loss']:.4f}" if r.get("loss") is not None else ""
                lines.append(
                    f"  approach {ap}: N_opt = {human(r['N_opt'])} params, D_opt = {human(r['D_opt'])} tokens"
                    f" ({r['D_opt'] / r['N_opt']:.1f} tokens/param){loss}"
                )
        rl = d.get("lc")
        if rl:
            lines.append(
                f"  lc (L*(C) = {rl['E']:.3f} + {rl['A']:.4g} / C^{rl['gamma']:.3f}): predicted optimal loss {rl['loss']:.4f}"
            )
    if d.get("report"):
        lines.append(f"report: {d['report']}")
    return lines
