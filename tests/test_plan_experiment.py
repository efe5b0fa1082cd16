"""The Perceiver AR article's Tables 1-5 (Krasser 2023) to the printed digits, plan optimal, and the CLI."""

from __future__ import annotations

import json

import pytest

from scalinglab.accounting import ModelShape
from scalinglab.cli import main
from scalinglab.plan.experiment import plan_experiment
from scalinglab.plan.optimal import plan_optimal

BATCH = 80

# (vocab, seq_len, reference steps, models, Table setup rows as printed, Table ratio rows as printed or None)
TABLE_1 = """\
512 9 50000 2.05e+09 4.58e+07 7.86e+05 4.50e+07 5.93e+17 1.45e+16 5.78e+17 5.53e+17
624 11 31421 1.29e+09 7.27e+07 9.58e+05 7.17e+07 5.91e+17 1.27e+16 5.78e+17 5.54e+17
728 13 21231 8.70e+08 1.08e+08 1.12e+06 1.06e+08 5.89e+17 1.12e+16 5.78e+17 5.55e+17"""
TABLE_2 = """\
0.0172 0.0245 1.0455
0.0132 0.0216 1.0437
0.0104 0.0191 1.0414"""
TABLE_3 = """\
512 9 26144 1.07e+09 3.06e+07 1.84e+06 2.87e+07 2.16e+17 1.77e+16 1.98e+17 1.85e+17
584 10 18275 7.49e+08 4.35e+07 2.09e+06 4.14e+07 2.13e+17 1.55e+16 1.98e+17 1.86e+17
584 9 20298 8.31e+08 3.94e+07 2.09e+06 3.73e+07 2.15e+17 1.72e+16 1.98e+17 1.86e+17
432 7 46451 1.90e+09 1.76e+07 1.55e+06 1.60e+07 2.22e+17 2.38e+16 1.98e+17 1.83e+17
768 13 8276 3.39e+08 9.54e+07 2.75e+06 9.26e+07 2.09e+17 1.12e+16 1.98e+17 1.88e+17"""
TABLE_4 = """\
0.0600 0.0822 1.0723
0.0481 0.0724 1.0644
0.0531 0.0798 1.0635
0.0881 0.1074 1.0820
0.0289 0.0536 1.0505"""
TABLE_5 = """\
512 9 26144 1.07e+09 2.95e+07 7.86e+05 2.87e+07 2.06e+17 7.60e+15 1.98e+17 1.85e+17
584 10 18275 7.49e+08 4.23e+07 8.97e+05 4.14e+07 2.05e+17 6.63e+15 1.98e+17 1.86e+17"""

EXPERIMENTS = {
    "exp1": (32000, 2048, 50000, TABLE_1, TABLE_2),
    "exp2a": (262, 4096, 26144, TABLE_3, TABLE_4),
    "exp2b": (262, 2048, 26144, TABLE_5, None),
}


def _models(table):
    return [(int(r.split()[0]), int(r.split()[1])) for r in table.splitlines()]


def _run(vocab, seq, steps, table):
    base = ModelShape(512, 9, vocab, seq, arch="perceiver-ar", latents=512, prefix_dropout=0.5)
    return plan_experiment(base, (512, 9), steps, _models(table), BATCH)


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_setup_tables(exp):
    vocab, seq, steps, table, _ = EXPERIMENTS[exp]
    _, rows, _ = _run(vocab, seq, steps, table)
    got = [
        f"{r.d_model} {r.layers} {r.num_steps} "
        + " ".join(f"{x:.2e}" for x in (r.D_iso, r.N, r.N_cross, r.N_self, r.C, r.C_cross, r.C_self, r.C_self_approx))
        for r in rows
    ]
    assert got == table.splitlines()


@pytest.mark.parametrize("exp", ["exp1", "exp2a"])
def test_ratio_tables(exp):
    vocab, seq, steps, table, ratios_table = EXPERIMENTS[exp]
    _, rows, ratios = _run(vocab, seq, steps, table)
    keys = ("N_cross/N", "C_cross/C", "C_self/C_self_approx")
    assert [" ".join(f"{q[k]:.4f}" for k in keys) for q in ratios] == ratios_table.splitlines()
    # the same ratios from the budget-dependent rows
    assert [" ".join(f"{r.ratios[k]:.4f}" for k in keys) for r in rows] == ratios_table.splitlines()


def test_reference_budget_and_gpt_rows():
    c_ref, rows, _ = _run(32000, 2048, 50000, TABLE_1)
    assert f"{c_ref:.2e}" == "5.78e+17"
    assert c_ref == rows[0].C_self  # the article's assert: C_ref = self_attn(ref) * D_ref
    base = ModelShape(512, 8, 256, 1024)
    c, grows, gr = plan_experiment(base, (512, 8), 1000, [(512, 8), (768, 12)], 16)
    assert grows[0].num_steps == 1000 and grows[0].D_iso == 16 * 1024 * 1000
    assert all(r.N_cross == 0 and r.C_cross == 0 and r.C == r.C_self == pytest.approx(c) for r in grows)
    assert gr[0]["N_cross/N"] == 0


