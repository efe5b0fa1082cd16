#!/usr/bin/env bash
# Two checks of why batchd.sh's 1e16 prediction misses, beside batchd.sh's 1e16 runs (same data, same laws:
# hparams-d.json, seed base 10). (docs/reproductions/tuned-gpu.md, "Shallow models at small budgets").
# 1. Depth: the small budgets of every study so far took 2- and 3-layer models (the d_model/64 rule), and Kaplan et
#    al. (2020, section 3.1) found 1-2 layer models off the trend that deeper ones share. Here 1e14..1e15 again, every
#    size 4 layers deep, two seeds per size.
# 2. Learning rate at 1e16: two of batchd.sh's 1e16 sizes at a lower and a higher fixed lr (the law's lr* there was
#    extrapolated up to 6x beyond the sizes it was tuned on).
# As it ran on the device, from the repository root with OUT set to a results folder:
#   BUDGET=520 bash examples/tuned-gpu/depth.sh                                   # first call
#   STATE=.devcarry/depth-state.tgz BUDGET=520 bash examples/tuned-gpu/depth.sh   # next calls: restore, go on
# Finished runs are never retrained; a run cut off at the deadline restarts next call. $OUT gets few files (the
# device sends back at most 8): log.txt, dmon.txt, depth-state.tgz and the runs tables.
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
S="python -m scalinglab"; W=/tmp/depth; L=$OUT/log.txt; mkdir -p $W
END=$(( $(date +%s) + ${BUDGET:-520} ))
left() { echo $(( END - $(date +%s) )); }
say() { echo "$(date +%T) $*" | tee -a $L; }
[ -n "${STATE:-}" ] && [ -f "$STATE" ] && [ ! -f $W/study/study.db ] && tar xzf "$STATE" -C $W
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv >> $L 2>&1
H=examples/tuned-gpu/hparams-d.json
[ -f $W/data/meta.json ] || $S prep site-packages --tokenizer bytes --out $W/data --json > $W/prep.json 2>> $L
say "data ready"
for lr in 8e-4 3.2e-3; do
  [ -f $W/lr$lr/study.db ] || $S plan isoflop --data $W/data --budgets 1e16 --shapes 320x5,448x6 --seq-len 256 \
    --hparams $H --lr $lr --compile --max-epochs 2 --seed 10 --out $W/lr$lr --json > $W/plan-lr$lr.json 2>> $L
done
if [ ! -f $W/study/study.db ]; then
  P="$S plan isoflop --extend $W/study --json"
  $S plan isoflop --data $W/data --budgets 1e14 --shapes 64x4,80x4,96x4,128x4,160x4,192x4 --seq-len 256 \
    --hparams $H --compile --max-epochs 2 --seeds 2 --seed 10 --out $W/study --json > $W/plan-1e14.json 2>> $L
  $P --budgets 3e14 --shapes 80x4,96x4,128x4,160x4,192x4,256x4 > $W/plan-3e14.json 2>> $L
  $P --budgets 5e14 --shapes 96x4,128x4,160x4,192x4,256x4,288x4 > $W/plan-5e14.json 2>> $L
  $P --budgets 1e15 --shapes 96x4,128x4,160x4,192x4,256x4,320x4 > $W/plan-1e15.json 2>> $L
fi
say "planned"
nvidia-smi dmon -s u -d 10 >> $OUT/dmon.txt 2>&1 &
DM=$!
for lr in 8e-4 3.2e-3; do
  timeout -k 15 --signal=TERM $(left) $S sweep $W/lr$lr --gpus 0 --per-gpu 2 > $W/sweep-lr$lr.log 2>&1 &
done
(sleep 90; nvidia-smi >> $L 2>&1; ps -eo pid,etimes,pcpu,rss,args --sort=-pcpu | head -20 >> $L) &
timeout -k 15 --signal=TERM $(left) $S sweep $W/study --gpus 0 --per-gpu 8 > $W/sweep.log 2>&1
say "study sweep rc $?"
kill $DM 2>/dev/null  # before `wait`, which would wait for dmon forever
wait
grep -h "done\|failed\|interrupted" $W/sweep*.log >> $L
$S status $W/study --csv $OUT/depth-runs.csv > /dev/null
for lr in 8e-4 3.2e-3; do $S status $W/lr$lr --csv $OUT/lr$lr-runs.csv > /dev/null; done
$S status $W/study | tail -3 | tee -a $L
cd $W && tar czf $OUT/depth-state.tgz --exclude=checkpoint.pt --exclude='*.tmp*' --exclude=data study lr8e-4 lr3.2e-3
