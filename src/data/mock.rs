//! One cluster from one seed (docs/mock-clusters.md §2–§4): `Cluster::from_seed` draws every physical parameter,
//! `render` projects it onto a pixel grid and applies the observation model to the inputs.
//!
//! The draws live in `mock/draws.rs` (one function per random stream) and `mock/subhalos.rs`; the gas model of a
//! halo in `mock/icm.rs`; the merging secondary in `mock/merger.rs`. This file assembles a [`Cluster`] from them
//! and renders it.

mod draws;
mod icm;
mod merger;
mod subhalos;

pub use self::draws::Overrides;
use self::draws::{draw_background, draw_fluctuations, HostDraw, MergerDraw};
use self::icm::{build_icm, project_icm};
use self::merger::{build_secondary, MergerInfo, Secondary};
use self::subhalos::{clump_gas_table, draw_subhalos, Subhalo};
use super::config::MockConfig;
use super::cosmology::{ARCMIN2_PER_SR, KPC_CM, SIGMA_T_OVER_MEC2};
use super::fields::GridField;
use super::gas::{ne_to_rho, IcmProfile};
use super::halo::Nfw;
use super::meta::{mass_bin, ClusterMeta};
use super::observe::{
    add_white_noise, beam_kernel, convolve_separable, crop, fwhm_to_sigma, poisson_xray, ObsConfig,
};
use super::project::{
    rotation_matrix, shape_matrix, unit_volume_axes, ProjTable, Quadrature, SkyEllipse,
};
use super::rng::{Rng, Stream};

/// A square pixel grid centred on the cluster (docs/mock-clusters.md §1): pixel (i, j) has centre
/// x_j = (j + ½ − N/2)Δ, y_i = (i + ½ − N/2)Δ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub n_pix: usize,
    pub side_kpc: f64,
}

impl Grid {
    pub fn new(n_pix: usize, side_kpc: f64) -> Self {
        Grid { n_pix, side_kpc }
    }
    /// Pixel side Δ \[kpc\].
    pub fn pixel_kpc(&self) -> f64 {
        self.side_kpc / self.n_pix as f64
    }
    /// Coordinate \[kpc\] of the centre of pixel index `i` along one axis.
    pub fn centre(&self, i: usize) -> f64 {
        (i as f64 + 0.5 - self.n_pix as f64 / 2.0) * self.pixel_kpc()
    }
}

/// The four clean maps of one cluster, f64 pixel averages, row-major `[N, N]` each.
#[derive(Debug, Clone)]
pub struct CleanMaps {
    pub grid: Grid,
    /// Compton-y (dimensionless).
    pub y: Vec<f64>,
    /// Soft-band X-ray surface brightness \[erg s⁻¹ cm⁻² arcmin⁻²\].
    pub sx: Vec<f64>,
    /// Projected gas density \[M_sun kpc⁻²\].
    pub sigma_gas: Vec<f64>,
    /// Projected dark-matter density \[M_sun kpc⁻²\].
    pub sigma_dm: Vec<f64>,
}

/// What a dataset stores for one cluster: f32, channel-major `[2, N, N]` arrays.
#[derive(Debug, Clone)]
pub struct RenderedCluster {
    pub meta: ClusterMeta,
    /// Observed inputs: ch 0 = y, ch 1 = S_X.
    pub inputs: Vec<f32>,
    /// Clean inputs, kept only when the observation model is not clean.
    pub inputs_clean: Option<Vec<f32>>,
    /// Targets: ch 0 = Σ_gas, ch 1 = Σ_DM.
    pub targets: Vec<f32>,
}

/// Unit conversions from profile integrals to map units (docs/mock-clusters.md §4).
#[derive(Debug, Clone, Copy)]
struct MapUnits {
    /// Σ_gas per ∫n_e dl \[M_sun kpc⁻² per cm⁻³ kpc\].
    rho_per_ne: f64,
    /// y per ∫P_e dl \[per keV cm⁻³ kpc\].
    y_per_p: f64,
    /// S_X per ∫ε dl \[erg s⁻¹ cm⁻² arcmin⁻² per erg s⁻¹ cm⁻³ kpc\].
    sx_per_eps: f64,
}

