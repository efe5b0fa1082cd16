#!/usr/bin/env bash
# Does the optimal batch follow each run's tokens D, and does a study planned that way predict 1e16 better?
# (docs/reproductions/tuned-gpu.md, "The batch size by tokens"). A batch-only tuning grid at 1e15 over four sizes (D from
# 1.4e7 to 2.8e8 tokens), each size at its lr from the first study's law (hparams.json); `fit hparams` fits batch*(D);
# then a study planned with that law: 1e14..1e15 as replicate.sh (two seeds, seed base 10) and six sizes at 1e16 (one
# seed). As it ran on the device, from the repository root with OUT set to a results folder:
#   BUDGET=540 bash examples/tuned-gpu/batchd.sh                                   # first call
#   STATE=.devcarry/batchd-state.tgz BUDGET=540 bash examples/tuned-gpu/batchd.sh   # next calls: restore, go on
# Finished runs are never retrained; a run cut off at the deadline restarts next call. The first two commands are the
# device's setup (tomli-w from .whl, the checkout on PYTHONPATH).
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
S="python -m scalinglab"; W=/tmp/batchd; G=$OUT/d; mkdir -p $W $G
END=$(( $(date +%s) + ${BUDGET:-540} ))
left() { echo $(( END - $(date +%s) )); }
[ -n "${STATE:-}" ] && [ -f "$STATE" ] && [ ! -f $W/tune/study.db ] && tar xzf "$STATE" -C $W
[ -f $W/data/meta.json ] || $S prep site-packages --tokenizer bytes --out $W/data --json > $G/prep.json 2> $G/prep.err
[ -f $W/tune/study.db ] || $S plan tune --data $W/data --budgets 1e15 --shapes 128x2,192x3,256x4,384x6 \
  --batch-sizes 16,32,64,128,256 --hparams examples/tuned-gpu/hparams.json --seq-len 256 --compile --max-epochs 2 \
  --seed 10 --out $W/tune --json > $G/tune-plan.json
nvidia-smi dmon -s u -d 5 > $G/dmon-$(date +%s).txt 2>&1 &
DM=$!
if [ ! -f $W/hparams-d.json ]; then
  timeout --signal=TERM $(left) $S sweep $W/tune --gpus 0 --per-gpu 10 > $G/sweep-tune-$(date +%s).log 2>&1
  echo "tune sweep rc $? at $(date +%T)"
  $S fit hparams $W/tune --out $W/hparams-d.json > $G/hparams-d.txt 2>&1 || rm -f $W/hparams-d.json
  cp $W/hparams-d.* $G/ 2>/dev/null
fi
if [ -f $W/hparams-d.json ] && [ ! -f $W/study/study.db ]; then
  P="$S plan isoflop --extend $W/study --json"
  $S plan isoflop --data $W/data --budgets 1e14 --shapes 96x2,128x2,176x2,192x3,240x3,256x4 --seq-len 256 \
    --hparams $W/hparams-d.json --compile --max-epochs 2 --seeds 2 --seed 10 --out $W/study --json > $G/plan-1e14.json
  $P --budgets 3e14 --shapes 128x2,176x2,192x3,240x3,256x4,304x4 > $G/plan-3e14.json
  $P --budgets 5e14 --shapes 128x2,176x2,192x3,240x3,256x4,304x4,320x5 > $G/plan-5e14.json
  $P --budgets 1e15 --shapes 176x2,192x3,240x3,256x4,304x4,320x5,384x6 > $G/plan-1e15.json
  $P --budgets 1e16 --shapes 256x4,288x4,320x5,384x5,448x6,512x6 --seeds 1 > $G/plan-1e16.json
fi
if [ -f $W/study/study.db ] && [ $(left) -gt 30 ]; then
  timeout --signal=TERM $(left) $S sweep $W/study --gpus 0 --per-gpu 8 > $G/sweep-$(date +%s).log 2>&1
  echo "study sweep rc $? at $(date +%T)"
  $S status $W/study --csv $G/batchd-runs.csv > /dev/null
  $S status $W/study | tail -4
fi
kill $DM
$S status $W/tune --csv $G/batchd-tune-runs.csv > /dev/null
cd $W && tar czf $G/batchd-state.tgz --exclude=checkpoint.pt --exclude='*.tmp*' --exclude=data tune study hparams-d.*
cd $OUT && tar czf d.tgz d && rm -rf d
