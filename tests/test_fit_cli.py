"""`scalinglab fit` end to end: JSON keys, published numbers through the CLI, bad input -> one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SHARED_DATA, needs_shared
from scalinglab.cli import main
from scalinglab.laws.registry import load_law

DATA = SHARED_DATA
MINCHILLA = str(DATA / "minchilla" / "isoflop_runs.csv")


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return e.value.code or 0, out, err


@needs_shared
def test_minchilla_approach2_json(capsys, tmp_path):
    code, out, err = run(
        capsys,
        "fit",
        MINCHILLA,
        "--approach",
        "2",
        "--n-col",
        "params",
        "--d-col",
        "tokens",
        "--c-col",
        "budget_flops",
        "--loss-col",
        "final_loss",
        "--max-loss",
        "2",
        "--json",
        "--window",
        "0",
        "--keep-unbracketed",
        "--out",
        str(tmp_path / "law.json"),
    )
    assert code == 0, err
    d = json.loads(out)["laws"]["approach2"]
    assert {"a", "b", "k_n", "k_d", "per_budget", "intervals", "residuals"} <= set(d)
    assert round(d["a"], 3) == 0.478 and len(d["per_budget"]) == 5
    law = load_law(tmp_path / "law.json")
    assert law.a_ == pytest.approx(d["a"])


@needs_shared
def test_estimates_mode(capsys):
    code, out, _ = run(
        capsys,
        "fit",
        "estimates",
        str(DATA / "perceiver-ar-scaling/estimates/approach_1.csv"),
        "--a",
        "0.5",
        "--b",
        "0.5",
        "--json",
    )
    d = json.loads(out)
    assert code == 0 and round(d["k_n"], 4) == 0.0877 and round(d["k_d"], 4) == 1.8960
    code, out, _ = run(capsys, "fit", "estimates", "--published", "chinchilla-approach-2", "--a", "0.49", "--b", "0.51")
    assert code == 0 and "N_opt = 0.1448 * C ** 0.49" in out and "D_opt = 1.1519 * C ** 0.51" in out


def _write(tmp_path, text):
    p = tmp_path / "runs.csv"
    p.write_text(text)
    return str(p)


GOOD = "N,D,loss\n" + "".join(
    f"{n:g},{d:g},{2 + 400 / n**0.34 + 400 / d**0.28:.5f}\n" for n in (1e7, 3e7, 1e8, 3e8) for d in (1e9, 1e10)
)


@pytest.mark.parametrize(
    "text,args,needle",
    [
        ("N,D\n1,2\n", [], "no loss column"),
        ("N,D,loss\n1e8,1e9,abc\n2e8,1e9,3\n", [], "line 2, column 'loss' is 'abc'"),
        ("N,D,loss\n1e8,1e9,3\n1e8,,3\n", [], "line 3, column 'D' is empty"),
        ("N,D,loss\n1e8,1e9,3\n-5,1e9,3\n", [], "line 3, column 'N' is -5"),
        ("N,D,loss\n1e8,1e9,3\n1e8,1e9,nan\n", [], "line 3, column 'loss'"),
        ("N,D,loss\n1e8,1e9,3\n2e8,1e9,2.9\n", ["--approach", "3"], "only 2 points"),
        (GOOD, ["--n-col", "params"], "column 'params' not in"),
        ("", [], "is empty"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, text, args, needle):
    code, out, err = run(capsys, "fit", _write(tmp_path, text), "--json", *args)
    assert code == 2
    assert needle in err and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


@needs_shared
def test_missing_file_and_bad_approach(capsys, tmp_path):
    assert run(capsys, "fit", str(tmp_path / "nope.csv"))[0] == 2
    code, _, err = run(capsys, "fit", MINCHILLA, "--approach", "4")
    assert code == 2 and "--approach" in err


def test_approach3_json_keys_and_d_from_c(capsys, tmp_path):
    rng = np.random.default_rng(0)
    rows = ["params,flops,loss"]
    for C in np.geomspace(1e18, 1e21, 5):
        for n in np.geomspace(3e7, 3e9, 6):
            d = C / (6 * n)
            rows.append(
                f"{n:.6g},{C:.6g},{(1.8 + 500 / n**0.35 + 2000 / d**0.37) * np.exp(0.002 * rng.standard_normal()):.6f}"
            )
    code, out, err = run(
        capsys,
        "fit",
        _write(tmp_path, "\n".join(rows) + "\n"),
        "--approach",
        "3",
        "--json",
        "--at",
        "1e18,1e19",
        "--jobs",
        "1",
    )
    assert code == 0, err
    top = json.loads(out)
    d = top["laws"]["approach3"]
    assert {"E", "A", "B", "alpha", "beta", "a", "b", "at"} <= set(d)
    assert any("D computed as C/(6N)" in n for n in top["notes"])
    assert abs(d["alpha"] - 0.35) < 0.02 and abs(d["beta"] - 0.37) < 0.02
    assert len(d["at"]) == 2 and d["at"][0]["loss"] > d["at"][1]["loss"]
