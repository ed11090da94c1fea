//! Posterior samplers for the conditional score model (design spec `score-model.md` §8).
//!
//! Four families, all generic over the [`ScoreFn`] + [`Denoiser`] interfaces of `precond.rs`, so the same
//! VE-trained network can be sampled by every one of them (the fair quality-vs-NFE comparison of spec §8):
//!
//! | sampler | source | NFE / sample |
//! |---|---|---|
//! | [`PredictorCorrector`] | \[S21\] `sampling.py` `get_pc_sampler` (`ReverseDiffusionPredictor` + `LangevinCorrector`) | N(1 + corrector steps) |
//! | [`EulerMaruyama`] | \[S21\] `EulerMaruyamaPredictor`, no corrector | N |
//! | [`OdeSampler`] | \[S21\] Eq. 13 probability-flow ODE, fixed-step RK4 or Heun in σ | 4M (+1) / 2M − 1 |
//! | [`EdmHeun`] | \[K22\] Alg. 2, `generate.py` `edm_sampler` | 2N − 1 |
//!
//! **One driver** ([`sample_with`], reached through [`Sampler::sample`]) does everything that is not the update
//! rule: it validates the condition against the model's [`Geometry`], repeats it to `[B·S, C_in, H, W]` rows,
//! processes chunks of at most `max_batch` rows, and gives every row its own noise stream (see [`row_rng`]). A
//! sampler only implements [`Sampler::run_chunk`], drawing all its noise through [`Chunk`]; therefore a sample
//! depends on `(seed, cond_offset + b, s)` and on nothing else — not on the chunking, not on which other conditions
//! share the call, not on the device (spec §1: host ChaCha, never candle's RNG).
//!
//! Samples come back in the standardized log space the network was trained in; [`to_physical`] maps them to physical
//! units with the training split's [`NormStats`].
//!
//! [`run`] puts it together for a dataset: [`SampleSession`] loads a checkpoint and a dataset that fit each other,
//! samples consecutive clusters of a split and writes the `.npy` outputs of `clustermaps sample`.

pub mod edm_heun;
pub mod em;
pub mod ode;
pub mod pc;
pub mod run;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use rayon::prelude::*;

pub use edm_heun::EdmHeun;
pub use em::EulerMaruyama;
pub use ode::{OdeMethod, OdeSampler};
pub use pc::PredictorCorrector;
pub use run::{
    sample_clusters, PosteriorModel, SampleOutputs, SampleRecord, SampleRequest, SampleResult,
    SampleSession, SampleSpec,
};

use crate::data::transform::{Group, NormStats};
use crate::edm::karras_sigmas;
use crate::model::ModelConfig;
use crate::precond::{Denoiser, ScoreFn};
use crate::sde::{standard_normals_scaled, AnySde, Sde, VeSde, VpSde};
use crate::{Error, Result};

/// Options of one sampling call (spec §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleOpts {
    /// Posterior samples S per condition.
    pub n_samples: usize,
    /// Master seed; with `cond_offset + b` and `s` it fixes every noise draw of sample `(b, s)`.
    pub seed: u64,
    /// Rows (condition × sample pairs) per network call: 64 suits a CPU, 512 a GPU (spec §8).
    pub max_batch: usize,
    /// Global index of `cond[0]`: a test set sampled in several calls passes the index of each call's first
    /// condition, so that condition `i` always gets the same noise however the set is split.
    pub cond_offset: u64,
    /// Show an indicatif bar of `steps × chunks` ticks on stderr.
    pub progress: bool,
}

impl Default for SampleOpts {
    /// One sample, seed 0, 64 rows per chunk (CPU), offset 0, no progress bar.
    fn default() -> Self {
        SampleOpts {
            n_samples: 1,
            seed: 0,
            max_batch: 64,
            cond_offset: 0,
            progress: false,
        }
    }
}

/// What the driver must know about a model to check a condition and shape the samples: channels of the target
/// (`C_out`) and condition (`C_in`) and the image size the network was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub target_channels: usize,
    pub cond_channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Geometry {
    /// Square `size × size` maps.
    pub fn square(target_channels: usize, cond_channels: usize, size: usize) -> Self {
        Geometry {
            target_channels,
            cond_channels,
            height: size,
            width: size,
        }
    }
}

