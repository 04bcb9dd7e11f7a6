//! Progress bars for long transfers (verify, upload, download). indicatif draws on standard
//! error and hides itself when that is not a terminal, so scripts and `--output json` stay clean.

use indicatif::{ProgressBar, ProgressStyle};

/// Transfers smaller than this finish too fast for a bar to help.
const THRESHOLD: u64 = 8 * 1024 * 1024;

/// A byte-counting bar for a transfer of `total` bytes; hidden for small transfers.
pub fn bytes_bar(total: u64, verb: &str) -> ProgressBar {
    if total < THRESHOLD {
        return ProgressBar::hidden();
    }
    let template =
        format!("{verb} {{bar:40}} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}})");
    ProgressBar::new(total).with_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}
