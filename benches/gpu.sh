#!/usr/bin/env bash
# The prepared GPU run of issue 15: measure clustermaps against PyTorch on the same card, then train with what is
# left of the budget. One command on the lent machine, one dry run here first.
#
#   GPU machine (repository root, .gpu/ from scripts/build-cuda.sh carried along):
#       bash benches/gpu.sh --out "$OUT" [--budget 540]
#   Here, as a dry run on the CPU build (target/release/clustermaps; tiny sizes, no GPU, torch only if importable):
#       bash benches/gpu.sh --dry-run --out target/gpu-dry
#   options: --budget S (wall seconds for the whole script, default 540), --no-train, --train-only, --no-torch;
#   env: TORCH_PYTHON (the python with torch, default python3: the GPU machine's), WORK, AGREE_TOL
#
# Steps (each writes under $WORK, default /tmp/clustermaps-bench; `timeout` bounds every command):
#   a. agreement: the shipped model samples 2 clusters × 2 samples (Heun, N = 18, seed 0) on the CPU and with each
#      CUDA binary (strict f32: NVIDIA_TF32_OVERRIDE=0); max |Δ| of the standardized samples must be ≤ AGREE_TOL.
#   b. training img/s of the `cpu` and `paper` nets at batch 64 and 256, f32, with each binary (`clustermaps train`
#      on a 64² `dev` dataset; img/s = batch × steps / Σ step_s over the steps after the first WARM_STEPS), the
#      cuDNN binary also in tf32; PyTorch's reference (benches/reference/bench_train.py) in fp32, tf32, bf16.
#   c. sampling: map-NFE/s of `clustermaps sample` (32 clusters × 8 samples, Heun N = 18, one network call of 256
#      rows per evaluation) with each binary; PyTorch's forward img/s comes from (b).
#   d. the per-op profile of one training run (CLUSTERMAPS_PROFILE=1: device synchronized around each op kind).
#   e. data/checkpoints/train-default.sh with the cuDNN binary (else the plain CUDA one) for the time left.
# Output in $OUT (at most 8 files, each < 16 MiB): summary.md (the Markdown tables for BENCHMARKS.md, also printed),
# bench.tgz (every raw JSON/CSV/log), and from (e): ema.safetensors, last.safetensors.partNN, figures.tgz.
set -uo pipefail
DRY=0; BUDGET=540; TRAIN=1; BENCH=1; TORCH=1; OUT=${OUT:-}
while (($#)); do
  case $1 in
    --dry-run) DRY=1; shift ;;
    --budget) BUDGET=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-train) TRAIN=0; shift ;;
    --train-only) BENCH=0; shift ;;
    --no-torch) TORCH=0; shift ;;
    *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ -n $OUT ]] || { echo "--out DIR is required" >&2; exit 2; }
[[ -f Cargo.toml && -d benches ]] || { echo "run from the repository root" >&2; exit 2; }
T0=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - T0))); }
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
WORK=${WORK:-/tmp/clustermaps-bench}; rm -rf "$WORK"; mkdir -p "$WORK/raw"
RAW=$WORK/raw
exec > >(tee "$RAW/gpu-sh.log") 2>&1
echo "== benches/gpu.sh $(git rev-parse --short HEAD 2>/dev/null || echo '?') dry=$DRY budget=${BUDGET}s $(date -u +%FT%TZ)"

# ---- binaries and devices -------------------------------------------------------------------------------------
source scripts/gpu-env.sh
declare -A BINS=()
if ((DRY)); then
  DEV=cpu; CPU_BIN=${CPU_BIN:-target/release/clustermaps}
  [[ -x $CPU_BIN ]] || { echo "dry run needs $CPU_BIN (cargo build --release)" >&2; exit 2; }
  BINS[cpu-build]=$CPU_BIN
  NETS=(tiny); BATCHES=(4 8); DATA_ARGS=(--preset tiny --n-pix 16); STEPS=6; WARM_STEPS=2; RUN_S=60
  SAMPLE=(--clusters 2 --samples 2 --steps 3); TRAIN_S=20
  export BATCH=4 MAX_CLUSTERS=4 REPRO_S=120 EVAL="2 3 4"
