//! 2-D power spectra, cross spectra, and the bias b(k) and cross-correlation coefficient r(k) between predicted
//! and true maps (\[H25\] §4, their P(k), b(k), r(k) figures).
//!
//! **Conventions** (a caller comparing with other codes needs these):
//! - DFT F(k) = Σ_x f(x) e^{−i k·x} of the physical map (no window, no mean subtraction: k = 0 is excluded and
//!   the other modes do not see the mean).
//! - Power per mode P(k) = |F(k)|² A_pix / N_pix with A_pix the pixel area in **Mpc²** and N_pix = N²: white
//!   noise of variance σ² has ⟨P⟩ = σ² A_pix at every k, and Parseval reads
//!   Σ_{k≠0} P(k) = A_pix Σ_x (f − f̄)² = N_pix A_pix Var(f) (population variance). Units: (map unit)² Mpc².
//! - Cross spectrum per mode P_×(k) = Re(F_a F_b*) A_pix / N_pix.
//! - Wavenumbers k = 2π/λ in **rad Mpc⁻¹**; fundamental k_f = 2π/L, Nyquist k_Nyq = π/Δ = (N/2) k_f.
//! - Bins of width k_f centred on multiples of k_f: bin j (j = 1..=N/2) holds the modes with
//!   (j − ½) k_f ≤ |k| < (j + ½) k_f, the last bin closed at k_Nyq (it is half as wide). The corner modes with
//!   |k| > k_Nyq are excluded: they are not isotropically sampled. A bin's P is the mean over its modes (both k and
//!   −k are counted; they carry the same power for a real map). [`SpectrumBins::k_eff`] is the mean |k| of each
//!   bin's modes, [`SpectrumBins::k_nyquist`] lets callers form "k < k_Nyq/2".
//! - b(k) = √(P_pred/P_true), r(k) = P_× / √(P_pred P_true), from the binned spectra of one map pair.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::Serialize;

use crate::data::dataset::MapGeometry;
use crate::{Error, Result};

/// The k binning of maps of one geometry (serialised for reports; build it with [`SpectrumBins::new`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpectrumBins {
    /// Pixels per side N.
    pub n_pix: usize,
    /// Pixel area \[Mpc²\].
    pub pixel_area_mpc2: f64,
    /// Fundamental k_f = 2π/L \[rad Mpc⁻¹\].
    pub k_fundamental: f64,
    /// Nyquist k_Nyq = π/Δ \[rad Mpc⁻¹\].
    pub k_nyquist: f64,
    /// Bin edges \[rad Mpc⁻¹\]: (j − ½) k_f for j = 1..=N/2, then k_Nyq.
    pub edges: Vec<f64>,
    /// Mean |k| of the modes of each bin \[rad Mpc⁻¹\].
    pub k_eff: Vec<f64>,
    /// Number of DFT modes per bin (k and −k both counted).
    pub n_modes: Vec<usize>,
    /// Bin of each mode in DFT order (row-major `[ky, kx]`), `u32::MAX` for k = 0 and the corners.
    #[serde(skip)]
    mode_bin: Vec<u32>,
}

impl SpectrumBins {
    /// The binning of N×N maps of `geometry` (N even, ≥ 4).
    pub fn new(geometry: &MapGeometry) -> Result<Self> {
        let n = geometry.n_pix;
        if n < 4
            || !n.is_multiple_of(2)
            || !(geometry.pixel_kpc.is_finite() && geometry.pixel_kpc > 0.0)
        {
            return Err(Error::Config(format!(
                "power spectra need an even map size ≥ 4 and a positive pixel size, got n_pix = {n}, pixel_kpc = {}",
                geometry.pixel_kpc
            )));
        }
        let pixel_mpc = geometry.pixel_kpc / 1000.0;
        let k_f = 2.0 * std::f64::consts::PI / (n as f64 * pixel_mpc);
        let half = n / 2;
        let k_nyq = half as f64 * k_f;
        let nb = half;
        let mut edges: Vec<f64> = (1..=nb).map(|j| (j as f64 - 0.5) * k_f).collect();
        edges.push(k_nyq);
        let mut mode_bin = vec![u32::MAX; n * n];
        let mut k_sum = vec![0.0; nb];
        let mut n_modes = vec![0usize; nb];
        let freq = |m: usize| {
            if m < half {
                m as f64
            } else {
                m as f64 - n as f64
            }
        };
        for my in 0..n {
            for mx in 0..n {
                // |k| in units of k_f; bins are centred on integers.
                let kk = freq(mx).hypot(freq(my));
                if kk == 0.0 || kk > half as f64 {
                    continue;
                }
                let b = ((kk + 0.5).floor() as usize).clamp(1, nb) - 1;
                mode_bin[my * n + mx] = b as u32;
                k_sum[b] += kk * k_f;
                n_modes[b] += 1;
            }
        }
        let k_eff = k_sum
            .iter()
            .zip(&n_modes)
            .map(|(s, &c)| s / c as f64)
            .collect();
        Ok(SpectrumBins {
            n_pix: n,
            pixel_area_mpc2: pixel_mpc * pixel_mpc,
            k_fundamental: k_f,
            k_nyquist: k_nyq,
            edges,
            k_eff,
            n_modes,
            mode_bin,
        })
    }

