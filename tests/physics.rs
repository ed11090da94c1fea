//! Physical sanity checks of the mock-cluster generator (docs/mock-clusters.md §9). Each compares the rendered maps
//! with an independent calculation and can fail.

use clustermaps::data::config::{MockConfig, Physics};
use clustermaps::data::gas::ne_to_rho;
use clustermaps::data::halo::nfw_h;
use clustermaps::data::mock::{aperture_weights_subsampled, Cluster, Grid, Overrides};
use clustermaps::data::observe::{beam_kernel, convolve_separable, fwhm_to_sigma, ObsConfig};
use clustermaps::data::project::{project_at, Quadrature};
use clustermaps::data::rng::cluster_seed;
use clustermaps::data::scaling::fit_power_law;
use rayon::prelude::*;

/// The same clusters every run: seeds of a fixed split.
fn seeds(split: u64, n: usize) -> Vec<u64> {
    (0..n as u64).map(|i| cluster_seed(split, i)).collect()
}

fn no_scatter_smooth() -> MockConfig {
    MockConfig {
        scatter: false,
        ..MockConfig::smooth()
    }
}

fn forced_mass(m: f64) -> Overrides {
    Overrides {
        m200c: Some(m),
        ..Default::default()
    }
}

/// Σ_pix map × weight × Δ².
fn aperture_sum(map: &[f64], w: &[f64], pixel: f64) -> f64 {
    map.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() * pixel * pixel
}

#[test]
fn nfw_projected_mass() {
    let cfg = no_scatter_smooth();
    let f_b = cfg.cosmology.f_baryon();
    let grid = Grid::new(128, cfg.side_kpc);
    for &m in &[1e14, 1e15, 2e15] {
        let c = Cluster::from_seed_with(11, &cfg, &forced_mass(m));
        let maps = c.render_clean(&grid);
        for &frac in &[0.5, 1.0] {
            let r = frac * c.halo.r200;
            let w = aperture_weights_subsampled(&grid, r, 32);
            let mass = aperture_sum(&maps.sigma_dm, &w, grid.pixel_kpc()) / (1.0 - f_b);
            let expect = 4.0
                * std::f64::consts::PI
                * c.halo.rho_s
                * c.halo.rs.powi(3)
                * nfw_h(r / c.halo.rs);
            let err = (mass / expect - 1.0).abs();
            assert!(err < 0.01, "M = {m:e}, R = {frac} R200: rel. err. {err}");
        }
    }
}

#[test]
fn projected_mass_is_invariant_to_orientation() {
    // The Schur reduction conserves projected mass exactly (det of the sky form = 1/A_zz for unit-volume
    // ellipsoids), so a truncated triaxial component lying wholly inside the field has the same total in every
    // orientation. (The same check within an aperture cannot hold for the untruncated NFW: its log-divergent mass makes
    // the aperture mass depend on how the long axis is projected; 15 % spread measured for s = 0.4.)
    // No scatter: the seeds then differ only in orientation.
    let mut cfg = MockConfig {
        scatter: false,
        ..Default::default()
    };
    cfg.subhalos.enabled = false;
    cfg.merger.enabled = false;
    cfg.background.enabled = false;
    cfg.fluctuations.enabled = false;
    cfg.density.truncation_r200 = 1.2;
    let grid = Grid::new(64, cfg.side_kpc);
    let o = Overrides {
        m200c: Some(1e14),
        s_dm: Some(0.4),
        q_dm: Some(0.6),
        ..Default::default()
    };
    let masses: Vec<f64> = (0..6)
        .map(|seed| {
            let c = Cluster::from_seed_with(seed, &cfg, &o);
            c.render_clean(&grid).sigma_gas.iter().sum::<f64>() * grid.pixel_kpc().powi(2)
        })
        .collect();
    let mean = masses.iter().sum::<f64>() / masses.len() as f64;
    for m in &masses {
        assert!((m / mean - 1.0).abs() < 0.005, "{masses:?}");
    }
}

