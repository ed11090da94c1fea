//! The data side: physical mock clusters (the `mock-v1` model of docs/mock-clusters.md), their observation model, and
//! the on-disk `.npy` datasets that the learning side reads (mock or imported real simulation maps).
//!
//! Physics modules hold one concept each: [`cosmology`] (units, ρ_crit, distances), [`halo`] (NFW and
//! concentration), [`gas`] (pressure, density, gas fraction, temperature), [`project`] (line-of-sight projection
//! tables and ellipsoids), [`fields`] (2-D Gaussian random fields), [`observe`] (beams and noise), and [`mock`]
//! (one cluster from one seed). [`rng`] provides the counter-style seeding that makes generation reproducible
//! whatever the thread count.

pub mod config;
pub mod cosmology;
pub mod dataset;
pub mod fields;
pub mod gas;
pub mod generate;
pub mod halo;
pub mod meta;
pub mod mock;
pub mod observe;
pub mod project;
pub mod rng;
pub mod scaling;
pub mod testset;
pub mod transform;

pub use config::MockConfig;
pub use meta::ClusterMeta;
pub use mock::{Cluster, Grid, RenderedCluster};
pub use observe::ObsConfig;
