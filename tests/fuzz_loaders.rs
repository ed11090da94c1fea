//! Fuzz-style tests of every loader (issue 16): thousands of seeded random mutations of valid files — bit flips,
//! truncations, overwritten and inserted bytes, edited headers and numbers — fed to the `.npy` reader, the manifest,
//! `meta.csv` and `stats.json` readers, a whole dataset's validation and checkpoint loading. Every outcome must be
//! `Ok` or an `Err` with a message; a panic fails the test (each case runs under `catch_unwind`, and the failing
//! seed and mutation are printed), and so does a hang (each loader's loop runs on its own thread with a deadline).
//!
//! The mutations are seeded, so a failure reproduces exactly; the whole file runs in a few seconds.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use candle_core::Device;
use clustermaps::checkpoint::{load_score_model, Checkpoint};
use clustermaps::data::dataset::{load_stats, Dataset, Manifest};
use clustermaps::data::generate::{generate_dataset, DatasetPreset, DatasetSpec};
use clustermaps::data::meta::read_meta_csv;
use clustermaps::io::NpyReader;
use clustermaps::model::ModelConfig;
use clustermaps::train::{RunConfig, SplitData, TrainConfig, Trainer};
use clustermaps::Result;

/// Longest any one loader's fuzz loop may take before it counts as a hang.
const DEADLINE: Duration = Duration::from_secs(120);

/// SplitMix64: a tiny seeded generator, so the mutations do not depend on any crate's RNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Numbers that break naive parsers and arithmetic.
const NASTY_NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775807",
    "4294967296",
    "1e-320",
    "65536",
    "3",
    "",
];

/// One random mutation of `bytes`; `header` is the byte range that holds a text header (all of a text file), where
/// numbers get replaced and lines dropped or repeated. Returns the mutated bytes and what was done.
fn mutate(rng: &mut Rng, bytes: &[u8], header: std::ops::Range<usize>) -> (Vec<u8>, String) {
    let mut b = bytes.to_vec();
    let len = b.len();
    match rng.below(7) {
        0 => {
            let flips = 1 + rng.below(4);
            let mut at = Vec::new();
            for _ in 0..flips {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
                at.push(i);
            }
            (b, format!("bit flips at {at:?}"))
        }
        1 => {
            let n = rng.below(len);
            b.truncate(n);
            (b, format!("truncated to {n} of {len} bytes"))
        }
        2 => {
            let i = rng.below(len);
            let k = (1 + rng.below(16)).min(len - i);
            for x in &mut b[i..i + k] {
                *x = rng.next() as u8;
            }
            (b, format!("{k} random bytes at {i}"))
        }
        3 => {
            let i = rng.below(len + 1);
            let k = 1 + rng.below(16);
            let ins: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
            b.splice(i..i, ins);
            (b, format!("{k} bytes inserted at {i}"))
        }
        4 | 5 => edit_header_numbers(rng, bytes, header),
        _ => edit_header_lines(rng, bytes, header),
    }
}

