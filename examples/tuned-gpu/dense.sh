#!/usr/bin/env bash
# The densified-grid test of examples/tuned-gpu (docs/reproductions/tuned-gpu.md, "Sizes closer together"), as it ran on
# the device: BUDGET=405 bash examples/tuned-gpu/dense.sh, from the repository root, with OUT set to a results folder.
# It restores state.tgz into /tmp/tuned, adds sizes at the geometric midpoints around each small budget's best run
# (plan isoflop --extend), repeats 4 finished runs in a separate study as controls, sweeps both, and writes the
# runs tables; the first two commands are the device's setup (tomli-w from .whl, the checkout on PYTHONPATH).
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
S="python -m scalinglab"
W=/tmp/tuned; G=$OUT/g; mkdir -p $W $G
END=$(( $(date +%s) + ${BUDGET:-460} ))
tar xzf examples/tuned-gpu/state.tgz -C $W
$S prep site-packages --tokenizer bytes --out $W/data --json > $G/prep.json 2> $G/prep.err
$S plan isoflop --extend $W/study --budgets 1e14 --shapes 112x1,176x2,240x3 --json > $G/dense-1e14.json
$S plan isoflop --extend $W/study --budgets 3e14,5e14,1e15 --shapes 176x2,240x3,304x4 --json > $G/dense-rest.json
$S plan isoflop --data $W/data --budgets 1e14,3e14 --shapes 128x2,192x3 --seq-len 256 \
  --hparams examples/tuned-gpu/hparams.json --compile --max-epochs 2 --out $W/control --json > $G/control-plan.json
echo "planned at $(date +%T), $(( END - $(date +%s) )) s left"
nvidia-smi dmon -s u -d 5 > $G/dmon.txt 2>&1 &
DM=$!
timeout --signal=TERM $(( END - $(date +%s) )) $S sweep $W/control --gpus 0 > $G/sweep-control.log 2>&1
echo "control rc $? at $(date +%T)"
timeout --signal=TERM $(( END - $(date +%s) )) $S sweep $W/study --gpus 0 > $G/sweep-study.log 2>&1
echo "study rc $? at $(date +%T)"
kill $DM
grep -h "done\]" $G/sweep-*.log | tail -20
$S status $W/study --csv $G/dense-runs.csv > /dev/null
$S status $W/control --csv $G/control-runs.csv > /dev/null
cd $W && tar czf $G/dense-state.tgz --exclude=checkpoint.pt --exclude='*.tmp*' study control
cd $OUT && tar czf g.tgz g && rm -rf g