    /// Number of k bins (N/2).
    pub fn len(&self) -> usize {
        self.n_modes.len()
    }

    /// Whether there are no bins.
    pub fn is_empty(&self) -> bool {
        self.n_modes.is_empty()
    }

    /// Mean over each bin's modes of `per_mode(index)` (a per-mode power in DFT order).
    fn bin_mean(&self, per_mode: impl Fn(usize) -> f64) -> Vec<f64> {
        let mut sum = vec![0.0; self.len()];
        for (i, &b) in self.mode_bin.iter().enumerate() {
            if b != u32::MAX {
                sum[b as usize] += per_mode(i);
            }
        }
        sum.iter()
            .zip(&self.n_modes)
            .map(|(s, &c)| s / c as f64)
            .collect()
    }

    /// A/N, the factor turning |F|² into P.
    fn norm(&self) -> f64 {
        self.pixel_area_mpc2 / (self.n_pix * self.n_pix) as f64
    }

    /// Binned auto spectrum P(k) of a map given by its DFT ([`Fft2::forward`]).
    pub fn power(&self, f: &[Complex<f64>]) -> Vec<f64> {
        let c = self.norm();
        self.bin_mean(|i| f[i].norm_sqr() * c)
    }

    /// Binned cross spectrum P_×(k) = ⟨Re(F_a F_b*)⟩ A/N of two maps given by their DFTs.
    pub fn cross(&self, a: &[Complex<f64>], b: &[Complex<f64>]) -> Vec<f64> {
        let c = self.norm();
        self.bin_mean(|i| (a[i].re * b[i].re + a[i].im * b[i].im) * c)
    }

    /// Unbinned power of every mode in DFT order (k = 0 and the corners included): the quantity of Parseval's
    /// identity Σ_{all k} P = A_pix Σ_x f².
    pub fn mode_power(&self, f: &[Complex<f64>]) -> Vec<f64> {
        let c = self.norm();
        f.iter().map(|z| z.norm_sqr() * c).collect()
    }
}

/// A reusable 2-D forward FFT of N×N maps (plan and buffers; one per thread).
pub struct Fft2 {
    n: usize,
    plan: Arc<dyn Fft<f64>>,
    scratch: Vec<Complex<f64>>,
    buf: Vec<Complex<f64>>,
}

impl Fft2 {
    /// A forward 2-D FFT of N×N maps.
    pub fn new(n: usize) -> Self {
        let plan = FftPlanner::new().plan_fft_forward(n);
        let scratch = vec![Complex::default(); plan.get_inplace_scratch_len()];
        Fft2 {
            n,
            plan,
            scratch,
            buf: vec![Complex::default(); n * n],
        }
    }

    /// The DFT F\[ky·N + kx\] = Σ_{y,x} f\[y·N + x\] e^{−2πi(kx x + ky y)/N} of a row-major N×N map.
    pub fn forward(&mut self, map: &[f32]) -> Vec<Complex<f64>> {
        let n = self.n;
        let mut out: Vec<Complex<f64>> = map.iter().map(|&v| Complex::new(v as f64, 0.0)).collect();
        self.plan.process_with_scratch(&mut out, &mut self.scratch);
        // Columns: transpose, transform rows, transpose back.
        for y in 0..n {
            for x in 0..n {
                self.buf[x * n + y] = out[y * n + x];
            }
        }
        self.plan
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        for y in 0..n {
            for x in 0..n {
                out[y * n + x] = self.buf[x * n + y];
            }
        }
        out
    }
}

/// Bias b(k) = √(P_pred/P_true) per bin. Errors if a bin of either spectrum has no power (b undefined).
pub fn bias(p_pred: &[f64], p_true: &[f64]) -> Result<Vec<f64>> {
    check_power(p_pred, p_true)?;
    Ok(p_pred
        .iter()
        .zip(p_true)
        .map(|(p, t)| (p / t).sqrt())
        .collect())
}

