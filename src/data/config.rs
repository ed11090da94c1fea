//! `MockConfig`: every probability, range and amplitude of the mock-cluster model (docs/mock-clusters.md §2, generator
//! version `mock-v1`), with the values given there as defaults. Read from TOML
//! (`clustermaps generate --config mock.toml`); unknown keys are errors, missing keys take their defaults.

use serde::{Deserialize, Serialize};

use super::cosmology::Cosmology;
use crate::{Error, Result};

/// Version of the mock-cluster model (docs/mock-clusters.md) this generator implements. Bumped whenever maps change.
pub const SPEC_VERSION: &str = "mock-v1";

/// Which physical ingredients are switched on (docs/mock-clusters.md §2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Physics {
    /// Everything: triaxiality, substructure, mergers, background, ICM fluctuations.
    #[default]
    Full,
    /// Spherical, no subhalos, merger, background or fluctuations (scatter still on unless `scatter = false`).
    Smooth,
}

/// The full mock-cluster model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    pub physics: Physics,
    /// `false` sets every normal/lognormal term to its median and every uniform draw to its midpoint.
    pub scatter: bool,
    /// Sets the UPP mass-dependence α_P to 0 (exactly self-similar pressure).
    pub self_similar: bool,
    /// Redshift of every cluster.
    pub z: f64,
    /// Side of the square field of view \[physical kpc\], the same for every cluster and resolution.
    pub side_kpc: f64,
    pub cosmology: Cosmology,
    pub mass: MassConfig,
    pub halo: HaloConfig,
    pub pressure: PressureConfig,
    pub density: DensityConfig,
    pub subhalos: SubhaloConfig,
    pub merger: MergerConfig,
    pub background: BackgroundConfig,
    pub fluctuations: FluctuationConfig,
    pub numerics: NumericsConfig,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            physics: Physics::Full,
            scatter: true,
            self_similar: false,
            z: 0.2,
            side_kpc: 5000.0,
            cosmology: Cosmology::default(),
            mass: MassConfig::default(),
            halo: HaloConfig::default(),
            pressure: PressureConfig::default(),
            density: DensityConfig::default(),
            subhalos: SubhaloConfig::default(),
            merger: MergerConfig::default(),
            background: BackgroundConfig::default(),
            fluctuations: FluctuationConfig::default(),
            numerics: NumericsConfig::default(),
        }
    }
}

/// Primary-halo mass range: M200c log-uniform in \[10^min, 10^max\] M_sun (docs/mock-clusters.md §2.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MassConfig {
    pub log10_m_min: f64,
    pub log10_m_max: f64,
}

impl Default for MassConfig {
    fn default() -> Self {
        MassConfig {
            log10_m_min: 14.0,
            log10_m_max: (2e15f64).log10(),
        }
    }
}

/// Concentration–mass relation \[D08\] and halo shape (docs/mock-clusters.md §2.1–2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HaloConfig {
    pub c_norm: f64,
    pub c_mass_slope: f64,
    pub c_z_slope: f64,
    /// Pivot mass of the c–M relation \[M_sun\] (2e12 h⁻¹ M_sun).
    pub c_pivot_msun: f64,
    pub c_scatter_dex: f64,
    pub c_min: f64,
    pub c_max: f64,
    /// Minor-to-major axis ratio s = c/a ~ N(mean, sd) clipped to \[min, max\]; q = b/a ~ U(s, 1).
    pub s_mean: f64,
    pub s_sd: f64,
    pub s_min: f64,
    pub s_max: f64,
    /// Gas axis ratios are (q^η, s^η): the gas is rounder than the DM.
    pub gas_shape_eta: f64,
}

impl Default for HaloConfig {
    fn default() -> Self {
        HaloConfig {
            c_norm: 5.71,
            c_mass_slope: -0.084,
            c_z_slope: -0.47,
            c_pivot_msun: 2.857e12,
            c_scatter_dex: 0.13,
            c_min: 2.0,
            c_max: 12.0,
            s_mean: 0.55,
            s_sd: 0.10,
            s_min: 0.35,
            s_max: 0.95,
            gas_shape_eta: 0.5,
        }
    }
}

