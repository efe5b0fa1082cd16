#!/usr/bin/env bash
# Two checks of why batchd.sh's 1e16 prediction misses, in one call, beside batchd.sh's 1e16 runs (same data, same
# laws: hparams-d.json, seed base 10). (docs/reproductions/tuned-gpu.md, "Shallow models at small budgets").
# 1. Depth: the small budgets of every study so far took 2- and 3-layer models (the d_model/64 rule), and Kaplan et
#    al. (2020, section 3.1) found 1-2 layer models off the trend that deeper ones share. Here 1e14..1e15 again, every
#    size 4 layers deep, two seeds per size.
# 2. Learning rate at 1e16: two of batchd.sh's 1e16 sizes at a lower and a higher fixed lr (the law's lr* there was
#    extrapolated up to 6x beyond the sizes it was tuned on).
# Run on the device from the repository root with OUT set to a results folder: BUDGET=480 bash ...depth.sh.
# NOT YET MEASURED: its one call (2026-12-02, BUDGET=525, the session's last 587 s of device time) trained nothing:
# nvidia-smi dmon showed 0% GPU use for the whole call, the sweeps ran into the deadline and the call was stopped
# before it wrote its tables (why the GPU stayed idle is unknown; the script now kills sweeps still running 15 s after
# the deadline, so the tables are written).
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
S="python -m scalinglab"; W=/tmp/depth; G=$OUT/p; mkdir -p $W $G
END=$(( $(date +%s) + ${BUDGET:-480} ))
left() { echo $(( END - $(date +%s) )); }
H=examples/tuned-gpu/hparams-d.json
[ -f $W/data/meta.json ] || $S prep site-packages --tokenizer bytes --out $W/data --json > $G/prep.json 2> $G/prep.err
for lr in 8e-4 3.2e-3; do
  [ -f $W/lr$lr/study.db ] || $S plan isoflop --data $W/data --budgets 1e16 --shapes 320x5,448x6 --seq-len 256 \
    --hparams $H --lr $lr --compile --max-epochs 2 --seed 10 --out $W/lr$lr --json > $G/plan-lr$lr.json
done
if [ ! -f $W/study/study.db ]; then
  P="$S plan isoflop --extend $W/study --json"
  $S plan isoflop --data $W/data --budgets 1e14 --shapes 64x4,80x4,96x4,128x4,160x4,192x4 --seq-len 256 \
    --hparams $H --compile --max-epochs 2 --seeds 2 --seed 10 --out $W/study --json > $G/plan-1e14.json
  $P --budgets 3e14 --shapes 80x4,96x4,128x4,160x4,192x4,256x4 > $G/plan-3e14.json
  $P --budgets 5e14 --shapes 96x4,128x4,160x4,192x4,256x4,288x4 > $G/plan-5e14.json
  $P --budgets 1e15 --shapes 96x4,128x4,160x4,192x4,256x4,320x4 > $G/plan-1e15.json
fi
nvidia-smi dmon -s u -d 5 > $G/dmon.txt 2>&1 &
DM=$!
for lr in 8e-4 3.2e-3; do
  timeout -k 15 --signal=TERM $(left) $S sweep $W/lr$lr --gpus 0 --per-gpu 2 > $G/sweep-lr$lr.log 2>&1 &
done
timeout -k 15 --signal=TERM $(left) $S sweep $W/study --gpus 0 --per-gpu 8 > $G/sweep.log 2>&1
echo "study sweep rc $? at $(date +%T)"
wait
kill $DM
$S status $W/study --csv $G/depth-runs.csv > /dev/null
for lr in 8e-4 3.2e-3; do $S status $W/lr$lr --csv $G/lr$lr-runs.csv > /dev/null; done
$S status $W/study | tail -3
cd $OUT && tar czf p.tgz p && rm -rf p
