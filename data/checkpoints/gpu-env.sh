# Sourced on the lent GPU machine (repository root) before data/checkpoints/train-default.sh. The environment itself
# (CUDA libraries of the machine's PyTorch, the font libraries and fonts that travel in .gpu/, the unpacked binaries
# as $CM_CUDA and $CM_CUDNN) is set up by scripts/gpu-env.sh; scripts/build-cuda.sh prepares .gpu/ here. Then:
#   source data/checkpoints/gpu-env.sh; data/checkpoints/train-default.sh "$CM_CUDNN" SECONDS $OUT
source scripts/gpu-env.sh