/// Universal pressure profile \[A10\] and the mass–temperature relation \[APP05\] (docs/mock-clusters.md §2.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PressureConfig {
    pub p0: f64,
    pub c500: f64,
    pub gamma: f64,
    pub alpha: f64,
    pub beta: f64,
    pub alpha_p: f64,
    /// Lognormal scatter of P0 and c500 (natural-log sd).
    pub p0_scatter: f64,
    pub c500_scatter: f64,
    /// c500 ∝ (c/c̄)^coupling: gas concentration inherits part of the DM scatter.
    pub c500_conc_coupling: f64,
    /// Temperature clamp inside Λ(T) \[keV\].
    pub t_min_kev: f64,
    pub t_max_kev: f64,
    /// Soft-band cooling function Λ(T) = Λ0 (T/5 keV)^λ_T \[erg cm³ s⁻¹\].
    pub lambda0: f64,
    pub lambda_t: f64,
}

impl Default for PressureConfig {
    fn default() -> Self {
        PressureConfig {
            p0: 8.403,
            c500: 1.177,
            gamma: 0.3081,
            alpha: 1.0510,
            beta: 5.4905,
            alpha_p: 0.12,
            p0_scatter: 0.10,
            c500_scatter: 0.10,
            c500_conc_coupling: 0.5,
            t_min_kev: 0.2,
            t_max_kev: 30.0,
            lambda0: 1.0e-23,
            lambda_t: 0.0,
        }
    }
}

/// ICM electron density \[V06, simplified\] and gas fraction (docs/mock-clusters.md §2.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DensityConfig {
    /// Core radius r_c = rc_frac · R500 (c̄/c) · e^{N(0, rc_scatter)}.
    pub rc_frac: f64,
    pub rc_scatter: f64,
    /// Inner cusp α_n ~ U(min, max).
    pub alpha_n_min: f64,
    pub alpha_n_max: f64,
    /// β_n ~ U(min, max).
    pub beta_n_min: f64,
    pub beta_n_max: f64,
    /// Steepening radius r_sg = rsg_frac · R500 (c̄/c) · e^{N(0, rsg_scatter)}.
    pub rsg_frac: f64,
    pub rsg_scatter: f64,
    /// Outer slope offset δ_out ~ N(0, sd): 3β_n + ε/2 = 3 + δ_out.
    pub delta_out_sd: f64,
    /// f_gas,500 = norm (M500/pivot)^slope e^{N(0, scatter)}, capped at `cap`.
    pub fgas_norm: f64,
    pub fgas_pivot_msun: f64,
    pub fgas_slope: f64,
    pub fgas_scatter: f64,
    pub fgas_cap: f64,
    /// Baryon guard: gas density never exceeds guard · f_b · ρ_NFW.
    pub baryon_guard: f64,
    /// Gas profiles are truncated at this many R200c.
    pub truncation_r200: f64,
}

impl Default for DensityConfig {
    fn default() -> Self {
        DensityConfig {
            rc_frac: 0.12,
            rc_scatter: 0.3,
            alpha_n_min: 0.0,
            alpha_n_max: 1.5,
            beta_n_min: 0.55,
            beta_n_max: 0.75,
            rsg_frac: 0.8,
            rsg_scatter: 0.2,
            delta_out_sd: 0.15,
            fgas_norm: 0.125,
            fgas_pivot_msun: 5e14,
            fgas_slope: 0.08,
            fgas_scatter: 0.10,
            fgas_cap: 0.15,
            baryon_guard: 0.95,
            truncation_r200: 3.0,
        }
    }
}

