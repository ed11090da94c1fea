//! Preprocessing for learning (docs/mock-clusters.md §6): a per-channel log-like transform followed by standardisation
//! z = (t − μ)/σ, and the exact inverse back to physical units.
//!
//! Datasets on disk always hold **physical** maps; the transform and its parameters are declared per channel in
//! the manifest ([`ChannelSpec`]) and the standardisation constants live in `stats.json` ([`NormStats`]), computed
//! over every pixel of the training split only and reused for val/test and at inference. Keeping the transform
//! out of the stored arrays means real simulation maps can be imported without rewriting them.

use serde::{Deserialize, Serialize};

use super::observe::ObsConfig;
use crate::{Error, Result};

/// Floor of Σ_gas \[M_sun kpc⁻²\] (docs/mock-clusters.md §4): far below any cluster outskirt, so only empty pixels hit
/// it.
pub const FLOOR_SIGMA_GAS: f64 = 1e2;
/// Floor of Σ_DM \[M_sun kpc⁻²\].
pub const FLOOR_SIGMA_DM: f64 = 1e3;
/// Floor of Compton-y.
pub const FLOOR_Y: f64 = 1e-10;
/// Floor of S_X \[erg s⁻¹ cm⁻² arcmin⁻²\].
pub const FLOOR_SX: f64 = 1e-22;

/// The per-channel transform t(x). Serialised *flattened* into its channel, so the manifest reads
/// `transform = "log10", floor = 1e-10` or `transform = "slog10", softening = 2.5e-6`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "transform", rename_all = "lowercase")]
pub enum Transform {
    /// t = log10 max(x, floor). For maps that are non-negative by construction (targets, clean inputs); the
    /// floor keeps empty pixels finite.
    Log10 { floor: f64 },
    /// t = log10((x + √(x² + 4s²))/2): ≈ log10 x for x ≫ s, log10 s at x = 0, defined for x < 0. For noisy
    /// inputs, whose pixels scatter around and below zero; s is the noise scale.
    Slog10 { softening: f64 },
}

impl Transform {
    /// The transform's name as written in the manifest.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Log10 { .. } => "log10",
            Transform::Slog10 { .. } => "slog10",
        }
    }

    /// The floor (log10) or softening (slog10).
    pub fn parameter(&self) -> f64 {
        match *self {
            Transform::Log10 { floor } => floor,
            Transform::Slog10 { softening } => softening,
        }
    }

    /// Whether the transform is defined for negative values (inputs with `log10` must be ≥ 0).
    pub fn allows_negative(&self) -> bool {
        matches!(self, Transform::Slog10 { .. })
    }

    /// Checks the parameter is positive and finite, naming the channel otherwise.
    pub fn validate(&self, channel: &str) -> Result<()> {
        let p = self.parameter();
        if p > 0.0 && p.is_finite() {
            Ok(())
        } else {
            let what = if matches!(self, Transform::Log10 { .. }) {
                "floor"
            } else {
                "softening"
            };
            Err(Error::Config(format!(
                "channel '{channel}': {} {what} must be positive and finite, got {p}",
                self.name()
            )))
        }
    }

    /// t(x), physical → log units. NaN stays NaN (validation reports it; it must not hide behind the floor).
    pub fn forward(&self, x: f64) -> f64 {
        match *self {
            Transform::Log10 { floor } => {
                if x.is_nan() {
                    x
                } else {
                    x.max(floor).log10()
                }
            }
            Transform::Slog10 { softening: s } => {
                let r = x.hypot(2.0 * s);
                // (x + r)/2 loses every digit for x ≪ −s; the conjugate form 2s²/(r − x) is exact there.
                let u = if x >= 0.0 {
                    0.5 * (x + r)
                } else {
                    2.0 * s * s / (r - x)
                };
                u.log10()
            }
        }
    }

    /// x(t), the exact inverse: `log10` gives 10^t (pixels below the floor come back as the floor), `slog10`
    /// gives 10^t − s² 10^−t.
    pub fn inverse(&self, t: f64) -> f64 {
        match *self {
            Transform::Log10 { .. } => 10f64.powf(t),
            Transform::Slog10 { softening: s } => {
                let u = 10f64.powf(t);
                u - s * s / u
            }
        }
    }
}

