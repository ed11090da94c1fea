//! The validation rules of docs/mock-clusters.md §7, applied by [`Dataset::open_with`]. Each rule is one function; the
//! first violation is returned as an [`Error`] naming dataset, split, file and value. Pixel rules stream one cluster at
//! a time, so any dataset size validates in bounded memory.

use std::collections::HashMap;
use std::path::Path;

use super::{
    array_shape, close, load_stats, ArrayKind, Dataset, Manifest, OpenOptions, Split, META_FILE,
    STATS_FILE,
};
use crate::data::meta::{read_meta_csv, ClusterMeta, MetaTable};
use crate::data::transform::{norm_stats, ChannelSpec, NormStats, StatsAccumulator};
use crate::io::NpyReader;
use crate::{Error, Result};

/// Relative tolerance of the per-row pixel scale (rule 4).
const PIXEL_SCALE_RTOL: f64 = 1e-4;
/// Fraction of zero target pixels tolerated per channel (rule 6).
const MAX_ZERO_FRACTION: f64 = 0.01;
/// Relative tolerance of stored vs recomputed mean and std (rule 9).
const STATS_RTOL: f64 = 1e-4;
/// Absolute tolerance of stored vs recomputed percentiles (rule 9): a few histogram bins (2⁻¹⁰ each).
const PERCENTILE_ATOL: f64 = 4e-3;

impl Dataset {
    /// Opens `dir` with every check of docs/mock-clusters.md §7 (rules 1–9; plausibility as warnings).
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, &OpenOptions::default())
    }

    /// Opens `dir` with the checks selected by `opts`.
    pub fn open_with(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        open(dir, opts)
    }

    /// The pixel rules of `info --check` (finite values; targets and log10 inputs ≥ 0; targets at most 1 % zeros
    /// per channel) on clusters `first..first + n` of `split`, inputs and targets: for readers of a few clusters of
    /// a dataset opened with [`OpenOptions::STRUCTURE_ONLY`] (sampling). Errors name file, cluster, channel and
    /// pixel, as a full check does.
    pub fn check_rows(&self, split: &str, first: usize, n: usize) -> Result<()> {
        let s = self.split(split)?;
        let ch = &self.manifest.channels;
        let mut arrays = [
            ArrayScan::new(s, ArrayKind::Inputs, &ch.inputs, false)?,
            ArrayScan::new(s, ArrayKind::Targets, &ch.targets, true)?,
        ];
        for a in arrays.iter_mut() {
            a.reader.seek_row(first)?;
        }
        for i in first..first.saturating_add(n) {
            for a in arrays.iter_mut() {
                a.next(i)?;
            }
        }
        for a in arrays {
            a.finish()?;
        }
        Ok(())
    }
}

fn open(dir: &Path, opts: &OpenOptions) -> Result<Dataset> {
    let manifest = Manifest::load(dir)?;
    let mut warnings = Vec::new();
    let mut splits = Vec::with_capacity(manifest.splits.len());
    for info in &manifest.splits {
        splits.push(open_split(
            dir,
            &manifest,
            &info.name,
            info.n_clusters,
            &mut warnings,
        )?);
    }
    check_unique_ids(dir, &splits)?;
    let stored = load_stats(dir)?;
    if let Some(s) = &stored {
        check_stats_channels(dir, &manifest, s)?;
    }

    let need_stats = stored.is_none() || (opts.scan_pixels && !opts.trust_stats);
    let mut recomputed = None;
    let mut findings = Vec::new();
    for split in &splits {
        let want_stats = need_stats && split.name == "train";
        let listed = opts.scan_splits.is_empty() || opts.scan_splits.contains(&split.name.as_str());
        if (opts.scan_pixels && listed) || want_stats {
            let scan = scan_split(dir, &manifest, split, want_stats)?;
            findings.extend(scan.findings);
            if scan.stats.is_some() {
                recomputed = scan.stats;
            }
        }
    }
    let stats = match (stored, recomputed) {
        (Some(s), Some(r)) => {
            compare_stats(dir, &s, &r)?;
            s
        }
        (Some(s), None) => s,
        (None, Some(r)) => {
            warnings.push(format!(
                "{}: {STATS_FILE} absent; statistics recomputed from train (not written)",
                dir.display()
            ));
            r
        }
        (None, None) => unreachable!("statistics are recomputed whenever stats.json is absent"),
    };
    if opts.strict {
        if let Some(f) = findings.first() {
            return Err(Error::invalid(
                dir.display().to_string(),
                format!("{f} (unit plausibility, an error with --strict)"),
            ));
        }
    }
    warnings.extend(findings);
    Ok(Dataset {
        dir: dir.to_path_buf(),
        manifest,
        stats,
        splits,
        warnings,
    })
}

