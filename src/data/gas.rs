//! The intracluster medium (docs/mock-clusters.md §2.4): electron pressure from the universal pressure profile \[A10\],
//! electron density from a simplified \[V06\] model normalised to a gas fraction, temperature T = P_e/n_e (so y and S_X
//! describe one self-consistent gas), the soft-band cooling function and the \[APP05\] mass–temperature relation.

use super::config::{MockConfig, PressureConfig};
use super::cosmology::{Cosmology, KPC_CM, M_PROTON_G, M_SUN_G};
use super::halo::Nfw;
use super::project::Quadrature;

/// Converts n_e \[cm⁻³\] to gas mass density \[M_sun kpc⁻³\]: μ_e m_p KPC³ / M_sun.
pub fn ne_to_rho(cosmo: &Cosmology) -> f64 {
    cosmo.mu_e() * M_PROTON_G * KPC_CM.powi(3) / M_SUN_G
}

/// \[APP05\] M–T relation: k_B T \[keV\] of a system with E(z) M500 = 3.84e14 M_sun (T/5 keV)^1.71.
pub fn t_app05(m500: f64, e_z: f64) -> f64 {
    5.0 * (e_z * m500 / 3.84e14).powf(1.0 / 1.71)
}

/// Generalised-NFW electron pressure P_e(r) \[keV cm⁻³\] \[A10 eqs. 11–13\], without the α'_P(x) term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Upp {
    /// P500 (M500/3e14)^α_P × P0 × boost: everything in front of the shape \[keV cm⁻³\].
    pub amplitude: f64,
    pub c500: f64,
    pub gamma: f64,
    pub alpha: f64,
    pub beta: f64,
    pub r500: f64,
}

impl Upp {
    /// The UPP of a cluster with (M500, R500) at E(z), P0 and c500 after scatter, α_P as configured.
    pub fn new(
        m500: f64,
        r500: f64,
        e_z: f64,
        p0: f64,
        c500: f64,
        alpha_p: f64,
        cfg: &PressureConfig,
    ) -> Self {
        let m3 = m500 / 3e14;
        let p500 = 1.65e-3 * e_z.powf(8.0 / 3.0) * m3.powf(2.0 / 3.0);
        Upp {
            amplitude: p500 * m3.powf(alpha_p) * p0,
            c500,
            gamma: cfg.gamma,
            alpha: cfg.alpha,
            beta: cfg.beta,
            r500,
        }
    }

    /// P_e(r) \[keV cm⁻³\].
    #[inline]
    pub fn pressure(&self, r: f64) -> f64 {
        let x = self.c500 * r / self.r500;
        self.amplitude
            * x.powf(-self.gamma)
            * (1.0 + x.powf(self.alpha)).powf(-(self.beta - self.gamma) / self.alpha)
    }
}

/// Shape parameters of the electron-density model n_e(r) = n_e0 (r/r_c)^{−α/2} (1+r²/r_c²)^{−3β/2+α/4}
/// (1+r³/r_sg³)^{−ε/6} \[V06 eq. 3 with one β component and γ_V = 3\].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DensityShape {
    pub rc: f64,
    pub alpha_n: f64,
    pub beta_n: f64,
    pub rsg: f64,
    pub epsilon: f64,
}

impl DensityShape {
    /// The unnormalised shape (n_e0 = 1).
    #[inline]
    pub fn eval(&self, r: f64) -> f64 {
        let x = r / self.rc;
        let y = r / self.rsg;
        x.powf(-0.5 * self.alpha_n)
            * (1.0 + x * x).powf(-1.5 * self.beta_n + 0.25 * self.alpha_n)
            * (1.0 + y * y * y).powf(-self.epsilon / 6.0)
    }
}

/// Electron density with its normalisation and the baryon guard (docs/mock-clusters.md §2.4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ElectronDensity {
    pub shape: DensityShape,
    /// Central normalisation \[cm⁻³\].
    pub ne0: f64,
    /// Baryon guard: n_cap(r) = guard f_b ρ_NFW(r) / (μ_e m_p) \[cm⁻³\] per unit ρ_NFW; 0 disables it.
    cap_per_rho: f64,
    halo: Nfw,
}

