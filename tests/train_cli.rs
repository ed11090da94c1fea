//! `clustermaps train` end to end (issue: checkpoints that resume): a run killed with SIGKILL at an arbitrary moment
//! and resumed with `--resume` reproduces the uninterrupted run's loss curve and weights bit for bit; bad requests
//! fail with clear messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use candle_core::Device;
use clustermaps::checkpoint::Checkpoint;
use clustermaps::data::generate::{generate_dataset, DatasetPreset, DatasetSpec};

mod common;
use common::{ok, wait_for_file};

const RUN_TOML: &str = r#"
[model]
image_size = 16
nf = 16
ch_mult = [1, 2]
num_res_blocks = 1
attn_resolutions = [8]
dropout = 0.1

[train]
batch_size = 8
n_iters = 30
lr = 1e-3
warmup = 5
checkpoint_every = 5
keep_last = 2
log_every = 5
val_every = 10
val_clusters = 4
val_times = [0.3, 0.7]
sigma_max_maps = 48
device = "cpu"
"#;

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut spec = DatasetSpec::preset(DatasetPreset::Tiny);
    spec.n_pix = 16;
    generate_dataset(&spec, &data, 2, false, |_, _| {}).unwrap();
    let cfg = tmp.path().join("run.toml");
    std::fs::write(&cfg, RUN_TOML).unwrap();
    (tmp, data, cfg)
}

fn train_cmd(data: &Path, cfg: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clustermaps"));
    c.args(["train", "--data"])
        .arg(data)
        .arg("--config")
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .args(extra)
        // Same thread count in every process: gemm blocking, hence float rounding, depends on it.
        .env("RAYON_NUM_THREADS", "2");
    c
}

/// CSV rows without the last column (step seconds).
fn log_without_timing(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("train_log.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

fn tensor_bits(path: &Path) -> Vec<(String, Vec<u32>)> {
    let ck = Checkpoint::load(path, &Device::Cpu).unwrap();
    let mut v: Vec<(String, Vec<u32>)> = ck
        .tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn sigkill_and_resume_reproduce_the_uninterrupted_run() {
    let (tmp, data, cfg) = setup();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let stdout = ok(train_cmd(&data, &cfg, &a, &[]).output().unwrap());
    assert!(stdout.contains("done: step 30"), "{stdout}");
    assert!(stdout.contains("sigma_max: technique 1"), "{stdout}");

    // Kill the second run with SIGKILL once it has written its step-10 checkpoint (it may be mid-write of the
    // next one: that is the point).
    let mut child = train_cmd(&data, &cfg, &b, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&mut child, &b.join("ckpt-00000010.safetensors"));
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();

    // Without --resume the run directory is protected.
    let out = train_cmd(&data, &cfg, &b, &[]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));

    let stdout = ok(train_cmd(&data, &cfg, &b, &["--resume"]).output().unwrap());
    assert!(stdout.contains("resuming from"), "{stdout}");
    assert!(stdout.contains("done: step 30"), "{stdout}");

    assert_eq!(log_without_timing(&a), log_without_timing(&b));
    assert_eq!(log_without_timing(&a).len(), 31);
    assert_eq!(
        std::fs::read_to_string(a.join("val_log.csv")).unwrap(),
        std::fs::read_to_string(b.join("val_log.csv")).unwrap()
    );
    assert_eq!(
        tensor_bits(&a.join("last.safetensors")),
        tensor_bits(&b.join("last.safetensors"))
    );
    assert_eq!(
        tensor_bits(&a.join("ema.safetensors")),
        tensor_bits(&b.join("ema.safetensors"))
    );

    // Resuming a finished run is a no-op; asking for more steps continues it.
    let stdout = ok(train_cmd(&data, &cfg, &b, &["--resume", "--steps", "35"])
        .output()
        .unwrap());
    assert!(stdout.contains("done: step 35"), "{stdout}");
}

#[test]
fn train_cli_errors_are_clear() {
    let (tmp, data, cfg) = setup();
    let out = tmp.path().join("run");
    let e = train_cmd(&data, &cfg, &out, &["--device", "cuda"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&e.stderr);
    if !clustermaps::device::cuda_built() {
        assert!(!e.status.success());
        assert!(err.contains("--features cuda"), "{err}");
    }
    let e = train_cmd(&data, Path::new("nonsense"), &out, &[])
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("neither a preset"));
    let e = train_cmd(&tmp.path().join("nodata"), &cfg, &out, &[])
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).starts_with("error: missing file"));
    // A configuration file built for other map sizes.
    let bad = tmp.path().join("bad.toml");
    let other_size = RUN_TOML
        .replace("image_size = 16", "image_size = 32")
        .replace("attn_resolutions = [8]", "attn_resolutions = [16]");
    std::fs::write(&bad, other_size).unwrap();
    let e = train_cmd(&data, &bad, &out, &[]).output().unwrap();
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && err.contains("32×32") && err.contains("16×16"),
        "{err}"
    );
}