impl From<&ModelConfig> for Geometry {
    /// The geometry the network of `cfg` was built for (`image_size²`, `target_channels`, `cond_channels`).
    fn from(cfg: &ModelConfig) -> Self {
        Geometry::square(cfg.target_channels, cfg.cond_channels, cfg.image_size)
    }
}

/// A model that can tell the sampling driver its [`Geometry`]. The real `ScoreModel` implements it from its
/// [`ModelConfig`] (`Geometry::from(&cfg)`).
pub trait ModelGeometry {
    fn geometry(&self) -> Geometry;
}

/// The noise stream of row `(b, s)`: `ChaCha8Rng::seed_from_u64(seed)` on stream `cond_index·2³² + s`, where
/// `cond_index = cond_offset + b` (spec §8). Requires `cond_index < 2³²` and `s < 2³²` (checked by the driver), so
/// distinct rows never share a stream.
pub fn row_rng(seed: u64, cond_index: u64, sample: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((cond_index << 32) | sample);
    rng
}

/// One chunk of rows as a sampler sees it: the per-row noise streams and the progress bar.
///
/// Every normal a sampler needs comes from [`Chunk::normal`]/[`Chunk::normal_scaled`]: each row's generator draws
/// its `C·H·W` values with [`standard_normals_scaled`] (host Box–Muller, f64 → f32), the rows are concatenated in
/// order and uploaded once with `Tensor::from_vec`. Rows are filled in parallel (rayon); the values do not depend on
/// the thread count.
pub struct Chunk {
    rngs: Vec<ChaCha8Rng>,
    dims: [usize; 4],
    device: Device,
    dtype: DType,
    bar: ProgressBar,
}

impl Chunk {
    /// A chunk of `rngs.len()` rows of shape `[C, H, W]` = `chw` whose noise tensors are created on `device` in
    /// `dtype`. The driver builds these; tests may too (with a hidden bar).
    pub fn new(
        rngs: Vec<ChaCha8Rng>,
        chw: [usize; 3],
        device: &Device,
        dtype: DType,
        bar: Option<ProgressBar>,
    ) -> Self {
        Chunk {
            dims: [rngs.len(), chw[0], chw[1], chw[2]],
            rngs,
            device: device.clone(),
            dtype,
            bar: bar.unwrap_or_else(ProgressBar::hidden),
        }
    }

    /// `[R, C, H, W]`: rows of the chunk and the target shape.
    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// Device of the noise (= of the condition).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Dtype of the noise (= of the condition).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// `[R, C, H, W]` standard normals, one independent stream per row.
    pub fn normal(&mut self) -> Result<Tensor> {
        self.normal_scaled(1.0)
    }

    /// `[R, C, H, W]` draws of `N(0, scale²)`; the scaling happens in f64 before rounding (as `prior_sampling`).
    pub fn normal_scaled(&mut self, scale: f64) -> Result<Tensor> {
        let [r, c, h, w] = self.dims;
        let per_row = c * h * w;
        let mut v = vec![0f32; r * per_row];
        if per_row > 0 {
            v.par_chunks_mut(per_row)
                .zip(self.rngs.par_iter_mut())
                .for_each(|(dst, rng)| {
                    dst.copy_from_slice(&standard_normals_scaled(rng, per_row, scale))
                });
        }
        Ok(Tensor::from_vec(v, (r, c, h, w), &self.device)?.to_dtype(self.dtype)?)
    }

    /// Marks one sampler step of this chunk as done (one progress-bar tick).
    pub fn step_done(&self) {
        self.bar.inc(1);
    }
}

/// A posterior sampler: one update rule, run on a chunk of rows by the shared driver [`sample_with`].
pub trait Sampler {
    /// A short description with the settings that matter, e.g. `pc(N=1000, snr=0.16)`.
    fn name(&self) -> String;
    /// Network evaluations per sample (score or denoiser calls per chunk).
    fn nfe(&self) -> usize;
    /// Steps per chunk (progress-bar ticks).
    fn steps(&self) -> usize;
    /// Checks the settings (step counts, snr, σ's, …); the driver calls it before drawing anything.
    fn validate(&self) -> Result<()>;
    /// Runs the sampler on one chunk: `cond` is `[R, C_in, H, W]`, all noise comes from `chunk`, the result is
    /// `[R, C_out, H, W]` (standardized space).
    fn run_chunk<M: ScoreFn + Denoiser>(
        &self,
        m: &M,
        cond: &Tensor,
        chunk: &mut Chunk,
    ) -> Result<Tensor>;

