//! The evaluation figures of [`crate::metrics::Evaluation`] (paper §5 and beyond): radial profiles per mass bin
//! with their fractional errors, power spectra with b(k) and r(k), aperture masses, and posterior calibration
//! (coverage and rank histograms). Drawn by `clustermaps reproduce` and notebook 04; each function takes the
//! evaluation only, so the figures of a committed `metrics/evaluation.json` run can be redrawn exactly.

use super::figure::Figure;
use super::lines::{line_figure, Axis, LineFigure, LinePanel, RefLine, Series, SubPanel};
use super::posterior::target_name;
use super::style::{self, mass_bin_color, INK};
use super::Corner;
use crate::metrics::{Evaluation, GroupInfo, RowKey, PAPER_THRESHOLDS};
use crate::{Error, Result};

/// Every evaluation figure, named `04_*`.
pub fn all(ev: &Evaluation) -> Result<Vec<Figure>> {
    Ok(vec![
        profiles(ev)?,
        power_spectra(ev)?,
        aperture_masses(ev)?,
        calibration(ev)?,
        calibration_by_radius(ev)?,
        rank_histograms(ev)?,
    ])
}

/// The mass-bin groups present, lightest first.
fn bins(ev: &Evaluation) -> Vec<&GroupInfo> {
    ev.groups.iter().filter(|g| g.mass_bin.is_some()).collect()
}

/// Markup label of a mass-bin group: its log M range and cluster count.
fn bin_label(g: &GroupInfo) -> String {
    format!(
        "log_{{10}} M_{{200c}} ∈ [{:.2}, {:.2}), n = {}",
        g.log10_m200c[0], g.log10_m200c[1], g.n_clusters
    )
}

fn bin_color(g: &GroupInfo) -> super::RGBColor {
    mass_bin_color(g.mass_bin.unwrap_or(0) as usize)
}

/// The row of `rows` for `group` and `channel` (and passing `also`), or an error naming what is missing.
fn find_row<'a, T>(
    rows: &'a [T],
    key: impl Fn(&T) -> &RowKey,
    also: impl Fn(&T) -> bool,
    what: &str,
    group: &str,
    channel: &str,
) -> Result<&'a T> {
    rows.iter()
        .find(|r| key(r).group == group && key(r).channel == channel && also(r))
        .ok_or_else(|| {
            Error::Config(format!(
                "evaluation has no {what} row for group '{group}', channel '{channel}'"
            ))
        })
}

fn any<T>(_: &T) -> bool {
    true
}

