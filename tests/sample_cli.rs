//! `clustermaps sample` end to end (issue: posterior samplers, `sample`): a tiny model trained for a few steps by
//! the CLI is sampled with two samplers; the outputs have the documented shapes and are finite and positive in
//! physical units; the same seed reproduces the files byte for byte and another seed changes them; bad requests fail
//! with clear messages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use clustermaps::checkpoint::Checkpoint;
use clustermaps::data::generate::{generate_dataset, DatasetPreset, DatasetSpec};
use clustermaps::io::read_npy_f32;
use clustermaps::sample::{first_with_dataset, training_dataset, SampleSet};

mod common;
use common::{fails, ok};

const RUN_TOML: &str = r#"
[model]
image_size = 16
nf = 16
ch_mult = [1, 2]
num_res_blocks = 1
attn_resolutions = [8]
dropout = 0.0

[train]
batch_size = 8
n_iters = 10
lr = 1e-3
warmup = 2
checkpoint_every = 10
keep_last = 1
log_every = 5
val_every = 10
val_clusters = 2
val_times = [0.5]
sigma_max_maps = 48
device = "cpu"
"#;

/// Shared by the tests of this file: a 16² dataset, a model trained on it for 10 steps, and two more datasets (32²,
/// and 16² from another seed). Lives under Cargo's per-target temp directory, rebuilt by every test run.
struct Fixture {
    root: PathBuf,
    data: PathBuf,
    ckpt: PathBuf,
    data32: PathBuf,
    data_other: PathBuf,
}

fn dataset(dir: &Path, n_pix: usize, seed: u64, sizes: [usize; 3], z: f64) {
    let mut spec = DatasetSpec::preset(DatasetPreset::Tiny);
    spec.n_pix = n_pix;
    spec.seed = seed;
    spec.sizes = sizes;
    spec.mock.z = z;
    generate_dataset(&spec, dir, 2, false, |_, _| {}).unwrap();
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sample_cli");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let data = root.join("data16");
        dataset(&data, 16, 1, [48, 4, 8], 0.2);
        let cfg = root.join("run.toml");
        std::fs::write(&cfg, RUN_TOML).unwrap();
        let run = root.join("run");
        let out = Command::new(env!("CARGO_BIN_EXE_clustermaps"))
            .args(["train", "--data"])
            .arg(&data)
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&run)
            .env("RAYON_NUM_THREADS", "2")
            .output()
            .unwrap();
        ok(out);
        let data32 = root.join("data32");
        dataset(&data32, 32, 1, [8, 0, 4], 0.2);
        // Other data: clusters at another redshift (dimmer in X-rays, other angular scale).
        let data_other = root.join("data16_other");
        dataset(&data_other, 16, 7, [16, 0, 4], 0.6);
        Fixture {
            ckpt: run.join("ema.safetensors"),
            root,
            data,
            data32,
            data_other,
        }
    })
}

fn sample_cmd(ckpt: &Path, data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clustermaps"));
    c.args(["sample", "--checkpoint"])
        .arg(ckpt)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--device", "cpu"])
        .args(extra)
        // Same thread count in every process: gemm blocking, hence float rounding, depends on it.
        .env("RAYON_NUM_THREADS", "2");
    c
}

