//! Issue 16, end to end through the `clustermaps` binary: (1) work that cannot fit or makes no sense is refused
//! before it starts, (2) one writer per run directory, dataset and sample set, (3) sample sets are never
//! overwritten unasked, never mixed, and never written into the data they read, (4) `train` validates its data as
//! strictly as `info --check`, with the same messages, and `--resume` never silently starts over; plus the smaller
//! findings of the issue.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use candle_core::Device;
use clustermaps::checkpoint::Checkpoint;
use clustermaps::data::generate::{generate_dataset, DatasetPreset, DatasetSpec};
use clustermaps::io::{read_npy_f32, write_npy, OutputLock};
use clustermaps::sample::{SampleSession, SampleSet, SampleSpec, SampleTarget};
use clustermaps::train::{RunConfig, TrainConfig};

mod common;
use common::{fails, ok, wait_for_file};

/// The `tiny` presets for 10 steps on 16² maps with checkpoints at 5 and 10, edited by `edit`, as a run TOML.
fn write_config(path: &Path, edit: impl Fn(&mut RunConfig)) {
    let mut cfg = RunConfig::preset("tiny").unwrap();
    cfg.train = TrainConfig {
        n_iters: 10,
        warmup: 2,
        checkpoint_every: 5,
        log_every: 5,
        val_every: 10,
        val_clusters: 2,
        val_times: vec![0.5],
        sigma_max_maps: 48,
        device: "cpu".into(),
        ..TrainConfig::tiny()
    };
    edit(&mut cfg);
    fs::write(path, cfg.to_toml_string().unwrap()).unwrap();
}

/// A 16² dataset, a run configuration and a model trained on them for 10 steps (shared by the tests of this file).
struct Fixture {
    root: PathBuf,
    data: PathBuf,
    config: PathBuf,
    run: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hardening");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let data = root.join("data16");
        let mut spec = DatasetSpec::preset(DatasetPreset::Tiny);
        spec.n_pix = 16;
        spec.sizes = [48, 4, 8];
        generate_dataset(&spec, &data, 2, false, |_, _| {}).unwrap();
        let config = root.join("run.toml");
        write_config(&config, |_| {});
        let run = root.join("run");
        ok(train(&data, &config, &run, &[]));
        Fixture {
            root,
            data,
            config,
            run,
        }
    })
}

fn cli(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clustermaps"));
    c.args(args).env("RAYON_NUM_THREADS", "2");
    c
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn train(data: &Path, config: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut c = cli(&[
        "train",
        "--data",
        arg(data),
        "--config",
        arg(config),
        "--out",
        arg(out),
    ]);
    c.args(extra).output().unwrap()
}

fn sample(ckpt: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut c = cli(&[
        "sample",
        "--checkpoint",
        arg(ckpt),
        "--data",
        arg(data),
        "--out",
        arg(out),
        "--device",
        "cpu",
        "--clusters",
        "2",
        "--samples",
        "2",
    ]);
    if !extra.contains(&"--steps") {
        c.args(["--steps", "3"]);
    }
    c.args(extra).output().unwrap()
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "missing {p:?} in: {msg}");
    }
}