/// One channel of a dataset as declared in the manifest: what it is, in which unit, and how to transform it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSpec {
    pub name: String,
    pub unit: String,
    #[serde(flatten)]
    pub transform: Transform,
}

impl ChannelSpec {
    pub fn new(name: &str, unit: &str, transform: Transform) -> Self {
        ChannelSpec {
            name: name.to_string(),
            unit: unit.to_string(),
            transform,
        }
    }

    /// Mock targets (docs/mock-clusters.md §4, channel order fixed): Σ_gas, Σ_DM with their `log10` floors.
    pub fn mock_targets() -> Vec<ChannelSpec> {
        vec![
            ChannelSpec::new(
                "Sigma_gas",
                UNIT_SIGMA,
                Transform::Log10 {
                    floor: FLOOR_SIGMA_GAS,
                },
            ),
            ChannelSpec::new(
                "Sigma_DM",
                UNIT_SIGMA,
                Transform::Log10 {
                    floor: FLOOR_SIGMA_DM,
                },
            ),
        ]
    }

    /// Noise-free mock inputs: y, S_X with `log10` floors.
    pub fn mock_clean_inputs() -> Vec<ChannelSpec> {
        vec![
            ChannelSpec::new("y", UNIT_Y, Transform::Log10 { floor: FLOOR_Y }),
            ChannelSpec::new("S_X", UNIT_SX, Transform::Log10 { floor: FLOOR_SX }),
        ]
    }

    /// Mock inputs as observed with `obs` at a pixel of `pixel_arcmin`: a channel that carries noise uses
    /// `slog10` softened at its noise scale (σ_pix for y, one photon's worth of S_X per pixel), a noise-free
    /// one keeps `log10`.
    pub fn mock_inputs(obs: &ObsConfig, pixel_arcmin: f64) -> Vec<ChannelSpec> {
        let mut ch = Self::mock_clean_inputs();
        if obs.y_noise_arcmin > 0.0 {
            ch[0].transform = Transform::Slog10 {
                softening: obs.y_noise_per_pixel(pixel_arcmin),
            };
        }
        if obs.xray_counts {
            ch[1].transform = Transform::Slog10 {
                softening: obs.sx_per_count(pixel_arcmin),
            };
        }
        ch
    }
}

const UNIT_SIGMA: &str = "M_sun kpc^-2";
const UNIT_Y: &str = "1";
const UNIT_SX: &str = "erg s^-1 cm^-2 arcmin^-2";

/// Standardisation constants of one channel, in transformed units t.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    #[serde(flatten)]
    pub channel: ChannelSpec,
    /// Mean and (population) standard deviation of t over every training pixel.
    pub mean: f64,
    pub std: f64,
    /// 1st, 50th and 99th percentiles of t (histogram estimate, see [`StatsAccumulator`]).
    pub p01: f64,
    pub p50: f64,
    pub p99: f64,
    /// Exact extremes of t.
    pub min: f64,
    pub max: f64,
}

impl ChannelStats {
    /// Physical value → standardised z.
    pub fn standardise(&self, x: f64) -> f64 {
        (self.channel.transform.forward(x) - self.mean) / self.std
    }

    /// Standardised z → physical value.
    pub fn destandardise(&self, z: f64) -> f64 {
        self.channel.transform.inverse(z * self.std + self.mean)
    }
}

/// Which group of channels an array holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The model condition `[y, S_X]` (as observed).
    Inputs,
    /// The model target `[Σ_gas, Σ_DM]`.
    Targets,
}

/// How percentiles are estimated; written into `stats.json` so a reader knows their precision.
pub const PERCENTILE_METHOD: &str =
    "fixed histogram of t, bin 2^-10 over [-128, 128), linear within a bin, clamped to [min, max]";

/// `stats.json`: the standardisation of every input and target channel, from the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    /// Split the statistics come from (always "train").
    pub split: String,
    pub n_clusters: u64,
    /// Pixels per channel that entered the statistics.
    pub n_pixels: u64,
    pub percentile_method: String,
    pub inputs: Vec<ChannelStats>,
    pub targets: Vec<ChannelStats>,
}

