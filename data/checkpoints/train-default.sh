#!/usr/bin/env bash
# Train and evaluate the default model on a lent GPU (one NVIDIA H100/H200) in one go: generate full64, train
# train-default.toml for a fixed wall-clock budget, run `reproduce --full` on the GPU, and pack what must come back
# (EMA checkpoint, full checkpoint for resuming, logs, figures) under $OUT. It continues the shipped model (warm
# start, see INIT below); data/checkpoints/default.toml records every stage the shipped weights went through.
#
#   usage (repository root, GPU machine): source scripts/gpu-env.sh; then
#          data/checkpoints/train-default.sh BINARY TRAIN_SECONDS [OUT]
#   BINARY: the CUDA build of clustermaps, "$CM_CUDNN" or "$CM_CUDA" (scripts/build-cuda.sh packs it here,
#   scripts/gpu-env.sh unpacks it there); the CUDA libraries of the machine's PyTorch wheels go on the loader path.
#   env: INIT (checkpoint to continue, default the shipped one), SEED, DEVICE (cuda), BATCH (64), DATA (an existing full64 dataset instead of generating one), MAX_CLUSTERS (1000),
#        REPRO_S (seconds for the evaluation, 180) — the knobs exist to dry-run the script on a CPU.
# Everything is seeded: the same binary on the same GPU model gives the same checkpoint for the same step count.
set -euo pipefail
BIN=$1; TRAIN_S=$2; OUT=${3:-${OUT:-out}}
mkdir -p "$OUT"
# The CUDA 13 libraries come with PyTorch's pip wheels there (idempotent if the caller sourced it already).
source scripts/gpu-env.sh

cm() { "$BIN" "$@"; }
WORK=${WORK:-/tmp/clustermaps-gpu}; rm -rf "$WORK"; mkdir -p "$WORK"
nproc; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
t0=$(date +%s)
cm --version
# Smoke test first (≈ 20 s): train and sample on the GPU with the tiny preset, so a broken CUDA path fails before
# the budget goes into training.
cm generate --preset tiny --out "$WORK/tiny" >/dev/null
DEVICE=${DEVICE:-cuda}; MAX_CLUSTERS=${MAX_CLUSTERS:-1000}
cm train --data "$WORK/tiny" --config tiny --out "$WORK/tiny-run" --device "$DEVICE" --steps 3 > "$WORK/smoke.log"
cm reproduce --checkpoint "$WORK/tiny-run/ema.safetensors" --device "$DEVICE" --clusters 4 --samples 2 --steps 3 \
   --out "$WORK/tiny-figures" >> "$WORK/smoke.log"
grep -E "^done|^checkpoint|clusters ×" "$WORK/smoke.log" || true
echo "== smoke test passed after $(( $(date +%s) - t0 )) s"
if [[ -z ${DATA:-} ]]; then
  DATA=$WORK/mock64
  cm generate --preset full64 --out "$DATA"
fi
echo "== generate done after $(( $(date +%s) - t0 )) s"
# Train in a loop that resumes from the last checkpoint if the process dies, until TRAIN_S seconds have passed;
# GPU memory is logged every 2 s. (The first GPU runs, 2026-11-27, died with CUDA_ERROR_OUT_OF_MEMORY after ~13
# steps: memory grew ≈ 10 GB per step because Adam kept the gradients' autograd graphs alive, fixed in src/optim.rs
# the same day; tests/memory.rs guards it. The loop stays as a safety net.)
nvidia-smi --query-gpu=memory.used --format=csv,noheader -l 2 > "$OUT/gpu-memory.log" 2>/dev/null &
# Training continues the shipped model (a warm start: its weights and EMA, a fresh optimiser with warm-up) unless
# INIT names another checkpoint (e.g. the last.safetensors an earlier GPU run packed); SEED gives this stage its own
# batch order and noise (default: today's date, recorded in run.toml and the checkpoint's info.stages).
INIT=${INIT:-data/checkpoints/default.safetensors}; SEED=${SEED:-$(date +%Y%m%d)}
# The shipped model's configuration with the GPU's batch size (BATCH, default 64; the shipped run used 16 on a CPU).
sed "s/^batch_size = .*/batch_size = ${BATCH:-64}/" data/checkpoints/train-default.toml > "$WORK/train.toml"
end=$(( $(date +%s) + TRAIN_S )); attempt=0
while :; do
  left=$(( end - $(date +%s) )); (( left >= 15 )) || break
  # --init with --resume: the first attempt warm-starts from INIT, a restarted one resumes its own checkpoints.
  if cm train --data "$DATA" --config "$WORK/train.toml" --out "$WORK/run" --device "$DEVICE" \
       --init "$INIT" --seed "$SEED" --resume --time-limit "$left"; then break; fi
  attempt=$(( attempt + 1 )); echo "== training process failed (attempt $attempt), resuming"
  (( attempt < 30 )) || break
done
echo "== training done after $(( $(date +%s) - t0 )) s"
cp "$WORK/run/ema.safetensors" "$OUT/ema.safetensors"
tar czf "$OUT/run-logs.tgz" -C "$WORK/run" run.toml train_log.csv val_log.csv train_log.npy val_log.npy
# The full training state (params, EMA, Adam moments, RNG) to resume from, split under the 16 MiB per-file limit.
split -b 15M -d "$WORK/run/last.safetensors" "$OUT/last.safetensors.part"
# Size the evaluation to the time left: a training step of batch B costs about three forward passes of B maps, so
# the measured step time gives the sampler's throughput (network evaluations of one map per second). Take the
# largest of (samples, Heun steps) = (8, 40) [the --full default], (4, 40), (4, 18), (2, 18) that fits in 60 % of
# REPRO_S for all 1000 test clusters.
REPRO_S=${REPRO_S:-180}
step_s=$(tail -n 50 "$WORK/run/train_log.csv" | awk -F, '$1 ~ /^[0-9]+$/ {s += $6; n++} END {print (n ? s / n : 1)}')
batch=$(awk -F' = ' '$1 == "batch_size" {print $2}' "$WORK/train.toml")
[[ -n ${EVAL:-} ]] && read -r SAMPLES STEPS CLUSTERS <<< "$EVAL" || read -r SAMPLES STEPS CLUSTERS < <(python3 -c "
rate = 3 * $batch / $step_s; cap = 0.6 * $REPRO_S * rate
for s, n in [(8, 40), (4, 40), (4, 18), (2, 18)]:
    if $MAX_CLUSTERS * s * (2 * n - 1) <= cap: print(s, n, $MAX_CLUSTERS); break
else: print(2, 18, max(min(40, $MAX_CLUSTERS), min($MAX_CLUSTERS, int(cap / 70))))
print('throughput estimate', round(rate), 'map-NFE/s', file=__import__('sys').stderr)")
echo "== reproduce --full: $CLUSTERS clusters, $SAMPLES samples, Heun N = $STEPS"
timeout "$REPRO_S" "$BIN" reproduce --full --checkpoint "$WORK/run/ema.safetensors" --device "$DEVICE" \
   --clusters "$CLUSTERS" --samples "$SAMPLES" --steps "$STEPS" --out "$WORK/figures" ${REPRO_ARGS:-} \
   || echo "== reproduce --full failed or ran out of its ${REPRO_S} s"
echo "== reproduce done after $(( $(date +%s) - t0 )) s"
[[ -d $WORK/figures ]] && tar czf "$OUT/figures.tgz" -C "$WORK" figures
ls -la "$OUT"
