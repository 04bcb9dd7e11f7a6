//! The WASI subset an app gets: what a plain Rust `wasm32-wasip2` binary imports, with nothing
//! behind it. Standard output and error are the app's log; standard input is empty; there are
//! no preopened directories (so no file system), no environment variables, no sockets (the
//! network is reached only through `ferrosphere:device/networking`), and no monotonic-clock
//! subscriptions (a guest could block in them beyond the reach of stop requests; apps sleep with
//! `ferrosphere:device/timers`). WASI has no clock-setting call at all.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiView};

use crate::host::HostState;
use crate::logs::{LineSplitter, LogBuffer, LogSource};

/// Bytes a guest may write to stdout/stderr per call.
const WRITE_PERMIT: usize = 4096;

/// The WASI interfaces linked for every app (`package/interface`, without version).
pub(crate) const WASI_INTERFACES: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Adds the WASI subset to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::sync;
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};

    let l = linker;
    sync::io::error::add_to_linker::<HostState, HasIo>(l, |state| state.ctx().table)?;
    sync::io::poll::add_to_linker::<HostState, HasIo>(l, |state| state.ctx().table)?;
    sync::io::streams::add_to_linker::<HostState, HasIo>(l, |state| state.ctx().table)?;
    cli::environment::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::exit::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stdin::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stdout::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stderr::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_input::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_output::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    clocks::wall_clock::add_to_linker::<HostState, WasiClocks>(l, HostState::clocks)?;
    random::random::add_to_linker::<HostState, WasiRandom>(l, |state| state.wasi.random())?;
    random::insecure::add_to_linker::<HostState, WasiRandom>(l, |state| state.wasi.random())?;
    random::insecure_seed::add_to_linker::<HostState, WasiRandom>(l, |state| state.wasi.random())?;
    sync::filesystem::types::add_to_linker::<HostState, WasiFilesystem>(l, HostState::filesystem)?;
    filesystem::preopens::add_to_linker::<HostState, WasiFilesystem>(l, HostState::filesystem)?;
    Ok(())
}

/// The WASI context of one instance: arguments (the app's name, then `CmdArgs`), stdout and
/// stderr into the log, and nothing else.
pub(crate) fn context(name: &str, args: &[String], logs: &Arc<LogBuffer>) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .arg(name)
        .args(args)
        .stdout(LogStream::new(logs.clone(), LogSource::Stdout))
        .stderr(LogStream::new(logs.clone(), LogSource::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder.build()
}

/// Standard output or error of an app, as its log.
#[derive(Clone)]
pub(crate) struct LogStream {
    splitter: Arc<Mutex<LineSplitter>>,
}

impl LogStream {
    fn new(buffer: Arc<LogBuffer>, source: LogSource) -> Self {
        Self {
            splitter: Arc::new(Mutex::new(LineSplitter::new(buffer, source))),
        }
    }

    fn write(&self, bytes: &[u8]) {
        self.splitter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write(bytes);
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        LogStream::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        LogStream::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