/// Replaces one run of digits (with sign, point and exponent) inside `header` by a nasty number.
fn edit_header_numbers(
    rng: &mut Rng,
    bytes: &[u8],
    header: std::ops::Range<usize>,
) -> (Vec<u8>, String) {
    let h = &bytes[header.clone()];
    let starts: Vec<usize> = (0..h.len())
        .filter(|&i| h[i].is_ascii_digit() && (i == 0 || !h[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return (bytes.to_vec(), "no number to edit".into());
    }
    let s = starts[rng.below(starts.len())];
    let mut e = s;
    while e < h.len() && (h[e].is_ascii_digit() || matches!(h[e], b'.' | b'e' | b'-' | b'+')) {
        e += 1;
    }
    let new = NASTY_NUMBERS[rng.below(NASTY_NUMBERS.len())];
    let old = String::from_utf8_lossy(&h[s..e]).into_owned();
    let mut out = bytes[..header.start + s].to_vec();
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&bytes[header.start + e..]);
    (
        out,
        format!("number '{old}' at {} → '{new}'", header.start + s),
    )
}

/// Drops or repeats one line of `header`.
fn edit_header_lines(
    rng: &mut Rng,
    bytes: &[u8],
    header: std::ops::Range<usize>,
) -> (Vec<u8>, String) {
    let h = &bytes[header.clone()];
    let lines: Vec<&[u8]> = h.split_inclusive(|&c| c == b'\n').collect();
    let k = rng.below(lines.len());
    let repeat = rng.below(2) == 0;
    let mut out = bytes[..header.start].to_vec();
    for (i, l) in lines.iter().enumerate() {
        if i != k || repeat {
            out.extend_from_slice(l);
        }
        if i == k && repeat {
            out.extend_from_slice(l);
        }
    }
    out.extend_from_slice(&bytes[header.end..]);
    let what = if repeat { "repeated" } else { "dropped" };
    (out, format!("line {k} of the header {what}"))
}

/// Runs `cases` mutations of `original` through `load` on a thread with a deadline. `write` puts the mutated
/// bytes where the loader reads them; `header` is the text region; `must_fail(before, after)` says which outcomes
/// have to be errors (truncations of binary files, say).
fn fuzz(
    name: &'static str,
    seed: u64,
    cases: usize,
    original: Vec<u8>,
    header: impl Fn(&[u8]) -> std::ops::Range<usize> + Send + 'static,
    load: impl Fn(&[u8]) -> Result<()> + Send + 'static,
    must_fail: impl Fn(&[u8], &[u8]) -> bool + Send + 'static,
) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rng = Rng(seed);
        let (mut errors, mut oks) = (0usize, 0usize);
        load(&original).unwrap_or_else(|e| panic!("{name}: the unmutated file fails: {e}"));
        for case in 0..cases {
            let (bytes, what) = mutate(&mut rng, &original, header(&original));
            let outcome = catch_unwind(AssertUnwindSafe(|| load(&bytes)));
            match outcome {
                Err(_) => {
                    let _ = tx.send(Err(format!("{name}: case {case} ({what}) panicked")));
                    return;
                }
                Ok(Err(e)) => {
                    if e.to_string().trim().is_empty() {
                        let _ = tx.send(Err(format!("{name}: case {case} ({what}): empty error")));
                        return;
                    }
                    errors += 1;
                }
                Ok(Ok(())) => {
                    if must_fail(&original, &bytes) {
                        let _ = tx.send(Err(format!(
                            "{name}: case {case} ({what}) was accepted but must fail"
                        )));
                        return;
                    }
                    oks += 1;
                }
            }
        }
        let _ = tx.send(Ok((errors, oks)));
    });
    let t0 = Instant::now();
    match rx.recv_timeout(DEADLINE) {
        Ok(Ok((errors, oks))) => {
            eprintln!(
                "{name}: {cases} mutations, {errors} errors, {oks} accepted, {:.2} s",
                t0.elapsed().as_secs_f64()
            );
            assert!(errors > 0, "{name}: no mutation was rejected");
        }
        Ok(Err(msg)) => panic!("{msg}"),
        Err(_) => panic!("{name}: no result after {DEADLINE:?}: a loader hangs"),
    }
}

/// A small valid dataset (16², 8/2/2 clusters) and the directory it lives in.
fn dataset(root: &Path) -> PathBuf {
    let dir = root.join("data");
    let mut spec = DatasetSpec::preset(DatasetPreset::Tiny);
    spec.n_pix = 16;
    spec.sizes = [8, 2, 2];
    generate_dataset(&spec, &dir, 1, false, |_, _| {}).unwrap();
    dir
}

/// Text files: the whole file is the "header".
fn whole(b: &[u8]) -> std::ops::Range<usize> {
    0..b.len()
}

/// `.npy`: magic, version, a little-endian u16 header length, then the header dict.
fn npy_header(b: &[u8]) -> std::ops::Range<usize> {
    let n = u16::from_le_bytes([b[8], b[9]]) as usize;
    10..(10 + n).min(b.len())
}

/// safetensors: a little-endian u64 header length, then the JSON header (metadata included).
fn safetensors_header(b: &[u8]) -> std::ops::Range<usize> {
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    8..(8 + n).min(b.len())
}

/// A binary file cut short is unreadable: its header promises more bytes than it holds.
fn truncated(before: &[u8], after: &[u8]) -> bool {
    after.len() < before.len() && before.starts_with(after)
}

/// A scratch directory in memory where there is one (`/dev/shm`): the loaders read files, and thousands of small
/// writes to a busy disk would take most of the test's time.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("fuzz").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

