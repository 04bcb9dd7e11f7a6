//! `ferro-service`: initialise a data directory, or run the security service.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use ferro_service::auth::PasswordParams;
use ferro_service::{Config, server, setup};
use std::path::PathBuf;

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
        } => {
            init_logs(LogFormat::Text);
            let report = setup::init(
                &data_dir,
                database_url.as_deref(),
                &admin_login,
                PasswordParams::default(),
            )
            .await
            .context("init failed")?;
            eprintln!(
                "Initialised {} (database {}).\nFirst administrator: {}\nOne-time password \
                 (shown only now; it must be changed at first login):",
                data_dir.display(),
                report.database,
                report.admin_login
            );
            println!("{}", report.one_time_password);
        }
        Command::Run {
            data_dir,
            listen,
            database_url,
            log_format,
        } => {
            init_logs(log_format);
            let (db, file) = setup::open(&data_dir, database_url.as_deref())
                .await
                .context("opening the data directory")?;
            let state = setup::state(db.clone(), Config::default())
                .await
                .context("building the service state")?;
            let addr = listen
                .or(file.listen)
                .unwrap_or_else(|| server::DEFAULT_LISTEN.to_string());
            let listener = server::bind(&addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, backend = ?db.backend(), "serving");
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
