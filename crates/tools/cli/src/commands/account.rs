//! `ferro login | logout | show-user` and `ferro user ...`.

use std::io::{BufRead, IsTerminal, Write};

use crate::cli::{ApiTokenCommand, LoginArgs, UserCommand};
use crate::output::{OutputFormat, Render, emit, new_table, property_table};
use crate::session::Session;
use anyhow::{Context, Result, bail};
use ferro_client::{Client, ClientError, ServiceTrust, all_pages, page, probe_presented_chain};
use ferro_wire::{
    ApiToken, ChangePasswordRequest, CreateApiTokenRequest, CreateUserRequest, LoginRequest, Me,
    Role, User,
};
use serde::Serialize;

impl Render for Me {
    fn table(&self) -> comfy_table::Table {
        let roles = self
            .roles
            .iter()
            .map(|r| format!("{} ({})", r.tenant_name, r.role))
            .collect::<Vec<_>>()
            .join(", ");
        property_table([
            ("User ID", self.user.id.to_string()),
            ("Login", self.user.login.clone()),
            ("Display name", self.user.display_name.clone()),
            ("Platform operator", self.user.platform_operator.to_string()),
            ("Roles", roles),
        ])
    }
}

impl Render for Vec<User> {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec!["ID", "Login", "Display name", "Platform operator"]);
        for user in self {
            table.add_row(vec![
                user.id.to_string(),
                user.login.clone(),
                user.display_name.clone(),
                user.platform_operator.to_string(),
            ]);
        }
        table
    }
}

/// The created user and their one-time password, which the service shows only once.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedUserReport {
    user: User,
    one_time_password: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: time::OffsetDateTime,
}

impl Render for CreatedUserReport {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("User ID", self.user.id.to_string()),
            ("Login", self.user.login.clone()),
            ("Display name", self.user.display_name.clone()),
            (
                "One-time password",
                format!(
                    "{} (shown once: give it to the user, who must change it at first login)",
                    self.one_time_password
                ),
            ),
            ("Expires", crate::output::timestamp(self.expires_at)),
        ])
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginReport {
    service: String,
    login: String,
    ca_fingerprints: Vec<String>,
    tenants: usize,
    selected_tenant: Option<String>,
}

impl Render for LoginReport {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Service", self.service.clone()),
            ("Login", self.login.clone()),
            ("Trusted CA (SHA-256)", self.ca_fingerprints.join("\n")),
            ("Tenants", self.tenants.to_string()),
            (
                "Selected tenant",
                self.selected_tenant
                    .clone()
                    .unwrap_or_else(|| "(none)".to_string()),
            ),
        ])
    }
}

