//! An S3-compatible server for the object store tests: `tests/interop/moto_s3.py` (moto's
//! server mode, an independent S3 implementation from PyPI) on a loopback port of its own
//! choosing. Buckets are made through it (boto3, S3's own client). The server can be paused
//! (SIGSTOP: it accepts connections and answers nothing, as a hung server) and resumed with its
//! objects intact, or stopped for good. Killed on drop, also when the test fails; it also exits
//! by itself when its standard input closes (the test process died).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::artifacts::repo_root;

/// Smallest multipart part the test server takes (S3's is 5 MiB): small, so that tests of
/// multipart uploads move kilobytes.
pub const TEST_MIN_PART_SIZE: u64 = 16 * 1024;

/// The interpreter with moto: `FERRO_PYTHON` (scripts/test.sh sets it to its venv), else the
/// venv `scripts/lib/prereqs.sh` makes under `target/pyenv`, else `python3`.
fn python() -> String {
    if let Ok(p) = std::env::var("FERRO_PYTHON") {
        return p;
    }
    let venv = repo_root().join("target/pyenv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".to_owned()
}

/// A running moto S3 server.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Moto {
    /// Start a server (about a second: Python imports).
    pub fn start() -> Moto {
        let script = repo_root().join("tests/interop/moto_s3.py");
        let mut child = Command::new(python())
            .arg(&script)
            .env("S3_UPLOAD_PART_MIN_SIZE", TEST_MIN_PART_SIZE.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "{} ({error}): needs Python with moto[server] (scripts/lib/prereqs.sh \
                     ensure_python_env; FERRO_PYTHON names the interpreter)",
                    script.display()
                )
            });
        let input = child.stdin.take().expect("stdin");
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        let mut moto = Moto {
            child,
            input,
            output,
            port: 0,
        };
        let line = moto.line();
        moto.port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "moto said {line:?} (is moto[server] installed in {}?)",
                    python()
                )
            });
        moto
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.output.read_line(&mut line);
        assert!(
            !line.is_empty(),
            "the moto server exited (is moto[server] installed in {}?)",
            python()
        );
        line
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create the bucket `name` (3 to 63 of `a-z 0-9 -`).
    pub fn bucket(&mut self, name: &str) {
        writeln!(self.input, "bucket {name}").expect("moto input");
        self.input.flush().expect("moto input");
        let answer = self.line();
        assert_eq!(
            answer.trim(),
            format!("ok {name}"),
            "creating bucket {name}"
        );
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} moto");
    }

    /// Stop answering (SIGSTOP): connections are accepted by the kernel and never answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Answer again after [`Moto::pause`], with every object as it was.
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // A paused process still dies of SIGKILL.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
