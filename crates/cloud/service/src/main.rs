//! `ferro-service`: initialise a data directory, or run the security service.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use ferro_service::auth::PasswordParams;
use ferro_service::{server, setup};
use std::path::PathBuf;

#[global_allocator]
static ALLOCATOR: ferro_service::Allocator = ferro_service::ALLOCATOR;

#[derive(Parser, Debug)]
#[command(
    name = "ferro-service",
    version,
    about = "Ferrosphere security service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the data directory, its config file, the database and the first administrator
    /// (whose one-time password is printed once).
    Init {
        /// Data directory (created with mode 0700).
        #[arg(long, env = "FERRO_DATA_DIR")]
        data_dir: PathBuf,
        /// PostgreSQL URL (postgres://...); default: SQLite in the data directory.
        #[arg(long, env = "FERRO_DATABASE_URL")]
        database_url: Option<String>,
        /// Login name of the first administrator.
        #[arg(long, default_value = "admin@localhost")]
        admin_login: String,
        /// DNS name or IP address of the service TLS certificate (repeat for several; default:
        /// localhost and 127.0.0.1). Stored in the config file and reused at renewal.
        #[arg(long = "hostname", value_name = "NAME")]
        hostnames: Vec<String>,
    },
    /// Serve the API.
    Run {
        /// Data directory made by `init`.
        #[arg(long, env = "FERRO_DATA_DIR")]
        data_dir: PathBuf,
        /// Listen address (default from the config file, else 127.0.0.1:4443).
        #[arg(long)]
        listen: Option<String>,
        /// PostgreSQL URL, overriding the config file.
        #[arg(long, env = "FERRO_DATABASE_URL")]
        database_url: Option<String>,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Serve plain HTTP instead of HTTPS (loopback addresses only; for tests and local
        /// debugging).
        #[arg(long)]
        insecure_http: bool,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            print!("{}", ferro_service::openapi_json());
        }
        Command::Init {
            data_dir,
            database_url,
            admin_login,
            hostnames,
        } => {
            init_logs(LogFormat::Text);
            let report = setup::init_with_names(
                &data_dir,
                database_url.as_deref(),
                &admin_login,
                PasswordParams::default(),
                &hostnames,
            )
            .await
            .context("init failed")?;
            eprintln!(
                "Initialised {} (database {}; service certificate for {}).\n\
                 First administrator: {}. Its one-time password is shown only now and must be \
                 changed at first login.\n\
                 `ferro login` shows the platform root's fingerprint: accept it only if it is the \
                 one below.",
                data_dir.display(),
                report.database,
                report.service_names.join(", "),
                report.admin_login
            );
            println!(
                "Platform root SHA-256 fingerprint: {}",
                report.root_fingerprint
            );
            println!("One-time password: {}", report.one_time_password);
        }
        Command::Run {
            data_dir,
            listen,
            database_url,
            log_format,
            insecure_http,
        } => {
            init_logs(log_format);
            let (db, file) = setup::open(&data_dir, database_url.as_deref())
                .await
                .context("opening the data directory")?;
            let config = file
                .config(&data_dir.join(setup::CONFIG_FILE))
                .context("reading the config file")?;
            let state = setup::state(&data_dir, db.clone(), config)
                .await
                .context("building the service state")?;
            let addr = listen
                .or(file.listen)
                .unwrap_or_else(|| server::DEFAULT_LISTEN.to_string());
            let tls = if insecure_http {
                None
            } else {
                let (chain, signer) = ferro_service::platform::service_tls(
                    &data_dir,
                    &state.platform,
                    &file.service_names,
                )
                .context("loading the service TLS certificate")?;
                Some(server::tls_config(&chain, signer).context("TLS configuration")?)
            };
            let proxy = state.config.proxy_protocol.then(|| {
                ferro_service::proxy_protocol::ProxyProtocol::new(
                    state.config.trusted_proxies.clone(),
                )
            });
            let listener = server::bind_with(&addr, tls, proxy).await?;
            tracing::info!(addr = %listener.local_addr(), scheme = listener.scheme(),
                backend = ?db.backend(), "serving");
            let app = ferro_service::build_app(state);
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let signal = tokio::spawn(async move {
                server::shutdown_signal().await;
                let _ = tx.send(());
            });
            let serve = server::serve(listener, app, async {
                let _ = rx.await;
            });
            tokio::pin!(serve);
            // After the signal, give in-flight requests a bounded grace period.
            tokio::select! {
                r = &mut serve => r.context("serving")?,
                () = async {
                    let _ = signal.await;
                    tokio::time::sleep(setup::SHUTDOWN_GRACE).await;
                } => {
                    tracing::warn!("grace period over; closing remaining connections");
                }
            }
            db.close().await;
            tracing::info!("stopped");
        }
    }
    Ok(())
}