else
  DEV=cuda
  [[ -n ${CM_CUDA:-} ]] && BINS[cuda]=$CM_CUDA
  [[ -n ${CM_CUDNN:-} ]] && BINS[cudnn]=$CM_CUDNN
  ((${#BINS[@]})) || { echo "no .gpu/clustermaps-{cuda,cudnn}.xz: run scripts/build-cuda.sh here first" >&2; exit 2; }
  CPU_BIN=${BINS[cudnn]:-${BINS[cuda]}}
  # Each of our training runs stops after the first step that ends RUN_S seconds in (or at STEPS).
  NETS=(cpu paper); BATCHES=(64 256); DATA_ARGS=(--preset dev); STEPS=200; WARM_STEPS=2; RUN_S=8
  SAMPLE=(--clusters 32 --samples 8 --steps 18 --max-batch 256)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi
TRAIN_BIN=${BINS[cudnn]:-${BINS[cuda]:-${BINS[cpu-build]:-}}}
declare -A AGREED=()
AGREE_TOL=${AGREE_TOL:-1e-4}
echo "binaries: ${!BINS[*]}; device $DEV; python3 $(python3 -c 'import sys; print(sys.version.split()[0])')"
HAVE_TORCH=0; TORCH_PY=${TORCH_PYTHON:-python3}
if ((TORCH)) && "$TORCH_PY" -c 'import torch, numpy' 2>/dev/null; then HAVE_TORCH=1; fi
((HAVE_TORCH)) || echo "torch/numpy not importable by $TORCH_PY: the PyTorch parts are skipped"

# Runs "$@" with at most $1 seconds (and never past the budget); failures are reported, not fatal.
bounded() {
  local s=$1; shift
  local l; l=$(left); ((s > l)) && s=$l
  ((s > 0)) || { echo "   (skipped: budget spent) $*"; return 124; }
  timeout "$s" "$@"; local rc=$?
  ((rc == 0)) || echo "   (exit $rc) $*"
  return $rc
}

# ---- pure-python helpers (numpy is not needed here) ----------------------------------------------------------
cat > "$WORK/npydiff.py" <<'PY'
import array, ast, sys
def load(p):
    with open(p, "rb") as f:
        assert f.read(6) == b"\x93NUMPY"
        major = f.read(2)[0]
        n = int.from_bytes(f.read(2 if major == 1 else 4), "little")
        h = ast.literal_eval(f.read(n).decode("latin1"))
        a = array.array({"<f4": "f", "<f8": "d"}[h["descr"]]); a.frombytes(f.read())
        return a
a, b = load(sys.argv[1]), load(sys.argv[2])
assert len(a) == len(b), (len(a), len(b))
print(max(abs(x - y) for x, y in zip(a, b)))
PY
cat > "$WORK/steplog.py" <<'PY'
import csv, json, sys
log, batch, warm, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = [r for r in csv.DictReader(open(log))]
done = rows[warm:]
s = sum(float(r["step_s"]) for r in done)
print(json.dumps({"run": name, "batch": batch, "steps_timed": len(done), "seconds": round(s, 3),
                  "train_imgs_per_s": round(batch * len(done) / s, 1) if s > 0 else None,
                  "last_loss_per_dim": float(rows[-1]["loss_per_dim"]) if rows else None}))
PY

SUMMARY=$WORK/summary.md
{ echo "# benches/gpu.sh $(date -u +%F) ($( ((DRY)) && echo 'CPU dry run' || nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
  echo; echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); binaries: ${!BINS[*]}"; } > "$SUMMARY"

if ((BENCH)); then
  # ---- data -----------------------------------------------------------------------------------------------------
  echo "== data ($(left) s left)"
  bounded 120 "$CPU_BIN" generate "${DATA_ARGS[@]}" --out "$WORK/data" > "$RAW/generate.log" || exit 1
  # The agreement and the sampling need the shipped model's map size (64²), the dry run's training a tiny dataset.
  if ((DRY)); then bounded 120 "$CPU_BIN" generate --preset tiny --n-pix 64 --out "$WORK/data64" > /dev/null || exit 1
  else ln -s "$WORK/data" "$WORK/data64"; fi

  # ---- (a) agreement ------------------------------------------------------------------------------------------
  echo "== (a) CPU-GPU agreement ($(left) s left)"
  { echo; echo "## (a) CPU–GPU agreement (shipped model, 2 clusters × 2 samples, Heun N = 18, seed 0)"; echo
    echo "| binary | max abs diff (standardized) | tolerance | verdict |"; echo "|---|---:|---:|---|"; } >> "$SUMMARY"
  agree=(--checkpoint data/checkpoints/default.safetensors --data "$WORK/data64" --clusters 2 --samples 2 \
         --steps 18 --seed 0)
  bounded 120 "$CPU_BIN" sample "${agree[@]}" --device cpu --out "$RAW/agree-cpu.npy" > "$RAW/agree-cpu.log" 2>&1
  for b in "${!BINS[@]}"; do
    NVIDIA_TF32_OVERRIDE=0 bounded 60 "${BINS[$b]}" sample "${agree[@]}" --device "$DEV" \
      --out "$RAW/agree-$b.npy" > "$RAW/agree-$b.log" 2>&1
    d=$(python3 "$WORK/npydiff.py" "$RAW/agree-cpu_norm.npy" "$RAW/agree-${b}_norm.npy" 2>>"$RAW/agree-$b.log") \
      || d=nan
    v=$(python3 -c "import sys; d=float(sys.argv[1]); print('ok' if d <= float(sys.argv[2]) else 'FAILED')" "$d" \
        "$AGREE_TOL")
    echo "   $b: max |Δ| = $d ($v)"
    [[ $v == ok ]] && AGREED[$b]=1
    echo "| $b | $d | $AGREE_TOL | $v |" >> "$SUMMARY"
  done

  # ---- (b) training throughput ----------------------------------------------------------------------------------
  echo "== (b) training img/s ($(left) s left)"
  : > "$RAW/train-ours.jsonl"
  # A run TOML: the preset's network, batch BS, precision, a read-back every 2 steps (so that the timed window
  # starts with an idle device after WARM_STEPS), no validation or checkpoint before the end.
  net_toml() {  # net batch precision
    case $1 in
      paper) echo "[model]" ;;
      cpu) printf '[model]\nnf = 32\nch_mult = [1, 2, 2]\n' ;;
      tiny) printf '[model]\nimage_size = 16\nnf = 16\nch_mult = [1, 2]\nnum_res_blocks = 1\nattn_resolutions = [8]\n' ;;
    esac
    printf '[train]\nbatch_size = %s\nprecision = "%s"\nlog_every = 2\nval_every = 0\nval_clusters = 0\n' "$2" "$3"
    printf 'checkpoint_every = 100000\nsigma_max_maps = 256\n'
  }
  train_run() {  # binary-key precision net batch
    local key=$1 prec=$2 net=$3 bs=$4
    local name=$key-$prec-$net-$bs dir=$WORK/runs/$key-$prec-$net-$bs
    mkdir -p "$dir"; net_toml "$net" "$bs" "$prec" > "$dir/run.toml"
    # Strict f32 also for cuDNN, whose default lets convolutions use TF32.
    local tf=0; [[ $prec == tf32 ]] && tf=1
    NVIDIA_TF32_OVERRIDE=$tf bounded 60 "${BINS[$key]}" train --data "$WORK/data" --config "$dir/run.toml" \
      --out "$dir/run" --device "$DEV" --steps "$STEPS" --time-limit "$RUN_S" > "$dir/train.log" 2>&1 || return 0
    python3 "$WORK/steplog.py" "$dir/run/train_log.csv" "$bs" "$WARM_STEPS" "$name" >> "$RAW/train-ours.jsonl"
    tail -1 "$RAW/train-ours.jsonl"
  }
  for b in "${!BINS[@]}"; do
    for net in "${NETS[@]}"; do
      for bs in "${BATCHES[@]}"; do train_run "$b" f32 "$net" "$bs"; done
    done
  done
  tb=${BINS[cudnn]:+cudnn}; tb=${tb:-${!BINS[*]}}; tb=${tb%% *}
  for net in "${NETS[@]}"; do train_run "$tb" tf32 "$net" "${BATCHES[0]}"; done
  if ((HAVE_TORCH)); then
    # fp32 for every configuration, tf32 and bf16 at the first batch size (where ours has tf32 too). Each
    # configuration is a fresh python process (a few seconds of import and CUDA start each).
    all=$(for n in "${NETS[@]}"; do for bs in "${BATCHES[@]}"; do printf '%s:%s,' "$n" "$bs"; done; done)
    first=$(for n in "${NETS[@]}"; do printf '%s:%s,' "$n" "${BATCHES[0]}"; done)
    tdev=$DEV; targs=(--warmup 3 --min-steps 5 --min-time 2 --max-steps 200)
    ((DRY)) && targs=(--threads 1 --warmup 1 --min-steps 2 --min-time 0.2 --max-steps 3)
    bounded 150 "$TORCH_PY" benches/reference/bench_train.py --device "$tdev" --configs "${all%,}" \
      --precisions fp32 "${targs[@]}" --out "$RAW/train-torch-fp32.json" > /dev/null 2> "$RAW/train-torch.log"
    bounded 120 "$TORCH_PY" benches/reference/bench_train.py --device "$tdev" --configs "${first%,}" \
      --precisions tf32,bf16 "${targs[@]}" --no-fwd --out "$RAW/train-torch-tf32-bf16.json" > /dev/null \
      2>> "$RAW/train-torch.log"
    grep '^\[bench\]' "$RAW/train-torch.log"
  fi

  # ---- (c) sampling -------------------------------------------------------------------------------------------------
  echo "== (c) sampling ($(left) s left)"
  for b in "${!BINS[@]}"; do
    NVIDIA_TF32_OVERRIDE=0 bounded 90 "${BINS[$b]}" sample --checkpoint data/checkpoints/default.safetensors \
      --data "$WORK/data64" "${SAMPLE[@]}" --device "$DEV" --out "$RAW/sample-$b.npy" > "$RAW/sample-$b.log" 2>&1
    tail -1 "$RAW/sample-$b.log"
  done
  rm -f "$RAW"/sample-*.npy  # 8 MB each; the .json keeps what the table needs

  # ---- (d) per-op profile -------------------------------------------------------------------------------------------
  echo "== (d) per-op profile ($(left) s left)"
  mkdir -p "$WORK/runs/profile"; net_toml "${NETS[0]}" "${BATCHES[0]}" f32 > "$WORK/runs/profile/run.toml"
  CLUSTERMAPS_PROFILE=1 NVIDIA_TF32_OVERRIDE=0 bounded 60 "${BINS[$tb]}" train --data "$WORK/data" \
    --config "$WORK/runs/profile/run.toml" --out "$WORK/runs/profile/run" --device "$DEV" --steps "$STEPS" \
    --time-limit "$RUN_S" > "$RAW/profile-$tb.log" 2>&1

  # ---- tables -------------------------------------------------------------------------------------------------------
  python3 - "$RAW" "$DEV" >> "$SUMMARY" <<'PY'
