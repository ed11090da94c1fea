#!/usr/bin/env bash
# Builds the clustermaps binary with candle's CUDA backend on a machine that has neither a GPU nor a CUDA toolkit,
# from the CUDA 13.0 pieces that PyPI ships as wheels, and packs what the GPU machine needs beside it into .gpu/.
#
#   usage (repository root): scripts/build-cuda.sh [--features cuda|cudnn] [--no-pack] [--clippy] [-- cargo args]
#   --clippy: instead of building, run `cargo clippy --release --all-targets` with the feature (no GPU needed).
#   result: .gpu/clustermaps-FEATURE.xz (stripped, xz-compressed), .gpu/lib + .gpu/fonts (figure text, see below);
#           the uncompressed binary stays in target/gpu/. .gpu/ is git-ignored; carry it to the GPU machine and
#           `source scripts/gpu-env.sh` there (it unpacks the binaries and sets the loader and font paths).
#   env: CUDA_PIP_DIR (toolkit cache, default ~/.cache/cuda-pip-13.0), COMPUTE_CAP (default 90: H100/H200; 80: A100)
#
# Why it is done this way (each point was met on the way):
# - CUDA 13.0.x exactly: the GPU machine's driver (580) speaks CUDA 13.0, and a newer nvcc writes PTX that driver
#   cannot JIT-compile.
# - candle-core 0.11 asks cudarc for "dynamic-linking", which needs libcuda.so (the driver) at link time; no wheel
#   ships a stub of it. A copy of candle-core whose manifest says "dynamic-loading" instead is patched in with
#   cargo's --config, so the project's Cargo.toml stays as it is; Cargo.lock is restored afterwards. With dynamic
#   loading every CUDA library (driver, cuBLAS, cuRAND, NVRTC and, for `cudnn`, libcudnn) is opened at run time, so
#   the cuDNN build needs no cuDNN headers or libraries here: the GPU machine's PyTorch brings cuDNN 9 for CUDA 13.
# - candle-kernels compiles its .cu files with nvcc for sm_$COMPUTE_CAP and embeds the PTX (most of the binary's
#   size; it compresses well, hence .xz); it links -lcudart, which the runtime wheel provides.
# - The figures draw text through fontconfig/freetype, which the GPU machine's image lacks: the shared libraries
#   and three DejaVu fonts travel in .gpu/ (pass --no-pack to skip).
set -euo pipefail
FEATURE=cuda; PACK=1; CLIPPY=0; EXTRA=()
while (($#)); do
  case $1 in
    --features) FEATURE=$2; shift 2 ;;
    --no-pack) PACK=0; shift ;;
    --clippy) CLIPPY=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
case $FEATURE in cuda | cudnn) ;; *) echo "--features must be cuda or cudnn" >&2; exit 2 ;; esac
ROOT=$(pwd)
[[ -f $ROOT/Cargo.toml && -d $ROOT/src ]] || { echo "run from the repository root" >&2; exit 2; }
CUDA_PIP_DIR=${CUDA_PIP_DIR:-$HOME/.cache/cuda-pip-13.0}
CUDA_DIR=$CUDA_PIP_DIR/cuda
WHEELS=$CUDA_PIP_DIR/wheels
COMPUTE_CAP=${COMPUTE_CAP:-90}
PKGS=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
      nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85)
t0=$(date +%s)

