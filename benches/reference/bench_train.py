"""PyTorch CPU reference timings of the score network: training-step and forward throughput, peak memory.

What it measures, per configuration (preset × batch size), each in a fresh subprocess so that peak memory is that
configuration's own:
- `fwd_imgs_per_s`: forward passes of the network alone (eval mode, `torch.inference_mode`, no dropout), as a
  sampler would call it: batch × timed passes / wall time.
- `train_imgs_per_s`: full training steps as the crate's trainer does them (`unet_torch.Trainer.step`): draw t, z,
  VE DSM loss (sum reduction, `score = F/σ`), backward, global-norm clipping 1.0, Adam (lr 2e-4, warm-up schedule
  applied), EMA update (0.999). Inputs are synthetic N(0, 1) maps drawn once; data loading/augmentation excluded.
  Also the mean split of a step into forward+loss, backward and update (clip + Adam + EMA).
- `peak_rss_mib`: `getrusage(RUSAGE_SELF).ru_maxrss` of the subprocess at the end (training dominates; the forward
  phase runs first, its peak is `peak_rss_fwd_mib`). `rss_start_mib` is the RSS right after importing torch;
  `rss_base_mib` the process baseline, measured after a library warm-up (a throwaway `tiny` trainer: one training
  step and one forward pass at batch 2, then deleted) and before building the benchmarked network; `rss_built_mib`
  the RSS once the trainer (weights, Adam moments, EMA) and the input batch exist; `peak_rss_delta_mib` = peak −
  base. Compare the delta with another runtime: the base holds torch's shared libraries (≈ 500 MiB for the CUDA
  build of torch, less for a CPU-only one) and what torch loads lazily on first use (the first trainer and step add
  ≈ 150 MiB of imported modules and touched code pages, CUDA build, torch 2.15), none of which is training memory.
  The Rust bench (`benches/train.rs`) reports the same fields with the same meaning.
Each phase runs `--warmup` untimed passes, then timed passes until both `--min-steps` and `--min-time` are reached
(or `--max-steps`); the counts are reported. Times are wall clock (`time.perf_counter`).

Run through the wrapper, which installs a CPU torch in a venv first:

    benches/reference/run.sh                          # all configs, JSON to stdout, progress to stderr
    benches/reference/run.sh --out torch.json --threads 2
    benches/reference/run.sh --configs tiny:32,cpu:16 --min-time 5

The children inherit the environment; OMP_NUM_THREADS and MKL_NUM_THREADS are set to `--threads`. On a loaded
machine the OpenMP threads' busy-waiting makes multi-threaded timings erratic (2 threads on 2 busy cores can be 10×
slower than 1 thread); measure on a quiet machine, or set OMP_WAIT_POLICY=PASSIVE and say so.

Default configurations: tiny@16² batch 32; cpu@64² and paper@64² at batch 16 and 32. Output: a JSON array, one
object per configuration.

On a GPU (`--device cuda`, e.g. `benches/gpu.sh` on the lent H200, where python3 has PyTorch): every timed call ends
with `torch.cuda.synchronize()`, so a call's time is its device time; `--precisions fp32,tf32,bf16` measures each
configuration in each mode (`unet_torch.set_precision`: strict fp32, TF32 matmuls and convolutions, bf16 autocast
with f32 master weights); the phase split is left out (it would need syncs inside the step), and
`cuda_peak_mib` (`torch.cuda.max_memory_allocated`) replaces nothing: the RSS fields stay for the host process.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import subprocess
import sys
import time

DEFAULT_CONFIGS = "tiny:32,cpu:16,cpu:32,paper:16,paper:32"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS,
                    help=f"comma-separated preset:batch list (default {DEFAULT_CONFIGS})")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes per phase (default 1)")
    ap.add_argument("--min-steps", type=int, default=3, help="at least this many timed passes (default 3)")
    ap.add_argument("--min-time", type=float, default=10.0, help="and at least this many seconds (default 10)")
    ap.add_argument("--max-steps", type=int, default=200, help="at most this many timed passes (default 200)")
    ap.add_argument("--no-fwd", action="store_true", help="skip the forward-only measurement")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--precisions", default="fp32",
                    help="comma-separated modes, each measured per configuration: fp32, tf32, bf16 (default fp32)")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one configuration, print its JSON
    return ap.parse_args(argv)


def rss_mib() -> float:
    """Current resident set size (Linux /proc), MiB."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def peak_rss_mib() -> float:
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux (bytes on macOS)
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def timed_loop(fn, warmup: int, min_steps: int, min_time: float, max_steps: int, sync=lambda: None):
    """Runs `fn` `warmup` times, then until both minimums are met; returns the list of per-call seconds. `sync`
    waits for the device after each call (a no-op on the CPU)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    start = time.perf_counter()
    while len(times) < max_steps and (len(times) < min_steps or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_child(spec: dict) -> dict:
    """One configuration in this (fresh) process."""
    import torch

    torch.set_num_threads(spec["threads"])
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import unet_torch as ut

    dev = torch.device(spec.get("device", "cpu"))
    precision = spec.get("precision", "fp32")
    ut.set_precision(precision)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rss_start = rss_mib()
    # Library warm-up (lazy imports of the optimizer, first-use kernels) so that the baseline holds it.
    warm = ut.Trainer(ut.PRESETS["tiny"], device=dev, precision=precision)
    wx, wy = torch.randn(2, 2, 16, 16, device=dev), torch.randn(2, 2, 16, 16, device=dev)
    warm.step(wx, wy)
    warm.net.eval()
    with torch.inference_mode():
        warm.net(torch.cat([wx, wy], 1), torch.ones(2, device=dev))
    del warm, wx, wy
    gc.collect()

    torch.manual_seed(0)
    cfg = ut.PRESETS[spec["preset"]]
    b, s = spec["batch"], cfg.image_size
    rss_base = rss_mib()
    trainer = ut.Trainer(cfg, device=dev, precision=precision)
    x0 = torch.randn(b, cfg.target_channels, s, s, device=dev)
    y = torch.randn(b, cfg.cond_channels, s, s, device=dev)
    sigma = torch.exp(torch.empty(b, device=dev).uniform_(math.log(cfg.sigma_min), math.log(cfg.sigma_max)))
    x_in = torch.cat([x0 + sigma[:, None, None, None] * torch.randn_like(x0), y], dim=1)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    res = {
        "runtime": "torch", "conv": "torch", "device": dev.type, "precision": precision,
        "preset": spec["preset"], "image": s, "batch": b,
        "params": ut.count_params(trainer.net),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rss_start_mib": round(rss_start, 1),
        "rss_base_mib": round(rss_base, 1),
        "rss_built_mib": round(rss_mib(), 1),
    }
    loop = lambda fn: timed_loop(fn, spec["warmup"], spec["min_steps"], spec["min_time"], spec["max_steps"], sync)
    autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    if spec["fwd"]:
        trainer.net.eval()

        def fwd():
            with torch.inference_mode(), autocast():
                trainer.net(x_in, sigma)

        times = loop(fwd)
        res.update(fwd_imgs_per_s=round(b * len(times) / sum(times), 3), fwd_s_per_pass=round(sum(times) / len(times), 4),
                   fwd_passes=len(times), peak_rss_fwd_mib=round(peak_rss_mib(), 1))

    phases = {"fwd_loss": 0.0, "backward": 0.0, "update": 0.0}
    losses = []

    def train_step():
        # Trainer.step, split in three timed parts (on the CPU; a GPU's host clock would time only the launches).
        trainer.net.train()
        t0 = time.perf_counter()
        loss = trainer.loss(x0, y)
        t1 = time.perf_counter()
        trainer.opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        trainer.update()
        t3 = time.perf_counter()
        losses.append(loss.detach())
        for k, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
            phases[k] += dt

    # Warm-up outside the phase accounting.
    for _ in range(spec["warmup"]):
        train_step()
    for k in phases:
        phases[k] = 0.0
    times = timed_loop(train_step, 0, spec["min_steps"], spec["min_time"], spec["max_steps"], sync)
    n = len(times)
    peak = peak_rss_mib()
    if cuda:
        res.update(cuda_peak_mib=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                   gpu=torch.cuda.get_device_name(dev))
    res.update(
        train_imgs_per_s=round(b * n / sum(times), 3),
        train_s_per_step=round(sum(times) / n, 4),
        train_s_per_step_min=round(min(times), 4),
        steps_timed=n,
        warmup_steps=spec["warmup"],
        train_split_s=None if cuda else {k: round(v / n, 4) for k, v in phases.items()},
        last_loss_per_dim=round(float(losses[-1]) / (cfg.target_channels * s * s), 4),
        peak_rss_mib=round(peak, 1),
        peak_rss_delta_mib=round(peak - res["rss_base_mib"], 1),
        cuda_build=torch.version.cuda is not None,
        cpu=cpu_model(),
    )
    return res


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))), flush=True)
        return

    configs = []
    for item in args.configs.split(","):
        preset, _, batch = item.strip().partition(":")
        configs.append((preset, int(batch or 32)))

    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    results = []
    t_all = time.perf_counter()
    runs = [(p, b, m) for p, b in configs for m in args.precisions.split(",")]
    for preset, batch, precision in runs:
        spec = {"preset": preset, "batch": batch, "threads": args.threads, "warmup": args.warmup,
                "min_steps": args.min_steps, "min_time": args.min_time, "max_steps": args.max_steps,
                "fwd": not args.no_fwd, "device": args.device, "precision": precision}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"configuration {preset}:{batch} failed (exit {proc.returncode})")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        results.append(res)
        if args.out:  # after each configuration, so that a run cut short by a time limit keeps what it measured
            with open(args.out, "w") as f:
                f.write(json.dumps(results, indent=1) + "\n")
        print(f"[bench] {preset:5s} {precision} {res['image']}² b{batch:<3d} params {res['params']:>9,d}  "
              f"train {res['train_imgs_per_s']:8.2f} img/s ({res['steps_timed']} steps)  "
              f"fwd {res.get('fwd_imgs_per_s', float('nan')):8.2f} img/s  "
              f"peak {res['peak_rss_mib']:.0f} MiB  ({res['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    print(f"[bench] total {time.perf_counter() - t_all:.0f} s", file=sys.stderr)

    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