import glob, json, os, re, sys
raw, dev = sys.argv[1], sys.argv[2]
ours = [json.loads(l) for l in open(os.path.join(raw, "train-ours.jsonl")) if l.strip()]
torch = [r for p in sorted(glob.glob(os.path.join(raw, "train-torch-*.json"))) for r in json.load(open(p))]
tt = {(r["preset"], r["batch"], r["precision"]): r for r in torch}
print("\n## (b) training img/s (one step = batch gather, loss, backward, clip, Adam, EMA)\n")
print("| run (binary-precision-net-batch) | clustermaps img/s | PyTorch fp32 | tf32 | bf16 | ratio (same mode) |")
print("|---|---:|---:|---:|---:|---:|")
for r in ours:
    key, prec, net, bs = r["run"].rsplit("-", 3)
    t = {m: tt.get((net, int(bs), m), {}).get("train_imgs_per_s") for m in ("fp32", "tf32", "bf16")}
    same = t["fp32" if prec == "f32" else prec]
    ratio = f"{r['train_imgs_per_s'] / same:.2f}×" if same and r["train_imgs_per_s"] else ""
    f = lambda x: "" if x is None else f"{x:.0f}"
    print(f"| {r['run']} | {f(r['train_imgs_per_s'])} | {f(t['fp32'])} | {f(t['tf32'])} | {f(t['bf16'])} | {ratio} |")