impl MapUnits {
    fn new(cfg: &MockConfig) -> Self {
        MapUnits {
            rho_per_ne: ne_to_rho(&cfg.cosmology),
            y_per_p: SIGMA_T_OVER_MEC2 * KPC_CM,
            sx_per_eps: KPC_CM
                / (4.0 * std::f64::consts::PI * (1.0 + cfg.z).powi(4) * ARCMIN2_PER_SR),
        }
    }
}

/// One mock cluster: every drawn parameter and the projection tables needed to render it at any resolution.
/// A pure function of (seed, config, overrides).
#[derive(Debug, Clone)]
pub struct Cluster {
    pub seed: u64,
    cfg: MockConfig,
    units: MapUnits,
    /// The primary halo (total matter, spherical-equivalent).
    pub halo: Nfw,
    pub m500: f64,
    pub r500: f64,
    /// DM axis ratios b/a and c/a (1 for `smooth`).
    pub q: f64,
    pub s: f64,
    pub quaternion: [f64; 4],
    dm_sky: SkyEllipse,
    gas_sky: SkyEllipse,
    /// Smooth host DM normalisation (1 − f_b)(1 − f_sub), f_sub the bound subhalo mass fraction.
    dm_norm: f64,
    icm: IcmProfile,
    icm_table: ProjTable<3>,
    /// Primary gas displacement Δ₁ \[kpc\] (mergers).
    gas_offset: [f64; 3],
    pub f_gas500: f64,
    pub p0: f64,
    pub c500: f64,
    pub tx_kev: f64,
    subhalos: Vec<Subhalo>,
    /// Bound subhalo mass (inside the tidal radii) as a fraction of M200c.
    pub f_sub: f64,
    /// β-model clump shapes in units of r_c, truncated at r_t: \[∫(1+x²)^{−3β/2}, ∫(1+x²)^{−3β}\].
    sub_gas_table: Option<ProjTable<2>>,
    secondary: Option<Secondary>,
    merger: Option<MergerInfo>,
    /// Background Σ_bg / Σ̄_bg (lognormal amplitude included) and ICM fluctuation δ, on the physical grid.
    background: Option<(f64, GridField)>,
    fluctuations: Option<GridField>,
}

impl Cluster {
    /// Draws the cluster of `seed` under `cfg` (docs/mock-clusters.md §2–3).
    pub fn from_seed(seed: u64, cfg: &MockConfig) -> Cluster {
        Self::from_seed_with(seed, cfg, &Overrides::default())
    }

    /// As [`Cluster::from_seed`], with some draws replaced by forced values.
    pub fn from_seed_with(seed: u64, cfg: &MockConfig, o: &Overrides) -> Cluster {
        let cosmo = &cfg.cosmology;
        let quad = Quadrature::new(cfg.numerics.gl_nodes, cfg.numerics.gl_panels);
        let f_b = cosmo.f_baryon();

        let host = HostDraw::draw(seed, cfg, o);
        let (m200, q, s) = (host.m200, host.q, host.s);
        let halo = Nfw::new(m200, host.c, cfg.z, cosmo);
        let (r500, m500) = halo.r500_m500();
        let rot = rotation_matrix(host.quaternion);
        let dm_sky = SkyEllipse::from_shape_matrix(&shape_matrix(&rot, unit_volume_axes(q, s)));
        let eta = cfg.halo.gas_shape_eta;
        let gas_sky = SkyEllipse::from_shape_matrix(&shape_matrix(
            &rot,
            unit_volume_axes(q.powf(eta), s.powf(eta)),
        ));

        // The merger is drawn before the ICM because shock heating boosts the host pressure too.
        let merger_draw = MergerDraw::draw(seed, cfg, o, m200);
        let (_, p_boost) = merger_draw.stripping_and_heating();
        let icm = build_icm(
            &halo,
            host.c_mean,
            &host.gas,
            o.alpha_n,
            1.0,
            p_boost,
            cfg.density.truncation_r200 * halo.r200,
            cfg,
            &quad,
        );
        let icm_table = project_icm(&icm.profile, halo.rs, cfg, &quad);
        let tx_kev = icm.profile.emission_weighted_t(r500, &cfg.pressure, &quad);
        let (secondary, merger, gas_offset) = if merger_draw.happens {
            let (sec, info, offset) = build_secondary(&merger_draw, &halo, m200, cfg, &quad);
            (Some(sec), Some(info), offset)
        } else {
            (None, None, [0.0; 3])
        };

        let (subhalos, f_sub) = if cfg.subhalos_on() {
            draw_subhalos(seed, cfg, &halo, &rot, [q, s], o.n_sub, &quad)
        } else {
            (Vec::new(), 0.0)
        };
        let sub_gas_table = clump_gas_table(&subhalos, cfg);

        Cluster {
            seed,
            cfg: cfg.clone(),
            units: MapUnits::new(cfg),
            halo,
            m500,
            r500,
            q,
            s,
            quaternion: host.quaternion,
            dm_sky,
            gas_sky,
            dm_norm: (1.0 - f_b) * (1.0 - f_sub),
            icm: icm.profile,
            icm_table,
            gas_offset,
            f_gas500: icm.f_gas500,
            p0: icm.p0,
            c500: icm.c500,
            tx_kev,
            subhalos,
            f_sub,
            sub_gas_table,
            secondary,
            merger,
            background: draw_background(seed, cfg),
            fluctuations: draw_fluctuations(seed, cfg),
        }
    }

