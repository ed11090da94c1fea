#!/usr/bin/env bash
# Training benchmark of the score network, candle against PyTorch on the CPU, in one command (BENCHMARKS.md,
# "Training"). Run it on a quiet machine: every number comes from one run.
#
# Usage:  benches/run_train_bench.sh [--out FILE] [--threads N] [--workdir DIR] [--quick] [--no-torch]
#
#   --out FILE     also write the joined Markdown table to FILE (it always goes to stdout)
#   --threads N    threads for both runtimes (default 2): RAYON_NUM_THREADS for candle (rayon and its gemm),
#                  torch.set_num_threads + OMP_NUM_THREADS/MKL_NUM_THREADS for PyTorch
#   --workdir DIR  where the per-run JSON files go (default target/train-bench)
#   --quick        plumbing check only: tiny, both conv paths, 1 warm-up + 1 timed step (numbers meaningless)
#   --no-torch     skip PyTorch (and the architecture check); the table's PyTorch columns stay empty
#
# What it does:
#   1. builds `benches/train.rs` (cargo bench --no-run);
#   2. proves the two networks identical: the Rust tensor list (`--list-params`) against `unet_torch.py --compare`
#      (same names, shapes and parameter counts for tiny, cpu and paper); stops on a mismatch;
#   3. the convolution op alone (benches/conv.rs, then bench_conv.py): GFLOP/s forward and backward, fast op, candle's
#      conv2d, PyTorch, against a peak estimated from /proc/cpuinfo (CLUSTERMAPS_BENCH_CONV_SHAPES overrides shapes);
#   4. per preset group, back to back so that both runtimes see the same machine state:
#        candle, fast conv (im2col, the default) with forward-only throughput,
#        candle, candle's conv2d (cpu and paper only; training only),
#        PyTorch (`benches/reference/run.sh`, which creates its venv on first use) with forward-only throughput;
#   4. joins the JSON files (benches/train_bench_join.py) into one table.
#
# Steps per run (warm-up passes, minimum timed passes, minimum seconds), the same for both runtimes and for the
# forward phase; override with CLUSTERMAPS_BENCH_COUNTS_{TINY,CPU,PAPER}="warmup min_steps min_time":
#   tiny  @16² b32:        2 5 5    (≥ 5 timed steps and ≥ 5 s)
#   cpu   @64² b32:        1 1 10   (≥ 1 timed step and ≥ 10 s: 1–2 candle steps, 2–4 PyTorch steps)
#   paper @64² b32:        1 1 0    (exactly 1 timed step after 1 warm-up step)
# The counts each run used are in its JSON (`warmup_steps`, `steps_timed`, `fwd_passes`) and under the table.
# Configs: CLUSTERMAPS_BENCH_CPU_CONFIGS / CLUSTERMAPS_BENCH_PAPER_CONFIGS (default cpu:32, paper:32; e.g. cpu:16,cpu:32).
# The load averages at the start and after each group go under the table. Measured: 859 s on the 2-core box
# (2026-11-27, load 1–6.5), build excluded; earlier estimate for the b16+b32 set: ≈ 60 % of it is
# paper, ≈ 45 % candle's conv2d runs, ≈ 20 % PyTorch.
#
# PyTorch's OpenMP threads busy-wait between parallel regions: on a loaded machine that makes its timings erratic
# (10× slower than on a quiet one). The script does not set OMP_WAIT_POLICY; export OMP_WAIT_POLICY=PASSIVE yourself
# if the machine cannot be quiet, and say so next to the numbers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OUT=""
THREADS=2
WORK="target/train-bench"
QUICK=0
TORCH=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --workdir) WORK="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --no-torch) TORCH=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { echo "[run_train_bench] $*" >&2; }
export RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
mkdir -p "$WORK"
rm -f "$WORK"/rust_*.json "$WORK"/torch_*.json "$WORK"/conv_*.json
T0=$SECONDS

