//! # clustermaps
//!
//! Posterior sampling of projected **gas** and **dark-matter** surface-density maps of galaxy clusters from mock
//! **SZ (Compton-y)** and **X-ray surface-brightness** images with a conditional score-based diffusion model,
//! reproducing and extending
//!
//! > Hsu, Ho, Lin, Markey, Ntampaka, Trac & Póczos, *Reconstructing Galaxy Cluster Mass Maps using Score-based
//! > Generative Modeling*, Open Journal of Astrophysics (2025), doi:10.33232/001c.142147, arXiv:2410.02857.
//!
//! Data flows one way: [`data`] (physical mock clusters or imported simulation maps, written as `.npy` datasets)
//! → learning ([`sde`], [`model`], [`precond`], [`loss`], [`train`], [`checkpoint`]) → [`sample`] → [`metrics`]
//! → [`plot`] → `figures/`.
//!
//! The mock generator (version `mock-v1`) builds NFW dark matter with triaxiality and substructure, gas from the
//! universal pressure profile and a Vikhlinin-like density model, mergers with gas–DM offsets, exact ellipsoidal
//! line-of-sight projection, Compton-y and soft-band X-ray maps, beams and noise.
//!
//! The repository's `docs/` describe what the code computes and why, with a table *equation → function* per topic:
//! `docs/mock-clusters.md` (the data), `docs/score-model.md` (network and training), `docs/samplers.md`,
//! `docs/evaluation.md`. Code comments cite them by section, e.g. `docs/mock-clusters.md §2.4`.

pub mod checkpoint;
pub mod compare;
pub mod data;
pub mod device;
pub mod edm;
pub mod ema;
pub mod error;
pub mod io;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod plot;
pub mod precond;
pub mod prof;
pub mod progress;
pub mod reproduce;
pub mod resources;
pub mod rng;
pub mod sample;
pub mod sde;
pub mod train;

pub use error::{Error, Result};

/// candle's tensor crate, re-exported so notebooks and downstream code use the same version as this crate.
pub use candle_core as candle;

/// Whether notebooks and examples should shrink their work (`CLUSTERMAPS_QUICK=1`, used by CI).
pub fn quick_mode() -> bool {
    std::env::var("CLUSTERMAPS_QUICK")
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false)
}