impl NormStats {
    /// Checks that every channel's numbers can standardize data: transform parameter valid, every number finite,
    /// std > 0, `min ≤ p01 ≤ p50 ≤ p99 ≤ max` and the mean within `[min, max]`. A zero or negative std would turn
    /// every pixel into ±inf or flip the data; the message names the channel and the field. (Whether the numbers
    /// describe the data is [`crate::data::dataset::Dataset::open`]'s comparison with a recomputation.)
    pub fn check(&self) -> std::result::Result<(), String> {
        for (group, channels) in [("input", &self.inputs), ("target", &self.targets)] {
            for c in channels {
                let name = &c.channel.name;
                let p = c.channel.transform.parameter();
                if !(p > 0.0 && p.is_finite()) {
                    return Err(format!(
                        "{group} channel '{name}': {} parameter {p} must be positive and finite",
                        c.channel.transform.name()
                    ));
                }
                let fields = [
                    ("mean", c.mean),
                    ("std", c.std),
                    ("p01", c.p01),
                    ("p50", c.p50),
                    ("p99", c.p99),
                    ("min", c.min),
                    ("max", c.max),
                ];
                if let Some((field, v)) = fields.iter().find(|(_, v)| !v.is_finite()) {
                    return Err(format!("{group} channel '{name}': {field} is {v}"));
                }
                if c.std <= 0.0 {
                    return Err(format!(
                        "{group} channel '{name}': std {} must be > 0 (it divides every pixel)",
                        c.std
                    ));
                }
                let order = [c.min, c.p01, c.p50, c.p99, c.max];
                // A hair of slack for the last digits of a decimal round trip.
                let slack = 1e-9 * (c.max - c.min).abs().max(1.0);
                if order.windows(2).any(|w| w[0] > w[1] + slack)
                    || !(c.mean >= c.min - slack && c.mean <= c.max + slack)
                {
                    return Err(format!(
                        "{group} channel '{name}': min {} ≤ p01 {} ≤ p50 {} ≤ p99 {} ≤ max {} with the mean {} \
                         inside does not hold",
                        c.min, c.p01, c.p50, c.p99, c.max, c.mean
                    ));
                }
            }
        }
        Ok(())
    }

    /// The channel statistics of a group.
    pub fn group(&self, g: Group) -> &[ChannelStats] {
        match g {
            Group::Inputs => &self.inputs,
            Group::Targets => &self.targets,
        }
    }

    /// Physical → standardised, in place, on a `[N, C, H, W]` array of group `g`.
    pub fn apply(&self, g: Group, data: &mut [f32], shape: [usize; 4]) -> Result<()> {
        self.map_channels(g, data, shape, ChannelStats::standardise)
    }

    /// Standardised → physical, in place, on a `[N, C, H, W]` array of group `g`.
    pub fn inverse(&self, g: Group, data: &mut [f32], shape: [usize; 4]) -> Result<()> {
        self.map_channels(g, data, shape, ChannelStats::destandardise)
    }

    /// Applies `f(channel, value)` in f64 to every pixel, after checking the shape matches the group.
    fn map_channels(
        &self,
        g: Group,
        data: &mut [f32],
        shape: [usize; 4],
        f: fn(&ChannelStats, f64) -> f64,
    ) -> Result<()> {
        let ch = self.group(g);
        let [n, c, h, w] = shape;
        if c != ch.len() || n * c * h * w != data.len() {
            return Err(Error::Shape {
                what: format!("{g:?} array of {} values", data.len()),
                got: shape.to_vec(),
                expected: format!("[N,{},H,W] with N·C·H·W = {}", ch.len(), data.len()),
            });
        }
        let plane = h * w;
        if plane == 0 {
            return Ok(());
        }
        for (k, block) in data.chunks_exact_mut(plane).enumerate() {
            let cs = &ch[k % c];
            block.iter_mut().for_each(|v| *v = f(cs, *v as f64) as f32);
        }
        Ok(())
    }
}

/// Streaming, order-deterministic accumulation of [`ChannelStats`] for one group of channels: clusters are pushed
/// in index order and every sum runs sequentially in f64, so the result does not depend on thread count.
///
/// Mean and std use sums of t − K with K the first value (shifted sums: no cancellation, exact order).
/// Percentiles come from a fixed-width histogram of t ([`PERCENTILE_METHOD`]), so memory stays at 2 MiB per
/// channel whatever the dataset size; they are accurate to one bin (≈ 0.001 in t).
#[derive(Debug, Clone)]
pub struct StatsAccumulator {
    channels: Vec<ChannelSpec>,
    acc: Vec<ChannelAcc>,
    n_clusters: u64,
}

