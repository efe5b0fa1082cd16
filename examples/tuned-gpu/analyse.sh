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
# the fresh study (replicate.sh: one trainer version, two seeds per size, 1e13..1e15 and five sizes at 1e16) and the
# 1e16 sizes again at batch 64 (batch64.sh). Protocol of the issue: fit 1e14..1e15; beside it, fit 1e13..1e15. The
# 1e16 observation three ways: the runs at batch 128 (the law's), at batch 64, and each size's better of the two.
T=$(mktemp -d)
awk -F, 'NR==1 || $9<2e15' "$E/replicate-runs.csv" > "$T/small.csv"   # column 9: budget
awk -F, 'NR>1 && $9>2e15' "$E/replicate-runs.csv" > "$T/b128"
tail -n +2 "$E/batch64-runs.csv" > "$T/b64"
python3 - "$T" <<'PY'
import csv, sys
t = sys.argv[1]
head = open(f"{t}/small.csv").readline()
fields = head.strip().split(",")
b128 = list(csv.DictReader(open(f"{t}/b128"), fieldnames=fields))
b64 = {r["run_id"]: r for r in csv.DictReader(open(f"{t}/b64"), fieldnames=fields)}
best = [min((r, b64.get(r["run_id"], r)), key=lambda x: float(x["final_val_loss"])) for r in b128]
w = csv.DictWriter(open(f"{t}/best", "w"), fieldnames=fields)
w.writerows(best)
PY
for fit in 1e14 1e13; do
  for obs in b128 b64 best; do
    f="$T/$fit-$obs.csv"
    if [ $fit = 1e14 ]; then awk -F, 'NR==1 || $9>=1e14' "$T/small.csv" > "$f"; else cp "$T/small.csv" "$f"; fi
    cat "$T/$obs" >> "$f"
    scalinglab backtest "$f" --holdout-above 2e15 --json > "$E/replicate-backtest-$fit-$obs.json"
    scalinglab backtest "$f" --holdout-above 2e15 > "$E/replicate-backtest-$fit-$obs.txt" 2>&1
  done
done
rm -rf "$T"
# the study planned with batch*(D) (batchd.sh: its tuning grid's laws are hparams-d.*, fitted on the device), fitted
# on 1e14..1e15, six sizes at 1e16 held out
scalinglab backtest "$E/batchd-runs.csv" --holdout-above 2e15 --json > "$E/batchd-backtest.json"
scalinglab backtest "$E/batchd-runs.csv" --holdout-above 2e15 > "$E/batchd-backtest.txt" 2>&1
# 4 layers deep at the small budgets (depth.sh, tuned laws hparams-d.json) scored against batchd.sh's six 1e16 runs;
# the same sizes with the literature defaults (untuned-depth.sh) against the untuned study's four 1e16 runs (check2.sh;
# the same settings as today's plan of those shapes gives). Then each of them, and batchd.sh's 2-3 layer study, with
# one seed at a time (first seeds, second seeds, same 1e16 runs): depth-variants.txt.
T=$(mktemp -d)
cp "$E/depth-runs.csv" "$T/depth.csv"
awk -F, 'NR>1 && $9>2e15' "$E/batchd-runs.csv" >> "$T/depth.csv"
cp "$E/untuned-depth-runs.csv" "$T/untuned-depth.csv"
awk -F, 'NR>1 && $9>2e15' "$E/untuned-runs.csv" >> "$T/untuned-depth.csv"
cp "$E/batchd-runs.csv" "$T/batchd.csv"
for s in depth untuned-depth; do
  scalinglab backtest "$T/$s.csv" --holdout-above 2e15 --json > "$E/$s-backtest.json"
  scalinglab backtest "$T/$s.csv" --holdout-above 2e15 > "$E/$s-backtest.txt" 2>&1
done
scalinglab fit "$T/depth.csv" --bootstrap 200 --at 1e16 --out "$E/depth-law.json" > "$E/depth-fit.txt" 2>&1
scalinglab report "$T/depth.csv" --out "$E/depth-report.html" --at 1e16 --bootstrap 200 --holdout-above 2e15 \
  > "$E/depth-report.txt" 2>&1
for s in depth untuned-depth batchd; do
  awk -F, 'NR==1 || $1 !~ /_s1$/' "$T/$s.csv" > "$T/$s-seed0.csv"
  awk -F, 'NR==1 || $1 ~ /_s1$/ || $9>2e15' "$T/$s.csv" > "$T/$s-seed1.csv"
  for v in seed0 seed1; do
    echo "== $s, $v"
    scalinglab backtest "$T/$s-$v.csv" --holdout-above 2e15 2>&1 | grep "│ 1e+16"
  done
done > "$E/depth-variants.txt"
rm -rf "$T"