fn sub(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Radial profiles in R/R200c: one panel per (channel, mass bin): the true mean profile with its 16–84 % band over
/// clusters, the posterior samples' mean with theirs, and two panels below: the fractional error of the mean
/// (±5 % shaded, the paper's claim) and of the spread over clusters (±10 % shaded), each with its bootstrap
/// standard error.
pub fn profiles(ev: &Evaluation) -> Result<Figure> {
    let rep = &ev.profiles_r200c;
    let x = &rep.centres;
    let groups = bins(ev);
    // Owned data first (the series borrow it).
    struct PanelData {
        truth: Vec<f64>,
        t_lo: Vec<f64>,
        t_hi: Vec<f64>,
        pred: Vec<f64>,
        p_lo: Vec<f64>,
        p_hi: Vec<f64>,
        fm: Vec<f64>,
        fm_lo: Vec<f64>,
        fm_hi: Vec<f64>,
        fs: Vec<f64>,
        fs_lo: Vec<f64>,
        fs_hi: Vec<f64>,
    }
    let mut data = Vec::new();
    for ch in &ev.channels {
        for g in &groups {
            let r = find_row(&rep.rows, |r| &r.key, any, "profile", &g.label, ch)?;
            data.push(PanelData {
                truth: r.truth.mean.clone(),
                t_lo: r.truth.p16.clone(),
                t_hi: r.truth.p84.clone(),
                pred: r.samples.mean.clone(),
                p_lo: r.samples.p16.clone(),
                p_hi: r.samples.p84.clone(),
                fm: r.frac_mean.clone(),
                fm_lo: sub(&r.frac_mean, &r.frac_mean_err),
                fm_hi: add(&r.frac_mean, &r.frac_mean_err),
                fs: r.frac_std.clone(),
                fs_lo: sub(&r.frac_std, &r.frac_std_err),
                fs_hi: add(&r.frac_std, &r.frac_std_err),
            });
        }
    }
    let [lo, hi] = ev.options.claim_range_r200c;
    let mut panels = Vec::new();
    for (ci, _) in ev.channels.iter().enumerate() {
        let name = target_name(ci);
        for (gi, g) in groups.iter().enumerate() {
            let d = &data[ci * groups.len() + gi];
            let c = bin_color(g);
            let mut p = LinePanel::new(
                Axis::log("R / R_{200c}"),
                Axis::log(&format!("Σ_{{{name}}} [M_⊙ kpc^{{-2}}]")),
            );
            p.title = Some(format!("Σ_{{{name}}}, {}", bin_label(g)));
            p.series = vec![
                Series::new(x, &d.truth, INK)
                    .label("truth")
                    .band(&d.t_lo, &d.t_hi),
                Series::new(x, &d.pred, c)
                    .dashed()
                    .label("posterior samples")
                    .band(&d.p_lo, &d.p_hi),
            ];
            p.vlines = vec![RefLine::at(lo), RefLine::at(hi)];
            p.legend = Some(Corner::LowerLeft);
            let mut mean_err = SubPanel::relative(
                "Δ⟨Σ⟩/⟨Σ⟩",
                vec![Series::new(x, &d.fm, c).band(&d.fm_lo, &d.fm_hi)],
                PAPER_THRESHOLDS.profile_mean,
            );
            mean_err.y = mean_err.y.range(-0.2, 0.2);
            let mut std_err = SubPanel::relative(
                "Δσ/σ",
                vec![Series::new(x, &d.fs, c).band(&d.fs_lo, &d.fs_hi)],
                PAPER_THRESHOLDS.profile_std,
            );
            std_err.y = std_err.y.range(-0.5, 0.5);
            p.below = vec![mean_err, std_err];
            panels.push(p);
        }
    }
    let mut f = line_figure(&LineFigure {
        title: Some(format!(
            "Radial profiles: mean and 16–84 % over clusters ({} samples each); grey: ±5 % (mean), ±10 % (spread)",
            ev.n_samples
        )),
        cols: groups.len().max(1),
        panels,
    })?;
    f.rename("04_profiles");
    Ok(f)
}

/// Power spectra per channel: P(k) of the truth (solid) and of the samples (dashed) per mass bin, with b(k) and
/// r(k) (mean over cluster–sample pairs ± its standard error) below; the dotted line marks k_Nyq/2, below which
/// the paper's |b − 1|, |1 − r| ≤ 0.05 claim is judged.
pub fn power_spectra(ev: &Evaluation) -> Result<Figure> {
    let sp = &ev.spectra;
    let k = &sp.bins.k_eff;
    let groups = bins(ev);
    struct Row {
        truth: Vec<f64>,
        pred: Vec<f64>,
        b: Vec<f64>,
        b_lo: Vec<f64>,
        b_hi: Vec<f64>,
        r: Vec<f64>,
        r_lo: Vec<f64>,
        r_hi: Vec<f64>,
        r_ss: Vec<f64>,
    }
    let mut data = Vec::new();
    for ch in &ev.channels {
        for g in &groups {
            let r = find_row(&sp.rows, |r| &r.key, any, "spectra", &g.label, ch)?;
            data.push(Row {
                truth: r.truth.mean.clone(),
                pred: r.samples.mean.clone(),
                b: r.bias.mean.clone(),
                b_lo: sub(&r.bias.mean, &r.bias_sem),
                b_hi: add(&r.bias.mean, &r.bias_sem),
                r: r.corr.mean.clone(),
                r_lo: sub(&r.corr.mean, &r.corr_sem),
                r_hi: add(&r.corr.mean, &r.corr_sem),
                r_ss: r.corr_sample_sample.mean.clone(),
            });
        }
    }
    let tol = PAPER_THRESHOLDS.bias;
    let mut panels = Vec::new();
    for (ci, _) in ev.channels.iter().enumerate() {
        let name = target_name(ci);
        let mut p = LinePanel::new(
            Axis::log("k [rad Mpc^{-1}]"),
            Axis::log(&format!("P_{{{name}}}(k) [(M_⊙ kpc^{{-2}})^2 Mpc^2]")),
        );
        p.title = Some(format!("Σ_{{{name}}}"));
        let mut b_series = Vec::new();
        let mut r_series = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            let d = &data[ci * groups.len() + gi];
            let c = bin_color(g);
            p.series.push(Series::new(k, &d.truth, c).label(&format!(
                "bin {}: {:.2}–{:.2}",
                g.mass_bin.unwrap_or(0),
                g.log10_m200c[0],
                g.log10_m200c[1]
            )));
            p.series.push(Series::new(k, &d.pred, c).dashed());
            b_series.push(Series::new(k, &d.b, c).band(&d.b_lo, &d.b_hi));
            r_series.push(Series::new(k, &d.r, c).band(&d.r_lo, &d.r_hi));
            // Between two samples: equal to the sample–truth r(k) for an honest posterior.
            r_series.push(Series::new(k, &d.r_ss, c).dashed());
        }
        p.series.push(Series::new(&[], &[], INK).label("truth"));
        p.series.push(
            Series::new(&[], &[], INK)
                .dashed()
                .label("samples (r: sample–sample)"),
        );
        p.vlines = vec![RefLine::labelled(0.5 * sp.bins.k_nyquist, "k_{Nyq}/2")];
        p.legend = Some(Corner::LowerLeft);
        let mut b = SubPanel::new(Axis::linear("b(k)").range(0.5, 1.5));
        b.series = b_series;
        b.hlines = vec![RefLine::at(1.0)];
        b.shade_y = Some((1.0 - tol, 1.0 + tol));
        let mut r = SubPanel::new(Axis::linear("r(k)").range(0.0, 1.1));
        r.series = r_series;
        r.hlines = vec![RefLine::at(1.0)];
        r.shade_y = Some((1.0 - tol, 1.0));
        p.below = vec![b, r];
        panels.push(p);
    }
    let mut f = line_figure(&LineFigure {
        title: Some(
            "Power spectra per mass bin, b(k) = (P_{pred}/P_{true})^{1/2}, r(k) = P_{×}/(P_{pred}P_{true})^{1/2}"
                .into(),
        ),
        cols: ev.channels.len().max(1),
        panels,
    })?;
    f.rename("04_power_spectra");
    Ok(f)
}