print("\n## (c) sampling vs PyTorch forward img/s (`cpu` net)\n")
print("| binary | sampler, rows | map-NFE/s | PyTorch forward img/s (fp32, batch 64 / 256) | ratio |")
print("|---|---|---:|---:|---:|")
fwd = [tt.get(k, {}).get("fwd_imgs_per_s") for k in ((n, b, "fp32") for n, b in (("cpu", 64), ("cpu", 256)))]
for p in sorted(glob.glob(os.path.join(raw, "sample-*.json"))):
    j = json.load(open(p))
    n, s = j["shape"][0], j["shape"][1]
    rate = n * s * j["nfe"] / j["seconds"]
    best = max([x for x in fwd if x] or [0])
    ratio = f"{rate / best:.2f}×" if best else ""
    shown = " / ".join("" if x is None else f"{x:.0f}" for x in fwd)
    print(f"| {os.path.basename(p)[7:-5]} | {j['sampler']}, {n}×{s} | {rate:.0f} | {shown} | {ratio} |")
print("\n## (d) per-op profile (device synchronized around each op kind)\n")
for p in sorted(glob.glob(os.path.join(raw, "profile-*.log"))):
    text = open(p).read()
    m = re.search(r"(### profile.*?)(?:\n\n|\Z)", text, re.S)
    print(m.group(1) if m else f"(no profile in {os.path.basename(p)})")