    /// The configuration the cluster was drawn with.
    pub fn config(&self) -> &MockConfig {
        &self.cfg
    }

    /// The host's spherical gas model (for diagnostics and tests).
    pub fn icm(&self) -> &IcmProfile {
        &self.icm
    }

    /// Number of subhalos.
    pub fn n_sub(&self) -> usize {
        self.subhalos.len()
    }

    /// Sky positions \[kpc\] of the DM and gas centres of the merging secondary, if any.
    pub fn secondary_centres(&self) -> Option<([f64; 2], [f64; 2])> {
        self.secondary
            .as_ref()
            .map(|s| ([s.pos[0], s.pos[1]], [s.gas_centre[0], s.gas_centre[1]]))
    }

    /// Adds the primary's DM and gas at sky point (x, y) to `acc` = \[Σ_gas, Σ_DM, y, S_X\].
    #[inline]
    fn add_host(&self, x: f64, y: f64, acc: &mut [f64; 4]) {
        let u = &self.units;
        let h = &self.halo;
        // Primary DM: analytic projected NFW of the ellipsoidal radius.
        let r = self.dm_sky.radius(x, y).max(1e-4 * h.rs);
        acc[1] += self.dm_norm * self.dm_sky.los_factor * h.sigma(r);
        // Primary gas, displaced by Δ₁.
        let rg = self
            .gas_sky
            .radius(x - self.gas_offset[0], y - self.gas_offset[1]);
        let [ne, pe, eps] = self.icm_table.eval(rg);
        let l = self.gas_sky.los_factor;
        acc[0] += l * u.rho_per_ne * ne;
        acc[2] += l * u.y_per_p * pe;
        acc[3] += l * u.sx_per_eps * eps;
    }

    /// Adds one subhalo's DM and gas at (x, y).
    #[inline]
    fn add_subhalo(&self, sub: &Subhalo, x: f64, y: f64, acc: &mut [f64; 4]) {
        let u = &self.units;
        let r2 = (x - sub.pos[0]).powi(2) + (y - sub.pos[1]).powi(2);
        if r2 < sub.r_t * sub.r_t {
            acc[1] += sub.dm.eval(r2.sqrt())[0];
        }
        if let (Some(g), Some(t)) = (&sub.gas, &self.sub_gas_table) {
            let r2 = (x - g.centre[0]).powi(2) + (y - g.centre[1]).powi(2);
            if r2 < sub.r_t * sub.r_t {
                let [b1, b2] = t.eval(r2.sqrt() / g.rc);
                let ne_col = g.ne0 * g.rc * b1;
                acc[0] += u.rho_per_ne * ne_col;
                acc[2] += u.y_per_p * ne_col * g.t_kev;
                acc[3] += u.sx_per_eps * g.ne0 * g.ne0 * g.rc * b2 * g.lambda_over_ne_nh;
            }
        }
    }

    /// Adds the merging secondary's DM and gas at (x, y).
    #[inline]
    fn add_secondary(&self, sec: &Secondary, x: f64, y: f64, acc: &mut [f64; 4]) {
        let u = &self.units;
        let r2 = (x - sec.pos[0]).powi(2) + (y - sec.pos[1]).powi(2);
        if r2 < sec.r200 * sec.r200 {
            acc[1] += sec.dm.eval(r2.sqrt())[0];
        }
        let r2 = (x - sec.gas_centre[0]).powi(2) + (y - sec.gas_centre[1]).powi(2);
        if r2 < sec.r200 * sec.r200 {
            let [ne, pe, eps] = sec.gas.eval(r2.sqrt());
            acc[0] += u.rho_per_ne * ne;
            acc[2] += u.y_per_p * pe;
            acc[3] += u.sx_per_eps * eps;
        }
    }

