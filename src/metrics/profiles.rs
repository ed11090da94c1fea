//! Azimuthally averaged radial profiles and circular-aperture masses of projected maps (the paper's radial-profile
//! comparison, \[H25\] §4), centred on the true cluster centre.
//!
//! **Centre.** Mock and imported maps put the cluster centre at the geometric centre of the map, the corner shared by
//! the four central pixels (docs/mock-clusters.md §1); pixel (row i, col j) covers `x ∈ [(j − N/2)Δ, (j + 1 − N/2)Δ]`,
//! `y ∈ [(i − N/2)Δ, (i + 1 − N/2)Δ]`. Truth and samples use the same centre: a sample that puts the cluster elsewhere
//! is penalised, as it should be.
//!
//! **Why exact pixel areas.** At 64² over 5 Mpc a pixel (78 kpc) is as wide as an annulus at 0.1 R200c, so
//! assigning each pixel to the annulus containing its centre would make inner profiles jump between neighbouring
//! bins. Instead every pixel contributes to every annulus in proportion to the *exact* area of their overlap
//! ([`disk_rect_area`], closed form), which is what k×k sub-pixel sampling converges to as k → ∞. The weights of
//! one cluster's annuli are a sparse table ([`AnnulusWeights`]) built once and applied to the truth and to every
//! sample; a profile bin is the area-weighted mean of the pixel values, Σ̄_b = Σ_p A_pb Σ_p / Σ_p A_pb, i.e. the
//! annulus average of the pixelised map (the map is taken as constant within each pixel).
//!
//! **Bins.** Default edges are log-spaced by 0.1 dex: 0.05–1.58 R200c ([`default_edges_r200c`], so 0.1 and 1.0
//! R200c are edges) and 50–1995 kpc ([`default_edges_kpc`]). An annulus must lie inside the map (outer edge ≤ half
//! the side); [`clip_edges`] drops the outer edges that would leave the map for the largest cluster of an
//! evaluation, so every kept bin is complete for every cluster and no statistic is NaN. The dropped edges are
//! reported, never silently filled.

use serde::{Deserialize, Serialize};

use crate::data::dataset::MapGeometry;
use crate::{Error, Result};

/// Log-spaced edges in R/R200c: 10^(−1.3 + 0.1 k), k = 0..=15 (0.050 … 1.585; 15 bins of 0.1 dex).
pub fn default_edges_r200c() -> Vec<f64> {
    (0..=15)
        .map(|k| 10f64.powf(-1.3 + 0.1 * k as f64))
        .collect()
}

/// Log-spaced edges in kpc: 10^(1.7 + 0.1 k), k = 0..=16 (50 … 1995 kpc; 16 bins of 0.1 dex).
pub fn default_edges_kpc() -> Vec<f64> {
    (0..=16).map(|k| 10f64.powf(1.7 + 0.1 * k as f64)).collect()
}

/// Geometric bin centres √(e_b e_{b+1}).
pub fn bin_centres(edges: &[f64]) -> Vec<f64> {
    edges.windows(2).map(|w| (w[0] * w[1]).sqrt()).collect()
}

/// Splits `edges` (in units of `scale_kpc`) into those whose circle stays inside a map of half-side `half_kpc`
/// for the largest scale `max_scale_kpc`, and the dropped outer ones. Errors if the edges are not positive and
/// strictly increasing, or if fewer than two survive.
pub fn clip_edges(
    edges: &[f64],
    max_scale_kpc: f64,
    half_kpc: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    check_edges(edges)?;
    let limit = half_kpc * (1.0 + 1e-9);
    let (kept, dropped): (Vec<f64>, Vec<f64>) =
        edges.iter().partition(|&&e| e * max_scale_kpc <= limit);
    if kept.len() < 2 {
        return Err(Error::Config(format!(
            "radial edges {edges:?}: fewer than two fit inside the map (half side {half_kpc} kpc, scale \
             {max_scale_kpc} kpc)"
        )));
    }
    Ok((kept, dropped))
}

/// Checks radial edges are finite, ≥ 0 and strictly increasing, with at least one bin.
pub fn check_edges(edges: &[f64]) -> Result<()> {
    let ok = edges.len() >= 2
        && edges.iter().all(|e| e.is_finite() && *e >= 0.0)
        && edges.windows(2).all(|w| w[1] > w[0]);
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "radial edges {edges:?}: need at least two finite, non-negative, strictly increasing values"
        )))
    }
}

