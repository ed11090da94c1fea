//! The merging secondary (docs/mock-clusters.md §2.6): a second halo with its own ICM, and the gas–DM offsets of both.

use super::draws::MergerDraw;
use super::icm::{build_icm, project_icm};
use crate::data::config::MockConfig;
use crate::data::halo::Nfw;
use crate::data::project::{ProjTable, Quadrature};

/// The merging secondary (docs/mock-clusters.md §2.6): spherical, truncated at its R200c.
#[derive(Debug, Clone)]
pub(super) struct Secondary {
    pub(super) pos: [f64; 3],
    pub(super) r200: f64,
    pub(super) dm: ProjTable<1>,
    pub(super) gas_centre: [f64; 3],
    pub(super) gas: ProjTable<3>,
}

/// What the merger draw produced, for metadata.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct MergerInfo {
    pub(super) xi: f64,
    pub(super) sep_proj: f64,
    pub(super) offset1_proj: f64,
    pub(super) offset2_proj: f64,
}

/// The secondary of a merger drawn as `m` with a host `halo` of mass `m200`, its metadata, and the host gas
/// displacement Δ₁ it causes; stripping and shock heating as [`MergerDraw::stripping_and_heating`] says.
pub(super) fn build_secondary(
    m: &MergerDraw,
    halo: &Nfw,
    m200: f64,
    cfg: &MockConfig,
    quad: &Quadrature,
) -> (Secondary, MergerInfo, [f64; 3]) {
    let (gas_keep2, p_boost) = m.stripping_and_heating();
    let (xi, n_hat) = (m.xi, m.direction);
    let sep = m.sep_r200 * halo.r200;
    let halo2 = Nfw::new(xi * m200, m.c, cfg.z, &cfg.cosmology);
    let icm2 = build_icm(
        &halo2, m.c_mean, &m.gas, None, gas_keep2, p_boost, halo2.r200, cfg, quad,
    );
    let pos = n_hat.map(|v| v * sep);
    // Δ₂ = −Δ n̂ (outgoing: gas lags toward the primary) or +0.3 Δ n̂ (incoming); Δ₁ = −ξ Δ₂.
    let d2 = if m.outgoing {
        -m.offset_kpc
    } else {
        cfg.merger.incoming_factor * m.offset_kpc
    };
    let delta2 = n_hat.map(|v| v * d2);
    let gas_offset = delta2.map(|v| -xi * v);
    let proj = |v: [f64; 3]| v[0].hypot(v[1]);
    let info = MergerInfo {
        xi,
        sep_proj: proj(pos),
        offset1_proj: proj(gas_offset),
        offset2_proj: proj(delta2),
    };
    let dm_scale = 1.0 - cfg.cosmology.f_baryon();
    let secondary = Secondary {
        pos,
        r200: halo2.r200,
        dm: ProjTable::<1>::build(
            |r, out| out[0] = dm_scale * halo2.density(r),
            halo2.rs,
            halo2.r200,
            cfg.numerics.table_nodes,
            quad,
        ),
        gas_centre: [pos[0] + delta2[0], pos[1] + delta2[1], pos[2] + delta2[2]],
        gas: project_icm(&icm2.profile, halo2.rs, cfg, quad),
    };
    (secondary, info, gas_offset)
}
