//! Line-of-sight projection (docs/mock-clusters.md §4): numerical Abel-type projection of 3-D radial profiles into
//! tables F(R) = 2∫ f(√(R²+l²)) dl, and the exact reduction of an ellipsoidal profile f(r_e) to a 1-D table through the
//! Schur complement of its shape matrix.

/// Gauss–Legendre nodes and weights on \[−1, 1\] (Newton iteration on P_n, Golub–Welsch-free).
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, z);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * z * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            let pn = if n == 1 { z } else { p1 };
            let pnm1 = if n == 1 { 1.0 } else { p0 };
            dp = n as f64 * (z * pn - pnm1) / (z * z - 1.0);
            let dz = pn / dp;
            z -= dz;
            if dz.abs() < 1e-15 {
                break;
            }
        }
        x[i] = -z;
        x[n - 1 - i] = z;
        let wi = 2.0 / ((1.0 - z * z) * dp * dp);
        w[i] = wi;
        w[n - 1 - i] = wi;
    }
    (x, w)
}

/// Composite Gauss–Legendre rule on \[a, b\]: `panels` equal panels of `nodes / panels` points each.
#[derive(Debug, Clone)]
pub struct Quadrature {
    x: Vec<f64>,
    w: Vec<f64>,
    panels: usize,
}

impl Quadrature {
    /// `nodes` points in total, split over `panels` equal panels.
    pub fn new(nodes: usize, panels: usize) -> Self {
        let per = (nodes / panels).max(1);
        let (x, w) = gauss_legendre(per);
        Quadrature { x, w, panels }
    }

    /// ∫_a^b f(t) dt.
    pub fn integrate(&self, a: f64, b: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
        let h = (b - a) / self.panels as f64;
        let mut total = 0.0;
        for p in 0..self.panels {
            let (lo, hi) = (a + p as f64 * h, a + (p + 1) as f64 * h);
            let (c, r) = (0.5 * (lo + hi), 0.5 * (hi - lo));
            let mut s = 0.0;
            for (xi, wi) in self.x.iter().zip(&self.w) {
                s += wi * f(c + r * xi);
            }
            total += r * s;
        }
        total
    }

    /// Several integrands at once, sharing the nodes: `f(t, out)` writes the integrands into `out`.
    pub fn integrate_many<const S: usize>(
        &self,
        a: f64,
        b: f64,
        mut f: impl FnMut(f64, &mut [f64; S]),
    ) -> [f64; S] {
        let h = (b - a) / self.panels as f64;
        let mut total = [0.0; S];
        let mut vals = [0.0; S];
        for p in 0..self.panels {
            let (lo, hi) = (a + p as f64 * h, a + (p + 1) as f64 * h);
            let (c, r) = (0.5 * (lo + hi), 0.5 * (hi - lo));
            for (xi, wi) in self.x.iter().zip(&self.w) {
                f(c + r * xi, &mut vals);
                for s in 0..S {
                    total[s] += r * wi * vals[s];
                }
            }
        }
        total
    }
}

/// Projects a radial profile numerically: F(R) = 2R ∫₀^{asinh(l_max/R)} f(R cosh t) cosh t dt with
/// l_max = √(r_max² − R²). The substitution l = R sinh t removes the cusp at l = 0 (docs/mock-clusters.md §4).
pub fn project_at<const S: usize>(
    quad: &Quadrature,
    r_proj: f64,
    r_max: f64,
    f: &impl Fn(f64, &mut [f64; S]),
) -> [f64; S] {
    if r_proj >= r_max {
        return [0.0; S];
    }
    let l_max = (r_max * r_max - r_proj * r_proj).sqrt();
    let t_max = (l_max / r_proj).asinh();
    let mut v = quad.integrate_many::<S>(0.0, t_max, |t, out| {
        let ch = t.cosh();
        f(r_proj * ch, out);
        out.iter_mut().for_each(|o| *o *= ch);
    });
    v.iter_mut().for_each(|o| *o *= 2.0 * r_proj);
    v
}

/// A table of S projected profiles F_s(R) on one log-spaced grid of R, interpolated by monotone cubic Hermite
/// splines in (ln R, ln F) (Fritsch–Carlson), linearly in F over the last two intervals (where F → 0 at r_max),
/// power-law extrapolated below the first node and zero beyond r_max (docs/mock-clusters.md §4).
#[derive(Debug, Clone)]
pub struct ProjTable<const S: usize> {
    ln_r0: f64,
    dln: f64,
    /// Smallest radius at which the table is evaluated: 1e-4 r_ref (cusps stay finite).
    r_floor: f64,
    r_max: f64,
    n: usize,
    /// Per node: ln F_s.
    ln_f: Vec<[f64; S]>,
    /// Per node: F_s (for the linear tail).
    f: Vec<[f64; S]>,
    /// Per node: d ln F_s / d ln R (Hermite tangents).
    slope: Vec<[f64; S]>,
}