    /// Renders \[Σ_gas, Σ_DM, y, S_X\] as pixel averages on an `m × m` grid of pixel side `pixel` \[kpc\] centred on
    /// the halo, then applies fluctuations and background (docs/mock-clusters.md §4, §2.7). Returns four row-major
    /// maps.
    ///
    /// Each component is averaged with its own sub-sampling: k × k points, or the finer grid where the pixel centre
    /// lies within `centre_radius_px` of one of that component's centres (its cusp). Components whose extent cannot
    /// reach a pixel are skipped there. This is the refinement rule of docs/mock-clusters.md §4 applied per component:
    /// the same refinement at every cusp, several times cheaper than refining all components wherever any centre lies.
    fn render_grid(&self, m: usize, pixel: f64) -> [Vec<f64>; 4] {
        let nc = &self.cfg.numerics;
        let near2 = (nc.centre_radius_px * pixel).powi(2);
        let half_diag = std::f64::consts::FRAC_1_SQRT_2 * pixel;
        let near =
            |xc: f64, yc: f64, c: [f64; 3]| (c[0] - xc).powi(2) + (c[1] - yc).powi(2) <= near2;
        let reaches = |xc: f64, yc: f64, c: [f64; 3], r: f64| {
            (c[0] - xc).powi(2) + (c[1] - yc).powi(2) < (r + half_diag).powi(2)
        };
        let k_for = |fine: bool| {
            if fine {
                nc.subsample_centre
            } else {
                nc.subsample
            }
        };
        let mut maps: [Vec<f64>; 4] = std::array::from_fn(|_| vec![0.0; m * m]);
        let coord = |k: usize| (k as f64 + 0.5 - m as f64 / 2.0) * pixel;
        for i in 0..m {
            let yc = coord(i);
            for j in 0..m {
                let xc = coord(j);
                let mut acc = [0.0; 4];
                let k = k_for(near(xc, yc, [0.0; 3]) || near(xc, yc, self.gas_offset));
                pixel_average(xc, yc, pixel, k, &mut acc, |x, y, a| self.add_host(x, y, a));
                for sub in &self.subhalos {
                    let gas_c = sub.gas.map(|g| g.centre);
                    let touches = reaches(xc, yc, sub.pos, sub.r_t)
                        || gas_c.is_some_and(|g| reaches(xc, yc, g, sub.r_t));
                    if touches {
                        let fine = near(xc, yc, sub.pos) || gas_c.is_some_and(|g| near(xc, yc, g));
                        pixel_average(xc, yc, pixel, k_for(fine), &mut acc, |x, y, a| {
                            self.add_subhalo(sub, x, y, a)
                        });
                    }
                }
                if let Some(sec) = &self.secondary {
                    if reaches(xc, yc, sec.pos, sec.r200)
                        || reaches(xc, yc, sec.gas_centre, sec.r200)
                    {
                        let fine = near(xc, yc, sec.pos) || near(xc, yc, sec.gas_centre);
                        pixel_average(xc, yc, pixel, k_for(fine), &mut acc, |x, y, a| {
                            self.add_secondary(sec, x, y, a)
                        });
                    }
                }
                for (c, map) in maps.iter_mut().enumerate() {
                    map[i * m + j] = acc[c];
                }
            }
        }
        self.apply_fields(&mut maps, m, pixel);
        maps
    }

