# Sourced by run.sh and check2.sh: the work folder ($1, default /tmp/tuned), SCALE, the DEADLINE (epoch seconds)
# that bounds one call's sweeps, the restore of STATE (a tarball of an earlier call's study folders), and
# `sweep STUDY ARGS...`, which stops at the deadline (interrupted runs resume from their checkpoints next time).
W=${1:-/tmp/tuned}
SCALE=${SCALE:-gpu}
DEADLINE=${DEADLINE:-$(( $(date +%s) + 100000 ))}
mkdir -p "$W"
[ -n "${STATE:-}" ] && [ -f "$STATE" ] && [ ! -f "$W/study/study.db" ] && tar -xzf "$STATE" -C "$W"
left() { echo $(( DEADLINE - $(date +%s) )); }
sweep() {
  local t; t=$(left); [ "$t" -gt 30 ] || return 0
  timeout --signal=TERM "$t" scalinglab sweep "$@" || true
}
