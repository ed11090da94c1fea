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
#   3. per preset group, back to back so that both runtimes see the same machine state:
#        candle, fast conv (im2col, the default) with forward-only throughput,
#        candle, candle's conv2d (cpu and paper only; training only),
#        PyTorch (`benches/reference/run.sh`, which creates its venv on first use) with forward-only throughput;
#   4. joins the JSON files (benches/train_bench_join.py) into one table.
#
# Steps per run (warm-up passes, minimum timed passes, minimum seconds), the same for both runtimes and for the
# forward phase; override with CLUSTERMAPS_BENCH_COUNTS_{TINY,CPU,PAPER}="warmup min_steps min_time":
#   tiny  @16² b32:        2 5 5    (≥ 5 timed steps and ≥ 5 s)
#   cpu   @64² b16, b32:   1 1 10   (≥ 1 timed step and ≥ 10 s: 1–2 candle steps, 2–4 PyTorch steps)
#   paper @64² b16, b32:   1 1 0    (exactly 1 timed step after 1 warm-up step)
# The counts each run used are in its JSON (`warmup_steps`, `steps_timed`, `fwd_passes`) and under the table.
# Expected wall time on a quiet 2-core machine: ≈ 14 minutes (estimate, ± 25 %), build excluded; ≈ 60 % of it is
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
rm -f "$WORK"/rust_*.json "$WORK"/torch_*.json
T0=$SECONDS

log "building benches/train.rs"
cargo bench --bench train --no-run >&2
bench() { cargo bench -q --bench train -- "$@"; }

if [ "$TORCH" = 1 ]; then
    log "architecture check (Rust tensor list against unet_torch.py)"
    bench --list-params >"$WORK/rust_params.txt"
    benches/reference/run.sh --unet --compare "$WORK/rust_params.txt" >&2
fi

# group name, configs, counts, run candle's conv too?
if [ "$QUICK" = 1 ]; then
    GROUPS_=("tiny|tiny:32|1 1 0|1")
else
    GROUPS_=(
        "tiny|tiny:32|${CLUSTERMAPS_BENCH_COUNTS_TINY:-2 5 5}|0"
        "cpu|cpu:16,cpu:32|${CLUSTERMAPS_BENCH_COUNTS_CPU:-1 1 10}|1"
        "paper|paper:16,paper:32|${CLUSTERMAPS_BENCH_COUNTS_PAPER:-1 1 0}|1"
    )
fi

for g in "${GROUPS_[@]}"; do
    IFS='|' read -r name configs counts candle_conv <<<"$g"
    read -r warmup min_steps min_time <<<"$counts"
    common=(--configs "$configs" --threads "$THREADS" --warmup "$warmup" --min-steps "$min_steps"
            --min-time "$min_time")
    log "$name: candle, fast conv ($configs; warm-up $warmup, ≥ $min_steps steps, ≥ $min_time s)"
    bench "${common[@]}" --conv auto --out "$WORK/rust_fast_$name.json" >/dev/null
    if [ "$candle_conv" = 1 ]; then
        log "$name: candle, candle's conv2d"
        bench "${common[@]}" --conv candle --no-fwd --out "$WORK/rust_candle_$name.json" >/dev/null
    fi
    if [ "$TORCH" = 1 ]; then
        log "$name: PyTorch"
        benches/reference/run.sh "${common[@]}" --out "$WORK/torch_$name.json" >/dev/null
    fi
done

log "benchmarks took $((SECONDS - T0)) s; joining"
join=(python3 benches/train_bench_join.py --rust "$WORK"/rust_*.json)
if [ "$TORCH" = 1 ]; then
    join+=(--torch "$WORK"/torch_*.json)
fi
if [ -n "$OUT" ]; then
    join+=(--out "$OUT")
fi
"${join[@]}"
