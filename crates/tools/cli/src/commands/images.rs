//! `ferro image ...`, `ferro developer-key ...`, `ferro os-release ...` and
//! `ferro device-group deployment ...`.

use std::path::Path;

use anyhow::{Context, Result};
use ferro_client::Client;
use serde_json::{Value, json};

use super::list_all;
use super::product::resolve_group;
use crate::cli::{
    DeploymentCommand, DeveloperKeyCommand, ImageCommand, OsReleaseCommand, OsReleaseKeyCommand,
    RolloutArgs,
};
use crate::commands::keys;
use crate::output::{JsonView, OutputFormat, Render, emit, property_table, timestamp};
use crate::progress;
use crate::session::Session;
use ferro_wire::{DeploymentId, Page, RolloutStatus, TenantId};

const IMAGE_FIELDS: &[(&str, &str)] = &[
    ("Image ID", "id"),
    ("Component ID", "componentId"),
    ("Name", "name"),
    ("Type", "imageType"),
    ("Version", "version"),
    ("Security version", "securityVersion"),
    ("Payload SHA-256", "payloadSha256"),
    ("Signed by (tenant image key)", "signerKeyId"),
    ("Uploaded signer", "uploadedSignerKeyId"),
    ("Uploaded", "uploadedAt"),
];

const IMAGE_LIST_FIELDS: &[(&str, &str)] = &[
    ("Image ID", "id"),
    ("Component ID", "componentId"),
    ("Name", "name"),
    ("Type", "imageType"),
    ("Version", "version"),
    ("Uploaded", "uploadedAt"),
];

const KEY_FIELDS: &[(&str, &str)] = &[
    ("Key ID", "keyId"),
    ("Name", "name"),
    ("Created", "createdAt"),
];

const OS_RELEASE_FIELDS: &[(&str, &str)] = &[
    ("Image ID", "imageId"),
    ("Feed", "feed"),
    ("Version", "version"),
    ("Security version", "securityVersion"),
    ("Published", "publishedAt"),
    ("In Retail since", "retailAt"),
    ("Revoked", "revokedAt"),
];

const OS_FEED_FIELDS: &[(&str, &str)] = &[
    ("Feed", "feed"),
    ("Minimum security version", "minimumSecurityVersion"),
    ("Set", "updatedAt"),
];

const DEPLOYMENT_FIELDS: &[(&str, &str)] = &[
    ("Deployment ID", "id"),
    ("Device group ID", "deviceGroupId"),
    ("Images", "images"),
    ("Deployed", "deployedAt"),
    ("Rollout waves (%)", "rollout.waves"),
];