/// A copy of a dataset directory, to break.
fn copy_dataset(src: &Path, dst: &Path) {
    let _ = fs::remove_dir_all(dst);
    for entry in fs::read_dir(src).unwrap() {
        let p = entry.unwrap().path();
        let to = dst.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dataset(&p, &to);
        } else {
            fs::create_dir_all(dst).unwrap();
            fs::copy(&p, &to).unwrap();
        }
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Limits before work starts
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn work_that_cannot_fit_or_makes_no_sense_is_refused_up_front() {
    let f = fixture();
    let out = f.root.join("gen");
    let gen = |extra: &[&str]| {
        let mut c = cli(&["generate", "--preset", "tiny", "--out", arg(&out)]);
        c.args(extra);
        c
    };
    let e = fails(gen(&["--n-pix", "1099511627776"]).output().unwrap());
    assert_has(&e, &["n_pix = 1099511627776 is above the limit"]);
    // A size within the bound but beyond the memory: the estimate and the available memory are both named.
    let e = fails(
        gen(&["--n-pix", "4096"])
            .env("CLUSTERMAPS_MEMORY_LIMIT", "2G")
            .output()
            .unwrap(),
    );
    assert_has(
        &e,
        &[
            "generating tiny at 4096² would need about",
            "rendered clusters",
            "2.0 GiB is available (CLUSTERMAPS_MEMORY_LIMIT)",
            "--ignore-limits",
        ],
    );
    let e = fails(gen(&["--threads", "100000"]).output().unwrap());
    assert_has(&e, &["--threads 100000: at most", "per core"]);
    let e = fails(gen(&["--seed", "9223372036854775808"]).output().unwrap());
    assert_has(&e, &["2^63"]);
    for (toml, expected) in [
        (
            "[cosmology]\nomega_m = 0.0\n",
            "cosmology.omega_m = 0: must be in (0, 1]",
        ),
        ("[cosmology]\nh = -0.7\n", "cosmology.h = -0.7"),
        ("z = 0.0\n", "z = 0: must be in [0.01, 10]"),
        ("[density]\nfgas_norm = nan\n", "density.fgas_norm = NaN"),
        (
            "[numerics]\nsubsample = 100000\n",
            "numerics.subsample = 100000",
        ),
    ] {
        let cfg = f.root.join("mock.toml");
        fs::write(&cfg, toml).unwrap();
        let e = fails(gen(&["--config", arg(&cfg)]).output().unwrap());
        assert_has(&e, &[expected]);
    }
    assert!(files_in(&out).is_empty(), "{:?}", files_in(&out));

    // Training: memory against a deliberately small limit, then the override; an absurd width by its bound.
    let run = f.root.join("limited");
    let limited = |extra: &[&str]| {
        let mut c = cli(&["train", "--data", arg(&f.data), "--config", "tiny"]);
        c.args(["--out", arg(&run)]).args(extra);
        c.env("CLUSTERMAPS_MEMORY_LIMIT", "1M").output().unwrap()
    };
    let e = fails(limited(&[]));
    assert_has(
        &e,
        &[
            "training tiny on",
            "would need about",
            "activations (batch 8)",
        ],
    );
    assert!(!run.exists(), "nothing is written before the check");
    ok(limited(&["--steps", "1", "--ignore-limits"]));
    let wide = f.root.join("wide.toml");
    write_config(&wide, |c| c.model.nf = 100_000);
    let e = fails(train(&f.data, &wide, &f.root.join("wide"), &[]));
    assert_has(&e, &["model.nf: 100000 is above the limit of 1024"]);

    // Sampling: step counts are bounded before a schedule is allocated; memory as above.
    let ckpt = f.run.join("ema.safetensors");
    let s = f.root.join("s_limits").join("x.npy");
    let e = fails(sample(&ckpt, &f.data, &s, &["--steps", "4294967296"]));
    assert_has(&e, &["--steps = 4294967296 is above the limit of 100000"]);
    let e = fails(sample(
        &ckpt,
        &f.data,
        &s,
        &["--sampler", "pc", "--steps", "18446744073709551615"],
    ));
    assert_has(&e, &["--steps = 18446744073709551615 is above the limit"]);
    let mut c = cli(&[
        "sample",
        "--checkpoint",
        arg(&ckpt),
        "--data",
        arg(&f.data),
        "--out",
        arg(&s),
        "--device",
        "cpu",
    ]);
    let e = fails(c.env("CLUSTERMAPS_MEMORY_LIMIT", "1M").output().unwrap());
    assert_has(&e, &["sampling 4 clusters × 8 samples would need about"]);
}

// ---------------------------------------------------------------------------------------------------------------
// 2. One writer per output
// ---------------------------------------------------------------------------------------------------------------

/// Two `train` processes into one `--out`: the second refuses, naming the first's pid, and the first runs on.
#[test]
fn a_second_train_into_one_run_directory_is_refused() {
    let f = fixture();
    let out = f.root.join("two_writers");
    let mut first = Command::new(env!("CARGO_BIN_EXE_clustermaps"))
        .args(["train", "--data", arg(&f.data), "--config", arg(&f.config)])
        .args(["--out", arg(&out), "--steps", "100000"])
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&mut first, &out.join("train_log.csv"));
    for extra in [&[][..], &["--resume"][..], &["--force"][..]] {
        let e = fails(train(&f.data, &f.config, &out, extra));
        assert_has(
            &e,
            &[
                "is in use by another clustermaps process",
                &format!("pid {} (train", first.id()),
                ".clustermaps.lock",
            ],
        );
    }
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run is undisturbed"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // Killed, it leaves its lock file but no lock: the directory is usable again.
    ok(train(
        &f.data,
        &f.config,
        &out,
        &["--resume", "--force", "--steps", "1"],
    ));
}

