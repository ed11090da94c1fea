//! Reproducibility of the shipped model's evaluation (issues: metrics & `reproduce`, trained default model).
//!
//! * The test set regenerated from its fixed seed is byte-identical to the one the committed figures were made from:
//!   its fingerprint equals the one recorded in `figures/quick/metrics.md` (and in `figures/metrics.md` for the
//!   prefix the quick run uses).
//! * `clustermaps reproduce` with the shipped checkpoint on a small subset (4 test clusters × 2 samples, Heun N = 18,
//!   seed 0, CPU) gives the committed numbers in `tests/expected/reproduce_small.json` within a stated tolerance:
//!   bit-identical on the machine that wrote them; across CPUs, gemm blocking and vector width change the last bits
//!   of every network evaluation, and 35 evaluations compound them, hence [`REL_TOL`].
//! * Bad requests fail with clear messages.
//!
//! `CLUSTERMAPS_BLESS=1 cargo test --release --test reproduce` rewrites the expected file (after retraining).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clustermaps::data::generate::DatasetPreset;
use clustermaps::data::testset::TestSet;
use serde_json::Value;

const CHECKPOINT: &str = "data/checkpoints/default.safetensors";
const EXPECTED: &str = "tests/expected/reproduce_small.json";
/// Relative tolerance of the small run's metrics against the committed ones (absolute below [`ABS_TOL`]).
const REL_TOL: f64 = 0.02;
const ABS_TOL: f64 = 2e-3;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clustermaps")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(root())
        .args(args)
        .output()
        .expect("run clustermaps")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The fingerprint recorded in a committed `metrics.md` (the `test set` row).
fn committed_fingerprint(md: &Path) -> (usize, String) {
    let s = std::fs::read_to_string(md).unwrap_or_else(|e| panic!("{}: {e}", md.display()));
    let row = s
        .lines()
        .find(|l| l.starts_with("| test set |"))
        .unwrap_or_else(|| panic!("{} has no test-set row", md.display()));
    let n: usize = row
        .split("clusters 0..")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cluster count in {row}"));
    let fp = row
        .split("fingerprint `")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .unwrap_or_else(|| panic!("no fingerprint in {row}"));
    (n, fp.to_string())
}

#[test]
fn regenerated_test_sets_match_the_committed_fingerprints() {
    for md in ["figures/quick/metrics.md", "figures/metrics.md"] {
        let path = root().join(md);
        if md == "figures/metrics.md" && !path.exists() {
            continue;
        }
        let (n, expected) = committed_fingerprint(&path);
        let set = TestSet::generate(DatasetPreset::Full64, 0, n, 0, |_, _| {}).unwrap();
        assert_eq!(
            set.fingerprint(),
            expected,
            "test clusters 0..{n} of full64 no longer hash to the fingerprint recorded in {md}: the generator changed, \
             so the committed figures are stale"
        );
    }
}

/// Every number of the `all`-clusters claims rows and pixel rows of `claims.json` / `evaluation.json`, by name.
fn key_numbers(dir: &Path) -> Vec<(String, f64)> {
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    let claims = read("claims.json");
    let ev = read("evaluation.json");
    let mut out = Vec::new();
    for row in claims["rows"].as_array().unwrap() {
        let ch = row["channel"].as_str().unwrap().to_string();
        let g = row["group"].as_str().unwrap().to_string();
        for k in [
            "profile_mean_max_abs",
            "profile_std_max_abs",
            "bias_low_k",
            "bias_high_k",
            "corr_low_k",
            "corr_high_k",
        ] {
            out.push((format!("claims {g} {ch} {k}"), row[k].as_f64().unwrap()));
        }
    }
    for row in ev["pixels"].as_array().unwrap() {
        let ch = row["channel"].as_str().unwrap().to_string();
        let g = row["group"].as_str().unwrap().to_string();
        for k in ["mse_log10_samples", "mse_log10_mean"] {
            out.push((format!("pixels {g} {ch} {k}"), row[k].as_f64().unwrap()));
        }
    }
    for row in ev["apertures"].as_array().unwrap() {
        let ch = row["channel"].as_str().unwrap().to_string();
        let g = row["group"].as_str().unwrap().to_string();
        let ap = row["aperture"].as_str().unwrap().to_string();
        out.push((
            format!("aperture {g} {ch} {ap} rel_err mean"),
            row["rel_err"]["mean"].as_f64().unwrap(),
        ));
    }
    out
}

