//! `clustermaps compare`: the fixed evaluation that decides whether a newly trained checkpoint replaces the shipped
//! one, and which sampler to use. Every (checkpoint, sampler) pair is evaluated by [`crate::reproduce::reproduce`]
//! on the same test clusters with the same seed, and summarised by one score.
//!
//! **The score** is the mean, over the claims rows (all clusters and each mass bin, gas and DM) and over eight
//! columns, of `value / target`: the four claims of the paper (profile mean and spread errors, |b − 1| and |1 − r|
//! at low k) and the four calibration targets (|r_sample-truth − r_sample-sample| and the largest coverage error of
//! pixels, profile bins and aperture masses). 1 means "at the target" on average; lower is better. Each column is
//! capped at 10 so that one hopeless number (a 300 % spread error in a bin of three clusters) cannot hide every
//! other change. Beside it, the number of (row, column) targets met.
//!
//! Why one number: the shipped weights must change only when the evaluation improves, and "improves" has to be
//! decided the same way every time. The per-column table is printed too, so a reader sees what moved.
//!
//! **Incremental.** Each finished run is recorded in `out/compare.json` at once (atomically), with the SHA-256 of
//! its checkpoint file and the protocol. A later `compare` into the same directory reuses every recorded run whose
//! checkpoint bytes, sampler, clusters, samples and seed are the same, so a comparison killed half-way resumes, and
//! the shipped model's evaluation is computed once for the whole campaign — not once per candidate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::{read_bytes, read_text, sha256_hex, write_atomic};
use crate::metrics::{ClaimRow, Claims};
use crate::plot::{self, Axis, LineFigure, LinePanel, Series};
use crate::reproduce::{reproduce, Mode, ReproduceOptions};
use crate::sample::SamplerChoice;
use crate::{Error, Result};

/// File of the recorded runs in a comparison's output directory.
pub const COMPARE_JSON: &str = "compare.json";

/// Cap of one column's `value / target` in the score.
pub const SCORE_CAP: f64 = 10.0;

/// The fixed evaluation: test clusters `0..clusters`, `samples` per cluster, each sampler, seed 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    pub clusters: usize,
    pub samples: usize,
    pub samplers: Vec<SamplerChoice>,
    pub seed: u64,
}

impl Default for Protocol {
    /// 48 test clusters × 4 samples, Heun N = 18 (NFE 35): about 10 minutes per checkpoint on 2 idle CPU cores.
    fn default() -> Self {
        Protocol {
            clusters: 48,
            samples: 4,
            samplers: vec![SamplerChoice::heun(18)],
            seed: 0,
        }
    }
}

/// The eight judged columns of a claims row as (name, value, target).
pub fn judged(row: &ClaimRow, claims: &Claims) -> [(&'static str, f64, f64); 8] {
    let t = &claims.thresholds;
    let c = &claims.calibration_targets;
    [
        ("profile mean", row.profile_mean_max_abs, t.profile_mean),
        ("profile spread", row.profile_std_max_abs, t.profile_std),
        ("abs(b−1) low k", row.bias_low_k, t.bias),
        ("abs(1−r) low k", row.corr_low_k, t.corr),
        ("abs(r_st−r_ss)", row.corr_gap_low_k, c.corr_gap),
        (
            "pixel coverage",
            row.coverage_pixels.max_abs_error,
            c.coverage,
        ),
        (
            "profile coverage",
            row.coverage_profiles.max_abs_error,
            c.coverage,
        ),
        (
            "aperture coverage",
            row.coverage_apertures.max_abs_error,
            c.coverage,
        ),
    ]
}

/// One (checkpoint, sampler) result under the protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scored {
    pub checkpoint: PathBuf,
    /// SHA-256 of the checkpoint file when it was evaluated (empty in records older than this field: never reused).
    #[serde(default)]
    pub checkpoint_sha256: String,
    /// The protocol's test clusters and seed (`n_samples` below is its samples per cluster).
    #[serde(default)]
    pub clusters: usize,
    #[serde(default)]
    pub seed: u64,
    pub step: u64,
    /// The sampler as `compare --sampler` writes it, its full name and network evaluations per sample.
    pub sampler: String,
    pub sampler_name: String,
    pub nfe: usize,
    pub n_samples: usize,
    pub sample_seconds: f64,
    /// Mean capped `value / target` (module docs); lower is better.
    pub score: f64,
    /// Judged (row, column) entries within their target, and their number.
    pub met: usize,
    pub judged: usize,
    pub claims: Claims,
}

