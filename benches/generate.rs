//! Generation throughput of the mock-cluster dataset writer (BENCHMARKS.md, "Data generation").
//!
//! `cargo bench --bench generate` renders and writes a small dataset at 64² and 128² with 1 and 2 worker threads
//! through the same `generate_dataset` the CLI uses (physics, observation model, npy streaming, statistics), and
//! prints a Markdown table of clusters/s. `CLUSTERMAPS_BENCH_CLUSTERS=N` changes the number of clusters per run
//! (default 400 at 64², 100 at 128²).

use clustermaps::data::generate::{generate_dataset, DatasetPreset, DatasetSpec};
use clustermaps::data::ObsConfig;

fn main() {
    let scale: Option<usize> = std::env::var("CLUSTERMAPS_BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "| resolution | obs | threads | clusters | seconds | clusters/s | ms/cluster/thread |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (n_pix, default_n) in [(64usize, 400usize), (128, 100)] {
        for (obs_name, obs) in [
            ("clean", ObsConfig::clean()),
            ("realistic", ObsConfig::realistic()),
        ] {
            for threads in [1usize, 2] {
                if threads > cores {
                    continue;
                }
                let n = scale.unwrap_or(default_n);
                let spec = DatasetSpec {
                    name: "bench".into(),
                    sizes: [n, 0, 0],
                    n_pix,
                    obs: obs.clone(),
                    ..DatasetSpec::preset(DatasetPreset::Full64)
                };
                let dir =
                    std::env::temp_dir().join(format!("clustermaps-bench-{}", std::process::id()));
                let summary = generate_dataset(&spec, &dir, threads, true, |_, _| {})
                    .expect("benchmark dataset generation failed");
                let _ = std::fs::remove_dir_all(&dir);
                println!(
                    "| {n_pix}² | {obs_name} | {threads} | {} | {:.2} | {:.1} | {:.1} |",
                    summary.clusters,
                    summary.seconds,
                    summary.clusters_per_s,
                    1e3 * summary.seconds * threads as f64 / summary.clusters as f64
                );
            }
        }
    }
}
