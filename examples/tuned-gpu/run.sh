#!/usr/bin/env bash
# The GPU check behind examples/tuned-gpu (issue 16): byte-level GPTs on the machine's own site-packages sources.
#   1. a small tuning grid (3 lr x 3 batch sizes, two shapes, two budgets) -> fit hparams -> hparams.json
#   2. an IsoFLOP study at 1e14..1e15 FLOPs whose runs follow the fitted lr*(N) and batch*(C)
#   3. fit (approach 3) -> N_opt at 1e16 -> extend the study with shapes around it at 1e16 (--around) -> sweep
# Resumable: every stage skips what is done, finished runs are adopted, never retrained. DEADLINE (epoch seconds)
# bounds the sweeps so one call ends in time; STATE (a tarball from an earlier call) restores the study folders.
# Usage: bash examples/tuned-gpu/run.sh [WORKDIR]; SCALE=tiny runs the same stages on CPU in minutes.
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ "$SCALE" = tiny ]; then
  SRC=stdlib; SEQ=32; SHAPES=8x1,16x1,24x1,32x1,48x1; RULE=aspect:16; TUNE_SHAPES=16x1,32x1; TUNE_C=3e9
  LRS=3e-3,1e-2,3e-2; BSS=8,16; BUDGETS=1e9,3e9,1e10; TARGET=3e10; SWEEP_ARGS="--workers 2"; EXTRA="--min-steps 5"
  TUNE_EXTRA=$EXTRA; TUNE_SWEEP=$SWEEP_ARGS
else
  SRC=site-packages; SEQ=256; SHAPES=64x1,128x2,192x3,256x4,320x5,384x6; RULE=minchilla; TUNE_SHAPES=128x2,256x4
  TUNE_C=1e14,4e14; LRS=2e-3,4e-3,8e-3; BSS=16,32,64; BUDGETS=1e14,3e14,1e15; TARGET=1e16
  SWEEP_ARGS="--gpus 0 --per-gpu ${PER_GPU:-8}"; EXTRA="--compile --max-epochs 2"
  # the tuning runs are short: compiling would cost more than it saves, and uncompiled ones pack 12 to the GPU
  TUNE_EXTRA="--max-epochs 2"; TUNE_SWEEP="--gpus 0 --per-gpu 12"
fi
[ -f "$W/data/meta.json" ] || scalinglab prep "$SRC" --tokenizer bytes --out "$W/data" --json > "$W/prep.json"
# 1. tuning grid
[ -f "$W/tune/study.db" ] || scalinglab plan tune --data "$W/data" --shapes "$TUNE_SHAPES" --budgets "$TUNE_C" \
  --lrs "$LRS" --batch-sizes "$BSS" --seq-len "$SEQ" $TUNE_EXTRA --out "$W/tune" --json > "$W/tune-plan.json"
sweep "$W/tune" $TUNE_SWEEP
scalinglab status "$W/tune" --json > "$W/tune-status.json"
[ -f "$W/hparams.json" ] || scalinglab fit hparams "$W/tune" --out "$W/hparams.json" > "$W/hparams.txt"
# 2. the study with tuned settings
[ -f "$W/study/study.db" ] || scalinglab plan isoflop --data "$W/data" --budgets "$BUDGETS" --shapes "$SHAPES" \
  --seq-len "$SEQ" --hparams "$W/hparams.json" $EXTRA --out "$W/study" --json > "$W/plan.json"
sweep "$W/study" $SWEEP_ARGS
# 3. predict at TARGET from the small budgets, then extend the study around that prediction
if [ ! -f "$W/extend.json" ] && [ "$(left)" -gt 60 ]; then
  scalinglab fit "$W/study" --approach 3 --at "$TARGET" --out "$W/law-small.json" --json > "$W/fit-small.json"
  scalinglab plan isoflop --extend "$W/study" --budgets "$TARGET" --around "$W/law-small.json" --rule "$RULE" \
    --json > "$W/extend.json"
fi
[ -f "$W/extend.json" ] && sweep "$W/study" $SWEEP_ARGS
scalinglab status "$W/study" --json > "$W/status.json"
