//! The random draws of one cluster, one function per random stream of the seed (docs/mock-clusters.md §1): the host
//! (stream 0), the merger (2), the background slab (3) and the ICM fluctuations (4); the subhalos (1) are drawn in
//! `subhalos.rs`. Each stream has its own generator, so the draws of one never shift another's, and within a stream the
//! order of the draws is fixed (the golden hashes of the generator depend on it).

use crate::data::config::{MockConfig, Physics};
use crate::data::fields::GridField;
use crate::data::halo::concentration_mean;
use crate::data::rng::{Rng, Stream};

/// Forced values for tests and figures: any field set replaces the random draw.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub m200c: Option<f64>,
    pub s_dm: Option<f64>,
    pub q_dm: Option<f64>,
    pub alpha_n: Option<f64>,
    pub n_sub: Option<usize>,
    /// Force a merger (`Some(true)`) or none (`Some(false)`).
    pub merger: Option<bool>,
    pub merger_outgoing: Option<bool>,
    /// Merger direction (unit 3-D vector, observer frame) and separation \[R200c\].
    pub merger_direction: Option<[f64; 3]>,
    pub merger_sep_r200: Option<f64>,
    pub merger_offset_kpc: Option<f64>,
    pub merger_xi: Option<f64>,
}

/// Draws that are "scatter" obey `MockConfig::scatter`: with `scatter = false` a normal deviate becomes 0 and a
/// uniform one its midpoint. The underlying word is always consumed, so switching scatter off never shifts the
/// structural draws (mass, orientation, positions) that follow.
pub(super) struct Draws {
    pub(super) rng: Rng,
    scatter: bool,
}

impl Draws {
    pub(super) fn new(seed: u64, stream: Stream, scatter: bool) -> Self {
        Draws {
            rng: Rng::new(seed, stream),
            scatter,
        }
    }
    /// N(0, sd) scatter term.
    pub(super) fn normal(&mut self, sd: f64) -> f64 {
        let z = self.rng.normal();
        if self.scatter {
            sd * z
        } else {
            0.0
        }
    }
    /// U(lo, hi) scatter term.
    pub(super) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = self.rng.uniform();
        if self.scatter {
            lo + (hi - lo) * u
        } else {
            0.5 * (lo + hi)
        }
    }
}

/// Concentration with lognormal scatter, clipped (docs/mock-clusters.md §2.1).
pub(super) fn draw_concentration(m200: f64, cfg: &MockConfig, d: &mut Draws) -> (f64, f64) {
    let c_mean = concentration_mean(m200, cfg.z, &cfg.halo);
    let c = (c_mean * 10f64.powf(d.normal(cfg.halo.c_scatter_dex)))
        .clamp(cfg.halo.c_min, cfg.halo.c_max);
    (c, c_mean)
}

/// The random ingredients of one ICM (docs/mock-clusters.md §2.4), drawn in a fixed order.
pub(super) struct GasDraw {
    pub(super) p0_ln: f64,
    pub(super) c500_ln: f64,
    pub(super) rc_ln: f64,
    pub(super) alpha_n: f64,
    pub(super) beta_n: f64,
    pub(super) rsg_ln: f64,
    pub(super) delta_out: f64,
    pub(super) fgas_ln: f64,
}

impl GasDraw {
    pub(super) fn draw(cfg: &MockConfig, d: &mut Draws) -> Self {
        let (p, n) = (&cfg.pressure, &cfg.density);
        GasDraw {
            p0_ln: d.normal(p.p0_scatter),
            c500_ln: d.normal(p.c500_scatter),
            rc_ln: d.normal(n.rc_scatter),
            alpha_n: d.uniform(n.alpha_n_min, n.alpha_n_max),
            beta_n: d.uniform(n.beta_n_min, n.beta_n_max),
            rsg_ln: d.normal(n.rsg_scatter),
            delta_out: d.normal(n.delta_out_sd),
            fgas_ln: d.normal(n.fgas_scatter),
        }
    }
}

/// The host halo's draws (stream 0), in their fixed order: mass, concentration, shape, orientation, ICM.
pub(super) struct HostDraw {
    pub(super) m200: f64,
    pub(super) c: f64,
    /// Mean concentration at `m200` (the ICM scales with the drawn concentration's deviation from it).
    pub(super) c_mean: f64,
    /// DM axis ratios b/a and c/a (1 for `smooth`).
    pub(super) q: f64,
    pub(super) s: f64,
    pub(super) quaternion: [f64; 4],
    pub(super) gas: GasDraw,
}

