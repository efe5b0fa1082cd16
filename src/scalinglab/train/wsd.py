"""WSD branches (Hägele et al. 2024): one warmup-stable-decay run that, at each planned token count D_i,
clones its state, runs the cooldown to D_i, records the val loss in the run's branch lines and goes on.

A branch at D_i is the same run as an independent WSD run of D_i tokens with the same warmup: the trunk's
LR equals the branch's until the branch's cooldown starts, and batches are a pure function of the step.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scalinglab.errors import ConfigError
from scalinglab.fileio import atomic_write_text
from scalinglab.folders import RunDir
from scalinglab.train.schedule import cooldown_start
from scalinglab.train.step import Accum


@dataclass(frozen=True)
class Branch:
    steps: int  # S_i: optimizer steps of the point (its cooldown ends here)
    start: int  # first cooldown step: schedule.cooldown_start(S_i, decay_frac), the Schedule's own rule
    budget: float | None  # planned C of the point, when the planner gave it


def read_branches(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's branch lines (a torn last line from a killed run is skipped)."""
    return RunDir(run_dir).read_branches()


class WsdBranches:
    """A trainer hook (scalinglab.train.loop.Hook), built for a spec with schedule kind 'wsd' and branches."""

    def __init__(self, spec, out: Path, total: int, sched, fpt: float, fresh: bool):
        self.spec, self.out, self.total, self.sched, self.fpt = spec, Path(out), total, sched, fpt
        self.file = RunDir(out).branches
        self.tps = spec.tokens_per_step
        budgets = list(spec.schedule.branch_budgets)
        toks = list(spec.schedule.branches)
        if toks != sorted(set(toks)) or toks[0] <= 0:
            raise ConfigError(
                f"WSD branches must be increasing positive token counts, got {toks}",
                hint="fix the run's spec",
                keys=("schedule.branches",),
            )
        self.branches: list[Branch] = []
        for i, d in enumerate(toks):
            s = math.ceil(d / self.tps - 1e-9)
            if s > total:
                raise ConfigError(
                    f"branch at {d:,} tokens lies past the run's end ({total * self.tps:,} tokens)",
                    hint="make the last branch the run's own token count",
                    keys=("schedule.branches",),
                )
            start = cooldown_start(s, sched.decay_frac)
            if s < total and start < sched.warmup:
                raise ConfigError(
                    f"branch at {d:,} tokens would start its cooldown (step {start}) inside the warmup "
                    f"({sched.warmup} steps)",
                    hint="drop that branch or shorten the warmup",
                    keys=("schedule.branches", "schedule.warmup_steps"),
                )
            self.branches.append(Branch(s, start, float(budgets[i]) if i < len(budgets) else None))
        if fresh:  # a fresh start: lines from an earlier attempt may belong to another spec
            atomic_write_text(self.file, "")
        self.done = {int(r["steps"]) for r in read_branches(self.out)}

    @classmethod
    def from_spec(cls, spec, out: Path, total: int, sched, fpt: float, fresh: bool) -> WsdBranches | None:
        if not spec.schedule.branches:
            return None
        if spec.schedule.kind != "wsd":
            raise ConfigError(
                f"WSD branches need schedule 'wsd' (got {spec.schedule.kind!r})",
                hint="set the schedule to wsd",
                keys=("schedule.kind",),
            )
        return cls(spec, out, total, sched, fpt, fresh)

    def before_step(self, trainer, step: int) -> None:
        """At a branch's cooldown start (before the trunk's step `step`): run the branch, then put the trunk back."""
        for b in self.branches:
            if b.start == step and b.steps < self.total and b.steps not in self.done:
                self._run(b, trainer)

    def _run(self, b: Branch, trainer) -> None:
        t0 = time.perf_counter()
        saved = trainer.snapshot()
        sched = replace(self.sched, total=b.steps)  # same warmup and peak: the trunk is this run's stable phase
        acc = Accum.zeros(trainer.device)
        try:
            for s in range(b.start, b.steps):
                acc.loss_sum.zero_()
                trainer.step(trainer.batches.get(s), sched(s), acc)
            v = trainer.evaluate()
            train_loss = acc.loss_sum.item()
        finally:
            trainer.restore(saved)
        self._write(
            b,
            v if math.isfinite(v) else None,
            train_loss if math.isfinite(train_loss) else None,
            end=False,
            branch_time_s=round(time.perf_counter() - t0, 3),
        )

    def _write(self, b: Branch, val_loss, train_loss, end: bool, **more: Any) -> None:
        """Append the line of point `b` to the run's branch lines."""
        row = {
            "steps": b.steps,
            "tokens": b.steps * self.tps,
            "budget": b.budget,
            "flops_at_point": b.steps * self.tps * self.fpt,
            "val_loss": val_loss,
            "train_loss": train_loss,
            "branch_flops": (b.steps - b.start) * self.tps * self.fpt,
            "cooldown_steps": b.steps - b.start,
            **more,
            "end": end,
        }
        if self.out.exists():
            with open(self.file, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        self.done.add(b.steps)

    def extra_flops(self) -> float:
        """FLOPs of the cooldowns branched off the trunk (the trunk's own decay is in its steps)."""
        return sum(float(r["branch_flops"]) for r in read_branches(self.out) if not r.get("end"))

    def close(self, trainer, rec) -> None:
        """End of the run: the last point is the run itself; the record's FLOPs include every cooldown."""
        if rec.status == "done" and self.total not in self.done:
            last = self.branches[-1]
            if last.steps != self.total:  # the run's own end was not among the planned points
                last = Branch(self.total, cooldown_start(self.total, self.sched.decay_frac), None)
            self._write(last, rec.final_val_loss, rec.final_train_loss, end=True)
        rec.flops += self.extra_flops()
