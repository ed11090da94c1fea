//! Time and noise-level grids of the samplers: the \[S21\] uniform time grid and prior, the SDE re-discretised to a
//! sampler's step count, and the σ grids (Karras ρ or uniform in `t`) of the σ-space samplers.

use crate::edm::karras_sigmas;
use crate::precond::{Denoiser, ScoreFn};
use crate::sde::{AnySde, Sde, VeSde, VpSde};
use crate::{Error, Result};

/// Standard deviation of the prior `p_T` each SDE family samples from (\[S21\] `prior_sampling`): σ_max for VE,
/// 1 for VP.
pub(crate) fn prior_std(sde: &AnySde) -> f64 {
    match sde {
        AnySde::Ve(s) => s.sigma_max(),
        AnySde::Vp(_) => 1.0,
    }
}

/// `linspace(T, ε, N)_k` (\[S21\] `get_pc_sampler`: `torch.linspace(sde.T, eps, sde.N)`), in f64.
pub(crate) fn time_grid(sde: &AnySde, n: usize) -> Vec<f64> {
    let (t0, t1) = (sde.t_max(), sde.sampling_eps());
    (0..n)
        .map(|k| {
            if k + 1 == n {
                t1
            } else {
                t0 + (t1 - t0) * k as f64 / (n - 1) as f64
            }
        })
        .collect()
}

/// The model's SDE with `N` replaced by the sampler's step count. \[S21\] samplers always use `sde.N`, set from the
/// config that also sets the number of sampling steps; a sampler with `N ≠ sde.N` must discretize on its own grid,
/// otherwise the SMLD/DDPM step `G_i` (spacing of the `sde.N`-grid) injects the wrong total variance.
pub(crate) fn sde_with_n(sde: &AnySde, n: usize) -> Result<AnySde> {
    Ok(match sde {
        AnySde::Ve(s) => AnySde::Ve(VeSde::new(s.sigma_min(), s.sigma_max(), n)?),
        AnySde::Vp(s) => AnySde::Vp(VpSde::new(s.beta_min(), s.beta_max(), n)?),
    })
}

/// Noise-level grid of the σ-space samplers (ODE and EDM Heun).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SigmaGrid {
    /// \[K22\] Eq. 5 with exponent ρ ([`karras_sigmas`]; ρ = 7 default).
    Karras { rho: f64 },
    /// `σ(t)` on a uniform grid in `t` of the model's SDE (geometric in σ for VE), as \[S21\] `get_ode_sampler`.
    UniformT,
}

/// `n ≥ 2` decreasing noise levels from σ_max to σ_min on `grid`, both ends clamped to the model's trained range
/// `sigma_range()` (docs/samplers.md §3; `None` = the range's end). All in f64.
pub(crate) fn sigma_levels<M: ScoreFn + Denoiser>(
    m: &M,
    grid: SigmaGrid,
    n: usize,
    sigma_min: Option<f64>,
    sigma_max: Option<f64>,
) -> Result<Vec<f64>> {
    let (lo, hi) = m.sigma_range();
    let smin = sigma_min.unwrap_or(lo).clamp(lo, hi);
    let smax = sigma_max.unwrap_or(hi).clamp(lo, hi);
    match grid {
        SigmaGrid::Karras { rho } => karras_sigmas(n, smin, smax, rho),
        SigmaGrid::UniformT => {
            if n < 2 || !(smin > 0.0 && smin < smax) {
                return Err(Error::Config(format!(
                    "uniform-t sigma grid needs n >= 2 and 0 < sigma_min < sigma_max, got n = {n}, [{smin}, {smax}]"
                )));
            }
            let sde = m.sde();
            let (t_hi, t_lo) = (sde.t_of_sigma_equiv(smax), sde.t_of_sigma_equiv(smin));
            let mut s: Vec<f64> = (0..n)
                .map(|i| sde.sigma_equiv(t_hi + (t_lo - t_hi) * i as f64 / (n - 1) as f64))
                .collect();
            s[0] = smax;
            s[n - 1] = smin;
            Ok(s)
        }
    }
}

/// `Some(σ)` must be finite and positive.
pub(crate) fn check_sigma_opt(name: &str, v: Option<f64>) -> Result<()> {
    match v {
        Some(s) if !(s.is_finite() && s > 0.0) => Err(Error::Config(format!(
            "{name} must be finite and > 0, got {s}"
        ))),
        _ => Ok(()),
    }
}
