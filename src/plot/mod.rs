//! Paper figures, shared by the CLI, tests and notebooks.
//!
//! Each plot kind is a plain description (`ImageGrid`, `Histograms`, `LogLogScatter`, `LineFigure`) built from slices in
//! physical units, and one function that renders it to a [`Figure`] — PNG bytes and SVG text from the same drawing
//! code, so the two can never disagree. A `Figure` shows inline in an evcxr notebook when it is a cell's last
//! expression and [`Figure::save`] writes `stem.png` + `stem.svg` atomically.
//!
//! Text takes a small markup (`Σ_{gas} [M_⊙ kpc^{-2}]`, see [`text`]); fonts, sizes, colour maps and the
//! mass-bin colours live in [`style`], so every figure of the paper looks the same.

pub mod chart;
pub mod evaluation;
pub mod figure;
pub mod histogram;
pub mod image_grid;
pub mod lines;
pub mod posterior;
pub mod scatter;
pub mod style;
pub mod text;

pub use chart::Corner;
pub use figure::{display_html, Figure};
pub use histogram::{histograms, integer_edges, uniform_edges, HistPanel, HistSeries, Histograms};
pub use image_grid::{
    image_grid, ColorScale, ImageColumn, ImageGrid, ImageRow, Marker, MarkerShape,
};
pub use lines::{line_figure, Axis, LineFigure, LinePanel, RefLine, Scale, Series, SubPanel};
pub use plotters::style::RGBColor;
pub use posterior::posterior_maps;
pub use scatter::{scatter_loglog, LogLogScatter, PointSet, PowerLaw, ScatterPanel};
pub use style::{mass_bin_color, series_color, Colormap};
