#!/usr/bin/env bash
# The GPU study behind examples/python-code-gpu: byte-level GPTs on the machine's own site-packages sources,
# 4 budgets (1e15..3e16 FLOPs) x 5-8 shapes (d_model 128..576, minchilla's depth rule), swept on one GPU.
# Resumable: rerun to continue (runs already done in WORKDIR/study are adopted, not retrained).
# Usage: bash examples/python-code-gpu/run.sh [WORKDIR] ; SWEEP_SECONDS caps one sweep call.
set -euo pipefail
W=${1:-/tmp/gpu-study}
mkdir -p "$W"
scalinglab prep site-packages --tokenizer bytes --workers 16 --out "$W/data" --json > "$W/prep.json"
if [ ! -f "$W/study/study.db" ]; then
  scalinglab plan isoflop --data "$W/data" --budgets 1e15,3e15,1e16,3e16 --d-models 128:576:64 \
    --seq-len 512 --batch-size 64 --max-epochs 2 --compile --out "$W/study" --json > "$W/plan.json"
fi
timeout --signal=TERM "${SWEEP_SECONDS:-100000}" scalinglab sweep "$W/study" --gpus 0 --per-gpu "${PER_GPU:-8}" || true
scalinglab status "$W/study" --json > "$W/status.json"
