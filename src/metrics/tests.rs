//! End-to-end tests of [`evaluate`] and [`Claims`] on synthetic clusters: smooth projected NFW dark matter and a
//! cored gas profile, with log-normal pixel scatter standing in for structure.

use super::*;
use crate::data::cosmology::Cosmology;
use crate::data::dataset::MapGeometry;
use crate::data::halo::Nfw;
use crate::data::meta::ClusterMeta;
use crate::rng::stream;
use crate::sde::standard_normals_f64;

struct Fixture {
    truth: Vec<f32>,
    samples: Vec<f32>,
    shape: [usize; 5],
    meta: Vec<ClusterMeta>,
    geometry: MapGeometry,
    channels: Vec<String>,
}

/// `n` clusters log-uniform in 1e14–2e15 M_sun at 64² over 5 Mpc. Truth = smooth map × 10^(0.1 ε), samples =
/// smooth map × 10^(0.1 `sample_scale` ε') with independent ε' (`sample_scale` = 1: drawn from the truth's own
/// distribution), or exact copies of the truth when `copies`.
fn fixture(n: usize, s: usize, sample_scale: f64, copies: bool, seed: u64) -> Fixture {
    let (np, c) = (64usize, 2usize);
    let geometry = MapGeometry::new(np, 5000.0);
    let cosmo = Cosmology::default();
    let mut rng = stream(seed, 0);
    let mut meta = Vec::new();
    let mut truth = Vec::new();
    let mut samples = Vec::new();
    for i in 0..n {
        let lm = 14.0 + 1.301 * (i as f64 + 0.5) / n as f64;
        let nfw = Nfw::new(10f64.powf(lm), 4.0, 0.2, &cosmo);
        let mut m = ClusterMeta::imported(i as u64, 1000 + i as u64, nfw.m200, 0.2);
        m.r200c_kpc = nfw.r200;
        (m.r500c_kpc, m.m500c_msun) = nfw.r500_m500();
        let rc = 0.1 * nfw.r200;
        let smooth: Vec<[f64; 2]> = (0..np * np)
            .map(|p| {
                let x = (p % np) as f64 + 0.5 - np as f64 / 2.0;
                let y = (p / np) as f64 + 0.5 - np as f64 / 2.0;
                let r = x.hypot(y) * geometry.pixel_kpc;
                let dm = nfw.sigma(r) + 1e5;
                let gas = 0.12 * nfw.sigma(rc) / (1.0 + (r / rc).powi(2)).powf(0.75) + 1e4;
                [gas, dm]
            })
            .collect();
        let draw = |rng: &mut rand_chacha::ChaCha8Rng, scale: f64| -> Vec<f32> {
            let eps = standard_normals_f64(rng, c * np * np);
            (0..c * np * np)
                .map(|k| {
                    (smooth[k % (np * np)][k / (np * np)] * 10f64.powf(0.1 * scale * eps[k])) as f32
                })
                .collect()
        };
        let t = draw(&mut rng, 1.0);
        for _ in 0..s {
            if copies {
                samples.extend_from_slice(&t);
            } else {
                samples.extend(draw(&mut rng, sample_scale));
            }
        }
        truth.extend(t);
        meta.push(m);
    }
    Fixture {
        truth,
        samples,
        shape: [n, s, c, np, np],
        meta,
        geometry,
        channels: vec!["sigma_gas".into(), "sigma_dm".into()],
    }
}

fn run(f: &Fixture, opts: &EvalOptions) -> crate::Result<Evaluation> {
    evaluate(
        &f.truth,
        &f.samples,
        f.shape,
        &f.meta,
        &f.geometry,
        &f.channels,
        opts,
    )
}