/// Exact area of the intersection of the disk x² + y² ≤ r² (centred on the origin) with the rectangle
/// `[x0, x1] × [y0, y1]` (x0 ≤ x1, y0 ≤ y1).
///
/// Inclusion–exclusion over the signed quadrant areas G(x, y) = sgn x sgn y g(|x|, |y|), where g(a, b) is the area
/// of the disk inside `[0, a] × [0, b]`: ∫₀^min(a,r) min(b, √(r² − x²)) dx, in closed form with
/// F(x) = ∫ √(r² − x²) dx = ½ (x √(r² − x²) + r² asin(x/r)).
pub fn disk_rect_area(r: f64, x0: f64, x1: f64, y0: f64, y1: f64) -> f64 {
    let g = |x: f64, y: f64| x.signum() * y.signum() * quadrant_area(r, x.abs(), y.abs());
    (g(x1, y1) - g(x0, y1) - g(x1, y0) + g(x0, y0)).max(0.0)
}

/// Area of the disk of radius r inside `[0, a] × [0, b]`, a, b ≥ 0.
fn quadrant_area(r: f64, a: f64, b: f64) -> f64 {
    if r <= 0.0 || a == 0.0 || b == 0.0 {
        return 0.0;
    }
    if a * a + b * b <= r * r {
        return a * b;
    }
    let prim = |x: f64| {
        0.5 * (x * (r * r - x * x).max(0.0).sqrt() + r * r * (x / r).clamp(-1.0, 1.0).asin())
    };
    // For x < xc the column is cut by y = b, beyond it by the circle.
    let xc = (r * r - b * b).max(0.0).sqrt();
    let xa = a.min(xc);
    let xe = a.min(r);
    b * xa + prim(xe) - prim(xa)
}

/// Pixel geometry of the metrics: side N, pixel size Δ \[kpc\], and the centred pixel edges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Grid {
    pub n: usize,
    pub pixel_kpc: f64,
}

impl Grid {
    pub fn new(geometry: &MapGeometry) -> Self {
        Grid {
            n: geometry.n_pix,
            pixel_kpc: geometry.pixel_kpc,
        }
    }

    /// Lower edge of pixel column (or row) `j` \[kpc\], relative to the map centre.
    fn edge(&self, j: usize) -> f64 {
        (j as f64 - 0.5 * self.n as f64) * self.pixel_kpc
    }

    /// Area of pixel `(i, j)` inside the centred disk of radius `r` \[kpc²\], with a fast path for pixels wholly
    /// inside or outside.
    fn disk_area(&self, r: f64, i: usize, j: usize) -> f64 {
        let (x0, y0) = (self.edge(j), self.edge(i));
        let (x1, y1) = (x0 + self.pixel_kpc, y0 + self.pixel_kpc);
        let near = |a: f64, b: f64| {
            if a > 0.0 {
                a
            } else if b < 0.0 {
                -b
            } else {
                0.0
            }
        };
        let (nx, ny) = (near(x0, x1), near(y0, y1));
        let (fx, fy) = (x0.abs().max(x1.abs()), y0.abs().max(y1.abs()));
        if nx * nx + ny * ny >= r * r {
            0.0
        } else if fx * fx + fy * fy <= r * r {
            self.pixel_kpc * self.pixel_kpc
        } else {
            disk_rect_area(r, x0, x1, y0, y1)
        }
    }
}

/// Sparse overlap areas of one centred disk with the pixels of a map: `(pixel index i·N + j, area in kpc²)`.
/// The sum of the areas is π r² when the disk lies inside the map, and the disk's part inside the map otherwise.
pub fn disk_weights(geometry: &MapGeometry, r_kpc: f64) -> Vec<(u32, f64)> {
    let grid = Grid::new(geometry);
    let mut out = Vec::new();
    for i in 0..grid.n {
        for j in 0..grid.n {
            let a = grid.disk_area(r_kpc, i, j);
            if a > 0.0 {
                out.push(((i * grid.n + j) as u32, a));
            }
        }
    }
    out
}

/// Σ_p A_p x_p: the integral of a map over a disk given by [`disk_weights`] (map unit × kpc²; M_sun for Σ maps in
/// M_sun kpc⁻²).
pub fn aperture_sum(weights: &[(u32, f64)], map: &[f32]) -> f64 {
    weights
        .iter()
        .map(|&(p, a)| a * map[p as usize] as f64)
        .sum()
}

/// The annulus–pixel overlap areas of one cluster for given edges in kpc: built once, applied to many maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnulusWeights {
    /// Radial edges \[kpc\].
    pub edges_kpc: Vec<f64>,
    /// Per bin, `(pixel index, overlap area in kpc²)` for every pixel that touches the annulus.
    pub bins: Vec<Vec<(u32, f64)>>,
    /// Per bin, the annulus area inside the map \[kpc²\] (= π(r₂² − r₁²) for annuli inside the map).
    pub area: Vec<f64>,
}

