//! `clustermaps reproduce`: the paper's evaluation end to end, from a checkpoint to `figures/` and a claims table.
//!
//! 1. Regenerate the fixed test set (docs/mock-clusters.md §8: seed 2410028570, the same clusters in every run) in
//!    memory ([`TestSet`]); nothing has to be on disk but the checkpoint.
//! 2. Draw `S` posterior samples per cluster from the checkpoint's EMA model ([`PosteriorModel`]), each
//!    (cluster, sample) on its own seeded noise stream, so a run is reproducible on the same device.
//! 3. Compute every metric ([`crate::metrics::evaluate`]): radial profiles per mass bin, P(k), b(k), r(k),
//!    aperture masses, calibration, and the paper's claims ([`crate::metrics::Claims`]).
//! 4. Write the figures, the metrics as JSON and `.npy` (under `metrics/`), and `metrics.md`: the claims table with
//!    the run's provenance (checkpoint, step, sampler, NFE, test-set fingerprint, device, timings).
//!
//! [`Mode::Quick`] (the default) is sized for 2 CPU cores in under 10 minutes and is what README's main command
//! runs; [`Mode::Full`] is the paper-sized evaluation (all 1000 test clusters), sized for a GPU.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::dataset::MapGeometry;
use crate::data::generate::DatasetPreset;
use crate::data::meta::ClusterMeta;
use crate::data::testset::TestSet;
use crate::data::transform::ChannelSpec;
use crate::metrics::{evaluate, Claims, CoverageCheck, EvalOptions, Evaluation};
use crate::plot;
use crate::sample::{Churn, PosteriorModel, SampleResult, SampleSpec, SamplerKind};
use crate::{Error, Result};

/// Where the shipped default checkpoint lives, relative to the repository root.
pub const DEFAULT_CHECKPOINT: &str = "data/checkpoints/default.safetensors";

/// How big an evaluation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A subset of the test set, sized for 2 CPU cores (README's main command, CI).
    Quick,
    /// The whole test set (paper-sized; meant for a GPU).
    Full,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }

    /// Default (clusters, samples per cluster, sampler, steps) of the mode.
    ///
    /// Both use deterministic EDM Heun. Full takes N = 40 (NFE 79): at N = 18 the sampler's own discretisation
    /// error widens a Gaussian posterior by 3–14 % (`samplers_gaussian_posterior`), which would eat most of the 10 %
    /// budget of the spread claim; quick trades that for speed on a CPU and says so in its table.
    pub fn defaults(self) -> (usize, usize, SamplerKind, usize) {
        match self {
            Mode::Quick => (24, 4, SamplerKind::Heun, 18),
            Mode::Full => (1000, 8, SamplerKind::Heun, 40),
        }
    }

    /// The default output directory: `figures/` for full runs (the committed, paper-sized figures) and
    /// `figures/quick/` for quick ones, so a quick run never overwrites them.
    pub fn default_out(self) -> PathBuf {
        match self {
            Mode::Quick => PathBuf::from("figures/quick"),
            Mode::Full => PathBuf::from("figures"),
        }
    }
}

/// Everything `clustermaps reproduce` takes; `None` fields take the [`Mode`]'s defaults.
#[derive(Debug, Clone)]
pub struct ReproduceOptions {
    pub checkpoint: PathBuf,
    pub mode: Mode,
    /// Output directory (`None`: [`Mode::default_out`]).
    pub out: Option<PathBuf>,
    pub device: String,
    /// Test clusters `0..clusters`.
    pub clusters: Option<usize>,
    pub samples: Option<usize>,
    pub sampler: Option<SamplerKind>,
    pub steps: Option<usize>,
    /// Churn of `heun-churn` (`None`: \[K22\]'s preset).
    pub churn: Option<Churn>,
    pub seed: u64,
    pub max_batch: Option<usize>,
    /// Worker threads for regenerating the test set (0 = all cores).
    pub threads: usize,
    /// Progress bars on stderr.
    pub progress: bool,
}

impl ReproduceOptions {
    /// The defaults of `mode` with the shipped checkpoint, on the best available device, seed 0.
    pub fn new(mode: Mode) -> Self {
        ReproduceOptions {
            checkpoint: PathBuf::from(DEFAULT_CHECKPOINT),
            mode,
            out: None,
            device: "auto".into(),
            clusters: None,
            samples: None,
            sampler: None,
            steps: None,
            churn: None,
            seed: 0,
            max_batch: None,
            threads: 0,
            progress: false,
        }
    }

