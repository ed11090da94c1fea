//! Training data in memory: standardized condition/target arrays of one split, seeded batch order, the dihedral
//! augmentation and Technique 1 for σ_max (docs/score-model.md §3, §6, §7).

use candle_core::{DType, Device, Tensor};
use rand_core::RngCore;

use crate::data::dataset::{ArrayKind, Dataset};
use crate::data::transform::{Group, NormStats};
use crate::rng::{below, permutation, stream};
use crate::{Error, Result};

/// One split held in memory in standardized (log10 + z-score) units, `[N, C, H, W]` row-major.
#[derive(Debug, Clone)]
pub struct SplitData {
    pub inputs: Vec<f32>,
    pub targets: Vec<f32>,
    pub n: usize,
    pub cond_channels: usize,
    pub target_channels: usize,
    pub n_pix: usize,
}

impl SplitData {
    /// Reads split `name` of `ds` and standardizes it with the dataset's training statistics.
    pub fn load(ds: &Dataset, name: &str) -> Result<Self> {
        let inputs = ds.read(name, ArrayKind::Inputs)?;
        let targets = ds.read(name, ArrayKind::Targets)?;
        let (mut x, mut y) = (targets.data, inputs.data);
        ds.stats.apply(Group::Targets, &mut x, targets.shape)?;
        ds.stats.apply(Group::Inputs, &mut y, inputs.shape)?;
        Self::from_standardized(y, inputs.shape, x, targets.shape)
    }

    /// From standardized arrays (`inputs` `[N, C_in, H, W]`, `targets` `[N, C_out, H, W]`), checked.
    pub fn from_standardized(
        inputs: Vec<f32>,
        in_shape: [usize; 4],
        targets: Vec<f32>,
        tg_shape: [usize; 4],
    ) -> Result<Self> {
        let [n, ci, h, w] = in_shape;
        let [n2, co, h2, w2] = tg_shape;
        if n != n2 || h != h2 || w != w2 || h != w || n == 0 {
            return Err(Error::Shape {
                what: "training targets".into(),
                got: tg_shape.to_vec(),
                expected: format!(
                    "[{n}, C, {h}, {w}] matching the inputs {in_shape:?}, square, N ≥ 1"
                ),
            });
        }
        if inputs.len() != n * ci * h * w || targets.len() != n * co * h * w {
            return Err(Error::Shape {
                what: "training arrays".into(),
                got: vec![inputs.len(), targets.len()],
                expected: format!("{} and {} values", n * ci * h * w, n * co * h * w),
            });
        }
        for (what, data, c) in [("inputs", &inputs, ci), ("targets", &targets, co)] {
            if let Some(k) = data.iter().position(|v| !v.is_finite()) {
                let (plane, pixel) = (k / (h * w), k % (h * w));
                return Err(Error::NonFinite {
                    what: format!("standardized training {what}"),
                    msg: format!(
                        "{} at (cluster {}, ch {}, row {}, col {}); the dataset's pixels or its stats.json cannot \
                         be standardized (`clustermaps info --check` names the file)",
                        data[k],
                        plane / c,
                        plane % c,
                        pixel / w,
                        pixel % w
                    ),
                });
            }
        }
        Ok(SplitData {
            inputs,
            targets,
            n,
            cond_channels: ci,
            target_channels: co,
            n_pix: h,
        })
    }

    /// Gathers rows `idx`, each transformed by its D4 element (`elems[i]`, 0 = identity), as `(x0, y)` tensors
    /// `[B, C_out, H, W]` and `[B, C_in, H, W]` on `dev`.
    pub fn batch(&self, idx: &[usize], elems: &[u8], dev: &Device) -> Result<(Tensor, Tensor)> {
        let gather = |src: &[f32], c: usize| -> Result<Tensor> {
            let plane = self.n_pix * self.n_pix;
            let mut out = vec![0f32; idx.len() * c * plane];
            for (b, (&i, &e)) in idx.iter().zip(elems).enumerate() {
                for ch in 0..c {
                    let s = &src[(i * c + ch) * plane..(i * c + ch + 1) * plane];
                    d4_apply(
                        s,
                        self.n_pix,
                        e,
                        &mut out[(b * c + ch) * plane..(b * c + ch + 1) * plane],
                    );
                }
            }
            Ok(Tensor::from_vec(
                out,
                (idx.len(), c, self.n_pix, self.n_pix),
                dev,
            )?)
        };
        Ok((
            gather(&self.targets, self.target_channels)?,
            gather(&self.inputs, self.cond_channels)?,
        ))
    }
}

