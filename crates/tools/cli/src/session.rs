//! The CLI's connection to a service: where it is, which CA it trusts (pinned at login), the
//! session token and the selected tenant. Kept in `cli.json` in the configuration directory,
//! written atomically with mode 0600 because it holds a bearer token.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ferro_client::{Client, ServiceTrust, Token, all_pages, page};
use ferro_wire::{Tenant, TenantId};
use serde::{Deserialize, Serialize};

use crate::config;

const SESSION_FILE: &str = "cli.json";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Session {
    /// The service's base URL, e.g. `https://ferro.example:4443`.
    pub service: String,
    /// PEM of the CA(s) trusted for the service (the platform root pinned at login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The session token (`fss_...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The login name of the signed-in user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The tenant commands act on unless `--tenant` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_tenant: Option<TenantId>,
    /// `FERRO_TENANT` (an ID or a name), for sessions made from the environment.
    #[serde(skip)]
    pub tenant_from_env: Option<String>,
    /// Made from FERRO_TOKEN: never written to disk.
    #[serde(skip)]
    pub from_env: bool,
}

/// Automation signs in through the environment instead of `ferro login`.
const SERVICE_ENV: &str = "FERRO_SERVICE";
const TOKEN_ENV: &str = "FERRO_TOKEN";
const CA_FILE_ENV: &str = "FERRO_CA_FILE";
const TENANT_ENV: &str = "FERRO_TENANT";

fn session_path() -> Result<PathBuf> {
    Ok(config::config_dir()?.join(SESSION_FILE))
}

impl Session {
    /// The saved session, if any.
    pub fn load() -> Result<Option<Session>> {
        let path = session_path()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let session = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged: delete it and run `ferro login` again",
                path.display()
            )
        })?;
        Ok(Some(session))
    }

    /// The session from the environment (`FERRO_TOKEN` with `FERRO_SERVICE`, and
    /// `FERRO_CA_FILE` for HTTPS, `FERRO_TENANT` optionally), else the saved one, else an error
    /// telling the user to log in.
    pub fn require() -> Result<Session> {
        if let Ok(token) = std::env::var(TOKEN_ENV) {
            let service = std::env::var(SERVICE_ENV).with_context(|| {
                format!("{TOKEN_ENV} is set: set {SERVICE_ENV} to the service URL too")
            })?;
            let ca_pem = match std::env::var_os(CA_FILE_ENV) {
                Some(path) => Some(std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "cannot read {CA_FILE_ENV}={}",
                        PathBuf::from(&path).display()
                    )
                })?),
                None => None,
            };
            return Ok(Session {
                service: service.trim_end_matches('/').to_string(),
                ca_pem,
                token: Some(token),
                login: None,
                selected_tenant: None,
                tenant_from_env: std::env::var(TENANT_ENV).ok(),
                from_env: true,
            });
        }
        Session::load()?.context("not logged in: run `ferro login --service URL` first")
    }

    /// Saves atomically (temp file + rename) with mode 0600. A session from the environment is
    /// never saved: its token belongs to the automation's secret store, not to a file.
    pub fn save(&self) -> Result<()> {
        if self.from_env {
            bail!(
                "this session comes from {TOKEN_ENV} and is not saved: set {TENANT_ENV} to choose the tenant"
            );
        }
        let path = session_path()?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let text = serde_json::to_string_pretty(self)?;
        write_private(&path, text.as_bytes())
    }

    /// Forgets the session (logout).
    pub fn remove() -> Result<bool> {
        let path = session_path()?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }

    pub fn trust(&self) -> Result<Option<ServiceTrust>> {
        self.ca_pem
            .as_deref()
            .map(|pem| {
                ServiceTrust::from_pem(pem.as_bytes())
                    .context("the saved CA is unusable: run `ferro login` again")
            })
            .transpose()
    }

    /// A client authenticated as the signed-in user.
    pub fn client(&self) -> Result<Client> {
        let token = self
            .token
            .clone()
            .context("not logged in: run `ferro login --service URL` first")?;
        Client::new(
            &self.service,
            self.trust()?.as_ref(),
            Some(Token::new(token)),
        )
        .with_context(|| format!("cannot use the service {}", self.service))
    }

    /// The tenant named by `--tenant` (an ID or a name), or else `FERRO_TENANT`, or else the
    /// selected one.
    pub fn tenant(&self, client: &Client, explicit: Option<&str>) -> Result<TenantId> {
        match explicit.or(self.tenant_from_env.as_deref()) {
            Some(wanted) => resolve_tenant(client, wanted),
            None => self.selected_tenant.context(
                "no tenant selected: run `ferro tenant select --tenant NAME` or pass --tenant",
            ),
        }
    }
}

/// A tenant by ID or by name, among those the caller holds a role in.
pub fn resolve_tenant(client: &Client, wanted: &str) -> Result<TenantId> {
    if let Ok(id) = wanted.parse::<TenantId>() {
        return Ok(id);
    }
    let tenants: Vec<Tenant> = all_pages(|c| client.list_tenants(&page(c)))?;
    let matches: Vec<&Tenant> = tenants.iter().filter(|t| t.name == wanted).collect();
    match matches.as_slice() {
        [tenant] => Ok(tenant.id),
        [] => bail!("no tenant named {wanted:?} among yours: `ferro tenant list` shows them"),
        _ => bail!("several tenants are named {wanted:?}: pass the tenant ID instead"),
    }
}

/// Writes `bytes` to `path` atomically (temp file beside it, then rename) with mode 0600: for
/// secrets (the session, claim codes).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write = || -> std::io::Result<()> {
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}