fn percent(p: f64) -> String {
    // Percentages have at most two decimals; show 10 rather than 10.0.
    let text = format!("{p:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `--output json` gives the service's answer; the table reads as a status report.
impl Render for RolloutStatus {
    fn table(&self) -> comfy_table::Table {
        let waves = self
            .rollout
            .waves
            .iter()
            .map(|w| percent(*w))
            .collect::<Vec<_>>()
            .join(", ");
        let wait = self.rollout.wave_wait_seconds;
        let mut rows = vec![
            ("Deployment ID", self.deployment_id.to_string()),
            ("State", format!("{:?}", self.state)),
            (
                "Wave",
                format!(
                    "{} of {} ({} % of the group)",
                    self.current_wave,
                    self.rollout.waves.len(),
                    percent(self.current_percent)
                ),
            ),
            ("Waves (%)", waves),
            (
                "Wait between waves",
                if wait.is_multiple_of(60) {
                    format!("{} min", wait / 60)
                } else {
                    format!("{wait} s")
                },
            ),
            (
                "Next wave",
                self.next_wave_at.map(timestamp).unwrap_or_default(),
            ),
            ("Devices in group", self.devices_in_group.to_string()),
            ("Devices included", self.devices_included.to_string()),
            ("Devices targeted", self.devices_targeted.to_string()),
            (
                "Devices failed",
                format!(
                    "{} ({} %; pauses above {} %)",
                    self.devices_failed,
                    percent((self.failure_percent * 100.0).round() / 100.0),
                    percent(self.rollout.max_failure_percent)
                ),
            ),
            (
                "Failures counted since",
                timestamp(self.failures_counted_since),
            ),
        ];
        if let Some(p) = &self.pause {
            rows.push(("Paused", timestamp(p.at)));
            rows.push(("Pause reason", p.reason.as_str().to_string()));
            rows.push(("Pause detail", p.detail.clone()));
            if let Some(by) = p.by {
                rows.push(("Paused by", by.to_string()));
            }
        }
        if let Some(at) = self.superseded_at {
            rows.push(("Superseded", timestamp(at)));
        }
        property_table(rows)
    }
}

/// The deployment a rollout command names: `--deployment`, or the group's current one.
fn rollout_path(session: &Session, client: &Client, args: &RolloutArgs) -> Result<String> {
    let tenant: TenantId = session.tenant(client, args.tenant.tenant.as_deref())?;
    let group = resolve_group(client, tenant, &args.device_group)?;
    let deployments = format!("/v1/tenants/{tenant}/device-groups/{group}/deployments");
    let deployment: DeploymentId = match &args.deployment {
        Some(id) => id
            .parse()
            .map_err(|_| anyhow::anyhow!("--deployment {id:?}: give a deployment ID (a UUID)"))?,
        None => {
            let page: Page<ferro_wire::Deployment> =
                client.get(&format!("{deployments}?limit=1"))?;
            page.items.first().map(|d| d.id).ok_or_else(|| {
                anyhow::anyhow!(
                    "the device group has no deployment yet: `ferro device-group deployment create`"
                )
            })?
        }
    };
    Ok(format!("{deployments}/{deployment}/rollout"))
}

/// Deployments list their images as objects; show them as `name version (imageId)`.
fn summarise_deployments(mut value: Value) -> Value {
    let summarise = |deployment: &mut Value| {
        if let Some(images) = deployment.get_mut("images").and_then(Value::as_array_mut) {
            for image in images.iter_mut() {
                *image = Value::String(format!(
                    "{} {} ({})",
                    image["name"].as_str().unwrap_or_default(),
                    image["version"].as_str().unwrap_or_default(),
                    image["imageId"].as_str().unwrap_or_default()
                ));
            }
        }
    };
    match &mut value {
        Value::Array(items) => items.iter_mut().for_each(summarise),
        other => summarise(other),
    }
    value
}

fn upload(client: &Client, path: &str, file: &Path) -> Result<Value> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let bar = progress::bytes_bar(size, "Uploading");
    let tick = bar.clone();
    let answer = client.upload_file(path, file, "application/octet-stream", move |done| {
        tick.set_position(done)
    });
    bar.finish_and_clear();
    Ok(answer?)
}

fn download(client: &Client, path: &str, destination: &Path) -> Result<()> {
    let bar = progress::bytes_bar(0, "Downloading");
    let bytes = client
        .download_to_file(path, destination, |done, total| {
            if let Some(total) = total
                && bar.length() != Some(total)
                && total >= 8 * 1024 * 1024
            {
                bar.set_length(total);
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            bar.set_position(done);
        })
        .with_context(|| format!("cannot download to {}", destination.display()))?;
    bar.finish_and_clear();
    eprintln!("Wrote {} ({bytes} bytes).", destination.display());
    Ok(())
}

pub fn image(command: ImageCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        ImageCommand::Add { image, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let added = upload(&client, &format!("/v1/tenants/{tenant}/images"), &image)
                .with_context(|| format!("cannot add the image {}", image.display()))?;
            emit(
                output,
                &JsonView {
                    value: added,
                    fields: IMAGE_FIELDS,
                },
            )
        }
        ImageCommand::Show { image, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let shown: Value = client.get(&format!("/v1/tenants/{tenant}/images/{image}"))?;
            emit(
                output,
                &JsonView {
                    value: shown,
                    fields: IMAGE_FIELDS,
                },
            )
        }
        ImageCommand::List { tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let images: Vec<Value> = list_all(&client, &format!("/v1/tenants/{tenant}/images"))?;
            emit(
                output,
                &JsonView {
                    value: Value::Array(images),
                    fields: IMAGE_LIST_FIELDS,
                },
            )
        }
        ImageCommand::Download {
            image,
            destination,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            download(
                &client,
                &format!("/v1/tenants/{tenant}/images/{image}/content"),
                &destination,
            )
        }
    }
}

/// The PEM of `--public-key`, or of the user's own test-signing key, with a default name.
fn public_key_pem(public_key: Option<&Path>) -> Result<(String, String)> {
    match public_key {
        Some(path) => Ok((
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
            // The file's stem, kept to the characters names allow.
            path.file_stem()
                .map(|s| {
                    s.to_string_lossy()
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                                c
                            } else {
                                '-'
                            }
                        })
                        .take(50)
                        .collect::<String>()
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "developer key".to_string()),
        )),
        None => {
            let key = keys::signing_key(None)?;
            let kid = key.key_id().to_string();
            Ok((
                key.public_key().to_pem(),
                format!("test key {}", kid.get(..16).unwrap_or(&kid)),
            ))
        }
    }
}

