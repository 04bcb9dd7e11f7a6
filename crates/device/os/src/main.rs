//! `ferro-device`: the device OS layer's command line (provision, identity, manufacturing
//! state) and agent (`run`, started by `ferro-boot`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use ferro_device::layout::OS_FLOOR_COUNTER;
use ferro_device::provision::{ProvisionOptions, provision};
use ferro_device::{DataDir, DeviceConfig, DeviceContext, ManufacturingState, Slot};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(name = "ferro-device", version, about = "Ferrosphere device OS layer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the device key, write the trust anchors, install the factory OS bundle and write
    /// the registration record.
    Provision {
        #[arg(long, env = "FERRO_DEVICE_DATA_DIR")]
        data_dir: PathBuf,
        /// The security service's base URL, e.g. https://ferro.example:8443.
        #[arg(long)]
        service: String,
        /// The platform root certificate (PEM) the operator gave you.
        #[arg(long)]
        platform_root: PathBuf,
        /// The factory OS bundle (`ferro os-release download`).
        #[arg(long)]
        os_image: PathBuf,
        #[arg(long, value_enum, default_value_t = RotKind::Software)]
        rot: RotKind,
        /// TCTI of the TPM (with --rot tpm), e.g. swtpm:host=127.0.0.1,port=2321.
        #[arg(long)]
        tpm: Option<String>,
        /// The board's hardware definition, relative to the OS bundle's hardware/ directory
        /// (default: the virtual board of the sample appliance).
        #[arg(long, value_name = "PATH", default_value = ferro_device::apps::DEFAULT_BOARD)]
        board: String,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Print the device ID, root of trust, manufacturing state and OS slot.
    ShowIdentity {
        #[arg(long, env = "FERRO_DEVICE_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Manufacturing state (moves only forward).
    ManufacturingState {
        #[command(subcommand)]
        command: ManufacturingCommand,
    },
    /// Run the device (started by ferro-boot); stops on SIGTERM or SIGINT.
    Run {
        #[arg(long, env = "FERRO_DEVICE_DATA_DIR")]
        data_dir: PathBuf,
        /// The slot ferro-boot booted (a or b).
        #[arg(long, value_parser = parse_slot)]
        booted_slot: Option<Slot>,
        /// Seconds between update checks made without being told (update-now signals and
        /// boot always check).
        #[arg(long, env = "FERRO_UPDATE_INTERVAL_SECS", default_value_t = 20 * 3600,
              value_parser = clap::value_parser!(u64).range(10..=7 * 24 * 3600))]
        update_interval_secs: u64,
        /// The DNS resolver apps' service discoveries query: an IP address (port 53) or
        /// ADDRESS:PORT ([IPv6]:PORT); default: the first nameserver of /etc/resolv.conf.
        #[arg(long, env = "FERRO_DNS_RESOLVER", value_name = "ADDRESS[:PORT]",
              value_parser = ferro_runtime::parse_dns_resolver)]
        dns_resolver: Option<std::net::SocketAddr>,
    },
}

