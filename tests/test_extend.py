"""`plan isoflop --extend STUDY`: new budgets and shapes (or shapes around a law's N_opt) join an existing study with
its settings; runs already trained are never retrained or touched (byte-equal files, same store rows)."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from pathlib import Path

import pytest

from scalinglab.accounting.shape import ModelShape
from scalinglab.laws.published import get_law
from scalinglab.plan.around import shapes_around, width_step
from test_sweep import cli, plan

RESULT_COLS = (
    "id",
    "idx",
    "spec",
    "status",
    "attempts",
    "final_val_loss",
    "min_val_loss",
    "final_train_loss",
    "tokens",
    "flops",
    "wall_time_s",
    "finished_at",
    "run_dir",
)


def snapshot(study: Path) -> dict:
    """Every file under runs/ (sha256) and every store row's results."""
    files = {
        str(p.relative_to(study)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((study / "runs").rglob("*"))
        if p.is_file()
    }
    con = sqlite3.connect(study / "study.db")
    con.row_factory = sqlite3.Row
    rows = {r["id"]: {k: r[k] for k in RESULT_COLS} for r in con.execute("SELECT * FROM runs")}
    con.close()
    return {"files": files, "rows": rows}


@pytest.mark.slow
def test_extend_trains_only_new_runs_and_leaves_old_ones_byte_equal(tiny_data, tmp_path):
    study = tmp_path / "S"
    first = plan(tiny_data, study, "3e9", "16x1,24x1")
    assert len(first["runs"]) == 2
    p = cli("sweep", str(study), "--workers", "1")
    assert p.returncode == 0, p.stderr
    before = snapshot(study)
    assert all(r["status"] == "done" for r in before["rows"].values())

    # a new budget with one shape already in the study and one new; 3e9 x 16x1 repeats a finished run: skipped
    p = cli("plan", "isoflop", "--extend", str(study), "--budgets", "3e9,6e9", "--shapes", "16x1,32x2", "--json")
    assert p.returncode == 0, p.stderr
    ext = json.loads(p.stdout)
    added = {r["id"] for r in ext["runs"]}
    assert added == {"C3e9_32x2", "C6e9_16x1", "C6e9_32x2"} and ext["skipped"] == ["C3e9_16x1"]
    # the study's own settings: batch 4 as planned, seq_len 32, and the runs' LR by the same rule as the first runs
    old_spec = json.loads(before["rows"]["C3e9_16x1"]["spec"])
    for r in ext["runs"]:
        assert r["batch_size"] == 4
    new16 = next(r for r in ext["runs"] if r["id"] == "C6e9_16x1")
    assert new16["lr"] == pytest.approx(old_spec["lr"], rel=1e-12)
    assert new16["beta2"] == pytest.approx(old_spec["beta2"], rel=1e-12)

    p = cli("sweep", str(study), "--workers", "1")
    assert p.returncode == 0, p.stderr
    after = snapshot(study)
    for f, h in before["files"].items():
        assert after["files"][f] == h, f"{f} changed"
    for rid, row in before["rows"].items():
        assert after["rows"][rid] == row, f"store row {rid} changed"
    assert len(after["rows"]) == 5 and all(r["status"] == "done" for r in after["rows"].values())
    # new rows come after the old ones in the claim order
    assert sorted(after["rows"][r]["idx"] for r in added) == [2, 3, 4]
    doc = (study / "study.toml").read_text()
    assert "[[extensions]]" in doc and "6000000000.0" in doc


def test_extend_around_a_law_places_shapes_around_n_opt(tiny_data, tmp_path):
    study = tmp_path / "S"
    plan(tiny_data, study, "3e9", "16x1,24x1,32x1", "--rule", "aspect:16")
    law = get_law("chinchilla-approach-3")
    (tmp_path / "law.json").write_text(json.dumps({"laws": {"approach3": law.to_dict()}}))
    p = cli(
        "plan",
        "isoflop",
        "--extend",
        str(study),
        "--budgets",
        "2e10",
        "--around",
        str(tmp_path / "law.json"),
        "--approach",
        "3",
        "--json",
    )
    assert p.returncode == 0, p.stderr
    ext = json.loads(p.stdout)
    n_opt = float(law.allocate(2e10)[0])
    assert ext["n_opt"]["2e+10"] == pytest.approx(n_opt, rel=1e-12)
    ns = sorted(r["params"] for r in ext["runs"] + ext["dropped"])
    assert len(ns) >= 3 and all(n_opt / 3 <= n <= 3 * n_opt for n in ns)
    assert min(ns) < n_opt < max(ns)  # the new budget's grid brackets the prediction
    # widths step by the study's own grid (gcd of 16, 24, 32 = 8) and depth by the rule given (aspect 16)
    assert all(r["d_model"] % 8 == 0 and r["n_layers"] == max(1, round(r["d_model"] / 16)) for r in ext["runs"])
    # the budgets' plans keep their notes: these aspect-16 shapes are under 4 layers deep
    assert any(r["n_layers"] < 4 for r in ext["runs"]) and any("layers deep" in n for n in ext["notes"])


def test_shapes_around_falls_back_to_the_nearest_three():
    t = ModelShape(128, 2, 262, 512)
    shapes = shapes_around(1.0e6, t, "minchilla", 64, spread=1.2)  # a coarse grid: nothing within 1.2x
    ns = [s.params() for s in shapes]
    assert len(shapes) == 3 and ns == sorted(ns)
    assert min(ns) < 1.0e6 < max(ns)
    assert width_step([128, 192, 576]) == 64 and width_step([16, 24]) == 8
    deep = shapes_around(1.0e6, t, "minchilla", 64, min_layers=4)  # the floor: 128x4, 192x4, 256x4 (not 128x2 ...)
    assert [(s.d_model, s.n_layers) for s in deep][:3] == [(128, 4), (192, 4), (256, 4)]


def test_extend_bad_input(tiny_data, tmp_path):
    study = tmp_path / "S"
    plan(tiny_data, study, "3e9", "16x1,24x1")
    cases = [
        (["--extend", str(tmp_path / "nope"), "--budgets", "1e10", "--shapes", "16x1"], "not a study"),
        (
            [
                "--data",
                str(tiny_data),
                "--out",
                str(tmp_path / "x"),
                "--seq-len",
                "32",
                "--budgets",
                "1e10",
                "--around",
                str(tmp_path / "law.json"),
            ],
            "--extend",
        ),
        (["--extend", str(study), "--budgets", "1e10"], "exactly one of"),
        (["--extend", str(study), "--budgets", "1e10", "--around", str(tmp_path / "missing.json")], "no law file"),
        (["--extend", str(study), "--budgets", "1e14", "--shapes", "16x1"], "no runs left to add"),
    ]
    for args, msg in cases:
        p = cli("plan", "isoflop", *args)
        assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1


def test_legacy_study_keeps_its_meaning(tiny_data, tmp_path):
    """A study planned before the recipe (no `recipe` key) extends with LR 0 (the trainer's Kaplan LR) and beta2 0.95."""
    study = tmp_path / "S"
    plan(tiny_data, study, "3e9", "16x1")
    toml = study / "study.toml"
    lines = [
        ln
        for ln in toml.read_text().splitlines()
        if not ln.startswith(("recipe =", "lr =", "warmup_steps =", "beta2 ="))
    ]
    toml.write_text("\n".join(lines) + "\n")
    con = sqlite3.connect(study / "study.db")
    spec = json.loads(con.execute("SELECT spec FROM runs").fetchone()[0])
    spec.update(lr=0.0, beta2=0.95)
    spec["schedule"]["warmup_steps"] = 0
    con.execute("UPDATE runs SET spec=?", (json.dumps(spec),))
    con.commit()
    con.close()
    p = cli("plan", "isoflop", "--extend", str(study), "--budgets", "6e9", "--shapes", "24x1", "--json")
    assert p.returncode == 0, p.stderr
    (r,) = json.loads(p.stdout)["runs"]
    assert r["lr"] == 0.0 and r["warmup_steps"] == 0 and r["beta2"] == 0.95 and r["batch_size"] == 4
    assert math.isfinite(r["tokens"])


def test_min_layers_is_kept_by_the_study_and_its_extensions(tiny_data, tmp_path):
    study = tmp_path / "S"
    base = ["plan", "isoflop", "--data", str(tiny_data), "--seq-len", "32", "--batch-size", "4", "--min-steps", "20"]
    p = cli(*base, "--budgets", "3e9", "--d-models", "16,24", "--min-layers", "4", "--out", str(study), "--json")
    assert p.returncode == 0, p.stderr
    first = json.loads(p.stdout)
    assert {(r["d_model"], r["n_layers"]) for r in first["runs"]} == {(16, 4), (24, 4)}  # minchilla alone: 0 layers
    assert not any("layers deep" in n for n in first["notes"])
    p = cli("plan", "isoflop", "--extend", str(study), "--budgets", "6e9", "--d-models", "32", "--json")
    assert p.returncode == 0, p.stderr
    assert [(r["d_model"], r["n_layers"]) for r in json.loads(p.stdout)["runs"]] == [(32, 4)]
    p = cli("plan", "isoflop", "--extend", str(study), "--budgets", "6e9", "--shapes", "16x2", "--json")
    assert p.returncode == 0, p.stderr  # explicit shapes keep their depth, and the plan says why that may hurt
    assert any("under 4 layers deep (16x2)" in n for n in json.loads(p.stdout)["notes"])