impl AnnulusWeights {
    /// Overlap areas of the annuli between consecutive `edges_kpc` with the pixels of `geometry`.
    pub fn new(geometry: &MapGeometry, edges_kpc: &[f64]) -> Result<Self> {
        check_edges(edges_kpc)?;
        let grid = Grid::new(geometry);
        let nb = edges_kpc.len() - 1;
        let mut bins = vec![Vec::new(); nb];
        // Only pixels that the outermost circle touches matter.
        let mut inner = vec![0.0; edges_kpc.len()];
        for i in 0..grid.n {
            for j in 0..grid.n {
                let p = (i * grid.n + j) as u32;
                let outer = grid.disk_area(edges_kpc[nb], i, j);
                if outer == 0.0 {
                    continue;
                }
                for (e, r) in edges_kpc.iter().enumerate() {
                    inner[e] = if e == nb {
                        outer
                    } else {
                        grid.disk_area(*r, i, j)
                    };
                }
                let tiny = 1e-12 * grid.pixel_kpc * grid.pixel_kpc;
                for b in 0..nb {
                    let a = inner[b + 1] - inner[b];
                    if a > tiny {
                        bins[b].push((p, a));
                    }
                }
            }
        }
        let area = bins
            .iter()
            .map(|w| w.iter().map(|(_, a)| a).sum())
            .collect();
        Ok(AnnulusWeights {
            edges_kpc: edges_kpc.to_vec(),
            bins,
            area,
        })
    }

    /// Number of radial bins.
    pub fn len(&self) -> usize {
        self.bins.len()
    }

    /// Whether there are no bins.
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// Area-weighted annulus means Σ̄_b = Σ_p A_pb x_p / Σ_p A_pb of a row-major N×N map, written to `out`
    /// (length [`len`](Self::len)). A bin with no area (an annulus outside the map) gives 0.
    pub fn profile_into(&self, map: &[f32], out: &mut [f64]) {
        for ((w, area), o) in self.bins.iter().zip(&self.area).zip(out.iter_mut()) {
            let s: f64 = w.iter().map(|&(p, a)| a * map[p as usize] as f64).sum();
            *o = if *area > 0.0 { s / area } else { 0.0 };
        }
    }