#[test]
fn evaluate_rejects_bad_input_with_clear_errors() {
    let f = fixture(8, 2, 1.0, false, 1);
    let o = EvalOptions::default();
    let msg = |r: crate::Result<Evaluation>| r.unwrap_err().to_string();

    let e = msg(evaluate(
        &f.truth,
        &f.samples[1..],
        f.shape,
        &f.meta,
        &f.geometry,
        &f.channels,
        &o,
    ));
    assert!(e.contains("samples") && e.contains("N·S·C·H·W"), "{e}");
    let e = msg(evaluate(
        &f.truth[1..],
        &f.samples,
        f.shape,
        &f.meta,
        &f.geometry,
        &f.channels,
        &o,
    ));
    assert!(e.contains("truth") && e.contains("N·C·H·W"), "{e}");
    let e = msg(evaluate(
        &f.truth,
        &f.samples,
        f.shape,
        &f.meta[..7],
        &f.geometry,
        &f.channels,
        &o,
    ));
    assert!(e.contains("meta") && e.contains("N = 8"), "{e}");
    let e = msg(evaluate(
        &f.truth,
        &f.samples,
        f.shape,
        &f.meta,
        &f.geometry,
        &f.channels[..1],
        &o,
    ));
    assert!(e.contains("channels"), "{e}");
    let e = msg(evaluate(
        &f.truth,
        &f.samples,
        f.shape,
        &f.meta,
        &MapGeometry::new(32, 5000.0),
        &f.channels,
        &o,
    ));
    assert!(e.contains("32×32"), "{e}");
    let e = msg(evaluate(
        &f.truth,
        &f.samples[..f.samples.len() / 2],
        [8, 1, 2, 64, 64],
        &f.meta,
        &f.geometry,
        &f.channels,
        &o,
    ));
    assert!(e.contains("at least 2 posterior samples"), "{e}");

    let one = 2 * 64 * 64;
    let e = msg(evaluate(
        &f.truth[..one],
        &f.samples[..2 * one],
        [1, 2, 2, 64, 64],
        &f.meta[..1],
        &f.geometry,
        &f.channels,
        &o,
    ));
    assert!(e.contains("N ≥ 2 clusters"), "{e}");

    // A NaN in sample 1 of cluster 3, DM channel, pixel (5, 7).
    let mut bad = f.samples.clone();
    let hw = 64 * 64;
    bad[((3 * 2 + 1) * 2 + 1) * hw + 5 * 64 + 7] = f32::NAN;
    let e = msg(evaluate(
        &f.truth,
        &bad,
        f.shape,
        &f.meta,
        &f.geometry,
        &f.channels,
        &o,
    ));
    assert!(
        e.contains(
            "cluster 3 (id 1003), sample 1, channel 'sigma_dm': pixel (row 5, col 7) is NaN"
        ),
        "{e}"
    );
    // An infinite truth pixel and a non-positive one.
    let mut bad = f.truth.clone();
    bad[hw + 2] = f32::INFINITY;
    let e = msg(evaluate(
        &bad,
        &f.samples,
        f.shape,
        &f.meta,
        &f.geometry,
        &f.channels,
        &o,
    ));
    assert!(
        e.contains("truth")
            && e.contains("cluster 0")
            && e.contains("'sigma_dm'")
            && e.contains("inf"),
        "{e}"
    );
    bad[hw + 2] = 0.0;
    let e = msg(evaluate(
        &bad,
        &f.samples,
        f.shape,
        &f.meta,
        &f.geometry,
        &f.channels,
        &o,
    ));
    assert!(e.contains("≤ 0") && e.contains("log_floors"), "{e}");
    // With a floor, zeros are fine.
    let floors = EvalOptions {
        log_floors: Some(vec![1e2, 1e3]),
        bootstrap: 10,
        ..EvalOptions::default()
    };
    evaluate(
        &bad,
        &f.samples,
        f.shape,
        &f.meta,
        &f.geometry,
        &f.channels,
        &floors,
    )
    .unwrap();

    // Missing R200c (an imported row).
    let mut meta = f.meta.clone();
    meta[2].r200c_kpc = f64::NAN;
    let e = msg(evaluate(
        &f.truth,
        &f.samples,
        f.shape,
        &meta,
        &f.geometry,
        &f.channels,
        &o,
    ));
    assert!(e.contains("cluster 2 (id 1002): r200c_kpc = NaN"), "{e}");
    let e = msg(run(
        &f,
        &EvalOptions {
            bootstrap: 1,
            ..EvalOptions::default()
        },
    ));
    assert!(e.contains("bootstrap"), "{e}");
}