    pub fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| self.mode.default_out())
    }
}

/// What a reproduce run produced.
pub struct Reproduction {
    pub test_set: TestSet,
    pub posterior: SampleResult,
    pub evaluation: Evaluation,
    pub claims: Claims,
    /// Files written (figures as `.png` and `.svg`, metrics, `metrics.md`).
    pub files: Vec<PathBuf>,
    /// Seconds spent regenerating, sampling, evaluating and plotting.
    pub timings: Timings,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub generate_s: f64,
    pub sample_s: f64,
    pub evaluate_s: f64,
    pub plot_s: f64,
}

/// The explanation given when no checkpoint is at `path`.
fn missing_checkpoint(path: &Path) -> Error {
    Error::Config(format!(
        "no checkpoint at {}. The repository ships its trained default model as {DEFAULT_CHECKPOINT}; if that file is \
         missing, train one (e.g. `clustermaps generate --preset full64 --out data/mock64` then `clustermaps train \
         --data data/mock64 --config cpu --out data/runs/cpu64`) and pass it with --checkpoint \
         data/runs/cpu64/ema.safetensors",
        path.display()
    ))
}

/// Runs the whole evaluation and writes its outputs; `log` receives one line per stage.
pub fn reproduce(opts: &ReproduceOptions, mut log: impl FnMut(&str)) -> Result<Reproduction> {
    let (d_clusters, d_samples, d_sampler, d_steps) = opts.mode.defaults();
    let clusters = opts.clusters.unwrap_or(d_clusters);
    let samples = opts.samples.unwrap_or(d_samples);
    let sampler = opts.sampler.unwrap_or(d_sampler);
    let steps = match opts.sampler {
        Some(_) => opts.steps,
        None => Some(opts.steps.unwrap_or(d_steps)),
    };
    if samples < 2 {
        return Err(Error::Config(
            "--samples must be at least 2: posterior spread and calibration need several samples per cluster".into(),
        ));
    }
    // Only absence gets the explanation; a symlink loop or a permission problem is reported as what it is.
    if let Err(e) = std::fs::metadata(&opts.checkpoint) {
        if e.kind() == std::io::ErrorKind::NotFound {
            return Err(missing_checkpoint(&opts.checkpoint));
        }
    }
    let out = opts.out_dir();
    let model = PosteriorModel::load(&opts.checkpoint, &opts.device)?;
    let preset = test_preset(&model)?;
    let spec = SampleSpec {
        split: "test".into(),
        first: 0,
        clusters,
        samples,
        sampler,
        steps,
        churn: opts.churn,
        seed: opts.seed,
        max_batch: opts.max_batch,
        progress: opts.progress,
    };
    spec.sampler.build_with(spec.steps, spec.churn)?;
    let mut memory = model.memory_estimate(&spec);
    let n = preset.n_pix() as f64;
    // Rendered clusters, then their inputs and targets gathered into one array each.
    memory.add(
        "regenerated test set",
        2.0 * clusters as f64 * 4.0 * n * n * 4.0,
    );
    crate::resources::check_memory(
        &format!("reproduce on {clusters} clusters × {samples} samples"),
        &memory,
        "lower --clusters, --samples or --max-batch",
    )?;
    // One writer per output directory, from before the work until the last file is written.
    let _lock = crate::io::OutputLock::directory(&out, "reproduce")?;
    log(&format!(
        "checkpoint {} (step {}, {}) on {}",
        opts.checkpoint.display(),
        model.meta().step,
        model.model().config().architecture_key(),
        crate::device::device_name(model.device())
    ));

    let mut timings = Timings::default();
    let t = Instant::now();
    let bar = progress_bar(opts.progress, clusters as u64, "test clusters");
    let test_set = TestSet::generate(preset, 0, clusters, opts.threads, |done, _| {
        if let Some(b) = &bar {
            b.set_position(done as u64)
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    timings.generate_s = t.elapsed().as_secs_f64();
    log(&format!(
        "regenerated test clusters 0..{clusters} of {preset} in {:.1} s (fingerprint {})",
        timings.generate_s,
        test_set.fingerprint()
    ));
    check_mass_bins(&test_set)?;

    let t = Instant::now();
    let posterior =
        model.sample_physical(test_set.inputs.clone(), test_set.targets.clone(), &spec)?;
    timings.sample_s = t.elapsed().as_secs_f64();
    log(&format!(
        "{clusters} clusters × {samples} samples with {} (NFE {}) in {:.1} s",
        posterior.sampler, posterior.nfe, timings.sample_s
    ));
    for w in &posterior.warnings {
        log(&format!("warning: {w}"));
    }

    let t = Instant::now();
    let (evaluation, claims) = evaluate_posterior(
        &posterior,
        &test_set.meta,
        &test_set.geometry,
        &test_set.target_channels,
    )?;
    timings.evaluate_s = t.elapsed().as_secs_f64();
    log(&format!("metrics in {:.1} s", timings.evaluate_s));

    let t = Instant::now();
    // Every figure is drawn before the first file is written: a figure that fails leaves no partial output.
    let figs = figures(&test_set, &posterior, &evaluation)?;
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let mut files = evaluation.write(&out.join("metrics"))?;
    for fig in figs {
        let (png, svg) = fig.save(out.join(fig.name()))?;
        files.extend([png, svg]);
    }
    timings.plot_s = t.elapsed().as_secs_f64();
    let md = metrics_markdown(opts, &model, &test_set, &posterior, &claims, &timings);
    let md_path = out.join("metrics.md");
    crate::io::write_atomic(&md_path, md.as_bytes())?;
    files.push(md_path);
    log(&format!("figures and metrics.md in {}", out.display()));
    Ok(Reproduction {
        test_set,
        posterior,
        evaluation,
        claims,
        files,
        timings,
    })
}

/// The per-bin figures and statistics need a mass bin with at least 2 clusters: checked right after the (cheap)
/// test set is regenerated, before the (expensive) sampling.
fn check_mass_bins(test_set: &TestSet) -> Result<()> {
    let counts: Vec<usize> = (0..4u8)
        .map(|b| test_set.meta.iter().filter(|m| m.mass_bin == b).count())
        .collect();
    if counts.iter().any(|&c| c >= 2) {
        return Ok(());
    }
    Err(Error::Config(format!(
        "--clusters {}: the evaluation needs at least 2 test clusters in one mass bin (per-bin statistics and \
         figures), but these fall {counts:?} into the 4 bins; use more (the quick default is 24)",
        test_set.len()
    )))
}

/// Settings of [`evaluate`] for maps of the target channels `targets`: the documented defaults, with the metrics in
/// log10 using the same floors as the network's log10 transform of each target (so a map the network cannot tell
/// from its floor counts as the floor).
pub fn eval_options(targets: &[ChannelSpec]) -> EvalOptions {
    EvalOptions {
        log_floors: Some(targets.iter().map(|c| c.transform.parameter()).collect()),
        ..EvalOptions::default()
    }
}

/// Every metric of a posterior, its physical samples against its truth ([`evaluate`] with [`eval_options`]), and
/// the paper's claims on them. `meta[b]` and `geometry` describe the clusters of `posterior`, `targets` its target
/// channels (a dataset's `manifest.channels.targets`, a test set's `target_channels`).
pub fn evaluate_posterior(
    posterior: &SampleResult,
    meta: &[ClusterMeta],
    geometry: &MapGeometry,
    targets: &[ChannelSpec],
) -> Result<(Evaluation, Claims)> {
    let evaluation = evaluate(
        &posterior.truth,
        &posterior.samples,
        posterior.shape,
        meta,
        geometry,
        &posterior.target_channels,
        &eval_options(targets),
    )?;
    let claims = Claims::from_evaluation(&evaluation)?;
    Ok((evaluation, claims))
}

/// The dataset preset whose test split fits the model's map size and channels: the test set `reproduce` and
/// notebook 04 regenerate for it.
pub fn test_preset(model: &PosteriorModel) -> Result<DatasetPreset> {
    let cfg = model.model().config();
    DatasetPreset::ALL
        .into_iter()
        .filter(|p| *p != DatasetPreset::Dev)
        .find(|p| p.n_pix() == cfg.image_size)
        .filter(|_| (cfg.cond_channels, cfg.target_channels) == (2, 2))
        .ok_or_else(|| {
            Error::Config(format!(
                "the model takes {s}×{s} maps with {} condition and {} target channels; reproduce regenerates mock \
                 test sets at 32² (tiny), 64² (full64) and 128² (full128) with 2 + 2 channels",
                cfg.cond_channels,
                cfg.target_channels,
                s = cfg.image_size
            ))
        })
}

fn progress_bar(show: bool, len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    show.then(|| {
        crate::progress::progress_bar(
            len,
            &format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {what}"),
        )
    })
}

/// Every figure of the evaluation, named `04_*` (notebook 04 draws the same ones).
pub fn figures(
    test_set: &TestSet,
    posterior: &SampleResult,
    evaluation: &Evaluation,
) -> Result<Vec<plot::Figure>> {
    let rows = example_rows(test_set);
    let mut figs = Vec::new();
    for c in 0..posterior.shape[2] {
        let mut f = plot::posterior_maps(posterior, &test_set.meta, &test_set.geometry, c, &rows)?;
        f.rename(&format!(
            "04_maps_{}",
            plot::posterior::target_name(c).to_lowercase()
        ));
        figs.push(f);
    }
    figs.extend(plot::evaluation::all(evaluation)?);
    Ok(figs)
}

/// One example cluster per mass bin (the first of each bin in the test set), lightest first.
pub fn example_rows(test_set: &TestSet) -> Vec<usize> {
    (0..4u8)
        .filter_map(|bin| test_set.meta.iter().position(|m| m.mass_bin == bin))
        .collect()
}

/// `metrics.md`: the paper's claims next to ours, then how the numbers were made.
fn metrics_markdown(
    opts: &ReproduceOptions,
    model: &PosteriorModel,
    test_set: &TestSet,
    p: &SampleResult,
    claims: &Claims,
    timings: &Timings,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Claims of Hsu et al. (2025) on this repository's mock clusters\n"
    );
    let _ = writeln!(
        s,
        "Written by `clustermaps reproduce --{}`; do not edit by hand. Test clusters 0..{} of the `{}` test split, {} \
         posterior samples each.\n",
        opts.mode.name(),
        test_set.len(),
        test_set.preset,
        p.shape[1]
    );
    s.push_str(&claims_markdown(claims));
    let _ = writeln!(s, "\n## Provenance\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let rows = [
        ("checkpoint", opts.checkpoint.display().to_string()),
        ("training step", model.meta().step.to_string()),
        ("model", model.model().config().architecture_key()),
        ("sampler", format!("{} (NFE {})", p.sampler, p.nfe)),
        ("seed", p.seed.to_string()),
        (
            "test set",
            format!(
                "`{}` test split, clusters 0..{}, fingerprint `{}`",
                test_set.preset,
                test_set.len(),
                test_set.fingerprint()
            ),
        ),
        ("device", p.device.clone()),
        (
            "time",
            format!(
                "regenerate {:.1} s, sample {:.1} s, metrics {:.1} s, figures {:.1} s",
                timings.generate_s, timings.sample_s, timings.evaluate_s, timings.plot_s
            ),
        ),
        ("clustermaps", env!("CARGO_PKG_VERSION").to_string()),
    ];
    for (k, v) in rows {
        // A `|` inside a cell (the architecture key has them) would end the cell.
        let _ = writeln!(s, "| {k} | {} |", v.replace('|', "\\|"));
    }
    if !p.warnings.is_empty() {
        let _ = writeln!(s, "\nWarnings:\n");
        for w in &p.warnings {
            let _ = writeln!(s, "- {w}");
        }
    }
    s
}

/// `v` with `decimals` decimals, or in scientific notation where fixed point would hide it (|v| ≥ 10⁴, or a
/// non-zero |v| that would print as zero), so a failed claim reads as 4.19e25 % rather than 27 digits.
fn readable(v: f64, decimals: usize) -> String {
    let a = v.abs();
    if a >= 1e4 || (a > 0.0 && a < 0.5 * 10f64.powi(-(decimals as i32))) {
        format!("{v:.2e}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// The claims as a Markdown table: per group (all clusters, then each mass bin) and map, our number next to the
/// paper's threshold, ✓ where it is met.
pub fn claims_markdown(c: &Claims) -> String {
    let t = &c.thresholds;
    let pct = |v: f64| format!("{} %", readable(100.0 * v, 1));
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Paper's claims (Hsu et al. 2025): mean radial profiles of gas and DM within {} of the truth and their spread \
         over clusters within {}, over {}–{} R200c ({} radial bins); b(k) and r(k) within {} of 1 for k < k_Nyq/2 = \
         {:.2} rad/Mpc (mean over k bins). High-k columns are reported, not judged.\n",
        pct(t.profile_mean),
        pct(t.profile_std),
        c.range_r200c[0],
        c.range_r200c[1],
        c.n_profile_bins,
        t.bias,
        c.k_split
    );
    let _ = writeln!(
        s,
        "| clusters | n | map | profile mean: max abs error | profile spread: max abs error | mean abs(b−1), low k | \
         mean abs(1−r), low k | mean abs(b−1), high k | mean abs(1−r), high k | all met |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for r in &c.rows {
        let group = match r.key.mass_bin {
            Some(b) => format!("mass bin {b}"),
            None => "all".to_string(),
        };
        let _ = writeln!(
            s,
            "| {group} | {} | {} | {} {} | {} {} | {} {} | {} {} | {} | {} | {} |",
            r.key.n_clusters,
            r.key.channel,
            pct(r.profile_mean_max_abs),
            mark(r.met_profile_mean),
            pct(r.profile_std_max_abs),
            mark(r.met_profile_std),
            readable(r.bias_low_k, 3),
            mark(r.met_bias),
            readable(r.corr_low_k, 3),
            mark(r.met_corr),
            readable(r.bias_high_k, 3),
            readable(r.corr_high_k, 3),
            mark(r.met)
        );
    }
    let _ = writeln!(
        s,
        "\n**{}**\n",
        if c.all_met {
            "Every claim is met in every mass bin."
        } else {
            "Not every claim is met: see the ✗ entries."
        }
    );
    s.push_str(&calibration_markdown(c));
    s
}

/// The posterior-calibration table (beyond the paper): r(k) sample–truth against sample–sample, and coverage of
/// central intervals for pixels, profile bins and aperture masses, ✓ within the [`CalibrationTargets`].
pub fn calibration_markdown(c: &Claims) -> String {
    let t = &c.calibration_targets;
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    let levels = t
        .levels
        .iter()
        .map(|p| format!("{:.0}", 100.0 * p))
        .collect::<Vec<_>>()
        .join("/");
    let cov = |k: &CoverageCheck| {
        let v: Vec<String> = k
            .coverage
            .iter()
            .map(|x| format!("{:.0}", 100.0 * x))
            .collect();
        format!("{} {}", v.join("/"), mark(k.met))
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Posterior calibration (beyond the paper). For an honest posterior the truth is exchangeable with a sample: \
         r(k) between a sample and the truth equals r(k) between two samples of the same cluster, and central \
         intervals cover their nominal share. Targets: mean abs(r_sample-truth − r_sample-sample) ≤ {} for k < k_Nyq/2; \
         coverage within {:.0} points of nominal at {levels} % (pixels in log10; profile bins over {}–{} R200c; \
         projected masses within R500c and R200c). Coverage is computed from ranks among the samples.\n",
        t.corr_gap,
        100.0 * t.coverage,
        c.range_r200c[0],
        c.range_r200c[1],
    );
    let _ = writeln!(
        s,
        "| clusters | n | map | mean abs(1−r) sample–truth | mean abs(1−r) sample–sample | mean abs(r_st − r_ss) | \
         pixel coverage {levels} % | profile coverage {levels} % | aperture-mass coverage {levels} % | \
         pixel rank χ²/dof (edge ratio) | calibrated |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &c.rows {
        let group = match r.key.mass_bin {
            Some(b) => format!("mass bin {b}"),
            None => "all".to_string(),
        };
        let _ = writeln!(
            s,
            "| {group} | {} | {} | {} | {} | {} {} | {} | {} | {} | {} ({:.2}) | {} |",
            r.key.n_clusters,
            r.key.channel,
            readable(r.corr_low_k, 3),
            readable(r.corr_sample_sample_low_k, 3),
            readable(r.corr_gap_low_k, 3),
            mark(r.met_corr_gap),
            cov(&r.coverage_pixels),
            cov(&r.coverage_profiles),
            cov(&r.coverage_apertures),
            readable(r.pixel_rank_chi2_per_dof, 1),
            r.pixel_rank_edge_ratio,
            mark(r.calibrated)
        );
    }
    let _ = writeln!(
        s,
        "\n**{}**",
        if c.all_calibrated {
            "The posterior is calibrated in every mass bin."
        } else {
            "The posterior is not calibrated everywhere: see the ✗ entries."
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn readable_switches_to_scientific_only_where_fixed_point_hides_the_value() {
        assert_eq!(readable(1.23456, 3), "1.235");
        assert_eq!(readable(0.0, 3), "0.000");
        assert_eq!(readable(-2.5, 1), "-2.5");
        assert_eq!(readable(4.19e25, 1), "4.19e25");
        assert_eq!(readable(1.2e-5, 3), "1.20e-5");
        assert_eq!(readable(f64::NAN, 3), "NaN");
    }
}