/// Subhalos (docs/mock-clusters.md §2.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubhaloConfig {
    pub enabled: bool,
    /// Poisson mean λ = norm (M/1e14)^slope.
    pub count_norm: f64,
    pub count_slope: f64,
    /// Mass fractions μ from dN/dμ ∝ μ^-index on \[mu_min, mu_max\]; total capped at `f_sub_max`.
    pub mu_min: f64,
    pub mu_max: f64,
    pub mu_index: f64,
    pub f_sub_max: f64,
    /// Satellite number profile concentration = host c × factor.
    pub c_sat_factor: f64,
    /// Minimum 3-D distance from the host centre \[R200c\].
    pub d_min_r200: f64,
    /// Gas retained s_g ~ U(0, strip_max) min(1, d/R200c).
    pub strip_max: f64,
    pub gas_beta: f64,
    pub gas_rc_over_rt: f64,
    /// Gas centre displaced by U(0, max) r_t (ram pressure).
    pub gas_offset_max_rt: f64,
    pub t_mass_factor: f64,
    pub t_min_kev: f64,
}

impl Default for SubhaloConfig {
    fn default() -> Self {
        SubhaloConfig {
            enabled: true,
            count_norm: 5.0,
            count_slope: 0.15,
            mu_min: 0.005,
            mu_max: 0.15,
            mu_index: 1.9,
            f_sub_max: 0.3,
            c_sat_factor: 0.5,
            d_min_r200: 0.1,
            strip_max: 0.6,
            gas_beta: 2.0 / 3.0,
            gas_rc_over_rt: 0.15,
            gas_offset_max_rt: 0.5,
            t_mass_factor: 0.7,
            t_min_kev: 0.5,
        }
    }
}

/// Major mergers with gas–DM offsets (docs/mock-clusters.md §2.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergerConfig {
    pub enabled: bool,
    pub probability: f64,
    /// Mass ratio ξ log-uniform in \[xi_min, xi_max\].
    pub xi_min: f64,
    pub xi_max: f64,
    /// 3-D separation U(min, max) R200c.
    pub sep_min_r200: f64,
    pub sep_max_r200: f64,
    pub p_outgoing: f64,
    /// Gas–DM offset Δ ~ U(min, max) kpc; incoming systems get `incoming_factor` Δ the other way.
    pub offset_min_kpc: f64,
    pub offset_max_kpc: f64,
    pub incoming_factor: f64,
    /// Outgoing: the secondary keeps U(min, max) of its gas; both pressures × U(min, max).
    pub gas_keep_min: f64,
    pub gas_keep_max: f64,
    pub pressure_boost_min: f64,
    pub pressure_boost_max: f64,
}

impl Default for MergerConfig {
    fn default() -> Self {
        MergerConfig {
            enabled: true,
            probability: 0.25,
            xi_min: 0.1,
            xi_max: 0.5,
            sep_min_r200: 0.3,
            sep_max_r200: 1.2,
            p_outgoing: 0.7,
            offset_min_kpc: 50.0,
            offset_max_kpc: 300.0,
            incoming_factor: 0.3,
            gas_keep_min: 0.4,
            gas_keep_max: 0.9,
            pressure_boost_min: 1.0,
            pressure_boost_max: 1.3,
        }
    }
}

/// Line-of-sight background slab (docs/mock-clusters.md §2.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackgroundConfig {
    pub enabled: bool,
    pub slab_kpc: f64,
    /// Lognormal amplitude scatter (natural-log sd).
    pub amp_scatter: f64,
    /// σ_G of the Gaussian field in the exponent.
    pub sigma_g: f64,
    /// P(k) ∝ k^slope.
    pub slope: f64,
    /// Fraction f_b × this of the slab is gas, at temperature `t_kev`.
    pub gas_frac_of_fb: f64,
    pub t_kev: f64,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            enabled: true,
            slab_kpc: 1.0e4,
            amp_scatter: 0.2,
            sigma_g: 0.3,
            slope: -2.0,
            gas_frac_of_fb: 0.8,
            t_kev: 0.3,
        }
    }
}

/// ICM fluctuations (docs/mock-clusters.md §2.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FluctuationConfig {
    pub enabled: bool,
    /// rms σ_δ of the log-density fluctuation field.
    pub sigma: f64,
    /// P(k) ∝ k^slope above k = 2π / scale, flat below.
    pub slope: f64,
    pub scale_kpc: f64,
    /// y responds as e^{η δ}: η between isobaric (0) and adiabatic (5/3).
    pub eta_y: f64,
}