/// Smallest F stored in log space; keeps ln finite for profiles that vanish.
const F_TINY: f64 = 1e-300;

impl<const S: usize> ProjTable<S> {
    /// Tabulates the projection of `f` (which fills S values at 3-D radius r) on `nodes` radii log-spaced in
    /// \[1e-4 r_ref, r_max (1 − 1e-6)\].
    pub fn build(
        f: impl Fn(f64, &mut [f64; S]),
        r_ref: f64,
        r_max: f64,
        nodes: usize,
        quad: &Quadrature,
    ) -> Self {
        let r_floor = 1e-4 * r_ref;
        let r_last = r_max * (1.0 - 1e-6);
        let ln_r0 = r_floor.ln();
        let dln = (r_last.ln() - ln_r0) / (nodes - 1) as f64;
        let f_nodes: Vec<[f64; S]> = (0..nodes)
            .map(|k| project_at(quad, (ln_r0 + k as f64 * dln).exp(), r_max, &f))
            .collect();
        let ln_f: Vec<[f64; S]> = f_nodes
            .iter()
            .map(|v| v.map(|x| x.max(F_TINY).ln()))
            .collect();
        let slope = fritsch_carlson(&ln_f, dln);
        ProjTable {
            ln_r0,
            dln,
            r_floor,
            r_max,
            n: nodes,
            ln_f,
            f: f_nodes,
            slope,
        }
    }

    /// Outer edge of the profile: F = 0 beyond it.
    pub fn r_max(&self) -> f64 {
        self.r_max
    }

    /// F_s(R) for all series, R clamped below at 1e-4 r_ref.
    #[inline]
    pub fn eval(&self, r_proj: f64) -> [f64; S] {
        if r_proj >= self.r_max {
            return [0.0; S];
        }
        let r = r_proj.max(self.r_floor);
        let u = (r.ln() - self.ln_r0) / self.dln;
        let last = self.n - 1;
        if u >= last as f64 {
            // Between the last node and r_max: linear in F down to 0 at r_max.
            let r_last = (self.ln_r0 + last as f64 * self.dln).exp();
            let w = ((self.r_max - r) / (self.r_max - r_last)).clamp(0.0, 1.0);
            return self.f[last].map(|v| v * w);
        }
        let k = (u.floor().max(0.0) as usize).min(last - 1);
        let t = u - k as f64;
        if u < 0.0 {
            // Power law below the first node (unreachable with the floor, kept for safety).
            return std::array::from_fn(|s| {
                (self.ln_f[0][s] + self.slope[0][s] * u * self.dln).exp()
            });
        }
        if k + 2 >= last {
            // Last two intervals: linear in F.
            return std::array::from_fn(|s| self.f[k][s] + t * (self.f[k + 1][s] - self.f[k][s]));
        }
        let t2 = t * t;
        let t3 = t2 * t;
        let h00 = 2.0 * t3 - 3.0 * t2 + 1.0;
        let h10 = t3 - 2.0 * t2 + t;
        let h01 = -2.0 * t3 + 3.0 * t2;
        let h11 = t3 - t2;
        std::array::from_fn(|s| {
            let y = h00 * self.ln_f[k][s]
                + h10 * self.dln * self.slope[k][s]
                + h01 * self.ln_f[k + 1][s]
                + h11 * self.dln * self.slope[k + 1][s];
            y.exp()
        })
    }
}

/// A 3-D radial profile sampled on a fine log-spaced grid and interpolated linearly in (ln r, ln f). Projection
/// evaluates a profile ~30 000 times per table; sampling an expensive profile (several `powf` per call) once on
/// 4096 radii and interpolating is ~10× cheaper, with a relative error ~(Δln r)² |d² ln f / d ln r²| / 8 ≲ 1e-5.
#[derive(Debug, Clone)]
pub struct RadialTable<const S: usize> {
    ln_r0: f64,
    dln: f64,
    ln_f: Vec<[f64; S]>,
    r_max: f64,
}