/// The score of a set of claims: (mean capped value/target, targets met, entries judged).
pub fn score(claims: &Claims) -> (f64, usize, usize) {
    let (mut sum, mut met, mut n) = (0.0, 0, 0);
    for row in &claims.rows {
        for (_, v, target) in judged(row, claims) {
            let ratio = if v.is_finite() {
                (v / target).min(SCORE_CAP)
            } else {
                SCORE_CAP
            };
            sum += ratio;
            met += usize::from(v <= target);
            n += 1;
        }
    }
    (sum / n.max(1) as f64, met, n)
}

/// Evaluates each checkpoint with each sampler of `protocol` on `device`, writing each run's figures and metrics
/// under `out/<i>-<file stem>-<sampler>/` and recording it in `out/compare.json` as soon as it is done. Runs already
/// recorded there under the same protocol for the same checkpoint bytes are reused (module docs), unless `rerun`.
/// Returns the requested runs in order: checkpoints outer, samplers inner.
pub fn compare(
    checkpoints: &[PathBuf],
    protocol: &Protocol,
    device: &str,
    out: &Path,
    rerun: bool,
    mut log: impl FnMut(&str),
) -> Result<Vec<Scored>> {
    if checkpoints.is_empty() || protocol.samplers.is_empty() {
        return Err(Error::Config(
            "compare needs at least one checkpoint and one sampler".into(),
        ));
    }
    // Hashed up front: a missing checkpoint fails before any sampling, and a file replaced while the comparison
    // runs cannot be credited with the old file's results.
    let hashes = checkpoints
        .iter()
        .map(|c| read_bytes(c).map(|b| sha256_hex(&b)))
        .collect::<Result<Vec<_>>>()?;
    let mut recorded = read_recorded(out)?;
    let runs: Vec<(usize, &SamplerChoice)> = (0..checkpoints.len())
        .flat_map(|c| protocol.samplers.iter().map(move |s| (c, s)))
        .collect();
    let mut scored = Vec::new();
    for (i, &(ci, sampler)) in runs.iter().enumerate() {
        let (ck, sha) = (&checkpoints[ci], &hashes[ci]);
        let label = format!("{} with {sampler} ({}/{})", ck.display(), i + 1, runs.len());
        let same = |r: &Scored| {
            r.checkpoint_sha256 == *sha
                && r.sampler == sampler.to_string()
                && r.clusters == protocol.clusters
                && r.n_samples == protocol.samples
                && r.seed == protocol.seed
        };
        if let Some(r) = recorded.iter().find(|r| same(r)).filter(|_| !rerun) {
            log(&format!(
                "== {label}: reused from {} (same checkpoint bytes and protocol)",
                out.join(COMPARE_JSON).display()
            ));
            scored.push(Scored {
                checkpoint: ck.clone(),
                ..r.clone()
            });
            continue;
        }
        log(&format!("== {label}"));
        let opts = ReproduceOptions {
            checkpoint: ck.clone(),
            out: Some(out.join(run_dir_name(i, ck, sampler))),
            device: device.to_string(),
            clusters: Some(protocol.clusters),
            samples: Some(protocol.samples),
            sampler: Some(sampler.kind),
            steps: sampler.steps,
            churn: sampler.churn,
            seed: protocol.seed,
            ..ReproduceOptions::new(Mode::Full)
        };
        let r = reproduce(&opts, &mut log)?;
        let (s, met, n) = score(&r.claims);
        let run = Scored {
            checkpoint: ck.clone(),
            checkpoint_sha256: sha.clone(),
            clusters: protocol.clusters,
            seed: protocol.seed,
            step: r.posterior.step,
            sampler: sampler.to_string(),
            sampler_name: r.posterior.sampler.clone(),
            nfe: r.posterior.nfe,
            n_samples: protocol.samples,
            sample_seconds: r.timings.sample_s,
            score: s,
            met,
            judged: n,
            claims: r.claims,
        };
        recorded.retain(|r| !same(r));
        recorded.push(run.clone());
        write_recorded(out, &recorded)?;
        scored.push(run);
    }
    Ok(scored)
}

/// Directory of one run: `<i>-<checkpoint stem>-<sampler with punctuation as _>`.
fn run_dir_name(i: usize, checkpoint: &Path, sampler: &SamplerChoice) -> String {
    let stem = checkpoint
        .file_stem()
        .map_or_else(|| "checkpoint".into(), |s| s.to_string_lossy().into_owned());
    let tag: String = sampler
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{i}-{stem}-{tag}")
}

