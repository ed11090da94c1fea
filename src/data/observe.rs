//! The observation model, applied to the inputs only (docs/mock-clusters.md §5): beam (separable pixel-integrated
//! Gaussian) then noise (white Gaussian for y, Poisson counts with background for S_X). Targets are always the clean
//! truth.

use serde::{Deserialize, Serialize};

use super::rng::{normal_cdf, Rng};

/// keV in erg.
pub const KEV_ERG: f64 = 1.602_176_634e-9;

/// Observation presets (docs/mock-clusters.md §5 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ObsPreset {
    /// No beam, no noise.
    #[default]
    Clean,
    /// 1′ SZ beam with white noise; 15″ X-ray PSF with Poisson counts and background.
    Realistic,
}

impl std::str::FromStr for ObsPreset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "clean" => Ok(ObsPreset::Clean),
            "realistic" => Ok(ObsPreset::Realistic),
            other => Err(format!(
                "unknown observation preset '{other}' (expected clean or realistic)"
            )),
        }
    }
}

/// Instrument parameters. Zero beams and zero noise mean "none".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObsConfig {
    pub preset: ObsPreset,
    /// SZ beam FWHM \[arcmin\]; 0 = no beam.
    pub sz_beam_fwhm_arcmin: f64,
    /// White y-noise level \[y · arcmin\]; per pixel σ = this / pixel side \[arcmin\]. 0 = no noise.
    pub y_noise_arcmin: f64,
    /// X-ray PSF FWHM \[arcsec\]; 0 = no PSF.
    pub xray_psf_fwhm_arcsec: f64,
    /// Draw Poisson counts for S_X.
    pub xray_counts: bool,
    /// Effective area × exposure time \[cm² s\].
    pub aeff_texp_cm2_s: f64,
    /// Mean photon energy \[keV\].
    pub photon_energy_kev: f64,
    /// X-ray background \[counts arcmin⁻²\], not subtracted.
    pub xray_background_per_arcmin2: f64,
}

impl Default for ObsConfig {
    fn default() -> Self {
        Self::clean()
    }
}

impl ObsConfig {
    /// Noise-free, beam-free inputs.
    pub fn clean() -> Self {
        ObsConfig {
            preset: ObsPreset::Clean,
            sz_beam_fwhm_arcmin: 0.0,
            y_noise_arcmin: 0.0,
            xray_psf_fwhm_arcsec: 0.0,
            xray_counts: false,
            aeff_texp_cm2_s: 2.5e7,
            photon_energy_kev: 1.0,
            xray_background_per_arcmin2: 10.0,
        }
    }

    /// The `realistic` preset of docs/mock-clusters.md §5.
    pub fn realistic() -> Self {
        ObsConfig {
            preset: ObsPreset::Realistic,
            sz_beam_fwhm_arcmin: 1.0,
            y_noise_arcmin: 1e-6,
            xray_psf_fwhm_arcsec: 15.0,
            xray_counts: true,
            ..Self::clean()
        }
    }

    /// The configuration of a named preset.
    pub fn from_preset(p: ObsPreset) -> Self {
        match p {
            ObsPreset::Clean => Self::clean(),
            ObsPreset::Realistic => Self::realistic(),
        }
    }

    /// Range-checks every instrument parameter, naming it: zero means "none" for beams and noise; the bounds keep
    /// the beam padding (5σ) a fraction of any sensible map.
    pub fn validate(&self) -> crate::Result<()> {
        let ranges = [
            ("sz_beam_fwhm_arcmin", self.sz_beam_fwhm_arcmin, 0.0, 60.0),
            ("y_noise_arcmin", self.y_noise_arcmin, 0.0, 1.0),
            (
                "xray_psf_fwhm_arcsec",
                self.xray_psf_fwhm_arcsec,
                0.0,
                3600.0,
            ),
            (
                "aeff_texp_cm2_s",
                self.aeff_texp_cm2_s,
                f64::MIN_POSITIVE,
                1e15,
            ),
            (
                "photon_energy_kev",
                self.photon_energy_kev,
                f64::MIN_POSITIVE,
                1e3,
            ),
            (
                "xray_background_per_arcmin2",
                self.xray_background_per_arcmin2,
                0.0,
                1e9,
            ),
        ];
        for (name, v, lo, hi) in ranges {
            if !(v >= lo && v <= hi) {
                let lower = if lo > 0.0 {
                    "(0".to_string()
                } else {
                    format!("[{lo}")
                };
                return Err(crate::Error::Config(format!(
                    "obs.{name} = {v}: must be in {lower}, {hi}]"
                )));
            }
        }
        Ok(())
    }

    /// Whether any beam or noise is applied.
    pub fn is_clean(&self) -> bool {
        self.sz_beam_fwhm_arcmin <= 0.0
            && self.y_noise_arcmin <= 0.0
            && self.xray_psf_fwhm_arcsec <= 0.0
            && !self.xray_counts
    }

    /// Per-pixel y noise σ for a pixel of side `pixel_arcmin`.
    pub fn y_noise_per_pixel(&self, pixel_arcmin: f64) -> f64 {
        self.y_noise_arcmin / pixel_arcmin
    }

