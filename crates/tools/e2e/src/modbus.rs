//! The legacy machine of the guardian's tests: `tests/interop/modbus_sim.py` (pymodbus, an
//! independent Modbus implementation) serving a register bank over Modbus TCP on loopback, or
//! over Modbus RTU on one end of a socat pty pair. The test controls it (set registers, go
//! silent, answer exceptions, read what was written) through the script's standard input. The
//! processes are killed on drop, also when the test fails.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::artifacts::repo_root;

/// The interpreter with pymodbus: `FERRO_PYTHON` (scripts/test.sh sets it to its venv), else
/// `python3`.
fn python() -> String {
    std::env::var("FERRO_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A running simulator.
#[derive(Debug)]
pub struct Simulator {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    /// The TCP port (Modbus TCP only).
    pub port: Option<u16>,
    /// The socat pair of an RTU simulator, and the pty end the device opens.
    socat: Option<(Child, PathBuf, tempfile::TempDir)>,
}

impl Simulator {
    /// A Modbus TCP server on a loopback port of its own choosing.
    pub fn tcp() -> Simulator {
        let mut simulator = Simulator::spawn(&["tcp", "0"], None);
        let line = simulator.line();
        simulator.port = line
            .strip_prefix("listening ")
            .and_then(|port| port.trim().parse().ok());
        assert!(simulator.port.is_some(), "the simulator said {line:?}");
        simulator
    }

    /// A Modbus RTU server on one end of a fresh socat pty pair; [`Simulator::device_pty`] is
    /// the other end. `parity` is `N`, `E` or `O`.
    pub fn rtu(baud: u32, parity: char, stop_bits: u8) -> Simulator {
        let dir = tempfile::tempdir().expect("tempdir");
        let (machine, device) = (dir.path().join("machine"), dir.path().join("device"));
        let socat = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", machine.display()))
            .arg(format!("pty,raw,echo=0,link={}", device.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (scripts/lib/prereqs.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(machine.exists() && device.exists()) {
            assert!(Instant::now() < deadline, "socat made no pty pair");
            std::thread::sleep(Duration::from_millis(20));
        }
        let args = [
            "rtu".to_owned(),
            machine.display().to_string(),
            baud.to_string(),
            parity.to_string(),
            stop_bits.to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut simulator = Simulator::spawn(&args, Some((socat, device, dir)));
        let line = simulator.line();
        assert_eq!(line.trim(), "listening", "the simulator said {line:?}");
        simulator
    }

    fn spawn(args: &[&str], socat: Option<(Child, PathBuf, tempfile::TempDir)>) -> Simulator {
        let script = repo_root().join("tests/interop/modbus_sim.py");
        let mut child = Command::new(python())
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("{}: {error}", script.display()));
        let input = child.stdin.take().expect("stdin");
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        Simulator {
            child,
            input,
            output,
            port: None,
            socat,
        }
    }

    /// The pty the device's UART opens (RTU only).
    pub fn device_pty(&self) -> &Path {
        &self.socat.as_ref().expect("an RTU simulator").1
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.output.read_line(&mut line).expect("simulator output");
        assert!(!line.is_empty(), "the simulator exited");
        line
    }

    /// Sends one control command; returns its answer (panics on `error ...`).
    pub fn command(&mut self, command: &str) -> String {
        writeln!(self.input, "{command}").expect("simulator input");
        self.input.flush().expect("simulator input");
        let answer = self.line().trim().to_owned();
        assert!(!answer.starts_with("error"), "{command}: {answer}");
        answer
    }

    /// Sets `values` from `address` in `table` (`co`, `di`, `hr`, `ir`).
    pub fn set(&mut self, table: &str, address: u16, values: &[u16]) {
        let values: Vec<String> = values.iter().map(u16::to_string).collect();
        self.command(&format!("set {table} {address} {}", values.join(" ")));
    }

    /// `count` values from `address` in `table`.
    pub fn get(&mut self, table: &str, address: u16, count: u16) -> Vec<u16> {
        let answer = self.command(&format!("get {table} {address} {count}"));
        answer
            .strip_prefix("values")
            .unwrap_or_default()
            .split_whitespace()
            .map(|value| value.parse().expect("a value"))
            .collect()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((socat, _, _)) = &mut self.socat {
            let _ = socat.kill();
            let _ = socat.wait();
        }
    }
}