/// The runs recorded in `out/compare.json` (none if the file does not exist yet).
pub fn read_recorded(out: &Path) -> Result<Vec<Scored>> {
    let path = out.join(COMPARE_JSON);
    if !path.exists() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&read_text(&path)?).map_err(|e| {
        Error::Config(format!(
            "{}: not a comparison record ({e}); move it away or choose another --out",
            path.display()
        ))
    })
}

fn write_recorded(out: &Path, runs: &[Scored]) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let json = serde_json::to_string_pretty(runs)
        .map_err(|e| Error::Config(format!("{COMPARE_JSON}: {e}")))?;
    write_atomic(&out.join(COMPARE_JSON), json.as_bytes())
}

/// The comparison as Markdown: the protocol, one line per checkpoint with its score, then every judged column of
/// the `all` rows side by side.
pub fn compare_markdown(scored: &[Scored], protocol: &Protocol) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Fixed evaluation: test clusters 0..{}, {} samples each, seed {}. Score: mean over claims rows and the eight \
         judged columns of value/target, each capped at {SCORE_CAP} (lower is better; 1 = at target).\n",
        protocol.clusters, protocol.samples, protocol.seed
    );
    let _ = writeln!(
        s,
        "| # | checkpoint | step | sampler | NFE | sampling s | score | targets met |\n|---|---|---|---|---|---|---|---|"
    );
    for (i, c) in scored.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {i} | {} | {} | {} | {} | {:.0} | {:.3} | {}/{} |",
            c.checkpoint.display(),
            c.step,
            c.sampler,
            c.nfe,
            c.sample_seconds,
            c.score,
            c.met,
            c.judged
        );
    }
    let Some(first) = scored.first() else {
        return s;
    };
    let _ = write!(s, "\n| all clusters | target |");
    for i in 0..scored.len() {
        let _ = write!(s, " #{i} |");
    }
    let _ = writeln!(s, "\n|---|---|{}", "---|".repeat(scored.len()));
    for (ri, row) in first.claims.rows.iter().enumerate() {
        if row.key.mass_bin.is_some() {
            continue;
        }
        for (ci, (name, _, target)) in judged(row, &first.claims).into_iter().enumerate() {
            let _ = write!(s, "| {} {name} | {target} |", row.key.channel);
            for c in scored {
                let r = &c.claims.rows[ri];
                let _ = write!(s, " {:.4} |", judged(r, &c.claims)[ci].1);
            }
            let _ = writeln!(s);
        }
    }
    s
}