#[test]
fn perfect_prediction_meets_every_claim_with_zero_error() {
    let f = fixture(8, 2, 1.0, true, 2);
    let ev = run(&f, &EvalOptions::default()).unwrap();
    assert_eq!(ev.groups.len(), 5, "{:?}", ev.notes);
    let claims = ev.claims().unwrap();
    assert_eq!(claims.rows.len(), 5 * 2);
    assert!(claims.all_met);
    assert!(claims.n_profile_bins >= 9, "{}", claims.n_profile_bins);
    for r in &claims.rows {
        assert!(r.met, "{r:?}");
        for v in [
            r.profile_mean_max_abs,
            r.profile_std_max_abs,
            r.bias_low_k,
            r.bias_high_k,
            r.corr_low_k,
            r.corr_high_k,
        ] {
            assert_eq!(v, 0.0, "{r:?}");
        }
    }
    for a in &ev.apertures {
        assert_eq!(a.rel_err.mean, 0.0);
        assert_eq!(a.rel_err.std, 0.0);
    }
    for p in &ev.pixels {
        assert_eq!(p.mse_samples, 0.0);
        assert_eq!(p.mse_log10_mean, 0.0);
        assert_eq!(p.spread_skill.ratio, None);
        // All ties: ranks spread evenly, coverage exactly nominal.
        for (c, l) in p.calibration.coverage.iter().zip(&p.calibration.levels) {
            assert!((c - l).abs() < 1e-12);
        }
        assert!(p.calibration.ranks.chi2 < 1e-9);
    }
}

#[test]
fn calibrated_and_over_confident_samples_end_to_end() {
    let opts = EvalOptions {
        bootstrap: 20,
        ..EvalOptions::default()
    };
    let good = run(&fixture(12, 4, 1.0, false, 3), &opts).unwrap();
    let all = |rows: &[PixelRow]| {
        rows.iter()
            .filter(|r| r.key.group == "all")
            .cloned()
            .collect::<Vec<_>>()
    };
    for p in all(&good.pixels) {
        for (c, l) in p.calibration.coverage.iter().zip(&p.calibration.levels) {
            assert!(
                (c - l).abs() < 0.02,
                "{}: coverage {c} at {l}",
                p.key.channel
            );
        }
        let r = &p.calibration.ranks;
        assert!(
            r.chi2_per_dof < 4.0 && (r.edge_ratio - 1.0).abs() < 0.1,
            "{r:?}"
        );
        let ratio = p.spread_skill.ratio.unwrap();
        assert!((ratio - 1.0).abs() < 0.03, "spread-skill {ratio}");
        // Per-pixel scatter 0.1 dex: log MSE of one sample ≈ 2 × 0.01.
        assert!(
            (p.mse_log10_samples / 0.02 - 1.0).abs() < 0.05,
            "{}",
            p.mse_log10_samples
        );
    }
    // Independent pixel noise averages out in profiles: small errors, b ≈ 1 at low k.
    for row in good
        .profiles_r200c
        .rows
        .iter()
        .filter(|r| r.key.group == "all")
    {
        assert!(
            row.frac_mean.iter().all(|v| v.abs() < 0.05),
            "{:?}",
            row.frac_mean
        );
        assert!(row.frac_mean_err.iter().all(|v| *v > 0.0 && v.is_finite()));
    }
    let narrow = run(&fixture(12, 4, 0.5, false, 4), &opts).unwrap();
    for p in all(&narrow.pixels) {
        for (c, l) in p.calibration.coverage.iter().zip(&p.calibration.levels) {
            // S = 4 resolves tails only down to the end rank cells (calibration module doc).
            let margin = if *l <= 0.7 { 0.12 } else { 0.4 * (1.0 - l) };
            assert!(
                *c < l - margin,
                "{}: coverage {c} should be well below {l}",
                p.key.channel
            );
        }
        let r = &p.calibration.ranks;
        assert!(
            r.edge_ratio > 1.5 && r.chi2_per_dof > 10.0,
            "∪-shaped expected: {r:?}"
        );
        assert!(p.spread_skill.ratio.unwrap() > 1.5);
    }
}