#[test]
fn npy_reader_survives_mutations() {
    let tmp = scratch();
    let data = dataset(tmp.path());
    let original = std::fs::read(data.join("test/targets.npy")).unwrap();
    let path = tmp.path().join("a.npy");
    fuzz(
        "npy",
        1,
        2000,
        original,
        npy_header,
        move |bytes| {
            std::fs::write(&path, bytes).unwrap();
            let r = NpyReader::open(&path)?;
            r.read_all().map(|_| ())
        },
        truncated,
    );
}

/// How each text file is read: from the directory it is written into.
type TextLoader = fn(&Path) -> Result<()>;

#[test]
fn text_loaders_survive_mutations() {
    let tmp = scratch();
    let data = dataset(tmp.path());
    let loaders: [(&'static str, &str, TextLoader); 3] = [
        ("manifest.toml", "manifest.toml", |d| {
            Manifest::load(d).map(|_| ())
        }),
        ("meta.csv", "train/meta.csv", |d| {
            read_meta_csv(&d.join("meta.csv")).map(|_| ())
        }),
        ("stats.json", "stats.json", |d| load_stats(d).map(|_| ())),
    ];
    for (seed, (name, source, load)) in loaders.into_iter().enumerate() {
        let dir = tmp.path().join(format!("text{seed}"));
        std::fs::create_dir_all(&dir).unwrap();
        let original = std::fs::read(data.join(source)).unwrap();
        fuzz(
            name,
            2 + seed as u64,
            2000,
            original,
            whole,
            move |bytes| {
                std::fs::write(dir.join(name), bytes).unwrap();
                load(&dir)
            },
            |_, _| false,
        );
    }
}

/// A whole dataset opened with every check: one of its files mutated per case.
#[test]
fn dataset_validation_survives_mutations() {
    let tmp = scratch();
    let data = dataset(tmp.path());
    for (i, file) in [
        "manifest.toml",
        "stats.json",
        "train/meta.csv",
        "train/inputs.npy",
        "val/targets.npy",
    ]
    .into_iter()
    .enumerate()
    {
        let original = std::fs::read(data.join(file)).unwrap();
        let header = if file.ends_with(".npy") {
            npy_header
        } else {
            whole
        };
        let (d, f) = (data.clone(), file);
        let keep = original.clone();
        fuzz(
            file,
            10 + i as u64,
            100,
            original,
            header,
            move |bytes| {
                std::fs::write(d.join(f), bytes).unwrap();
                Dataset::open(&d).map(|_| ())
            },
            |_, _| false,
        );
        std::fs::write(data.join(file), keep).unwrap();
    }
}

/// A training and an inference checkpoint of a small model, as bytes.
fn checkpoints(data: &Path) -> (Vec<u8>, Vec<u8>) {
    let ds = Dataset::open(data).unwrap();
    let model = ModelConfig {
        image_size: 8,
        nf: 8,
        ch_mult: vec![1],
        num_res_blocks: 1,
        attn_resolutions: vec![],
        dropout: 0.0,
        ..ModelConfig::tiny()
    };
    let cfg = RunConfig {
        model,
        train: TrainConfig {
            batch_size: 2,
            val_clusters: 0,
            sigma_max_maps: 4,
            ..TrainConfig::tiny()
        },
    };
    let n = 4 * 2 * 8 * 8;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let split = SplitData::from_standardized(v.clone(), [4, 2, 8, 8], v, [4, 2, 8, 8]).unwrap();
    let mut t = Trainer::from_data(cfg, split, None, ds.stats.clone(), Device::Cpu).unwrap();
    t.step().unwrap();
    let ck = t.checkpoint().unwrap();
    (ck.to_bytes().unwrap(), ck.inference().to_bytes().unwrap())
}

#[test]
fn checkpoint_loading_survives_mutations() {
    let tmp = scratch();
    let data = dataset(tmp.path());
    let (train, inference) = checkpoints(&data);
    let dir = tmp.path();
    let path = dir.join("ckpt.safetensors");
    fuzz(
        "training checkpoint",
        20,
        2000,
        train,
        safetensors_header,
        move |bytes| Checkpoint::from_bytes(bytes, &path, &Device::Cpu).map(|_| ()),
        truncated,
    );
    let path = dir.join("ema.safetensors");
    fuzz(
        "inference checkpoint (load_score_model)",
        21,
        400,
        inference,
        safetensors_header,
        move |bytes| {
            std::fs::write(&path, bytes).unwrap();
            Checkpoint::read_meta(&path)?;
            load_score_model(&path, &Device::Cpu).map(|_| ())
        },
        truncated,
    );
}