    /// `S = o.n_samples` posterior samples for each of the `B` conditions `cond: [B, C_in, H, W]`, returned as
    /// `[B, S, C_out, H, W]` in the condition's dtype and device. See [`sample_with`].
    fn sample<M: ScoreFn + Denoiser + ModelGeometry>(
        &self,
        m: &M,
        cond: &Tensor,
        o: &SampleOpts,
    ) -> Result<Tensor> {
        sample_with(self, m, cond, o)
    }
}

/// The sampling driver (spec §8). Checks `o`, the sampler's settings and `cond` (rank 4, float, `C_in`, `H`, `W` of
/// the model's [`Geometry`], finite), orders rows `r = b·S + s`, runs chunks of at most `o.max_batch` rows with row
/// `(b, s)` drawing from [`row_rng`]`(seed, cond_offset + b, s)`, and returns `[B, S, C_out, H, W]`. A non-finite
/// sample is an error naming the sampler (a diverging sampler must not pass silently into metrics).
pub fn sample_with<S, M>(sampler: &S, m: &M, cond: &Tensor, o: &SampleOpts) -> Result<Tensor>
where
    S: Sampler + ?Sized,
    M: ScoreFn + Denoiser + ModelGeometry,
{
    sampler.validate()?;
    if o.n_samples == 0 || o.n_samples as u64 > 1 << 32 {
        return Err(Error::Config(format!(
            "n_samples must be in 1..=2^32, got {}",
            o.n_samples
        )));
    }
    if o.max_batch == 0 {
        return Err(Error::Config("max_batch must be >= 1".into()));
    }
    let g = m.geometry();
    check_cond(cond, &g)?;
    let b = cond.dim(0)?;
    if o.cond_offset
        .checked_add(b as u64)
        .is_none_or(|end| end > 1 << 32)
    {
        return Err(Error::Config(format!(
            "cond_offset + B = {} + {b} exceeds 2^32 (each condition index owns 2^32 noise streams)",
            o.cond_offset
        )));
    }
    let s_n = o.n_samples;
    let rows = b * s_n;
    let n_chunks = rows.div_ceil(o.max_batch);
    let bar = if o.progress {
        let bar = ProgressBar::new((sampler.steps() * n_chunks) as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {elapsed_precise} [{bar:40}] {pos}/{len} steps  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(sampler.name());
        bar
    } else {
        ProgressBar::hidden()
    };
    let dev = cond.device();
    let chw = [g.target_channels, g.height, g.width];
    let mut outs = Vec::with_capacity(n_chunks);
    for lo in (0..rows).step_by(o.max_batch) {
        let hi = (lo + o.max_batch).min(rows);
        let idx: Vec<u32> = (lo..hi).map(|r| (r / s_n) as u32).collect();
        let cond_rows = cond.index_select(&Tensor::from_vec(idx, hi - lo, dev)?, 0)?;
        let rngs = (lo..hi)
            .map(|r| row_rng(o.seed, o.cond_offset + (r / s_n) as u64, (r % s_n) as u64))
            .collect();
        let mut chunk = Chunk::new(rngs, chw, dev, cond.dtype(), Some(bar.clone()));
        let x = sampler.run_chunk(m, &cond_rows, &mut chunk)?;
        let expect = [hi - lo, chw[0], chw[1], chw[2]];
        if x.dims() != expect {
            return Err(Error::Shape {
                what: format!("output of sampler {}", sampler.name()),
                got: x.dims().to_vec(),
                expected: format!("{expect:?}"),
            });
        }
        outs.push(x);
    }
    bar.finish_and_clear();
    let x = Tensor::cat(&outs, 0)?.reshape((b, s_n, chw[0], chw[1], chw[2]))?;
    check_finite(&x, &format!("samples of {}", sampler.name()))?;
    Ok(x)
}

/// Checks a condition tensor against the model geometry: rank 4, float dtype, `[B ≥ 1, C_in, H, W]`, finite.
pub fn check_cond(cond: &Tensor, g: &Geometry) -> Result<()> {
    let expected = format!(
        "[B >= 1, {}, {}, {}] (condition channels, height, width of the model)",
        g.cond_channels, g.height, g.width
    );
    let d = cond.dims();
    if d.len() != 4 || d[0] == 0 || d[1..] != [g.cond_channels, g.height, g.width] {
        return Err(Error::Shape {
            what: "sampling condition".into(),
            got: d.to_vec(),
            expected,
        });
    }
    if !cond.dtype().is_float() {
        return Err(Error::invalid(
            "sampling condition",
            format!("dtype {:?}, expected a float type", cond.dtype()),
        ));
    }
    check_finite(cond, "sampling condition")
}

/// Errors with the position `[i₀, i₁, …]` of the first NaN/Inf of `t` (computed in f64 on the host).
fn check_finite(t: &Tensor, what: &str) -> Result<()> {
    let v = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    if let Some(k) = v.iter().position(|x| !x.is_finite()) {
        let mut idx = vec![0; t.rank()];
        let mut rest = k;
        for (i, &d) in t.dims().iter().enumerate().rev() {
            idx[i] = rest % d;
            rest /= d;
        }
        let bad = v.iter().filter(|x| !x.is_finite()).count();
        return Err(Error::NonFinite {
            what: what.into(),
            msg: format!(
                "{bad} non-finite value(s), first {} at index {idx:?} of shape {:?}",
                v[k],
                t.dims()
            ),
        });
    }
    Ok(())
}

/// Standard deviation of the prior `p_T` each SDE family samples from (\[S21\] `prior_sampling`): σ_max for VE,
/// 1 for VP.
pub(crate) fn prior_std(sde: &AnySde) -> f64 {
    match sde {
        AnySde::Ve(s) => s.sigma_max(),
        AnySde::Vp(_) => 1.0,
    }
}

/// `linspace(T, ε, N)_k` (\[S21\] `get_pc_sampler`: `torch.linspace(sde.T, eps, sde.N)`), in f64.
pub(crate) fn time_grid(sde: &AnySde, n: usize) -> Vec<f64> {
    let (t0, t1) = (sde.t_max(), sde.sampling_eps());
    (0..n)
        .map(|k| {
            if k + 1 == n {
                t1
            } else {
                t0 + (t1 - t0) * k as f64 / (n - 1) as f64
            }
        })
        .collect()
}

/// The model's SDE with `N` replaced by the sampler's step count. \[S21\] samplers always use `sde.N`, set from the
/// config that also sets the number of sampling steps; a sampler with `N ≠ sde.N` must discretize on its own grid,
/// otherwise the SMLD/DDPM step `G_i` (spacing of the `sde.N`-grid) injects the wrong total variance.
pub(crate) fn sde_with_n(sde: &AnySde, n: usize) -> Result<AnySde> {
    Ok(match sde {
        AnySde::Ve(s) => AnySde::Ve(VeSde::new(s.sigma_min(), s.sigma_max(), n)?),
        AnySde::Vp(s) => AnySde::Vp(VpSde::new(s.beta_min(), s.beta_max(), n)?),
    })
}

/// Noise-level grid of the σ-space samplers (ODE and EDM Heun).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SigmaGrid {
    /// \[K22\] Eq. 5 with exponent ρ ([`karras_sigmas`]; ρ = 7 default).
    Karras { rho: f64 },
    /// `σ(t)` on a uniform grid in `t` of the model's SDE (geometric in σ for VE), as \[S21\] `get_ode_sampler`.
    UniformT,
}

