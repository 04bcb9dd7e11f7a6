//! The QEMU backend: one `qemu-system-arm -M mps2-an386` process per run of a core.
//!
//! The core's files live in `<run_dir>/<core>/` (mode 0700): `psram` (the 16 MiB shared
//! memory, mode 0600, recreated for each run), `image.elf` (0600), and the Unix sockets QEMU's
//! UARTs connect to (`uart0.sock` the debug log, `doorbell.sock` UART1 (the core's doorbell),
//! `uart2.sock` the app's UART, `hostbell.sock` UART3 (the host's doorbell)). The sockets listen before QEMU starts and accept one connection each. QEMU runs with
//! no monitor, no network, no reboot, no semihosting (never: it would give the guest the host's
//! files), under its seccomp sandbox when asked, with stdin and stdout closed; its stderr is
//! kept (a lockup is reported there). It runs under `setpriv --pdeathsig KILL` (by default) so
//! that the kernel kills it when the supervisor thread that started it ends, however the device
//! process ends.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ferro_mailbox::{ControlBlock, CoreState, MappedRegion};

use crate::endpoint::{Region, Session};
use crate::supervisor::{Instance, LaunchIo, Launcher, Supervised, ping};
use crate::{CoreError, CoreId, CrashKind, MemoryMap, VerifiedElf};

/// How long QEMU may take to connect its UARTs.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The stderr bytes kept per run.
const STDERR_BYTES: usize = 4096;

/// Where and how the QEMU backend runs its cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// The emulator (`qemu-system-arm`, found on `PATH` when not a path).
    pub qemu: PathBuf,
    /// A directory of its own for the cores' files (one subdirectory per core, mode 0700); on
    /// tmpfs (`/dev/shm/...` or `$XDG_RUNTIME_DIR`) so the mailbox never touches a disk.
    pub run_dir: PathBuf,
    /// Runs QEMU with `-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,
    /// resourcecontrol=deny` (seccomp): no new processes, no privilege changes, no obsolete
    /// system calls, no scheduler or affinity changes.
    pub sandbox: bool,
    /// The supervising wrapper QEMU runs under so that it dies with the device process:
    /// `setpriv --pdeathsig KILL -- qemu-system-arm ...` (util-linux; the kernel sends QEMU
    /// SIGKILL when the thread that started it ends, even by `kill -9` of the device). `None`
    /// runs QEMU directly (it then outlives a device killed without unwinding); see
    /// `docs/realtime.md`, "QEMU dies with the device".
    pub pdeathsig_wrapper: Option<PathBuf>,
}

impl QemuConfig {
    /// `qemu-system-arm` from `PATH`, sandboxed, with its files in `run_dir`.
    pub fn new(run_dir: PathBuf) -> QemuConfig {
        QemuConfig {
            qemu: PathBuf::from("qemu-system-arm"),
            run_dir,
            sandbox: true,
            pdeathsig_wrapper: Some(PathBuf::from("setpriv")),
        }
    }
}

/// A real-time core emulated by QEMU's mps2-an386 (Cortex-M4F).
#[derive(Debug)]
pub struct QemuCore {
    inner: Supervised<QemuLauncher>,
}

impl QemuCore {
    /// A stopped core named `id`, with its files under `config.run_dir/<id>` (created now,
    /// mode 0700).
    pub fn new(id: CoreId, config: QemuConfig) -> Result<QemuCore, CoreError> {
        let dir = config.run_dir.join(id.as_str());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|()| fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)))
            .map_err(|source| CoreError::Io {
                core: id.clone(),
                what: "creating the core's directory",
                source,
            })?;
        let launcher = QemuLauncher { config, dir };
        Ok(QemuCore {
            inner: Supervised::new(id, MemoryMap::mps2_an386(), launcher),
        })
    }
}

crate::supervisor::delegate_real_time_core!(QemuCore);

#[derive(Debug)]
struct QemuLauncher {
    config: QemuConfig,
    dir: PathBuf,
}

/// Binds a fresh listening socket at `path`.
fn listen(path: &Path) -> io::Result<UnixListener> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Accepts QEMU's connection, or fails when QEMU ended or took too long.
fn accept(listener: &UnixListener, child: &mut Child, deadline: Instant) -> io::Result<UnixStream> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "QEMU ended before connecting its UARTs ({status})"
            )));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "QEMU did not connect its UARTs",
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

impl Launcher for QemuLauncher {
    fn launch(
        &self,
        _core: &CoreId,
        image: &VerifiedElf,
        io: &LaunchIo,
    ) -> io::Result<Box<dyn Instance>> {
        let psram = self.dir.join("psram");
        let elf = self.dir.join("image.elf");
        for path in [&psram, &elf] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let region: Arc<MappedRegion> = Arc::new(MappedRegion::create(&psram)?);
        let control = ControlBlock::new(region.clone());
        control.initialise();
        control.set_gpio_inputs(io.gpio_in);
        {
            use std::io::Write;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&elf)?;
            f.write_all(image.bytes())?;
        }
        let log_l = listen(&self.dir.join("uart0.sock"))?;
        let door_l = listen(&self.dir.join("doorbell.sock"))?;
        let uart_l = listen(&self.dir.join("uart2.sock"))?;
        let bell_l = listen(&self.dir.join("hostbell.sock"))?;