#[test]
fn shipped_checkpoint_reproduces_the_committed_small_run() {
    let ckpt = root().join(CHECKPOINT);
    assert!(
        ckpt.exists(),
        "{CHECKPOINT} is missing: the repository must ship its trained default model"
    );
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reproduce_small");
    let _ = std::fs::remove_dir_all(&out);
    let o = run(&[
        "reproduce",
        "--clusters",
        "4",
        "--samples",
        "2",
        "--steps",
        "18",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "reproduce failed:\n{}", text(&o));
    let got = key_numbers(&out.join("metrics"));
    assert!(got.len() >= 20, "too few numbers read: {got:?}");
    let expected_path = root().join(EXPECTED);
    if std::env::var("CLUSTERMAPS_BLESS").is_ok_and(|v| v == "1") {
        let map: serde_json::Map<String, Value> = got
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect();
        std::fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
        std::fs::write(
            &expected_path,
            serde_json::to_string_pretty(&Value::Object(map)).unwrap() + "\n",
        )
        .unwrap();
        return;
    }
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
    assert_eq!(got.len(), expected.len(), "different set of numbers");
    let mut bad = Vec::new();
    for (k, v) in &got {
        let e = expected
            .get(k)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{k} not in {EXPECTED}"));
        if (v - e).abs() > ABS_TOL.max(REL_TOL * e.abs()) {
            bad.push(format!("{k}: got {v}, committed {e}"));
        }
    }
    assert!(
        bad.is_empty(),
        "the shipped checkpoint no longer reproduces {EXPECTED}:\n{}",
        bad.join("\n")
    );
    let md = std::fs::read_to_string(out.join("metrics.md")).unwrap();
    assert!(
        md.contains("| paper") || md.contains("Paper's claims"),
        "{md}"
    );
}

/// `compare` runs the same evaluation for every (checkpoint, sampler) pair and scores each: a stochastic sampler on
/// the same clusters and seed gives other samples and so another score, and the files name every run.
#[test]
fn compare_scores_every_checkpoint_and_sampler() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compare_small");
    let _ = std::fs::remove_dir_all(&out);
    let ck = root().join(CHECKPOINT);
    let o = run(&[
        "compare",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--clusters",
        "4",
        "--samples",
        "2",
        "--sampler",
        "heun:3",
        "--sampler",
        "heun-churn:3:40,0.05,50",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "compare failed:\n{}", text(&o));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    let runs = json.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let score = |i: usize| runs[i]["score"].as_f64().unwrap();
    assert!(score(0).is_finite() && score(0) > 0.0 && score(1).is_finite());
    assert_ne!(score(0), score(1), "churn must change the samples");
    assert_eq!(runs[0]["nfe"].as_u64(), Some(5));
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(
        md.contains("heun-churn:3:40,0.05,50,1.003") && md.contains("| #1 |"),
        "{md}"
    );

    // compare.json is a record: the same checkpoint bytes (here under another name) and protocol are reused, not
    // sampled again; --rerun or another protocol evaluates anew.
    let copy = out.join("copy.safetensors");
    std::fs::copy(&ck, &copy).unwrap();
    let again = |extra: &[&str]| {
        let mut args = vec![
            "compare",
            "--checkpoint",
            copy.to_str().unwrap(),
            "--clusters",
            "4",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--sampler",
            "heun:3",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        let o = run(&args);
        assert!(o.status.success(), "compare failed:\n{}", text(&o));
        text(&o)
    };
    let reused = again(&["--samples", "2"]);
    assert!(reused.contains("reused from"), "{reused}");
    assert!(
        reused.contains(&format!("{:.3}", score(0))),
        "a reused run keeps its score:\n{reused}"
    );
    for extra in [&["--samples", "2", "--rerun"][..], &["--samples", "3"][..]] {
        let t = again(extra);
        assert!(
            !t.contains("reused from"),
            "{extra:?} must evaluate anew:\n{t}"
        );
    }
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    assert_eq!(
        json.as_array().unwrap().len(),
        3,
        "heun:3 × (2, 3 samples) and the churn run"
    );
    let o = run(&[
        "compare",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--sampler",
        "heun:18:1,2,3",
        "--out",
        "x",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("heun-churn"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_requests_fail_clearly() {
    let o = run(&["reproduce", "--checkpoint", "no/such/model.safetensors"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("no checkpoint at no/such/model.safetensors") && t.contains("clustermaps train"),
        "{t}"
    );
    let o = run(&["reproduce", "--samples", "1"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("at least 2"), "{}", text(&o));
    let o = run(&["reproduce", "--quick", "--full"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot be used with"), "{}", text(&o));
}
