//! [`evaluate`]: every metric of this module for a set of clusters with posterior samples, grouped by mass bin, in
//! two passes.
//!
//! Work is split in two passes so that N = 1000 clusters stay fast on two cores: a parallel pass over clusters
//! (rayon) computes everything that needs pixels — profiles, aperture masses, FFTs, pixel errors and pixel
//! calibration sums — into small per-cluster arrays; a second pass computes group statistics from those arrays only.

use std::time::Instant;

use rayon::prelude::*;

use super::calibration::{CalibAccumulator, SpreadAccumulator};
use super::inputs::{check_meta, check_options, check_shapes, check_values, Dims};
use super::profiles::{aperture_sum, bin_centres, clip_edges, disk_weights, AnnulusWeights};
use super::report::{
    ApertureRow, EvalOptions, Evaluation, GroupInfo, PerCluster, PixelRow, ProfileCalRow,
    ProfileReport, ProfileRow, RowKey, SpectraReport, SpectraRow, SCHEMA,
};
use super::spectra::{Fft2, SpectrumBins};
use super::stats::{mean_std, BinStats, Summary};
use crate::data::dataset::MapGeometry;
use crate::data::meta::{ClusterMeta, MASS_BIN_EDGES};
use crate::{Error, Result};

// ---------------------------------------------------------------------------------------------------------------
// Pass 1: per cluster
// ---------------------------------------------------------------------------------------------------------------

/// Per-cluster results; arrays indexed `[m][c][bin]` with m = 0 the truth and m = 1..=S the samples.
struct ClusterOut {
    prof_r200: Vec<f64>,
    prof_kpc: Vec<f64>,
    aper: Vec<f64>,
    power: Vec<f64>,
    /// `[s][c][k]`.
    cross: Vec<f64>,
    /// `[pair][c][k]` over sample pairs s < s′ in lexicographic order ([`sample_pairs`]).
    cross_ss: Vec<f64>,
    /// `[c][k]`.
    power_mean: Vec<f64>,
    cross_mean: Vec<f64>,
    pix_cal: Vec<CalibAccumulator>,
    /// `[c][zone]`: pixel coverage per radial zone (no ranks).
    pix_cal_zones: Vec<Vec<CalibAccumulator>>,
    pix_spread: Vec<SpreadAccumulator>,
    /// Per channel: Σ over pixels of (sample err² averaged over s, mean-map err², log sample err², log mean err²).
    sq_err: Vec<[f64; 4]>,
}

struct Shared<'a> {
    d: Dims,
    geometry: &'a MapGeometry,
    edges_r200: &'a [f64],
    kpc_weights: &'a AnnulusWeights,
    kbins: &'a SpectrumBins,
    floors: Option<&'a [f64]>,
    levels: &'a [f64],
    thin: usize,
    zones_r200: &'a [f64],
}

/// The sample pairs (s, s′), s < s′, in the order of [`ClusterOut::cross_ss`].
fn sample_pairs(s: usize) -> Vec<(usize, usize)> {
    (0..s)
        .flat_map(|a| (a + 1..s).map(move |b| (a, b)))
        .collect()
}

/// Radial zone of every pixel (index into `[0, e₁)`, `[e₁, e₂)`, …, `[e_last, ∞)`, edges in units of `r200c`),
/// measured from the map centre to the pixel centre.
fn pixel_zones(geometry: &MapGeometry, r200c_kpc: f64, edges_r200: &[f64]) -> Vec<u8> {
    let n = geometry.n_pix;
    (0..n * n)
        .map(|p| {
            let x = (p % n) as f64 + 0.5 - 0.5 * n as f64;
            let y = (p / n) as f64 + 0.5 - 0.5 * n as f64;
            let r = x.hypot(y) * geometry.pixel_kpc / r200c_kpc;
            edges_r200.iter().filter(|&&e| r >= e).count() as u8
        })
        .collect()
}