#[derive(Debug, Clone)]
struct ChannelAcc {
    n: u64,
    shift: f64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
    hist: Vec<u64>,
}

const HIST_LO: f64 = -128.0;
const HIST_BINS_PER_UNIT: f64 = 1024.0;
const HIST_BINS: usize = 256 * 1024;

impl ChannelAcc {
    fn new() -> Self {
        ChannelAcc {
            n: 0,
            shift: f64::NAN,
            sum: 0.0,
            sum_sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            hist: vec![0; HIST_BINS],
        }
    }

    fn push(&mut self, t: f64) {
        if self.n == 0 {
            self.shift = t;
        }
        self.n += 1;
        let d = t - self.shift;
        self.sum += d;
        self.sum_sq += d * d;
        self.min = self.min.min(t);
        self.max = self.max.max(t);
        let b = ((t - HIST_LO) * HIST_BINS_PER_UNIT).floor();
        self.hist[b.clamp(0.0, (HIST_BINS - 1) as f64) as usize] += 1;
    }

    /// Percentile q ∈ \[0, 1\] at rank q·(n−1) (numpy's default convention), interpolated within its bin.
    fn percentile(&self, q: f64) -> f64 {
        let rank = q * (self.n - 1) as f64;
        let mut below = 0u64;
        for (b, &count) in self.hist.iter().enumerate() {
            if count > 0 && (below + count) as f64 > rank {
                let frac = (rank - below as f64 + 0.5) / count as f64;
                let t = HIST_LO + (b as f64 + frac) / HIST_BINS_PER_UNIT;
                return t.clamp(self.min, self.max);
            }
            below += count;
        }
        self.max
    }
}

impl StatsAccumulator {
    pub fn new(channels: &[ChannelSpec]) -> Self {
        StatsAccumulator {
            channels: channels.to_vec(),
            acc: channels.iter().map(|_| ChannelAcc::new()).collect(),
            n_clusters: 0,
        }
    }

    /// Adds one cluster's `[C, H, W]` array (physical units).
    pub fn push_cluster(&mut self, data: &[f32]) {
        let c = self.channels.len();
        let plane = data.len() / c.max(1);
        for (k, block) in data.chunks_exact(plane.max(1)).take(c).enumerate() {
            let tr = self.channels[k].transform;
            let acc = &mut self.acc[k];
            block.iter().for_each(|&v| acc.push(tr.forward(v as f64)));
        }
        self.n_clusters += 1;
    }

    pub fn n_clusters(&self) -> u64 {
        self.n_clusters
    }

    /// Final statistics; errors if a channel is empty, non-finite or constant (a standardisation by σ = 0 or NaN
    /// would poison training silently).
    pub fn finish(&self) -> Result<Vec<ChannelStats>> {
        self.channels
            .iter()
            .zip(&self.acc)
            .map(|(spec, a)| {
                let n = a.n as f64;
                let mean_d = a.sum / n;
                let var = (a.sum_sq / n - mean_d * mean_d).max(0.0);
                let std = var.sqrt();
                if a.n == 0 || !(std > 0.0 && std.is_finite() && mean_d.is_finite()) {
                    return Err(Error::invalid(
                        format!("channel '{}'", spec.name),
                        format!(
                            "cannot standardise: {} pixels, mean {}, std {std} (need finite values with nonzero spread)",
                            a.n,
                            a.shift + mean_d
                        ),
                    ));
                }
                Ok(ChannelStats {
                    channel: spec.clone(),
                    mean: a.shift + mean_d,
                    std,
                    p01: a.percentile(0.01),
                    p50: a.percentile(0.50),
                    p99: a.percentile(0.99),
                    min: a.min,
                    max: a.max,
                })
            })
            .collect()
    }

    /// Pixels per channel seen so far.
    pub fn n_pixels(&self) -> u64 {
        self.acc.first().map_or(0, |a| a.n)
    }
}