/// Relative error of the projected mass within R500c and R200c per mass bin: mean over cluster–sample pairs with
/// the 16–84 % range, and the posterior-mean map's mean error.
pub fn aperture_masses(ev: &Evaluation) -> Result<Figure> {
    let groups = bins(ev);
    let x: Vec<f64> = groups
        .iter()
        .map(|g| 0.5 * (g.log10_m200c[0] + g.log10_m200c[1]))
        .collect();
    let apertures = ["R500c", "R200c"];
    struct Ap {
        mean: Vec<f64>,
        lo: Vec<f64>,
        hi: Vec<f64>,
        mean_map: Vec<f64>,
    }
    let mut data = Vec::new();
    for ch in &ev.channels {
        for ap in apertures {
            let mut d = Ap {
                mean: vec![],
                lo: vec![],
                hi: vec![],
                mean_map: vec![],
            };
            for g in &groups {
                let r = find_row(
                    &ev.apertures,
                    |r| &r.key,
                    |r| r.aperture == ap,
                    "aperture",
                    &g.label,
                    ch,
                )?;
                d.mean.push(r.rel_err.mean);
                d.lo.push(r.rel_err.p16);
                d.hi.push(r.rel_err.p84);
                d.mean_map.push(r.rel_err_mean_map.mean);
            }
            data.push(d);
        }
    }
    let mut panels = Vec::new();
    for (ci, _) in ev.channels.iter().enumerate() {
        let name = target_name(ci);
        let mut p = LinePanel::new(
            Axis::linear("log_{10} M_{200c} [M_⊙] (bin centre)"),
            Axis::linear(&format!("ΔM_{{{name}}} / M_{{{name}}}")),
        );
        p.title = Some(format!(
            "Projected {name} mass within R_{{500c}} and R_{{200c}}"
        ));
        for (ai, ap) in apertures.iter().enumerate() {
            let d = &data[ci * apertures.len() + ai];
            let c = style::series_color(ai);
            p.series.push(
                Series::new(&x, &d.mean, c)
                    .points()
                    .label(&format!("samples, < {ap}"))
                    .band(&d.lo, &d.hi),
            );
            p.series.push(
                Series::new(&x, &d.mean_map, c)
                    .dashed()
                    .label(&format!("posterior mean, < {ap}")),
            );
        }
        p.hlines = vec![RefLine::at(0.0)];
        p.shade_y = Some((
            -PAPER_THRESHOLDS.profile_mean,
            PAPER_THRESHOLDS.profile_mean,
        ));
        panels.push(p);
    }
    let mut f = line_figure(&LineFigure {
        title: Some(
            "Aperture masses: mean relative error and 16–84 % over cluster–sample pairs".into(),
        ),
        cols: ev.channels.len().max(1),
        panels,
    })?;
    f.rename("04_aperture_mass");
    Ok(f)
}

