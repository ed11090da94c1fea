//! Convolution-op throughput on the CPU (BENCHMARKS.md, "Convolution op"): GFLOP/s of the forward pass and of the
//! backward pass (∂x + ∂W + ∂bias) of [`FastConv2d`](clustermaps::model::kernels::conv::FastConv2d) and of candle's `conv2d`,
//! plus a plain gemm of the forward's size; the PyTorch counterpart is `benches/reference/bench_conv.py`, and
//! `benches/run_train_bench.sh` runs both back to back.
//!
//! ```text
//! cargo bench --bench conv -- [--shapes B,Cin,Cout,H,k,stride;...] [--min-time S] [--out FILE]
//! ```
//!
//! Per shape (square images, padding k/2, bias): `y = conv(x, W) + b` forward passes (no graph), then backward
//! passes of `Σ y ⊙ u` for a fixed random `u` (the forward that builds the graph is not timed; from each `backward()`
//! time the time of the same loss's backward on a leaf `y`, measured right after it, is subtracted, so what remains
//! is the convolution's backward including candle's gradient bookkeeping for its inputs). FLOPs: forward
//! `2·B·C_out·C_in·k²·H_o·W_o`, backward twice that (∂x and ∂W). Each measurement: 1 warm-up call, then calls
//! until `--min-time` seconds (default 1.5) and at least 2 calls; the median call time.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use clustermaps::model::kernels::conv::{conv2d_candle, conv2d_fast, ConvGeom};
use clustermaps::rng::normal_tensor;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::Serialize;

/// The U-Net's 3×3 shapes at batch 32 (cpu 64²/32²/16², paper 64²/32²) and the issue's reference shape.
const DEFAULT_SHAPES: &str =
    "8,64,64,64,3,1;32,32,32,64,3,1;32,64,64,32,3,1;32,64,64,16,3,1;32,64,64,64,3,1;\
                              32,128,128,32,3,1;32,64,64,64,1,1";

#[derive(Serialize)]
struct Row {
    runtime: String,
    op: String,
    shape: String,
    gflop: f64,
    seconds: f64,
    gflops: f64,
}