/// Applies element `e ∈ 0..8` of the dihedral group D4 to an `n × n` plane: `e & 3` quarter turns
/// counter-clockwise after a left–right mirror when `e & 4`. Element 0 is the identity.
pub fn d4_apply(src: &[f32], n: usize, e: u8, dst: &mut [f32]) {
    let (k, mirror) = (e & 3, e & 4 != 0);
    for i in 0..n {
        for j in 0..n {
            // Output (i, j) reads the input pixel that the inverse transform maps it to.
            let (si, mut sj) = match k {
                0 => (i, j),
                1 => (j, n - 1 - i),
                2 => (n - 1 - i, n - 1 - j),
                _ => (n - 1 - j, i),
            };
            if mirror {
                sj = n - 1 - sj;
            }
            dst[i * n + j] = src[si * n + sj];
        }
    }
}

/// Batch order: the rows of step `step` are a slice of a permutation that depends only on `(seed, epoch)`, so the
/// order needs no saved state and a resumed run sees the same batches. The last incomplete batch of an epoch is
/// dropped.
#[derive(Debug, Clone)]
pub struct BatchOrder {
    seed: u64,
    n: usize,
    batch: usize,
    cached: Option<(u64, Vec<usize>)>,
}

/// Stream offset of the data-order permutations (distinct from the augmentation and noise streams).
const ORDER_STREAM: u64 = 1 << 40;

impl BatchOrder {
    pub fn new(seed: u64, n: usize, batch: usize) -> Result<Self> {
        if batch == 0 || batch > n {
            return Err(Error::Config(format!(
                "train.batch_size {batch} must be between 1 and the number of training clusters ({n})"
            )));
        }
        Ok(BatchOrder {
            seed,
            n,
            batch,
            cached: None,
        })
    }

    /// Full batches per epoch.
    pub fn batches_per_epoch(&self) -> u64 {
        (self.n / self.batch) as u64
    }

    /// Row indices of the batch used at `step` (0-based).
    pub fn rows(&mut self, step: u64) -> &[usize] {
        let per = self.batches_per_epoch();
        let (epoch, k) = (step / per, (step % per) as usize);
        if self.cached.as_ref().map(|c| c.0) != Some(epoch) {
            let p = permutation(&mut stream(self.seed, ORDER_STREAM + epoch), self.n);
            self.cached = Some((epoch, p));
        }
        let p = &self.cached.as_ref().expect("set above").1;
        &p[k * self.batch..(k + 1) * self.batch]
    }
}

/// `n` D4 elements from `rng` (all 0 when `augment` is false).
pub fn draw_d4(rng: &mut impl RngCore, n: usize, augment: bool) -> Vec<u8> {
    (0..n)
        .map(|_| if augment { below(rng, 8) as u8 } else { 0 })
        .collect()
}

/// Technique 1 of \[SE20\] (docs/score-model.md §3): the largest Euclidean distance between two of the first `max_maps`
/// training targets (all channels and pixels, standardized units), computed exactly in f64 from the Gram matrix
/// (`‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b`), rounded up to two significant digits.
pub fn sigma_max_rule(data: &SplitData, max_maps: usize) -> Result<(f64, f64)> {
    let m = data.n.min(max_maps);
    let d = data.target_channels * data.n_pix * data.n_pix;
    if m < 2 {
        return Err(Error::Config(
            "sigma_max rule needs at least 2 training maps".into(),
        ));
    }
    let x: Vec<f64> = data.targets[..m * d].iter().map(|&v| v as f64).collect();
    let x = Tensor::from_vec(x, (m, d), &Device::Cpu)?;
    let gram = x.matmul(&x.t()?)?.to_vec2::<f64>()?;
    let mut max2 = 0f64;
    for i in 0..m {
        for j in (i + 1)..m {
            max2 = max2.max(gram[i][i] + gram[j][j] - 2.0 * gram[i][j]);
        }
    }
    let exact = max2.max(0.0).sqrt();
    Ok((exact, round_up_2sig(exact)))
}