#[test]
fn gas_fraction() {
    let cfg = MockConfig::smooth();
    let quad = Quadrature::new(128, 4);
    let fine = Quadrature::new(2000, 20);
    let grid = Grid::new(64, cfg.side_kpc);
    let rho_per_ne = ne_to_rho(&cfg.cosmology);
    let f_b = cfg.cosmology.f_baryon();
    seeds(5, 50).par_iter().for_each(|&seed| {
        let c = Cluster::from_seed(seed, &cfg);
        // 3-D gas mass inside R500 equals f_gas M500 (independent, finer quadrature).
        let m_gas = rho_per_ne * c.icm().density.volume_integral(c.r500, &fine);
        assert!(
            (m_gas / (c.f_gas500 * c.m500) - 1.0).abs() < 1e-6,
            "seed {seed}"
        );
        // Cylinder gas/DM ratio on the map equals the ratio of the 1-D projections.
        let maps = c.render_clean(&grid);
        let w = aperture_weights_subsampled(&grid, c.r500, 16);
        let ratio_map =
            aperture_sum(&maps.sigma_gas, &w, 1.0) / aperture_sum(&maps.sigma_dm, &w, 1.0);
        let gas_cyl = rho_per_ne
            * quad.integrate(0.0, c.r500, |r| {
                2.0 * std::f64::consts::PI
                    * r
                    * project_at(&fine, r, c.icm().r_trunc, &|x, o: &mut [f64; 3]| {
                        c.icm().fields(x, &cfg.pressure, o)
                    })[0]
            });
        let dm_cyl = (1.0 - f_b) * c.halo.mass_cylinder(c.r500);
        let ratio_1d = gas_cyl / dm_cyl;
        assert!(
            (ratio_map / ratio_1d - 1.0).abs() < 0.01,
            "seed {seed}: {ratio_map} vs {ratio_1d}"
        );
    });
    // Full physics: the projected baryon share inside R500 is cluster-like.
    let full = MockConfig::default();
    let mut fracs: Vec<f64> = seeds(6, 200)
        .par_iter()
        .map(|&seed| {
            let c = Cluster::from_seed(seed, &full);
            let maps = c.render_clean(&Grid::new(32, full.side_kpc));
            let w = aperture_weights_subsampled(&maps.grid, c.r500, 8);
            let g = aperture_sum(&maps.sigma_gas, &w, 1.0);
            g / (g + aperture_sum(&maps.sigma_dm, &w, 1.0))
        })
        .collect();
    fracs.sort_by(f64::total_cmp);
    let median = fracs[fracs.len() / 2];
    assert!((0.08..=0.16).contains(&median), "median gas share {median}");
}

/// (M500, Y_cyl, L_X) of `n` clusters drawn under `cfg` at 64².
fn scaling_sample(cfg: &MockConfig, n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let rows: Vec<(f64, f64, f64)> = seeds(9, n)
        .par_iter()
        .map(|&seed| {
            let meta = Cluster::from_seed(seed, cfg)
                .render(64, &ObsConfig::clean())
                .meta;
            (meta.m500c_msun, meta.y500_cyl_kpc2, meta.lx500_soft_erg_s)
        })
        .collect();
    (
        rows.iter().map(|r| r.0).collect(),
        rows.iter().map(|r| r.1).collect(),
        rows.iter().map(|r| r.2).collect(),
    )
}

#[test]
fn y_and_lx_mass_slopes() {
    let alpha_p = MockConfig::default().pressure.alpha_p;
    let lx_expect = 1.0 + 2.0 * 0.08;
    let cases = [
        (no_scatter_smooth(), 5.0 / 3.0 + alpha_p, 0.01, 0.02),
        (MockConfig::smooth(), 5.0 / 3.0 + alpha_p, 0.05, 0.07),
        (
            MockConfig {
                self_similar: true,
                ..no_scatter_smooth()
            },
            5.0 / 3.0,
            0.01,
            0.02,
        ),
    ];
    for (cfg, y_slope, y_tol, lx_tol) in cases {
        let (m, y, lx) = scaling_sample(&cfg, 300);
        let fy = fit_power_law(&m, &y, 3e14).unwrap();
        let fl = fit_power_law(&m, &lx, 3e14).unwrap();
        assert!(
            (fy.slope - y_slope).abs() < y_tol,
            "Y-M slope {} vs {y_slope} (scatter {}, self-similar {})",
            fy.slope,
            cfg.scatter,
            cfg.self_similar
        );
        assert!(
            (fl.slope - lx_expect).abs() < lx_tol,
            "L_X-M slope {} vs {lx_expect} (scatter {})",
            fl.slope,
            cfg.scatter
        );
    }
}

