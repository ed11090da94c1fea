//! `clustermaps` command-line interface: a thin driver over the library (all logic lives in `clustermaps::…`).
//!
//! Errors are printed as `error: <message>` with a non-zero exit status; user input never causes a panic.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use clustermaps::data::dataset::{Dataset, OpenOptions};
use clustermaps::data::generate::{generate_dataset, DatasetPreset, DatasetSpec};
use clustermaps::data::observe::{ObsConfig, ObsPreset};
use clustermaps::data::transform::{ChannelStats, Transform};
use clustermaps::data::MockConfig;
use clustermaps::progress::progress_bar;
use clustermaps::sample::{
    Churn, SampleSession, SampleSpec, SampleTarget, SamplerChoice, SamplerKind,
};
use clustermaps::Result;

#[derive(Parser)]
#[command(
    name = "clustermaps",
    version,
    about = "Galaxy-cluster mass maps from SZ and X-ray images with score-based generative models (Hsu et al. 2025)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Skip the memory estimate and the thread bound checked before work starts (for people who know better
    /// than the estimate; a run that does not fit may then be killed by the OOM killer).
    #[arg(long, global = true)]
    ignore_limits: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a mock-cluster dataset (docs/mock-clusters.md §8).
    Generate(GenerateArgs),
    /// Validate a dataset and summarise its manifest, splits and channel statistics.
    Info(InfoArgs),
    /// Train the conditional score model on a dataset (docs/score-model.md §7); resumable.
    Train(TrainArgs),
    /// Draw posterior samples of the targets for clusters of a dataset split (docs/samplers.md §9).
    Sample(SampleArgs),
    /// The paper's evaluation: regenerate the fixed test set, sample it, compute every metric, write figures and
    /// figures/metrics.md (the claims table).
    Reproduce(ReproduceArgs),
    /// Evaluate checkpoints on the same fixed test clusters, sampler and seed, and score them (the rule for
    /// replacing the shipped model).
    Compare(CompareArgs),
}

#[derive(Args)]
struct CompareArgs {
    /// Checkpoints to evaluate (two or more: the shipped one and the candidates).
    #[arg(long = "checkpoint", required = true)]
    checkpoints: Vec<PathBuf>,
    /// Test clusters 0..N.
    #[arg(long, default_value_t = 48)]
    clusters: usize,
    /// Posterior samples per cluster.
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Heun steps (of the default sampler).
    #[arg(long, default_value_t = 18)]
    steps: usize,
    /// Samplers to evaluate each checkpoint with, KIND[:STEPS[:S_CHURN,S_MIN,S_MAX]] (repeatable; default
    /// heun:<--steps>), e.g. --sampler heun:18 --sampler heun-churn:40:40,0.1,100 --sampler em:200.
    #[arg(long = "sampler")]
    samplers: Vec<SamplerChoice>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Output directory: one reproduce run per checkpoint and sampler, compare.md, and compare.json, the record of
    /// every finished run; runs recorded there for the same checkpoint bytes and protocol are reused.
    #[arg(long)]
    out: PathBuf,
    /// Evaluate again even the runs compare.json already holds.
    #[arg(long)]
    rerun: bool,
}

