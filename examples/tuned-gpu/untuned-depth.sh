#!/usr/bin/env bash
# The untuned side by side of depth.sh: the same 4-layer sizes, budgets 1e14..1e15 and seeds (two per size, seed base
# 10), with the literature defaults instead of tuned laws (no --hparams: plan/recipe.py's lr, batch, warmup, beta2).
# Its 1e16 reference is the untuned study's four runs at 1e16 (check2.sh; 256x4, 320x5, 384x6, 448x7): the plan of
# those shapes with today's code goes into the state too (plan-1e16.json), to compare its settings with theirs.
# As it ran on the device, from the repository root with OUT set to a results folder:
#   BUDGET=480 bash examples/tuned-gpu/untuned-depth.sh
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
S="python -m scalinglab"; W=/tmp/udepth; L=$OUT/log.txt; mkdir -p $W
END=$(( $(date +%s) + ${BUDGET:-480} ))
left() { echo $(( END - $(date +%s) )); }
say() { echo "$(date +%T) $*" | tee -a $L; }
[ -f $W/data/meta.json ] || $S prep site-packages --tokenizer bytes --out $W/data --json > $W/prep.json 2>> $L
say "data ready"
if [ ! -f $W/untuned/study.db ]; then
  P="$S plan isoflop --extend $W/untuned --json"
  $S plan isoflop --data $W/data --budgets 1e14 --shapes 64x4,80x4,96x4,128x4,160x4,192x4 --seq-len 256 \
    --compile --max-epochs 2 --seeds 2 --seed 10 --out $W/untuned --json > $W/plan-1e14.json 2>> $L
  $P --budgets 3e14 --shapes 80x4,96x4,128x4,160x4,192x4,256x4 > $W/plan-3e14.json 2>> $L
  $P --budgets 5e14 --shapes 96x4,128x4,160x4,192x4,256x4,288x4 > $W/plan-5e14.json 2>> $L
  $P --budgets 1e15 --shapes 96x4,128x4,160x4,192x4,256x4,320x4 > $W/plan-1e15.json 2>> $L
  $S plan isoflop --data $W/data --budgets 1e16 --shapes 256x4,320x5,384x6,448x7 --seq-len 256 --compile \
    --max-epochs 2 --out $W/plan16 --json > $W/plan-1e16.json 2>> $L
fi
say "planned"
nvidia-smi dmon -s u -d 10 >> $OUT/dmon.txt 2>&1 &
DM=$!
timeout -k 15 --signal=TERM $(left) $S sweep $W/untuned --gpus 0 --per-gpu 8 > $W/sweep.log 2>&1
say "sweep rc $?"
kill $DM 2>/dev/null
grep -h "done\|failed\|interrupted" $W/sweep.log >> $L
$S status $W/untuned --csv $OUT/untuned-depth-runs.csv > /dev/null
$S status $W/untuned | tail -3 | tee -a $L
cd $W && tar czf $OUT/untuned-depth-state.tgz --exclude=checkpoint.pt --exclude='*.tmp*' --exclude=data untuned plan-*.json