/// `n ≥ 2` decreasing noise levels from σ_max to σ_min on `grid`, both ends clamped to the model's trained range
/// `sigma_range()` (spec §8; `None` = the range's end). All in f64.
pub(crate) fn sigma_levels<M: ScoreFn + Denoiser>(
    m: &M,
    grid: SigmaGrid,
    n: usize,
    sigma_min: Option<f64>,
    sigma_max: Option<f64>,
) -> Result<Vec<f64>> {
    let (lo, hi) = m.sigma_range();
    let smin = sigma_min.unwrap_or(lo).clamp(lo, hi);
    let smax = sigma_max.unwrap_or(hi).clamp(lo, hi);
    match grid {
        SigmaGrid::Karras { rho } => karras_sigmas(n, smin, smax, rho),
        SigmaGrid::UniformT => {
            if n < 2 || !(smin > 0.0 && smin < smax) {
                return Err(Error::Config(format!(
                    "uniform-t sigma grid needs n >= 2 and 0 < sigma_min < sigma_max, got n = {n}, [{smin}, {smax}]"
                )));
            }
            let sde = m.sde();
            let (t_hi, t_lo) = (sde.t_of_sigma_equiv(smax), sde.t_of_sigma_equiv(smin));
            let mut s: Vec<f64> = (0..n)
                .map(|i| sde.sigma_equiv(t_hi + (t_lo - t_hi) * i as f64 / (n - 1) as f64))
                .collect();
            s[0] = smax;
            s[n - 1] = smin;
            Ok(s)
        }
    }
}