fn normalise_fingerprint(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Decides which CA to trust for the service: `--ca-file`, or the platform root it presents,
/// accepted by fingerprint or by the user at a prompt.
fn establish_trust(args: &LoginArgs) -> Result<Option<ServiceTrust>> {
    if let Some(file) = &args.ca_file {
        let pem = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        return ServiceTrust::from_pem(&pem)
            .with_context(|| format!("{} holds no usable CA certificate", file.display()))
            .map(Some);
    }
    let url = reqwest_url(&args.service)?;
    if url.0 == "http" {
        eprintln!(
            "warning: {} is plain HTTP: acceptable for loopback development only",
            args.service
        );
        return Ok(None);
    }
    let chain = probe_presented_chain(&url.1, url.2)
        .with_context(|| format!("cannot reach {}", args.service))?;
    let anchor = chain.anchor()?;
    let fingerprint = anchor.fingerprints().join(", ");
    eprintln!(
        "The service presented a certificate (SHA-256 {}) issued by the platform root\n  SHA-256 {}",
        chain.leaf_fingerprint().unwrap_or_default(),
        fingerprint
    );
    match &args.accept_fingerprint {
        Some(expected)
            if normalise_fingerprint(expected) == normalise_fingerprint(&fingerprint) =>
        {
            Ok(Some(anchor))
        }
        Some(_) => bail!(
            "the platform root's fingerprint is not the one given with --accept-fingerprint: \
             do not log in; ask the service's operator for the fingerprint `ferro-service init` printed"
        ),
        None if std::io::stdin().is_terminal() => {
            eprint!("Compare it with the fingerprint your operator gave you. Trust it? [y/N] ");
            std::io::stderr().flush().ok();
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if matches!(answer.trim(), "y" | "Y" | "yes") {
                Ok(Some(anchor))
            } else {
                bail!("not trusted; nothing was saved")
            }
        }
        None => bail!(
            "cannot ask whether to trust the service (standard input is not a terminal): pass \
             --accept-fingerprint with the platform root's SHA-256 fingerprint, or --ca-file"
        ),
    }
}

/// (scheme, host, port) of a service URL.
fn reqwest_url(service: &str) -> Result<(String, String, u16)> {
    let (scheme, rest) = service
        .split_once("://")
        .with_context(|| format!("{service:?} is not a URL: use https://HOST:PORT"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port = port
                .parse()
                .with_context(|| format!("{service:?} has an invalid port"))?;
            (host.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (authority, if scheme == "https" { 443 } else { 80 }),
    };
    if host.is_empty() {
        bail!("{service:?} names no host: use https://HOST:PORT");
    }
    Ok((scheme.to_string(), host.to_string(), port))
}

/// Reads the login name and passwords: from standard input with `--password-stdin`, else asked.
struct Credentials {
    lines: Option<std::io::Lines<std::io::StdinLock<'static>>>,
}

impl Credentials {
    fn new(from_stdin: bool) -> Credentials {
        Credentials {
            lines: from_stdin.then(|| std::io::stdin().lock().lines()),
        }
    }

    fn secret(&mut self, prompt: &str) -> Result<String> {
        match &mut self.lines {
            Some(lines) => lines
                .next()
                .context("standard input ended before the password (--password-stdin)")?
                .context("cannot read standard input"),
            None => rpassword::prompt_password(prompt).context("cannot read the password"),
        }
    }
}

fn prompt_line(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

pub fn login(args: &LoginArgs, output: OutputFormat) -> Result<()> {
    let trust = establish_trust(args)?;
    let anonymous = Client::new(&args.service, trust.as_ref(), None)
        .with_context(|| format!("cannot use the service {}", args.service))?;
    let login = match &args.login {
        Some(login) => login.clone(),
        None if args.password_stdin => bail!("--password-stdin needs --login"),
        None => prompt_line("Login: ")?,
    };
    let mut credentials = Credentials::new(args.password_stdin);
    let password = credentials.secret("Password: ")?;
    let request = LoginRequest {
        login: login.clone(),
        password,
    };
    let response = match anonymous.login(&request) {
        Err(ClientError::Api { code, .. }) if code == "password_change_required" => {
            eprintln!(
                "Your password is a one-time password: choose a new one (12 characters or more)."
            );
            let new_password = credentials.secret("New password: ")?;
            let change = ChangePasswordRequest {
                login: login.clone(),
                current_password: request.password.clone(),
                new_password: new_password.clone(),
                keep_api_tokens: false,
            };
            anonymous
                .change_password(&change)
                .context("cannot change the password")?;
            anonymous
                .login(&LoginRequest {
                    login: login.clone(),
                    password: new_password,
                })
                .context("cannot log in with the new password")?
        }
        other => other.context("cannot log in")?,
    };
    let mut session = Session {
        service: args.service.trim_end_matches('/').to_string(),
        ca_pem: trust.as_ref().map(ServiceTrust::to_pem),
        token: Some(response.token.clone()),
        login: Some(response.user.login.clone()),
        selected_tenant: None,
        tenant_from_env: None,
        from_env: false,
    };
    let me = session.client()?.me()?;
    // One tenant: select it, as azsphere does.
    if let [only] = me.roles.as_slice() {
        session.selected_tenant = Some(only.tenant_id);
    }
    session.save()?;
    emit(
        output,
        &LoginReport {
            service: session.service.clone(),
            login: response.user.login,
            ca_fingerprints: trust.map(|t| t.fingerprints()).unwrap_or_default(),
            tenants: me.roles.len(),
            selected_tenant: session.selected_tenant.map(|t| t.to_string()),
        },
    )
}

pub fn logout() -> Result<()> {
    // Revoke the token on the service too; forgetting it locally is what matters most.
    if let Some(Ok(client)) = Session::load()?.map(|session| session.client())
        && let Err(error) = client.logout()
    {
        eprintln!("warning: the service did not confirm the logout: {error}");
    }
    if Session::remove()? {
        eprintln!("Logged out.");
    } else {
        eprintln!("Not logged in.");
    }
    Ok(())
}

pub fn show_user(output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let me = session.client()?.me()?;
    emit(output, &me)
}

pub fn user(command: UserCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        UserCommand::Create {
            login,
            display_name,
            platform_operator,
        } => {
            let created = client.create_user(&CreateUserRequest {
                login,
                display_name,
                platform_operator,
            })?;
            emit(
                output,
                &CreatedUserReport {
                    user: created.user,
                    one_time_password: created.one_time_password,
                    expires_at: created.one_time_password_expires_at,
                },
            )
        }
        UserCommand::ResetPassword { user } => {
            let id: ferro_wire::UserId = user.parse().map_err(|_| {
                anyhow::anyhow!("--user {user:?} is not a user ID (`ferro user list`)")
            })?;
            let users = all_pages(|c| client.list_users(&page(c)))?;
            let found = users
                .into_iter()
                .find(|u| u.id == id)
                .ok_or_else(|| anyhow::anyhow!("no user {id} (`ferro user list`)"))?;
            let otp = client.reset_password(id)?;
            emit(
                output,
                &CreatedUserReport {
                    user: found,
                    one_time_password: otp.one_time_password,
                    expires_at: otp.expires_at,
                },
            )
        }
        UserCommand::List => emit(output, &all_pages(|c| client.list_users(&page(c)))?),
        UserCommand::Delete { user } => {
            let id: ferro_wire::UserId = user.parse().map_err(|_| {
                anyhow::anyhow!("--user {user:?} is not a user ID (`ferro user list`)")
            })?;
            client.delete_user(id)?;
            eprintln!("Deleted user {id}.");
            Ok(())
        }
    }
}

impl Render for Vec<ApiToken> {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec!["ID", "Name", "Scope", "Created", "Expires"]);
        for token in self {
            table.add_row(vec![
                token.id.to_string(),
                token.name.clone(),
                token_scope(token),
                crate::output::timestamp(token.created_at),
                crate::output::timestamp(token.expires_at),
            ]);
        }
        table
    }
}

/// A token's scope in words: "all tenants", "tenant <id>, at most Reader, read-only".
fn token_scope(token: &ApiToken) -> String {
    let mut parts = vec![match token.tenant_id {
        Some(t) => format!("tenant {t}"),
        None => "all tenants".to_string(),
    }];
    if let Some(r) = token.max_role {
        parts.push(format!("at most {r}"));
    }
    if token.read_only {
        parts.push("read-only".to_string());
    }
    parts.join(", ")
}

/// A new API token with its secret, which the service shows only once.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedTokenReport {
    token: ApiToken,
    secret: String,
}