/// Rules 1–4 for one split: files present, headers right, row counts agree, meta rows in order and at the
/// manifest's pixel scale.
fn open_split(
    dir: &Path,
    manifest: &Manifest,
    name: &str,
    declared: usize,
    warnings: &mut Vec<String>,
) -> Result<Split> {
    let split_dir = dir.join(name);
    let ch = &manifest.channels;
    let clean_path = split_dir.join(ArrayKind::InputsClean.file_name());
    let has_clean = ch.inputs_clean.is_some() || clean_path.exists();
    let n_pix = manifest.geometry.n_pix;

    let mut rows = Vec::new();
    let kinds = [
        (ArrayKind::Inputs, Some(ch.inputs.len()), "inputs"),
        (ArrayKind::Targets, Some(ch.targets.len()), "targets"),
        (
            ArrayKind::InputsClean,
            has_clean.then_some(ch.inputs.len()),
            "clean inputs",
        ),
    ];
    for (kind, channels, label) in kinds {
        let Some(c) = channels else { continue };
        let r = NpyReader::open(&split_dir.join(kind.file_name()))?;
        check_shape(&r, c, n_pix)?;
        if r.converted() {
            warnings.push(format!(
                "{}: dtype '<f8', converted to '<f4' on reading",
                r.path().display()
            ));
        }
        rows.push((label, r.rows()));
    }
    let meta_path = split_dir.join(META_FILE);
    let table = read_meta_csv(&meta_path)?;
    rows.push(("meta rows", table.rows.len()));

    let n = rows[0].1;
    let what = dir.display().to_string();
    if let Some((label, k)) = rows.iter().find(|(_, k)| *k != n) {
        return Err(Error::invalid(
            what,
            format!("{name}: {n} inputs but {k} {label}"),
        ));
    }
    if n != declared {
        return Err(Error::invalid(
            what,
            format!("{name}: manifest declares {declared} clusters but inputs.npy has {n}"),
        ));
    }
    check_meta_order(&meta_path, &table.rows)?;
    check_meta_values(&meta_path, &table.rows)?;
    check_pixel_scale(&meta_path, &table, manifest.geometry.pixel_kpc)?;
    Ok(Split {
        name: name.to_string(),
        n_clusters: n,
        meta: table.rows,
        has_inputs_clean: has_clean,
        dir: split_dir,
    })
}

/// Rule 2: rank 4, `[N, C, n_pix, n_pix]`.
fn check_shape(r: &NpyReader, channels: usize, n_pix: usize) -> Result<()> {
    let s = r.shape();
    if s.len() != 4 || s[1] != channels || s[2] != n_pix || s[3] != n_pix {
        let got = s.iter().enumerate().map(|(i, d)| {
            if i == 0 {
                "N".to_string()
            } else {
                d.to_string()
            }
        });
        return Err(Error::invalid(
            r.path().display().to_string(),
            format!(
                "shape [{}], expected [N,{channels},{n_pix},{n_pix}] (N = {})",
                got.collect::<Vec<_>>().join(","),
                s.first().copied().unwrap_or(0)
            ),
        ));
    }
    Ok(())
}

/// Rows must be in array order: row i has index i.
fn check_meta_order(path: &Path, rows: &[ClusterMeta]) -> Result<()> {
    match rows.iter().enumerate().find(|(i, m)| m.index != *i as u64) {
        Some((i, m)) => Err(Error::invalid(
            path.display().to_string(),
            format!(
                "row {i} has index {}; rows must be in array order (index 0, 1, 2, …)",
                m.index
            ),
        )),
        None => Ok(()),
    }
}

