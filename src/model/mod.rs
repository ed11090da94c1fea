//! The conditional NCSN++-lite score network (docs/score-model.md §4) and its configuration.
//!
//! - [`config`]: [`ModelConfig`] and its presets.
//! - [`embedding`]: Gaussian Fourier / sinusoidal noise embeddings and the time-embedding MLP.
//! - [`blocks`]: \[S21\] `ResnetBlockBigGANpp`, convolutions, host-seeded dropout.
//! - [`conv`]: \[S21\] 3×3 and 1×1 convolution layers.
//! - [`attention`]: \[S21\] `AttnBlockpp`.
//! - [`unet`]: [`NcsnppUnet`], [`param_count`], [`forward_flops`], [`activation_count`].
//! - [`kernels`]: the CPU kernels under the layers: [`kernels::conv::FastConv2d`] (implicit im2col + gemm, fused
//!   bias), GroupNorm (+ SiLU) as one op, fused element-wise block tails.
//! - [`init`]: \[S21\] `default_init` and [`seeded_var_builder`] (initial weights from the model seed).
//!
//! ## Sizes and cost
//!
//! From [`param_count`] and [`forward_flops`] (printed by the test `model::unet::tests::sizes_table`; 1 MAC = 2 FLOP,
//! convolutions, dense layers, attention projections and products; GroupNorm/activations not counted). The parameter
//! counts equal docs/score-model.md §6 and the PyTorch reference `benches/reference/unet_torch.py`; the Fourier matrix
//! (`nf` constants) is not counted.
//!
//! | preset | params | forward GFLOP / sample |
//! |---|---:|---:|
//! | `paper` (nf 64, \[1, 2, 2, 2\], 2 res blocks, attn 16) @64² | 9 881 154 | 13.60 |
//! | `paper` @128² with ch_mult \[1, 1, 2, 2, 2\] | 10 659 138 | 33.38 |
//! | `cpu` (nf 32, \[1, 2, 2\], 2 res blocks, attn 16) @64² | 1 758 242 | 3.40 |
//! | `cpu` with 1 res block @64² | 1 264 642 | 2.48 |
//! | `tiny` (nf 16, \[1, 2\], 1 res block, attn 8) @16² | 190 370 | 0.039 |
//!
//! Training costs ≈ 3× the forward FLOPs per sample.

pub mod attention;
pub mod blocks;
pub mod config;
pub mod conv;
pub mod embedding;
pub mod init;
pub mod kernels;
pub mod unet;

pub use config::{Embedding, ModelConfig, PrecondKind, Resample, SdeConfig, SdeKind};
pub use embedding::{GaussianFourierProjection, TimeEmbedding};
pub use init::seeded_var_builder;
pub use unet::{activation_count, forward_flops, param_count, ActivationCount, NcsnppUnet};
