//! Dark-matter haloes: the NFW profile \[NFW97\], its analytic projection \[B96, WB00\], spherical-overdensity radii
//! and the concentration–mass relation \[D08\] (docs/mock-clusters.md §2.1, §4).

use super::config::HaloConfig;
use super::cosmology::Cosmology;

/// m(x) = ln(1+x) − x/(1+x): NFW mass inside r = x r_s in units of 4π ρ_s r_s³.
pub fn m_nfw(x: f64) -> f64 {
    (1.0 + x).ln() - x / (1.0 + x)
}

/// Median concentration c̄(M, z) = A (M/M_piv)^B (1+z)^C of \[D08\] (full sample, Δ = 200c).
pub fn concentration_mean(m200c: f64, z: f64, cfg: &HaloConfig) -> f64 {
    cfg.c_norm * (m200c / cfg.c_pivot_msun).powf(cfg.c_mass_slope) * (1.0 + z).powf(cfg.c_z_slope)
}

/// A spherical NFW halo defined by M200c and c200c.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nfw {
    /// M200c \[M_sun\].
    pub m200: f64,
    /// R200c \[kpc\].
    pub r200: f64,
    /// Concentration c200c.
    pub c: f64,
    /// Scale radius \[kpc\].
    pub rs: f64,
    /// Characteristic density \[M_sun kpc⁻³\].
    pub rho_s: f64,
}

impl Nfw {
    /// The halo of mass `m200` \[M_sun\] and concentration `c` at redshift `z`.
    pub fn new(m200: f64, c: f64, z: f64, cosmo: &Cosmology) -> Self {
        let r200 = cosmo.radius_delta(m200, 200.0, z);
        let rs = r200 / c;
        let rho_s = m200 / (4.0 * std::f64::consts::PI * rs.powi(3) * m_nfw(c));
        Nfw {
            m200,
            r200,
            c,
            rs,
            rho_s,
        }
    }

    /// ρ(r) \[M_sun kpc⁻³\], untruncated.
    pub fn density(&self, r: f64) -> f64 {
        let x = r / self.rs;
        self.rho_s / (x * (1.0 + x) * (1.0 + x))
    }

    /// Mass inside the sphere of radius r \[M_sun\].
    pub fn mass_within(&self, r: f64) -> f64 {
        self.m200 * m_nfw(r / self.rs) / m_nfw(self.c)
    }

    /// Projected surface density Σ(R) = 2 ρ_s r_s g(R/r_s) \[M_sun kpc⁻²\] of the untruncated halo \[WB00 eq. 11\].
    pub fn sigma(&self, r_proj: f64) -> f64 {
        2.0 * self.rho_s * self.rs * nfw_g(r_proj / self.rs)
    }

    /// Mass inside the cylinder of projected radius R \[M_sun\] of the untruncated halo \[B96\].
    pub fn mass_cylinder(&self, r_proj: f64) -> f64 {
        4.0 * std::f64::consts::PI * self.rho_s * self.rs.powi(3) * nfw_h(r_proj / self.rs)
    }

