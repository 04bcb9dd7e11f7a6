//! The Ferrosphere app SDK: an idiomatic Rust API over the device's WIT world
//! (`ferrosphere:device/app`, in `wit/` at the repository root).
//!
//! This crate owns the app side of the ABI: typed handles that close their peripheral when
//! dropped, one [`Error`] type, and conversions from the raw bindings. It runs inside the app's
//! sandbox and must not depend on anything of the device: no Ferrosphere host crate, no wasmtime,
//! nothing that needs more than `wasm32-wasip2`.
//!
//! An app is a plain `fn main()` binary built for `wasm32-wasip2`. Each module maps to one
//! interface; an app imports only the interfaces it uses, and the device links an interface
//! only when the app's `app_manifest.json` grants it, so using a module the manifest does not
//! grant makes the app fail to start with a message naming the interface. Standard output and
//! standard error go to the app's log, like [`log::info`].
//!
//! ```no_run
//! use applibs::gpio::{InputPin, Level, OutputPin};
//! use std::time::Duration;
//!
//! fn main() -> Result<(), applibs::Error> {
//!     let mut led = OutputPin::open(8, Level::High)?; // LEDs are active low
//!     let button = InputPin::open(12)?;
//!     loop {
//!         if button.is_low()? {
//!             led.toggle()?;
//!         }
//!         applibs::time::sleep(Duration::from_millis(100));
//!     }
//! }
//! ```

#[allow(missing_docs, missing_debug_implementations, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "app",
        path: "../../wit",
    });
}

mod error;

pub mod adc;
pub mod deviceauth;
pub mod discovery;
pub mod gpio;
pub mod i2c;
pub mod imagefiles;
pub mod log;
pub mod net;
pub mod power;
pub mod pwm;
pub mod spi;
pub mod storage;
pub mod sysevent;
pub mod time;
pub mod uart;

pub use error::{Error, Result};