impl Default for FluctuationConfig {
    fn default() -> Self {
        FluctuationConfig {
            enabled: true,
            sigma: 0.05,
            slope: -11.0 / 3.0,
            scale_kpc: 500.0,
            eta_y: 0.5,
        }
    }
}

/// Numerical resolution of projection and pixel integration (docs/mock-clusters.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumericsConfig {
    /// Sub-samples per pixel side (midpoint rule).
    pub subsample: usize,
    /// Sub-samples per side near halo centres.
    pub subsample_centre: usize,
    /// "Near" = pixel centre within this many pixels of a halo centre.
    pub centre_radius_px: f64,
    /// Nodes of each projection table (log-spaced in R).
    pub table_nodes: usize,
    /// Gauss–Legendre nodes per projection integral, split in `gl_panels` equal panels.
    pub gl_nodes: usize,
    pub gl_panels: usize,
    /// Cells per side of the 2-D random-field grid, which spans 2L × 2L.
    pub field_cells: usize,
    /// Table nodes and quadrature nodes for subhalo DM clumps: small, smooth features need far fewer.
    pub sub_table_nodes: usize,
    pub sub_gl_nodes: usize,
    /// Radii at which expensive gas profiles are pre-sampled before projection (see `RadialTable`).
    pub radial_samples: usize,
}

impl Default for NumericsConfig {
    fn default() -> Self {
        NumericsConfig {
            subsample: 4,
            subsample_centre: 16,
            centre_radius_px: 2.0,
            table_nodes: 256,
            gl_nodes: 128,
            gl_panels: 4,
            field_cells: 128,
            sub_table_nodes: 64,
            sub_gl_nodes: 64,
            radial_samples: 4096,
        }
    }
}

impl NumericsConfig {
    /// Counts between a minimum that keeps the integrals meaningful and a maximum that keeps a cluster within
    /// seconds to minutes (the cost grows with `subsample²` per pixel, `field_cells²` per map and linearly in the
    /// table and quadrature sizes).
    fn validate(&self) -> Result<()> {
        let counts = [
            ("numerics.subsample", self.subsample, 1, 64),
            ("numerics.subsample_centre", self.subsample_centre, 1, 256),
            ("numerics.table_nodes", self.table_nodes, 8, 1 << 16),
            ("numerics.sub_table_nodes", self.sub_table_nodes, 8, 1 << 16),
            ("numerics.gl_panels", self.gl_panels, 1, 1024),
            ("numerics.gl_nodes", self.gl_nodes, self.gl_panels, 1 << 16),
            (
                "numerics.sub_gl_nodes",
                self.sub_gl_nodes,
                self.gl_panels,
                1 << 16,
            ),
            ("numerics.field_cells", self.field_cells, 8, 4096),
            ("numerics.radial_samples", self.radial_samples, 16, 1 << 20),
        ];
        for (name, v, lo, hi) in counts {
            if !(lo..=hi).contains(&v) {
                return Err(Error::Config(format!(
                    "{name} = {v}: must be in [{lo}, {hi}]"
                )));
            }
        }
        Range::Closed(0.0, 64.0).check("numerics.centre_radius_px", self.centre_radius_px)?;
        if !self.field_cells.is_power_of_two() {
            return Err(Error::Config(format!(
                "numerics.field_cells = {}: must be a power of two (FFT grid)",
                self.field_cells
            )));
        }
        Ok(())
    }
}

/// A parameter's name, value and allowed range.
type Checked<'a> = (&'a str, f64, Range);

/// The allowed values of one physics parameter. NaN is outside every range.
#[derive(Debug, Clone, Copy)]
enum Range {
    /// `lo ≤ v ≤ hi`.
    Closed(f64, f64),
    /// `0 < v ≤ hi`.
    Positive(f64),
}

