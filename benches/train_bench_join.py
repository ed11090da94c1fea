"""Joins the Rust (`benches/train.rs`) and PyTorch (`benches/reference/bench_train.py`) training benchmarks.

    python3 benches/train_bench_join.py --rust fast.json [candle.json ...] --torch torch.json [--out table.md]

Every JSON file is an array of per-configuration records. Rust records carry `conv` = `auto` (im2col, the crate's
fast path) or `candle` (candle's conv2d); PyTorch records `conv` = `torch`. Rows are keyed by (preset, image, batch).
Peak memory is `peak_rss_delta_mib` = peak RSS − the process baseline before the network is built (so torch's shared
libraries do not count). Ratios > 1 mean candle is faster than PyTorch. Writes the Markdown table to stdout and to
`--out`. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys


def load(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out.extend(json.load(f))
    return out


def fmt(v, digits=2):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def peak_gflops():
    """(peak GFLOP/s, how it was estimated): cores × clock × FMA units × f32 lanes × 2 from /proc/cpuinfo."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return None, "no /proc/cpuinfo"
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), [])
    mhz = [float(l.split(":", 1)[1]) for l in info.splitlines() if l.startswith("cpu MHz")]
    cores = len(mhz) or 1
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags or "avx" in flags else 4
    fma_units = 2 if "fma" in flags else 1
    ghz = (sum(mhz) / len(mhz) / 1000) if mhz else float("nan")
    peak = cores * ghz * fma_units * lanes * 2
    return peak, (f"{cores} cores × {ghz:.2f} GHz (cpu MHz of /proc/cpuinfo) × {fma_units} FMA units × {lanes} f32 "
                  f"lanes ({'avx512f' if lanes == 16 else 'avx2'}) × 2 = {peak:.0f} GFLOP/s")


def conv_table(recs):
    peak, how = peak_gflops()
    by = {}
    for r in recs:
        by.setdefault((r["shape"], r["op"]), {})[r["runtime"]] = r
    out = ["", "Convolution op (f32, padding k/2, with bias; `benches/conv.rs`, `bench_conv.py`), GFLOP/s "
           f"(% of the estimated peak). Peak: {how}.", "",
           "| shape | pass | candle fast | candle conv2d | PyTorch | fast/PyTorch | candle gemm of the fwd size |",
           "|---|---|---|---|---|---|---|"]
    seen = []
    for (shape, op) in by:
        if (shape, op) not in seen:
            seen.append((shape, op))
    for shape, op in seen:
        r = by[(shape, op)]
        cell = lambda k: (f"{r[k]['gflops']:.1f} ({100 * r[k]['gflops'] / peak:.0f} %)" if k in r and peak
                          else "–")
        rat = ratio(r.get("candle fast", {}).get("gflops"), r.get("pytorch", {}).get("gflops"))
        out.append(f"| {shape} | {op} | {cell('candle fast')} | {cell('candle conv2d')} | {cell('pytorch')} | "
                   f"{fmt(rat)} | {cell('candle matmul')} |")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rust", nargs="+", required=True, help="JSON arrays from benches/train.rs")
    ap.add_argument("--torch", nargs="*", default=[], help="JSON arrays from bench_train.py")
    ap.add_argument("--out", help="also write the Markdown table here")
    ap.add_argument("--conv", nargs="*", default=[], help="conv-op JSON arrays (benches/conv.rs, bench_conv.py)")
    ap.add_argument("--load", default="", help="load averages seen during the run (a note under the table)")
    args = ap.parse_args(argv)

    rows: dict = {}
    meta = {"threads": set(), "cpu": set(), "candle": set(), "torch": set()}
    for rec in load(args.rust) + load(args.torch):
        key = (rec["preset"], rec["image"], rec["batch"])
        rows.setdefault(key, {})[rec.get("conv", "torch")] = rec
        meta["threads"].add(rec.get("threads"))
        meta["cpu"].add(rec.get("cpu"))
        for k in ("candle", "torch"):
            if k in rec:
                meta[k].add(rec[k])

    order = {"tiny": 0, "cpu": 1, "paper": 2}
    header = ("| config | batch | candle img/s (fast conv) | candle img/s (candle conv) | PyTorch img/s | "
              "ratio fast/PyTorch | ratio candle-conv/PyTorch | peak − base MiB (Rust fast / candle conv / torch) | "
              "fwd img/s (Rust fast / torch) | fwd ratio | timed steps (fast / candle conv / torch) |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for key in sorted(rows, key=lambda k: (order.get(k[0], 9), k[1], k[2])):
        preset, image, batch = key
        r = rows[key]
        fast, cand, tor = r.get("auto"), r.get("candle"), r.get("torch")
        g = lambda rec, f: rec.get(f) if rec else None
        t_fast, t_cand, t_torch = g(fast, "train_imgs_per_s"), g(cand, "train_imgs_per_s"), g(tor, "train_imgs_per_s")
        f_fast, f_torch = g(fast, "fwd_imgs_per_s"), g(tor, "fwd_imgs_per_s")
        mem = " / ".join(fmt(g(x, "peak_rss_delta_mib"), 0) for x in (fast, cand, tor))
        lines.append(
            f"| {preset} @{image}² | {batch} | {fmt(t_fast)} | {fmt(t_cand)} | {fmt(t_torch)} | "
            f"{fmt(ratio(t_fast, t_torch))} | {fmt(ratio(t_cand, t_torch))} | {mem} | "
            f"{fmt(f_fast)} / {fmt(f_torch)} | {fmt(ratio(f_fast, f_torch))} | "
            f"{' / '.join(str(g(x, 'steps_timed') or '–') for x in (fast, cand, tor))} |")

    warm = sorted({(k[0], x.get("warmup_steps")) for k, r in rows.items() for x in r.values()},
                  key=lambda t: order.get(t[0], 9))
    notes = [
        "",
        f"Threads: {', '.join(str(t) for t in sorted(meta['threads'], key=str))}; "
        f"CPU: {'; '.join(sorted(str(c) for c in meta['cpu']))}; "
        f"candle {', '.join(sorted(meta['candle']))}; torch {', '.join(sorted(meta['torch'])) or '–'}. "
        "Warm-up passes per phase: " + ", ".join(f"{p} {w}" for p, w in warm) + ". "
        "Peak − base: peak RSS minus the RSS after a library warm-up, before the network is built.",
    ]
    if args.load:
        notes.append("")
        notes.append(f"Load (`uptime` load averages, 1/5/15 min) during the run: {args.load}.")
    if args.conv:
        notes += conv_table(load(args.conv))
    text = "\n".join(lines + notes) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
