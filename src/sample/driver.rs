//! The one sampling driver every sampler shares (docs/samplers.md §2): [`sample_with`] validates the request, orders
//! the rows `r = b·S + s`, cuts them into chunks and gives each row its own noise stream ([`row_rng`]); a [`Sampler`]
//! only implements the update rule on a [`Chunk`].

use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Tensor};
use indicatif::ProgressBar;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use rayon::prelude::*;

use crate::precond::{Denoiser, HasModelShape, ModelShape, ScoreFn};
use crate::progress::progress_bar;
use crate::sde::{standard_normals_scaled, AnySde};
use crate::{Error, Result};

/// Options of one sampling call (docs/samplers.md §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleOpts {
    /// Posterior samples S per condition.
    pub n_samples: usize,
    /// Master seed; with `cond_offset + b` and `s` it fixes every noise draw of sample `(b, s)`.
    pub seed: u64,
    /// Rows (condition × sample pairs) per network call: 64 suits a CPU, 512 a GPU (docs/samplers.md §2).
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

/// The noise stream of row `(b, s)`: `ChaCha8Rng::seed_from_u64(seed)` on stream `cond_index·2³² + s`, where
/// `cond_index = cond_offset + b` (docs/samplers.md §2). Requires `cond_index < 2³²` and `s < 2³²` (checked by the
/// driver), so distinct rows never share a stream.
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
    fn sample<M: ScoreFn + Denoiser + HasModelShape>(
        &self,
        m: &M,
        cond: &Tensor,
        o: &SampleOpts,
    ) -> Result<Tensor> {
        sample_with(self, m, cond, o)
    }
}

/// The sampling driver (docs/samplers.md §2). Checks `o`, the sampler's settings and `cond` (rank 4, float, `C_in`,
/// `H`, `W` of the model's [`ModelShape`], finite), orders rows `r = b·S + s`, runs chunks of at most `o.max_batch`
/// rows with row `(b, s)` drawing from [`row_rng`]`(seed, cond_offset + b, s)`, and returns `[B, S, C_out, H, W]`. A
/// non-finite sample is an error naming the sampler (a diverging sampler must not pass silently into metrics).
pub fn sample_with<S, M>(sampler: &S, m: &M, cond: &Tensor, o: &SampleOpts) -> Result<Tensor>
where
    S: Sampler + ?Sized,
    M: ScoreFn + Denoiser + HasModelShape,
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
    let g = m.model_shape();
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
        let bar = progress_bar(
            (sampler.steps() * n_chunks) as u64,
            "{prefix} {elapsed_precise} [{bar:40}] {pos}/{len} steps  {per_sec}  ETA {eta}",
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

/// Checks a condition tensor against the model's shape: rank 4, float dtype, `[B ≥ 1, C_in, H, W]`, finite.
pub fn check_cond(cond: &Tensor, g: &ModelShape) -> Result<()> {
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

impl<M: HasModelShape> HasModelShape for CountingModel<'_, M> {
    fn model_shape(&self) -> ModelShape {
        self.inner.model_shape()
    }
}