fn median_time(
    min_time: f64,
    mut f: impl FnMut() -> candle_core::Result<f64>,
) -> candle_core::Result<f64> {
    f()?;
    let mut t = Vec::new();
    let start = Instant::now();
    while t.len() < 2 || start.elapsed().as_secs_f64() < min_time {
        t.push(f()?);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut shapes = DEFAULT_SHAPES.to_string();
    let mut min_time = 1.5;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--shapes" => shapes = args.next().ok_or("--shapes needs a value")?,
            "--min-time" => min_time = args.next().ok_or("--min-time needs a value")?.parse()?,
            "--out" => out = Some(args.next().ok_or("--out needs a value")?),
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let profile = std::env::var("CLUSTERMAPS_CONV_PROFILE").is_ok();
    clustermaps::prof::enable(profile);
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut rows = Vec::new();
    for s in shapes.split(';').filter(|s| !s.trim().is_empty()) {
        let v: Vec<usize> = s
            .split(',')
            .map(|t| t.trim().parse())
            .collect::<Result<_, _>>()?;
        let [b, ci, co, h, k, st] = v[..] else {
            return Err(format!("shape {s}: expected B,Cin,Cout,H,k,stride").into());
        };
        let geom = ConvGeom {
            stride: st,
            padding: k / 2,
            dilation: 1,
        };
        let x = Var::from_tensor(&normal_tensor(&mut rng, (b, ci, h, h), &dev)?)?;
        let w = Var::from_tensor(&(normal_tensor(&mut rng, (co, ci, k, k), &dev)? * 0.05)?)?;
        let bias = Var::from_tensor(&normal_tensor(&mut rng, co, &dev)?)?;
        let ho = (h + 2 * (k / 2) - k) / st + 1;
        let u = normal_tensor(&mut rng, (b, co, ho, ho), &dev)?;
        let flop = 2.0 * (b * co * ci * k * k * ho * ho) as f64;
        let name = format!("{b}x{ci}x{h}x{h} -> {co}, {k}x{k}/s{st}");
        type ConvFn =
            fn(&Tensor, &Tensor, Option<&Tensor>, ConvGeom) -> clustermaps::Result<Tensor>;
        let impls: [(&str, ConvFn); 2] = [
            ("candle fast", conv2d_fast),
            ("candle conv2d", conv2d_candle),
        ];
        for (rt, f) in impls {
            let fwd = median_time(min_time, || {
                let (xd, wd, bd) = (
                    x.as_tensor().detach(),
                    w.as_tensor().detach(),
                    bias.as_tensor().detach(),
                );
                let t0 = Instant::now();
                let y = f(&xd, &wd, Some(&bd), geom)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let dt = t0.elapsed().as_secs_f64();
                drop(y);
                Ok(dt)
            })?;
            // Backward of Σ y⊙u minus the backward of the same loss on a leaf `y` (the loss's own share), each call.
            let y_leaf = Var::from_tensor(&u.zeros_like()?)?;
            let bwd = median_time(min_time, || {
                let y = f(&x, &w, Some(&bias), geom)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let loss = (y * &u)?.sum_all()?;
                let t0 = Instant::now();
                let g = loss.backward()?;
                let dt = t0.elapsed().as_secs_f64();
                drop(g);
                let loss0 = (y_leaf.as_tensor() * &u)?.sum_all()?;
                let t1 = Instant::now();
                let g0 = loss0.backward()?;
                let dt0 = t1.elapsed().as_secs_f64();
                drop(g0);
                Ok(dt - dt0)
            })?;
            for (op, secs, fl) in [("fwd", fwd, flop), ("bwd", bwd, 2.0 * flop)] {
                let r = Row {
                    runtime: rt.into(),
                    op: op.into(),
                    shape: name.clone(),
                    gflop: fl / 1e9,
                    seconds: secs,
                    gflops: fl / secs / 1e9,
                };
                eprintln!(
                    "{:14} {:3} {:28} {:8.1} ms {:6.1} GFLOP/s",
                    r.runtime,
                    r.op,
                    r.shape,
                    1e3 * secs,
                    r.gflops
                );
                rows.push(r);
            }
        }
        // A plain gemm of the forward's size: [C_out, C_in·k²] × [C_in·k², H_o·W_o], batched over B (candle matmul).
        let a = normal_tensor(&mut rng, (co, ci * k * k), &dev)?;
        let bm = normal_tensor(&mut rng, (b, ci * k * k, ho * ho), &dev)?;
        let mm = median_time(min_time, || {
            let t0 = Instant::now();
            let y = a.broadcast_matmul(&bm)?;
            Ok(t0.elapsed().as_secs_f64() + 0.0 * y.dim(0)? as f64)
        })?;
        eprintln!(
            "{:14} {:3} {:28} {:8.1} ms {:6.1} GFLOP/s",
            "candle matmul",
            "fwd",
            name,
            1e3 * mm,
            flop / mm / 1e9
        );
        rows.push(Row {
            runtime: "candle matmul".into(),
            op: "fwd".into(),
            shape: name.clone(),
            gflop: flop / 1e9,
            seconds: mm,
            gflops: flop / mm / 1e9,
        });
    }
    let _ = DType::F32;
    if profile {
        for (k, e) in clustermaps::prof::snapshot() {
            eprintln!(
                "{k:24} {:8.3} s {:6} calls {:6.1} GFLOP/s",
                e.seconds,
                e.calls,
                e.flops / e.seconds / 1e9
            );
        }
    }
    let json = serde_json::to_string_pretty(&rows)?;
    if let Some(p) = out {
        std::fs::write(p, &json)?;
    }
    println!("{json}");
    Ok(())
}