    /// ICM fluctuations multiply the cluster gas maps; the background slab adds DM, gas and a little y (§2.7).
    fn apply_fields(&self, maps: &mut [Vec<f64>; 4], m: usize, pixel: f64) {
        let coord = |k: usize| (k as f64 + 0.5 - m as f64 / 2.0) * pixel;
        let f_b = self.cfg.cosmology.f_baryon();
        let sigma_bar = self.cfg.cosmology.omega_m
            * self.cfg.cosmology.rho_crit0()
            * (1.0 + self.cfg.z).powi(3)
            * self.cfg.background.slab_kpc;
        for i in 0..m {
            for j in 0..m {
                let (x, y) = (coord(j), coord(i));
                let p = i * m + j;
                if let Some(delta) = &self.fluctuations {
                    let sd = self.cfg.fluctuations.sigma;
                    let eta = self.cfg.fluctuations.eta_y;
                    let dv = delta.at(x, y);
                    maps[0][p] *= (dv - 0.5 * sd * sd).exp();
                    maps[2][p] *= (eta * dv - 0.5 * eta * eta * sd * sd).exp();
                    maps[3][p] *= (2.0 * dv - sd * sd).exp();
                }
                if let Some((amp, g)) = &self.background {
                    let b = &self.cfg.background;
                    let sigma_bg =
                        sigma_bar * amp * (g.at(x, y) - 0.5 * b.sigma_g * b.sigma_g).exp();
                    let gas_bg = b.gas_frac_of_fb * f_b * sigma_bg;
                    maps[1][p] += (1.0 - f_b) * sigma_bg;
                    maps[0][p] += gas_bg;
                    maps[2][p] += self.units.y_per_p * b.t_kev * gas_bg / self.units.rho_per_ne;
                }
            }
        }
    }

    /// The four clean maps on `grid` (f64 pixel averages).
    pub fn render_clean(&self, grid: &Grid) -> CleanMaps {
        let [sigma_gas, sigma_dm, y, sx] = self.render_grid(grid.n_pix, grid.pixel_kpc());
        CleanMaps {
            grid: *grid,
            y,
            sx,
            sigma_gas,
            sigma_dm,
        }
    }

    /// Renders the cluster at `n_pix`² over the configured field and applies the observation model to the inputs
    /// (docs/mock-clusters.md §5): clean y and S_X are rendered on a padded grid, convolved with the beams, cropped,
    /// then noised. `meta.index` and `meta.id` are left 0 for the dataset writer to set.
    pub fn render(&self, n_pix: usize, obs: &ObsConfig) -> RenderedCluster {
        let grid = Grid::new(n_pix, self.cfg.side_kpc);
        let pixel = grid.pixel_kpc();
        let pixel_arcmin = pixel / self.cfg.cosmology.kpc_per_arcmin(self.cfg.z);
        let pad = obs.padding_px(pixel_arcmin);
        let m = n_pix + 2 * pad;
        let [gas, dm, y, sx] = self.render_grid(m, pixel);
        let crop_n = |v: &[f64]| crop(v, m, n_pix);
        let clean = CleanMaps {
            grid,
            y: crop_n(&y),
            sx: crop_n(&sx),
            sigma_gas: crop_n(&gas),
            sigma_dm: crop_n(&dm),
        };
        let meta = self.meta(&clean);
        let to_f32 =
            |a: &[f64], b: &[f64]| a.iter().chain(b).map(|&v| v as f32).collect::<Vec<f32>>();
        let targets = to_f32(&clean.sigma_gas, &clean.sigma_dm);
        let clean_inputs = to_f32(&clean.y, &clean.sx);
        if obs.is_clean() {
            return RenderedCluster {
                meta,
                inputs: clean_inputs,
                inputs_clean: None,
                targets,
            };
        }
        let sz_sigma = fwhm_to_sigma(obs.sz_beam_fwhm_arcmin) / pixel_arcmin;
        let xr_sigma = fwhm_to_sigma(obs.xray_psf_fwhm_arcsec / 60.0) / pixel_arcmin;
        let mut y_obs = crop_n(&convolve_separable(&y, m, &beam_kernel(sz_sigma)));
        let mut sx_obs = crop_n(&convolve_separable(&sx, m, &beam_kernel(xr_sigma)));
        add_white_noise(
            &mut y_obs,
            obs.y_noise_per_pixel(pixel_arcmin),
            &mut Rng::new(self.seed, Stream::SzNoise),
        );
        if obs.xray_counts {
            poisson_xray(
                &mut sx_obs,
                obs,
                pixel_arcmin,
                &mut Rng::new(self.seed, Stream::XrayCounts),
            );
        }
        RenderedCluster {
            meta,
            inputs: to_f32(&y_obs, &sx_obs),
            inputs_clean: Some(clean_inputs),
            targets,
        }
    }

