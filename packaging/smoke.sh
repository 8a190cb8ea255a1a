#!/usr/bin/env bash
# Smoke-test a built bundle headless:  packaging/smoke.sh DIST_DIR
#
# DIST_DIR is dist/ or dist/gan-studio (Linux, Windows under Git Bash) or "dist/GAN Studio.app" (macOS).
# Checks, from a scratch folder, with a scratch HOME, no Hugging Face/offline variables and every proxy
# pointing at a closed port (so any network use fails):
#   1. gan-studio info
#   2. gan-studio generate "red apple" -n 2 --out DIR   -> two PNGs, each with a `parameters` text chunk
#      (inside a network namespace with no network at all, where `unshare` is allowed)
#   3. the window, opened offscreen for a few seconds, then closed; exit code 0
#   4. nothing was written inside the bundle; user data went to the (scratch) platform user folders
# and, where Xvfb and xwininfo exist, 5. the window on a real X server (xcb plugin), timing until it is mapped.
#
# Environment: SMOKE_MODEL=NAME|FOLDER to use another model than the bundle's default (e.g. before the
# default model lands); SMOKE_WINDOW_SECONDS (default 6); SMOKE_KEEP=1 keeps the scratch folder.
set -uo pipefail

die() { echo "smoke: FAIL: $*" >&2; exit 1; }
step() { echo "smoke: --- $*"; }
now() {  # seconds with a fraction (macOS date has no %N)
  local t
  t=$(date +%s.%N)
  case $t in *N) python3 -c 'import time; print(time.time())' ;; *) echo "$t" ;; esac
}
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

