//! Synthetic training data shared by integration tests (each test binary that says `mod common;` compiles it).

use clustermaps::data::transform::NormStats;
use clustermaps::rng::stream;
use clustermaps::train::SplitData;

/// `n` standardized pairs of 2-channel `px`² maps: condition `y ~ N(0, 1)`, target `0.8·y + 0.3 + 0.5·ε`.
pub fn gaussian_split(n: usize, px: usize, seed: u64) -> SplitData {
    let mut rng = stream(seed, 0);
    let d = 2 * px * px;
    let y = clustermaps::sde::standard_normals(&mut rng, n * d);
    let e = clustermaps::sde::standard_normals(&mut rng, n * d);
    let x: Vec<f32> = y
        .iter()
        .zip(&e)
        .map(|(y, e)| 0.8 * y + 0.3 + 0.5 * e)
        .collect();
    SplitData::from_standardized(y, [n, 2, px, px], x, [n, 2, px, px]).unwrap()
}

/// Normalisation statistics of already standardized data (nothing to undo).
pub fn dummy_stats() -> NormStats {
    serde_json::from_str(
        r#"{"split":"train","n_clusters":0,"n_pixels":0,"percentile_method":"none","inputs":[],"targets":[]}"#,
    )
    .unwrap()
}
