//! The intracluster medium of a halo (docs/mock-clusters.md §2.4): the spherical gas model built from a halo and its
//! draws, and its projection table.

use super::draws::GasDraw;
use crate::data::config::MockConfig;
use crate::data::gas::{gas_fraction, DensityShape, ElectronDensity, IcmProfile, Upp};
use crate::data::halo::Nfw;
use crate::data::project::{ProjTable, Quadrature, RadialTable};

/// A spherical gas model built from a halo and its draws, with its derived numbers.
pub(super) struct Icm {
    pub(super) profile: IcmProfile,
    pub(super) f_gas500: f64,
    pub(super) p0: f64,
    pub(super) c500: f64,
}

/// Builds the ICM of a halo (docs/mock-clusters.md §2.4). `gas_keep` scales the gas mass (merger stripping),
/// `pressure_boost` the pressure (shock heating), `r_trunc` is where every gas profile ends.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_icm(
    halo: &Nfw,
    c_mean: f64,
    g: &GasDraw,
    alpha_n_override: Option<f64>,
    gas_keep: f64,
    pressure_boost: f64,
    r_trunc: f64,
    cfg: &MockConfig,
    quad: &Quadrature,
) -> Icm {
    let cosmo = &cfg.cosmology;
    let (r500, m500) = halo.r500_m500();
    let e_z = cosmo.e(cfg.z);
    let (p, n) = (&cfg.pressure, &cfg.density);
    let conc_ratio = halo.c / c_mean;
    let p0 = p.p0 * g.p0_ln.exp();
    let c500 = p.c500 * conc_ratio.powf(p.c500_conc_coupling) * g.c500_ln.exp();
    let alpha_p = if cfg.self_similar { 0.0 } else { p.alpha_p };
    let mut upp = Upp::new(m500, r500, e_z, p0, c500, alpha_p, p);
    upp.amplitude *= pressure_boost;
    let alpha_n = alpha_n_override.unwrap_or(g.alpha_n);
    let shape = DensityShape {
        rc: n.rc_frac * r500 / conc_ratio * g.rc_ln.exp(),
        alpha_n,
        beta_n: g.beta_n,
        rsg: n.rsg_frac * r500 / conc_ratio * g.rsg_ln.exp(),
        epsilon: (2.0 * (3.0 + g.delta_out - 3.0 * g.beta_n)).max(0.0),
    };
    let f_gas500 = gas_fraction(m500, g.fgas_ln.exp(), cfg);
    let density = ElectronDensity::normalised(
        shape,
        *halo,
        r500,
        f_gas500 * gas_keep * m500,
        n.baryon_guard,
        cosmo,
        quad,
    );
    Icm {
        profile: IcmProfile::new(upp, density, r_trunc, cosmo),
        f_gas500: f_gas500 * gas_keep,
        p0,
        c500,
    }
}

/// Projection table of \[n_e, P_e, ε\] of an ICM out to its truncation radius. The profile is pre-sampled on a
/// fine radial grid first: evaluating it directly would cost several `powf` per quadrature node.
pub(super) fn project_icm(
    icm: &IcmProfile,
    rs: f64,
    cfg: &MockConfig,
    quad: &Quadrature,
) -> ProjTable<3> {
    let nc = &cfg.numerics;
    let r_ref = icm.density.shape.rc.min(rs);
    let radial = RadialTable::<3>::sample(
        |r, out| icm.fields(r, &cfg.pressure, out),
        1e-4 * r_ref,
        icm.r_trunc,
        nc.radial_samples,
    );
    ProjTable::<3>::build(
        |r, out| radial.eval(r, out),
        r_ref,
        icm.r_trunc,
        nc.table_nodes,
        quad,
    )
}