/// Coverage of the central posterior intervals against their nominal probability, per channel: pixels per mass
/// bin, radial-profile bins and aperture masses over all clusters. On the diagonal the posterior is calibrated;
/// below it, over-confident.
pub fn calibration(ev: &Evaluation) -> Result<Figure> {
    let groups = bins(ev);
    let levels = &ev.options.levels;
    let diag = [0.0, 1.0];
    let mut data: Vec<(String, super::RGBColor, bool, Vec<f64>)> = Vec::new();
    let mut per_channel = Vec::new();
    for ch in &ev.channels {
        let start = data.len();
        for g in &groups {
            let r = find_row(&ev.pixels, |r| &r.key, any, "pixel", &g.label, ch)?;
            data.push((
                format!("pixels, bin {}", g.mass_bin.unwrap_or(0)),
                bin_color(g),
                false,
                r.calibration.coverage.clone(),
            ));
        }
        if let Ok(r) = find_row(&ev.profile_calibration, |r| &r.key, any, "", "all", ch) {
            data.push((
                "profile bins, all".into(),
                INK,
                true,
                r.pooled.coverage.clone(),
            ));
        }
        for (i, ap) in ["R500c", "R200c"].iter().enumerate() {
            if let Ok(r) = find_row(
                &ev.apertures,
                |r| &r.key,
                |r| r.aperture == *ap,
                "",
                "all",
                ch,
            ) {
                data.push((
                    format!("M(< {ap}), all"),
                    style::series_color(4 + i),
                    true,
                    r.calibration.coverage.clone(),
                ));
            }
        }
        per_channel.push(start..data.len());
    }
    let mut panels = Vec::new();
    for (ci, range) in per_channel.into_iter().enumerate() {
        let name = target_name(ci);
        let mut p = LinePanel::new(
            Axis::linear("nominal central-interval probability").range(0.0, 1.0),
            Axis::linear("empirical coverage").range(0.0, 1.0),
        );
        p.title = Some(format!("Σ_{{{name}}}"));
        p.series.push(
            Series::new(&diag, &diag, style::GREY)
                .dashed()
                .label("calibrated"),
        );
        for (label, c, dashed, cov) in &data[range] {
            let s = Series::new(levels, cov, *c).points().label(label);
            p.series.push(if *dashed { s.dashed() } else { s });
        }
        p.legend = Some(Corner::UpperLeft);
        panels.push(p);
    }
    let mut f = line_figure(&LineFigure {
        title: Some(format!(
            "Posterior calibration ({} samples per cluster): coverage of central intervals",
            ev.n_samples
        )),
        cols: ev.channels.len().max(1),
        panels,
    })?;
    f.rename("04_calibration");
    Ok(f)
}