fn npy(path: &Path, shape: &[usize]) -> Vec<f32> {
    let (v, s) = read_npy_f32(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(s, shape, "{}", path.display());
    v
}

fn npy_f64(path: &Path) -> (Vec<f64>, Vec<usize>) {
    // The f64 indices file: header then little-endian doubles (read_npy_f32 converts '<f8' to f32 exactly here).
    let (v, s) = read_npy_f32(path).unwrap();
    (v.into_iter().map(f64::from).collect(), s)
}

fn stem(dir: &Path, name: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{name}{suffix}"))
}

/// Checks every output file of `--out DIR/NAME.npy` for 2 clusters × 3 samples at 16².
fn check_outputs(dir: &Path, name: &str, ckpt: &Path) {
    let s = npy(&stem(dir, name, ".npy"), &[2, 3, 2, 16, 16]);
    let m = npy(&stem(dir, name, "_mean.npy"), &[2, 2, 16, 16]);
    let sd = npy(&stem(dir, name, "_std.npy"), &[2, 2, 16, 16]);
    let z = npy(&stem(dir, name, "_norm.npy"), &[2, 3, 2, 16, 16]);
    assert!(
        s.iter().all(|v| v.is_finite() && *v > 0.0),
        "physical samples finite and > 0"
    );
    assert!(
        m.iter().all(|v| v.is_finite() && *v > 0.0),
        "mean finite and > 0"
    );
    assert!(
        sd.iter().all(|v| v.is_finite() && *v >= 0.0),
        "std finite and >= 0"
    );
    assert!(sd.iter().any(|v| *v > 0.0), "samples differ");
    assert!(z.iter().all(|v| v.is_finite()));
    // Physical = inverse of the checkpoint's normalisation of the standardized samples (where an f32 holds it).
    let stats = Checkpoint::read_meta(ckpt).unwrap().norm_stats;
    let mut checked = 0;
    for (i, (&zi, &xi)) in z.iter().zip(&s).enumerate() {
        let cs = &stats.targets[(i / 256) % 2];
        if (zi as f64 * cs.std + cs.mean).abs() < 37.0 {
            let want = cs.destandardise(zi as f64);
            assert!(
                (xi as f64 - want).abs() <= 1e-6 * want,
                "pixel {i}: {xi} vs {want}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
    // The mean is the mean of the samples (cluster 0, channel 1, pixel 37).
    let k = 256 + 37;
    let direct = (0..3).map(|j| s[j * 512 + k] as f64).sum::<f64>() / 3.0;
    assert!(
        (m[k] as f64 - direct).abs() <= 1e-5 * direct.abs(),
        "{} vs {direct}",
        m[k]
    );
    let (idx, shape) = npy_f64(&stem(dir, name, "_indices.npy"));
    assert_eq!((idx, shape), (vec![0.0, 1.0], vec![2]));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stem(dir, name, ".json")).unwrap()).unwrap();
    assert_eq!(json["split"], "test");
    assert_eq!(json["indices"], serde_json::json!([0, 1]));
    assert_eq!(json["step"], 10);
    assert!(json["nfe"].as_u64().unwrap() > 0 && json["samples_per_s"].as_f64().unwrap() > 0.0);
    assert!(json["outside_training_range"].is_u64() && json["saturated"].is_u64());
    // The record lists every array with its size and hash, and they match.
    let set = SampleSet::read(&stem(dir, name, ".npy")).unwrap();
    assert_eq!(set.record.files.len(), 5);
    assert_eq!(set.samples, s);
}

#[test]
fn sample_outputs_shapes_and_reproducibility() {
    let f = fixture();
    let dir = f.root.join("out");
    let heun = [
        "--clusters",
        "2",
        "--samples",
        "3",
        "--sampler",
        "heun",
        "--steps",
        "5",
    ];
    let stdout = ok(sample_cmd(&f.ckpt, &f.data, &dir.join("a.npy"), &heun)
        .output()
        .unwrap());
    assert!(stdout.contains("NFE 9 per sample"), "{stdout}");
    assert!(stdout.contains("samples/s"), "{stdout}");
    check_outputs(&dir, "a", &f.ckpt);
    let json = std::fs::read_to_string(dir.join("a.json")).unwrap();
    assert!(json.contains("\"sampler_kind\": \"heun\""), "{json}");

    // Same seed: identical bytes; another seed: different samples.
    ok(sample_cmd(&f.ckpt, &f.data, &dir.join("b.npy"), &heun)
        .output()
        .unwrap());
    for suffix in [".npy", "_norm.npy", "_mean.npy", "_std.npy", "_indices.npy"] {
        let read = |n: &str| std::fs::read(stem(&dir, n, suffix)).unwrap();
        assert!(
            read("a") == read("b"),
            "{suffix} differs between identical runs"
        );
    }
    let seed1: Vec<&str> = heun.iter().copied().chain(["--seed", "1"]).collect();
    ok(sample_cmd(&f.ckpt, &f.data, &dir.join("c.npy"), &seed1)
        .output()
        .unwrap());
    assert!(std::fs::read(dir.join("a.npy")).unwrap() != std::fs::read(dir.join("c.npy")).unwrap());

    let em = [
        "--clusters",
        "2",
        "--samples",
        "3",
        "--sampler",
        "em",
        "--steps",
        "20",
    ];
    let stdout = ok(sample_cmd(&f.ckpt, &f.data, &dir.join("em.npy"), &em)
        .output()
        .unwrap());
    assert!(stdout.contains("NFE 20 per sample"), "{stdout}");
    check_outputs(&dir, "em", &f.ckpt);
}

#[test]
fn sample_cli_errors_are_clear() {
    let f = fixture();
    let out = f.root.join("bad").join("x.npy");
    let e = fails(
        sample_cmd(&f.root.join("none.safetensors"), &f.data, &out, &[])
            .output()
            .unwrap(),
    );
    assert!(
        e.contains("missing file") && e.contains("none.safetensors"),
        "{e}"
    );

    // A model built for 16² maps against a 32² dataset.
    let e = fails(sample_cmd(&f.ckpt, &f.data32, &out, &[]).output().unwrap());
    assert!(e.contains("16×16") && e.contains("32×32"), "{e}");

    let e = fails(
        sample_cmd(&f.ckpt, &f.data, &out, &["--clusters", "9"])
            .output()
            .unwrap(),
    );
    assert!(
        e.contains("9 clusters") && e.contains("'test', which has 8 clusters"),
        "{e}"
    );
    let e = fails(
        sample_cmd(&f.ckpt, &f.data, &out, &["--split", "nope"])
            .output()
            .unwrap(),
    );
    assert!(e.contains("no split 'nope'"), "{e}");
    let e = String::from_utf8_lossy(
        &sample_cmd(&f.ckpt, &f.data, &out, &["--sampler", "ddim"])
            .output()
            .unwrap()
            .stderr,
    )
    .into_owned();
    assert!(e.contains("unknown sampler 'ddim'"), "{e}");
    assert!(!out.exists(), "no output after a failure");

    // Another dataset's normalisation: sampled with the checkpoint's statistics, with a clear warning.
    let o = sample_cmd(
        &f.ckpt,
        &f.data_other,
        &f.root.join("other").join("x.npy"),
        &["--clusters", "1", "--samples", "1", "--steps", "2"],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(
        err.contains("warning: the normalisation statistics of dataset")
            && err.contains("checkpoint's"),
        "{err}"
    );
}

/// A checkpoint finds its training dataset again by the directory name its provenance records, under any of the
/// roots given; a fallback serves when the named directory is not there, but only if its maps have the model's size.
#[test]
fn checkpoint_finds_its_training_dataset() {
    let f = fixture();
    let nowhere = f.root.join("nowhere");
    let found = |roots: &[&Path], fallback: Option<&Path>| {
        training_dataset(&f.ckpt, roots, fallback).unwrap()
    };
    assert_eq!(found(&[&nowhere, &f.root], None), Some(f.data.clone()));
    assert_eq!(
        found(&[&nowhere], Some(&f.data_other)),
        Some(f.data_other.clone())
    );
    assert_eq!(
        found(&[&nowhere], Some(&f.data32)),
        None,
        "a 32² dataset for a 16² model"
    );
    let missing = f.root.join("missing.safetensors");
    assert!(training_dataset(&missing, &[&f.root], None).is_err());
    assert_eq!(
        first_with_dataset(&[&missing, &f.ckpt], &[&f.root], None),
        Some((f.ckpt.clone(), f.data.clone()))
    );
    assert_eq!(first_with_dataset(&[&missing], &[&f.root], None), None);
}