/// Physical metadata must be physical: masses and radii positive (where given; the required `m200c_msun` always),
/// the redshift finite and ≥ 0. A negative mass would silently land in the lightest mass bin.
fn check_meta_values(path: &Path, rows: &[ClusterMeta]) -> Result<()> {
    for (row, m) in rows.iter().enumerate() {
        let positive = [
            ("m200c_msun", m.m200c_msun, true),
            ("m500c_msun", m.m500c_msun, false),
            ("r200c_kpc", m.r200c_kpc, false),
            ("r500c_kpc", m.r500c_kpc, false),
        ];
        for (column, v, required) in positive {
            if (required || !v.is_nan()) && !(v > 0.0 && v.is_finite()) {
                return Err(Error::invalid(
                    path.display().to_string(),
                    format!("row {row}: {column} = {v}, must be positive and finite"),
                ));
            }
        }
        if !(m.z >= 0.0 && m.z.is_finite()) {
            return Err(Error::invalid(
                path.display().to_string(),
                format!("row {row}: z = {}, must be finite and ≥ 0", m.z),
            ));
        }
    }
    Ok(())
}

/// Rule 4, per row: an optional `pixel_kpc` column must equal the manifest's pixel scale.
fn check_pixel_scale(path: &Path, table: &MetaTable, pixel_kpc: f64) -> Result<()> {
    let Some(values) = table.extra_f64("pixel_kpc", path) else {
        return Ok(());
    };
    for (row, v) in values?.into_iter().enumerate() {
        if !v.is_nan() && !close(v, pixel_kpc, PIXEL_SCALE_RTOL * pixel_kpc) {
            return Err(Error::invalid(
                path.display().to_string(),
                format!("pixel scale mismatch: row {row} has {v} kpc, manifest {pixel_kpc} kpc; resample before import"),
            ));
        }
    }
    Ok(())
}