impl ElectronDensity {
    /// n_e(r) \[cm⁻³\], after the smooth cap n ← n \[1 + (n/n_cap)⁴\]^{-1/4}.
    #[inline]
    pub fn eval(&self, r: f64) -> f64 {
        let n = self.ne0 * self.shape.eval(r);
        if self.cap_per_rho <= 0.0 {
            return n;
        }
        let ncap = self.cap_per_rho * self.halo.density(r);
        let q = n / ncap;
        let q2 = q * q;
        n / (1.0 + q2 * q2).sqrt().sqrt()
    }

    /// Normalises n_e so that the gas mass within R500 is `m_gas` \[M_sun\] with the baryon guard applied. The
    /// ellipsoid has unit volume, so the spherical integral gives the ellipsoidal mass.
    pub fn normalised(
        shape: DensityShape,
        halo: Nfw,
        r500: f64,
        m_gas: f64,
        guard: f64,
        cosmo: &Cosmology,
        quad: &Quadrature,
    ) -> Self {
        let rho_per_ne = ne_to_rho(cosmo);
        let mut d = ElectronDensity {
            shape,
            ne0: 1.0,
            cap_per_rho: 0.0,
            halo,
        };
        d.ne0 = m_gas / (rho_per_ne * d.volume_integral(r500, quad));
        if guard > 0.0 {
            // The cap makes the mass sublinear in n_e0, so a fixed 5 multiplicative passes can stop short
            // (seen: 0.2 % low for a cuspy profile). Solve M(n_e0) = m_gas instead with a secant in ln n_e0,
            // which converges to 1e-10 in a handful of steps; the result is the same fixed point.
            d.cap_per_rho = guard * cosmo.f_baryon() / rho_per_ne;
            let mut x0 = d.ne0.ln();
            let mut mass_at = |ln_ne0: f64| {
                d.ne0 = ln_ne0.exp();
                (rho_per_ne * d.volume_integral(r500, quad) / m_gas).ln()
            };
            let mut f0 = mass_at(x0);
            let mut x1 = x0 - f0;
            for _ in 0..60 {
                let f1 = mass_at(x1);
                if f1.abs() < 1e-10 || f1 == f0 {
                    break;
                }
                let x2 = x1 - f1 * (x1 - x0) / (f1 - f0);
                (x0, f0, x1) = (x1, f1, x2);
            }
            mass_at(x1);
        }
        d
    }

    /// ∫₀^R 4π n_e(r) r² dr \[cm⁻³ kpc³\], in ln r from 1e-7 R (the cusp r^{2−α/2} makes the rest negligible).
    pub fn volume_integral(&self, r_out: f64, quad: &Quadrature) -> f64 {
        volume_integral(|r| self.eval(r), r_out, quad)
    }
}

/// ∫₀^R 4π f(r) r² dr by Gauss–Legendre in ln r over \[1e-7 R, R\].
pub fn volume_integral(mut f: impl FnMut(f64) -> f64, r_out: f64, quad: &Quadrature) -> f64 {
    let (a, b) = ((1e-7 * r_out).ln(), r_out.ln());
    4.0 * std::f64::consts::PI
        * quad.integrate(a, b, |s| {
            let r = s.exp();
            f(r) * r * r * r
        })
}

/// Soft-band cooling function Λ(T) = Λ0 (T/5 keV)^λ_T \[erg cm³ s⁻¹\], T clamped to the configured range.
#[inline]
pub fn cooling(t_kev: f64, cfg: &PressureConfig) -> f64 {
    if cfg.lambda_t == 0.0 {
        return cfg.lambda0;
    }
    cfg.lambda0 * (t_kev.clamp(cfg.t_min_kev, cfg.t_max_kev) / 5.0).powf(cfg.lambda_t)
}

/// A complete spherical gas model: pressure, density, and what the maps need at radius r.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IcmProfile {
    pub pressure: Upp,
    pub density: ElectronDensity,
    /// Profiles vanish beyond this radius \[kpc\].
    pub r_trunc: f64,
    /// n_e / n_H.
    ne_over_nh: f64,
}

impl IcmProfile {
    pub fn new(pressure: Upp, density: ElectronDensity, r_trunc: f64, cosmo: &Cosmology) -> Self {
        IcmProfile {
            pressure,
            density,
            r_trunc,
            ne_over_nh: cosmo.ne_over_nh(),
        }
    }