/// Radius [kpc] containing half of the map's sum within `r_max` of the centre.
fn half_light_radius(map: &[f64], grid: &Grid, r_max: f64) -> f64 {
    let n = grid.n_pix;
    let mut pix: Vec<(f64, f64)> = (0..n * n)
        .map(|p| (grid.centre(p % n).hypot(grid.centre(p / n)), map[p]))
        .filter(|(r, _)| *r <= r_max)
        .collect();
    pix.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = pix.iter().map(|p| p.1).sum();
    let mut acc = 0.0;
    for (r, v) in pix {
        acc += v;
        if acc >= 0.5 * total {
            return r;
        }
    }
    r_max
}

#[test]
fn sx_more_concentrated_than_y() {
    let mut cfg = MockConfig::default();
    cfg.background.enabled = false;
    let grid = Grid::new(64, cfg.side_kpc);
    let wins: usize = seeds(12, 200)
        .par_iter()
        .map(|&seed| {
            let c = Cluster::from_seed(seed, &cfg);
            let maps = c.render_clean(&grid);
            usize::from(
                half_light_radius(&maps.sx, &grid, c.r500)
                    < half_light_radius(&maps.y, &grid, c.r500),
            )
        })
        .sum();
    assert!(
        wins >= 190,
        "S_X more concentrated than y in only {wins}/200 clusters"
    );
}

/// Azimuthally averaged profile in 1-pixel annuli about the map centre, out to L/2.
fn radial_profile(map: &[f64], grid: &Grid) -> Vec<f64> {
    let n = grid.n_pix;
    let nb = n / 2;
    let (mut sum, mut cnt) = (vec![0.0; nb], vec![0usize; nb]);
    for (p, v) in map.iter().enumerate() {
        let r = grid.centre(p % n).hypot(grid.centre(p / n)) / grid.pixel_kpc();
        let b = r.floor() as usize;
        if b < nb {
            sum[b] += v;
            cnt[b] += 1;
        }
    }
    sum.iter().zip(&cnt).map(|(s, c)| s / *c as f64).collect()
}

