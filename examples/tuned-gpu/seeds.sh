#!/usr/bin/env bash
# Replicates on the GPU (docs/reproductions/tuned-gpu.md, "Sizes closer together"), as it ran on the device:
# BUDGET=140 bash examples/tuned-gpu/seeds.sh from the repository root, OUT set to a results folder. The tuned
# settings (hparams.json) at 3e14 for 128x2 and 192x3, three seeds each; the first two commands are the device's setup.
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
S="python -m scalinglab"; W=/tmp/seeds; mkdir -p $W $OUT/s
END=$(( $(date +%s) + ${BUDGET:-150} ))
$S prep site-packages --tokenizer bytes --out $W/data --json > $OUT/s/prep.json 2> /dev/null
$S plan isoflop --data $W/data --budgets 3e14 --shapes 128x2,192x3 --seq-len 256 --hparams examples/tuned-gpu/hparams.json \
  --compile --max-epochs 2 --seeds 3 --out $W/study --json > $OUT/s/plan.json
timeout --signal=TERM $(( END - $(date +%s) )) $S sweep $W/study --gpus 0 > $OUT/s/sweep.log 2>&1
echo "sweep rc $? at $(date +%T)"
grep -h "done\]" $OUT/s/sweep.log
$S status $W/study --csv $OUT/s/seeds-runs.csv > /dev/null