/// Rule 8: ids unique within and across splits; mock seeds likewise.
fn check_unique_ids(dir: &Path, splits: &[Split]) -> Result<()> {
    let err = |msg: String| Err(Error::invalid(dir.display().to_string(), msg));
    let mut ids: HashMap<u64, (&str, usize)> = HashMap::new();
    let mut seeds: HashMap<u64, (&str, usize)> = HashMap::new();
    for s in splits {
        for (row, m) in s.meta.iter().enumerate() {
            if let Some((other, orow)) = ids.insert(m.id, (&s.name, row)) {
                return if other == s.name {
                    err(format!(
                        "cluster id {} appears twice in {} (rows {orow} and {row})",
                        m.id, s.name
                    ))
                } else {
                    err(format!(
                        "cluster id {} in both {other} and {}",
                        m.id, s.name
                    ))
                };
            }
            if let Some(seed) = m.seed {
                if let Some((other, orow)) = seeds.insert(seed, (&s.name, row)) {
                    return err(format!(
                        "seed {seed} used twice: {other} row {orow} and {} row {row}",
                        s.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `stats.json` must describe the manifest's channels with the same transforms.
fn check_stats_channels(dir: &Path, manifest: &Manifest, stats: &NormStats) -> Result<()> {
    let path = dir.join(STATS_FILE).display().to_string();
    let groups = [
        ("input", &manifest.channels.inputs, &stats.inputs),
        ("target", &manifest.channels.targets, &stats.targets),
    ];
    for (group, declared, stored) in groups {
        if declared.len() != stored.len() {
            return Err(Error::invalid(
                path,
                format!(
                    "{} {group} channels, manifest.toml declares {}",
                    stored.len(),
                    declared.len()
                ),
            ));
        }
        for (i, (d, s)) in declared.iter().zip(stored).enumerate() {
            if !same_channel(d, &s.channel) {
                return Err(Error::invalid(
                    path,
                    format!(
                        "{group} channel {i} is {} here but {} in manifest.toml",
                        describe(&s.channel),
                        describe(d)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Same name, unit and transform, the parameter to 1e-12 relative: JSON and TOML parsers may round the same
/// decimal text differently in the last bit.
fn same_channel(a: &ChannelSpec, b: &ChannelSpec) -> bool {
    let (pa, pb) = (a.transform.parameter(), b.transform.parameter());
    a.name == b.name
        && a.unit == b.unit
        && a.transform.name() == b.transform.name()
        && close(pa, pb, 1e-12 * pb.abs())
}

fn describe(c: &ChannelSpec) -> String {
    format!(
        "'{}' [{}] {} {}",
        c.name,
        c.unit,
        c.transform.name(),
        c.transform.parameter()
    )
}

/// Rule 9: stored statistics must match a recomputation.
fn compare_stats(dir: &Path, stored: &NormStats, fresh: &NormStats) -> Result<()> {
    let pairs = stored
        .inputs
        .iter()
        .zip(&fresh.inputs)
        .chain(stored.targets.iter().zip(&fresh.targets));
    for (s, f) in pairs {
        let fields = [
            ("mean", s.mean, f.mean, false),
            ("std", s.std, f.std, false),
            ("p01", s.p01, f.p01, true),
            ("p50", s.p50, f.p50, true),
            ("p99", s.p99, f.p99, true),
        ];
        for (field, a, b, absolute) in fields {
            let tol = if absolute {
                PERCENTILE_ATOL
            } else {
                STATS_RTOL * b.abs()
            };
            if !close(a, b, tol) {
                return Err(Error::invalid(
                    dir.join(STATS_FILE).display().to_string(),
                    format!(
                        "channel '{}' {field} {a} differs from the recomputed {b} (tolerance {tol:.1e}); \
                         delete stats.json to recompute it or pass --trust-stats",
                        s.channel.name
                    ),
                ));
            }
        }
    }
    if stored.n_clusters != fresh.n_clusters {
        return Err(Error::invalid(
            dir.join(STATS_FILE).display().to_string(),
            format!(
                "computed over {} clusters, train has {}",
                stored.n_clusters, fresh.n_clusters
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Pixel scans (rules 5, 6, 7 and the recomputation of rule 9)
// ---------------------------------------------------------------------------------------------------------------

struct ScanResult {
    /// Unit-plausibility findings (rule 7), one line each.
    findings: Vec<String>,
    stats: Option<NormStats>,
}

/// Streams a split cluster by cluster through every pixel rule, accumulating statistics if asked.
fn scan_split(
    dir: &Path,
    manifest: &Manifest,
    split: &Split,
    want_stats: bool,
) -> Result<ScanResult> {
    let ch = &manifest.channels;
    let clean_channels: Vec<ChannelSpec> = ch.inputs_clean.clone().unwrap_or_else(|| {
        // Undeclared clean inputs are noise-free by definition: they must be ≥ 0 like log10 channels.
        ch.inputs
            .iter()
            .map(|c| ChannelSpec {
                transform: crate::data::transform::Transform::Log10 {
                    floor: c.transform.parameter(),
                },
                ..c.clone()
            })
            .collect()
    });
    let mut arrays = vec![
        ArrayScan::new(split, ArrayKind::Inputs, &ch.inputs, false)?,
        ArrayScan::new(split, ArrayKind::Targets, &ch.targets, true)?,
    ];
    if split.has_inputs_clean {
        arrays.push(ArrayScan::new(
            split,
            ArrayKind::InputsClean,
            &clean_channels,
            false,
        )?);
    }
    let mut stats = want_stats.then(|| {
        (
            StatsAccumulator::new(&ch.inputs),
            StatsAccumulator::new(&ch.targets),
        )
    });
    let mut plaus = Plausibility::default();
    let g = &manifest.geometry;
    for (i, meta) in split.meta.iter().enumerate() {
        for a in arrays.iter_mut() {
            a.next(i)?;
        }
        let (inputs, targets) = (&arrays[0].buf, &arrays[1].buf);
        if let Some((si, st)) = stats.as_mut() {
            si.push_cluster(inputs);
            st.push_cluster(targets);
        }
        plaus.push(meta, inputs, targets, g.n_pix, g.pixel_kpc, g.side_kpc);
    }
    for a in arrays {
        a.finish()?;
    }
    let stats = match stats {
        Some((si, st)) => Some(norm_stats(&si, &st).map_err(|e| {
            Error::invalid(format!("{}/{}", dir.display(), split.name), e.to_string())
        })?),
        None => None,
    };
    let label = format!("{}/{}", dir.display(), split.name);
    Ok(ScanResult {
        findings: plaus.findings(&label, ch.inputs.len(), ch.targets.len()),
        stats,
    })
}

/// Where a pixel is: `(cluster 41, ch 1 'S_X', row 7, col 60)`.
#[derive(Debug, Clone, Copy)]
struct Loc {
    cluster: usize,
    ch: usize,
    row: usize,
    col: usize,
}

/// A count of offending pixels and the first one.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    first: Option<Loc>,
}

impl Tally {
    fn add(&mut self, loc: Loc) {
        self.count += 1;
        self.first.get_or_insert(loc);
    }
}

/// Rules 5 and 6 for one array, fed one cluster at a time.
struct ArrayScan<'a> {
    reader: NpyReader,
    channels: &'a [ChannelSpec],
    /// Targets: zeros are tolerated only up to [`MAX_ZERO_FRACTION`].
    is_target: bool,
    buf: Vec<f32>,
    non_finite: Tally,
    negative: Tally,
    zeros: Vec<u64>,
    /// Clusters read so far (the zero fraction is over these).
    rows_seen: usize,
}

impl<'a> ArrayScan<'a> {
    fn new(
        split: &Split,
        kind: ArrayKind,
        channels: &'a [ChannelSpec],
        is_target: bool,
    ) -> Result<Self> {
        let reader = NpyReader::open(&split.path(kind))?;
        array_shape(&reader)?;
        Ok(ArrayScan {
            reader,
            channels,
            is_target,
            buf: Vec::new(),
            non_finite: Tally::default(),
            negative: Tally::default(),
            zeros: vec![0; channels.len()],
            rows_seen: 0,
        })
    }

    fn next(&mut self, cluster: usize) -> Result<()> {
        self.reader.read_row(&mut self.buf)?;
        self.rows_seen += 1;
        let w = self.reader.shape()[3];
        let plane = self.reader.shape()[2] * w;
        for (ch, block) in self.buf.chunks_exact(plane).enumerate() {
            let may_be_negative = !self.is_target && self.channels[ch].transform.allows_negative();
            for (k, &v) in block.iter().enumerate() {
                let loc = || Loc {
                    cluster,
                    ch,
                    row: k / w,
                    col: k % w,
                };
                if !v.is_finite() {
                    self.non_finite.add(loc());
                } else if v < 0.0 && !may_be_negative {
                    self.negative.add(loc());
                } else if v == 0.0 {
                    self.zeros[ch] += 1;
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let what = self.reader.path().display().to_string();
        if let Some(loc) = self.non_finite.first {
            return Err(Error::NonFinite {
                what,
                msg: format!(
                    "{} first at {}",
                    count_of(self.non_finite.count, "non-finite value"),
                    self.at(loc)
                ),
            });
        }
        if let Some(loc) = self.negative.first {
            let rule = if self.is_target {
                "targets must be ≥ 0"
            } else {
                "inputs with a log10 transform must be ≥ 0 (use slog10 for noisy channels)"
            };
            return Err(Error::invalid(
                what,
                format!(
                    "{} first at {}; {rule}",
                    count_of(self.negative.count, "negative value"),
                    self.at(loc)
                ),
            ));
        }
        if self.is_target {
            let per_channel =
                (self.rows_seen * self.reader.row_len() / self.channels.len().max(1)).max(1) as f64;
            for (ch, &z) in self.zeros.iter().enumerate() {
                let frac = z as f64 / per_channel;
                if frac > MAX_ZERO_FRACTION {
                    return Err(Error::invalid(
                        what,
                        format!(
                            "ch {ch} '{}': {:.2}% of pixels are zero (at most {}% tolerated)",
                            self.channels[ch].name,
                            100.0 * frac,
                            100.0 * MAX_ZERO_FRACTION
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn at(&self, l: Loc) -> String {
        format!(
            "(cluster {}, ch {} '{}', row {}, col {})",
            l.cluster, l.ch, self.channels[l.ch].name, l.row, l.col
        )
    }
}

/// "1 non-finite value", "3 non-finite values".
fn count_of(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun},")
    } else {
        format!("{n} {noun}s,")
    }
}

/// Rule 7: per-cluster numbers whose medians catch unit mix-ups. Uses the fixed channel order of
/// docs/mock-clusters.md §6 (inputs: y first; targets: Σ_gas, Σ_DM).
#[derive(Debug, Default)]
struct Plausibility {
    central_dm: Vec<f64>,
    central_y: Vec<f64>,
    gas_dm_r500: Vec<f64>,
    dm_peak_central: usize,
    clusters: usize,
}

/// Bounds of rule 7.
const CENTRAL_DM_RANGE: (f64, f64) = (1e6, 1e11);
const GAS_DM_RANGE: (f64, f64) = (0.02, 0.5);
const CENTRAL_Y_RANGE: (f64, f64) = (1e-7, 1e-2);
const DM_PEAK_RADIUS_FRAC: f64 = 0.1;
const DM_PEAK_MIN_FRACTION: f64 = 0.9;

impl Plausibility {
    fn push(
        &mut self,
        meta: &ClusterMeta,
        inputs: &[f32],
        targets: &[f32],
        n: usize,
        pixel: f64,
        side: f64,
    ) {
        let plane = n * n;
        if targets.len() < 2 * plane || inputs.len() < plane {
            return;
        }
        let (gas, dm, y) = (
            &targets[..plane],
            &targets[plane..2 * plane],
            &inputs[..plane],
        );
        self.clusters += 1;
        self.central_dm.push(central_mean(dm, n));
        self.central_y.push(central_mean(y, n));
        let centre = |k: usize| {
            let c = |i: usize| (i as f64 + 0.5 - n as f64 / 2.0) * pixel;
            c(k / n).hypot(c(k % n))
        };
        if meta.r500c_kpc > 0.0 {
            let (mut g, mut d) = (0.0, 0.0);
            for k in (0..plane).filter(|&k| centre(k) < meta.r500c_kpc) {
                g += gas[k] as f64;
                d += dm[k] as f64;
            }
            if d > 0.0 {
                self.gas_dm_r500.push(g / d);
            }
        }
        let peak = (0..plane).fold(0, |best, k| if dm[k] > dm[best] { k } else { best });
        if centre(peak) <= DM_PEAK_RADIUS_FRAC * side {
            self.dm_peak_central += 1;
        }
    }

    fn findings(&self, label: &str, n_inputs: usize, n_targets: usize) -> Vec<String> {
        let mut out = Vec::new();
        if self.clusters == 0 || n_inputs < 1 || n_targets < 2 {
            return out;
        }
        let mut check = |what: &str, v: Option<f64>, (lo, hi): (f64, f64), hint: &str| {
            if let Some(v) = v.filter(|v| !(*v >= lo && *v <= hi)) {
                out.push(format!(
                    "{label}: median {what} {v:.3e} outside [{lo:e}, {hi:e}]{hint}"
                ));
            }
        };
        check(
            "central Σ_DM",
            median(&self.central_dm),
            CENTRAL_DM_RANGE,
            " M_sun kpc^-2 (M_sun per pixel or per Mpc²?)",
        );
        check(
            "Σ_gas/Σ_DM within R500",
            median(&self.gas_dm_r500),
            GAS_DM_RANGE,
            "",
        );
        check("central y", median(&self.central_y), CENTRAL_Y_RANGE, "");
        let frac = self.dm_peak_central as f64 / self.clusters as f64;
        if frac < DM_PEAK_MIN_FRACTION {
            out.push(format!(
                "{label}: DM peak within {DM_PEAK_RADIUS_FRAC} L of the centre in only {:.1}% of clusters (expected ≥ {}%)",
                100.0 * frac,
                100.0 * DM_PEAK_MIN_FRACTION
            ));
        }
        out
    }
}

/// Mean of the central 2×2 pixels (the single centre pixel for odd n).
fn central_mean(map: &[f32], n: usize) -> f64 {
    let idx = [(n - 1) / 2, n / 2];
    let mut s = 0.0;
    for i in idx {
        for j in idx {
            s += map[i * n + j] as f64;
        }
    }
    s / 4.0
}

/// Median of the finite values, if any.
fn median(v: &[f64]) -> Option<f64> {
    let mut f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return None;
    }
    f.sort_by(f64::total_cmp);
    let m = f.len() / 2;
    Some(if f.len() % 2 == 1 {
        f[m]
    } else {
        0.5 * (f[m - 1] + f[m])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_centres() {
        assert_eq!(median(&[3.0, f64::NAN, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let mut m = vec![0f32; 16];
        for k in [5, 6, 9, 10] {
            m[k] = 2.0;
        }
        assert_eq!(central_mean(&m, 4), 2.0);
    }

    #[test]
    fn counts_read_naturally() {
        assert_eq!(count_of(1, "negative value"), "1 negative value,");
        assert_eq!(count_of(3, "non-finite value"), "3 non-finite values,");
    }
}
