//! Power-law fits of scaling relations (Y–M, L_X–M, T–M): ordinary least squares in log–log space.

/// Result of a least-squares fit `log10 y = intercept + slope · log10(x / pivot)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerLawFit {
    pub slope: f64,
    /// Standard error of the slope.
    pub slope_err: f64,
    /// log10 of y at the pivot.
    pub intercept: f64,
    pub pivot: f64,
    /// RMS scatter of the residuals in dex.
    pub scatter_dex: f64,
    pub n: usize,
}

impl PowerLawFit {
    /// Model prediction y(x).
    pub fn predict(&self, x: f64) -> f64 {
        10f64.powf(self.intercept + self.slope * (x / self.pivot).log10())
    }
}

/// OLS fit of log10 y on log10(x/pivot), ignoring pairs that are not finite and positive.
/// Returns `None` with fewer than three usable points.
pub fn fit_power_law(x: &[f64], y: &[f64], pivot: f64) -> Option<PowerLawFit> {
    let pts: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite() && **a > 0.0 && **b > 0.0)
        .map(|(a, b)| ((a / pivot).log10(), b.log10()))
        .collect();
    let n = pts.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let ssr: f64 = pts
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    let scatter_dex = (ssr / nf).sqrt();
    let slope_err = (ssr / (nf - 2.0) / sxx).sqrt();
    Some(PowerLawFit {
        slope,
        slope_err,
        intercept,
        pivot,
        scatter_dex,
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_power_law() {
        let x: Vec<f64> = (1..20).map(|i| 1e14 * i as f64).collect();
        let y: Vec<f64> = x.iter().map(|m| 3.0 * (m / 1e14).powf(5.0 / 3.0)).collect();
        let f = fit_power_law(&x, &y, 1e14).unwrap();
        assert!((f.slope - 5.0 / 3.0).abs() < 1e-12);
        assert!((f.predict(2e14) - 3.0 * 2f64.powf(5.0 / 3.0)).abs() < 1e-9);
        assert!(f.scatter_dex < 1e-12);
        assert!(fit_power_law(&[1.0, 2.0], &[1.0, 2.0], 1.0).is_none());
    }
}