/// Builds [`NormStats`] from the two accumulators of the training split.
pub fn norm_stats(inputs: &StatsAccumulator, targets: &StatsAccumulator) -> Result<NormStats> {
    Ok(NormStats {
        split: "train".to_string(),
        n_clusters: targets.n_clusters(),
        n_pixels: targets.n_pixels(),
        percentile_method: PERCENTILE_METHOD.to_string(),
        inputs: inputs.finish()?,
        targets: targets.finish()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs()
    }

    #[test]
    fn slog10_limits() {
        let s = 2.5e-6;
        let t = Transform::Slog10 { softening: s };
        assert!((t.forward(0.0) - s.log10()).abs() < 1e-12);
        assert!((t.forward(1e-2) - (1e-2f64).log10()).abs() < 1e-6);
        // Far below zero the conjugate form keeps full precision: u ≈ s²/|x|.
        let x = -1e3;
        assert!(rel(10f64.powf(t.forward(x)), s * s / 1e3) < 1e-9);
        for x in [-1e-3, -3e-6, -1e-7, 0.0, 1e-7, 4e-6, 1.0] {
            let back = t.inverse(t.forward(x));
            assert!((back - x).abs() <= 1e-12 * x.abs().max(s), "{x} -> {back}");
        }
    }

    #[test]
    fn log10_floors_and_keeps_nan() {
        let t = Transform::Log10 { floor: 1e2 };
        assert_eq!(t.forward(0.0), 2.0);
        assert_eq!(t.forward(-5.0), 2.0);
        assert!(t.forward(f64::NAN).is_nan());
        assert!(rel(t.inverse(t.forward(3.7e8)), 3.7e8) < 1e-14);
    }

    #[test]
    fn channel_spec_flattens_in_toml_and_json() {
        let ch = ChannelSpec::new("y", "1", Transform::Slog10 { softening: 2.5e-6 });
        let toml_text = toml::to_string(&ch).unwrap();
        assert!(toml_text.contains("transform = \"slog10\""), "{toml_text}");
        assert!(toml_text.contains("softening"), "{toml_text}");
        assert_eq!(toml::from_str::<ChannelSpec>(&toml_text).unwrap(), ch);
        let json = serde_json::to_string(&ch).unwrap();
        assert_eq!(serde_json::from_str::<ChannelSpec>(&json).unwrap(), ch);
    }

    #[test]
    fn accumulator_moments_and_percentiles() {
        // One channel holding t = 0.000, 0.001, ..., 0.999 (x = 10^t): mean 0.4995, std √((n²−1)/12)/1000.
        let spec = [ChannelSpec::new(
            "a",
            "1",
            Transform::Log10 { floor: 1e-30 },
        )];
        let mut acc = StatsAccumulator::new(&spec);
        let data: Vec<f32> = (0..1000)
            .map(|i| 10f64.powf(i as f64 / 1000.0) as f32)
            .collect();
        acc.push_cluster(&data);
        let s = &acc.finish().unwrap()[0];
        assert!((s.mean - 0.4995).abs() < 1e-6, "{}", s.mean);
        let std = ((1000.0f64 * 1000.0 - 1.0) / 12.0).sqrt() / 1000.0;
        assert!((s.std - std).abs() < 1e-6);
        assert!((s.p50 - 0.4995).abs() < 2e-3, "{}", s.p50);
        assert!((s.p01 - 0.00999).abs() < 2e-3, "{}", s.p01);
        assert!((s.p99 - 0.98901).abs() < 2e-3, "{}", s.p99);
    }

    #[test]
    fn constant_channel_is_an_error() {
        let spec = [ChannelSpec::new("a", "1", Transform::Log10 { floor: 1.0 })];
        let mut acc = StatsAccumulator::new(&spec);
        acc.push_cluster(&[0.0; 16]);
        let e = acc.finish().unwrap_err().to_string();
        assert!(e.contains("channel 'a'"), "{e}");
    }

    #[test]
    fn apply_checks_shape() {
        let spec = ChannelSpec::mock_targets();
        let mut acc = StatsAccumulator::new(&spec);
        acc.push_cluster(&[1e3, 1e4, 1e5, 1e6, 1e4, 1e5, 1e6, 1e7]);
        let ns = norm_stats(&acc, &acc).unwrap();
        let mut x = vec![1e5f32; 8];
        assert!(ns.apply(Group::Targets, &mut x, [1, 3, 1, 2]).is_err());
        ns.apply(Group::Targets, &mut x, [1, 2, 2, 2]).unwrap();
        ns.inverse(Group::Targets, &mut x, [1, 2, 2, 2]).unwrap();
        assert!(x.iter().all(|v| rel(*v as f64, 1e5) < 1e-6));
    }
}