#[derive(Args)]
struct SampleArgs {
    /// Checkpoint (training or inference); its EMA weights are used.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset directory whose clusters are conditioned on.
    #[arg(long)]
    data: PathBuf,
    /// Split to take the clusters from.
    #[arg(long, default_value = "test")]
    split: String,
    /// Number of clusters N (consecutive, from --first).
    #[arg(long, default_value_t = 4)]
    clusters: usize,
    /// Index of the first cluster in the split.
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Posterior samples S per cluster.
    #[arg(long, default_value_t = 8)]
    samples: usize,
    /// pc, em, ode, ode-heun, heun or heun-churn.
    #[arg(long, default_value = "heun")]
    sampler: SamplerKind,
    /// Sampler steps (default: 1000 for pc/em, 50 for ode, 18 for heun/ode-heun, 40 for heun-churn).
    #[arg(long)]
    steps: Option<usize>,
    /// Churn of heun-churn: S_CHURN,S_MIN,S_MAX[,S_NOISE] (default 40,0.05,50,1.003).
    #[arg(long, value_name = "S_CHURN,S_MIN,S_MAX")]
    churn: Option<Churn>,
    /// Master seed of the sampling noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Rows (cluster × sample pairs) per network call (default 64 on CPU, 512 on GPU).
    #[arg(long)]
    max_batch: Option<usize>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Output FILE.npy (samples, physical units, [N, S, C, H, W]); FILE_mean.npy, FILE_std.npy, FILE_norm.npy,
    /// FILE_indices.npy and FILE.json are written beside it (a directory gets samples.npy and the rest inside).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing sample set at --out (atomically: the old set stays until the new one is complete).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct ReproduceArgs {
    /// Checkpoint to evaluate (default: the shipped data/checkpoints/default.safetensors).
    #[arg(long, default_value = clustermaps::reproduce::DEFAULT_CHECKPOINT)]
    checkpoint: PathBuf,
    /// A subset of the test set, sized for 2 CPU cores in under 10 minutes (the default).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The whole test set (1000 clusters × 8 samples, Heun N = 40): paper-sized, meant for a GPU.
    #[arg(long)]
    full: bool,
    /// Output directory (default: figures/quick for --quick, figures for --full).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Test clusters 0..N (default: 24 quick, 1000 full).
    #[arg(long)]
    clusters: Option<usize>,
    /// Posterior samples per cluster (default: 4 quick, 8 full; at least 2).
    #[arg(long)]
    samples: Option<usize>,
    /// Sampler (default heun: N = 18 quick, 40 full).
    #[arg(long)]
    sampler: Option<SamplerKind>,
    /// Sampler steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Churn of heun-churn: S_CHURN,S_MIN,S_MAX[,S_NOISE] (default 40,0.05,50,1.003).
    #[arg(long, value_name = "S_CHURN,S_MIN,S_MAX")]
    churn: Option<Churn>,
    /// Master seed of the sampling noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Rows per network call (default 64 on CPU, 512 on GPU).
    #[arg(long)]
    max_batch: Option<usize>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Worker threads for regenerating the test set (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Args)]
