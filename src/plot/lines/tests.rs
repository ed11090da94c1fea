//! Tests of line figures: stacked panels with bands, input errors, log axes, clipping, tick plans and the example
//! figure.

use super::axes::{
    clip_polygon, clip_polyline, clip_segment, padded, runs, x_range, y_range, AxisPlan,
};
use super::draw::{PANEL_TITLE_PX, STACK_GAP_PX, SUB_PLOT_PX};
use super::*;
use crate::plot::chart;
use crate::plot::style::{self, GREY};

/// A projected NFW-like profile Σ(r) ∝ 1 / (x (1 + x)²) with x = r / r_s, in arbitrary units.
fn profile(r: &[f64], rs: f64, norm: f64) -> Vec<f64> {
    r.iter()
        .map(|r| norm / ((r / rs) * (1.0 + r / rs).powi(2)))
        .collect()
}

fn log_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64))
        .collect()
}

/// PNG width and height from the IHDR chunk.
fn png_dims(png: &[u8]) -> (u32, u32) {
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

struct Data {
    r: Vec<f64>,
    truth: Vec<Vec<f64>>,
    pred: Vec<Vec<f64>>,
    lo: Vec<Vec<f64>>,
    hi: Vec<Vec<f64>>,
    rel: Vec<Vec<f64>>,
    rel_lo: Vec<Vec<f64>>,
    rel_hi: Vec<Vec<f64>>,
    k: Vec<f64>,
    pk_true: Vec<f64>,
    pk_pred: Vec<f64>,
    bias: Vec<f64>,
    corr: Vec<f64>,
    steps: Vec<f64>,
    loss: Vec<f64>,
    val: Vec<f64>,
    nominal: Vec<f64>,
    coverage: Vec<f64>,
}

fn data() -> Data {
    let r = log_grid(0.02, 2.0, 40);
    let mut d = Data {
        r: r.clone(),
        truth: vec![],
        pred: vec![],
        lo: vec![],
        hi: vec![],
        rel: vec![],
        rel_lo: vec![],
        rel_hi: vec![],
        k: log_grid(0.03, 3.0, 30),
        pk_true: vec![],
        pk_pred: vec![],
        bias: vec![],
        corr: vec![],
        steps: (0..=200).map(|i| i as f64 * 500.0).collect(),
        loss: vec![],
        val: vec![],
        nominal: (0..=10).map(|i| i as f64 / 10.0).collect(),
        coverage: vec![],
    };
    for bin in 0..4 {
        let norm = 3e14 * 1.8f64.powi(bin);
        let truth = profile(&r, 0.25 - 0.03 * bin as f64, norm);
        let wiggle = |i: usize| 0.025 * ((i as f64 * 0.3 + bin as f64).sin() - 0.5 * r[i]);
        let pred: Vec<f64> = truth
            .iter()
            .enumerate()
            .map(|(i, t)| t * (1.0 + wiggle(i)))
            .collect();
        let width = |i: usize| 0.02 + 0.03 * r[i];
        d.lo.push(
            pred.iter()
                .enumerate()
                .map(|(i, p)| p * (1.0 - width(i)))
                .collect(),
        );
        d.hi.push(
            pred.iter()
                .enumerate()
                .map(|(i, p)| p * (1.0 + width(i)))
                .collect(),
        );
        d.rel.push((0..r.len()).map(wiggle).collect());
        d.rel_lo
            .push((0..r.len()).map(|i| wiggle(i) - width(i)).collect());
        d.rel_hi
            .push((0..r.len()).map(|i| wiggle(i) + width(i)).collect());
        d.truth.push(truth);
        d.pred.push(pred);
    }
    for &k in &d.k {
        let pk = 2e4 * k.powf(-1.2) * (-(k / 1.5f64).powi(2)).exp() + 1.0;
        d.pk_true.push(pk);
        let b = 1.0 - 0.08 * (k / 3.0).powi(2) + 0.01 * (5.0 * k).sin();
        d.bias.push(b);
        d.pk_pred.push(pk * b * b);
        d.corr.push(1.0 - 0.15 * (k / 3.0).powf(1.5));
    }
    for (i, &s) in d.steps.iter().enumerate() {
        let base = 0.08 + 0.9 * (-s / 8000.0).exp();
        let noise = 0.03 * (0.9 * i as f64).sin() + 0.02 * (2.3 * i as f64).cos();
        d.loss.push(base * (1.0 + noise));
        d.val.push(base * 1.05 + 0.003);
    }
    d.coverage = d
        .nominal
        .iter()
        .map(|p| p + 0.06 * (std::f64::consts::PI * p).sin())
        .collect();
    d
}

const DIAGONAL: [f64; 2] = [0.0, 1.0];

fn example(d: &Data) -> LineFigure<'_> {
    let mut profiles = LinePanel::new(
        Axis::log("r / R_{200c}"),
        Axis::log("Σ_{DM} [M_⊙ kpc^{-2}]"),
    );
    profiles.title = Some("Radial profiles".into());
    let mut rel = vec![];
    for bin in 0..4 {
        let c = style::mass_bin_color(bin);
        profiles
            .series
            .push(Series::new(&d.r, &d.truth[bin], c).label(&format!("bin {}", bin + 1)));
        profiles.series.push(
            Series::new(&d.r, &d.pred[bin], c)
                .dashed()
                .band(&d.lo[bin], &d.hi[bin]),
        );
        rel.push(Series::new(&d.r, &d.rel[bin], c).band(&d.rel_lo[bin], &d.rel_hi[bin]));
    }
    // Legend-only entries (no points) explain the line styles once for all bins.
    profiles
        .series
        .push(Series::new(&[], &[], style::INK).label("truth"));
    profiles.series.push(
        Series::new(&[], &[], style::INK)
            .dashed()
            .label("posterior mean"),
    );
    profiles.vlines = vec![RefLine::labelled(1.0, "R_{200c}")];
    // A fixed range that the outer bands exceed: they are clipped at the frame.
    let mut relative = SubPanel::relative("ΔΣ/Σ", rel, 0.05);
    relative.y = relative.y.range(-0.1, 0.1);
    profiles.below = vec![relative];

    let mut spectra = LinePanel::new(Axis::log("k [kpc^{-1}]"), Axis::log("P(k)"));
    spectra.title = Some("Power spectra".into());
    spectra.series = vec![
        Series::new(&d.k, &d.pk_true, style::INK).label("truth"),
        Series::new(&d.k, &d.pk_pred, style::series_color(1))
            .dashed()
            .label("posterior mean"),
    ];
    let mut bias = SubPanel::new(Axis::linear("b(k)"));
    bias.series = vec![Series::new(&d.k, &d.bias, style::series_color(1))];
    bias.hlines = vec![RefLine::at(1.0)];
    let mut corr = SubPanel::new(Axis::linear("r(k)"));
    corr.series = vec![Series::new(&d.k, &d.corr, style::series_color(1))];
    corr.hlines = vec![RefLine::at(1.0)];
    spectra.below = vec![bias, corr];

    let mut loss = LinePanel::new(Axis::linear("training step"), Axis::log("loss"));
    loss.series = vec![
        Series::new(&d.steps, &d.loss, style::series_color(0)).label("train"),
        Series::new(&d.steps, &d.val, style::series_color(1)).label("validation"),
    ];

    let mut calibration = LinePanel::new(
        Axis::linear("nominal coverage").range(0.0, 1.0),
        Axis::linear("empirical coverage").range(0.0, 1.0),
    );
    calibration.series = vec![
        Series::new(&DIAGONAL, &DIAGONAL, GREY)
            .dashed()
            .label("ideal"),
        Series::new(&d.nominal, &d.coverage, style::series_color(2))
            .points()
            .label("Σ_{DM}"),
    ];
    LineFigure {
        title: Some("Line figure check".into()),
        cols: 2,
        panels: vec![profiles, spectra, loss, calibration],
    }
}

