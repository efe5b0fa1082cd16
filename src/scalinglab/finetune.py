"""The fixed-compute fine-tuning study (C. Cerisara's exercise "Make your scaling law", fine-tuning distilGPT2 on
WikiText-2): a fixed step budget spent as budget/d epochs over d samples.

Per model and data size: train/val curves, final and best val loss; over models: the isoFLOP curve and its minimum.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scalinglab.errors import UserError


@dataclass
class Protocol:
    """The exercise's settings: HF Trainer defaults (AdamW, no weight decay, linear decay to 0, clip 1.0).

    eval_every: validate every this many steps (and before the first and after the last); 0 picks about 10
    evaluations per run; 1 validates after every step, as the exercise does."""

    steps: int = 100
    batch_size: int = 1
    seq_len: int = 64
    eval_samples: int = 10
    lr: float = 1e-4
    seed: int = 0
    max_grad_norm: float = 1.0
    eval_every: int = 0
    eval_batch: int = 32

    def eval_steps(self, steps: int) -> int:
        return self.eval_every if self.eval_every > 0 else max(1, math.ceil(steps / 10))


def samples(arr: np.ndarray, seq_len: int, n: int, what: str) -> np.ndarray:
    """The first n full, non-overlapping seq_len-token chunks (the exercise keeps only full-length chunks)."""
    have = len(arr) // seq_len
    if n > have:
        raise UserError(
            f"{what} has {have} samples of {seq_len} tokens, fewer than the {n} asked",
            hint="ask for fewer samples or use more data",
            keys=("data_sizes", "eval_samples"),
        )
    return np.asarray(arr[: n * seq_len], dtype=np.int64).reshape(n, seq_len)


def order(d: int, n: int, seed: int) -> np.ndarray:
    """n sample indices: a fresh shuffle of the d samples each epoch (the Trainer's random sampler), cut at n."""
    rng = np.random.default_rng([seed, d])
    epochs = math.ceil(n / d)
    return np.concatenate([rng.permutation(d) for _ in range(epochs)])[:n]


def lm_loss(lm, x: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss within each sample (labels = inputs, shifted, as the LM data collator does)."""
    logits = lm.logits(x)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))


def val_loss(lm, val: torch.Tensor, batch: int = 32) -> float:
    """Mean over validation samples of each one's mean token loss: the exercise's eval at batch size 1, computed
    `batch` samples per forward pass (samples are all seq_len long, so the per-sample means are the same)."""
    lm.module.eval()
    per_sample = []
    with torch.no_grad():
        for i in range(0, len(val), batch):
            x = val[i : i + batch]
            logits = lm.logits(x)
            tok = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="none")
            per_sample.append(tok.view(len(x), -1).mean(dim=1))
    return float(torch.cat(per_sample).mean().item())


class Progress:
    """A rich bar on a terminal. Elsewhere (a log file) a plain line at the end of each (model, data size) run, and
    at an evaluation when the last line is PLAIN_EVERY_S old, so a long study shows life without flooding the log."""

    PLAIN_EVERY_S = 10.0

    def __init__(self, show: bool, total: int):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.last_line = self.t0
        self.bar = None
        self.plain = show and not self.console.is_terminal
        if show and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.bar.add_task("fine-tuning", total=total)
            self.bar.start()

    def step(self, label: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, description=f"fine-tuning {label}")

    def evaluated(self, label: str, step: int, steps: int, loss: float) -> None:
        now = time.perf_counter()
        if self.plain and (step == steps or now - self.last_line >= self.PLAIN_EVERY_S):
            self.last_line = now
            print(
                f"fine-tuning {label}: step {step}/{steps} val {loss:.4f} "
                f"[{self.done}/{self.total} steps, {now - self.t0:.0f} s]",
                file=self.console.file,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run_one(
    lm, train: np.ndarray, val: torch.Tensor, d: int, p: Protocol, steps: int, progress: Progress | None = None
) -> dict:
    """Fine-tune a copy of lm for `steps` steps on the first d samples; evaluate before the first step, every
    p.eval_steps(steps) steps and after the last. The curve has every step's train loss, val_loss None between."""
    work = copy.copy(lm)
    work.module = copy.deepcopy(lm.module)
    torch.manual_seed(p.seed)  # dropout masks, if the model has dropout
    idx = order(d, steps * p.batch_size, p.seed)
    opt = torch.optim.AdamW(work.module.parameters(), lr=p.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / steps))
    every, label = p.eval_steps(steps), f"{Path(lm.source).name} d={d}"
    curve = [{"step": 0, "epoch": 0.0, "lr": p.lr, "train_loss": None, "val_loss": val_loss(work, val, p.eval_batch)}]
    for step in range(steps):
        work.module.train()
        x = torch.from_numpy(train[idx[step * p.batch_size : (step + 1) * p.batch_size]]).to(work.device)
        lr = sched.get_last_lr()[0]
        loss = lm_loss(work, x)
        if not math.isfinite(loss.item()):
            raise UserError(
                f"loss became {loss.item()} at step {step + 1} (data size {d})",
                hint="lower the learning rate",
                keys=("lr",),
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(work.module.parameters(), p.max_grad_norm)
        opt.step()
        sched.step()
        evaluate = (step + 1) % every == 0 or step + 1 == steps
        v = val_loss(work, val, p.eval_batch) if evaluate else None
        curve.append(
            {
                "step": step + 1,
                "epoch": (step + 1) * p.batch_size / d,
                "lr": lr,
                "train_loss": loss.item(),
                "val_loss": v,
            }
        )
        if progress is not None:
            progress.step(label)
            if evaluate:
                progress.evaluated(label, step + 1, steps, v)
    evals = [c for c in curve[1:] if c["val_loss"] is not None]
    best = min(evals, key=lambda c: c["val_loss"])
    return {
        "data_size": d,
        "epochs": steps * p.batch_size / d,
        "steps": steps,
        "initial_val_loss": curve[0]["val_loss"],
        "final_val_loss": evals[-1]["val_loss"],
        "best_val_loss": best["val_loss"],
        "best_step": best["step"],
        "eval_every": every,
        "final_train_loss": curve[-1]["train_loss"],
        "curve": curve,
    }


def finetune_budget(
    models: list[str],
    data: str | Path,
    data_sizes: list[int],
    p: Protocol,
    budget_flops: float = 0.0,
    split: str = "train",
    val_split: str = "val",
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """The study. One model: `p.steps` steps per data size. Several models: one compute budget C
    (budget_flops, or 6 N steps B L of the first model), each model gets C / (6 N B L) steps."""
    from scalinglab.data.loader import TokenData
    from scalinglab.evaluate.lm import check_same_tokenizer, load_lm

    if not models:
        raise UserError("no model given", hint="give one or more model folders", keys=("model", "models"))
    if not data_sizes or min(data_sizes) < 1:
        raise UserError("data sizes must be positive sample counts", hint="e.g. 100,50,25", keys=("data_sizes",))
    if p.steps < 1 or p.batch_size < 1 or p.seq_len < 2 or p.eval_samples < 1 or p.eval_every < 0 or p.eval_batch < 1:
        raise UserError(
            "steps, batch size, eval samples and eval batch must be >= 1, eval every >= 0 and the sequence length >= 2",
            keys=("steps", "batch_size", "eval_samples", "eval_batch", "eval_every", "seq_len"),
        )
    td = TokenData(data)
    train = samples(td.split(split), p.seq_len, max(data_sizes), f"split {split!r} of {data}")
    val_np = samples(td.split(val_split), p.seq_len, p.eval_samples, f"split {val_split!r} of {data}")
    tokens_per_step = p.batch_size * p.seq_len
    lms = [load_lm(m, device) for m in models]
    for lm in lms:
        check_same_tokenizer(lm, data)
        if p.seq_len > lm.max_len:
            raise UserError(
                f"sequence length {p.seq_len} is longer than the context {lm.max_len} of {lm.source}",
                hint=f"use {lm.max_len} or less",
                keys=("seq_len",),
            )
        lm.check_ids(int(max(train.max(), val_np.max())), f"data {data}")
    C = budget_flops or 6.0 * lms[0].n_params * p.steps * tokens_per_step
    plan = [
        (
            lm,
            p.steps if len(lms) == 1 and not budget_flops else max(1, round(C / (6.0 * lm.n_params * tokens_per_step))),
        )
        for lm in lms
    ]
    rows, curves = [], {}
    bar = Progress(progress, sum(s for _, s in plan) * len(data_sizes))
    try:
        for lm, steps in plan:
            val = torch.from_numpy(val_np).to(lm.device)
            for d in data_sizes:
                r = run_one(lm, train, val, d, p, steps, bar)
                curves[f"{lm.source}|{d}"] = r.pop("curve")
                rows.append(
                    {
                        "model": lm.source,
                        "params": lm.n_params,
                        **r,
                        "tokens": steps * tokens_per_step,
                        "flops": 6.0 * lm.n_params * steps * tokens_per_step,
                    }
                )
    finally:
        bar.close()
    out = {
        "protocol": asdict(p),
        "data": str(data),
        "budget_flops": C,
        "flops_convention": "6N",
        "rows": rows,
        "curves": curves,
    }
    if len(lms) > 1:
        out["isoflop"] = isoflop(rows)
    return out


def isoflop(rows: list[dict]) -> dict:
    """Per model its best data size (lowest final val loss); the compute-optimal model is the minimum, refined by a
    parabola in log N through >= 3 points only when that minimum is bracketed (a larger and a smaller model both
    have a higher loss) and the vertex lies between them; otherwise `note` says why there is no fit."""
    best: dict[str, dict] = {}
    for r in rows:
        if r["model"] not in best or r["final_val_loss"] < best[r["model"]]["final_val_loss"]:
            best[r["model"]] = r
    pts = sorted(best.values(), key=lambda r: r["params"])
    points = [
        {
            "model": r["model"],
            "params": r["params"],
            "steps": r["steps"],
            "data_size": r["data_size"],
            "final_val_loss": r["final_val_loss"],
        }
        for r in pts
    ]
    opt = min(points, key=lambda r: r["final_val_loss"])
    res = {
        "points": points,
        "optimal_model": opt["model"],
        "optimal_params": opt["params"],
        "optimal_loss": opt["final_val_loss"],
        "fit": None,
        "note": "",
    }
    i = points.index(opt)
    if len(points) < 3:
        res["note"] = f"no parabola: {len(points)} model(s); 3 or more around the minimum refine it"
    elif i in (0, len(points) - 1):
        side = "smallest" if i == 0 else "largest"
        more = "smaller" if i == 0 else "larger"
        res["note"] = (
            f"minimum not bracketed: the lowest loss is at the {side} model ({opt['model']}); "
            f"no parabola fitted, add {more} models"
        )
    else:
        x = np.log10([q["params"] for q in points])
        a, b, c = np.polyfit(x, [q["final_val_loss"] for q in points], 2)
        if a > 0 and x[i - 1] <= -b / (2 * a) <= x[i + 1]:
            res["fit"] = {"a": a, "b": b, "c": c, "params_opt": 10 ** (-b / (2 * a)), "loss_opt": c - b * b / (4 * a)}
        else:
            res["note"] = "no parabola: the losses do not curve upward around the minimum"
    return res


def write_outputs(res: dict, out: str | Path) -> list[Path]:
    """results.json, curves.csv and the PNG plots, each written atomically."""
    import csv
    import io

    from scalinglab.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", _json_safe(res))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "data_size", "step", "epoch", "lr", "train_loss", "val_loss"])
    for key, curve in res["curves"].items():
        model, d = key.rsplit("|", 1)
        for c in curve:
            w.writerow([model, d, c["step"], c["epoch"], c["lr"], c["train_loss"], c["val_loss"]])
    atomic_write_text(out / "curves.csv", buf.getvalue())
    files = [out / "results.json", out / "curves.csv"]
    for name, png in plots(res).items():
        atomic_write_bytes(out / name, png)
        files.append(out / name)
    return files


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def plots(res: dict) -> dict[str, bytes]:
    """finetune_budget.png (final/best val loss vs data size), curves.png, and isoflop.png for several models."""
    import io

    from scalinglab.report.figures import new_figure

    def png(fig) -> bytes:
        b = io.BytesIO()
        fig.savefig(b, format="png", dpi=110)
        return b.getvalue()

    rows, p = res["rows"], res["protocol"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    label = {m: f"{Path(m).name} ({next(r['params'] for r in rows if r['model'] == m):,} params)" for m in models}
    out = {}
    fig = new_figure()
    ax = fig.add_subplot()
    for i, m in enumerate(models):
        rs = sorted((r for r in rows if r["model"] == m), key=lambda r: r["data_size"])
        d = [r["data_size"] for r in rs]
        ax.plot(d, [r["final_val_loss"] for r in rs], "o-", color=f"C{i}", label=f"final, {label[m]}")
        ax.plot(d, [r["best_val_loss"] for r in rs], "s--", color=f"C{i}", alpha=0.6, label=f"best, {label[m]}")
        ax.axhline(
            rs[0]["initial_val_loss"], color=f"C{i}", lw=0.8, ls=":", label="before fine-tuning" if i == 0 else None
        )
    ax.set_xscale("log")
    sizes = sorted({r["data_size"] for r in rows})
    ax.set_xticks(sizes, [str(d) for d in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training samples d (epochs = steps x batch / d)")
    ax.set_ylabel(f"val loss ({p['eval_samples']} samples)")
    ax.set_title(
        f"Fixed budget fine-tuning: {p['steps']} steps, batch {p['batch_size']}, {p['seq_len']} tokens"
        if len(models) == 1
        else f"Fixed compute {res['budget_flops']:.3g} FLOPs"
    )
    ax.legend(fontsize=7)
    out["finetune_budget.png"] = png(fig)

    fig = new_figure(6.4, 4.4 * len(models))
    for i, m in enumerate(models):
        ax = fig.add_subplot(len(models), 1, i + 1)
        for j, (key, curve) in enumerate((k, c) for k, c in res["curves"].items() if k.rsplit("|", 1)[0] == m):
            d = key.rsplit("|", 1)[1]
            ev = [c for c in curve if c["val_loss"] is not None]
            ax.plot([c["step"] for c in ev], [c["val_loss"] for c in ev], ".-", color=f"C{j}", label=f"d={d} val")
            ax.plot(
                [c["step"] for c in curve[1:]], [c["train_loss"] for c in curve[1:]], color=f"C{j}", alpha=0.3, lw=0.8
            )
        ax.set_xlabel("step")
        ax.set_ylabel("loss (faint: train)")
        ax.set_title(label[m])
        ax.legend(fontsize=7)
    out["curves.png"] = png(fig)

    if "isoflop" in res:
        iso = res["isoflop"]
        fig = new_figure()
        ax = fig.add_subplot()
        n = [q["params"] for q in iso["points"]]
        ax.plot(n, [q["final_val_loss"] for q in iso["points"]], "o", label="best data size per model")
        if iso["fit"]:
            f = iso["fit"]
            xs = np.linspace(np.log10(min(n)), np.log10(max(n)), 100)
            ax.plot(
                10**xs, f["a"] * xs**2 + f["b"] * xs + f["c"], "-", label=f"parabola, N_opt = {f['params_opt']:.3g}"
            )
        ax.axvline(iso["optimal_params"], ls=":", color="k", label=f"lowest: {iso['optimal_params']:,} params")
        ax.set_xscale("log")
        ax.set_xlabel("parameters N")
        ax.set_ylabel("final val loss")
        ax.set_title(f"Fine-tuning isoFLOP, C = {res['budget_flops']:.3g} FLOPs (6N)")
        ax.legend(fontsize=7)
        out["isoflop.png"] = png(fig)
    return out