/// Cross-correlation coefficient r(k) = P_×/√(P_pred P_true) per bin. Errors if a bin has no power.
pub fn correlation(p_cross: &[f64], p_pred: &[f64], p_true: &[f64]) -> Result<Vec<f64>> {
    check_power(p_pred, p_true)?;
    Ok(p_cross
        .iter()
        .zip(p_pred.iter().zip(p_true))
        .map(|(x, (p, t))| x / (p * t).sqrt())
        .collect())
}

fn check_power(p_pred: &[f64], p_true: &[f64]) -> Result<()> {
    if let Some(b) = (0..p_pred.len()).find(|&b| !(p_pred[b] > 0.0 && p_true[b] > 0.0)) {
        return Err(Error::invalid(
            "power spectrum",
            format!(
                "k bin {b} has no power (P_pred = {}, P_true = {}): b(k) and r(k) are undefined for constant maps",
                p_pred[b], p_true[b]
            ),
        ));
    }
    Ok(())
}

/// P(k) of one N×N physical map of `geometry` (binned as [`SpectrumBins`]); convenience for notebooks.
pub fn power_spectrum(map: &[f32], geometry: &MapGeometry) -> Result<(SpectrumBins, Vec<f64>)> {
    let bins = SpectrumBins::new(geometry)?;
    let n = geometry.n_pix;
    if map.len() != n * n {
        return Err(Error::Shape {
            what: "power_spectrum map".into(),
            got: vec![map.len()],
            expected: format!("{n}×{n} = {} values", n * n),
        });
    }
    let p = bins.power(&Fft2::new(n).forward(map));
    Ok((bins, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;
    use crate::sde::standard_normals_scaled;

    fn geom(n: usize) -> MapGeometry {
        MapGeometry::new(n, 5000.0)
    }

    #[test]
    fn bins_cover_k_f_to_nyquist() {
        let b = SpectrumBins::new(&geom(64)).unwrap();
        assert_eq!(b.len(), 32);
        let kf = 2.0 * std::f64::consts::PI / 5.0;
        assert!((b.k_fundamental - kf).abs() < 1e-12);
        assert!((b.k_nyquist - std::f64::consts::PI / 0.078125).abs() < 1e-9);
        // Modes inside the Nyquist circle, minus k = 0; the corners are excluded.
        let inside = (0..64 * 64)
            .filter(|i| {
                let f = |m: usize| if m < 32 { m as f64 } else { m as f64 - 64.0 };
                let k = f(i % 64).hypot(f(i / 64));
                k > 0.0 && k <= 32.0
            })
            .count();
        assert_eq!(b.n_modes.iter().sum::<usize>(), inside);
        assert_eq!(b.n_modes[0], 8); // (±1,0), (0,±1), (±1,±1)
        assert!(b.k_eff.windows(2).all(|w| w[1] > w[0]));
        assert!(SpectrumBins::new(&geom(63)).is_err());
    }

    /// White noise of variance σ²: ⟨P⟩ = σ² A_pix in every bin, within 4 standard errors of the mean over
    /// `maps` maps (each bin's modes come in ± pairs, so the number of independent exponential estimates is
    /// about n_modes/2 per map).
    #[test]
    fn white_noise_is_flat_at_sigma2_pixel_area() {
        let (n, maps, sigma) = (32usize, 200usize, 3.0);
        let g = geom(n);
        let bins = SpectrumBins::new(&g).unwrap();
        let mut fft = Fft2::new(n);
        let mut rng = stream(42, 0);
        let mut mean = vec![0.0; bins.len()];
        for _ in 0..maps {
            let map = standard_normals_scaled(&mut rng, n * n, sigma);
            for (m, p) in mean.iter_mut().zip(bins.power(&fft.forward(&map))) {
                *m += p / maps as f64;
            }
        }
        let expect = sigma * sigma * bins.pixel_area_mpc2;
        for (b, m) in mean.iter().enumerate() {
            let se = expect / ((bins.n_modes[b] as f64 / 2.0) * maps as f64).sqrt();
            assert!(
                (m - expect).abs() < 4.0 * se,
                "bin {b}: {m} vs {expect} ± {se}"
            );
        }
    }

    #[test]
    fn single_fourier_mode_lands_in_its_bin() {
        let n = 64;
        let g = geom(n);
        let bins = SpectrumBins::new(&g).unwrap();
        let mut fft = Fft2::new(n);
        for (mx, my) in [(3usize, 4usize), (1, 0), (7, 7), (0, 31)] {
            let tau = 2.0 * std::f64::consts::PI;
            let map: Vec<f32> = (0..n * n)
                .map(|i| {
                    let (y, x) = ((i / n) as f64, (i % n) as f64);
                    (5.0 + 2.0 * (tau * (mx as f64 * x + my as f64 * y) / n as f64).cos()) as f32
                })
                .collect();
            let p = bins.power(&fft.forward(&map));
            let kk = (mx as f64).hypot(my as f64);
            let target = kk.round() as usize - 1;
            // Amplitude 2 → |F|² = (2·N²/2)² at ±k: bin power = 2·N⁴·A/N² / n_modes.
            let total = 2.0 * (n * n) as f64 * bins.pixel_area_mpc2;
            for (b, pb) in p.iter().enumerate() {
                if b == target {
                    let rel = pb * bins.n_modes[b] as f64 / total - 1.0;
                    assert!(rel.abs() < 1e-6, "mode ({mx},{my}) bin {b}: {rel}");
                } else {
                    assert!(
                        pb.abs() < 1e-9 * total,
                        "mode ({mx},{my}) leaked into bin {b}: {pb}"
                    );
                }
            }
        }
    }

    /// Parseval: Σ over all N² modes of P(k) = A_pix Σ_x f(x)², and without k = 0, Σ_{k≠0} P = N² A_pix Var(f);
    /// the binned spectrum recovers that sum minus the corner modes, Σ_b n_b P̄_b = Σ_{0<|k|≤k_Nyq} P.
    #[test]
    fn parseval_identity() {
        let n = 32;
        let g = geom(n);
        let bins = SpectrumBins::new(&g).unwrap();
        let mut rng = stream(7, 1);
        let map: Vec<f32> = standard_normals_scaled(&mut rng, n * n, 2.0)
            .into_iter()
            .map(|v| v + 10.0)
            .collect();
        let f = Fft2::new(n).forward(&map);
        let modes = bins.mode_power(&f);
        let a = bins.pixel_area_mpc2;
        let sum_sq: f64 = map.iter().map(|&v| (v as f64).powi(2)).sum();
        let total: f64 = modes.iter().sum();
        assert!((total / (a * sum_sq) - 1.0).abs() < 1e-10);
        let mean = map.iter().map(|&v| v as f64).sum::<f64>() / (n * n) as f64;
        let var = map.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n * n) as f64;
        let no_dc = total - modes[0];
        assert!((no_dc / ((n * n) as f64 * a * var) - 1.0).abs() < 1e-9);
        let binned: f64 = bins
            .power(&f)
            .iter()
            .zip(&bins.n_modes)
            .map(|(p, &c)| p * c as f64)
            .sum();
        let in_circle: f64 = modes
            .iter()
            .zip(&bins.mode_bin)
            .filter(|(_, &b)| b != u32::MAX)
            .map(|(p, _)| p)
            .sum();
        assert!((binned / in_circle - 1.0).abs() < 1e-12);
        assert!(binned < no_dc);
    }

    #[test]
    fn bias_and_correlation_limits() {
        let n = 64;
        let g = geom(n);
        let bins = SpectrumBins::new(&g).unwrap();
        let mut fft = Fft2::new(n);
        let mut rng = stream(3, 2);
        let a = standard_normals_scaled(&mut rng, n * n, 1.0);
        let c = standard_normals_scaled(&mut rng, n * n, 1.0);
        let fa = fft.forward(&a);
        let pa = bins.power(&fa);
        // Identical maps: exactly 1.
        let b = bias(&pa, &pa).unwrap();
        let r = correlation(&bins.cross(&fa, &fa), &pa, &pa).unwrap();
        assert!(b.iter().chain(&r).all(|&v| v == 1.0), "{b:?} {r:?}");
        // Scaled ×2: b = 2, r = 1.
        let a2: Vec<f32> = a.iter().map(|v| 2.0 * v).collect();
        let f2 = fft.forward(&a2);
        let p2 = bins.power(&f2);
        let b = bias(&p2, &pa).unwrap();
        let r = correlation(&bins.cross(&f2, &fa), &p2, &pa).unwrap();
        assert!(b.iter().all(|v| (v - 2.0).abs() < 1e-12));
        assert!(r.iter().all(|v| (v - 1.0).abs() < 1e-12));
        // Independent noise: r ≈ 0 within 5/√(independent modes).
        let fc = fft.forward(&c);
        let pc = bins.power(&fc);
        let r = correlation(&bins.cross(&fc, &fa), &pc, &pa).unwrap();
        for (k, v) in r.iter().enumerate() {
            let lim = 5.0 / (bins.n_modes[k] as f64 / 2.0).sqrt();
            assert!(v.abs() < lim, "bin {k}: r = {v}, limit {lim}");
        }
        // Constant maps have no power: a clear error, not NaN.
        let flat = vec![1f32; n * n];
        let pf = bins.power(&fft.forward(&flat));
        let e = bias(&pf, &pa).unwrap_err().to_string();
        assert!(e.contains("no power"), "{e}");
    }
}
