# Sourced on the GPU machine (repository root) before running the CUDA build there: `source scripts/gpu-env.sh`.
# That machine has the NVIDIA driver, python3 with PyTorch and its CUDA 13 libraries as pip wheels (cuBLAS, cuRAND,
# NVRTC, the runtime, cuDNN 9), but no Rust toolchain, no fontconfig/freetype and no fonts. scripts/build-cuda.sh
# packed the binaries (xz) and the font libraries into .gpu/; this file
# - unpacks .gpu/clustermaps-{cuda,cudnn}.xz into $CM_BIN_DIR (default /tmp/clustermaps-bin) and exports CM_CUDA and
#   CM_CUDNN, the paths of wrappers that run them with .gpu/lib on the loader path (each only if packed);
# - puts the lib folders of PyTorch's nvidia wheels on LD_LIBRARY_PATH (the binary links libcudart and opens the
#   driver, cuBLAS, cuRAND, NVRTC and cuDNN at run time);
# - points fontconfig at .gpu/fonts.
# Sourcing it on a machine without those pieces (a CPU dry run) changes nothing that matters.
CM_BIN_DIR=${CM_BIN_DIR:-/tmp/clustermaps-bin}
mkdir -p "$CM_BIN_DIR"
for _cm_f in cuda cudnn; do
  [[ -f .gpu/clustermaps-$_cm_f.xz ]] || continue
  if [[ ! -x $CM_BIN_DIR/clustermaps-$_cm_f.bin || .gpu/clustermaps-$_cm_f.xz -nt $CM_BIN_DIR/clustermaps-$_cm_f.bin ]]
  then
    # xz may be missing there; python's lzma module is not.
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      ".gpu/clustermaps-$_cm_f.xz" "$CM_BIN_DIR/clustermaps-$_cm_f.bin"
    chmod +x "$CM_BIN_DIR/clustermaps-$_cm_f.bin"
  fi
  # The font libraries are Debian's builds: only our binary sees them, not python3 and its own libz/libpng.
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
    "$PWD/.gpu/lib" "$CM_BIN_DIR/clustermaps-$_cm_f.bin" > "$CM_BIN_DIR/clustermaps-$_cm_f"
  chmod +x "$CM_BIN_DIR/clustermaps-$_cm_f"
  if [[ $_cm_f == cuda ]]; then export CM_CUDA=$CM_BIN_DIR/clustermaps-cuda; fi
  if [[ $_cm_f == cudnn ]]; then export CM_CUDNN=$CM_BIN_DIR/clustermaps-cudnn; fi
done
unset _cm_f
_cm_libs=$(python3 - <<'PY' 2>/dev/null || true
import glob, os
try:
    import nvidia; roots = list(nvidia.__path__)
except Exception:
    import site; roots = [os.path.join(p, "nvidia") for p in site.getsitepackages()]
dirs = []
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "*", "lib")) + glob.glob(os.path.join(r, "*", "*", "lib"))):
        if glob.glob(os.path.join(d, "lib*.so*")) and d not in dirs:
            dirs.append(d)
print(":".join(dirs))
PY
)
[[ -n $_cm_libs ]] && export LD_LIBRARY_PATH=$_cm_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
unset _cm_libs
if [[ -d .gpu/fonts ]]; then
  mkdir -p /tmp/fc-cache
  cat > /tmp/clustermaps-fonts.conf <<XML
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>$PWD/.gpu/fonts</dir>
  <cachedir>/tmp/fc-cache</cachedir>
  <alias><family>sans-serif</family><prefer><family>DejaVu Sans</family></prefer></alias>
</fontconfig>
XML
  export FONTCONFIG_FILE=/tmp/clustermaps-fonts.conf
fi
