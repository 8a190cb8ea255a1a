#!/usr/bin/env bash
# Start-up times of a built bundle (or of any `gan-studio` command), as JSON lines:
#
#   packaging/measure.sh dist/gan-studio [RUNS]          # RUNS fresh processes each (default 3)
#   MEASURE_EXE=.venv/bin/gan-studio packaging/measure.sh - 3   # the same numbers for a virtualenv install
#
# window_shown_s: process start until the main window is mapped on Xvfb (needs Xvfb and xwininfo);
# first_image_s:  `gan-studio generate "red apple" -n 1` from start to exit (engine, model, prompt encoder,
#                 one image written); info_s: `gan-studio info` (imports torch).
# Each run is a fresh process with a warm disk cache. MEASURE_MODEL=NAME|FOLDER picks the model.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: packaging/measure.sh DIST_DIR [RUNS]" >&2; exit 2; }
runs=${2:-3}
if [ -n "${MEASURE_EXE:-}" ]; then
  exe=$(cd "$(dirname "$MEASURE_EXE")" && pwd)/$(basename "$MEASURE_EXE")
else
  dist=$(cd "$1" && pwd)
  for exe in "$dist/gan-studio" "$dist/gan-studio/gan-studio" "$dist/Contents/MacOS/gan-studio"; do
    [ -x "$exe" ] && [ -f "$exe" ] && break
  done
fi
[ -x "$exe" ] || { echo "no gan-studio executable found" >&2; exit 1; }
model_args=()
[ -z "${MEASURE_MODEL:-}" ] || model_args=(--model "$MEASURE_MODEL")

scratch=$(mktemp -d "${TMPDIR:-/tmp}/gan-studio-measure.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export HOME=$scratch/home XDG_DATA_HOME=$scratch/home/.local/share XDG_CONFIG_HOME=$scratch/home/.config \
  XDG_CACHE_HOME=$scratch/home/.cache
mkdir -p "$HOME"
cd "$scratch"
now() {  # seconds with a fraction (macOS date has no %N)
  local t
  t=$(date +%s.%N)
  case $t in *N) python3 -c 'import time; print(time.time())' ;; *) echo "$t" ;; esac
}
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
json_list() { local IFS=,; echo "[$*]"; }

info=() first=() shown=()
for _ in $(seq 1 "$runs"); do
  started=$(now)
  "$exe" info >/dev/null 2>&1 || { echo "info failed" >&2; exit 1; }
  info+=("$(since "$started")")

  rm -rf "$scratch/out"
  started=$(now)
  "$exe" generate "red apple" -n 1 --seed 7 --out "$scratch/out" ${model_args[@]+"${model_args[@]}"} >/dev/null 2>&1 ||
    { echo "generate failed" >&2; exit 1; }
  first+=("$(since "$started")")

  if command -v Xvfb >/dev/null && command -v xwininfo >/dev/null; then
    display=:$((200 + RANDOM % 100))
    Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
    xvfb=$!
    sleep 1
    started=$(now)
    DISPLAY=$display QT_QPA_PLATFORM=xcb "$exe" ${model_args[@]+"${model_args[@]}"} >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 1200); do
      if DISPLAY=$display xwininfo -root -tree 2>/dev/null | grep -q '"GAN Studio"'; then
        shown+=("$(since "$started")")
        break
      fi
      sleep 0.02
    done
    sleep 1
    kill -INT $pid 2>/dev/null
    wait $pid 2>/dev/null
    kill $xvfb 2>/dev/null
    wait $xvfb 2>/dev/null
  fi
done
printf '{"exe": "%s", "runs": %s, "info_s": %s, "first_image_s": %s, "window_shown_s": %s}\n' \
  "$exe" "$runs" "$(json_list "${info[@]}")" "$(json_list "${first[@]}")" "$(json_list ${shown[@]+"${shown[@]}"})"