impl Range {
    fn check(self, name: &str, v: f64) -> Result<()> {
        let (ok, text) = match self {
            Range::Closed(lo, hi) => (v >= lo && v <= hi, format!("[{lo}, {hi}]")),
            Range::Positive(hi) => (v > 0.0 && v <= hi, format!("(0, {hi}]")),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!("{name} = {v}: must be in {text}")))
        }
    }
}

impl MockConfig {
    /// The `smooth` physics preset: spherical, no substructure, merger, background or fluctuations.
    pub fn smooth() -> Self {
        MockConfig {
            physics: Physics::Smooth,
            ..Default::default()
        }
    }

    /// Reads a TOML file; missing keys take the defaults (docs/mock-clusters.md).
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: MockConfig =
            toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects values that would make the model meaningless, produce NaN or infinite maps, or run for hours: every
    /// parameter is range-checked (NaN fails every range) and the error names it, e.g.
    /// `cosmology.omega_m = 0: must be in (0, 1]`. The ranges are wide — they bound what the formulas survive,
    /// not what is plausible — and include every default with room to spare.
    pub fn validate(&self) -> Result<()> {
        use Range::{Closed, Positive};
        let c = &self.cosmology;
        let (m, h, p, d) = (&self.mass, &self.halo, &self.pressure, &self.density);
        let (sub, mg) = (&self.subhalos, &self.merger);
        let boost = mg.pressure_boost_min;
        let (bg, fl) = (&self.background, &self.fluctuations);
        let f_b = c.omega_b / c.omega_m;
        // z = 0 puts the cluster at zero distance: an infinite pixel angle.
        let top = [
            ("z", self.z, Closed(0.01, 10.0)),
            ("side_kpc", self.side_kpc, Closed(100.0, 1e5)),
        ];
        let cosmology = [
            ("h", c.h, Closed(0.2, 2.0)),
            ("omega_m", c.omega_m, Positive(1.0)),
            ("omega_lambda", c.omega_lambda, Closed(0.0, 2.0)),
            ("omega_b", c.omega_b, Positive(c.omega_m)),
            ("x_hydrogen", c.x_hydrogen, Closed(0.5, 1.0)),
        ];
        let mass = [
            ("log10_m_min", m.log10_m_min, Closed(10.0, 17.0)),
            ("log10_m_max", m.log10_m_max, Closed(m.log10_m_min, 17.0)),
        ];
        let halo = [
            ("c_norm", h.c_norm, Positive(100.0)),
            ("c_mass_slope", h.c_mass_slope, Closed(-2.0, 2.0)),
            ("c_z_slope", h.c_z_slope, Closed(-5.0, 5.0)),
            ("c_pivot_msun", h.c_pivot_msun, Closed(1e6, 1e18)),
            ("c_scatter_dex", h.c_scatter_dex, Closed(0.0, 1.0)),
            ("c_min", h.c_min, Positive(100.0)),
            ("c_max", h.c_max, Closed(h.c_min, 100.0)),
            ("s_mean", h.s_mean, Positive(1.0)),
            ("s_sd", h.s_sd, Closed(0.0, 1.0)),
            ("s_min", h.s_min, Positive(1.0)),
            ("s_max", h.s_max, Closed(h.s_min, 1.0)),
            ("gas_shape_eta", h.gas_shape_eta, Closed(0.0, 5.0)),
        ];
        let pressure = [
            ("p0", p.p0, Positive(1e4)),
            ("c500", p.c500, Positive(100.0)),
            ("gamma", p.gamma, Closed(0.0, 5.0)),
            ("alpha", p.alpha, Positive(20.0)),
            ("beta", p.beta, Positive(50.0)),
            ("alpha_p", p.alpha_p, Closed(-2.0, 2.0)),
            ("p0_scatter", p.p0_scatter, Closed(0.0, 2.0)),
            ("c500_scatter", p.c500_scatter, Closed(0.0, 2.0)),
            (
                "c500_conc_coupling",
                p.c500_conc_coupling,
                Closed(-5.0, 5.0),
            ),
            ("t_min_kev", p.t_min_kev, Positive(1e3)),
            ("t_max_kev", p.t_max_kev, Closed(p.t_min_kev, 1e3)),
            ("lambda0", p.lambda0, Positive(1e-15)),
            ("lambda_t", p.lambda_t, Closed(-5.0, 5.0)),
        ];
        let density = [
            ("rc_frac", d.rc_frac, Positive(10.0)),
            ("rc_scatter", d.rc_scatter, Closed(0.0, 2.0)),
            ("alpha_n_min", d.alpha_n_min, Closed(0.0, 3.0)),
            ("alpha_n_max", d.alpha_n_max, Closed(d.alpha_n_min, 3.0)),
            ("beta_n_min", d.beta_n_min, Positive(5.0)),
            ("beta_n_max", d.beta_n_max, Closed(d.beta_n_min, 5.0)),
            ("rsg_frac", d.rsg_frac, Positive(20.0)),
            ("rsg_scatter", d.rsg_scatter, Closed(0.0, 2.0)),
            ("delta_out_sd", d.delta_out_sd, Closed(0.0, 2.0)),
            ("fgas_norm", d.fgas_norm, Positive(1.0)),
            ("fgas_pivot_msun", d.fgas_pivot_msun, Closed(1e6, 1e18)),
            ("fgas_slope", d.fgas_slope, Closed(-2.0, 2.0)),
            ("fgas_scatter", d.fgas_scatter, Closed(0.0, 2.0)),
            // Above the cosmic baryon fraction the gas would outweigh what the halo can hold.
            ("fgas_cap", d.fgas_cap, Positive(f_b)),
            ("baryon_guard", d.baryon_guard, Positive(10.0)),
            ("truncation_r200", d.truncation_r200, Closed(0.5, 100.0)),
        ];
        let subhalos = [
            ("count_norm", sub.count_norm, Closed(0.0, 1e3)),
            ("count_slope", sub.count_slope, Closed(-5.0, 5.0)),
            ("mu_min", sub.mu_min, Positive(1.0)),
            ("mu_max", sub.mu_max, Closed(sub.mu_min, 1.0)),
            ("mu_index", sub.mu_index, Closed(0.0, 10.0)),
            ("f_sub_max", sub.f_sub_max, Closed(0.0, 1.0)),
            ("c_sat_factor", sub.c_sat_factor, Positive(20.0)),
            ("d_min_r200", sub.d_min_r200, Closed(0.0, 10.0)),
            ("strip_max", sub.strip_max, Closed(0.0, 1.0)),
            ("gas_beta", sub.gas_beta, Positive(5.0)),
            ("gas_rc_over_rt", sub.gas_rc_over_rt, Positive(10.0)),
            (
                "gas_offset_max_rt",
                sub.gas_offset_max_rt,
                Closed(0.0, 10.0),
            ),
            ("t_mass_factor", sub.t_mass_factor, Positive(100.0)),
            ("t_min_kev", sub.t_min_kev, Positive(1e3)),
        ];
        let merger = [
            ("probability", mg.probability, Closed(0.0, 1.0)),
            ("xi_min", mg.xi_min, Positive(1.0)),
            ("xi_max", mg.xi_max, Closed(mg.xi_min, 1.0)),
            ("sep_min_r200", mg.sep_min_r200, Closed(0.0, 10.0)),
            (
                "sep_max_r200",
                mg.sep_max_r200,
                Closed(mg.sep_min_r200, 10.0),
            ),
            ("p_outgoing", mg.p_outgoing, Closed(0.0, 1.0)),
            ("offset_min_kpc", mg.offset_min_kpc, Closed(0.0, 1e4)),
            (
                "offset_max_kpc",
                mg.offset_max_kpc,
                Closed(mg.offset_min_kpc, 1e4),
            ),
            ("incoming_factor", mg.incoming_factor, Closed(0.0, 10.0)),
            ("gas_keep_min", mg.gas_keep_min, Closed(0.0, 1.0)),
            (
                "gas_keep_max",
                mg.gas_keep_max,
                Closed(mg.gas_keep_min, 1.0),
            ),
            ("pressure_boost_min", mg.pressure_boost_min, Positive(10.0)),
            (
                "pressure_boost_max",
                mg.pressure_boost_max,
                Closed(boost, 10.0),
            ),
        ];
        let background = [
            ("slab_kpc", bg.slab_kpc, Closed(0.0, 1e6)),
            ("amp_scatter", bg.amp_scatter, Closed(0.0, 2.0)),
            ("sigma_g", bg.sigma_g, Closed(0.0, 3.0)),
            ("slope", bg.slope, Closed(-10.0, 2.0)),
            ("gas_frac_of_fb", bg.gas_frac_of_fb, Closed(0.0, 1.0)),
            ("t_kev", bg.t_kev, Positive(1e3)),
        ];
        let fluctuations = [
            ("sigma", fl.sigma, Closed(0.0, 2.0)),
            ("slope", fl.slope, Closed(-10.0, 2.0)),
            ("scale_kpc", fl.scale_kpc, Positive(1e5)),
            ("eta_y", fl.eta_y, Closed(0.0, 5.0)),
        ];
        let groups: [(&str, &[Checked]); 10] = [
            ("", &top),
            ("cosmology.", &cosmology),
            ("mass.", &mass),
            ("halo.", &halo),
            ("pressure.", &pressure),
            ("density.", &density),
            ("subhalos.", &subhalos),
            ("merger.", &merger),
            ("background.", &background),
            ("fluctuations.", &fluctuations),
        ];
        for (prefix, ranges) in groups {
            for &(name, v, range) in ranges {
                range.check(&format!("{prefix}{name}"), v)?;
            }
        }
        self.numerics.validate()
    }