impl<const S: usize> RadialTable<S> {
    /// Samples `f` on `nodes` radii log-spaced over \[r_min, r_max\]; `f` must be positive there.
    pub fn sample(f: impl Fn(f64, &mut [f64; S]), r_min: f64, r_max: f64, nodes: usize) -> Self {
        let ln_r0 = r_min.ln();
        let dln = (r_max.ln() - ln_r0) / (nodes - 1) as f64;
        let ln_f = (0..nodes)
            .map(|k| {
                let mut v = [0.0; S];
                // The last node sits a hair inside r_max, where truncated profiles are still non-zero.
                let r = (ln_r0 + k as f64 * dln).exp().min(r_max * (1.0 - 1e-12));
                f(r, &mut v);
                v.map(|x| x.max(F_TINY).ln())
            })
            .collect();
        RadialTable {
            ln_r0,
            dln,
            ln_f,
            r_max,
        }
    }

    /// The interpolated profile at r (power law below r_min, zero beyond r_max).
    #[inline]
    pub fn eval(&self, r: f64, out: &mut [f64; S]) {
        if r >= self.r_max {
            *out = [0.0; S];
            return;
        }
        let u = (r.ln() - self.ln_r0) / self.dln;
        let k = (u.max(0.0) as usize).min(self.ln_f.len() - 2);
        let t = u - k as f64;
        let (a, b) = (&self.ln_f[k], &self.ln_f[k + 1]);
        for s in 0..S {
            out[s] = (a[s] + t * (b[s] - a[s])).exp();
        }
    }
}

/// Monotone tangents (Fritsch & Carlson 1980) of S series sampled with uniform spacing `h`.
fn fritsch_carlson<const S: usize>(y: &[[f64; S]], h: f64) -> Vec<[f64; S]> {
    let n = y.len();
    let mut m = vec![[0.0; S]; n];
    for s in 0..S {
        let d: Vec<f64> = (0..n - 1).map(|k| (y[k + 1][s] - y[k][s]) / h).collect();
        m[0][s] = d[0];
        m[n - 1][s] = d[n - 2];
        for k in 1..n - 1 {
            m[k][s] = if d[k - 1] * d[k] <= 0.0 {
                0.0
            } else {
                0.5 * (d[k - 1] + d[k])
            };
        }
        for k in 0..n - 1 {
            if d[k] == 0.0 {
                m[k][s] = 0.0;
                m[k + 1][s] = 0.0;
                continue;
            }
            let (a, b) = (m[k][s] / d[k], m[k + 1][s] / d[k]);
            let r2 = a * a + b * b;
            if r2 > 9.0 {
                let tau = 3.0 / r2.sqrt();
                m[k][s] = tau * a * d[k];
                m[k + 1][s] = tau * b * d[k];
            }
        }
    }
    m
}

/// The projection of an ellipsoidal profile f(r_e), r_e² = xᵀ A x, onto the sky (observer z = line of sight):
/// r_e² = A_zz (l + l₀)² + Q(x, y) with Q the Schur complement form, so ∫ f dl = A_zz^{-1/2} F(√Q) exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkyEllipse {
    /// Coefficients of Q(x, y) = q11 x² + 2 q12 x y + q22 y².
    pub q11: f64,
    pub q12: f64,
    pub q22: f64,
    /// A_zz^{-1/2}: the line-of-sight stretch factor.
    pub los_factor: f64,
}

impl SkyEllipse {
    /// A sphere: Q = x² + y², factor 1.
    pub fn circle() -> Self {
        SkyEllipse {
            q11: 1.0,
            q12: 0.0,
            q22: 1.0,
            los_factor: 1.0,
        }
    }

    /// From the 3×3 symmetric shape matrix A (observer frame).
    pub fn from_shape_matrix(a: &[[f64; 3]; 3]) -> Self {
        let azz = a[2][2];
        SkyEllipse {
            q11: a[0][0] - a[0][2] * a[0][2] / azz,
            q12: a[0][1] - a[0][2] * a[1][2] / azz,
            q22: a[1][1] - a[1][2] * a[1][2] / azz,
            los_factor: 1.0 / azz.sqrt(),
        }
    }

    /// The projected ellipsoidal radius √Q at sky offset (x, y) from the centre.
    #[inline]
    pub fn radius(&self, x: f64, y: f64) -> f64 {
        (self.q11 * x * x + 2.0 * self.q12 * x * y + self.q22 * y * y)
            .max(0.0)
            .sqrt()
    }
}