/// Legend name of a run's sampler family: checkpoint file and sampler kind.
fn family(c: &Scored) -> String {
    let file = c.checkpoint.file_name().map_or_else(
        || c.checkpoint.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    format!("{file}: {}", c.sampler.split(':').next().unwrap_or(""))
}

/// One panel of [`sampler_quality_figure`]: axis label, the value read from a claims row, and the target drawn as a
/// reference line.
type PanelMetric = (&'static str, fn(&ClaimRow) -> f64, Option<f64>);

/// Sampler quality against cost (`05_sampler_quality`): for each checkpoint, four numbers of the all-clusters rows
/// against network evaluations per sample, one colour per sampler family (points joined by increasing NFE), gas and
/// DM side by side: |b − 1| at high k (small-scale power), |r_st − r_ss| at low k (honest correlation), the largest
/// pixel-coverage error and the profile-spread error.
pub fn sampler_quality_figure(scored: &[Scored]) -> Result<plot::Figure> {
    let first = scored
        .first()
        .ok_or_else(|| Error::Config("no runs to plot".into()))?;
    let t = &first.claims.thresholds;
    let c = &first.claims.calibration_targets;
    let metrics: [PanelMetric; 4] = [
        ("mean abs(b−1), high k", |r| r.bias_high_k, None),
        (
            "mean abs(r_{st} − r_{ss}), low k",
            |r| r.corr_gap_low_k,
            Some(c.corr_gap),
        ),
        (
            "max pixel-coverage error",
            |r| r.coverage_pixels.max_abs_error,
            Some(c.coverage),
        ),
        (
            "profile spread error",
            |r| r.profile_std_max_abs,
            Some(t.profile_std),
        ),
    ];
    // Families in order of first appearance, runs of each sorted by NFE.
    let mut families: Vec<String> = Vec::new();
    for c in scored {
        let f = family(c);
        if !families.contains(&f) {
            families.push(f);
        }
    }
    let family_of = |c: &Scored| families.iter().position(|x| *x == family(c)).unwrap_or(0);
    let channels: Vec<(usize, String)> = first
        .claims
        .rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.mass_bin.is_none())
        .map(|(i, r)| (i, r.key.channel.clone()))
        .collect();
    // data[channel][metric][family] = (nfe, value) sorted by nfe.
    let mut data =
        vec![vec![vec![(Vec::new(), Vec::new()); families.len()]; metrics.len()]; channels.len()];
    for (ci, &(ri, _)) in channels.iter().enumerate() {
        for (mi, (_, f, _)) in metrics.iter().enumerate() {
            let mut pts: Vec<(usize, f64, usize)> = scored
                .iter()
                .map(|c| (family_of(c), f(&c.claims.rows[ri]), c.nfe))
                .collect();
            pts.sort_by_key(|p| p.2);
            for (fam, v, n) in pts {
                data[ci][mi][fam].0.push(n as f64);
                data[ci][mi][fam].1.push(v);
            }
        }
    }
    let mut panels = Vec::new();
    for (mi, (name, _, target)) in metrics.iter().enumerate() {
        for (ci, (_, channel)) in channels.iter().enumerate() {
            let mut p = LinePanel::new(Axis::log("NFE per sample"), Axis::log(name));
            let short = channel.strip_prefix("Sigma_").unwrap_or(channel);
            p.title = Some(format!("Σ_{{{short}}}"));
            if let Some(t) = target {
                p.hlines.push(plot::RefLine::labelled(*t, "target"));
            }
            for (fi, fam) in families.iter().enumerate() {
                let (x, y) = &data[ci][mi][fi];
                let mut s = Series::new(x, y, plot::series_color(fi)).points();
                if mi == 0 && ci == 0 {
                    s = s.label(fam);
                }
                p.series.push(s);
            }
            panels.push(p);
        }
    }
    let mut f = plot::line_figure(&LineFigure {
        title: Some(format!(
            "Sampler quality against cost: all {} test clusters, {} samples each",
            first.claims.rows.first().map_or(0, |r| r.key.n_clusters),
            first.n_samples
        )),
        cols: channels.len().max(1) * 2,
        panels,
    })?;
    f.rename("05_sampler_quality");
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{CalibrationTargets, CoverageCheck, RowKey, PAPER_THRESHOLDS};

    fn row(v: f64) -> ClaimRow {
        let cov = CoverageCheck {
            coverage: vec![0.5, 0.68, 0.9],
            max_abs_error: v,
            met: v <= 0.05,
        };
        ClaimRow {
            key: RowKey {
                group: "all".into(),
                mass_bin: None,
                channel: "gas".into(),
                n_clusters: 10,
            },
            profile_mean_max_abs: v,
            profile_std_max_abs: v,
            bias_low_k: v,
            bias_high_k: 0.0,
            corr_low_k: v,
            corr_high_k: 0.0,
            met_profile_mean: false,
            met_profile_std: false,
            met_bias: false,
            met_corr: false,
            met: false,
            corr_sample_sample_low_k: 0.0,
            corr_gap_low_k: v,
            met_corr_gap: false,
            coverage_pixels: cov.clone(),
            coverage_profiles: cov.clone(),
            coverage_apertures: cov,
            pixel_rank_chi2_per_dof: 1.0,
            pixel_rank_edge_ratio: 1.0,
            calibrated: false,
        }
    }

    fn claims(rows: Vec<ClaimRow>) -> Claims {
        Claims {
            thresholds: PAPER_THRESHOLDS,
            range_r200c: [0.1, 1.0],
            n_profile_bins: 10,
            k_split: 1.0,
            rows,
            all_met: false,
            calibration_targets: CalibrationTargets::default(),
            all_calibrated: false,
        }
    }

    #[test]
    fn score_is_mean_capped_ratio_to_target() {
        // Every column at 0.05: profile mean, |b−1|, |1−r|, coverage ×3 at target (ratio 1), spread at half its
        // target (0.5), the r-gap at 2.5× its target.
        let (s, met, n) = score(&claims(vec![row(0.05)]));
        assert_eq!(n, 8);
        assert!((s - (6.0 + 0.5 + 2.5) / 8.0).abs() < 1e-12, "{s}");
        assert_eq!(met, 7);
        // A hopeless row is capped, and NaN counts as the cap.
        let (s, met, _) = score(&claims(vec![row(1e6)]));
        assert_eq!((s, met), (SCORE_CAP, 0));
        let (s, _, _) = score(&claims(vec![row(f64::NAN)]));
        assert_eq!(s, SCORE_CAP);
        // Lower is better.
        assert!(score(&claims(vec![row(0.01)])).0 < score(&claims(vec![row(0.05)])).0);
    }
}