/// The truth exchangeable with the samples: r(k) sample–truth equals r(k) sample–sample and every radial zone of
/// pixels is covered at its nominal rate. Samples narrower than the posterior (sharing the smooth map more than
/// the truth does): samples agree with each other more than with the truth, and every zone is under-covered.
#[test]
fn sample_sample_correlation_and_zone_coverage_tell_honest_from_over_confident() {
    let opts = EvalOptions {
        bootstrap: 20,
        ..EvalOptions::default()
    };
    let targets = CalibrationTargets::default();
    for (scale, seed) in [(1.0, 5), (0.5, 6)] {
        let ev = run(&fixture(48, 4, scale, false, seed), &opts).unwrap();
        let claims = Claims::from_evaluation(&ev).unwrap();
        for r in claims.rows.iter().filter(|r| r.key.group == "all") {
            if scale == 1.0 {
                // 48 clusters: the gap's own noise is ≈ 0.003 here (≈ 0.015 with 12 clusters).
                assert!(r.corr_gap_low_k < 0.01 && r.met_corr_gap, "{r:?}");
                assert!(r.coverage_pixels.met, "{r:?}");
            } else {
                assert!(
                    r.corr_sample_sample_low_k < r.corr_low_k - 0.02 && !r.met_corr_gap,
                    "{}: r_ss should exceed r_st: {r:?}",
                    r.key.channel
                );
                assert!(!r.coverage_pixels.met && !r.calibrated);
            }
            assert_eq!(r.coverage_pixels.coverage.len(), targets.levels.len());
        }
        for p in ev.pixels.iter().filter(|r| r.key.group == "all") {
            assert_eq!(p.coverage_per_zone.len(), opts.pixel_zones_r200c.len() + 1);
            let share: f64 = p.pixel_share_per_zone.iter().sum();
            assert!((share - 1.0).abs() < 1e-12, "zone shares sum to {share}");
            for (z, cov) in p.coverage_per_zone.iter().enumerate() {
                if p.pixel_share_per_zone[z] < 0.005 {
                    continue;
                }
                let at50 = cov[0];
                if scale == 1.0 {
                    assert!((at50 - 0.5).abs() < 0.06, "zone {z}: {at50}");
                } else {
                    assert!(at50 < 0.4, "zone {z}: {at50}");
                }
            }
        }
    }
    let bad = EvalOptions {
        pixel_zones_r200c: vec![0.5, 0.2],
        ..opts
    };
    let e = run(&fixture(4, 2, 1.0, false, 1), &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("pixel_zones_r200c"), "{e}");
}

#[test]
fn written_files_have_documented_shapes() {
    let f = fixture(8, 2, 1.0, false, 5);
    let ev = run(
        &f,
        &EvalOptions {
            bootstrap: 10,
            ..EvalOptions::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = ev.write(dir.path()).unwrap();
    assert_eq!(written.len(), 2 + 19);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("evaluation.json")).unwrap())
            .unwrap();
    assert_eq!(json["schema"], "clustermaps-metrics-1");
    assert_eq!(json["groups"].as_array().unwrap().len(), ev.groups.len());
    let claims: Claims =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("claims.json")).unwrap())
            .unwrap();
    assert_eq!(claims, ev.claims().unwrap());
    let header = |name: &str| {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        String::from_utf8(bytes[10..10 + len].to_vec()).unwrap()
    };
    let (b, k, g) = (
        ev.profiles_r200c.edges.len() - 1,
        ev.spectra.bins.len(),
        ev.groups.len(),
    );
    assert!(header("profiles_r200c_samples.npy").contains(&format!("(8, 2, 2, {b})")));
    assert!(header("spectra_cross.npy").contains(&format!("(8, 2, 2, {k})")));
    assert!(header("spectra_stats.npy").contains(&format!("({g}, 2, 5, 4, {k})")));
    assert!(header("apertures_truth.npy").contains("(8, 2, 2)"));
}

/// Timing at the paper's test-set size: `cargo test --release --lib metrics::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_n1000_s4() {
    let f = fixture(1000, 4, 1.0, false, 6);
    let t = std::time::Instant::now();
    let ev = run(&f, &EvalOptions::default()).unwrap();
    println!(
        "evaluate N=1000 S=4 C=2 64²: {:.2} s ({} threads)",
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    assert_eq!(ev.groups.len(), 5);
}