# 1. The toolkit from wheels (≈ 100 MB download, 270 MB unpacked), once.
if [[ ! -x $CUDA_DIR/bin/nvcc ]]; then
  mkdir -p "$WHEELS"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS" --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 "${PKGS[@]}"
  stage=$(mktemp -d)
  for p in "${PKGS[@]}"; do
    name=${p%%==*}; ver=${p##*==}
    unzip -q -o "$(ls "$WHEELS"/"${name//-/_}"-"$ver"-*.whl)" -d "$stage"
  done
  rm -rf "$CUDA_DIR"; mv "$stage/nvidia/cu13" "$CUDA_DIR"; rm -rf "$stage"
  ln -sfn lib "$CUDA_DIR/lib64"
  [[ -e $CUDA_DIR/lib/libcudart.so ]] || ln -s libcudart.so.13 "$CUDA_DIR/lib/libcudart.so"
fi
"$CUDA_DIR/bin/nvcc" --version | grep -q 'release 13.0' || { echo "nvcc in $CUDA_DIR is not 13.0" >&2; exit 1; }

# 2. candle-core of the lock's version, switched to cudarc's dynamic loading.
[[ -f Cargo.lock ]] || cargo generate-lockfile
ver=$(awk '/^name = "candle-core"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
[[ -n $ver ]] || { echo "candle-core not found in Cargo.lock" >&2; exit 1; }
reg=${CARGO_HOME:-$HOME/.cargo}/registry/cache
ls "$reg"/*/candle-core-"$ver".crate >/dev/null 2>&1 || cargo fetch
PATCH=$CUDA_PIP_DIR/patches/candle-core-$ver
if ! grep -q '"dynamic-loading"' "$PATCH/Cargo.toml" 2>/dev/null; then
  mkdir -p "$CUDA_PIP_DIR/patches"; rm -rf "$PATCH"
  tar xzf "$(ls "$reg"/*/candle-core-"$ver".crate | head -1)" -C "$CUDA_PIP_DIR/patches"
  sed -i 's/"dynamic-linking",/"dynamic-loading",/' "$PATCH/Cargo.toml"
  grep -q '"dynamic-loading"' "$PATCH/Cargo.toml"
fi

# 3. Build. Both features share target/cuda (candle's kernels are compiled once); the lock is restored on exit.
export CUDA_ROOT=$CUDA_DIR CUDA_PATH=$CUDA_DIR CUDA_HOME=$CUDA_DIR NVCC=$CUDA_DIR/bin/nvcc
export PATH=$CUDA_DIR/bin:$PATH CUDA_COMPUTE_CAP=$COMPUTE_CAP
export LIBRARY_PATH=$CUDA_DIR/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
lock_bak=$(mktemp); cp Cargo.lock "$lock_bak"
trap 'cp "$lock_bak" "$ROOT/Cargo.lock"; rm -f "$lock_bak"' EXIT
patch=(--config "patch.crates-io.candle-core.path=\"$PATCH\"")
if ((CLIPPY)); then
  CARGO_TARGET_DIR=$ROOT/target/cuda cargo clippy --release --all-targets --features "$FEATURE" "${patch[@]}" \
    "${EXTRA[@]}"
  exit
fi
CARGO_TARGET_DIR=$ROOT/target/cuda cargo build --release --features "$FEATURE" "${patch[@]}" --bin clustermaps \
  "${EXTRA[@]}"
mkdir -p target/gpu .gpu
bin=target/gpu/clustermaps-$FEATURE
strip -o "$bin" target/cuda/release/clustermaps
xz -T0 -6 -c "$bin" > ".gpu/clustermaps-$FEATURE.xz"
t1=$(date +%s)

# 4. What the figures need on the GPU machine (Debian/Ubuntu library paths).
if ((PACK)); then
  mkdir -p .gpu/lib .gpu/fonts
  for l in libfontconfig.so.1 libfreetype.so.6 libexpat.so.1 libz.so.1 libpng16.so.16 libbrotlidec.so.1 \
           libbrotlicommon.so.1; do
    cp -L "/lib/x86_64-linux-gnu/$l" .gpu/lib/
  done
  cp /usr/share/fonts/truetype/dejavu/DejaVuSans{,-Bold,-Oblique}.ttf .gpu/fonts/
fi
glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
echo "built $bin ($(du -m "$bin" | cut -f1) MB; .xz $(du -m ".gpu/clustermaps-$FEATURE.xz" | cut -f1) MB) in" \
     "$((t1 - t0)) s; needs $glibc or newer; .gpu/ holds $(du -sm .gpu | cut -f1) MB"