    /// (R500c \[kpc\], M500c \[M_sun\]) of the same spherical halo: solve m(x)/x³ = (500/200) m(c)/c³ by bisection.
    pub fn r500_m500(&self) -> (f64, f64) {
        let target = 2.5 * m_nfw(self.c) / self.c.powi(3);
        // m(x)/x³ decreases monotonically in x; x500 < c.
        let (mut lo, mut hi) = (1e-6 * self.c, self.c);
        while (hi - lo) > 1e-12 * self.c {
            let mid = 0.5 * (lo + hi);
            if m_nfw(mid) / mid.powi(3) > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let x500 = 0.5 * (lo + hi);
        (x500 * self.rs, self.m200 * m_nfw(x500) / m_nfw(self.c))
    }
}

/// The dimensionless projected NFW profile g(x) \[WB00\]; linear interpolation across |x − 1| < 1e-4 where the
/// closed forms cancel catastrophically.
pub fn nfw_g(x: f64) -> f64 {
    const EPS: f64 = 1e-4;
    if (x - 1.0).abs() < EPS {
        let (a, b) = (nfw_g_exact(1.0 - EPS), nfw_g_exact(1.0 + EPS));
        return a + (b - a) * (x - (1.0 - EPS)) / (2.0 * EPS);
    }
    nfw_g_exact(x)
}

fn nfw_g_exact(x: f64) -> f64 {
    let x2m1 = x * x - 1.0;
    if x < 1.0 {
        (1.0 - 2.0 / (1.0 - x * x).sqrt() * ((1.0 - x) / (1.0 + x)).sqrt().atanh()) / x2m1
    } else {
        (1.0 - 2.0 / x2m1.sqrt() * ((x - 1.0) / (x + 1.0)).sqrt().atan()) / x2m1
    }
}

/// Cylinder-mass function h(x) of the projected NFW \[B96\]: M_2D(<R) = 4π ρ_s r_s³ h(R/r_s).
pub fn nfw_h(x: f64) -> f64 {
    const EPS: f64 = 1e-4;
    if (x - 1.0).abs() < EPS {
        let (a, b) = (nfw_h_exact(1.0 - EPS), nfw_h_exact(1.0 + EPS));
        return a + (b - a) * (x - (1.0 - EPS)) / (2.0 * EPS);
    }
    nfw_h_exact(x)
}

fn nfw_h_exact(x: f64) -> f64 {
    if x < 1.0 {
        (x / 2.0).ln() + 2.0 / (1.0 - x * x).sqrt() * ((1.0 - x) / (1.0 + x)).sqrt().atanh()
    } else {
        (x / 2.0).ln() + 2.0 / (x * x - 1.0).sqrt() * ((x - 1.0) / (x + 1.0)).sqrt().atan()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concentration_reference_values() {
        // docs/mock-clusters.md §2.1: c̄ ≈ 3.9 at 1e14 and ≈ 3.0 at 2e15 M_sun (z = 0.2).
        let cfg = HaloConfig::default();
        assert!((concentration_mean(1e14, 0.2, &cfg) - 3.9).abs() < 0.05);
        assert!((concentration_mean(2e15, 0.2, &cfg) - 3.0).abs() < 0.05);
    }

    #[test]
    fn r500_is_consistent() {
        let cosmo = Cosmology::default();
        let h = Nfw::new(1e15, 4.0, 0.2, &cosmo);
        let (r500, m500) = h.r500_m500();
        let mean_density = m500 / (4.0 / 3.0 * std::f64::consts::PI * r500.powi(3));
        assert!((mean_density / (500.0 * cosmo.rho_crit(0.2)) - 1.0).abs() < 1e-9);
        assert!(m500 / 1e15 > 0.6 && m500 / 1e15 < 0.72);
    }

    #[test]
    fn projected_profile_is_continuous_and_integrates_to_the_cylinder_mass() {
        assert!((nfw_g(1.0) - 1.0 / 3.0).abs() < 1e-6);
        assert!((nfw_g(0.99999) - nfw_g(1.00001)).abs() < 1e-5);
        // d M_2D / dR = 2π R Σ(R), checked by finite differences.
        let cosmo = Cosmology::default();
        let h = Nfw::new(3e14, 5.0, 0.2, &cosmo);
        for &r in &[10.0, 200.0, 1000.0, 3000.0] {
            let d = 1e-4 * r;
            let dm = (h.mass_cylinder(r + d) - h.mass_cylinder(r - d)) / (2.0 * d);
            let expect = 2.0 * std::f64::consts::PI * r * h.sigma(r);
            assert!(
                (dm / expect - 1.0).abs() < 1e-6,
                "R = {r}: {dm} vs {expect}"
            );
        }
    }
}