/// Pixel coverage per radial zone (in R/R200c, over all clusters): the empirical coverage of the 50, 68 and 90 %
/// central intervals against radius, with the nominal values as reference lines. Over-confidence is rarely
/// uniform: the core, where the inputs are bright, can be calibrated while the outskirts, most of the pixels, are
/// not.
pub fn calibration_by_radius(ev: &Evaluation) -> Result<Figure> {
    let wanted = [0.5, 0.68, 0.9];
    let levels: Vec<usize> = wanted
        .iter()
        .filter_map(|p| ev.options.levels.iter().position(|q| (q - p).abs() < 1e-9))
        .collect();
    let mut data = Vec::new();
    for ch in &ev.channels {
        let r = find_row(&ev.pixels, |r| &r.key, any, "pixel", "all", ch)?;
        let e = &r.zone_edges_r200c;
        // A representative radius per zone: geometric midpoints, half the first edge for the core and twice the last
        // edge for the outskirts.
        let mut x = Vec::with_capacity(e.len() + 1);
        if let (Some(first), Some(last)) = (e.first(), e.last()) {
            x.push(0.5 * first);
            x.extend(e.windows(2).map(|w| (w[0] * w[1]).sqrt()));
            x.push(2.0 * last);
        }
        let cov: Vec<Vec<f64>> = levels
            .iter()
            .map(|&l| r.coverage_per_zone.iter().map(|z| z[l]).collect())
            .collect();
        data.push((x, cov, r.pixel_share_per_zone.clone()));
    }
    let mut panels = Vec::new();
    for (ci, (x, cov, share)) in data.iter().enumerate() {
        let name = target_name(ci);
        let mut p = LinePanel::new(
            Axis::log("R / R_{200c} (zone)"),
            Axis::linear("pixel coverage").range(0.0, 1.0),
        );
        p.title = Some(format!(
            "Σ_{{{name}}}: pixel shares {}",
            share
                .iter()
                .map(|s| format!("{:.0}%", 100.0 * s))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for (j, &l) in levels.iter().enumerate() {
            let nominal = ev.options.levels[l];
            p.series.push(
                Series::new(x, &cov[j], style::series_color(j))
                    .points()
                    .label(&format!("{:.0} % interval", 100.0 * nominal)),
            );
            p.hlines.push(RefLine::at(nominal));
        }
        p.legend = Some(Corner::LowerLeft);
        panels.push(p);
    }
    let mut f = line_figure(&LineFigure {
        title: Some(format!(
            "Pixel coverage by radius ({} clusters, {} samples each); lines: nominal",
            ev.n_clusters, ev.n_samples
        )),
        cols: ev.channels.len().max(1),
        panels,
    })?;
    f.rename("04_calibration_radius");
    Ok(f)
}

/// Rank histograms of the truth among the S samples (pixels thinned, per mass bin; profile bins over all clusters),
/// as frequency relative to uniform: flat at 1 when calibrated, ∪-shaped when over-confident, ∩-shaped when
/// over-dispersed, sloped when biased.
pub fn rank_histograms(ev: &Evaluation) -> Result<Figure> {
    let groups = bins(ev);
    let ranks: Vec<f64> = (0..=ev.n_samples).map(|r| r as f64).collect();
    let relative = |counts: &[f64], n: f64| -> Vec<f64> {
        let e = n / counts.len().max(1) as f64;
        counts.iter().map(|c| c / e.max(1e-300)).collect()
    };
    let mut data: Vec<(String, super::RGBColor, bool, Vec<f64>)> = Vec::new();
    let mut per_channel = Vec::new();
    for ch in &ev.channels {
        let start = data.len();
        for g in &groups {
            let r = find_row(&ev.pixels, |r| &r.key, any, "pixel", &g.label, ch)?;
            let h = &r.calibration.ranks;
            data.push((
                format!(
                    "pixels, bin {} (χ²/dof {:.1})",
                    g.mass_bin.unwrap_or(0),
                    h.chi2_per_dof
                ),
                bin_color(g),
                false,
                relative(&h.counts, h.n),
            ));
        }
        if let Ok(r) = find_row(&ev.profile_calibration, |r| &r.key, any, "", "all", ch) {
            let h = &r.pooled.ranks;
            data.push((
                format!("profile bins, all (χ²/dof {:.1})", h.chi2_per_dof),
                INK,
                true,
                relative(&h.counts, h.n),
            ));
        }
        per_channel.push(start..data.len());
    }
    let mut panels = Vec::new();
    for (ci, range) in per_channel.into_iter().enumerate() {
        let name = target_name(ci);
        let mut p = LinePanel::new(
            Axis::linear("rank of the truth among the samples"),
            Axis::linear("frequency / uniform"),
        );
        p.title = Some(format!("Σ_{{{name}}}"));
        for (label, c, dashed, rel) in &data[range] {
            let s = Series::new(&ranks, rel, *c).points().label(label);
            p.series.push(if *dashed { s.dashed() } else { s });
        }
        p.hlines = vec![RefLine::labelled(1.0, "uniform")];
        p.legend = Some(Corner::UpperRight);
        panels.push(p);
    }
    let mut f = line_figure(&LineFigure {
        title: Some(format!(
            "Rank histograms ({} samples per cluster; pixels thinned to every {}th)",
            ev.n_samples, ev.options.rank_thin
        )),
        cols: ev.channels.len().max(1),
        panels,
    })?;
    f.rename("04_rank_histograms");
    Ok(f)
}