pub fn developer_key(command: DeveloperKeyCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        DeveloperKeyCommand::Add {
            public_key,
            name,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let (pem, default_name) = public_key_pem(public_key.as_deref())?;
            let added: Value = client.post(
                &format!("/v1/tenants/{tenant}/developer-keys"),
                &json!({ "publicKeyPem": pem, "name": name.unwrap_or(default_name) }),
            )?;
            emit(
                output,
                &JsonView {
                    value: added,
                    fields: KEY_FIELDS,
                },
            )
        }
        DeveloperKeyCommand::List { tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let keys: Vec<Value> =
                list_all(&client, &format!("/v1/tenants/{tenant}/developer-keys"))?;
            emit(
                output,
                &JsonView {
                    value: Value::Array(keys),
                    fields: KEY_FIELDS,
                },
            )
        }
        DeveloperKeyCommand::Delete { key_id, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            client.delete(&format!("/v1/tenants/{tenant}/developer-keys/{key_id}"))?;
            eprintln!("Removed developer key {key_id}.");
            Ok(())
        }
    }
}

pub fn os_release(command: OsReleaseCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        OsReleaseCommand::Publish { image, feed } => {
            let published = upload(&client, &format!("/v1/os-releases?feed={feed}"), &image)
                .with_context(|| format!("cannot publish {}", image.display()))?;
            emit(
                output,
                &JsonView {
                    value: published,
                    fields: OS_RELEASE_FIELDS,
                },
            )
        }
        OsReleaseCommand::List { feed } => {
            let path = match feed {
                Some(feed) => format!("/v1/os-releases?feed={feed}"),
                None => "/v1/os-releases".to_string(),
            };
            let releases: Vec<Value> = list_all(&client, &path)?;
            emit(
                output,
                &JsonView {
                    value: Value::Array(releases),
                    fields: OS_RELEASE_FIELDS,
                },
            )
        }
        OsReleaseCommand::Download { image, destination } => download(
            &client,
            &format!("/v1/os-releases/{image}/content"),
            &destination,
        ),
        OsReleaseCommand::Promote { image } => {
            let promoted: Value =
                client.post(&format!("/v1/os-releases/{image}/promote"), &json!({}))?;
            emit(
                output,
                &JsonView {
                    value: promoted,
                    fields: OS_RELEASE_FIELDS,
                },
            )
        }
        OsReleaseCommand::Revoke { image } => {
            let revoked: Value =
                client.post(&format!("/v1/os-releases/{image}/revoke"), &json!({}))?;
            emit(
                output,
                &JsonView {
                    value: revoked,
                    fields: OS_RELEASE_FIELDS,
                },
            )
        }
        OsReleaseCommand::ShowFeeds => {
            let feeds: Value = client.get("/v1/os-feeds")?;
            emit(
                output,
                &JsonView {
                    value: feeds,
                    fields: OS_FEED_FIELDS,
                },
            )
        }
        OsReleaseCommand::SetMinimumSecurityVersion {
            feed,
            security_version,
        } => {
            let policy: Value = client.patch(
                &format!("/v1/os-feeds/{feed}"),
                &json!({ "minimumSecurityVersion": security_version }),
            )?;
            emit(
                output,
                &JsonView {
                    value: policy,
                    fields: OS_FEED_FIELDS,
                },
            )
        }
        OsReleaseCommand::Key(OsReleaseKeyCommand::Add { public_key, name }) => {
            let (pem, default_name) = public_key_pem(public_key.as_deref())?;
            let added: Value = client.post(
                "/v1/os-release-keys",
                &json!({ "publicKeyPem": pem, "name": name.unwrap_or(default_name) }),
            )?;
            emit(
                output,
                &JsonView {
                    value: added,
                    fields: KEY_FIELDS,
                },
            )
        }
        OsReleaseCommand::Key(OsReleaseKeyCommand::List) => {
            let keys: Vec<Value> = list_all(&client, "/v1/os-release-keys")?;
            emit(
                output,
                &JsonView {
                    value: Value::Array(keys),
                    fields: KEY_FIELDS,
                },
            )
        }
        OsReleaseCommand::Key(OsReleaseKeyCommand::Delete { key_id }) => {
            client.delete(&format!("/v1/os-release-keys/{key_id}"))?;
            eprintln!("Removed OS release build key {key_id}.");
            Ok(())
        }
    }
}

