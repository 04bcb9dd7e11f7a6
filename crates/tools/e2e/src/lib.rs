//! `ferro-e2e` drives Ferrosphere's real binaries end to end: it initialises and runs
//! `ferro-service` in a temporary data directory on a loopback port the service picks itself
//! and reports in its log, and runs the `ferro` CLI against it with its own configuration
//! directory, as a user would. It also owns the one check every test that runs a built artifact
//! goes through ([`artifacts`]: workspace binaries of other packages, the wasm sample apps and
//! test guests), so no test silently runs old code. It owns only test harness code; only tests
//! depend on it (as a dev-dependency).
//!
//! The binaries come from the workspace's target directory: `cargo test --workspace` (and
//! `scripts/test.sh`) builds them before any test runs. Run alone, a missing or stale binary
//! fails, naming the `cargo build` command that makes it current.

pub mod artifacts;
pub mod modbus;
pub mod mosquitto;
pub mod s3;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub use artifacts::binary;

/// A running `ferro-service` with its data directory; stopped (SIGTERM, then kill) on drop.
#[derive(Debug)]
pub struct Service {
    pub data_dir: TempDir,
    pub url: String,
    pub admin_login: String,
    pub one_time_password: String,
    /// The platform root's SHA-256 fingerprint as `init` printed it, if it printed one.
    pub root_fingerprint: Option<String>,
    child: Child,
}

impl Service {
    /// The platform root certificate (PEM) in the data directory, for clients given a CA file.
    pub fn platform_root_pem(&self) -> PathBuf {
        self.data_dir.path().join("data/pki/platform-root.pem")
    }

    /// `ferro-service init`, then `run` on port 0: the service binds a port of its own choosing
    /// and logs it (`"serving"`, with `addr`), so no other process can take the port between a
    /// probe and the bind. Returns once that line is logged: the listener is bound.
    pub fn start(extra_run_args: &[&str]) -> Service {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let data = data_dir.path().join("data");
        let admin_login = "admin@example.com".to_string();
        let init = Command::new(binary("ferro-service"))
            .args(["init", "--data-dir"])
            .arg(&data)
            .args(["--admin-login", &admin_login])
            .output()
            .expect("run ferro-service init");
        assert!(
            init.status.success(),
            "ferro-service init failed:\n{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let stdout = String::from_utf8_lossy(&init.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&init.stderr).into_owned();
        // `init` prints labelled lines: "Platform root SHA-256 fingerprint: AB:CD:..." and
        // "One-time password: ..." (the password alone on a line is accepted too).
        let labelled = |label: &str| {
            format!("{stdout}\n{stderr}").lines().find_map(|line| {
                line.trim()
                    .strip_prefix(label)
                    .map(|v| v.trim().to_string())
            })
        };
        let one_time_password = labelled("One-time password:")
            .or_else(|| {
                stdout
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.contains(' ') && !l.contains(':'))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no one-time password in init's output:\n{stdout}"));
        let root_fingerprint = labelled("Platform root SHA-256 fingerprint:");
        // The log goes to a file (a pipe nobody reads would fill and stall the service), as
        // JSON lines, from which the address is read.
        let log = std::fs::File::create(data_dir.path().join("service.log")).expect("service log");
        let child = Command::new(binary("ferro-service"))
            .args(["run", "--data-dir"])
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(extra_run_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run ferro-service run");
        let scheme = if extra_run_args.contains(&"--insecure-http") || root_fingerprint.is_none() {
            "http"
        } else {
            "https"
        };
        let mut service = Service {
            data_dir,
            url: String::new(),
            admin_login,
            one_time_password,
            root_fingerprint,
            child,
        };
        let addr = service.wait_until_serving();
        service.url = format!("{scheme}://{addr}");
        service
    }

    /// What the service logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("service.log")).unwrap_or_default()
    }

    /// Waits (up to 30 s) for the `"serving"` log line; returns the address it names.
    fn wait_until_serving(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(addr) = serving_addr(&self.log()) {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("ferro-service exited early ({status}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "ferro-service logged no \"serving\" line within 30 s:\n{}",
            self.log()
        );
    }
}

/// The address of the `"serving"` line in `ferro-service run`'s JSON log, once it is there.
pub fn serving_addr(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["message"] == "serving")
        .and_then(|event| event["addr"].as_str().map(str::to_string))
}

impl Drop for Service {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Stops a child process this crate started: SIGTERM (via `kill`) first, so that it can shut
/// down cleanly, then by force after 10 s; reaps it either way.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A user of the `ferro` CLI with a configuration directory of their own.
#[derive(Debug)]
pub struct User {
    pub config_dir: TempDir,
    /// Extra environment for every command (automation: FERRO_SERVICE, FERRO_TOKEN, ...).
    pub env: Vec<(String, String)>,
}

impl Default for User {
    fn default() -> Self {
        User::new()
    }
}

impl User {
    pub fn new() -> User {
        User {
            config_dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
        }
    }

    /// The same user with `key=value` set for every command.
    pub fn with_env(mut self, key: &str, value: &str) -> User {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs `ferro ARGS` with `stdin` as standard input.
    pub fn run_with_input(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(binary("ferro"))
            .args(args)
            .env("FERRO_CONFIG_DIR", self.config_dir.path())
            .env_remove("RUST_LOG")
            .env_remove("FERRO_TOKEN")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ferro");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        child.wait_with_output().expect("wait for ferro")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, "")
    }

    /// Runs with `--output json` and expects success.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let output = self.run(&all);
        assert!(
            output.status.success(),
            "ferro {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "ferro {} printed no JSON ({e}):\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Runs and expects failure; returns standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "ferro {} unexpectedly succeeded:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Logs in as the service's first administrator, replacing the one-time password.
    pub fn login_as_admin(&self, service: &Service, new_password: &str) {
        let output = self.login(
            service,
            &service.admin_login,
            &[&service.one_time_password, new_password],
        );
        assert!(
            output.status.success(),
            "admin login failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `ferro login` with the password(s) on standard input, trusting the service as a careful
    /// user does: by the fingerprint the operator gave them.
    pub fn login(&self, service: &Service, login: &str, passwords: &[&str]) -> Output {
        let mut args = vec![
            "login",
            "--service",
            &service.url,
            "--login",
            login,
            "--password-stdin",
        ];
        if let Some(fingerprint) = &service.root_fingerprint {
            args.extend(["--accept-fingerprint", fingerprint]);
        }
        args.extend(["--output", "json"]);
        let input = passwords
            .iter()
            .map(|p| format!("{p}\n"))
            .collect::<String>();
        self.run_with_input(&args, &input)
    }
}