    /// Metadata of the cluster, with the aperture quantities (Y_cyl, L_X within R500c) measured on `clean`.
    pub fn meta(&self, clean: &CleanMaps) -> ClusterMeta {
        let cosmo = &self.cfg.cosmology;
        let pixel = clean.grid.pixel_kpc();
        let w = aperture_weights(&clean.grid, self.r500);
        let y500: f64 = clean.y.iter().zip(&w).map(|(v, w)| v * w).sum::<f64>() * pixel * pixel;
        let pixel_arcmin2 = (pixel / cosmo.kpc_per_arcmin(self.cfg.z)).powi(2);
        let flux: f64 = clean.sx.iter().zip(&w).map(|(v, w)| v * w).sum::<f64>() * pixel_arcmin2;
        let d_l_cm =
            cosmo.angular_diameter_distance(self.cfg.z) * (1.0 + self.cfg.z).powi(2) * KPC_CM;
        let lx = 4.0 * std::f64::consts::PI * d_l_cm * d_l_cm * flux;
        let mi = self.merger.unwrap_or_default();
        ClusterMeta {
            index: 0,
            id: 0,
            seed: Some(self.seed),
            m200c_msun: self.halo.m200,
            r200c_kpc: self.halo.r200,
            c200c: self.halo.c,
            m500c_msun: self.m500,
            r500c_kpc: self.r500,
            z: self.cfg.z,
            f_gas500: self.f_gas500,
            p0: self.p0,
            c500: self.c500,
            q_dm: self.q,
            s_dm: self.s,
            quat_w: self.quaternion[0],
            quat_x: self.quaternion[1],
            quat_y: self.quaternion[2],
            quat_z: self.quaternion[3],
            n_sub: self.subhalos.len() as f64,
            f_sub: self.f_sub,
            merger: if self.merger.is_some() { 1.0 } else { 0.0 },
            mass_ratio: mi.xi,
            sep_proj_kpc: mi.sep_proj,
            offset1_proj_kpc: mi.offset1_proj,
            offset2_proj_kpc: mi.offset2_proj,
            tx_kev: self.tx_kev,
            y500_cyl_kpc2: y500,
            lx500_soft_erg_s: lx,
            mass_bin: mass_bin(self.halo.m200),
        }
    }
}

/// Adds to `acc` the average of `f` over a k × k midpoint sub-grid of the pixel centred at (xc, yc).
#[inline]
fn pixel_average(
    xc: f64,
    yc: f64,
    pixel: f64,
    k: usize,
    acc: &mut [f64; 4],
    f: impl Fn(f64, f64, &mut [f64; 4]),
) {
    let mut sum = [0.0; 4];
    let step = pixel / k as f64;
    let start = -0.5 * pixel + 0.5 * step;
    for a in 0..k {
        let yy = yc + start + a as f64 * step;
        for b in 0..k {
            f(xc + start + b as f64 * step, yy, &mut sum);
        }
    }
    let w = 1.0 / (k * k) as f64;
    for c in 0..4 {
        acc[c] += sum[c] * w;
    }
}

/// Fraction of each pixel inside the circle of radius `r` \[kpc\] about the map centre, from 8 × 8 sub-samples.
pub fn aperture_weights(grid: &Grid, r: f64) -> Vec<f64> {
    aperture_weights_subsampled(grid, r, 8)
}

/// As [`aperture_weights`] with `k × k` sub-samples per pixel.
pub fn aperture_weights_subsampled(grid: &Grid, r: f64, k: usize) -> Vec<f64> {
    let n = grid.n_pix;
    let pixel = grid.pixel_kpc();
    let r2 = r * r;
    let mut w = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let (xc, yc) = (grid.centre(j), grid.centre(i));
            // Pixels wholly inside or outside need no sub-sampling.
            let d = xc.hypot(yc);
            let half_diag = std::f64::consts::FRAC_1_SQRT_2 * pixel;
            if d + half_diag <= r {
                w[i * n + j] = 1.0;
                continue;
            }
            if d - half_diag >= r {
                continue;
            }
            let mut inside = 0;
            for a in 0..k {
                let yy = yc + ((a as f64 + 0.5) / k as f64 - 0.5) * pixel;
                for b in 0..k {
                    let xx = xc + ((b as f64 + 0.5) / k as f64 - 0.5) * pixel;
                    if xx * xx + yy * yy <= r2 {
                        inside += 1;
                    }
                }
            }
            w[i * n + j] = inside as f64 / (k * k) as f64;
        }
    }
    w
}