PY
fi

# ---- (e) training -------------------------------------------------------------------------------------------------
# Train with a binary that passed (a), the cuDNN one first; without (a) (--train-only) with the cuDNN one.
if ((BENCH)); then
  TRAIN_BIN=
  for b in cudnn cuda cpu-build; do [[ -n ${AGREED[$b]:-} ]] && { TRAIN_BIN=${BINS[$b]}; break; }; done
  [[ -n $TRAIN_BIN ]] || echo "== (e) skipped: no binary passed the agreement check"
fi
if ((TRAIN)) && [[ -n $TRAIN_BIN ]]; then
  l=$(left)
  REPRO_S=${REPRO_S:-$(( l > 400 ? 120 : 60 ))}; export REPRO_S
  # Smoke test, data and packing take about a minute on the GPU machine (90 s kept); the evaluation gets REPRO_S.
  ((DRY)) || TRAIN_S=$(( l - REPRO_S - 90 ))
  if ((TRAIN_S >= 20)); then
    echo "== (e) train-default.sh for ${TRAIN_S} s of training ($l s left)"
    ((DRY)) && export DEVICE=cpu DATA=$WORK/data64
    WORK=$WORK/train bounded $((l + 30)) data/checkpoints/train-default.sh "$TRAIN_BIN" "$TRAIN_S" "$WORK/train-out" \
      > "$RAW/train-default.log" 2>&1
    tail -n 5 "$RAW/train-default.log"
    for f in ema.safetensors figures.tgz; do [[ -f $WORK/train-out/$f ]] && mv "$WORK/train-out/$f" "$OUT/"; done
    mv "$WORK"/train-out/last.safetensors.part* "$OUT/" 2>/dev/null
    cp "$WORK"/train-out/* "$RAW/" 2>/dev/null
    { echo; echo "## (e) training"; echo; grep -E "^(done|== )" "$RAW/train-default.log"; } >> "$SUMMARY"
  else
    echo "== (e) skipped: $l s left"
  fi
fi

cp "$SUMMARY" "$OUT/summary.md"
tar czf "$OUT/bench.tgz" -C "$WORK" raw
# What comes back from the GPU machine: at most 8 files of at most 16 MiB each.
for f in "$OUT"/*; do (( $(stat -c %s "$f") < 16 * 1024 * 1024 )) || echo "WARNING: $f is 16 MiB or more"; done
echo "== done after $(( $(date +%s) - T0 )) s; $OUT:"; ls -la "$OUT"
cat "$SUMMARY"