def test_plan_optimal_finds_the_articles_model():
    base = ModelShape(512, 9, 32000, 2048, arch="perceiver-ar", latents=512, prefix_dropout=0.5)
    plan = plan_optimal(5.78222555136e17, "chinchilla-approach-2", base)
    assert f"{plan.n_opt:.2e}" == "7.32e+07"
    names = [c.name for c in plan.candidates[:3]]
    assert "624x11" in names  # the article's predicted compute-optimal model
    assert all(abs(c.n_error) < 0.05 for c in plan.candidates)
    # experiment 2a: approach 1 -> N_opt 3.90e7 ~ model 3 (584x9, N_self 3.73e7); approach 2 -> 4.33e7 ~ model 2
    base2 = base.with_(vocab=262, seq_len=4096)
    p1 = plan_optimal(1.98e17, "chinchilla-approach-1", base2)
    p2 = plan_optimal(1.98e17, "chinchilla-approach-2", base2)
    assert f"{p1.n_opt:.2e}" == "3.90e+07" and f"{p2.n_opt:.2e}" == "4.33e+07"


# --- CLI ---------------------------------------------------------------------------------------------------------


def cli(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


EXP1 = [
    "plan",
    "experiment",
    "--arch",
    "perceiver-ar",
    "--vocab",
    "32000",
    "--seq-len",
    "2048",
    "--latents",
    "512",
    "--batch-size",
    "80",
    "--ref",
    "512x9",
    "--ref-steps",
    "50000",
    "--models",
    "512x9,624x11,728x13",
]


def test_cli_plan_experiment_json_and_table(capsys):
    code, out, _ = cli(capsys, *EXP1, "--json")
    assert code == 0
    rows = json.loads(out)
    keys = [
        "d_model",
        "layers",
        "num_steps",
        "D_iso",
        "N",
        "N_cross",
        "N_self",
        "C",
        "C_cross",
        "C_self",
        "C_self_approx",
    ]
    got = [" ".join(str(r[k]) if k in keys[:3] else f"{r[k]:.2e}" for k in keys) for r in rows]
    assert got == TABLE_1.splitlines()
    code, out, _ = cli(capsys, *EXP1)
    assert code == 0
    for line in TABLE_1.splitlines() + TABLE_2.splitlines():
        for cell in line.split():
            assert cell in out


def test_cli_flops_json(capsys):
    code, out, _ = cli(
        capsys,
        "flops",
        "--arch",
        "perceiver-ar",
        "--d-model",
        "512",
        "--layers",
        "9",
        "--vocab",
        "32000",
        "--seq-len",
        "2048",
        "--latents",
        "512",
        "--prefix-dropout",
        "0.5",
        "--json",
    )
    assert code == 0
    r = json.loads(out)
    assert f"{r['flops_per_token_self']:.2e} {r['flops_per_token_cross']:.2e}" == "2.82e+08 7.10e+06"
    assert f"{r['params']:.2e} {r['params_self']:.2e} {r['params_cross']:.2e}" == "4.58e+07 4.50e+07 7.86e+05"
    assert r["flops_per_token"] == r["flops_per_token_self"] + r["flops_per_token_cross"]
    code, out, _ = cli(
        capsys,
        "flops",
        "--arch",
        "gpt",
        "--d-model",
        "768",
        "--layers",
        "12",
        "--heads",
        "12",
        "--vocab",
        "50257",
        "--seq-len",
        "1024",
        "--convention",
        "chinchilla",
        "--json",
    )
    r = json.loads(out)
    assert r["params"] == 124_439_808 and r["convention"] == "chinchilla"
    assert set(r["conventions"]) == {"6n", "6n-nonembed", "kaplan", "chinchilla", "palm"}


def test_cli_plan_optimal(capsys):
    code, out, _ = cli(
        capsys,
        "plan",
        "optimal",
        "--budget",
        "5.78e17",
        "--law",
        "chinchilla-approach-2",
        "--arch",
        "perceiver-ar",
        "--vocab",
        "32000",
        "--seq-len",
        "2048",
        "--latents",
        "512",
        "--json",
    )
    assert code == 0
    r = json.loads(out)
    assert f"{r['N_opt']:.2e}" == "7.32e+07"
    assert "624x11" in [c["name"] for c in r["candidates"][:3]]


@pytest.mark.parametrize(
    "args,word",
    [
        (["flops", "--arch", "rnn", "--d-model", "8", "--layers", "1", "--vocab", "10", "--seq-len", "8"], "arch"),
        (["flops", "--d-model", "-8", "--layers", "1", "--vocab", "10", "--seq-len", "8"], "--d-model"),
        (
            [
                "flops",
                "--arch",
                "perceiver-ar",
                "--d-model",
                "8",
                "--layers",
                "1",
                "--vocab",
                "10",
                "--seq-len",
                "8",
                "--latents",
                "8",
            ],
            "latents",
        ),
        (
            ["flops", "--d-model", "8", "--layers", "1", "--vocab", "10", "--seq-len", "8", "--convention", "x"],
            "convention",
        ),
        (["plan", "optimal", "--budget", "1e18", "--law", "nope", "--vocab", "10", "--seq-len", "8"], "law"),
        (["plan", "optimal", "--budget", "-1", "--vocab", "10", "--seq-len", "8"], "budget"),
        (EXP1[:-2] + ["--models", "512x"], "shape"),
        (EXP1[:-4] + ["--ref-steps", "0", "--models", "512x9"], "steps"),
        (["flops", "--d-model", "8"], "Missing"),
        (["flops", "--d-model", "abc", "--layers", "1", "--vocab", "10", "--seq-len", "8"], "integer"),
    ],
)
def test_cli_bad_input_exit_2(capsys, args, word):
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and word in err
