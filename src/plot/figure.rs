//! [`Figure`]: one rendered figure as PNG bytes and SVG text, shown inline in notebooks and saved atomically.
//!
//! Every plot kind implements [`Draw`] once, generically over the plotters backend; [`render`] runs that single
//! drawing code on a bitmap and on an SVG backend, so the two files can never show different things.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Error, Result};

/// Resolution written into the PNG header (`pHYs`), so a figure drawn ≈ 2× screen size prints at its intended size.
const PNG_DPI: f64 = 200.0;

/// A rendered figure: the same drawing as PNG (for notebooks and quick looks) and SVG (for the paper).
#[derive(Clone)]
pub struct Figure {
    name: String,
    width: u32,
    height: u32,
    png: Vec<u8>,
    svg: String,
}

impl fmt::Debug for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Figure {:?} ({}×{} px, {} B PNG, {} B SVG)",
            self.name,
            self.width,
            self.height,
            self.png.len(),
            self.svg.len()
        )
    }
}

impl Figure {
    /// Short name used in error messages (e.g. "image grid").
    /// Renames the figure (its file stem in [`Figure::save`] calls that use [`Figure::name`]).
    pub fn rename(&mut self, name: &str) {
        self.name = name.to_string();
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in pixels (width, height) of the PNG and of the SVG canvas.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The encoded PNG file.
    pub fn png(&self) -> &[u8] {
        &self.png
    }

    /// The SVG document.
    pub fn svg(&self) -> &str {
        &self.svg
    }

    /// Base64 of the PNG, as the notebook display protocols want it.
    pub fn png_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.png)
    }

    /// An `<img>` tag with the PNG inlined as a data URI, for showing several figures from one notebook cell
    /// (see [`display_html`]).
    pub fn html_img(&self) -> String {
        format!(
            "<img src=\"data:image/png;base64,{}\" style=\"max-width:100%\"/>",
            self.png_base64()
        )
    }

    /// evcxr's display hook: a `Figure` as the last expression of a notebook cell shows inline as PNG.
    pub fn evcxr_display(&self) {
        print_evcxr("image/png", &self.png_base64());
    }

    /// Writes `<stem>.png` and `<stem>.svg` (parent directories created). Each file is written to a temporary
    /// sibling and renamed into place, so an interrupted run never leaves a truncated figure behind.
    /// Returns the two paths.
    pub fn save(&self, stem: impl AsRef<Path>) -> Result<(PathBuf, PathBuf)> {
        let png = with_suffix(stem.as_ref(), ".png");
        let svg = with_suffix(stem.as_ref(), ".svg");
        write_atomic(&png, &self.png)?;
        write_atomic(&svg, self.svg.as_bytes())?;
        Ok((png, svg))
    }
}

/// Shows several figures as the output of one notebook cell. evcxr keeps only one output per MIME type per cell,
/// so a second `image/png` would replace the first; one `text/html` block with several `<img>` does not.
pub fn display_html(figures: &[&Figure]) {
    let body: Vec<String> = figures.iter().map(|f| f.html_img()).collect();
    print_evcxr("text/html", &body.join("<br/>"));
}

fn print_evcxr(mime: &str, content: &str) {
    println!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT");
}

/// `stem` with `suffix` appended to its file name (not `with_extension`, which would eat a dot in the stem).
fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Creates the parent directories, then writes through [`crate::io::write_atomic`].
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    crate::io::write_atomic(path, bytes)
}

/// The error of a drawing routine, whatever the backend (plotters' error type is generic over it).
#[derive(Debug)]
pub struct DrawError(pub String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawError(e.to_string())
    }
}

/// Result of a drawing routine.
pub type DrawResult = std::result::Result<(), DrawError>;

/// A plot that knows its canvas size and how to draw itself on any plotters backend.
pub trait Draw {
    /// Short name used in error messages.
    fn name(&self) -> &str;
    /// Canvas size in pixels (width, height).
    fn size(&self) -> (u32, u32);
    /// Draws the whole figure on `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// Renders `plot` to PNG and SVG from the same [`Draw::draw`] code.
pub fn render(plot: &impl Draw) -> Result<Figure> {
    let (width, height) = plot.size();
    let fail =
        |what: &str, msg: String| Error::Config(format!("figure '{}': {what}: {msg}", plot.name()));
    if width == 0 || height == 0 {
        return Err(fail("size", format!("empty canvas {width}×{height}")));
    }

    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw_on(plot, &root).map_err(|e| fail("PNG", e.0))?;
    }
    let png = encode_png(&rgb, width, height).map_err(|e| fail("PNG encoding", e.to_string()))?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        draw_on(plot, &root).map_err(|e| fail("SVG", e.0))?;
    }
    Ok(Figure {
        name: plot.name().to_string(),
        width,
        height,
        png,
        svg,
    })
}

fn draw_on<DB: DrawingBackend>(plot: &impl Draw, root: &DrawingArea<DB, Shift>) -> DrawResult {
    root.fill(&WHITE)?;
    plot.draw(root)?;
    root.present()?;
    Ok(())
}

fn encode_png(
    rgb: &[u8],
    width: u32,
    height: u32,
) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        let ppm = (PNG_DPI / 0.0254).round() as u32;
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: ppm,
            yppu: ppm,
            unit: png::Unit::Meter,
        }));
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal plot: a filled rectangle and a caption.
    struct Dot;

    impl Draw for Dot {
        fn name(&self) -> &str {
            "dot"
        }
        fn size(&self) -> (u32, u32) {
            (120, 80)
        }
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
            root.draw(&Rectangle::new([(10, 10), (60, 50)], RED.filled()))?;
            root.draw(&Text::new("dot", (70, 20), (super::super::style::FONT, 20)))?;
            Ok(())
        }
    }

    #[test]
    fn renders_png_and_svg_and_saves_atomically() {
        let fig = render(&Dot).unwrap();
        assert_eq!(&fig.png()[..8], b"\x89PNG\r\n\x1a\n");
        assert!(fig.svg().contains("<svg"));
        assert_eq!(fig.size(), (120, 80));

        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = fig.save(dir.path().join("sub/fig.v1")).unwrap();
        assert_eq!(png, dir.path().join("sub/fig.v1.png"));
        assert_eq!(std::fs::read(&png).unwrap(), fig.png());
        assert_eq!(std::fs::read_to_string(&svg).unwrap(), fig.svg());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .collect();
        assert!(leftovers.is_empty());
    }
}
