# Sourced by scripts/gpu_check.sh and scripts/gpu_train.sh: timed steps recorded for their summary.json.
# The sourcing script sets step_tag (its log prefix) and an empty array summary=() first.

seconds_since() {  # seconds_since STARTED (a `date +%s.%N` reading): the seconds since, to 0.1
  awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

step() {  # step NAME COMMAND...: run, time, record the exit code in summary; returns it
  local name=$1 started rc
  shift
  started=$(date +%s.%N)
  "$@"
  rc=$?
  summary+=("\"$name\": {\"rc\": $rc, \"seconds\": $(seconds_since "$started")}")
  echo "[$step_tag] $name: exit $rc" >&2
  return $rc
}
