"""Per-op-kind profile of one PyTorch training step (the counterpart of `benches/train.rs --profile`).

    benches/reference/run.sh --profile --preset cpu --batch 32 --threads 2

One warm-up step, then one step under `torch.profiler` (CPU): self CPU time of every aten op, summed into the op kinds
of BENCHMARKS.md ("Training profile"). Self times are per op (not per thread); with intra-op parallelism they are
wall times of the op. The step is `unet_torch.Trainer.step` on synthetic N(0, 1) data.
"""

import argparse
import os
import sys
import time

import torch

KINDS = [
    # Backward first: "convolution_backward" would otherwise match the forward's "convolution" prefix.
    ("conv bwd", ("convolution_backward",)),
    ("conv fwd", ("convolution", "conv2d", "mkldnn_convolution", "_convolution", "thnn_conv2d")),
    ("groupnorm fwd", ("native_group_norm", "group_norm")),
    ("groupnorm bwd", ("native_group_norm_backward",)),
    ("silu fwd/bwd", ("silu", "silu_backward")),
    ("matmul (attention, dense, 1x1 via linear)", ("bmm", "mm", "addmm", "matmul", "linear", "baddbmm")),
    ("softmax fwd/bwd", ("softmax", "_softmax", "_softmax_backward_data")),
    ("resample fwd/bwd", ("upsample_nearest2d", "upsample_nearest2d_backward", "avg_pool2d",
                          "avg_pool2d_backward")),
    ("dropout", ("dropout", "native_dropout", "native_dropout_backward", "bernoulli_")),
    ("optimizer/EMA (foreach, addcdiv, sqrt…)", ("_foreach", "addcdiv", "addcmul", "lerp", "sqrt", "_fused_adam")),
]


def kind_of(name: str) -> str:
    n = name.replace("aten::", "")
    for kind, keys in KINDS:
        if any(n == k or n.startswith(k + "_") or (k == "_foreach" and n.startswith("_foreach")) for k in keys):
            return kind
    return "other (element-wise, copies, reductions, cat…)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import unet_torch as ut

    torch.manual_seed(0)
    cfg = ut.PRESETS[a.preset]
    tr = ut.Trainer(cfg)
    x0 = torch.randn(a.batch, cfg.target_channels, cfg.image_size, cfg.image_size)
    y = torch.randn(a.batch, cfg.cond_channels, cfg.image_size, cfg.image_size)
    tr.step(x0, y)
    t0 = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        tr.step(x0, y)
    wall = time.perf_counter() - t0
    kinds = {}
    for ev in prof.key_averages():
        k = kind_of(ev.key)
        kinds[k] = kinds.get(k, 0.0) + ev.self_cpu_time_total / 1e6
    total = sum(kinds.values())
    print(f"PyTorch {torch.__version__}, {a.preset} b{a.batch}, {a.threads} threads: step {wall:.3f} s wall "
          f"(under the profiler), Σ self time {total:.3f} s")
    print("| op kind | s per step | % of Σ self |")
    print("|---|---|---|")
    for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.3f} | {100 * v / total:.1f} |")


if __name__ == "__main__":
    main()