[ $# -eq 1 ] || die "usage: packaging/smoke.sh DIST_DIR"
dist=$(cd "$1" 2>/dev/null && pwd) || die "no such folder: $1"
for candidate in "$dist/gan-studio" "$dist/gan-studio/gan-studio" "$dist/gan-studio.exe" \
    "$dist/gan-studio/gan-studio.exe" "$dist/Contents/MacOS/gan-studio" "$dist/GAN Studio.app/Contents/MacOS/gan-studio"; do
  if [ -f "$candidate" ] && [ -x "$candidate" ]; then exe=$candidate; break; fi
done
[ -n "${exe:-}" ] || die "no gan-studio executable in $dist"
bundle=$(dirname "$exe")
internal=$bundle/_internal
[ -d "$internal" ] || internal=$bundle/../Resources  # macOS .app keeps data in Contents/Resources
echo "smoke: bundle $exe"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/gan-studio-smoke.XXXXXX")
[ "${SMOKE_KEEP:-0}" = 1 ] || trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/home" "$scratch/work"
cd "$scratch/work"  # run from an unrelated folder: the bundle must find its own resources

# A clean, offline-looking environment: the bundle itself must set what it needs.
unset HF_HUB_OFFLINE TRANSFORMERS_OFFLINE HF_HOME HF_HUB_CACHE TRANSFORMERS_CACHE SENTENCE_TRANSFORMERS_HOME \
  HF_ENDPOINT TORCH_HOME GAN_STUDIO_RESOURCES GAN_STUDIO_DATA_DIR GAN_STUDIO_CONFIG_DIR PYTHONPATH PYTHONHOME \
  VIRTUAL_ENV QT_PLUGIN_PATH QT_QPA_PLATFORM_PLUGIN_PATH
export HOME=$scratch/home XDG_DATA_HOME=$scratch/home/.local/share XDG_CONFIG_HOME=$scratch/home/.config \
  XDG_CACHE_HOME=$scratch/home/.cache XDG_RUNTIME_DIR=$scratch/runtime
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
export http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 \
  HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 no_proxy= NO_PROXY=
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

model_args=()
if [ -n "${SMOKE_MODEL:-}" ]; then
  model_args=(--model "$SMOKE_MODEL")
  echo "smoke: model $SMOKE_MODEL (SMOKE_MODEL)"
elif [ ! -f "$internal/resources/models/emoji/model.json" ]; then
  die "the bundle has no default model (resources/models/emoji); rebuild with it, or set SMOKE_MODEL=FOLDER"
fi

marker=$scratch/before
touch "$marker"
sleep 1  # file times must be able to tell "before" from "after"

step "1. gan-studio info"
"$exe" info >"$scratch/info.txt" 2>"$scratch/info.err"
code=$?
[ $code -eq 0 ] || { cat "$scratch/info.err" >&2; die "info exited $code"; }
cat "$scratch/info.txt"
[ -s "$scratch/info.txt" ] || die "info printed nothing"

step "2. gan-studio generate \"red apple\" -n 2"
# Where the system allows it, with no network at all (a fresh network namespace has only a downed loopback).
offline=()
if command -v unshare >/dev/null; then
  if unshare -n true 2>/dev/null; then offline=(unshare -n); elif unshare -rn true 2>/dev/null; then offline=(unshare -rn); fi
fi
[ ${#offline[@]} -eq 0 ] && echo "smoke: (no network namespace here; the proxies still catch network use)" ||
  echo "smoke: running in a network namespace without network (${offline[*]})"
started=$(now)
${offline[@]+"${offline[@]}"} "$exe" generate "red apple" -n 2 --seed 1234 --out "$scratch/out" ${model_args[@]+"${model_args[@]}"} 2>"$scratch/gen.err"
code=$?
cat "$scratch/gen.err"
[ $code -eq 0 ] || die "generate exited $code"
echo "smoke: generate (cold start to 2 images written): $(since "$started") s"
shopt -s nullglob
pngs=("$scratch/out"/*.png)
[ ${#pngs[@]} -eq 2 ] || die "expected 2 PNG files in the output folder, found ${#pngs[@]}"
for png in "${pngs[@]}"; do
  # Read the PNG's text chunks with the standard library only (no Pillow needed on the test machine).
  python3 - "$png" <<'PY' || die "$(basename "$png") has no parameters text chunk"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, chunks = 8, {}
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    pos += 12 + length
    if kind == b"tEXt":
        key, _, text = body.partition(b"\0"); chunks[key.decode("latin-1")] = text.decode("latin-1")
    elif kind == b"zTXt":
        key, _, rest = body.partition(b"\0"); chunks[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
    elif kind == b"iTXt":
        key, _, rest = body.partition(b"\0")
        compressed, rest = rest[0], rest[2:]
        _lang, _, rest = rest.partition(b"\0"); _tkey, _, text = rest.partition(b"\0")
        chunks[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8")
print(f"smoke: {sys.argv[1].rsplit('/', 1)[-1]}: text chunks {sorted(chunks)}")
params = chunks.get("parameters", "")
assert params.strip(), "no parameters chunk"
print("smoke:   parameters: " + params.replace("\n", " | ")[:160])
PY
done

step "3. the window, offscreen"
seconds=${SMOKE_WINDOW_SECONDS:-6}
# GAN_STUDIO_QUIT_AFTER_MS lets the app close itself; without that hook, SIGINT (which the app turns into a
# clean app.quit()) closes it.
QT_QPA_PLATFORM=offscreen GAN_STUDIO_QUIT_AFTER_MS=$((seconds * 1000)) \
  "$exe" ${model_args[@]+"${model_args[@]}"} >"$scratch/window.out" 2>&1 &
pid=$!
waited=0
while kill -0 $pid 2>/dev/null && [ $waited -lt $((seconds * 10)) ]; do sleep 0.1; waited=$((waited + 1)); done
if kill -0 $pid 2>/dev/null; then
  closed_by=SIGINT
  kill -INT $pid
  for _ in $(seq 1 150); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -0 $pid 2>/dev/null && { kill -KILL $pid; cat "$scratch/window.out"; die "the window did not close within 15 s of SIGINT"; }
else
  closed_by=itself
fi
wait $pid
code=$?
cat "$scratch/window.out"
grep -q "Traceback" "$scratch/window.out" && die "the window logged a Python traceback"
[ $code -eq 0 ] || die "the window exited with code $code (closed by $closed_by)"
echo "smoke: window ran ${seconds} s offscreen and closed cleanly (closed by $closed_by, exit 0)"

step "4. where it wrote"
changed=$(find "$bundle" "$internal" -newer "$marker" 2>/dev/null | head -5)
[ -z "$changed" ] || die "files changed inside the bundle: $changed"
echo "smoke: nothing written inside the bundle"
find "$HOME" -newer "$marker" -type f 2>/dev/null | sed "s|$HOME|  ~|" | head -20
outside=$(find "$HOME" -newer "$marker" -type f 2>/dev/null | grep -v -e "/.local/share/gan-studio/" \
  -e "/.config/gan-studio/" -e "/.cache/" | head -5)
[ -z "$outside" ] || echo "smoke: note: files outside the gan-studio user folders: $outside"

step "5. the window on an X server (xcb)"
if command -v Xvfb >/dev/null && command -v xwininfo >/dev/null && [ "$(uname)" = Linux ]; then
  display=:$((90 + RANDOM % 100))
  Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
  xvfb=$!
  sleep 1
  started=$(now)
  DISPLAY=$display QT_QPA_PLATFORM=xcb "$exe" ${model_args[@]+"${model_args[@]}"} >"$scratch/xcb.out" 2>&1 &
  pid=$!
  shown=""
  for _ in $(seq 1 600); do
    if DISPLAY=$display xwininfo -root -tree 2>/dev/null | grep -q '"GAN Studio"'; then shown=$(since "$started"); break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  sleep 2
  kill -INT $pid 2>/dev/null
  for _ in $(seq 1 150); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -0 $pid 2>/dev/null && kill -KILL $pid
  wait $pid
  code=$?
  kill $xvfb 2>/dev/null
  wait $xvfb 2>/dev/null
  [ -n "$shown" ] || { cat "$scratch/xcb.out"; die "no GAN Studio window appeared on Xvfb"; }
  grep -q "Traceback" "$scratch/xcb.out" && { cat "$scratch/xcb.out"; die "the xcb window logged a Python traceback"; }
  [ $code -eq 0 ] || { cat "$scratch/xcb.out"; die "the xcb window exited with code $code"; }
  echo "smoke: window shown on Xvfb after $shown s (cold start), closed cleanly"
else
  echo "smoke: skipped (needs Linux, Xvfb and xwininfo)"
fi

echo "smoke: PASS"