    /// Whether subhalos, mergers, background and fluctuations are drawn.
    pub fn subhalos_on(&self) -> bool {
        self.physics == Physics::Full && self.subhalos.enabled
    }
    pub fn merger_on(&self) -> bool {
        self.physics == Physics::Full && self.merger.enabled
    }
    pub fn background_on(&self) -> bool {
        self.physics == Physics::Full && self.background.enabled
    }
    pub fn fluctuations_on(&self) -> bool {
        self.physics == Physics::Full && self.fluctuations.enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_partial_files() {
        let cfg = MockConfig::default();
        let text = toml::to_string(&cfg).unwrap();
        let back: MockConfig = toml::from_str(&text).unwrap();
        assert_eq!(cfg, back);
        let partial: MockConfig = toml::from_str("z = 0.3\n[merger]\nprobability = 0.5\n").unwrap();
        assert_eq!(partial.z, 0.3);
        assert_eq!(partial.merger.probability, 0.5);
        assert_eq!(partial.merger.xi_min, 0.1);
        assert!(toml::from_str::<MockConfig>("zz = 1").is_err());
    }

    /// Every example of a meaningless value is refused by name; the defaults and presets pass.
    #[test]
    fn physics_values_are_range_checked_by_name() {
        MockConfig::default().validate().unwrap();
        MockConfig::smooth().validate().unwrap();
        type Edit = fn(&mut MockConfig);
        let cases: [(&str, Edit); 7] = [
            ("cosmology.h = -0.7", |c| c.cosmology.h = -0.7),
            ("density.fgas_norm = NaN", |c| {
                c.density.fgas_norm = f64::NAN
            }),
            ("z = 0:", |c| c.z = 0.0),
            ("cosmology.omega_m = 0:", |c| c.cosmology.omega_m = 0.0),
            ("numerics.subsample = 100000", |c| {
                c.numerics.subsample = 100_000
            }),
            ("merger.xi_max = 0.05", |c| c.merger.xi_max = 0.05),
            ("numerics.field_cells = 96", |c| c.numerics.field_cells = 96),
        ];
        for (expected, edit) in cases {
            let mut c = MockConfig::default();
            edit(&mut c);
            let msg = c.validate().unwrap_err().to_string();
            assert!(msg.contains(expected), "{expected}: {msg}");
        }
    }
}