fn cluster_pass(
    sh: &Shared,
    fft: &mut Fft2,
    i: usize,
    meta: &ClusterMeta,
    truth: &[f32],
    samples: &[f32],
) -> Result<ClusterOut> {
    let d = sh.d;
    let (nm, nc) = (d.s + 1, d.c);
    let edges: Vec<f64> = sh.edges_r200.iter().map(|e| e * meta.r200c_kpc).collect();
    let w200 = AnnulusWeights::new(sh.geometry, &edges)?;
    let (b200, bkpc, nk) = (w200.len(), sh.kpc_weights.len(), sh.kbins.len());
    let apertures = [
        disk_weights(sh.geometry, meta.r500c_kpc),
        disk_weights(sh.geometry, meta.r200c_kpc),
    ];
    let pairs = sample_pairs(d.s);
    let zone_of = pixel_zones(sh.geometry, meta.r200c_kpc, sh.zones_r200);
    let mut out = ClusterOut {
        prof_r200: vec![0.0; nm * nc * b200],
        prof_kpc: vec![0.0; nm * nc * bkpc],
        aper: vec![0.0; nm * nc * 2],
        power: vec![0.0; nm * nc * nk],
        cross: vec![0.0; d.s * nc * nk],
        cross_ss: vec![0.0; pairs.len() * nc * nk],
        power_mean: vec![0.0; nc * nk],
        cross_mean: vec![0.0; nc * nk],
        pix_cal: Vec::with_capacity(nc),
        pix_cal_zones: Vec::with_capacity(nc),
        pix_spread: Vec::with_capacity(nc),
        sq_err: Vec::with_capacity(nc),
    };
    for c in 0..nc {
        let t_map = &truth[d.truth(i, c)];
        let maps: Vec<&[f32]> = std::iter::once(t_map)
            .chain((0..d.s).map(|s| &samples[d.sample(i, s, c)]))
            .collect();
        let mut f_true = Vec::new();
        let mut f_mean = Vec::new();
        let mut f_samples = Vec::with_capacity(d.s);
        for (m, map) in maps.iter().enumerate() {
            let o = m * nc + c;
            w200.profile_into(map, &mut out.prof_r200[o * b200..(o + 1) * b200]);
            sh.kpc_weights
                .profile_into(map, &mut out.prof_kpc[o * bkpc..(o + 1) * bkpc]);
            for (a, w) in apertures.iter().enumerate() {
                out.aper[o * 2 + a] = aperture_sum(w, map);
            }
            let f = fft.forward(map);
            out.power[o * nk..(o + 1) * nk].copy_from_slice(&sh.kbins.power(&f));
            if m == 0 {
                f_true = f;
                f_mean = vec![Default::default(); f_true.len()];
            } else {
                let so = ((m - 1) * nc + c) * nk;
                out.cross[so..so + nk].copy_from_slice(&sh.kbins.cross(&f, &f_true));
                for (acc, v) in f_mean.iter_mut().zip(&f) {
                    *acc += v / d.s as f64;
                }
                f_samples.push(f);
            }
        }
        for (j, &(a, b)) in pairs.iter().enumerate() {
            let o = (j * nc + c) * nk;
            out.cross_ss[o..o + nk].copy_from_slice(&sh.kbins.cross(&f_samples[a], &f_samples[b]));
        }
        out.power_mean[c * nk..(c + 1) * nk].copy_from_slice(&sh.kbins.power(&f_mean));
        out.cross_mean[c * nk..(c + 1) * nk].copy_from_slice(&sh.kbins.cross(&f_mean, &f_true));

        // Pixels: errors, calibration, spread-skill.
        let floor = sh.floors.map(|f| f[c]);
        let log = |x: f64| match floor {
            Some(fl) => x.max(fl).log10(),
            None => x.log10(),
        };
        let mut cal = CalibAccumulator::new(d.s, sh.levels);
        let mut zones = vec![CalibAccumulator::new(d.s, sh.levels); sh.zones_r200.len() + 1];
        let mut spread = SpreadAccumulator::new(d.s);
        let mut sq = [0.0; 4];
        let mut phys = vec![0.0; d.s];
        let mut logs = vec![0.0; d.s];
        for (p, &t) in t_map.iter().enumerate() {
            let t = t as f64;
            for s in 0..d.s {
                phys[s] = maps[s + 1][p] as f64;
                logs[s] = log(phys[s]);
            }
            let lt = log(t);
            let mean = phys.iter().sum::<f64>() / d.s as f64;
            let lmean = logs.iter().sum::<f64>() / d.s as f64;
            sq[0] += phys.iter().map(|x| (x - t) * (x - t)).sum::<f64>() / d.s as f64;
            sq[1] += (mean - t) * (mean - t);
            sq[2] += logs.iter().map(|x| (x - lt) * (x - lt)).sum::<f64>() / d.s as f64;
            sq[3] += (lmean - lt) * (lmean - lt);
            let (row, col) = (p / d.side, p % d.side);
            cal.push(lt, &logs, row % sh.thin == 0 && col % sh.thin == 0);
            zones[zone_of[p] as usize].push(lt, &logs, false);
            spread.push(lt, &logs);
        }
        out.pix_cal.push(cal);
        out.pix_cal_zones.push(zones);
        out.pix_spread.push(spread);
        out.sq_err.push(sq);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// Pass 2: group statistics
// ---------------------------------------------------------------------------------------------------------------

fn make_groups(meta: &[ClusterMeta], notes: &mut Vec<String>) -> Vec<GroupInfo> {
    let mut groups = vec![GroupInfo {
        label: "all".into(),
        mass_bin: None,
        n_clusters: meta.len(),
        log10_m200c: [MASS_BIN_EDGES[0], MASS_BIN_EDGES[4]],
        clusters: (0..meta.len()).collect(),
    }];
    for b in 0..4u8 {
        let clusters: Vec<usize> = (0..meta.len()).filter(|&i| meta[i].mass_bin == b).collect();
        if clusters.len() < 2 {
            notes.push(format!(
                "mass bin {b}: {} cluster(s), fewer than 2: no statistics for this bin",
                clusters.len()
            ));
            continue;
        }
        groups.push(GroupInfo {
            label: format!("bin{b}"),
            mass_bin: Some(b),
            n_clusters: clusters.len(),
            log10_m200c: [MASS_BIN_EDGES[b as usize], MASS_BIN_EDGES[b as usize + 1]],
            clusters,
        });
    }
    groups
}

fn key(g: &GroupInfo, channel: &str) -> RowKey {
    RowKey {
        group: g.label.clone(),
        mass_bin: g.mass_bin,
        channel: channel.to_string(),
        n_clusters: g.n_clusters,
    }
}

/// Values of one radial or k bin for the clusters of a group: truth `[n]`, samples `[s][n]`, mean map `[n]`.
struct BinValues {
    truth: Vec<f64>,
    samples: Vec<Vec<f64>>,
    mean_map: Vec<f64>,
}

/// Gathers bin `b` of channel `c` from per-cluster arrays `[m][c][bins]` (m = 0 truth, 1..=S samples).
fn gather(outs: &[&[f64]], s: usize, nc: usize, nb: usize, c: usize, b: usize) -> BinValues {
    let at = |o: &[f64], m: usize| o[(m * nc + c) * nb + b];
    let samples: Vec<Vec<f64>> = (1..=s)
        .map(|m| outs.iter().map(|o| at(o, m)).collect())
        .collect();
    let mean_map = (0..outs.len())
        .map(|k| samples.iter().map(|v| v[k]).sum::<f64>() / s as f64)
        .collect();
    BinValues {
        truth: outs.iter().map(|o| at(o, 0)).collect(),
        samples,
        mean_map,
    }
}

/// (frac mean, frac std, frac std of the mean map) of one resample `idx` (all clusters when `None`); `None` when the
/// truth has zero mean or spread there.
fn profile_fracs(v: &BinValues, idx: Option<&[usize]>) -> Option<[f64; 3]> {
    let pick = |x: &[f64]| -> Vec<f64> {
        match idx {
            Some(ix) => ix.iter().map(|&k| x[k]).collect(),
            None => x.to_vec(),
        }
    };
    let (tm, ts) = mean_std(&pick(&v.truth));
    if tm == 0.0 || ts == 0.0 {
        return None;
    }
    let (mut pm, mut ps) = (0.0, 0.0);
    for s in &v.samples {
        let (m, sd) = mean_std(&pick(s));
        pm += m / v.samples.len() as f64;
        ps += sd / v.samples.len() as f64;
    }
    let (_, ms) = mean_std(&pick(&v.mean_map));
    Some([(pm - tm) / tm, (ps - ts) / ts, (ms - ts) / ts])
}

#[allow(clippy::too_many_arguments)]
fn profile_report(
    unit: &str,
    edges: Vec<f64>,
    dropped: Vec<f64>,
    per_cluster: &[&[f64]],
    groups: &[GroupInfo],
    channels: &[String],
    s: usize,
    opts: &EvalOptions,
    notes: &mut Vec<String>,
) -> Result<ProfileReport> {
    let nb = edges.len() - 1;
    let nc = channels.len();
    let mut rows = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let outs: Vec<&[f64]> = g.clusters.iter().map(|&i| per_cluster[i]).collect();
        // One set of bootstrap resamples per group, shared by channels and bins.
        let mut rng = crate::rng::stream(opts.seed, gi as u64);
        let n = outs.len();
        let resamples: Vec<Vec<usize>> = (0..opts.bootstrap)
            .map(|_| {
                (0..n)
                    .map(|_| crate::rng::below(&mut rng, n as u64) as usize)
                    .collect()
            })
            .collect();
        for (c, name) in channels.iter().enumerate() {
            let mut row = ProfileRow {
                key: key(g, name),
                truth: BinStats::default(),
                samples: BinStats::default(),
                mean_map: BinStats::default(),
                frac_mean: vec![],
                frac_mean_err: vec![],
                frac_std: vec![],
                frac_std_err: vec![],
                frac_std_mean_map: vec![],
                frac_std_mean_map_err: vec![],
            };
            let mut t_sum = Vec::new();
            let mut s_sum = Vec::new();
            let mut m_sum = Vec::new();
            for b in 0..nb {
                let v = gather(&outs, s, nc, nb, c, b);
                t_sum.push(Summary::of(&v.truth));
                let per_s: Vec<Summary> = v.samples.iter().map(|x| Summary::of(x)).collect();
                s_sum.push(Summary::average(&per_s));
                m_sum.push(Summary::of(&v.mean_map));
                let point = profile_fracs(&v, None).ok_or_else(|| {
                    Error::invalid(
                        "radial profiles",
                        format!(
                            "group {}, channel '{name}', bin {b} ({:.4}–{:.4} {unit}): the true profiles have zero \
                             mean or zero spread over clusters; fractional errors are undefined",
                            g.label,
                            edges[b],
                            edges[b + 1]
                        ),
                    )
                })?;
                let reps: Vec<[f64; 3]> = resamples
                    .iter()
                    .filter_map(|ix| profile_fracs(&v, Some(ix)))
                    .collect();
                let err = |k: usize| {
                    if reps.len() < 2 {
                        f64::INFINITY
                    } else {
                        mean_std(&reps.iter().map(|r| r[k]).collect::<Vec<_>>()).1
                    }
                };
                if reps.len() < 2 {
                    notes.push(format!(
                        "profiles ({unit}) group {}, channel '{name}', bin {b}: fewer than 2 usable bootstrap \
                         replicates, uncertainty reported as infinite",
                        g.label
                    ));
                }
                row.frac_mean.push(point[0]);
                row.frac_mean_err.push(err(0));
                row.frac_std.push(point[1]);
                row.frac_std_err.push(err(1));
                row.frac_std_mean_map.push(point[2]);
                row.frac_std_mean_map_err.push(err(2));
            }
            row.truth = BinStats::from_summaries(t_sum);
            row.samples = BinStats::from_summaries(s_sum);
            row.mean_map = BinStats::from_summaries(m_sum);
            rows.push(row);
        }
    }
    Ok(ProfileReport {
        unit: unit.into(),
        centres: bin_centres(&edges),
        edges,
        dropped_edges: dropped,
        rows,
    })
}

/// Mean over clusters of a per-pair quantity `[n][s]`, then its standard error over clusters.
fn sem_over_clusters(per_pair: &[Vec<f64>]) -> f64 {
    let per_cluster: Vec<f64> = per_pair
        .iter()
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
        .collect();
    mean_std(&per_cluster).1 / (per_cluster.len() as f64).sqrt()
}

#[allow(clippy::too_many_arguments)]
fn spectra_rows(
    outs_all: &[ClusterOut],
    groups: &[GroupInfo],
    channels: &[String],
    meta: &[ClusterMeta],
    s: usize,
    nk: usize,
) -> Result<Vec<SpectraRow>> {
    let nc = channels.len();
    let mut rows = Vec::new();
    for g in groups {
        let outs: Vec<&ClusterOut> = g.clusters.iter().map(|&i| &outs_all[i]).collect();
        for (c, name) in channels.iter().enumerate() {
            let mut stats: [Vec<Summary>; 8] = Default::default();
            let (mut bsem, mut rsem, mut bst, mut rst) = (vec![], vec![], vec![], vec![]);
            let mut ss_sem = vec![];
            let pairs = sample_pairs(s);
            for k in 0..nk {
                let at = |o: &ClusterOut, m: usize| o.power[(m * nc + c) * nk + k];
                let pt: Vec<f64> = outs.iter().map(|o| at(o, 0)).collect();
                let per_s: Vec<Summary> = (1..=s)
                    .map(|m| Summary::of(&outs.iter().map(|o| at(o, m)).collect::<Vec<_>>()))
                    .collect();
                let pm: Vec<f64> = outs.iter().map(|o| o.power_mean[c * nk + k]).collect();
                let mut b_pairs = Vec::with_capacity(outs.len());
                let mut r_pairs = Vec::with_capacity(outs.len());
                let mut ss_pairs = Vec::with_capacity(outs.len());
                let (mut bm, mut rm) = (Vec::new(), Vec::new());
                let (mut sum_p, mut sum_x) = (0.0, 0.0);
                for (j, o) in outs.iter().enumerate() {
                    let i = g.clusters[j];
                    let t = at(o, 0);
                    let zero = |what: &str, v: f64| {
                        Error::invalid(
                            "power spectra",
                            format!(
                                "cluster {i} (id {}), channel '{name}', k bin {k}: {what} = {v}, so b(k) and r(k) \
                                 are undefined (a constant map?)",
                                meta[i].id
                            ),
                        )
                    };
                    if t <= 0.0 {
                        return Err(zero("P_true", t));
                    }
                    let mut bv = Vec::with_capacity(s);
                    let mut rv = Vec::with_capacity(s);
                    for m in 1..=s {
                        let p = at(o, m);
                        if p <= 0.0 {
                            return Err(zero(&format!("P of sample {}", m - 1), p));
                        }
                        let x = o.cross[((m - 1) * nc + c) * nk + k];
                        bv.push((p / t).sqrt());
                        rv.push(x / (p * t).sqrt());
                        sum_p += p;
                        sum_x += x;
                    }
                    b_pairs.push(bv);
                    r_pairs.push(rv);
                    ss_pairs.push(
                        pairs
                            .iter()
                            .enumerate()
                            .map(|(j, &(a, b))| {
                                let x = o.cross_ss[(j * nc + c) * nk + k];
                                x / (at(o, a + 1) * at(o, b + 1)).sqrt()
                            })
                            .collect::<Vec<f64>>(),
                    );
                    let p = o.power_mean[c * nk + k];
                    if p <= 0.0 {
                        return Err(zero("P of the posterior-mean map", p));
                    }
                    bm.push((p / t).sqrt());
                    rm.push(o.cross_mean[c * nk + k] / (p * t).sqrt());
                }
                let flat = |v: &[Vec<f64>]| v.iter().flatten().copied().collect::<Vec<f64>>();
                let mean_t = pt.iter().sum::<f64>() / pt.len() as f64;
                let npairs = (outs.len() * s) as f64;
                let (mp, mx) = (sum_p / npairs, sum_x / npairs);
                stats[0].push(Summary::of(&pt));
                stats[1].push(Summary::average(&per_s));
                stats[2].push(Summary::of(&pm));
                stats[3].push(Summary::of(&flat(&b_pairs)));
                stats[4].push(Summary::of(&flat(&r_pairs)));
                stats[5].push(Summary::of(&bm));
                stats[6].push(Summary::of(&rm));
                stats[7].push(Summary::of(&flat(&ss_pairs)));
                ss_sem.push(sem_over_clusters(&ss_pairs));
                bsem.push(sem_over_clusters(&b_pairs));
                rsem.push(sem_over_clusters(&r_pairs));
                bst.push((mp / mean_t).sqrt());
                rst.push(mx / (mp * mean_t).sqrt());
            }
            let [t, sm, mm, b, r, bmm, rmm, rss] = stats.map(BinStats::from_summaries);
            rows.push(SpectraRow {
                key: key(g, name),
                truth: t,
                samples: sm,
                mean_map: mm,
                bias: b,
                bias_sem: bsem,
                corr: r,
                corr_sem: rsem,
                bias_mean_map: bmm,
                corr_mean_map: rmm,
                bias_stacked: bst,
                corr_stacked: rst,
                corr_sample_sample: rss,
                corr_sample_sample_sem: ss_sem,
            });
        }
    }
    Ok(rows)
}

fn aperture_rows(
    outs_all: &[ClusterOut],
    groups: &[GroupInfo],
    channels: &[String],
    meta: &[ClusterMeta],
    s: usize,
    levels: &[f64],
) -> Result<Vec<ApertureRow>> {
    let nc = channels.len();
    let mut rows = Vec::new();
    for g in groups {
        for (c, name) in channels.iter().enumerate() {
            for (a, aperture) in ["R500c", "R200c"].into_iter().enumerate() {
                let at = |o: &ClusterOut, m: usize| o.aper[(m * nc + c) * 2 + a];
                let mut truth = Vec::new();
                let mut rel = Vec::new();
                let mut rel_mean = Vec::new();
                let mut cal = CalibAccumulator::new(s, levels);
                for &i in &g.clusters {
                    let o = &outs_all[i];
                    let t = at(o, 0);
                    if t == 0.0 {
                        return Err(Error::invalid(
                            "aperture masses",
                            format!(
                                "cluster {i} (id {}), channel '{name}': the true mass within {aperture} is 0, so \
                                 relative errors are undefined",
                                meta[i].id
                            ),
                        ));
                    }
                    let m: Vec<f64> = (1..=s).map(|m| at(o, m)).collect();
                    truth.push(t);
                    rel.push(m.iter().map(|x| (x - t) / t).collect::<Vec<f64>>());
                    rel_mean.push((m.iter().sum::<f64>() / s as f64 - t) / t);
                    cal.push(t, &m, true);
                }
                let flat: Vec<f64> = rel.iter().flatten().copied().collect();
                rows.push(ApertureRow {
                    key: key(g, name),
                    aperture: aperture.into(),
                    truth: Summary::of(&truth),
                    rel_err: Summary::of(&flat),
                    rel_err_sem: sem_over_clusters(&rel),
                    rel_err_mean_map: Summary::of(&rel_mean),
                    calibration: cal.finish(),
                });
            }
        }
    }
    Ok(rows)
}

fn pixel_rows(
    outs_all: &[ClusterOut],
    groups: &[GroupInfo],
    channels: &[String],
    d: Dims,
    levels: &[f64],
    zone_edges: &[f64],
) -> Vec<PixelRow> {
    let mut rows = Vec::new();
    for g in groups {
        for (c, name) in channels.iter().enumerate() {
            let mut cal = CalibAccumulator::new(d.s, levels);
            let mut zones = vec![CalibAccumulator::new(d.s, levels); zone_edges.len() + 1];
            let mut spread = SpreadAccumulator::new(d.s);
            let mut sq = [0.0; 4];
            for &i in &g.clusters {
                let o = &outs_all[i];
                cal.merge(&o.pix_cal[c]);
                for (z, oz) in zones.iter_mut().zip(&o.pix_cal_zones[c]) {
                    z.merge(oz);
                }
                spread.merge(&o.pix_spread[c]);
                for (a, b) in sq.iter_mut().zip(&o.sq_err[c]) {
                    *a += b;
                }
            }
            let n = (g.clusters.len() * d.hw) as f64;
            rows.push(PixelRow {
                key: key(g, name),
                mse_samples: sq[0] / n,
                mse_mean_map: sq[1] / n,
                mse_log10_samples: sq[2] / n,
                mse_log10_mean: sq[3] / n,
                calibration: cal.finish(),
                spread_skill: spread.finish(),
                zone_edges_r200c: zone_edges.to_vec(),
                coverage_per_zone: zones.iter().map(|z| z.coverage()).collect(),
                pixel_share_per_zone: zones.iter().map(|z| z.items() / n).collect(),
            });
        }
    }
    rows
}

fn profile_cal_rows(
    prof: &[&[f64]],
    groups: &[GroupInfo],
    channels: &[String],
    s: usize,
    nb: usize,
    levels: &[f64],
) -> Vec<ProfileCalRow> {
    let nc = channels.len();
    let mut rows = Vec::new();
    for g in groups {
        for (c, name) in channels.iter().enumerate() {
            let mut pooled = CalibAccumulator::new(s, levels);
            let mut per_bin = Vec::with_capacity(nb);
            for b in 0..nb {
                let mut acc = CalibAccumulator::new(s, levels);
                for &i in &g.clusters {
                    let o = prof[i];
                    let t = o[c * nb + b];
                    let m: Vec<f64> = (1..=s).map(|m| o[(m * nc + c) * nb + b]).collect();
                    acc.push(t, &m, true);
                }
                pooled.merge(&acc);
                per_bin.push(acc.coverage());
            }
            rows.push(ProfileCalRow {
                key: key(g, name),
                pooled: pooled.finish(),
                coverage_per_bin: per_bin,
            });
        }
    }
    rows
}

// ---------------------------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------------------------

/// Evaluates posterior samples against the truth.
///
/// - `truth`: `[N, C, H, W]`, `samples`: `[N, S, C, H, W]`, physical units, row-major; `shape` = `[N, S, C, H, W]`.
/// - `meta`: one row per cluster (R200c, R500c and `mass_bin` are used); `geometry`: the maps' geometry
///   (centre at the geometric map centre); `channels`: C names, used in reports and error messages.
///
/// Errors (never NaN results): wrong shapes or lengths, S < 2, NaN/Inf pixels or non-positive pixels without
/// [`EvalOptions::log_floors`] (the message names cluster, sample, channel and pixel), missing R200c/R500c, truth
/// maps without spread or power where a ratio needs it. Runs in parallel over clusters on rayon's global pool.
pub fn evaluate(
    truth: &[f32],
    samples: &[f32],
    shape: [usize; 5],
    meta: &[ClusterMeta],
    geometry: &MapGeometry,
    channels: &[String],
    opts: &EvalOptions,
) -> Result<Evaluation> {
    let start = Instant::now();
    let d = check_shapes(truth, samples, shape, meta, geometry, channels)?;
    check_options(opts, channels)?;
    check_meta(meta)?;
    check_values(truth, samples, d, meta, channels, opts.log_floors.is_none())?;
    let mut notes = Vec::new();

    let grid_half = 0.5 * geometry.side_kpc;
    let max_r200 = meta.iter().map(|m| m.r200c_kpc).fold(0.0, f64::max);
    let (edges_r200, dropped_r200) = clip_edges(&opts.edges_r200c, max_r200, grid_half)?;
    let (edges_kpc, dropped_kpc) = clip_edges(&opts.edges_kpc, 1.0, grid_half)?;
    for (unit, dropped) in [("R200c", &dropped_r200), ("kpc", &dropped_kpc)] {
        if !dropped.is_empty() {
            notes.push(format!(
                "radial edges {dropped:?} ({unit}) dropped: their annuli leave the map (half side {grid_half} kpc, \
                 largest R200c {max_r200:.0} kpc)"
            ));
        }
    }
    let outside = meta.iter().filter(|m| m.r200c_kpc > grid_half).count();
    if outside > 0 {
        notes.push(format!(
            "{outside} cluster(s) have R200c beyond the half side ({grid_half} kpc): their R200c aperture masses \
             cover only the part of the disk inside the map"
        ));
    }
    let kpc_weights = AnnulusWeights::new(geometry, &edges_kpc)?;
    let kbins = SpectrumBins::new(geometry)?;
    let shared = Shared {
        d,
        geometry,
        edges_r200: &edges_r200,
        kpc_weights: &kpc_weights,
        kbins: &kbins,
        floors: opts.log_floors.as_deref(),
        levels: &opts.levels,
        thin: opts.rank_thin,
        zones_r200: &opts.pixel_zones_r200c,
    };

    let outs: Vec<ClusterOut> = (0..d.n)
        .into_par_iter()
        .map_init(
            || Fft2::new(d.side),
            |fft, i| cluster_pass(&shared, fft, i, &meta[i], truth, samples),
        )
        .collect::<Result<_>>()?;

    let groups = make_groups(meta, &mut notes);
    let s = d.s;
    let p200: Vec<&[f64]> = outs.iter().map(|o| o.prof_r200.as_slice()).collect();
    let pkpc: Vec<&[f64]> = outs.iter().map(|o| o.prof_kpc.as_slice()).collect();
    let nb200 = edges_r200.len() - 1;
    let profiles_r200c = profile_report(
        "R200c",
        edges_r200,
        dropped_r200,
        &p200,
        &groups,
        channels,
        s,
        opts,
        &mut notes,
    )?;
    let profiles_kpc = profile_report(
        "kpc",
        edges_kpc,
        dropped_kpc,
        &pkpc,
        &groups,
        channels,
        s,
        opts,
        &mut notes,
    )?;
    let spectra = SpectraReport {
        rows: spectra_rows(&outs, &groups, channels, meta, s, kbins.len())?,
        bins: kbins,
    };
    let apertures = aperture_rows(&outs, &groups, channels, meta, s, &opts.levels)?;
    let pixels = pixel_rows(
        &outs,
        &groups,
        channels,
        d,
        &opts.levels,
        &opts.pixel_zones_r200c,
    );
    let profile_calibration = profile_cal_rows(&p200, &groups, channels, s, nb200, &opts.levels);
    let per_cluster = collect_per_cluster(&outs, meta, d);

    Ok(Evaluation {
        schema: SCHEMA.into(),
        n_clusters: d.n,
        n_samples: s,
        channels: channels.to_vec(),
        geometry: geometry.clone(),
        options: opts.clone(),
        groups,
        profiles_r200c,
        profiles_kpc,
        spectra,
        apertures,
        pixels,
        profile_calibration,
        notes,
        seconds: start.elapsed().as_secs_f64(),
        per_cluster,
    })
}

/// Splits `[m][c][b]` per-cluster arrays into truth `[N, C, B]` and samples `[N, S, C, B]`.
fn split_truth_samples(
    parts: impl Iterator<Item = Vec<f64>>,
    per_map: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut t, mut s) = (Vec::new(), Vec::new());
    for p in parts {
        t.extend_from_slice(&p[..per_map]);
        s.extend_from_slice(&p[per_map..]);
    }
    (t, s)
}

