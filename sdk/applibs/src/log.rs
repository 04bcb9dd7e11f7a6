//! The app's log (always available). `println!` and `eprintln!` also reach it.
//!
//! ```no_run
//! applibs::log::info("started");
//! ```

use crate::bindings::ferrosphere::device::log as raw;

/// Logs at error level.
pub fn error(message: &str) {
    raw::write(raw::Level::Error, message);
}

/// Logs at warning level.
pub fn warning(message: &str) {
    raw::write(raw::Level::Warning, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    raw::write(raw::Level::Info, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    raw::write(raw::Level::Debug, message);
}
