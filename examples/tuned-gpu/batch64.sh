#!/usr/bin/env bash
# Is the 1e16 optimum of replicate.sh moved by the batch size? The fitted batch law (hparams.json: exponent 0.36,
# 95% interval -0.27..1.0, from two budgets whose best batch sat at the grid's edge) put 128 sequences at 1e16; this
# trains four of the 1e16 sizes again with 64, everything else as replicate.sh (same LR law, seed 10). As it ran on the
# device: BUDGET=420 bash examples/tuned-gpu/batch64.sh from the repository root, OUT set to a results folder.
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
S="python -m scalinglab"; W=/tmp/b64; G=$OUT/b; mkdir -p $W $G
END=$(( $(date +%s) + ${BUDGET:-420} ))
$S prep site-packages --tokenizer bytes --out $W/data --json > $G/prep.json 2> $G/prep.err
$S plan isoflop --data $W/data --budgets 1e16 --shapes 256x4,320x5,384x5,448x6 --seq-len 256 --batch-size 64 \
  --hparams examples/tuned-gpu/hparams.json --compile --max-epochs 2 --seed 10 --out $W/study --json > $G/plan.json
timeout --signal=TERM $(( END - $(date +%s) )) $S sweep $W/study --gpus 0 --per-gpu 4 > $G/sweep.log 2>&1
echo "sweep rc $? at $(date +%T)"
$S status $W/study --csv $G/batch64-runs.csv > /dev/null
$S status $W/study | tail -4
cd $OUT && tar czf b.tgz b && rm -rf b
