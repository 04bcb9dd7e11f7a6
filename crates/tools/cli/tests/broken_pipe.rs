//! `ferro ... | head`: when the reader of standard output has gone, the CLI ends quietly with
//! the status a shell reports for SIGPIPE (141), as Unix tools do: no panic, no backtrace, no
//! error message.

#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let work = tempfile::tempdir().expect("temp dir");
    // The reading end is closed before the CLI starts, so its first write fails (EPIPE):
    // nothing depends on timing.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    for output in ["table", "json"] {
        let run = Command::new(env!("CARGO_BIN_EXE_ferro"))
            .env("FERRO_CONFIG_DIR", work.path().join("config"))
            .env_remove("RUST_LOG")
            .env("RUST_BACKTRACE", "1")
            .args(["hardware-definition", "generate-header"])
            .arg("--hardware-definition-file")
            .arg(repo.join("hardware/ferro_vboard/sample_appliance.json"))
            .arg("--destination")
            .arg(work.path().join(format!("header-{output}.rs")))
            .args(["--output", output])
            .stdin(Stdio::null())
            .stdout(writer.try_clone().expect("pipe writer"))
            .stderr(Stdio::piped())
            .output()
            .expect("run ferro");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(141), "--output {output}: {stderr}");
        assert!(stderr.is_empty(), "--output {output}: {stderr}");
        // The command itself did its work before it found nobody reading.
        assert!(work.path().join(format!("header-{output}.rs")).is_file());
    }
}
