//! Reproducible randomness for the mock generator (docs/mock-clusters.md §3).
//!
//! A cluster's seed is `splitmix64(splitmix64(S_split) + i)`; each cluster draws from `ChaCha8Rng` seeded with it,
//! one **stream** per physical component, so adding a component never shifts the draws of the others. The
//! distributions are implemented here on raw `u64`s (uniform = top 53 bits, normal = Box–Muller, Poisson =
//! inversion / PTRS), so maps never change with the version of an external crate.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Independent random streams of one cluster (docs/mock-clusters.md §3). Never renumber: that would change every
/// dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Host = 0,
    Subhalos = 1,
    Merger = 2,
    Background = 3,
    Fluctuations = 4,
    SzNoise = 5,
    XrayCounts = 6,
}

/// The SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixer.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of cluster `index` in a split whose master seed is `split_seed`: `splitmix64(splitmix64(S) + i)`.
pub fn cluster_seed(split_seed: u64, index: u64) -> u64 {
    splitmix64(splitmix64(split_seed).wrapping_add(index))
}

/// A seeded random source with the handful of distributions the generator needs.
#[derive(Clone, Debug)]
pub struct Rng {
    inner: ChaCha8Rng,
    /// Second Box–Muller variate, kept so that normals come in pairs deterministically.
    spare_normal: Option<f64>,
}

impl Rng {
    /// The generator for `stream` of the cluster with seed `seed`.
    pub fn new(seed: u64, stream: Stream) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream as u64);
        Rng {
            inner,
            spare_normal: None,
        }
    }

    /// Next raw 64-bit word.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in [0, 1) from the top 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe for logarithms.
    fn uniform_open0(&mut self) -> f64 {
        1.0 - self.uniform()
    }

    /// Uniform in [lo, hi).
    pub fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal by the Box–Muller transform.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let r = (-2.0 * self.uniform_open0().ln()).sqrt();
        let phi = std::f64::consts::TAU * self.uniform();
        self.spare_normal = Some(r * phi.sin());
        r * phi.cos()
    }

    /// Normal with mean `mu` and standard deviation `sd`.
    pub fn normal_with(&mut self, mu: f64, sd: f64) -> f64 {
        mu + sd * self.normal()
    }

    /// Poisson-distributed count: inversion for small means, PTRS (Hörmann 1993) above 10.
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda < 10.0 {
            // Inversion by sequential search.
            let mut k = 0u64;
            let mut p = (-lambda).exp();
            let mut cdf = p;
            let u = self.uniform();
            while u > cdf {
                k += 1;
                p *= lambda / k as f64;
                cdf += p;
                if p < 1e-300 && cdf >= 1.0 - 1e-15 {
                    break;
                }
            }
            return k;
        }
        // PTRS: transformed rejection with squeeze, Hörmann (1993), Insurance: Math. & Econ. 12, 39.
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let invalpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let lhs = (v * invalpha / (a / (us * us) + b)).ln();
            let rhs = -lambda + k * loglam - ln_gamma(k + 1.0);
            if lhs <= rhs {
                return k as u64;
            }
        }
    }

    /// A uniformly distributed unit quaternion (w, x, y, z): a normalised 4-D Gaussian.
    pub fn unit_quaternion(&mut self) -> [f64; 4] {
        loop {
            let q = [self.normal(), self.normal(), self.normal(), self.normal()];
            let n = q.iter().map(|v| v * v).sum::<f64>().sqrt();
            if n > 1e-12 {
                return [q[0] / n, q[1] / n, q[2] / n, q[3] / n];
            }
        }
    }

    /// An isotropic unit vector in 3-D (normalised Gaussian).
    pub fn unit_vector(&mut self) -> [f64; 3] {
        loop {
            let v = [self.normal(), self.normal(), self.normal()];
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            if n > 1e-12 {
                return [v[0] / n, v[1] / n, v[2] / n];
            }
        }
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error < 1e-13), used by PTRS.
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Standard normal CDF Φ(x).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Complementary error function, |relative error| < 1.2e-7 everywhere (Numerical Recipes `erfcc`, Chebyshev fit).
/// Ample for beam kernels, which are renormalised to unit sum after discretisation.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    // Chebyshev fit in Horner form, innermost coefficient first.
    const C: [f64; 9] = [
        0.170_872_77,
        -0.822_152_23,
        1.488_515_87,
        -1.135_203_98,
        0.278_868_07,
        -0.186_288_06,
        0.096_784_18,
        0.374_091_96,
        1.000_023_68,
    ];
    let poly = C[1..].iter().fold(C[0], |p, &c| c + t * p);
    let r = t * (-z * z - 1.265_512_23 + t * poly).exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_reproducible() {
        let mut a = Rng::new(42, Stream::Host);
        let mut b = Rng::new(42, Stream::Host);
        let mut c = Rng::new(42, Stream::Subhalos);
        let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn distributions_have_the_right_moments() {
        let mut r = Rng::new(7, Stream::Host);
        let n = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let z = r.normal();
            s += z;
            s2 += z * z;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "normal mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "normal var {var}");
        for &lam in &[0.7, 4.0, 25.0, 900.0] {
            let m = 50_000;
            let (mut s, mut s2) = (0.0, 0.0);
            for _ in 0..m {
                let k = r.poisson(lam) as f64;
                s += k;
                s2 += k * k;
            }
            let mean = s / m as f64;
            let var = s2 / m as f64 - mean * mean;
            let se = (lam / m as f64).sqrt();
            assert!((mean - lam).abs() < 5.0 * se, "poisson({lam}) mean {mean}");
            assert!((var / lam - 1.0).abs() < 0.05, "poisson({lam}) var {var}");
        }
    }

    #[test]
    fn special_functions() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_746_068_542_9).abs() < 2e-7);
        assert!((normal_cdf(-2.0) - 0.022_750_131_948_179_2).abs() < 2e-8);
    }
}
