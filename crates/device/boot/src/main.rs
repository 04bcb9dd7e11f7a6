//! `ferro-boot`: Ferrosphere's stage-0 loader, the boot trusted computing base. It verifies
//! the OS bundle of the slot to boot against the trust anchors (platform root -> key list ->
//! OS release keys) and the anti-rollback floor, re-unpacks it from the verified package,
//! measures it into the root of trust, and replaces itself with the bundle's
//! `bin/ferro-device run`. A bundle that fails verification is never run: the other slot is
//! tried, and with no verifying slot the loader exits non-zero. All decisions live in this
//! crate's library (`plan_boot`); this file parses two flags and execs.
//!
//! Usage: `ferro-boot --data-dir DIR [--max-attempts N]`

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use ferro_boot::DataDir;
use ferro_boot::layout::DEFAULT_BOOT_ATTEMPTS;
use ferro_boot::plan_boot;

const USAGE: &str = "usage: ferro-boot --data-dir DIR [--max-attempts N]";

struct Args {
    data_dir: PathBuf,
    max_attempts: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut data_dir = std::env::var_os("FERRO_DEVICE_DATA_DIR").map(PathBuf::from);
    let mut max_attempts = DEFAULT_BOOT_ATTEMPTS;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--data-dir") => {
                data_dir = Some(args.next().ok_or("--data-dir needs a value")?.into());
            }
            Some("--max-attempts") => {
                let v = args.next().ok_or("--max-attempts needs a value")?;
                max_attempts = v
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .filter(|n| (1..=100).contains(n))
                    .ok_or("--max-attempts takes a number from 1 to 100")?;
            }
            Some("--help" | "-h") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Some("--version" | "-V") => {
                println!("ferro-boot {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(Args {
        data_dir: data_dir.ok_or("--data-dir is required")?,
        max_attempts,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ferro-boot: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let data_dir = DataDir::new(&args.data_dir);
    let plan = match plan_boot(&data_dir, args.max_attempts) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("ferro-boot: refusing to boot: {e}");
            return ExitCode::FAILURE;
        }
    };
    let m = plan.image.metadata();
    eprintln!(
        "ferro-boot: slot {} verified (OS {} image {}, security version {}, payload sha256 {}); measured; starting {}",
        plan.slot,
        m.version,
        m.image_id,
        m.security_version,
        hex::encode(plan.image.payload_sha256()),
        plan.executable.display()
    );
    let mut command = Command::new(&plan.executable);
    command
        .arg("run")
        .arg("--data-dir")
        .arg(&args.data_dir)
        .arg("--booted-slot")
        .arg(plan.slot.as_str());
    // The OS restarts through us to switch slots (an update): tell it where we are.
    if let Ok(me) = std::env::current_exe() {
        command.env("FERRO_BOOT_EXE", me);
    }
    run(command)
}

#[cfg(unix)]
fn run(mut command: Command) -> ExitCode {
    use std::os::unix::process::CommandExt;
    // Only returns on failure.
    let e = command.exec();
    eprintln!("ferro-boot: cannot start the OS: {e}");
    ExitCode::FAILURE
}

#[cfg(not(unix))]
fn run(mut command: Command) -> ExitCode {
    match command.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ferro-boot: cannot start the OS: {e}");
            ExitCode::FAILURE
        }
    }
}
