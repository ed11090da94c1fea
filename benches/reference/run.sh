#!/usr/bin/env bash
# PyTorch reference benchmark for the score network (see bench_train.py for what is measured).
#
# Usage:  benches/reference/run.sh [bench_train.py arguments...]
#         benches/reference/run.sh --install-only      # only create the venv and install torch
#         benches/reference/run.sh --unet [unet_torch.py arguments...]   # e.g. --unet --compare rust_params.txt
#         benches/reference/run.sh --conv [bench_conv.py arguments...]   # conv-op GFLOP/s
#         benches/reference/run.sh --profile [profile_train.py arguments...]   # per-op profile of one step
#
# Creates, if missing or broken, a Python venv with a CPU build of torch and runs bench_train.py in it,
# passing all arguments through (e.g. `--threads 2 --out torch.json`, `--help` for the rest).
#
# Environment:
#   CLUSTERMAPS_TORCH_VENV  venv location (default ~/.cache/clustermaps-torch-venv)
#   PYTHON                  interpreter that creates the venv (default python3, needs >= 3.9)
#   TORCH_SPEC              pip requirement for torch (default "torch"; e.g. "torch==2.5.1" to pin)
#
# Install strategy: first the CPU-only wheel index of the PyTorch project (no CUDA libraries); if that
# index cannot be reached, plain `pip install torch` from the default index. On Linux x86-64 the latter is the CUDA
# build and pulls the NVIDIA runtime wheels (torch 2.15: ≈ 3 GB to download, 5.3 GB venv); the benchmark still runs
# on the CPU only, with the same CPU kernels. `import torch` is checked before and after installing; when it fails
# the install is run again into the same venv.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${CLUSTERMAPS_TORCH_VENV:-$HOME/.cache/clustermaps-torch-venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch}"
CPU_INDEX="https://download.pytorch.org/whl/cpu"

log() { echo "[run.sh] $*" >&2; }

torch_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import torch' >/dev/null 2>&1
}

install_torch() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating venv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local pip=("$VENV/bin/python" -m pip install --disable-pip-version-check)
    local t0=$SECONDS
    log "installing $TORCH_SPEC from the CPU-only wheel index"
    if "${pip[@]}" --timeout 20 --retries 1 --index-url "$CPU_INDEX" "$TORCH_SPEC" >&2 \
        && "${pip[@]}" numpy >&2 && torch_ok; then
        log "CPU-only torch installed in $((SECONDS - t0)) s"
    else
        log "CPU-only index unreachable or its torch does not import; installing $TORCH_SPEC from the default index"
        "${pip[@]}" "$TORCH_SPEC" numpy >&2
        log "torch installed in $((SECONDS - t0)) s"
    fi
    if ! torch_ok; then
        log "error: torch still does not import:"
        "$VENV/bin/python" -c 'import torch' >&2 || true
        exit 1
    fi
    log "venv size: $(du -sh "$VENV" | cut -f1)"
}

if ! torch_ok; then
    install_torch
fi
log "$("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)')"

if [ "${1:-}" = "--install-only" ]; then
    exit 0
fi
if [ "${1:-}" = "--profile" ]; then
    shift
    exec "$VENV/bin/python" "$HERE/profile_train.py" "$@"
fi
if [ "${1:-}" = "--conv" ]; then
    shift
    exec "$VENV/bin/python" "$HERE/bench_conv.py" "$@"
fi
if [ "${1:-}" = "--unet" ]; then
    shift
    exec "$VENV/bin/python" "$HERE/unet_torch.py" "$@"
fi
exec "$VENV/bin/python" "$HERE/bench_train.py" "$@"
