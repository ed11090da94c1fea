//! Units, physical constants and the fixed flat ΛCDM background (docs/mock-clusters.md §1).
//!
//! Masses in M_sun, lengths in physical kpc, no factors of h anywhere.

use serde::{Deserialize, Serialize};

/// Proton mass \[g\].
pub const M_PROTON_G: f64 = 1.672_622e-24;
/// Solar mass \[g\].
pub const M_SUN_G: f64 = 1.988_47e33;
/// One kiloparsec \[cm\].
pub const KPC_CM: f64 = 3.085_678e21;
/// σ_T / (m_e c²) \[cm² keV⁻¹\].
pub const SIGMA_T_OVER_MEC2: f64 = 1.301_858e-27;
/// Arcminutes² per steradian.
pub const ARCMIN2_PER_SR: f64 = 1.181_81e7;
/// ρ_crit,0 / h² \[M_sun Mpc⁻³\].
const RHO_CRIT0_H2_MSUN_MPC3: f64 = 2.775_37e11;
/// Speed of light \[km/s\].
const C_KM_S: f64 = 299_792.458;

/// Flat ΛCDM parameters and the hydrogen mass fraction. Stored in every dataset manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cosmology {
    pub h: f64,
    pub omega_m: f64,
    pub omega_lambda: f64,
    pub omega_b: f64,
    /// Hydrogen mass fraction X of the fully ionised gas.
    pub x_hydrogen: f64,
}

impl Default for Cosmology {
    fn default() -> Self {
        Cosmology {
            h: 0.7,
            omega_m: 0.3,
            omega_lambda: 0.7,
            omega_b: 0.048,
            x_hydrogen: 0.76,
        }
    }
}

impl Cosmology {
    /// Cosmic baryon fraction f_b = Ω_b / Ω_m.
    pub fn f_baryon(&self) -> f64 {
        self.omega_b / self.omega_m
    }

    /// E(z)² = Ω_m (1+z)³ + Ω_Λ (flat).
    pub fn e2(&self, z: f64) -> f64 {
        self.omega_m * (1.0 + z).powi(3) + self.omega_lambda
    }

    /// E(z) = H(z)/H_0.
    pub fn e(&self, z: f64) -> f64 {
        self.e2(z).sqrt()
    }

    /// ρ_crit(z) \[M_sun kpc⁻³\].
    pub fn rho_crit(&self, z: f64) -> f64 {
        RHO_CRIT0_H2_MSUN_MPC3 * self.h * self.h * 1e-9 * self.e2(z)
    }

    /// ρ_crit,0 \[M_sun kpc⁻³\].
    pub fn rho_crit0(&self) -> f64 {
        self.rho_crit(0.0)
    }

    /// Mean electron molecular weight μ_e = 2/(1+X).
    pub fn mu_e(&self) -> f64 {
        2.0 / (1.0 + self.x_hydrogen)
    }

    /// n_e / n_H = (1+X)/(2X).
    pub fn ne_over_nh(&self) -> f64 {
        (1.0 + self.x_hydrogen) / (2.0 * self.x_hydrogen)
    }

    /// Angular-diameter distance D_A(z) \[kpc\]: composite Simpson on ∫dz/E with 2048 intervals (rel. err. < 1e-10).
    pub fn angular_diameter_distance(&self, z: f64) -> f64 {
        let n = 2048;
        let h = z / n as f64;
        let mut s = 1.0 / self.e(0.0) + 1.0 / self.e(z);
        for i in 1..n {
            let w = if i % 2 == 1 { 4.0 } else { 2.0 };
            s += w / self.e(i as f64 * h);
        }
        let chi_mpc = C_KM_S / (100.0 * self.h) * s * h / 3.0;
        chi_mpc * 1e3 / (1.0 + z)
    }

    /// Physical kpc subtended by one arcminute at redshift z.
    pub fn kpc_per_arcmin(&self, z: f64) -> f64 {
        self.angular_diameter_distance(z) * (std::f64::consts::PI / 180.0 / 60.0)
    }

    /// R_Δ \[kpc\] of a spherical-overdensity mass M_Δ \[M_sun\] w.r.t. the critical density.
    pub fn radius_delta(&self, m: f64, delta: f64, z: f64) -> f64 {
        (3.0 * m / (4.0 * std::f64::consts::PI * delta * self.rho_crit(z))).cbrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values_at_z_02() {
        // Numbers quoted in docs/mock-clusters.md §1.
        let c = Cosmology::default();
        assert!((c.e(0.2) - 1.1038).abs() < 1e-4);
        assert!((c.rho_crit0() - 135.99).abs() < 0.01);
        assert!((c.rho_crit(0.2) - 165.7).abs() < 0.1);
        assert!((c.angular_diameter_distance(0.2) / 1e3 - 680.6).abs() < 0.2);
        assert!((c.kpc_per_arcmin(0.2) - 198.0).abs() < 0.1);
        assert!((c.radius_delta(2e15, 200.0, 0.2) - 2433.0).abs() < 2.0);
        assert!((c.mu_e() - 1.1364).abs() < 1e-4);
    }
}