/// `Some(σ)` must be finite and positive.
pub(crate) fn check_sigma_opt(name: &str, v: Option<f64>) -> Result<()> {
    match v {
        Some(s) if !(s.is_finite() && s > 0.0) => Err(Error::Config(format!(
            "{name} must be finite and > 0, got {s}"
        ))),
        _ => Ok(()),
    }
}

/// The sampler families selectable from the command line (`--sampler pc|em|ode|ode-heun|heun|heun-churn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    /// \[S21\] predictor–corrector (the paper's sampler, \[H25\]): N = 1000, snr = 0.16.
    Pc,
    /// Euler–Maruyama on the reverse SDE: N = 1000.
    Em,
    /// Probability-flow ODE, RK4 on the ρ-grid: M = 50 (`ode`, `rk4`, `ode-rk4`).
    OdeRk4,
    /// Probability-flow ODE, Heun on the ρ-grid (= EDM Heun without churn): M = 18.
    OdeHeun,
    /// \[K22\] deterministic Heun: N = 18 (`heun`, `edm`).
    Heun,
    /// \[K22\] stochastic Heun, S_churn = 40 preset: N = 40 (`heun-churn`).
    HeunChurn,
}

impl SamplerKind {
    /// Every kind, in CLI order.
    pub const ALL: [SamplerKind; 6] = [
        SamplerKind::Pc,
        SamplerKind::Em,
        SamplerKind::OdeRk4,
        SamplerKind::OdeHeun,
        SamplerKind::Heun,
        SamplerKind::HeunChurn,
    ];

    /// The CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            SamplerKind::Pc => "pc",
            SamplerKind::Em => "em",
            SamplerKind::OdeRk4 => "ode",
            SamplerKind::OdeHeun => "ode-heun",
            SamplerKind::Heun => "heun",
            SamplerKind::HeunChurn => "heun-churn",
        }
    }

    /// Default step count (N for PC/EM/Heun, M for the ODE).
    pub fn default_steps(self) -> usize {
        match self {
            SamplerKind::Pc | SamplerKind::Em => 1000,
            SamplerKind::OdeRk4 => 50,
            SamplerKind::OdeHeun | SamplerKind::Heun => 18,
            SamplerKind::HeunChurn => 40,
        }
    }

    /// The sampler with `steps` (`--steps K`; `None` = [`SamplerKind::default_steps`]) and every other setting at
    /// its default. Checks the settings.
    pub fn build(self, steps: Option<usize>) -> Result<AnySampler> {
        let n = steps.unwrap_or_else(|| self.default_steps());
        let s = match self {
            SamplerKind::Pc => AnySampler::Pc(PredictorCorrector::new(n)),
            SamplerKind::Em => AnySampler::Em(EulerMaruyama::new(n)),
            SamplerKind::OdeRk4 => AnySampler::Ode(OdeSampler::new(OdeMethod::Rk4, n)),
            SamplerKind::OdeHeun => AnySampler::Ode(OdeSampler::new(OdeMethod::Heun, n)),
            SamplerKind::Heun => AnySampler::Heun(EdmHeun::new(n)),
            SamplerKind::HeunChurn => AnySampler::Heun(EdmHeun::stochastic(n)),
        };
        s.validate()?;
        Ok(s)
    }
}

impl fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SamplerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "pc" => SamplerKind::Pc,
            "em" => SamplerKind::Em,
            "ode" | "rk4" | "ode-rk4" => SamplerKind::OdeRk4,
            "ode-heun" => SamplerKind::OdeHeun,
            "heun" | "edm" => SamplerKind::Heun,
            "heun-churn" | "edm-churn" => SamplerKind::HeunChurn,
            other => {
                return Err(Error::Config(format!(
                    "unknown sampler '{other}'; expected one of pc, em, ode (rk4), ode-heun, heun (edm), heun-churn"
                )))
            }
        })
    }
}