pub fn deployment(command: DeploymentCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        DeploymentCommand::Create {
            device_group,
            images,
            waves,
            wave_wait_minutes,
            max_failure_percent,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let group = resolve_group(&client, tenant, &device_group)?;
            let mut body = json!({ "imageIds": images });
            if let (Some(waves), Some(minutes), Some(max_failure)) =
                (waves, wave_wait_minutes, max_failure_percent)
            {
                let seconds = minutes.checked_mul(60).and_then(|s| i64::try_from(s).ok());
                let seconds = seconds.ok_or_else(|| {
                    anyhow::anyhow!("--wave-wait-minutes {minutes}: at most 43200 (30 days)")
                })?;
                body["rollout"] = json!({
                    "waves": waves,
                    "waveWaitSeconds": seconds,
                    "maxFailurePercent": max_failure,
                });
            }
            let created: Value = client.post(
                &format!("/v1/tenants/{tenant}/device-groups/{group}/deployments"),
                &body,
            )?;
            emit(
                output,
                &JsonView {
                    value: summarise_deployments(created),
                    fields: DEPLOYMENT_FIELDS,
                },
            )
        }
        DeploymentCommand::List {
            device_group,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let group = resolve_group(&client, tenant, &device_group)?;
            let deployments: Vec<Value> = list_all(
                &client,
                &format!("/v1/tenants/{tenant}/device-groups/{group}/deployments"),
            )?;
            emit(
                output,
                &JsonView {
                    value: summarise_deployments(Value::Array(deployments)),
                    fields: DEPLOYMENT_FIELDS,
                },
            )
        }
        DeploymentCommand::ShowRollout(args) => {
            let path = rollout_path(&session, &client, &args)?;
            let status: RolloutStatus = client.get(&path)?;
            emit(output, &status)
        }
        DeploymentCommand::Pause(args) => {
            let path = rollout_path(&session, &client, &args)?;
            let status: RolloutStatus = client.post(&format!("{path}/pause"), &json!({}))?;
            if let Some(p) = &status.pause {
                eprintln!(
                    "Rollout paused ({}): no further wave starts until `ferro device-group \
                     deployment resume`.",
                    p.reason.as_str()
                );
            }
            emit(output, &status)
        }
        DeploymentCommand::Resume(args) => {
            let path = rollout_path(&session, &client, &args)?;
            let status: RolloutStatus = client.post(&format!("{path}/resume"), &json!({}))?;
            if let Some(at) = status.next_wave_at {
                eprintln!(
                    "Rollout rolling: the next wave starts at {}.",
                    timestamp(at)
                );
            }
            emit(output, &status)
        }
    }
}
