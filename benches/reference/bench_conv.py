"""PyTorch CPU reference for `benches/conv.rs`: GFLOP/s of conv2d forward and backward (∂x + ∂W + ∂bias).

Per shape `B,Cin,Cout,H,k,stride` (square images, padding k//2, bias): forward passes under `torch.no_grad`, then
backward passes `y.backward(u)` for a fixed random `u` (the forward that builds the graph is not timed). FLOPs as
the Rust bench: forward 2·B·C_out·C_in·k²·H_o·W_o, backward twice that. 1 warm-up call, then calls until
`--min-time` seconds and at least 2 calls; the median call time. Run through `benches/reference/run.sh --conv ...`.
"""

import argparse
import json
import os
import statistics
import time

import torch

DEFAULT = ("8,64,64,64,3,1;32,32,32,64,3,1;32,64,64,32,3,1;32,64,64,16,3,1;32,64,64,64,3,1;"
           "32,128,128,32,3,1;32,64,64,64,1,1")


def median_time(min_time, f):
    f()
    ts = []
    t_start = time.perf_counter()
    while len(ts) < 2 or time.perf_counter() - t_start < min_time:
        ts.append(f())
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=DEFAULT)
    ap.add_argument("--min-time", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    rows = []
    for s in filter(None, (t.strip() for t in a.shapes.split(";"))):
        b, ci, co, h, k, st = (int(v) for v in s.split(","))
        conv = torch.nn.Conv2d(ci, co, k, stride=st, padding=k // 2)
        x = torch.randn(b, ci, h, h, requires_grad=True)
        ho = (h + 2 * (k // 2) - k) // st + 1
        u = torch.randn(b, co, ho, ho)
        flop = 2.0 * b * co * ci * k * k * ho * ho
        name = f"{b}x{ci}x{h}x{h} -> {co}, {k}x{k}/s{st}"

        def fwd():
            with torch.no_grad():
                t0 = time.perf_counter()
                y = conv(x)
                return time.perf_counter() - t0

        def bwd():
            x.grad = None
            conv.zero_grad(set_to_none=True)
            y = conv(x)
            t0 = time.perf_counter()
            y.backward(u)
            return time.perf_counter() - t0

        for op, f, fl in (("fwd", fwd, flop), ("bwd", bwd, 2 * flop)):
            sec = median_time(a.min_time, f)
            rows.append(dict(runtime="pytorch", op=op, shape=name, gflop=fl / 1e9, seconds=sec,
                             gflops=fl / sec / 1e9))
            print(f"{'pytorch':14} {op:3} {name:28} {1e3 * sec:8.1f} ms {fl / sec / 1e9:6.1f} GFLOP/s",
                  file=__import__("sys").stderr)
    js = json.dumps(rows, indent=2)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(js)
    print(js)


if __name__ == "__main__":
    main()
