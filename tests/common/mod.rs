//! Helpers shared by integration tests (each test binary that says `mod common;` compiles it and uses some of
//! them): synthetic training data, and running the `clustermaps` binary.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

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

/// The stdout of a successful run (asserts success, showing stderr otherwise).
pub fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The message of a failed run: asserts the failure, the `error:` prefix and that nothing panicked.
pub fn fails(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected a failure; stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Waits until `path` exists while `child` runs (two minutes at most).
pub fn wait_for_file(child: &mut Child, path: &Path) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no {} after 120 s",
            path.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {} appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
