//! `ferro-test-swtpm` (tests only) is the one swtpm harness of the TPM tests (`ferro-trust`,
//! `ferro-device`, `ferro-service`): a `swtpm socket --tpm2` on loopback with its own state
//! directory, reachable through the TCTI string [`Swtpm::tcti`], killed on drop. It needs the
//! Debian packages swtpm and swtpm-tools (`scripts/prereqs.sh`), and depends on no Ferrosphere
//! crate (so it does not turn on `ferro-trust/tpm` for whoever uses it).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `swtpm socket` with its state directory; killed on drop.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    port: u16,
    state: tempfile::TempDir,
}

impl Swtpm {
    /// A fresh TPM (new state: new seeds, empty NV).
    pub fn start() -> Swtpm {
        Swtpm::start_on(tempfile::tempdir().expect("tempdir for the swtpm state"))
    }

    /// A TPM whose state was manufactured by `swtpm_setup --create-ek-cert` (EK certificates in
    /// NV, signed by swtpm's local CA), as a TPM with an EK certificate ships.
    pub fn start_with_ek_certificate() -> Swtpm {
        let state = tempfile::tempdir().expect("tempdir for the swtpm state");
        let out = Command::new("swtpm_setup")
            .args(["--tpm2", "--create-ek-cert", "--overwrite", "--tpmstate"])
            .arg(state.path())
            .output()
            .expect("swtpm_setup not found: apt-get install swtpm-tools");
        assert!(
            out.status.success(),
            "swtpm_setup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Swtpm::start_on(state)
    }

    /// Stop this swtpm and start another on the same state: a reboot of the TPM (PCRs reset;
    /// seeds, NV and so primary keys kept; transient objects gone).
    pub fn reboot(mut self) -> Swtpm {
        self.stop();
        let state = std::mem::replace(
            &mut self.state,
            tempfile::tempdir().expect("tempdir for the swtpm state"),
        );
        Swtpm::start_on(state)
    }

    /// The TCTI configuration string that reaches it (`swtpm:host=127.0.0.1,port=N`).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Its command port (the control port is the next one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its state directory.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn start_on(state: tempfile::TempDir) -> Swtpm {
        for _ in 0..20 {
            // The swtpm TCTI uses `port` for commands and `port + 1` for control.
            let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
            let port = l.local_addr().expect("local address").port();
            if port == u16::MAX || TcpListener::bind(("127.0.0.1", port + 1)).is_err() {
                continue;
            }
            drop(l);
            let mut child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--server"])
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", state.path().display()))
                .args(["--flags", "startup-clear"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm not found: apt-get install swtpm swtpm-tools");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken meanwhile: try another pair
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // swtpm serves one client at a time; let it notice our probe went away.
                    std::thread::sleep(Duration::from_millis(50));
                    return Swtpm { child, port, state };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("no free loopback port pair for swtpm");
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}