    /// S_X of one detected photon in one pixel \[erg s⁻¹ cm⁻² arcmin⁻²\]: the softening of the `slog10` transform.
    pub fn sx_per_count(&self, pixel_arcmin: f64) -> f64 {
        self.photon_energy_kev * KEV_ERG / (pixel_arcmin * pixel_arcmin * self.aeff_texp_cm2_s)
    }

    /// Padding \[pixels\] needed so the widest beam sees no edge: ⌈5σ_px⌉.
    pub fn padding_px(&self, pixel_arcmin: f64) -> usize {
        let sz = fwhm_to_sigma(self.sz_beam_fwhm_arcmin) / pixel_arcmin;
        let xr = fwhm_to_sigma(self.xray_psf_fwhm_arcsec / 60.0) / pixel_arcmin;
        (5.0 * sz.max(xr)).ceil() as usize
    }
}

/// Gaussian σ from FWHM.
pub fn fwhm_to_sigma(fwhm: f64) -> f64 {
    fwhm / (8.0 * std::f64::consts::LN_2).sqrt()
}

/// Pixel-integrated Gaussian kernel K_m = Φ((m+½)/σ) − Φ((m−½)/σ), m = −r..=r with r = ⌈5σ⌉, normalised to unit
/// sum. σ in pixels; σ ≤ 0 gives the identity kernel \[1\].
pub fn beam_kernel(sigma_px: f64) -> Vec<f64> {
    if sigma_px <= 0.0 {
        return vec![1.0];
    }
    let r = (5.0 * sigma_px).ceil() as i64;
    let mut k: Vec<f64> = (-r..=r)
        .map(|m| normal_cdf((m as f64 + 0.5) / sigma_px) - normal_cdf((m as f64 - 0.5) / sigma_px))
        .collect();
    let s: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k
}

/// Separable convolution of an `n×n` map with `kernel` along rows then columns, keeping the size ('same'; values
/// beyond the edge count as zero). Callers render on a padded grid and crop so that edges never matter.
pub fn convolve_separable(map: &[f64], n: usize, kernel: &[f64]) -> Vec<f64> {
    if kernel.len() == 1 {
        return map.iter().map(|v| v * kernel[0]).collect();
    }
    let r = (kernel.len() / 2) as isize;
    let pass = |src: &[f64], along_rows: bool| -> Vec<f64> {
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut acc = 0.0;
                for (t, kv) in kernel.iter().enumerate() {
                    let o = t as isize - r;
                    let (ii, jj) = if along_rows {
                        (i as isize, j as isize + o)
                    } else {
                        (i as isize + o, j as isize)
                    };
                    if ii >= 0 && jj >= 0 && (ii as usize) < n && (jj as usize) < n {
                        acc += kv * src[ii as usize * n + jj as usize];
                    }
                }
                out[i * n + j] = acc;
            }
        }
        out
    };
    let rows = pass(map, true);
    pass(&rows, false)
}

/// Crops the central `n×n` of an `m×m` map.
pub fn crop(map: &[f64], m: usize, n: usize) -> Vec<f64> {
    let p = (m - n) / 2;
    let mut out = Vec::with_capacity(n * n);
    for i in 0..n {
        out.extend_from_slice(&map[(i + p) * m + p..(i + p) * m + p + n]);
    }
    out
}

/// Adds white Gaussian noise of standard deviation `sigma` in place.
pub fn add_white_noise(map: &mut [f64], sigma: f64, rng: &mut Rng) {
    if sigma > 0.0 {
        map.iter_mut().for_each(|v| *v += sigma * rng.normal());
    }
}

/// Replaces S_X by its Poisson-count estimate with background (docs/mock-clusters.md §5): λ = S_X Ω A t / E + b Ω,
/// N ~ Poisson(λ), S_X,obs = N E / (Ω A t). Background is not subtracted, so the map stays ≥ 0.
pub fn poisson_xray(map: &mut [f64], obs: &ObsConfig, pixel_arcmin: f64, rng: &mut Rng) {
    let per_count = obs.sx_per_count(pixel_arcmin);
    let bkg = obs.xray_background_per_arcmin2 * pixel_arcmin * pixel_arcmin;
    for v in map.iter_mut() {
        let lambda = *v / per_count + bkg;
        *v = rng.poisson(lambda) as f64 * per_count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        let k = beam_kernel(1.08);
        assert_eq!(k.len(), 2 * 6 + 1);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        for i in 0..k.len() {
            assert!((k[i] - k[k.len() - 1 - i]).abs() < 1e-15);
        }
        assert_eq!(beam_kernel(0.0), vec![1.0]);
    }

    #[test]
    fn convolution_conserves_the_sum_away_from_edges() {
        let n = 33;
        let mut m = vec![0.0; n * n];
        m[16 * n + 16] = 1.0;
        let c = convolve_separable(&m, n, &beam_kernel(1.5));
        assert!((c.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(c[16 * n + 16] < 1.0 && c[16 * n + 17] > 0.0);
    }
}
