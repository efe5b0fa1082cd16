#!/usr/bin/env bash
# A second tuned study, trained whole by one trainer version with two seeds per size (docs/reproductions/tuned-gpu.md,
# "A fresh study with replicates"). As it ran on the device, from the repository root with OUT set to a results folder:
#   BUDGET=540 bash examples/tuned-gpu/replicate.sh            # first call
#   STATE=.devcarry/replicate-state.tgz SWEEP_ARGS="--per-gpu 6" BUDGET=540 bash ...   # next calls: restore, go on
# Budgets 1e13..1e15 (two more below the first study's 1e14) take sizes 1.5-2x apart around the first study's
# minima, at least 2 layers (1-layer models trained far worse there), two seeds each; 1e16 takes five sizes around
# the first study's observed optimum, one seed each. Settings: the first study's tuned laws
# (hparams.json). Finished runs are never retrained; a run cut off at the deadline restarts next call. The first two
# commands are the device's setup (tomli-w from .whl, the checkout on PYTHONPATH).
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
S="python -m scalinglab"; W=/tmp/replicate; G=$OUT/r; mkdir -p $W $G
END=$(( $(date +%s) + ${BUDGET:-540} ))
[ -n "${STATE:-}" ] && [ -f "$STATE" ] && [ ! -f $W/study/study.db ] && tar xzf "$STATE" -C $W
[ -f $W/data/meta.json ] || $S prep site-packages --tokenizer bytes --out $W/data --json > $G/prep.json 2> $G/prep.err
if [ ! -f $W/study/study.db ]; then
  P="$S plan isoflop --extend $W/study --json"
  $S plan isoflop --data $W/data --budgets 1e13 --shapes 64x2,96x2,128x2,176x2,192x3 --seq-len 256 \
    --hparams examples/tuned-gpu/hparams.json --compile --max-epochs 2 --seeds 2 --seed 10 --out $W/study \
    --json > $G/plan-1e13.json
  $P --budgets 3e13 --shapes 64x2,96x2,128x2,176x2,192x3,240x3 > $G/plan-3e13.json
  $P --budgets 1e14 --shapes 96x2,128x2,176x2,192x3,240x3,256x4 > $G/plan-1e14.json
  $P --budgets 3e14 --shapes 128x2,176x2,192x3,240x3,256x4,304x4 > $G/plan-3e14.json
  $P --budgets 5e14 --shapes 128x2,176x2,192x3,240x3,256x4,304x4,320x5 > $G/plan-5e14.json
  $P --budgets 1e15 --shapes 176x2,192x3,240x3,256x4,304x4,320x5,384x6 > $G/plan-1e15.json
  $P --budgets 1e16 --shapes 256x4,288x4,320x5,384x5,448x6 --seeds 1 > $G/plan-1e16.json
fi
echo "planned at $(date +%T), $(( END - $(date +%s) )) s left"
nvidia-smi dmon -s u -d 5 > $G/dmon-$(date +%s).txt 2>&1 &
DM=$!
timeout --signal=TERM $(( END - $(date +%s) )) $S sweep $W/study --gpus 0 ${SWEEP_ARGS:-} > $G/sweep-$(date +%s).log 2>&1
echo "sweep rc $? at $(date +%T)"
kill $DM
$S status $W/study --csv $G/replicate-runs.csv > /dev/null
$S status $W/study | tail -5
cd $W && tar czf $G/replicate-state.tgz --exclude=checkpoint.pt --exclude='*.tmp*' --exclude=data study
cd $OUT && tar czf r.tgz r && rm -rf r