/// Rounds `x > 0` up to two significant digits (87.3 → 88, 1234 → 1300).
pub fn round_up_2sig(x: f64) -> f64 {
    if x <= 0.0 {
        return x;
    }
    // Divide by an exact power of ten (not multiply by its inexact inverse) so 0.013 stays 0.013.
    let e = x.log10().floor() as i32 - 1;
    if e < 0 {
        let p = 10f64.powi(-e);
        (x * p * (1.0 - 1e-12)).ceil() / p
    } else {
        let p = 10f64.powi(e);
        (x / p * (1.0 - 1e-12)).ceil() * p
    }
}

/// The dataset's normalisation statistics (cloned for checkpoints).
pub fn stats_of(ds: &Dataset) -> NormStats {
    ds.stats.clone()
}

/// Conversion of a host f32 vector into a `[B]` tensor of `dtype` on `dev`.
pub fn row_tensor(v: &[f64], dev: &Device, dtype: DType) -> Result<Tensor> {
    Ok(Tensor::from_vec(v.to_vec(), v.len(), dev)?.to_dtype(dtype)?)
}

/// The training and validation splits of a dataset, standardized.
pub fn load_splits(ds: &Dataset, val_clusters: usize) -> Result<(SplitData, Option<SplitData>)> {
    let train = SplitData::load(ds, "train")?;
    let val = if val_clusters > 0 && ds.split("val").is_ok() {
        let mut v = SplitData::load(ds, "val")?;
        let n = v.n.min(val_clusters);
        let (ci, co, p) = (v.cond_channels, v.target_channels, v.n_pix * v.n_pix);
        v.inputs.truncate(n * ci * p);
        v.targets.truncate(n * co * p);
        v.n = n;
        Some(v)
    } else {
        None
    };
    Ok((train, val))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d4_is_a_group_of_eight_distinct_maps() {
        let n = 5;
        let src: Vec<f32> = (0..n * n).map(|v| v as f32).collect();
        let mut seen = Vec::new();
        for e in 0..8u8 {
            let mut d = vec![0f32; n * n];
            d4_apply(&src, n, e, &mut d);
            let mut sorted = d.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, src, "element {e} must permute pixels");
            assert!(!seen.contains(&d), "element {e} repeats another");
            seen.push(d);
        }
        assert_eq!(seen[0], src);
        // Four quarter turns are the identity.
        let mut a = src.clone();
        for _ in 0..4 {
            let mut b = vec![0f32; n * n];
            d4_apply(&a, n, 1, &mut b);
            a = b;
        }
        assert_eq!(a, src);
    }

    #[test]
    fn batch_order_covers_each_epoch_once() {
        let mut o = BatchOrder::new(3, 10, 3).unwrap();
        assert_eq!(o.batches_per_epoch(), 3);
        let mut rows: Vec<usize> = (0..3).flat_map(|s| o.rows(s).to_vec()).collect();
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), 9);
        let again: Vec<usize> = BatchOrder::new(3, 10, 3).unwrap().rows(4).to_vec();
        assert_eq!(o.rows(4), again.as_slice());
        assert!(BatchOrder::new(3, 2, 3).is_err());
    }

    #[test]
    fn sigma_max_rule_is_the_largest_distance() {
        // Three 1-channel 2×2 maps: distances √4·1, √4·3, √4·2 → max 6.
        let t = vec![
            0.0f32, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0,
        ];
        let inp = t.clone();
        let d = SplitData::from_standardized(inp, [3, 1, 2, 2], t, [3, 1, 2, 2]).unwrap();
        let (exact, rounded) = sigma_max_rule(&d, 10).unwrap();
        assert!((exact - 6.0).abs() < 1e-12, "{exact}");
        assert_eq!(rounded, 6.0);
        assert_eq!(round_up_2sig(87.3), 88.0);
        assert_eq!(round_up_2sig(1234.0), 1300.0);
        assert_eq!(round_up_2sig(0.0123), 0.013);
    }
}