/// Rotation matrix of a unit quaternion (w, x, y, z).
pub fn rotation_matrix(q: [f64; 4]) -> [[f64; 3]; 3] {
    let [w, x, y, z] = q;
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

/// Shape matrix A = R diag(a⁻², b⁻², c⁻²) Rᵀ of an ellipsoid with semi-axes (a, b, c) rotated by R.
pub fn shape_matrix(rot: &[[f64; 3]; 3], axes: [f64; 3]) -> [[f64; 3]; 3] {
    let d = axes.map(|v| 1.0 / (v * v));
    let mut a = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            a[i][j] = (0..3).map(|k| rot[i][k] * d[k] * rot[j][k]).sum();
        }
    }
    a
}

/// Matrix–vector product.
pub fn mat_vec(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

/// Unit-volume semi-axes (a, b, c) = (1, q, s) (qs)^{-1/3}: the mass inside r_e is that of the sphere.
pub fn unit_volume_axes(q: f64, s: f64) -> [f64; 3] {
    let a = (q * s).powf(-1.0 / 3.0);
    [a, q * a, s * a]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::halo::nfw_g;

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        let (x, w) = gauss_legendre(7);
        let int = |p: i32| x.iter().zip(&w).map(|(x, w)| w * x.powi(p)).sum::<f64>();
        assert!((int(0) - 2.0).abs() < 1e-14);
        assert!((int(12) - 2.0 / 13.0).abs() < 1e-14);
        assert!(int(5).abs() < 1e-14);
    }

    #[test]
    fn table_matches_analytic_nfw_and_beta_model() {
        let quad = Quadrature::new(128, 4);
        // NFW with r_s = 1 projected to a large r_max vs the untruncated analytic g(x).
        let r_max = 1e4;
        let t = ProjTable::<1>::build(
            |r, o| o[0] = 1.0 / (r * (1.0 + r) * (1.0 + r)),
            1.0,
            r_max,
            256,
            &quad,
        );
        let mut worst: f64 = 0.0;
        for k in 0..200 {
            let x = 1e-3 * 10f64.powf(4.0 * k as f64 / 199.0);
            // Analytic Σ beyond r_max: subtract nothing; the missing tail is < 1e-8 relative at x ≤ 10.
            let exact = 2.0 * nfw_g(x);
            worst = worst.max((t.eval(x)[0] / exact - 1.0).abs());
        }
        assert!(worst < 1e-4, "NFW projector error {worst}");
        // Emissivity of a β-model, n_e² ∝ (1 + r²)^{−3β}, projects to F ∝ (1 + R²)^{1/2 − 3β} (large r_max).
        let beta = 0.7;
        let b = ProjTable::<1>::build(
            |r, o| o[0] = (1.0 + r * r).powf(-3.0 * beta),
            1.0,
            1e6,
            256,
            &quad,
        );
        let norm = b.eval(1e-3)[0] / (1.0f64 + 1e-6).powf(0.5 - 3.0 * beta);
        let mut worst: f64 = 0.0;
        for k in 0..200 {
            let x = 1e-3 * 10f64.powf(4.0 * k as f64 / 199.0);
            let exact = norm * (1.0 + x * x).powf(0.5 - 3.0 * beta);
            worst = worst.max((b.eval(x)[0] / exact - 1.0).abs());
        }
        assert!(worst < 1e-4, "beta-model projector error {worst}");
    }

    #[test]
    fn schur_reduction_matches_brute_force_line_of_sight() {
        // A rotated triaxial ellipsoid with a Gaussian-like profile; compare with direct quadrature along z.
        let rot = rotation_matrix({
            let q = [0.3f64, -0.5, 0.7, 0.4];
            let n = q.iter().map(|v| v * v).sum::<f64>().sqrt();
            q.map(|v| v / n)
        });
        let a = shape_matrix(&rot, unit_volume_axes(0.7, 0.45));
        let e = SkyEllipse::from_shape_matrix(&a);
        let prof = |r: f64| (1.0 + r * r).powf(-2.0);
        let quad = Quadrature::new(128, 4);
        let table = ProjTable::<1>::build(|r, o| o[0] = prof(r), 1.0, 1e4, 256, &quad);
        let fine = Quadrature::new(4000, 40);
        for &(x, y) in &[(0.3, 0.1), (-1.2, 0.8), (2.5, -1.9), (0.05, -0.02)] {
            let brute = fine.integrate(-400.0, 400.0, |l| {
                let v = [x, y, l];
                let av = mat_vec(&a, v);
                let re2 = v[0] * av[0] + v[1] * av[1] + v[2] * av[2];
                prof(re2.sqrt())
            });
            let fast = e.los_factor * table.eval(e.radius(x, y))[0];
            assert!(
                (fast / brute - 1.0).abs() < 1e-4,
                "({x},{y}): {fast} vs {brute}"
            );
        }
    }
}