/// Any sampler, by value: the dispatch type behind `--sampler` ([`Sampler`] is generic over the model and so not
/// object-safe).
#[derive(Debug, Clone, PartialEq)]
pub enum AnySampler {
    Pc(PredictorCorrector),
    Em(EulerMaruyama),
    Ode(OdeSampler),
    Heun(EdmHeun),
}

impl Sampler for AnySampler {
    fn name(&self) -> String {
        match self {
            AnySampler::Pc(s) => s.name(),
            AnySampler::Em(s) => s.name(),
            AnySampler::Ode(s) => s.name(),
            AnySampler::Heun(s) => s.name(),
        }
    }
    fn nfe(&self) -> usize {
        match self {
            AnySampler::Pc(s) => s.nfe(),
            AnySampler::Em(s) => s.nfe(),
            AnySampler::Ode(s) => s.nfe(),
            AnySampler::Heun(s) => s.nfe(),
        }
    }
    fn steps(&self) -> usize {
        match self {
            AnySampler::Pc(s) => s.steps(),
            AnySampler::Em(s) => s.steps(),
            AnySampler::Ode(s) => s.steps(),
            AnySampler::Heun(s) => s.steps(),
        }
    }
    fn validate(&self) -> Result<()> {
        match self {
            AnySampler::Pc(s) => s.validate(),
            AnySampler::Em(s) => s.validate(),
            AnySampler::Ode(s) => s.validate(),
            AnySampler::Heun(s) => s.validate(),
        }
    }
    fn run_chunk<M: ScoreFn + Denoiser>(
        &self,
        m: &M,
        cond: &Tensor,
        chunk: &mut Chunk,
    ) -> Result<Tensor> {
        match self {
            AnySampler::Pc(s) => s.run_chunk(m, cond, chunk),
            AnySampler::Em(s) => s.run_chunk(m, cond, chunk),
            AnySampler::Ode(s) => s.run_chunk(m, cond, chunk),
            AnySampler::Heun(s) => s.run_chunk(m, cond, chunk),
        }
    }
}

/// A model wrapper that counts network evaluations (every `score` and `denoise` call; one call evaluates a whole
/// chunk). With one chunk, `calls()` is the NFE per sample; used by the `nfe_counts` test and NFE benchmarks.
pub struct CountingModel<'a, M> {
    inner: &'a M,
    calls: AtomicUsize,
}

impl<'a, M> CountingModel<'a, M> {
    pub fn new(inner: &'a M) -> Self {
        CountingModel {
            inner,
            calls: AtomicUsize::new(0),
        }
    }

    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Resets the counter to 0.
    pub fn reset(&self) {
        self.calls.store(0, Ordering::Relaxed);
    }
}

impl<M: ScoreFn> ScoreFn for CountingModel<'_, M> {
    fn sde(&self) -> &AnySde {
        self.inner.sde()
    }
    fn score(&self, x: &Tensor, t: f64, cond: &Tensor) -> Result<Tensor> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.score(x, t, cond)
    }
}

impl<M: Denoiser> Denoiser for CountingModel<'_, M> {
    fn denoise(&self, x: &Tensor, sigma: f64, cond: &Tensor) -> Result<Tensor> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.denoise(x, sigma, cond)
    }
    fn sigma_range(&self) -> (f64, f64) {
        self.inner.sigma_range()
    }
}

impl<M: ModelGeometry> ModelGeometry for CountingModel<'_, M> {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
}

/// Standardized samples → physical units: [`NormStats::inverse`] (group `Targets`: undo the standardization, then
/// the per-channel log transform) on `[B, S, C, H, W]` (or `[N, C, H, W]`) samples. Returns f32 of the same shape on
/// the same device.
pub fn to_physical(stats: &NormStats, samples: &Tensor) -> Result<Tensor> {
    let d = samples.dims().to_vec();
    if !(d.len() == 4 || d.len() == 5) {
        return Err(Error::Shape {
            what: "samples to map to physical units".into(),
            got: d,
            expected: "[B, S, C, H, W] or [N, C, H, W]".into(),
        });
    }
    let k = d.len();
    let shape = [d[..k - 3].iter().product(), d[k - 3], d[k - 2], d[k - 1]];
    let mut v = samples
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?;
    stats.inverse(Group::Targets, &mut v, shape)?;
    Ok(Tensor::from_vec(v, d, samples.device())?)
}
