//! The terminal progress bars of the command line and the long library calls (generation, training, sampling,
//! reproduction): one look, each caller choosing only what its bar counts.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` ticks drawn with the indicatif `template` (e.g. `"{elapsed_precise} [{bar:40}] {pos}/{len}
/// clusters"`) and `=> ` as its fill; a template indicatif rejects falls back to its default bar rather than
/// failing the run the bar only reports on.
pub fn progress_bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}
