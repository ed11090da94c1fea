//! 2-D Gaussian random fields on a fixed physical grid (docs/mock-clusters.md §2.7): the line-of-sight background slab
//! and the ICM fluctuations. Drawn on 2L × 2L so that the same seed gives the same physical field at any map
//! resolution.

use rustfft::{num_complex::Complex, FftPlanner};

use super::rng::Rng;

/// A periodic scalar field on an n × n grid spanning \[−L, L\]² (cell centres at −L + (k + ½) cell).
#[derive(Debug, Clone)]
pub struct GridField {
    n: usize,
    half_side: f64,
    values: Vec<f64>,
}

impl GridField {
    /// A zero-mean Gaussian field with power spectrum ∝ `power(k)` (k in rad/kpc), rescaled so that its standard
    /// deviation over the grid is exactly `sigma`. White noise is drawn in row-major order from `rng`.
    pub fn gaussian(
        n: usize,
        half_side: f64,
        sigma: f64,
        power: impl Fn(f64) -> f64,
        rng: &mut Rng,
    ) -> Self {
        let mut data: Vec<Complex<f64>> = (0..n * n)
            .map(|_| Complex::new(rng.normal(), 0.0))
            .collect();
        fft2(&mut data, n, false);
        let cell = 2.0 * half_side / n as f64;
        let freq = |i: usize| {
            let m = if i <= n / 2 {
                i as f64
            } else {
                i as f64 - n as f64
            };
            std::f64::consts::TAU * m / (n as f64 * cell)
        };
        for i in 0..n {
            for j in 0..n {
                let k = (freq(i).powi(2) + freq(j).powi(2)).sqrt();
                let amp = if k == 0.0 { 0.0 } else { power(k).sqrt() };
                data[i * n + j] *= amp;
            }
        }
        fft2(&mut data, n, true);
        let mut values: Vec<f64> = data.iter().map(|c| c.re).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        let scale = if var > 0.0 { sigma / var.sqrt() } else { 0.0 };
        values.iter_mut().for_each(|v| *v = (*v - mean) * scale);
        GridField {
            n,
            half_side,
            values,
        }
    }

    /// Bilinear interpolation at sky position (x, y) \[kpc\], periodic across the grid edges.
    pub fn at(&self, x: f64, y: f64) -> f64 {
        let n = self.n;
        let cell = 2.0 * self.half_side / n as f64;
        let fx = (x + self.half_side) / cell - 0.5;
        let fy = (y + self.half_side) / cell - 0.5;
        let (j0, i0) = (fx.floor(), fy.floor());
        let (tx, ty) = (fx - j0, fy - i0);
        let wrap = |k: f64| (k as i64).rem_euclid(n as i64) as usize;
        let (j0, i0) = (wrap(j0), wrap(i0));
        let (j1, i1) = ((j0 + 1) % n, (i0 + 1) % n);
        let v = |i: usize, j: usize| self.values[i * n + j];
        (1.0 - ty) * ((1.0 - tx) * v(i0, j0) + tx * v(i0, j1))
            + ty * ((1.0 - tx) * v(i1, j0) + tx * v(i1, j1))
    }

    /// Standard deviation over the grid cells.
    pub fn std(&self) -> f64 {
        let m = self.values.iter().sum::<f64>() / self.values.len() as f64;
        (self.values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / self.values.len() as f64).sqrt()
    }
}

/// In-place 2-D FFT of a row-major n × n array (unnormalised forward; the inverse divides by n²).
fn fft2(data: &mut [Complex<f64>], n: usize, inverse: bool) {
    let mut planner = FftPlanner::new();
    let fft = if inverse {
        planner.plan_fft_inverse(n)
    } else {
        planner.plan_fft_forward(n)
    };
    for row in data.chunks_mut(n) {
        fft.process(row);
    }
    transpose(data, n);
    for row in data.chunks_mut(n) {
        fft.process(row);
    }
    transpose(data, n);
    if inverse {
        let s = 1.0 / (n * n) as f64;
        data.iter_mut().for_each(|c| *c *= s);
    }
}

fn transpose(data: &mut [Complex<f64>], n: usize) {
    for i in 0..n {
        for j in i + 1..n {
            data.swap(i * n + j, j * n + i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::Stream;

    #[test]
    fn field_has_requested_rms_and_interpolates_its_cells() {
        let mut rng = Rng::new(3, Stream::Background);
        let f = GridField::gaussian(64, 5000.0, 0.3, |k| k.powf(-2.0), &mut rng);
        assert!((f.std() - 0.3).abs() < 1e-12);
        let cell = 10000.0 / 64.0;
        // At a cell centre, interpolation returns the cell value.
        let x = -5000.0 + 10.5 * cell;
        let y = -5000.0 + 20.5 * cell;
        assert!((f.at(x, y) - f.values[20 * 64 + 10]).abs() < 1e-12);
        // Same seed, same field.
        let mut rng2 = Rng::new(3, Stream::Background);
        let g = GridField::gaussian(64, 5000.0, 0.3, |k| k.powf(-2.0), &mut rng2);
        assert_eq!(f.values, g.values);
    }
}