impl HostDraw {
    pub(super) fn draw(seed: u64, cfg: &MockConfig, o: &Overrides) -> Self {
        let mut d = Draws::new(seed, Stream::Host, cfg.scatter);
        let log_m = d.rng.uniform_in(cfg.mass.log10_m_min, cfg.mass.log10_m_max);
        let m200 = o.m200c.unwrap_or(10f64.powf(log_m));
        let (c, c_mean) = draw_concentration(m200, cfg, &mut d);
        let h = &cfg.halo;
        let s_drawn = (h.s_mean + d.normal(h.s_sd)).clamp(h.s_min, h.s_max);
        let u_q = d.uniform(0.0, 1.0);
        let quaternion = d.rng.unit_quaternion();
        let gas = GasDraw::draw(cfg, &mut d);
        let (q, s) = if cfg.physics == Physics::Smooth {
            (1.0, 1.0)
        } else {
            let s = o.s_dm.unwrap_or(s_drawn);
            (o.q_dm.unwrap_or(s + (1.0 - s) * u_q), s)
        };
        HostDraw {
            m200,
            c,
            c_mean,
            q,
            s,
            quaternion,
            gas,
        }
    }
}

/// The merger's draws (stream 2), made for every cluster whether or not it merges, so that switching mergers on or
/// off never shifts another draw. An override replaces a value after its draw (`unwrap_or` evaluates the draw).
pub(super) struct MergerDraw {
    pub(super) happens: bool,
    /// Mass ratio ξ = M₂/M₁.
    pub(super) xi: f64,
    pub(super) c: f64,
    pub(super) c_mean: f64,
    pub(super) gas: GasDraw,
    /// Separation \[R200c of the host\].
    pub(super) sep_r200: f64,
    /// Unit vector from the host to the secondary (observer frame).
    pub(super) direction: [f64; 3],
    pub(super) outgoing: bool,
    /// Gas–DM offset Δ \[kpc\].
    pub(super) offset_kpc: f64,
    gas_keep: f64,
    pressure_boost: f64,
}

impl MergerDraw {
    /// `m200`: the host's mass (ξ·m200 is the secondary's).
    pub(super) fn draw(seed: u64, cfg: &MockConfig, o: &Overrides, m200: f64) -> Self {
        let mut dm = Draws::new(seed, Stream::Merger, cfg.scatter);
        let merge_u = dm.rng.uniform();
        let happens = o
            .merger
            .unwrap_or(cfg.merger_on() && merge_u < cfg.merger.probability);
        let mg = &cfg.merger;
        let xi = o
            .merger_xi
            .unwrap_or(10f64.powf(dm.rng.uniform_in(mg.xi_min.log10(), mg.xi_max.log10())));
        let (c, c_mean) = draw_concentration(xi * m200, cfg, &mut dm);
        let gas = GasDraw::draw(cfg, &mut dm);
        let sep_r200 = o
            .merger_sep_r200
            .unwrap_or(dm.rng.uniform_in(mg.sep_min_r200, mg.sep_max_r200));
        let n_hat = dm.rng.unit_vector();
        let direction = o.merger_direction.unwrap_or(n_hat);
        let outgoing = o
            .merger_outgoing
            .unwrap_or(dm.rng.uniform() < mg.p_outgoing);
        let offset_kpc = o
            .merger_offset_kpc
            .unwrap_or(dm.uniform(mg.offset_min_kpc, mg.offset_max_kpc));
        let gas_keep = dm.uniform(mg.gas_keep_min, mg.gas_keep_max);
        let pressure_boost = dm.uniform(mg.pressure_boost_min, mg.pressure_boost_max);
        MergerDraw {
            happens,
            xi,
            c,
            c_mean,
            gas,
            sep_r200,
            direction,
            outgoing,
            offset_kpc,
            gas_keep,
            pressure_boost,
        }
    }

    /// `(gas kept by the secondary, pressure boost of both ICMs)`: stripping and shock heating act only after
    /// pericentre (an outgoing merger); otherwise `(1, 1)`.
    pub(super) fn stripping_and_heating(&self) -> (f64, f64) {
        if self.happens && self.outgoing {
            (self.gas_keep, self.pressure_boost)
        } else {
            (1.0, 1.0)
        }
    }
}

/// The background slab's lognormal amplitude and Gaussian field (stream 3), on the fixed 2L × 2L grid
/// (docs/mock-clusters.md §2.7).
pub(super) fn draw_background(seed: u64, cfg: &MockConfig) -> Option<(f64, GridField)> {
    cfg.background_on().then(|| {
        let b = &cfg.background;
        let mut db = Draws::new(seed, Stream::Background, cfg.scatter);
        let amp = db.normal(b.amp_scatter).exp();
        let slope = b.slope;
        let g = GridField::gaussian(
            cfg.numerics.field_cells,
            cfg.side_kpc,
            b.sigma_g,
            |k| k.powf(slope),
            &mut db.rng,
        );
        (amp, g)
    })
}

/// The ICM fluctuation field δ (stream 4), on the same grid as the background.
pub(super) fn draw_fluctuations(seed: u64, cfg: &MockConfig) -> Option<GridField> {
    cfg.fluctuations_on().then(|| {
        let fc = &cfg.fluctuations;
        let mut rng = Rng::new(seed, Stream::Fluctuations);
        let k0 = std::f64::consts::TAU / fc.scale_kpc;
        let slope = fc.slope;
        GridField::gaussian(
            cfg.numerics.field_cells,
            cfg.side_kpc,
            fc.sigma,
            |k| k.max(k0).powf(slope),
            &mut rng,
        )
    })
}