    /// \[n_e, P_e, ε = n_e n_H Λ(T)\] at radius r, T = P_e/n_e; zero beyond the truncation radius.
    ///
    /// n_e and P_e fall smoothly to zero over the outer quarter of the truncation radius (a raised-cosine taper, so T
    /// is unchanged and ε gets the taper squared). A sharp cut at 3 R200c (the first version) left a visible elliptical
    /// step in Σ_gas of low-mass clusters, where the cut gas is still denser than the background slab; the taper starts
    /// beyond R500c, so gas fractions and normalisations are untouched.
    #[inline]
    pub fn fields(&self, r: f64, cfg: &PressureConfig, out: &mut [f64; 3]) {
        if r >= self.r_trunc {
            *out = [0.0; 3];
            return;
        }
        let w = self.taper(r);
        let ne = self.density.eval(r);
        let pe = self.pressure.pressure(r);
        let lam = cooling(pe / ne, cfg);
        *out = [w * ne, w * pe, w * w * ne * ne / self.ne_over_nh * lam];
    }

    /// Raised-cosine window: 1 inside 0.75 r_trunc, 0 at r_trunc.
    #[inline]
    fn taper(&self, r: f64) -> f64 {
        let r0 = 0.75 * self.r_trunc;
        if r <= r0 {
            return 1.0;
        }
        0.5 * (1.0 + (std::f64::consts::PI * (r - r0) / (self.r_trunc - r0)).cos())
    }

    /// Emission-weighted temperature within the sphere r < r_out \[keV\]: ∫ε T dV / ∫ε dV.
    pub fn emission_weighted_t(&self, r_out: f64, cfg: &PressureConfig, quad: &Quadrature) -> f64 {
        let mut out = [0.0; 3];
        let num = volume_integral(
            |r| {
                self.fields(r, cfg, &mut out);
                out[2] * out[1] / out[0]
            },
            r_out,
            quad,
        );
        let den = volume_integral(
            |r| {
                self.fields(r, cfg, &mut out);
                out[2]
            },
            r_out,
            quad,
        );
        num / den
    }
}

/// f_gas,500 = norm (M500/pivot)^slope × scatter, capped (docs/mock-clusters.md §2.4). `lognormal` is the drawn
/// e^{N(0,σ)}.
pub fn gas_fraction(m500: f64, lognormal: f64, cfg: &MockConfig) -> f64 {
    let d = &cfg.density;
    (d.fgas_norm * (m500 / d.fgas_pivot_msun).powf(d.fgas_slope) * lognormal).min(d.fgas_cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app05_reference() {
        // docs/mock-clusters.md §9 units_reference: T ≈ 7.3 keV for M200c = 1e15 (M500 ≈ 0.68e15) at z = 0.2.
        let t = t_app05(0.68e15, 1.1038);
        assert!((t - 7.3).abs() < 0.3, "{t}");
    }

    #[test]
    fn normalisation_hits_the_gas_mass() {
        let cosmo = Cosmology::default();
        let quad = Quadrature::new(128, 4);
        let halo = Nfw::new(5e14, 4.0, 0.2, &cosmo);
        let (r500, m500) = halo.r500_m500();
        let shape = DensityShape {
            rc: 0.12 * r500,
            alpha_n: 1.2,
            beta_n: 0.65,
            rsg: 0.8 * r500,
            epsilon: 2.0,
        };
        let m_gas = 0.125 * m500;
        let d = ElectronDensity::normalised(shape, halo, r500, m_gas, 0.95, &cosmo, &quad);
        // Independent check with a much finer rule.
        let fine = Quadrature::new(2000, 20);
        let mass = ne_to_rho(&cosmo) * d.volume_integral(r500, &fine);
        assert!((mass / m_gas - 1.0).abs() < 1e-6, "{}", mass / m_gas);
        // The guard keeps the gas below the cosmic baryon share of the halo density everywhere.
        for k in 0..50 {
            let r = r500 * 10f64.powf(-4.0 + 4.5 * k as f64 / 49.0);
            let rho_gas = ne_to_rho(&cosmo) * d.eval(r);
            assert!(rho_gas < cosmo.f_baryon() * halo.density(r), "r = {r}");
        }
    }
}
