//! A Mosquitto broker for tests, on loopback ports.
//!
//! Mosquitto cannot be handed a bound socket: it binds the ports its configuration names. So
//! the ports are probed (bound to port 0 and released), which leaves a window in which another
//! process may take one. Mosquitto then fails to bind and exits ("Address already in use");
//! [`Mosquitto::start`] sees that and starts again on fresh ports. Mosquitto is ready when it
//! logs `mosquitto version ... running`, which it does only after every listener is bound, so
//! a connection that happens to reach another process is never mistaken for the broker.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARIES: [&str; 2] = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"];
const ATTEMPTS: usize = 5;

/// A running broker; killed on drop.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    /// The listeners' ports, in the order the configuration was given them.
    pub ports: Vec<u16>,
    log: PathBuf,
}

impl Mosquitto {
    /// Starts Mosquitto on `listeners` fresh loopback ports with the configuration
    /// `config(&ports)` (written to `dir/mosquitto.conf`; `log_dest stderr` is added, the log
    /// goes to `dir/mosquitto.log`), retrying on fresh ports when a port was taken before
    /// Mosquitto could bind it. `dir` holds throw-away test files only: it is made readable to
    /// all, because Mosquitto started as root drops to the `mosquitto` user.
    pub fn start(dir: &Path, listeners: usize, config: impl Fn(&[u16]) -> String) -> Mosquitto {
        let binary = BINARIES
            .into_iter()
            .find(|path| Path::new(path).exists())
            .expect(
                "mosquitto is not installed (scripts/test.sh installs it: apt-get install mosquitto)",
            );
        let conf = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        for _ in 0..ATTEMPTS {
            let ports = probe_ports(listeners);
            std::fs::write(&conf, format!("log_dest stderr\n{}", config(&ports)))
                .expect("write mosquitto.conf");
            readable_to_all(dir);
            let child = Command::new(binary)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("mosquitto log"))
                .spawn()
                .expect("start mosquitto");
            let mut broker = Mosquitto {
                child,
                ports,
                log: log.clone(),
            };
            match broker.wait_running() {
                Started::Running => return broker,
                Started::PortTaken => continue,
            }
        }
        panic!("mosquitto found a port taken {ATTEMPTS} times in a row");
    }

    /// Stops the broker (a broker outage) with SIGTERM, so that a broker configured with
    /// `persistence true` saves its sessions; [`Mosquitto::restart`] starts it again.
    pub fn stop(&mut self) {
        crate::terminate(&mut self.child);
    }

    /// Starts the stopped broker again with the same configuration and ports (its clients
    /// reconnect to the same address). The log starts afresh. Retries for a while when a port
    /// is still held (a connection of the old broker in TIME_WAIT does not hold it: Mosquitto
    /// binds with SO_REUSEADDR).
    pub fn restart(&mut self) {
        let binary = BINARIES
            .into_iter()
            .find(|path| Path::new(path).exists())
            .expect("mosquitto is not installed");
        let conf = self.log.with_file_name("mosquitto.conf");
        for _ in 0..ATTEMPTS * 10 {
            self.child = Command::new(binary)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&self.log).expect("mosquitto log"))
                .spawn()
                .expect("start mosquitto");
            match self.wait_running() {
                Started::Running => return,
                Started::PortTaken => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        panic!("mosquitto could not bind its ports again");
    }

    /// What the broker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until a line of the broker's log contains `needle` (for instance a subscription,
    /// logged with `log_type subscribe` as `<time>: <client> <qos> <topic>`); panics after
    /// `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if Instant::now() >= deadline {
                panic!(
                    "mosquitto logged no {needle:?} within {timeout:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_running(&mut self) -> Started {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let log = self.log();
            if log
                .lines()
                .any(|l| l.contains("mosquitto version") && l.ends_with(" running"))
            {
                return Started::Running;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log();
                if log.contains("Address already in use") {
                    return Started::PortTaken;
                }
                panic!("mosquitto exited ({status}):\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "mosquitto did not log \"running\" within 10 s:\n{}",
            self.log()
        );
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Started {
    Running,
    PortTaken,
}

/// `n` distinct loopback ports that were free a moment ago (all bound at once, then released).
fn probe_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

fn readable_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A port taken by another process when Mosquitto binds: it exits, and the broker is started
    /// again on fresh ports, which it then really listens on.
    #[test]
    fn a_port_taken_before_mosquitto_binds_it_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let taken_port = taken.local_addr().expect("address").port();
        let attempts = Cell::new(0);
        let broker = Mosquitto::start(dir.path(), 1, |ports| {
            attempts.set(attempts.get() + 1);
            // The first attempt is given the taken port, as if it had been taken in the window.
            let port = if attempts.get() == 1 {
                taken_port
            } else {
                ports[0]
            };
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        });
        assert_eq!(attempts.get(), 2, "{}", broker.log());
        assert_ne!(broker.ports[0], taken_port);
        std::net::TcpStream::connect(("127.0.0.1", broker.ports[0])).expect("the broker listens");
    }
}
