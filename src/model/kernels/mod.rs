//! The CPU kernels under the layers of the score network: candle custom ops with hand-written forward and backward
//! passes where candle's own CPU path is slow (BENCHMARKS.md, "Training"). On other devices, and for dtypes they
//! do not cover, every kernel falls back to candle's ops; tests compare both paths.
//!
//! - [`conv`]: [`conv::FastConv2d`] (implicit im2col + gemm, fused bias) and the process-wide switch
//!   [`conv::set_conv_impl`] between it and candle's `conv2d`.
//! - [`norm`]: GroupNorm (+ SiLU) as one fused op ([`norm::GroupNormAct`]).
//! - [`fused`]: fused element-wise block tails (residual sum, dropout mask) and the per-channel bias.

pub mod conv;
pub mod fused;
mod im2col;
pub mod norm;