        let mut cmd = match &self.config.pdeathsig_wrapper {
            Some(wrapper) => {
                let mut cmd = Command::new(wrapper);
                cmd.args(["--pdeathsig", "KILL", "--"])
                    .arg(&self.config.qemu);
                cmd
            }
            None => Command::new(&self.config.qemu),
        };
        cmd.arg("-M")
            .arg("mps2-an386,memory-backend=psram")
            .arg("-object")
            .arg(format!(
                "memory-backend-file,id=psram,size=16M,mem-path={},share=on",
                psram.display()
            ))
            .args([
                "-nodefaults",
                "-nographic",
                "-monitor",
                "none",
                "-no-reboot",
                "-net",
                "none",
            ])
            .args([
                "-serial",
                "chardev:uart0",
                "-serial",
                "chardev:doorbell",
                "-serial",
                "chardev:uart2",
                "-serial",
                "chardev:hostbell",
            ])
            .arg("-chardev")
            .arg(format!(
                "socket,id=uart0,path={}",
                self.dir.join("uart0.sock").display()
            ))
            .arg("-chardev")
            .arg(format!(
                "socket,id=doorbell,path={}",
                self.dir.join("doorbell.sock").display()
            ))
            .arg("-chardev")
            .arg(format!(
                "socket,id=uart2,path={}",
                self.dir.join("uart2.sock").display()
            ))
            .arg("-chardev")
            .arg(format!(
                "socket,id=hostbell,path={}",
                self.dir.join("hostbell.sock").display()
            ))
            .arg("-kernel")
            .arg(&elf);
        if self.config.sandbox {
            cmd.args([
                "-sandbox",
                "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
            ]);
        }
        // Nothing of the device's environment but where to find QEMU's own files.
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut guard = ChildGuard(Some(cmd.spawn()?));
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let child_ref = guard
            .0
            .as_mut()
            .ok_or_else(|| io::Error::other("no child"))?;
        let log_s = accept(&log_l, child_ref, deadline)?;
        let door_s = accept(&door_l, child_ref, deadline)?;
        let uart_s = accept(&uart_l, child_ref, deadline)?;
        let bell_s = accept(&bell_l, child_ref, deadline)?;

        // The debug log.
        let log = io.log.clone();
        std::thread::spawn(move || {
            let mut s = log_s;
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = s.read(&mut buf) {
                log.feed(&buf[..n]);
            }
        });
        // The core's doorbell (UART1): written by the caller's thread, never blocking. A full
        // socket buffer means bytes are pending, so a doorbell is already on its way.
        door_s.set_nonblocking(true)?;
        let door = Arc::new(door_s);
        let d = door.clone();
        let region_dyn: Region = region.clone();
        let session = Session::new(
            region_dyn.clone(),
            io.app,
            Box::new(move || {
                let _ = (&*d).write(&[1]);
            }),
        );
        // The host's doorbell (UART3): wake endpoints and the supervisor.
        let (s2, wake) = (session.clone(), io.wake.clone());
        std::thread::spawn(move || {
            let mut s = bell_s;
            let mut buf = [0u8; 4096];
            while let Ok(1..) = s.read(&mut buf) {
                s2.notify();
                ping(&wake);
            }
            ping(&wake);
        });
        io.uart.attach(uart_s);
        // QEMU's stderr: the last bytes, for the lockup message.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = guard.0.as_mut().and_then(|c| c.stderr.take()) {
            let (stderr, wake) = (stderr.clone(), io.wake.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    let mut kept = stderr.lock().unwrap_or_else(PoisonError::into_inner);
                    kept.extend_from_slice(&buf[..n]);
                    let excess = kept.len().saturating_sub(STDERR_BYTES);
                    kept.drain(..excess);
                }
                ping(&wake);
            });
        }
        let pid = guard.0.as_ref().map(Child::id);
        Ok(Box::new(QemuInstance {
            child: guard,
            pid,
            region: region_dyn,
            session,
            stderr,
            _door: door,
        }))
    }
}

/// Kills and reaps QEMU when dropped (a failed launch, a crash, a stop, a panic).
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct QemuInstance {
    child: ChildGuard,
    pid: Option<u32>,
    region: Region,
    session: Arc<Session>,
    stderr: Arc<Mutex<Vec<u8>>>,
    _door: Arc<UnixStream>,
}

impl Instance for QemuInstance {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn session(&self) -> Arc<Session> {
        self.session.clone()
    }

    fn region(&self) -> Region {
        self.region.clone()
    }

    fn ended(&mut self) -> Option<CrashKind> {
        let status = self.child.0.as_mut()?.try_wait().ok()??;
        // QEMU aborts with "Lockup: can't escalate ..." when a fault cannot be taken.
        std::thread::sleep(Duration::from_millis(20)); // let the stderr reader finish
        let stderr = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        if String::from_utf8_lossy(&stderr).contains("Lockup") {
            return Some(CrashKind::Lockup);
        }
        match ControlBlock::new(self.region.clone()).state() {
            Ok(CoreState::Exited(code)) => Some(CrashKind::Exited(code)),
            Ok(CoreState::Faulted(record)) => Some(CrashKind::HardFault { record }),
            _ => Some(CrashKind::EmulatorExited {
                status: status.code(),
            }),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