#[test]
fn renders_stacked_panels_with_bands() {
    let d = data();
    let mut f = example(&d);
    f.panels.truncate(2);
    f.title = None;
    let fig = line_figure(&f).unwrap();
    assert_eq!(&fig.png()[..8], b"\x89PNG\r\n\x1a\n");
    assert!(fig.svg().contains("<svg") && fig.svg().contains("<polygon"));
    // One row: two sub-panels (the power spectrum's) and a panel-title strip on top of the plain size.
    let (w, h) = chart::canvas_size(2, 2, false);
    let expected = (w, h + 2 * (SUB_PLOT_PX + STACK_GAP_PX) + PANEL_TITLE_PX);
    assert_eq!(fig.size(), expected);
    assert_eq!(png_dims(fig.png()), expected);

    // Without sub-panels and titles the canvas is exactly `canvas_size`'s.
    let plain = LineFigure {
        title: Some("t".into()),
        cols: 1,
        panels: vec![example(&d).panels.swap_remove(2)],
    };
    let fig = line_figure(&plain).unwrap();
    assert_eq!(png_dims(fig.png()), chart::canvas_size(1, 1, true));
}

#[test]
fn bad_inputs_are_config_errors() {
    let d = data();
    let err = |f: &LineFigure| match line_figure(f) {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    };
    let good = example(&d);
    assert!(err(&LineFigure {
        panels: vec![],
        ..good.clone()
    })
    .contains("no panels"));

    let mut f = good.clone();
    f.panels[0].series[0].y = &d.r[..5];
    let m = err(&f);
    assert!(
        m.contains("panel 1 ('Radial profiles')") && m.contains("'bin 1'"),
        "{m}"
    );
    assert!(m.contains("40 x values but 5 y values"), "{m}");

    let mut f = good.clone();
    f.panels[0].below[0].series[2].band = Some((&d.r[..3], &d.r));
    let m = err(&f);
    assert!(
        m.contains("sub-panel 1 ('ΔΣ/Σ')") && m.contains("'#3'"),
        "{m}"
    );

    let mut f = good.clone();
    f.panels[1].below[1].series.clear();
    assert!(err(&f).contains("sub-panel 2 ('r(k)'): no series"));

    let nan = [f64::NAN; 3];
    let neg = [-1.0, 0.0, -3.0];
    let mut f = good.clone();
    f.panels[2].series = vec![Series::new(&nan, &nan, GREY)];
    assert!(err(&f).contains("no point with finite x and y"));
    f.panels[2].series = vec![Series::new(&d.r[..3], &neg, GREY)];
    assert!(err(&f).contains("positive on log axes"));

    let mut f = good.clone();
    f.panels[3].x = Axis::log("x").range(0.0, 1.0);
    assert!(err(&f).contains("x range (0, 1)"));
    let mut f = good.clone();
    f.panels[2].hlines = vec![RefLine::at(-1.0)];
    assert!(err(&f).contains("horizontal line at -1"));
    let mut f = good;
    f.panels[0].below[0].shade_y = Some((0.1, -0.1));
    assert!(err(&f).contains("shaded band"));
}