/// `generate` into one directory and `sample` into one set are locked the same way.
#[test]
fn generate_and_sample_outputs_are_locked() {
    let f = fixture();
    let dir = f.root.join("locked_gen");
    let held = OutputLock::directory(&dir, "holder").unwrap();
    let e = fails(
        cli(&[
            "generate",
            "--preset",
            "tiny",
            "--n-pix",
            "16",
            "--out",
            arg(&dir),
        ])
        .output()
        .unwrap(),
    );
    assert_has(&e, &[&format!("pid {} (holder", std::process::id())]);
    drop(held);

    let out = f.root.join("locked_sample").join("s.npy");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let _held = OutputLock::acquire(&out.with_extension("lock"), &out, "holder").unwrap();
    let e = fails(sample(&f.run.join("ema.safetensors"), &f.data, &out, &[]));
    assert_has(&e, &["s.npy is in use", "s.lock"]);
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Sample sets
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn sample_sets_are_never_overwritten_mixed_or_written_into_the_data() {
    let f = fixture();
    let ckpt = f.run.join("ema.safetensors");
    let dir = f.root.join("sets");
    let a = dir.join("a.npy");
    ok(sample(&ckpt, &f.data, &a, &[]));
    let first = SampleSet::read(&a).unwrap();
    assert_eq!(first.record.files.len(), 5);
    assert_eq!(first.samples.len(), 2 * 2 * 2 * 16 * 16);

    // No silent overwrite; --force replaces the set as a whole.
    let e = fails(sample(&ckpt, &f.data, &a, &["--seed", "1"]));
    assert_has(&e, &["a.npy exists; pass --force"]);
    ok(sample(&ckpt, &f.data, &a, &["--seed", "1", "--force"]));
    let second = SampleSet::read(&a).unwrap();
    assert_eq!(second.record.seed, 1);
    assert_ne!(first.samples, second.samples);

    // Never inside the dataset being read (its inputs.npy was overwritten before), never onto the checkpoint.
    let inputs = f.data.join("test").join("inputs.npy");
    let before = fs::read(&inputs).unwrap();
    let e = fails(sample(&ckpt, &f.data, &inputs, &["--force"]));
    assert_has(&e, &["would write inside", "which this command reads"]);
    assert_eq!(fs::read(&inputs).unwrap(), before);

    // A directory as --out gets the set inside it.
    let into = dir.join("into");
    fs::create_dir_all(&into).unwrap();
    ok(sample(&ckpt, &f.data, &into, &[]));
    assert!(into.join("samples.npy").exists() && into.join("samples.json").exists());

    // A mixed set (one member from another run) and an incomplete one (no record) are detected on reading.
    let b = dir.join("b.npy");
    ok(sample(&ckpt, &f.data, &b, &["--seed", "7"]));
    fs::copy(dir.join("b_std.npy"), dir.join("a_std.npy")).unwrap();
    let e = SampleSet::read(&a).unwrap_err().to_string();
    assert_has(&e, &["a_std.npy", "belongs to another run"]);
    fs::remove_file(dir.join("b.json")).unwrap();
    let e = SampleSet::read(&b).unwrap_err().to_string();
    assert_has(&e, &["b.json", "incomplete"]);
}

/// A write that fails halfway (here: a member that cannot be staged, as on a full disk) leaves the old set whole.
#[test]
fn a_failed_write_leaves_the_old_set_intact() {
    let f = fixture();
    let session = SampleSession::open(&f.run.join("ema.safetensors"), &f.data, "cpu").unwrap();
    let spec = SampleSpec {
        clusters: 1,
        samples: 2,
        steps: Some(3),
        ..SampleSpec::default()
    };
    let dir = f.root.join("failed_write");
    let out = dir.join("s.npy");
    session.sample(&spec).unwrap().write(&out, false).unwrap();
    let old = SampleSet::read(&out).unwrap();
    let newer = session
        .sample(&SampleSpec {
            seed: 3,
            ..spec.clone()
        })
        .unwrap();
    fs::create_dir_all(dir.join("s_std.npy.tmp")).unwrap(); // std is staged third: samples and mean already are
    let target = SampleTarget::claim(&out, true, &[]).unwrap();
    assert!(newer.write_to(&target).is_err());
    drop(target);
    let still = SampleSet::read(&out).unwrap();
    assert_eq!(still.samples, old.samples);
    assert_eq!(still.record, old.record);
    assert!(
        !dir.join("s.npy.tmp").exists(),
        "staged files are cleaned up"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 4. One validation for info, train and sample; --resume
// ---------------------------------------------------------------------------------------------------------------

/// Edits one value of a dataset's array in place.
fn poke(path: &Path, index: usize, value: f32) {
    let (mut v, shape) = read_npy_f32(path).unwrap();
    v[index] = value;
    write_npy(path, &v, &shape).unwrap();
}

#[test]
fn train_rejects_what_info_check_rejects_with_the_same_message() {
    let f = fixture();
    let bad = f.root.join("bad_data");
    // Pixel 16·3 + 5 of channel 1 of cluster 2: row 3, col 5.
    let at = (2 * 2 + 1) * 256 + 3 * 16 + 5;
    type Break = Box<dyn Fn(&Path)>;
    let cases: Vec<(Break, Vec<&str>)> = vec![
        (
            Box::new(move |d: &Path| poke(&d.join("train/inputs.npy"), at, f32::NEG_INFINITY)),
            vec![
                "inputs.npy",
                "non-finite",
                "(cluster 2, ch 1 'S_X', row 3, col 5)",
            ],
        ),
        (
            Box::new(move |d: &Path| poke(&d.join("val/targets.npy"), at, -1.0)),
            vec![
                "val/targets.npy",
                "1 negative value",
                "(cluster 2, ch 1 'Sigma_DM', row 3, col 5)",
            ],
        ),
        (
            Box::new(|d: &Path| {
                let p = d.join("train/targets.npy");
                let (mut v, shape) = read_npy_f32(&p).unwrap();
                for k in 0..48 {
                    v[(2 * k) * 256..(2 * k + 1) * 256].fill(0.0);
                }
                write_npy(&p, &v, &shape).unwrap();
            }),
            vec!["targets.npy", "ch 0 'Sigma_gas'", "of pixels are zero"],
        ),
        (
            Box::new(|d: &Path| edit_stats(d, |y| y["std"] = (-0.5).into())),
            vec!["stats.json", "input channel 'y': std -0.5 must be > 0"],
        ),
        (
            // Within the channel's range (so only a recomputation can tell), but 0.1 σ off.
            Box::new(|d: &Path| {
                edit_stats(d, |y| {
                    let (m, s) = (y["mean"].as_f64().unwrap(), y["std"].as_f64().unwrap());
                    y["mean"] = (m + 0.1 * s).into();
                })
            }),
            vec![
                "stats.json",
                "channel 'y' mean",
                "differs from the recomputed",
            ],
        ),
    ];
    for (i, (breaker, expected)) in cases.into_iter().enumerate() {
        copy_dataset(&f.data, &bad);
        breaker(&bad);
        let info = fails(cli(&["info", "--check", arg(&bad)]).output().unwrap());
        assert_has(&info, &expected);
        let run = f.root.join(format!("bad_run_{i}"));
        let e = fails(train(&bad, &f.config, &run, &[]));
        assert_eq!(
            e, info,
            "train and info --check report the same problem in the same words"
        );
        assert!(!run.join("train_log.csv").exists(), "nothing trained");
    }
}

/// Edits the statistics of the first input channel (`y`) in `stats.json`.
fn edit_stats(dir: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let p = dir.join("stats.json");
    let mut v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v["inputs"][0]);
    fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn resume_never_silently_starts_over() {
    let f = fixture();
    let run = f.root.join("resume");
    let _ = fs::remove_dir_all(&run);
    ok(train(&f.data, &f.config, &run, &[]));
    let log = fs::read(run.join("train_log.csv")).unwrap();

    // A new run into a directory with progress is refused.
    let e = fails(train(&f.data, &f.config, &run, &[]));
    assert_has(
        &e,
        &[
            "already holds a run (4 checkpoints, 10 logged steps)",
            "--resume",
            "--force",
        ],
    );

    // Every training checkpoint unusable: --resume lists what it tried and why, and touches nothing.
    let last = run.join("last.safetensors");
    let bytes = fs::read(&last).unwrap();
    fs::remove_file(&last).unwrap(); // a hard link to ckpt-10: break the link first
    fs::write(&last, &bytes[..bytes.len() / 3]).unwrap();
    for name in ["ckpt-00000005.safetensors", "ckpt-00000010.safetensors"] {
        fs::write(run.join(name), b"not a checkpoint").unwrap();
    }
    let e = fails(train(&f.data, &f.config, &run, &["--resume"]));
    assert_has(
        &e,
        &[
            "--resume:",
            "no usable checkpoint",
            "ckpt-00000010.safetensors",
            "ckpt-00000005.safetensors",
            "last.safetensors",
            "truncated or corrupt",
            "--force",
        ],
    );
    assert_eq!(
        fs::read(run.join("train_log.csv")).unwrap(),
        log,
        "logs untouched"
    );

    // The explicit flag starts over, deleting the old run's files.
    let stdout = ok(train(&f.data, &f.config, &run, &["--resume", "--force"]));
    assert_has(
        &stdout,
        &["was deleted; starting a new run", "done: step 10"],
    );
    assert!(Checkpoint::load(&run.join("last.safetensors"), &Device::Cpu).is_ok());
}

// ---------------------------------------------------------------------------------------------------------------
// The smaller findings
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn smaller_findings() {
    let f = fixture();
    let d = f.root.join("small");

    // A byte-order mark in meta.csv is not part of the first column name.
    copy_dataset(&f.data, &d);
    let meta = d.join("train/meta.csv");
    let text = fs::read_to_string(&meta).unwrap();
    fs::write(&meta, format!("\u{feff}{text}")).unwrap();
    ok(cli(&["info", "--check", arg(&d)]).output().unwrap());

    // A negative mass fails even a structure check.
    let row1 = text.lines().nth(1).unwrap();
    let cells: Vec<&str> = row1.split(',').collect();
    let bad_row = format!(
        "{},{},{},-{}",
        cells[0],
        cells[1],
        cells[2],
        cells[3..].join(",")
    );
    fs::write(&meta, text.replacen(row1, &bad_row, 1)).unwrap();
    let e = fails(
        cli(&["info", "--check", "--strict", arg(&d)])
            .output()
            .unwrap(),
    );
    assert_has(
        &e,
        &["meta.csv", "row 0: m200c_msun = -", "must be positive"],
    );

    // An attention resolution the network does not have.
    let cfg = f.root.join("attn.toml");
    write_config(&cfg, |c| c.model.attn_resolutions = vec![12]);
    let e = fails(train(&f.data, &cfg, &f.root.join("attn"), &[]));
    assert_has(
        &e,
        &["model.attn_resolutions: 12 is not a resolution", "[16, 8]"],
    );

    // A seed TOML cannot hold, before any data is read.
    let e = fails(train(
        &f.data,
        &f.config,
        &f.root.join("seed"),
        &["--seed", "18446744073709551615"],
    ));
    assert_has(&e, &["train.seed", "2^63"]);

    // A checkpoint whose normalisation has a zero std.
    let mut ck = Checkpoint::load(&f.run.join("ema.safetensors"), &Device::Cpu).unwrap();
    ck.meta.norm_stats.targets[1].std = 0.0;
    let zero = f.root.join("zero_std.safetensors");
    ck.save(&zero).unwrap();
    let e = Checkpoint::load(&zero, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert_has(
        &e,
        &[
            "zero_std.safetensors",
            "target channel 'Sigma_DM': std 0 must be > 0",
        ],
    );

    // A symlink loop is reported as what it is, not as a missing file.
    #[cfg(unix)]
    {
        let lp = f.root.join("loop.safetensors");
        let _ = fs::remove_file(&lp);
        std::os::unix::fs::symlink(&lp, &lp).unwrap();
        let e = fails(sample(&lp, &f.data, &f.root.join("loop_out.npy"), &[]));
        assert!(!e.contains("missing file"), "{e}");
        assert_has(&e, &["loop.safetensors"]);
    }

    // `reproduce --clusters 2` is refused before sampling, and writes nothing.
    let out = f.root.join("repro");
    let e = fails(
        cli(&[
            "reproduce",
            "--clusters",
            "2",
            "--samples",
            "2",
            "--device",
            "cpu",
            "--out",
            arg(&out),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap(),
    );
    assert_has(
        &e,
        &["--clusters 2", "at least 2 test clusters in one mass bin"],
    );
    assert!(files_in(&out).is_empty(), "{:?}", files_in(&out));
}
