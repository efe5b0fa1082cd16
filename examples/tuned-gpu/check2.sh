#!/usr/bin/env bash
# Issue 16's second part of the GPU check, run after run.sh (ran in two device calls: log-call4.txt, log-call5.txt):
#   A. a fourth small budget (B4) in the tuned study, so the lc law (3 parameters) can be fitted, then the backtest
#      of 1e16 again: in 42 backtests on Porian et al.'s grids lc was the best loss predictor (docs/reproductions/
#      predictions.md), and run.sh's 3 small budgets were too few for it
#   B. the untuned side by side: the same shapes and 4 small budgets with the literature defaults (no tuning grid),
#      IsoFLOP runs at 1e16 around its approach-3 N_opt (--around, as run.sh places them), and its backtest
#   C. muP against standard parametrization: one LR grid at three widths, a tuning study each; `fit hparams` gives
#      lr*(N) for each (under muP the optimal LR should not move with width)
# Resumable like run.sh: every stage skips what is done; DEADLINE (epoch seconds) bounds the sweeps of one call.
# Usage: STATE=examples/tuned-gpu/state.tgz bash examples/tuned-gpu/check2.sh [WORKDIR]
#        (WORKDIR as run.sh's, default /tmp/tuned; SCALE=tiny runs the same stages on CPU after SCALE=tiny run.sh)
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ "$SCALE" = tiny ]; then
  SRC=stdlib; SEQ=32; SHAPES=8x1,16x1,24x1,32x1,48x1; RULE=aspect:16; BUDGETS4=1e9,3e9,5e9,1e10; B4=5e9
  TARGET=3e10; HOLD=1.5e10; EXTRA="--min-steps 5"; GPU_ARGS="--workers 2"; TUNE_ARGS="--workers 2"
  MUP_SHAPES=16x1,32x1,64x1; MUP_C=3e9; MUP_LRS=3e-3,1e-2,3e-2; MUP_BS=8; MUP_BASE=16
else
  SRC=site-packages; SEQ=256; SHAPES=64x1,128x2,192x3,256x4,320x5,384x6; RULE=minchilla; BUDGETS4=1e14,3e14,5e14,1e15
  B4=5e14; TARGET=1e16; HOLD=2e15; EXTRA="--compile --max-epochs 2"; GPU_ARGS="--gpus 0 --per-gpu ${PER_GPU:-8}"
  TUNE_ARGS="--gpus 0 --per-gpu 12"
  MUP_SHAPES=128x2,256x4,512x8; MUP_C=2e14; MUP_LRS=1e-3,2e-3,4e-3,8e-3,1.6e-2; MUP_BS=32; MUP_BASE=128
fi
[ -f "$W/data/meta.json" ] || scalinglab prep "$SRC" --tokenizer bytes --out "$W/data" --json > "$W/prep.json"
# A. the tuned study gets its fourth small budget; lc can then be scored against the same 1e16 runs
[ -f "$W/extend-b4.json" ] || scalinglab plan isoflop --extend "$W/study" --budgets "$B4" --shapes "$SHAPES" \
  --json > "$W/extend-b4.json"
sweep "$W/study" $GPU_ARGS
scalinglab backtest "$W/study" --holdout-above "$HOLD" --json > "$W/backtest-4budgets.json" || true
# B. untuned: literature defaults for lr, batch size, warmup and beta2 (plan/recipe.py), no tuning grid
[ -f "$W/untuned/study.db" ] || scalinglab plan isoflop --data "$W/data" --budgets "$BUDGETS4" --shapes "$SHAPES" \
  --seq-len "$SEQ" $EXTRA --out "$W/untuned" --json > "$W/untuned-plan.json"
sweep "$W/untuned" $GPU_ARGS
if [ ! -f "$W/untuned-extend.json" ] && [ "$(left)" -gt 60 ]; then
  scalinglab fit "$W/untuned" --approach 3 --at "$TARGET" --out "$W/untuned-law-small.json" --json \
    > "$W/untuned-fit-small.json"
  scalinglab plan isoflop --extend "$W/untuned" --budgets "$TARGET" --around "$W/untuned-law-small.json" \
    --rule "$RULE" --json > "$W/untuned-extend.json"
fi
[ -f "$W/untuned-extend.json" ] && sweep "$W/untuned" $GPU_ARGS
scalinglab backtest "$W/untuned" --holdout-above "$HOLD" --json > "$W/untuned-backtest.json" || true
# C. muP against standard parametrization: the same LR grid at three widths
for P in sp mup; do
  BASE_W=(); [ "$P" = mup ] && BASE_W=(--mup-base-width "$MUP_BASE")
  [ -f "$W/tune-$P/study.db" ] || scalinglab plan tune --data "$W/data" --shapes "$MUP_SHAPES" --budgets "$MUP_C" \
    --lrs "$MUP_LRS" --batch-sizes "$MUP_BS" --seq-len "$SEQ" --parametrization "$P" "${BASE_W[@]}" \
    --max-epochs 2 --min-steps 20 --out "$W/tune-$P" --json > "$W/tune-$P-plan.json"
  sweep "$W/tune-$P" $TUNE_ARGS
  scalinglab fit hparams "$W/tune-$P" --out "$W/hparams-$P.json" > "$W/hparams-$P.txt" || true
done
for s in study untuned tune-sp tune-mup; do scalinglab status "$W/$s" --json > "$W/status-$s.json"; done