#[test]
fn log_axes_skip_unplottable_points() {
    let x = [0.0, 1.0, 2.0, 3.0, 4.0, f64::NAN, 6.0];
    let y = [5.0, -1.0, 2.0, 0.0, 8.0, 3.0, f64::INFINITY];
    let mut panel = LinePanel::new(Axis::log("x"), Axis::log("y"));
    panel.series = vec![Series::new(&x, &y, GREY).points().band(&y, &y)];
    let f = LineFigure {
        title: None,
        cols: 1,
        panels: vec![panel],
    };
    let fig = line_figure(&f).unwrap();
    assert!(!fig.png().is_empty() && fig.svg().contains("<svg"));

    // The range comes from the two points both log axes can show, (2, 2) and (4, 8).
    let plots = f.panels[0].plots();
    let (x0, x1) = x_range(&f.panels[0], &plots);
    assert!(x0 < 2.0 && x0 > 1.8 && x1 > 4.0 && x1 < 4.4, "{x0} {x1}");
    let (y0, y1) = y_range(&plots[0], &f.panels[0].x, (x0, x1));
    assert!(y0 < 2.0 && y0 > 1.6 && y1 > 8.0 && y1 < 10.0, "{y0} {y1}");
}

#[test]
fn clipping() {
    assert_eq!(
        clip_segment((-1.0, 0.5), (2.0, 0.5)),
        Some(((0.0, 0.5), (1.0, 0.5)))
    );
    assert_eq!(clip_segment((-1.0, 2.0), (-0.5, 3.0)), None);
    let pieces = clip_polyline(&[
        Some((0.1, 0.1)),
        Some((0.5, 1.5)),
        Some((0.9, 0.1)),
        None,
        Some((0.2, 0.2)),
        Some((0.3, 0.3)),
    ]);
    assert_eq!(pieces.len(), 3);
    assert_eq!(pieces[2], vec![(0.2, 0.2), (0.3, 0.3)]);
    let square = clip_polygon(vec![(-1.0, -1.0), (2.0, -1.0), (2.0, 2.0), (-1.0, 2.0)]);
    let area: f64 = (0..square.len())
        .map(|i| {
            let (a, b) = (square[i], square[(i + 1) % square.len()]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum::<f64>()
        / 2.0;
    assert!((area - 1.0).abs() < 1e-12);
    assert_eq!(
        runs([Some(1), None, None, Some(2), Some(3), None].into_iter()),
        vec![vec![1], vec![2, 3]]
    );
}

#[test]
fn axis_plans() {
    let a = AxisPlan::new(Scale::Linear, (0.0, 100_000.0), 6);
    assert_eq!(a.labels.first().map(String::as_str), Some("0"));
    assert_eq!(a.label_at(a.frac(a.ticks[1]).unwrap()), a.labels[1]);
    let short_log = AxisPlan::new(Scale::Log, (1.1, 1.9), 5);
    assert!(short_log.ticks.len() >= 2, "{:?}", short_log.ticks);
    assert_eq!(AxisPlan::new(Scale::Log, (1.0, 1e3), 5).labels[1], "10");
    assert_eq!(AxisPlan::new(Scale::Log, (1.0, 1e4), 5).labels[1], "10¹");
    assert_eq!(padded(Scale::Linear, (0.0, 0.0), 0.05), (-1.0, 1.0));

    // Wide labels ("1200000") on a narrow axis: fewer ticks, never fewer than two.
    let mut svg = String::new();
    let area = SVGBackend::with_string(&mut svg, (800, 600)).into_drawing_area();
    let x = AxisPlan::fitted_x(&area, Scale::Linear, (0.0, 1.2e6), 300).unwrap();
    assert!(
        x.fits(&area, 300).unwrap() && x.ticks.len() >= 2,
        "{:?}",
        x.labels
    );
    let x = AxisPlan::fitted_x(&area, Scale::Log, (1e-30, 1e30), 100).unwrap();
    assert!(x.ticks.len() >= 2, "{:?}", x.labels);
    assert_eq!(padded(Scale::Log, (3.0, 3.0), 0.05), (1.5, 6.0));
}

/// Writes `target/plot-check/lines.{png,svg}` for a look by eye: `cargo test --release --lib
/// plot::lines::tests::example_figure -- --ignored`.
#[test]
#[ignore]
fn example_figure() {
    let d = data();
    let fig = line_figure(&example(&d)).unwrap();
    let stem = concat!(env!("CARGO_MANIFEST_DIR"), "/target/plot-check/lines");
    fig.save(stem).unwrap();
}