impl Render for CreatedTokenReport {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Token ID", self.token.id.to_string()),
            ("Name", self.token.name.clone()),
            ("Scope", token_scope(&self.token)),
            ("Expires", crate::output::timestamp(self.token.expires_at)),
            (
                "Secret",
                format!(
                    "{} (shown once: store it as FERRO_TOKEN in your automation's secrets)",
                    self.secret
                ),
            ),
        ])
    }
}

pub fn api_token(command: ApiTokenCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        ApiTokenCommand::Create {
            name,
            expires_in_days,
            tenant,
            max_role,
            read_only,
        } => {
            let tenant_id = tenant
                .map(|t| session.tenant(&client, Some(&t)))
                .transpose()?;
            let max_role = max_role
                .map(|r| {
                    r.parse::<Role>().map_err(|_| {
                        anyhow::anyhow!(
                            "--max-role {r:?}: use Administrator, Contributor or Reader"
                        )
                    })
                })
                .transpose()?;
            let created = client
                .create_token(&CreateApiTokenRequest {
                    name,
                    expires_in_days,
                    tenant_id,
                    max_role,
                    read_only,
                })
                .map_err(|e| match &e {
                    ClientError::Api { code, .. } if code == "reauthentication_required" => {
                        anyhow::anyhow!(
                            "making an API token needs a fresh password login: run `ferro login` \
                             and try again within 15 minutes"
                        )
                    }
                    _ => anyhow::Error::from(e),
                })?;
            emit(
                output,
                &CreatedTokenReport {
                    token: created.token,
                    secret: created.secret,
                },
            )
        }
        ApiTokenCommand::List => emit(output, &all_pages(|c| client.list_tokens(&page(c)))?),
        ApiTokenCommand::Delete { token_id } => {
            let id: ferro_wire::ApiTokenId = token_id.parse().map_err(|_| {
                anyhow::anyhow!(
                    "--token-id {token_id:?} is not a token ID (`ferro api-token list`)"
                )
            })?;
            client.revoke_token(id)?;
            eprintln!("Revoked token {id}.");
            Ok(())
        }
    }
}