    /// The radial profile of one map; see [`profile_into`](Self::profile_into).
    pub fn profile(&self, map: &[f32]) -> Vec<f64> {
        let mut out = vec![0.0; self.len()];
        self.profile_into(map, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cosmology::Cosmology;
    use crate::data::halo::Nfw;
    use std::f64::consts::PI;

    #[test]
    fn disk_rect_area_closed_form_cases() {
        let r = 1.7;
        // Whole disk inside a big rectangle; quarter disk; disk inside its bounding square.
        assert!((disk_rect_area(r, -5.0, 5.0, -5.0, 5.0) - PI * r * r).abs() < 1e-12);
        assert!((disk_rect_area(r, 0.0, 5.0, 0.0, 5.0) - PI * r * r / 4.0).abs() < 1e-12);
        assert!((disk_rect_area(r, -r, r, -r, r) - PI * r * r).abs() < 1e-12);
        // Half plane strip x ∈ [0.5, 5]: circular segment r² acos(d/r) − d √(r² − d²).
        let d: f64 = 0.5;
        let seg = r * r * (d / r).acos() - d * (r * r - d * d).sqrt();
        assert!((disk_rect_area(r, d, 5.0, -5.0, 5.0) - seg).abs() < 1e-12);
        // Rectangle wholly inside / outside.
        assert!((disk_rect_area(r, 0.1, 0.3, -0.2, 0.4) - 0.2 * 0.6).abs() < 1e-15);
        assert_eq!(disk_rect_area(r, 2.0, 3.0, 2.0, 3.0), 0.0);
    }

    #[test]
    fn disk_rect_area_matches_sub_pixel_sampling() {
        // An off-centre box cut by the circle, against 2000² point sampling.
        let (r, x0, x1, y0, y1) = (1.0, 0.3, 1.1, -0.4, 0.55);
        let k = 2000;
        let mut inside = 0usize;
        for a in 0..k {
            for b in 0..k {
                let x = x0 + (a as f64 + 0.5) * (x1 - x0) / k as f64;
                let y = y0 + (b as f64 + 0.5) * (y1 - y0) / k as f64;
                inside += (x * x + y * y <= r * r) as usize;
            }
        }
        let sampled = inside as f64 / (k * k) as f64 * (x1 - x0) * (y1 - y0);
        assert!((disk_rect_area(r, x0, x1, y0, y1) - sampled).abs() < 1e-5);
    }

    #[test]
    fn annulus_areas_tile_the_disk() {
        let g = MapGeometry::new(64, 5000.0);
        let edges = default_edges_kpc();
        let w = AnnulusWeights::new(&g, &edges).unwrap();
        for (b, a) in w.area.iter().enumerate() {
            let exact = PI * (edges[b + 1].powi(2) - edges[b].powi(2));
            assert!((a / exact - 1.0).abs() < 1e-10, "bin {b}: {a} vs {exact}");
        }
        // Annulus partly outside the map: only the inside part counts.
        let w = AnnulusWeights::new(&g, &[2000.0, 3000.0]).unwrap();
        assert!(w.area[0] < PI * (3000f64.powi(2) - 2000f64.powi(2)));
        assert!(w.area[0] > 0.0);
    }

    #[test]
    fn aperture_mass_of_a_uniform_map() {
        // Σ πR² within 0.5 % (exact areas give ~1e-12) for R from under a pixel to nearly the half side.
        let g = MapGeometry::new(64, 5000.0);
        let sigma = 3.5e7f32;
        let map = vec![sigma; 64 * 64];
        for r in [50.0, 78.125, 333.3, 1000.0, 1234.5, 2433.0] {
            let m = aperture_sum(&disk_weights(&g, r), &map);
            let exact = sigma as f64 * PI * r * r;
            assert!((m / exact - 1.0).abs() < 5e-3, "R = {r}: {m} vs {exact}");
            assert!((m / exact - 1.0).abs() < 1e-9, "exact areas: R = {r}");
        }
    }

    #[test]
    fn clipping_drops_edges_outside_the_map() {
        let (kept, dropped) = clip_edges(&default_edges_r200c(), 2433.0, 2500.0).unwrap();
        assert!((kept.last().unwrap() - 1.0).abs() < 1e-9, "{kept:?}");
        assert_eq!(dropped.len(), 2);
        assert!(clip_edges(&[0.5, 0.4], 1000.0, 2500.0).is_err());
        assert!(clip_edges(&[3.0, 4.0], 1000.0, 2500.0).is_err());
    }

    /// Projected NFW Σ(R) rendered on the pixel grid (each pixel the mean of `k`² sub-pixel samples) and profiled
    /// with exact annulus weights, against the annulus average of the analytic Σ: 2 / (r₂² − r₁²) ∫ Σ(R) R dR =
    /// [M_2D(<r₂) − M_2D(<r₁)] / π(r₂² − r₁²) with the closed-form cylinder mass \[B96\].
    ///
    /// Measured: ≤ 0.4 % for massive clusters at 64² and 128². At 64² a pixel is 0.03–0.09 R200c, and for the
    /// least massive clusters (R200c ≈ 0.9 Mpc, 0.1 R200c ≈ 1.2 pixels) the pixelised map's annulus means in the two
    /// innermost 0.1-dex bins differ from the analytic ones by up to ±5 % (resolution, not binning: the pixel value
    /// is the pixel's mean, and a 0.1-dex annulus there samples only a few pixels); ≤ 1 % beyond 0.2 R200c.
    #[test]
    fn nfw_profile_matches_analytic_annulus_average() {
        let cosmo = Cosmology::default();
        for (n, m200, tol) in [
            (128usize, 1.5e15, 0.005f64),
            (64, 2.0e15, 0.005),
            (64, 1.0e14, 0.06),
        ] {
            let nfw = Nfw::new(m200, 4.0, 0.2, &cosmo);
            let g = MapGeometry::new(n, 5000.0);
            let d = g.pixel_kpc;
            let k = 16;
            let mut map = vec![0f32; n * n];
            for i in 0..n {
                for j in 0..n {
                    let mut s = 0.0;
                    for a in 0..k {
                        for b in 0..k {
                            let x = (j as f64 - n as f64 / 2.0 + (b as f64 + 0.5) / k as f64) * d;
                            let y = (i as f64 - n as f64 / 2.0 + (a as f64 + 0.5) / k as f64) * d;
                            s += nfw.sigma(x.hypot(y));
                        }
                    }
                    map[i * n + j] = (s / (k * k) as f64) as f32;
                }
            }
            let edges: Vec<f64> = default_edges_r200c()
                .into_iter()
                .filter(|e| *e > 0.099 && *e < 1.01)
                .map(|e| e * nfw.r200)
                .collect();
            let w = AnnulusWeights::new(&g, &edges).unwrap();
            let prof = w.profile(&map);
            for b in 0..w.len() {
                let (r1, r2) = (edges[b], edges[b + 1]);
                let exact =
                    (nfw.mass_cylinder(r2) - nfw.mass_cylinder(r1)) / (PI * (r2 * r2 - r1 * r1));
                let rel = prof[b] / exact - 1.0;
                let tol = if r1 < 0.199 * nfw.r200 {
                    tol
                } else {
                    tol.min(0.01)
                };
                assert!(
                    rel.abs() < tol,
                    "N = {n}, bin {b} ({r1:.0}–{r2:.0} kpc): {rel:+.4}"
                );
            }
        }
    }
}
