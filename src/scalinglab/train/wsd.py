"""WSD branches (Hägele et al. 2024): one warmup-stable-decay run that, at each planned token count D_i,
clones its state, runs the cooldown to D_i, records the val loss in the run's branch lines and goes on.

A branch at D_i is the same run as an independent WSD run of D_i tokens with the same warmup: the trunk's
LR equals the branch's until the branch's cooldown starts, and batches are a pure function of the step.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from scalinglab.errors import UserError
from scalinglab.fileio import atomic_write_text
from scalinglab.folders import RunDir
from scalinglab.train.checkpoint import rng_state, set_rng_state
from scalinglab.train.schedule import cooldown_start
from scalinglab.train.step import evaluate, train_step


@dataclass(frozen=True)
class Branch:
    steps: int  # S_i: optimizer steps of the point (its cooldown ends here)
    start: int  # first cooldown step: schedule.cooldown_start(S_i, decay_frac), the Schedule's own rule
    budget: float | None  # planned C of the point, when the planner gave it


def read_branches(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's branch lines (a torn last line from a killed run is skipped)."""
    return RunDir(run_dir).read_branches()


class WsdBranches:
    """Built by the trainer for a spec with schedule 'wsd' and extra['branches'] (token counts)."""

    def __init__(self, spec, out: Path, total: int, sched, fpt: float, fresh: bool):
        self.spec, self.out, self.total, self.sched, self.fpt = spec, Path(out), total, sched, fpt
        self.file = RunDir(out).branches
        self.tps = spec.tokens_per_step
        budgets = list(spec.extra.get("branch_budgets") or [])
        toks = [int(t) for t in spec.extra["branches"]]
        if toks != sorted(set(toks)) or toks[0] <= 0:
            raise UserError(f"extra.branches must be increasing positive token counts, got {toks}: fix the run's spec")
        self.branches: list[Branch] = []
        for i, d in enumerate(toks):
            s = math.ceil(d / self.tps - 1e-9)
            if s > total:
                raise UserError(f"branch at {d:,} tokens lies past the run's end ({total * self.tps:,} tokens): "
                                "make the last extra.branches entry the run's own token count")
            start = cooldown_start(s, sched.decay_frac)
            if s < total and start < sched.warmup:
                raise UserError(f"branch at {d:,} tokens would start its cooldown (step {start}) inside the warmup "
                                f"({sched.warmup} steps): drop that branch or lower --warmup-steps")
            self.branches.append(Branch(s, start, float(budgets[i]) if i < len(budgets) else None))
        if fresh:  # a fresh start: lines from an earlier attempt may belong to another spec
            atomic_write_text(self.file, "")
        self.done = {int(r["steps"]) for r in read_branches(self.out)}

    @classmethod
    def from_spec(cls, spec, out: Path, total: int, sched, fpt: float, fresh: bool) -> WsdBranches | None:
        if not spec.extra.get("branches"):
            return None
        if spec.schedule != "wsd":
            raise UserError(f"extra.branches needs schedule 'wsd' (got {spec.schedule!r}): set schedule = \"wsd\"")
        return cls(spec, out, total, sched, fpt, fresh)

    def maybe_branch(self, step: int, model, raw, opt, batches, val, amp, params) -> None:
        """At a branch's cooldown start (before the trunk's step `step`): run the branch, then put the trunk back."""
        for b in self.branches:
            if b.start == step and b.steps < self.total and b.steps not in self.done:
                self._run(b, model, raw, opt, batches, val, amp, params)

    def _run(self, b: Branch, model, raw, opt, batches, val, amp, params) -> None:
        t0 = time.perf_counter()
        dropout_rng = getattr(raw, "dropout_rng", None)
        saved_model = {k: v.detach().clone() for k, v in raw.state_dict().items()}
        saved_opt = copy.deepcopy(opt.state_dict())
        saved_rng = rng_state(dropout_rng)
        sched = replace(self.sched, total=b.steps)  # same warmup and peak: the trunk is this run's stable phase
        loss_sum, bad = torch.zeros((), device=val.device), torch.zeros((), device=val.device)
        try:
            for s in range(b.start, b.steps):
                loss_sum.zero_()
                train_step(model, opt, batches.get(s), amp, sched(s), params, self.spec.grad_clip, loss_sum, bad)
            v = evaluate(raw, val, self.spec.batch_size, amp)  # uncompiled, as the trunk's evaluations
            train_loss = loss_sum.item()
        finally:
            raw.load_state_dict(saved_model)
            opt.load_state_dict(saved_opt)
            set_rng_state(saved_rng, dropout_rng)
        self._write(b, v if math.isfinite(v) else None, train_loss if math.isfinite(train_loss) else None, end=False,
                    branch_time_s=round(time.perf_counter() - t0, 3))

    def _write(self, b: Branch, val_loss, train_loss, end: bool, **more: Any) -> None:
        """Append the line of point `b` to the run's branch lines."""
        row = {"steps": b.steps, "tokens": b.steps * self.tps, "budget": b.budget,
               "flops_at_point": b.steps * self.tps * self.fpt, "val_loss": val_loss, "train_loss": train_loss,
               "branch_flops": (b.steps - b.start) * self.tps * self.fpt, "cooldown_steps": b.steps - b.start,
               **more, "end": end}
        if self.out.exists():
            with open(self.file, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        self.done.add(b.steps)

    def extra_flops(self) -> float:
        """FLOPs of the cooldowns branched off the trunk (the trunk's own decay is in its steps)."""
        return sum(float(r["branch_flops"]) for r in read_branches(self.out) if not r.get("end"))

    def close(self, rec) -> None:
        """End of the run: the last point is the run itself; the record's FLOPs include every cooldown."""
        if rec.status == "done" and self.total not in self.done:
            last = self.branches[-1]
            if last.steps != self.total:  # the run's own end was not among the planned points
                last = Branch(self.total, cooldown_start(self.total, self.sched.decay_frac), None)
            self._write(last, rec.final_val_loss, rec.final_train_loss, end=True)
        rec.flops += self.extra_flops()