fn collect_per_cluster(outs: &[ClusterOut], meta: &[ClusterMeta], d: Dims) -> PerCluster {
    let first = &outs[0];
    let per_map = |len: usize| len / (d.s + 1);
    let (prt, prs) = split_truth_samples(
        outs.iter().map(|o| o.prof_r200.clone()),
        per_map(first.prof_r200.len()),
    );
    let (pkt, pks) = split_truth_samples(
        outs.iter().map(|o| o.prof_kpc.clone()),
        per_map(first.prof_kpc.len()),
    );
    let (pt, ps) = split_truth_samples(
        outs.iter().map(|o| o.power.clone()),
        per_map(first.power.len()),
    );
    let (at, asm) = split_truth_samples(
        outs.iter().map(|o| o.aper.clone()),
        per_map(first.aper.len()),
    );
    PerCluster {
        profiles_r200c_truth: prt,
        profiles_r200c_samples: prs,
        profiles_kpc_truth: pkt,
        profiles_kpc_samples: pks,
        power_truth: pt,
        power_samples: ps,
        cross: outs.iter().flat_map(|o| o.cross.iter().copied()).collect(),
        power_mean_map: outs
            .iter()
            .flat_map(|o| o.power_mean.iter().copied())
            .collect(),
        cross_mean_map: outs
            .iter()
            .flat_map(|o| o.cross_mean.iter().copied())
            .collect(),
        aperture_radii_kpc: meta
            .iter()
            .flat_map(|m| [m.r500c_kpc, m.r200c_kpc])
            .collect(),
        apertures_truth: at,
        apertures_samples: asm,
    }
}