struct TrainArgs {
    /// Dataset directory (from `generate`, or imported maps in the same layout).
    #[arg(long)]
    data: PathBuf,
    /// Configuration: a preset (tiny, cpu, paper) or a TOML file with [model] and [train] tables.
    #[arg(long, default_value = "cpu")]
    config: String,
    /// Run directory: checkpoints, logs, run.toml.
    #[arg(long)]
    out: PathBuf,
    /// Total number of training steps (overrides train.n_iters).
    #[arg(long)]
    steps: Option<u64>,
    /// cpu, cuda, cuda:N or auto (overrides train.device).
    #[arg(long)]
    device: Option<String>,
    /// Continue the run in --out from its newest valid checkpoint.
    #[arg(long)]
    resume: bool,
    /// Warm start: begin a new run at this checkpoint's weights and EMA (fresh optimiser with warm-up, new seed
    /// streams; extra condition channels start at zero). With --resume, used only if --out has no checkpoint yet.
    #[arg(long, value_name = "CKPT")]
    init: Option<PathBuf>,
    /// Seed of batch order, augmentation and noise (overrides train.seed; give each warm-started stage its own).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop (with a checkpoint) after the first step that ends this many seconds after training began.
    #[arg(long, value_name = "SECONDS")]
    time_limit: Option<f64>,
    /// Start a new run in --out although it holds another run's checkpoints or logged steps (they are deleted);
    /// with --resume, only when none of its checkpoints is usable.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct GenerateArgs {
    /// Dataset preset: tiny, dev, full64 or full128.
    #[arg(long)]
    preset: DatasetPreset,
    /// Output directory (refused if non-empty, unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Observation preset for the inputs: clean or realistic.
    #[arg(long, default_value = "clean")]
    obs: ObsPreset,
    /// Train master seed (val uses seed + 1; the test seed is fixed).
    #[arg(long)]
    seed: Option<u64>,
    /// Map size in pixels (overrides the preset).
    #[arg(long)]
    n_pix: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Mock-physics configuration (TOML; missing keys take the defaults of docs/mock-clusters.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Overwrite the dataset files of a non-empty output directory.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct InfoArgs {
    /// Dataset directory.
    dir: PathBuf,
    /// Read every pixel (finiteness, positivity, unit plausibility, statistics); otherwise structure only.
    #[arg(long)]
    check: bool,
    /// Treat unit-plausibility warnings as errors.
    #[arg(long)]
    strict: bool,
    /// Accept stats.json without recomputing it.
    #[arg(long)]
    trust_stats: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    clustermaps::resources::set_ignore_limits(cli.ignore_limits);
    let result = match cli.command {
        Command::Generate(a) => generate(a),
        Command::Info(a) => info(a),
        Command::Train(a) => train(a),
        Command::Sample(a) => sample(a),
        Command::Reproduce(a) => reproduce(a),
        Command::Compare(a) => compare(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(a: GenerateArgs) -> Result<()> {
    let mut spec = DatasetSpec::preset(a.preset);
    spec.obs = ObsConfig::from_preset(a.obs);
    if let Some(seed) = a.seed {
        spec.seed = seed;
    }
    if let Some(n) = a.n_pix {
        spec.n_pix = n;
    }
    if let Some(path) = &a.config {
        spec.mock = MockConfig::from_toml_file(path)?;
    }
    spec.validate()?;
    let total: usize = spec.sizes.iter().sum();
    let bar = progress_bar(
        total as u64,
        "{elapsed_precise} [{bar:40}] {pos}/{len} clusters  {per_sec}  ETA {eta}",
    );
    let summary = generate_dataset(&spec, &a.out, a.threads, a.force, |done, _| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let s = summary?;
    println!(
        "generated {} clusters ({} {}², obs {}) into {} in {:.1} s ({:.1} clusters/s)",
        s.clusters,
        spec.name,
        spec.n_pix,
        a.obs_name(),
        a.out.display(),
        s.seconds,
        s.clusters_per_s
    );
    Ok(())
}

impl GenerateArgs {
    fn obs_name(&self) -> &'static str {
        match self.obs {
            ObsPreset::Clean => "clean",
            ObsPreset::Realistic => "realistic",
        }
    }
}

fn train(a: TrainArgs) -> Result<()> {
    use clustermaps::train::{open_run, Progress, RunRequest};
    if let Some(l) = a.time_limit {
        if !(l > 0.0 && l.is_finite()) {
            return Err(clustermaps::Error::Config(format!(
                "--time-limit must be a positive number of seconds, got {l}"
            )));
        }
    }
    let req = RunRequest {
        data: a.data,
        config: a.config,
        out: a.out,
        steps: a.steps,
        device: a.device,
        resume: a.resume,
        init: a.init,
        seed: a.seed,
        force: a.force,
    };
    let (mut trainer, notes) = open_run(&req)?;
    for n in &notes {
        println!("{n}");
    }
    let cfg = trainer.config().clone();
    println!(
        "training {} on {} ({}): {} parameters, batch {}, steps {}..{}, device {}",
        req.config,
        req.data.display(),
        cfg.model.architecture_key(),
        clustermaps::model::param_count(&cfg.model),
        cfg.train.batch_size,
        trainer.step_count(),
        cfg.train.n_iters,
        clustermaps::device::device_name(trainer.device())
    );
    let progress = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        Progress::Bar
    } else {
        Progress::Lines
    };
    // CLUSTERMAPS_PROFILE=1: time each op kind, the device synchronized around it (clustermaps::prof).
    let profile = clustermaps::prof::enable_from_env(trainer.device());
    let (t0, step0) = (std::time::Instant::now(), trainer.step_count());
    trainer.fit_for(cfg.train.n_iters, a.time_limit, progress)?;
    if profile {
        clustermaps::prof::enable(false);
        let wall = t0.elapsed().as_secs_f64();
        println!(
            "### profile: {} steps in {wall:.2} s, device {}\n{}",
            trainer.step_count() - step0,
            clustermaps::device::device_name(trainer.device()),
            clustermaps::prof::markdown(wall)
        );
    }
    let last = trainer.history().last();
    let val = trainer.val_history().last();
    println!(
        "done: step {} | train loss/dim {} | val loss/dim {} | {:.0} s of training in all | checkpoints in {}",
        trainer.step_count(),
        last.map_or("-".into(), |r| format!("{:.4}", r.loss_per_dim)),
        val.map_or("-".into(), |v| format!("{:.4}", v.mean)),
        trainer.wall_s(),
        req.out.display()
    );
    Ok(())
}

fn reproduce(a: ReproduceArgs) -> Result<()> {
    use clustermaps::reproduce::{reproduce, Mode, ReproduceOptions};
    let mode = if a.full { Mode::Full } else { Mode::Quick };
    let opts = ReproduceOptions {
        checkpoint: a.checkpoint,
        out: a.out,
        device: a.device,
        clusters: a.clusters,
        samples: a.samples,
        sampler: a.sampler,
        steps: a.steps,
        churn: a.churn,
        seed: a.seed,
        max_batch: a.max_batch,
        threads: a.threads,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ..ReproduceOptions::new(mode)
    };
    let _ = a.quick;
    let r = reproduce(&opts, |line| println!("{line}"))?;
    println!();
    print!("{}", clustermaps::reproduce::claims_markdown(&r.claims));
    println!(
        "\nwrote {} files into {} (metrics.md, figures as PNG + SVG, metrics/ as JSON + .npy)",
        r.files.len(),
        opts.out_dir().display()
    );
    Ok(())
}

fn compare(a: CompareArgs) -> Result<()> {
    use clustermaps::compare::{compare, compare_markdown, Protocol};
    let protocol = Protocol {
        clusters: a.clusters,
        samples: a.samples,
        samplers: if a.samplers.is_empty() {
            vec![SamplerChoice::heun(a.steps)]
        } else {
            a.samplers
        },
        ..Protocol::default()
    };
    let scored = compare(&a.checkpoints, &protocol, &a.device, &a.out, a.rerun, |l| {
        println!("{l}")
    })?;
    let md = compare_markdown(&scored, &protocol);
    println!("\n{md}");
    clustermaps::io::write_atomic(&a.out.join("compare.md"), md.as_bytes())?;
    if protocol.samplers.len() > 1 {
        let fig = clustermaps::compare::sampler_quality_figure(&scored)?;
        fig.save(a.out.join(fig.name()))?;
    }
    println!(
        "wrote compare.md (and with several samplers 05_sampler_quality.png) into {}; compare.json records every run",
        a.out.display()
    );
    Ok(())
}

fn sample(a: SampleArgs) -> Result<()> {
    // Claimed before any work: a second writer, an overwrite without --force or an output inside the inputs is
    // refused at once, and the lock is held until the set is written.
    let target = SampleTarget::claim(&a.out, a.force, &[&a.data, &a.checkpoint])?;
    let session = SampleSession::open(&a.checkpoint, &a.data, &a.device)?;
    for w in session.warnings() {
        eprintln!("warning: {w}");
    }
    let spec = SampleSpec {
        split: a.split,
        first: a.first,
        clusters: a.clusters,
        samples: a.samples,
        sampler: a.sampler,
        steps: a.steps,
        churn: a.churn,
        seed: a.seed,
        max_batch: a.max_batch,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let r = session.sample(&spec)?;
    for w in &r.warnings[session.warnings().len()..] {
        eprintln!("warning: {w}");
    }
    let files = r.write_to(&target)?;
    println!(
        "sampled {} clusters × {} samples of '{}' (indices {}..{}) with {} on {}: NFE {} per sample, {:.2} s, \
         {:.3} samples/s; checkpoint step {}; wrote {} (+ _mean, _std, _norm, _indices .npy and .json)",
        r.indices.len(),
        r.shape[1],
        r.split,
        spec.first,
        spec.first + spec.clusters,
        r.sampler,
        r.device,
        r.nfe,
        r.seconds,
        r.samples_per_s,
        r.step,
        files.samples.display()
    );
    Ok(())
}

fn info(a: InfoArgs) -> Result<()> {
    let opts = OpenOptions {
        scan_pixels: a.check,
        strict: a.strict,
        trust_stats: a.trust_stats,
        scan_splits: &[],
    };
    let ds = Dataset::open_with(&a.dir, &opts)?;
    print_summary(&ds, &a.dir);
    for w in ds.warnings() {
        println!("warning: {w}");
    }
    if a.check {
        println!("check: ok (all pixels read; rules 1-9 of docs/mock-clusters.md §7)");
    } else {
        println!("check: structure ok (pixels not read; pass --check for a full validation)");
    }
    Ok(())
}

fn print_summary(ds: &Dataset, dir: &Path) {
    let m = &ds.manifest;
    let src = &m.source;
    let provenance = [
        Some(format!("{:?}", src.kind).to_lowercase()),
        src.spec_version.clone(),
        Some(format!("generator {}", src.generator_version)),
        src.obs_preset.map(|o| format!("obs {o:?}").to_lowercase()),
    ];
    let provenance: Vec<String> = provenance.into_iter().flatten().collect();
    println!(
        "dataset {} ('{}', {}): {}",
        dir.display(),
        m.name,
        m.schema,
        provenance.join(", ")
    );
    let g = &m.geometry;
    let mut geo = format!(
        "geometry: {n}×{n} px over {} kpc, {} kpc/px, centre {}",
        g.side_kpc,
        g.pixel_kpc,
        g.centre,
        n = g.n_pix
    );
    if let Some(arcmin) = g.pixel_arcmin {
        geo.push_str(&format!(" ({arcmin:.4}′/px)"));
    }
    if let Some(z) = g.z {
        geo.push_str(&format!(", z = {z}"));
    }
    println!("{geo}");
    let splits: Vec<String> = m
        .splits
        .iter()
        .map(|s| {
            let clean = ds
                .split(&s.name)
                .map(|x| x.has_inputs_clean)
                .unwrap_or(false);
            let seed = s.seed.map(|v| format!(", seed {v}")).unwrap_or_default();
            let clean = if clean { ", +clean inputs" } else { "" };
            format!("{} {}{seed}{clean}", s.name, s.n_clusters)
        })
        .collect();
    println!("splits: {}", splits.join("; "));
    let st = &ds.stats;
    println!(
        "statistics ({} over {} clusters, {} px/channel; t = transformed value):",
        st.split, st.n_clusters, st.n_pixels
    );
    println!(
        "  {:<7} {:<10} {:<20} {:>9} {:>8} {:>9} {:>9} {:>9}  median (physical)",
        "group", "channel", "transform", "mean t", "std t", "p01 t", "p50 t", "p99 t"
    );
    for (group, stats) in [("input", &st.inputs), ("target", &st.targets)] {
        for c in stats {
            print_channel(group, c);
        }
    }
}

fn print_channel(group: &str, c: &ChannelStats) {
    let tr = &c.channel.transform;
    let param = match tr {
        Transform::Log10 { floor } => format!("floor {floor:.3e}"),
        Transform::Slog10 { softening } => format!("s {softening:.3e}"),
    };
    println!(
        "  {:<7} {:<10} {:<20} {:>9.4} {:>8.4} {:>9.4} {:>9.4} {:>9.4}  {:.4e} {}",
        group,
        c.channel.name,
        format!("{} {param}", tr.name()),
        c.mean,
        c.std,
        c.p01,
        c.p50,
        c.p99,
        tr.inverse(c.p50),
        c.channel.unit
    );
}
