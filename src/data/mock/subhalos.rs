//! Subhalos (docs/mock-clusters.md §2.5): truncated NFW dark-matter clumps with stripped, displaced β-model gas, drawn
//! from stream 1, and the shared projection table of the clumps' gas.

use super::draws::{draw_concentration, Draws};
use crate::data::config::MockConfig;
use crate::data::gas::{cooling, ne_to_rho, t_app05};
use crate::data::halo::{m_nfw, Nfw};
use crate::data::project::{mat_vec, unit_volume_axes, ProjTable, Quadrature};
use crate::data::rng::Stream;

/// A subhalo (docs/mock-clusters.md §2.5): truncated NFW dark matter plus a stripped, displaced, isothermal β-model gas
/// clump.
#[derive(Debug, Clone)]
pub(super) struct Subhalo {
    /// 3-D position of the DM centre in the observer frame \[kpc\].
    pub(super) pos: [f64; 3],
    /// Truncation (tidal) radius \[kpc\].
    pub(super) r_t: f64,
    /// Projected DM Σ(R) \[M_sun kpc⁻²\], already × (1 − f_b).
    pub(super) dm: ProjTable<1>,
    pub(super) gas: Option<SubhaloGas>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct SubhaloGas {
    pub(super) centre: [f64; 3],
    pub(super) rc: f64,
    pub(super) ne0: f64,
    pub(super) t_kev: f64,
    /// Λ(T_sub) / (n_e/n_H): turns n_e² into the emissivity.
    pub(super) lambda_over_ne_nh: f64,
}

/// The β-model clump shapes in units of r_c, truncated at r_t: \[∫(1+x²)^{−3β/2}, ∫(1+x²)^{−3β}\] along the line of
/// sight, one table for all clumps; `None` without subhalos.
pub(super) fn clump_gas_table(subhalos: &[Subhalo], cfg: &MockConfig) -> Option<ProjTable<2>> {
    (!subhalos.is_empty()).then(|| {
        let (beta, x_t) = (cfg.subhalos.gas_beta, 1.0 / cfg.subhalos.gas_rc_over_rt);
        ProjTable::<2>::build(
            |x, out| {
                let b = (1.0 + x * x).powf(-1.5 * beta);
                *out = if x < x_t { [b, b * b] } else { [0.0, 0.0] };
            },
            1.0,
            x_t,
            cfg.numerics.sub_table_nodes,
            &Quadrature::new(cfg.numerics.sub_gl_nodes, cfg.numerics.gl_panels),
        )
    })
}

/// Draws the subhalo population (docs/mock-clusters.md §2.5) from stream 1. Returns the subhalos and their bound mass
/// as a fraction of M200c.
pub(super) fn draw_subhalos(
    seed: u64,
    cfg: &MockConfig,
    host: &Nfw,
    rot: &[[f64; 3]; 3],
    qs: [f64; 2],
    n_forced: Option<usize>,
    quad: &Quadrature,
) -> (Vec<Subhalo>, f64) {
    let sc = &cfg.subhalos;
    let cosmo = &cfg.cosmology;
    let mut d = Draws::new(seed, Stream::Subhalos, cfg.scatter);
    let lambda = sc.count_norm * (host.m200 / 1e14).powf(sc.count_slope);
    let n_drawn = d.rng.poisson(lambda) as usize;
    let n = n_forced.unwrap_or(n_drawn);
    // μ from dN/dμ ∝ μ^-p on [μ_min, μ_max] by inverse CDF.
    let e = 1.0 - sc.mu_index;
    let (lo, hi) = (sc.mu_min.powf(e), sc.mu_max.powf(e));
    let mut mus: Vec<f64> = (0..n)
        .map(|_| (lo + d.rng.uniform() * (hi - lo)).powf(1.0 / e))
        .collect();
    if n_forced.is_none() {
        while mus.iter().sum::<f64>() > sc.f_sub_max {
            mus.pop();
        }
    } else {
        // Forced counts (tests of extremes) keep their number; shrink masses to respect the cap instead.
        let total: f64 = mus.iter().sum();
        if total > sc.f_sub_max {
            mus.iter_mut().for_each(|m| *m *= sc.f_sub_max / total);
        }
    }
    let axes = unit_volume_axes(qs[0], qs[1]);
    let c_sat = sc.c_sat_factor * host.c;
    // Clumps are small and smooth: coarser tables than the host's suffice.
    let sub_quad = Quadrature::new(cfg.numerics.sub_gl_nodes, cfg.numerics.gl_panels);
    let sub_nodes = cfg.numerics.sub_table_nodes;
    let f_b = cosmo.f_baryon();
    let mut subs = Vec::with_capacity(mus.len());
    let mut bound_mass = 0.0;
    for &mu in &mus {
        let m = mu * host.m200;
        // Position: NFW number profile (c_sat) truncated at R200c, isotropic in the host frame, stretched, rotated.
        let mut pos = [0.0; 3];
        for attempt in 0..=100 {
            let u = d.rng.uniform();
            let x = invert_m_nfw(u * m_nfw(c_sat), c_sat);
            let dir = d.rng.unit_vector();
            let local = [0, 1, 2].map(|k| dir[k] * x / c_sat * host.r200 * axes[k]);
            pos = mat_vec(rot, local);
            let dist = norm3(pos);
            if dist >= sc.d_min_r200 * host.r200 {
                break;
            }
            if attempt == 100 {
                let scale = sc.d_min_r200 * host.r200 / dist.max(1e-12);
                pos = pos.map(|v| v * scale);
            }
        }
        let d3 = norm3(pos);
        let (c, _) = draw_concentration(m, cfg, &mut d);
        let r200 = cosmo.radius_delta(m, 200.0, cfg.z);
        let rs = r200 / c;
        let r_t =
            (d3 * (m / (3.0 * host.mass_within(d3))).cbrt()).clamp(sc.d_min_r200 * r200, r200);
        // The infall NFW (mass m inside R200c(m)) cut at r_t: stripping removes the outskirts, it does not compress
        // the cusp. Renormalising the clump to hold all of m inside r_t (the first version of the model) raises its
        // central density by m(c)/m(τ) ≈ 2 and made the brightest Σ_DM pixel a subhalo, 500–1000 kpc from the
        // centre, in 11 % of non-merging clusters (rule 7 of docs/mock-clusters.md §7 allows ≤ 10 % in all
        // clusters). The stripped mass
        // m − m_bound stays in the smooth host (see `dm_norm`), so the total DM mass is unchanged.
        let tau = r_t / rs;
        let rho_s = m / (4.0 * std::f64::consts::PI * rs.powi(3) * m_nfw(c));
        bound_mass += m * m_nfw(tau) / m_nfw(c);
        let dm_amp = (1.0 - f_b) * rho_s;
        let dm = ProjTable::<1>::build(
            |r, out| {
                let x = r / rs;
                out[0] = if r < r_t {
                    dm_amp / (x * (1.0 + x) * (1.0 + x))
                } else {
                    0.0
                };
            },
            rs,
            r_t,
            sub_nodes,
            &sub_quad,
        );
        // Gas: stripped fraction, displaced centre, isothermal β-model with r_c = 0.15 r_t.
        let s_g = d.uniform(0.0, sc.strip_max) * (d3 / host.r200).min(1.0);
        let offset_len = d.uniform(0.0, sc.gas_offset_max_rt) * r_t;
        let offset_dir = d.rng.unit_vector();
        let m_gas = s_g * f_b * m;
        let gas = (m_gas > 0.0).then(|| {
            let rc = sc.gas_rc_over_rt * r_t;
            let x_t = 1.0 / sc.gas_rc_over_rt;
            let beta = sc.gas_beta;
            // ∫₀^{x_t} 4π (1+x²)^{−3β/2} x² dx by Gauss–Legendre (smooth integrand, no cusp).
            let shape_int = 4.0
                * std::f64::consts::PI
                * quad.integrate(0.0, x_t, |x| (1.0 + x * x).powf(-1.5 * beta) * x * x);
            let ne0 = m_gas / (ne_to_rho(cosmo) * rc.powi(3) * shape_int);
            let e_z = cosmo.e(cfg.z);
            let t_kev = t_app05(sc.t_mass_factor * m, e_z).max(sc.t_min_kev);
            SubhaloGas {
                centre: [0, 1, 2].map(|k| pos[k] + offset_len * offset_dir[k]),
                rc,
                ne0,
                t_kev,
                lambda_over_ne_nh: cooling(t_kev, &cfg.pressure) / cosmo.ne_over_nh(),
            }
        });
        subs.push(Subhalo { pos, r_t, dm, gas });
    }
    (subs, bound_mass / host.m200)
}

/// x with m(x) = target on \[0, x_max\] by bisection (m is increasing).
fn invert_m_nfw(target: f64, x_max: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, x_max);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if m_nfw(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn norm3(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}