#[derive(Subcommand, Debug)]
enum ManufacturingCommand {
    /// Show the manufacturing state.
    Show {
        #[arg(long, env = "FERRO_DEVICE_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Move the manufacturing state forward and re-sign the registration record.
    Update {
        #[arg(long, env = "FERRO_DEVICE_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, value_enum)]
        state: StateArg,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RotKind {
    Software,
    Tpm,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StateArg {
    #[value(name = "Module1Complete")]
    Module1Complete,
    #[value(name = "DeviceComplete")]
    DeviceComplete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn parse_slot(s: &str) -> Result<Slot, String> {
    Slot::parse(s).ok_or_else(|| "a slot is `a` or `b`".to_string())
}

/// Prints a JSON object as JSON or as a two-column table (like the ferro CLI).
fn render(output: Output, value: &Value) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Table => {
            let Some(obj) = value.as_object() else {
                println!("{value}");
                return;
            };
            let width = obj.keys().map(String::len).max().unwrap_or(0);
            for (k, v) in obj {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => "-".to_string(),
                    other => other.to_string(),
                };
                println!("{k:<width$}  {text}");
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose_default = matches!(cli.command, Command::Run { .. });
    init_logs(verbose_default);
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text the message before
/// it already holds (the libraries' errors name their source in their own message, so `{:#}`
/// printed the same cause twice).
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Restart through `ferro-boot` ([`ferro_device::platform::Restart`]): with the software root
/// of trust re-execute it (same PID, fresh process image: its measurements start over, as at a
/// reboot); with a TPM reboot the platform first (a virtual device power-cycles its swtpm), so
/// the TPM holds only the new OS's measurement. ferro-boot tells us where it is in
/// `FERRO_BOOT_EXE`.
fn restart_through_boot(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let boot = std::env::var_os("FERRO_BOOT_EXE").context(
        "an OS switch is pending but FERRO_BOOT_EXE is not set (ferro-device was not started by \
         ferro-boot); restart the device to boot the new OS",
    )?;
    let dd = DataDir::new(data_dir);
    let config = dd
        .read_config()
        .context("reading the device configuration")?;
    let reboot_command = std::env::var(ferro_device::platform::REBOOT_COMMAND_ENV).ok();
    let restart = ferro_device::platform::Restart::for_device(&config, reboot_command.as_deref());
    tracing::info!(?restart, "restarting through ferro-boot to switch the OS");
    restart.reset_platform(&dd)?;
    let mut command = std::process::Command::new(boot);
    command.arg("--data-dir").arg(data_dir);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = command.exec();
        Err(anyhow::anyhow!("cannot re-execute ferro-boot: {e}"))
    }
    #[cfg(not(unix))]
    {
        let status = command.status().context("running ferro-boot")?;
        std::process::exit(status.code().unwrap_or(1));
    }
}

fn init_logs(run: bool) {
    let default = if run { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Provision {
            data_dir,
            service,
            platform_root,
            os_image,
            rot,
            tpm,
            board,
            output,
        } => {
            let board = ferro_device::apps::BoardConfig {
                hardware_definition: board,
            };
            board
                .validate()
                .map_err(|reason| anyhow::anyhow!("--board: {reason}"))?;
            let config = match (rot, tpm) {
                (RotKind::Software, None) => DeviceConfig::Software,
                (RotKind::Software, Some(_)) => anyhow::bail!("--tpm needs --rot tpm"),
                (RotKind::Tpm, Some(tcti)) => DeviceConfig::Tpm { tcti },
                (RotKind::Tpm, None) => anyhow::bail!("--rot tpm needs --tpm TCTI"),
            };
            let dd = DataDir::new(data_dir);
            let opts = ProvisionOptions {
                data_dir: dd.clone(),
                service_url: service,
                platform_root_pem: platform_root,
                os_image,
                config,
            };
            let device_id = provision(&opts, ferro_device::net::fetch_key_list)
                .context("provisioning failed")?;
            ferro_device::layout::write_json(&dd.root().join("board.json"), &board)
                .context("writing board.json")?;
            if output == Output::Table {
                eprintln!("Provisioned device {device_id}.");
            }
            render(output, &identity(&dd)?);
            Ok(())
        }
        Command::ShowIdentity { data_dir, output } => {
            render(output, &identity(&DataDir::new(data_dir))?);
            Ok(())
        }
        Command::ManufacturingState { command } => match command {
            ManufacturingCommand::Show { data_dir, output } => {
                let ctx = DeviceContext::open(&DataDir::new(data_dir))?;
                let state = ctx.manufacturing_state()?;
                render(output, &json!({ "manufacturingState": state.as_str() }));
                Ok(())
            }
            ManufacturingCommand::Update {
                data_dir,
                state,
                output,
            } => {
                let ctx = DeviceContext::open(&DataDir::new(data_dir))?;
                let state = match state {
                    StateArg::Module1Complete => ManufacturingState::Module1Complete,
                    StateArg::DeviceComplete => ManufacturingState::DeviceComplete,
                };
                ctx.set_manufacturing_state(state)?;
                render(output, &json!({ "manufacturingState": state.as_str() }));
                Ok(())
            }
        },
        Command::Run {
            data_dir,
            booted_slot,
            update_interval_secs,
            dns_resolver,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let exit = runtime.block_on(ferro_device::run::run(
                DataDir::new(&data_dir),
                booted_slot,
                std::time::Duration::from_secs(update_interval_secs),
                dns_resolver,
            ))?;
            drop(runtime);
            if exit == ferro_device::run::RunExit::Reboot {
                restart_through_boot(&data_dir)?;
            }
            Ok(())
        }
    }
}

fn identity(dd: &DataDir) -> Result<Value> {
    let ctx = DeviceContext::open(dd)?;
    let state = ctx.manufacturing_state()?;
    let boot = dd.read_boot_state()?;
    let active_os = ferro_image::inspect(
        std::fs::File::open(dd.slot_package(boot.active))
            .with_context(|| format!("opening the slot {} package", boot.active))?,
    )
    .ok()
    .map(|u| u.claimed_metadata.version.to_string());
    Ok(json!({
        "deviceId": ctx.device_id().to_string(),
        "rootOfTrust": match ctx.config { DeviceConfig::Software => "software", DeviceConfig::Tpm { .. } => "tpm" },
        "manufacturingState": state.as_str(),
        "serviceUrl": ctx.service_url,
        "platformRootFingerprint": ctx.platform_root.fingerprint(),
        "keyListVersion": ctx.key_list.version(),
        "activeSlot": boot.active,
        "pendingSlot": boot.pending.as_ref().map(|p| p.slot),
        "osVersion": active_os,
        "osSecurityVersionFloor": ctx.rot.counter(OS_FLOOR_COUNTER)?,
    }))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    /// `run --dns-resolver` (or `FERRO_DNS_RESOLVER`, the same parser) takes an IP address
    /// with an optional port; anything else stops `run` at start with a clear error.
    #[test]
    fn the_dns_resolver_setting_is_checked_at_start() {
        let run = |resolver: Option<&str>| {
            let mut args = vec!["ferro-device", "run", "--data-dir", "/nonexistent"];
            if let Some(resolver) = resolver {
                args.extend(["--dns-resolver", resolver]);
            }
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Run { dns_resolver, .. } => dns_resolver,
                other => panic!("not run: {other:?}"),
            })
        };
        for (setting, parsed) in [
            ("192.168.1.1", "192.168.1.1:53"),
            ("10.0.0.2:5353", "10.0.0.2:5353"),
            ("[fd00::1]:53", "[fd00::1]:53"),
        ] {
            assert_eq!(
                run(Some(setting)).expect(setting),
                Some(parsed.parse().expect("address")),
                "{setting}"
            );
        }
        // Without the setting (and without FERRO_DNS_RESOLVER in the test's environment):
        // /etc/resolv.conf, read by the runtime at each discovery.
        if std::env::var_os("FERRO_DNS_RESOLVER").is_none() {
            assert_eq!(run(None).expect("no setting"), None);
        }
        for (setting, reason) in [
            ("resolver.lan", "give an IP address"),
            ("192.168.1.1:99999", "give an IP address"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.251", "multicast"),
            ("192.168.1.1:0", "port 0"),
        ] {
            let error = run(Some(setting)).expect_err(setting).to_string();
            assert!(
                error.contains("--dns-resolver")
                    && error.contains(&format!("{setting:?} is not a DNS resolver: "))
                    && error.contains(reason),
                "{setting}: {error}"
            );
        }
    }
}
