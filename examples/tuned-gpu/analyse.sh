#!/usr/bin/env bash
# The CPU side of the GPU check: every committed table, fit and report of examples/tuned-gpu, from state.tgz (the
# study folders the device sent back, without checkpoints; runs' paths are relative, so they read from anywhere).
# Usage: bash examples/tuned-gpu/analyse.sh [WORKDIR]   (default /tmp/tuned; needs scalinglab on the PATH)
set -euo pipefail
W=${1:-/tmp/tuned}
E=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$W"
[ -f "$W/study/study.db" ] || tar -xzf "$E/state.tgz" -C "$W"
for s in study untuned; do
  p=$([ "$s" = study ] && echo "" || echo "untuned-")
  scalinglab status "$W/$s" --csv "$E/${p}runs.csv" > /dev/null
  scalinglab backtest "$W/$s" --holdout-above 2e15 --json > "$E/${p}backtest.json"
  scalinglab backtest "$W/$s" --holdout-above 2e15 > "$E/${p}backtest.txt" 2>&1
  scalinglab fit "$W/$s" --bootstrap 200 --at 1e16 --out "$E/${p}law.json" > "$E/${p}fit.txt" 2>&1
done
scalinglab report "$W/study" --out "$E/report.html" --at 1e16 --bootstrap 200 --holdout-above 2e15 \
  > "$E/report.txt" 2>&1
for p in sp mup; do
  scalinglab status "$W/tune-$p" --csv "$E/tune-$p-runs.csv" > /dev/null
  scalinglab fit hparams "$W/tune-$p" --out "$E/hparams-$p.json" > "$E/hparams-$p.txt" 2>&1
done
# the densified-grid call (dense.sh): its runs table is the tuned study after 12 more runs
scalinglab backtest "$E/dense-runs.csv" --holdout-above 2e15 --json > "$E/dense-backtest.json"
scalinglab backtest "$E/dense-runs.csv" --holdout-above 2e15 > "$E/dense-backtest.txt" 2>&1