#[test]
fn stacked_profiles_are_monotone() {
    // The `dev` test split (200 clusters at 64², ~50 per mass bin).
    let cfg = MockConfig::default();
    let grid = Grid::new(64, cfg.side_kpc);
    let test_split_seed = 2_410_028_570;
    let rows: Vec<(u8, [Vec<f64>; 4])> = seeds(test_split_seed, 200)
        .par_iter()
        .map(|&seed| {
            let c = Cluster::from_seed(seed, &cfg);
            let m = c.render_clean(&grid);
            let bin = clustermaps::data::meta::mass_bin(c.halo.m200);
            (
                bin,
                [&m.y, &m.sx, &m.sigma_gas, &m.sigma_dm].map(|v| radial_profile(v, &grid)),
            )
        })
        .collect();
    // S_X ∝ n_e² is dominated at ~R200c by the bright cores of the few merging secondaries and infalling groups in
    // each bin, so its stacked *mean* has genuine bumps (+10–150 % seen); its stacked median is tested instead.
    // The other three maps use the stacked mean.
    let mut bad = Vec::new();
    for bin in 0..4u8 {
        let members: Vec<&[Vec<f64>; 4]> =
            rows.iter().filter(|r| r.0 == bin).map(|r| &r.1).collect();
        assert!(
            members.len() >= 30,
            "bin {bin} has {} clusters",
            members.len()
        );
        for (ch, name) in ["y", "S_X", "Sigma_gas", "Sigma_DM"].iter().enumerate() {
            let nb = members[0][ch].len();
            let prof: Vec<f64> = (0..nb)
                .map(|b| {
                    let mut v: Vec<f64> = members.iter().map(|m| m[ch][b]).collect();
                    if *name == "S_X" {
                        v.sort_by(f64::total_cmp);
                        v[v.len() / 2]
                    } else {
                        v.iter().sum::<f64>() / v.len() as f64
                    }
                })
                .collect();
            for b in 1..nb - 1 {
                if prof[b + 1] > 1.02 * prof[b] {
                    bad.push(format!(
                        "bin {bin} {name}: +{:.1}% from annulus {b} to {}",
                        100.0 * (prof[b + 1] / prof[b] - 1.0),
                        b + 1
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "stacked profiles rise: {bad:#?}");
}

#[test]
fn finite_everywhere() {
    let cfg = MockConfig::default();
    let obs = [ObsConfig::clean(), ObsConfig::realistic()];
    let extremes = [
        Overrides {
            m200c: Some(1e14),
            ..Default::default()
        },
        Overrides {
            m200c: Some(2e15),
            ..Default::default()
        },
        Overrides {
            s_dm: Some(0.35),
            q_dm: Some(0.35),
            ..Default::default()
        },
        Overrides {
            merger: Some(true),
            merger_sep_r200: Some(0.3),
            ..Default::default()
        },
        Overrides {
            n_sub: Some(30),
            ..Default::default()
        },
        Overrides {
            alpha_n: Some(1.5),
            m200c: Some(2e15),
            ..Default::default()
        },
    ];
    let bad: Vec<String> = (0..1000u64)
        .into_par_iter()
        .flat_map_iter(|i| {
            let o = extremes.get(i as usize).cloned().unwrap_or_default();
            let c = Cluster::from_seed_with(cluster_seed(77, i), &cfg, &o);
            obs.iter()
                .filter_map(|ob| {
                    let r = c.render(16, ob);
                    let finite = r.inputs.iter().chain(&r.targets).all(|v| v.is_finite());
                    let positive = r.targets.iter().all(|&v| v > 0.0);
                    (!finite || !positive).then(|| {
                        format!(
                            "cluster {i} ({:?}): finite {finite}, positive {positive}",
                            ob.preset
                        )
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
}

/// Sub-pixel peak of `map` near (row, col) by a 3 × 3 parabolic fit, searched within `radius` pixels.
fn peak_near(map: &[f64], n: usize, row: f64, col: f64, radius: usize) -> (f64, f64) {
    let (r0, c0) = (row.round() as isize, col.round() as isize);
    let mut best = (0usize, 0usize, f64::MIN);
    for i in (r0 - radius as isize).max(1)..=(r0 + radius as isize).min(n as isize - 2) {
        for j in (c0 - radius as isize).max(1)..=(c0 + radius as isize).min(n as isize - 2) {
            let v = map[i as usize * n + j as usize];
            if v > best.2 {
                best = (i as usize, j as usize, v);
            }
        }
    }
    let (i, j) = (best.0, best.1);
    let v = |a: usize, b: usize| map[a * n + b].ln();
    let di = 0.5 * (v(i - 1, j) - v(i + 1, j)) / (v(i - 1, j) - 2.0 * v(i, j) + v(i + 1, j));
    let dj = 0.5 * (v(i, j - 1) - v(i, j + 1)) / (v(i, j - 1) - 2.0 * v(i, j) + v(i, j + 1));
    (i as f64 + di, j as f64 + dj)
}

#[test]
fn merger_offset() {
    let cfg = MockConfig::smooth();
    let offset = 250.0;
    let o = Overrides {
        m200c: Some(1e15),
        merger: Some(true),
        merger_outgoing: Some(true),
        merger_direction: Some([1.0, 0.0, 0.0]),
        merger_sep_r200: Some(1.2),
        merger_offset_kpc: Some(offset),
        merger_xi: Some(0.5),
        ..Default::default()
    };
    let c = Cluster::from_seed_with(21, &cfg, &o);
    let grid = Grid::new(128, cfg.side_kpc);
    let maps = c.render_clean(&grid);
    let pix = grid.pixel_kpc();
    let to_px = |x: f64| x / pix + grid.n_pix as f64 / 2.0 - 0.5;
    let (dm_xy, gas_xy) = c.secondary_centres().expect("forced merger");
    let dm_peak = peak_near(
        &maps.sigma_dm,
        grid.n_pix,
        to_px(dm_xy[1]),
        to_px(dm_xy[0]),
        3,
    );
    let gas_peak = peak_near(
        &maps.sigma_gas,
        grid.n_pix,
        to_px(gas_xy[1]),
        to_px(gas_xy[0]),
        3,
    );
    let measured = (gas_peak.1 - dm_peak.1) * pix;
    // Outgoing: the secondary's gas lags behind its DM, toward the primary (negative x here).
    assert!(
        measured < 0.0,
        "gas should trail toward the primary, got {measured} kpc"
    );
    let tol = 0.5 * pix + 0.1 * offset;
    assert!(
        (measured.abs() - offset).abs() < tol,
        "offset {measured} kpc vs {offset} ± {tol}"
    );
    assert!(
        (gas_peak.0 - dm_peak.0).abs() * pix < tol,
        "no offset expected across the merger axis"
    );
}

#[test]
fn pixel_convergence_at_a_cusp() {
    let coarse = no_scatter_smooth();
    let mut fine = coarse.clone();
    fine.numerics.subsample_centre = 64;
    let o = Overrides {
        alpha_n: Some(1.5),
        m200c: Some(1e15),
        ..Default::default()
    };
    let grid = Grid::new(64, coarse.side_kpc);
    let a = Cluster::from_seed_with(3, &coarse, &o).render_clean(&grid);
    let b = Cluster::from_seed_with(3, &fine, &o).render_clean(&grid);
    for p in [31 * 64 + 31, 31 * 64 + 32, 32 * 64 + 31, 32 * 64 + 32] {
        for (x, y) in [
            (&a.sx, &b.sx),
            (&a.y, &b.y),
            (&a.sigma_gas, &b.sigma_gas),
            (&a.sigma_dm, &b.sigma_dm),
        ] {
            assert!(
                (x[p] / y[p] - 1.0).abs() < 0.005,
                "pixel {p}: {} vs {}",
                x[p],
                y[p]
            );
        }
    }
}

#[test]
fn observation_model() {
    let cfg = MockConfig::default();
    let obs = ObsConfig::realistic();
    let n = 64;
    let pixel_arcmin = cfg.side_kpc / n as f64 / cfg.cosmology.kpc_per_arcmin(cfg.z);
    let sigma_pix = obs.y_noise_per_pixel(pixel_arcmin);
    let kernel = beam_kernel(fwhm_to_sigma(obs.sz_beam_fwhm_arcmin) / pixel_arcmin);
    let r = kernel.len() / 2;
    let mut resid = Vec::new();
    let (mut counts, mut expected) = (0.0, 0.0);
    for seed in 0..6 {
        let c = Cluster::from_seed(seed, &cfg);
        let real = c.render(n, &obs);
        let clean = c.render(n, &ObsConfig::clean());
        assert_eq!(
            real.targets, clean.targets,
            "targets must not depend on the observation model"
        );
        let ci = real
            .inputs_clean
            .as_ref()
            .expect("realistic keeps clean inputs");
        assert_eq!(ci, &clean.inputs);
        // The beam conserves the total y of the (padded) field.
        let y_clean: Vec<f64> = ci[..n * n].iter().map(|&v| v as f64).collect();
        let conv = convolve_separable(&y_clean, n, &kernel);
        // Interior residual = pure noise (the beam there sees no edge).
        for i in r..n - r {
            for j in r..n - r {
                resid.push(real.inputs[i * n + j] as f64 - conv[i * n + j]);
            }
        }
        // Counts: stored S_X × (1 / S_X per count) are integers with mean Σλ.
        let per_count = obs.sx_per_count(pixel_arcmin);
        let bkg = obs.xray_background_per_arcmin2 * pixel_arcmin * pixel_arcmin;
        for p in 0..n * n {
            let k = real.inputs[n * n + p] as f64 / per_count;
            assert!(
                (k - k.round()).abs() < 1e-3 * k.max(1.0),
                "non-integer counts {k}"
            );
            counts += k.round();
        }
        // Expected counts from the PSF-blurred clean map: the PSF conserves flux away from the edges, so use the
        // clean sum (the cluster's flux near the edge is negligible).
        expected += ci[n * n..]
            .iter()
            .map(|&v| v as f64 / per_count)
            .sum::<f64>()
            + bkg * (n * n) as f64;
    }
    let m = resid.iter().sum::<f64>() / resid.len() as f64;
    let sd = (resid.iter().map(|v| (v - m).powi(2)).sum::<f64>() / resid.len() as f64).sqrt();
    assert!(
        (sd / sigma_pix - 1.0).abs() < 0.03,
        "y noise {sd:e} vs {sigma_pix:e}"
    );
    assert!(
        (counts - expected).abs() < 3.0 * expected.sqrt() + 1e-3 * expected,
        "{counts} vs {expected}"
    );
    let total_in = 1.0;
    let k = beam_kernel(1.08);
    let mut impulse = vec![0.0; 41 * 41];
    impulse[20 * 41 + 20] = total_in;
    let out: f64 = convolve_separable(&impulse, 41, &k).iter().sum();
    assert!((out - total_in).abs() < 1e-6);
}

#[test]
fn units_reference() {
    let cfg = no_scatter_smooth();
    let c = Cluster::from_seed_with(1, &cfg, &forced_mass(1e15));
    let grid = Grid::new(64, cfg.side_kpc);
    let maps = c.render_clean(&grid);
    let central = [31 * 64 + 31, 31 * 64 + 32, 32 * 64 + 31, 32 * 64 + 32].map(|p| maps.y[p]);
    for y in central {
        assert!((3e-5..=3e-4).contains(&y), "central y {y:e}");
    }
    let t_app = clustermaps::data::gas::t_app05(c.m500, cfg.cosmology.e(cfg.z));
    assert!(
        c.tx_kev / t_app < 1.4 && t_app / c.tx_kev < 1.4,
        "T_X {} keV vs APP05 {t_app} keV",
        c.tx_kev
    );
}

#[test]
fn same_cluster_at_every_resolution() {
    // The fixed physical field: the total DM mass in the field agrees between 32² and 64² maps.
    let cfg = MockConfig::default();
    let c = Cluster::from_seed(5, &cfg);
    let mass = |n: usize| {
        let g = Grid::new(n, cfg.side_kpc);
        c.render_clean(&g).sigma_dm.iter().sum::<f64>() * g.pixel_kpc().powi(2)
    };
    let (a, b) = (mass(32), mass(64));
    assert!((a / b - 1.0).abs() < 0.01, "{a:e} vs {b:e}");
    let _ = Physics::Full;
}

#[test]
fn dm_peak_sits_at_the_centre() {
    // The import plausibility rule (docs/mock-clusters.md §7, rule 7) expects the brightest Σ_DM pixel within 0.1 L of
    // the centre in ≥ 90 % of clusters; our own mocks must pass it (mergers are the exceptions).
    let cfg = MockConfig::default();
    let grid = Grid::new(64, cfg.side_kpc);
    let central: usize = seeds(31, 300)
        .par_iter()
        .map(|&seed| {
            let m = Cluster::from_seed(seed, &cfg).render_clean(&grid);
            let p = (0..m.sigma_dm.len())
                .max_by(|&a, &b| m.sigma_dm[a].total_cmp(&m.sigma_dm[b]))
                .unwrap();
            let r = grid
                .centre(p % grid.n_pix)
                .hypot(grid.centre(p / grid.n_pix));
            usize::from(r <= 0.1 * cfg.side_kpc)
        })
        .sum();
    assert!(
        central >= 270,
        "DM peak central in only {central}/300 clusters"
    );
}