log "building benches/train.rs"
cargo bench --bench train --no-run >&2
cargo bench --bench conv --no-run >&2
bench() { cargo bench -q --bench train -- "$@"; }

if [ "$TORCH" = 1 ]; then
    log "architecture check (Rust tensor list against unet_torch.py)"
    bench --list-params >"$WORK/rust_params.txt"
    benches/reference/run.sh --unet --compare "$WORK/rust_params.txt" >&2
fi

# The convolution op alone: candle fast, candle conv2d (and a gemm of the same size), then PyTorch.
CONV_SHAPES="${CLUSTERMAPS_BENCH_CONV_SHAPES:-8,64,64,64,3,1;32,32,32,64,3,1;32,64,64,32,3,1;32,64,64,64,3,1;32,128,128,32,3,1;32,64,64,64,1,1}"
if [ "$QUICK" = 1 ]; then CONV_SHAPES="2,8,8,16,3,1"; fi
log "uptime: $(uptime)"
LOADS=("$(cut -d' ' -f1-3 /proc/loadavg)")
log "conv op: candle"
cargo bench -q --bench conv -- --shapes "$CONV_SHAPES" --out "$WORK/conv_rust.json" >/dev/null
if [ "$TORCH" = 1 ]; then
    log "conv op: PyTorch"
    benches/reference/run.sh --conv --shapes "$CONV_SHAPES" --threads "$THREADS" --out "$WORK/conv_torch.json" >/dev/null
fi

# group name, configs, counts, run candle's conv too?
if [ "$QUICK" = 1 ]; then
    GROUPS_=("tiny|tiny:32|1 1 0|1")
else
    GROUPS_=(
        "tiny|tiny:32|${CLUSTERMAPS_BENCH_COUNTS_TINY:-2 5 5}|0"
        "cpu|${CLUSTERMAPS_BENCH_CPU_CONFIGS:-cpu:32}|${CLUSTERMAPS_BENCH_COUNTS_CPU:-1 1 10}|1"
        "paper|${CLUSTERMAPS_BENCH_PAPER_CONFIGS:-paper:32}|${CLUSTERMAPS_BENCH_COUNTS_PAPER:-1 1 0}|1"
    )
fi

for g in "${GROUPS_[@]}"; do
    IFS='|' read -r name configs counts candle_conv <<<"$g"
    read -r warmup min_steps min_time <<<"$counts"
    common=(--configs "$configs" --threads "$THREADS" --warmup "$warmup" --min-steps "$min_steps"
            --min-time "$min_time")
    log "$name: candle, fast conv ($configs; warm-up $warmup, ≥ $min_steps steps, ≥ $min_time s)"
    bench "${common[@]}" --conv auto --out "$WORK/rust_fast_$name.json" >/dev/null
    if [ "$TORCH" = 1 ]; then
        log "$name: PyTorch"
        benches/reference/run.sh "${common[@]}" --out "$WORK/torch_$name.json" >/dev/null
    fi
    if [ "$candle_conv" = 1 ]; then
        log "$name: candle, candle's conv2d"
        bench "${common[@]}" --conv candle --no-fwd --out "$WORK/rust_candle_$name.json" >/dev/null
    fi
    LOADS+=("$(cut -d' ' -f1-3 /proc/loadavg)")
done
log "uptime: $(uptime)"

log "benchmarks took $((SECONDS - T0)) s; joining"
join=(python3 benches/train_bench_join.py --rust "$WORK"/rust_*.json --conv "$WORK"/conv_*.json
      --load "$(IFS=';'; echo "${LOADS[*]}" | sed 's/;/ → /g') (start, then after each group)")
if [ "$TORCH" = 1 ]; then
    join+=(--torch "$WORK"/torch_*.json)
fi
if [ -n "$OUT" ]; then
    join+=(--out "$OUT")
fi
"${join[@]}"
