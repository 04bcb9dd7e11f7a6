//! `ferro image ...`, `ferro developer-key ...`, `ferro os-release ...` and
//! `ferro device-group deployment ...`.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use ferro_client::{Client, all_pages, page};
use serde_json::Value;

use super::product::resolve_group;
use crate::cli::{
    DeploymentCommand, DeveloperKeyCommand, ImageCommand, OsReleaseCommand, OsReleaseKeyCommand,
    RolloutArgs,
};
use crate::commands::keys;
use crate::output::{JsonView, OutputFormat, Render, emit, property_table, timestamp};
use crate::progress;
use crate::session::Session;
use ferro_wire::{
    CreateDeploymentRequest, Deployment, DeploymentId, DeviceGroupId, ImageId, ImageQuery, OsFeed,
    OsReleaseQuery, PageQuery, PublishOsReleaseQuery, RegisterSigningKeyRequest, RolloutRequest,
    RolloutStatus, SetOsFeedPolicyRequest, TenantId,
};

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
fn rollout_target(
    session: &Session,
    client: &Client,
    args: &RolloutArgs,
) -> Result<(TenantId, DeviceGroupId, DeploymentId)> {
    let tenant: TenantId = session.tenant(client, args.tenant.tenant.as_deref())?;
    let group = resolve_group(client, tenant, &args.device_group)?;
    let deployment: DeploymentId = match &args.deployment {
        Some(id) => id
            .parse()
            .map_err(|_| anyhow!("--deployment {id:?}: give a deployment ID (a UUID)"))?,
        None => {
            let newest = client.list_deployments(
                tenant,
                group,
                &PageQuery {
                    limit: Some(1),
                    continuation: None,
                },
            )?;
            newest.items.first().map(|d| d.id).ok_or_else(|| {
                anyhow!(
                    "the device group has no deployment yet: `ferro device-group deployment create`"
                )
            })?
        }
    };
    Ok((tenant, group, deployment))
}

/// An image ID given with `--image` (or `--images`).
fn image_id(given: &str) -> Result<ImageId> {
    given
        .trim()
        .parse()
        .map_err(|_| anyhow!("--image {given:?} is not an image ID (a UUID; `ferro image list`)"))
}

/// An OS feed given with `--feed`.
fn feed(given: &str) -> Result<OsFeed> {
    given
        .parse()
        .map_err(|_| anyhow!("--feed {given:?}: use Retail or RetailEval"))
}

/// Deployments list their images as objects; show them as `name version (imageId)`, in the
/// JSON output too.
fn summarise_deployment(deployment: &Deployment) -> Result<Value> {
    let mut value = serde_json::to_value(deployment)?;
    value["images"] = deployment
        .images
        .iter()
        .map(|i| match i.deleted_at {
            None => format!("{} {} ({})", i.name, i.version, i.image_id),
            Some(at) => format!(
                "{} {} ({}, deleted {})",
                i.name,
                i.version,
                i.image_id,
                crate::output::timestamp(at)
            ),
        })
        .collect();
    Ok(value)
}

/// Runs `upload` with a progress bar over the file's size.
fn upload<T>(
    file: &Path,
    upload: impl FnOnce(Box<dyn Fn(u64) + Send>) -> Result<T, ferro_client::ClientError>,
) -> Result<T> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let bar = progress::bytes_bar(size, "Uploading");
    let tick = bar.clone();
    let answer = upload(Box::new(move |done| tick.set_position(done)));
    bar.finish_and_clear();
    Ok(answer?)
}

/// Runs `download` into `destination` with a progress bar once the size is known.
fn download(
    destination: &Path,
    download: impl FnOnce(&dyn Fn(u64, Option<u64>)) -> Result<u64, ferro_client::ClientError>,
) -> Result<()> {
    let bar = progress::bytes_bar(0, "Downloading");
    let bytes = download(&|done, total| {
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
            let added = upload(&image, |progress| {
                client.upload_image(tenant, &image, progress)
            })
            .with_context(|| format!("cannot add the image {}", image.display()))?;
            emit(output, &JsonView::new(&added, IMAGE_FIELDS)?)
        }
        ImageCommand::Show { image, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let shown = client.get_image(tenant, image_id(&image)?)?;
            emit(output, &JsonView::new(&shown, IMAGE_FIELDS)?)
        }
        ImageCommand::Delete { image, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let deleted = client.delete_image(tenant, image_id(&image)?)?;
            eprintln!(
                "Deleted image {} ({} bytes freed from the tenant's image storage).",
                deleted.id, deleted.package_size
            );
            emit(output, &JsonView::new(&deleted, IMAGE_FIELDS)?)
        }
        ImageCommand::List { tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let images = all_pages(|continuation| {
                client.list_images(
                    tenant,
                    &ImageQuery {
                        component_id: None,
                        limit: None,
                        continuation,
                    },
                )
            })?;
            emit(output, &JsonView::new(&images, IMAGE_LIST_FIELDS)?)
        }
        ImageCommand::Download {
            image,
            destination,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let image = image_id(&image)?;
            download(&destination, |progress| {
                client.download_image(tenant, image, &destination, progress)
            })
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
            let added = client.add_developer_key(
                tenant,
                &RegisterSigningKeyRequest {
                    public_key_pem: pem,
                    name: name.unwrap_or(default_name),
                },
            )?;
            emit(output, &JsonView::new(&added, KEY_FIELDS)?)
        }
        DeveloperKeyCommand::List { tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let keys = all_pages(|c| client.list_developer_keys(tenant, &page(c)))?;
            emit(output, &JsonView::new(&keys, KEY_FIELDS)?)
        }
        DeveloperKeyCommand::Delete { key_id, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            client.delete_developer_key(tenant, &key_id)?;
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
            let query = PublishOsReleaseQuery {
                feed: self::feed(&feed)?,
            };
            let published = upload(&image, |progress| {
                client.publish_os_release(&query, &image, progress)
            })
            .with_context(|| format!("cannot publish {}", image.display()))?;
            emit(output, &JsonView::new(&published, OS_RELEASE_FIELDS)?)
        }
        OsReleaseCommand::List { feed } => {
            let feed = feed.as_deref().map(self::feed).transpose()?;
            let releases = all_pages(|continuation| {
                client.list_os_releases(&OsReleaseQuery {
                    feed,
                    limit: None,
                    continuation,
                })
            })?;
            emit(output, &JsonView::new(&releases, OS_RELEASE_FIELDS)?)
        }
        OsReleaseCommand::Download { image, destination } => {
            let image = image_id(&image)?;
            download(&destination, |progress| {
                client.download_os_release(image, &destination, progress)
            })
        }
        OsReleaseCommand::Promote { image } => {
            let promoted = client.promote_os_release(image_id(&image)?)?;
            emit(output, &JsonView::new(&promoted, OS_RELEASE_FIELDS)?)
        }
        OsReleaseCommand::Revoke { image } => {
            let revoked = client.revoke_os_release(image_id(&image)?)?;
            emit(output, &JsonView::new(&revoked, OS_RELEASE_FIELDS)?)
        }
        OsReleaseCommand::ShowFeeds => {
            let feeds = client.list_os_feeds()?;
            emit(output, &JsonView::new(&feeds, OS_FEED_FIELDS)?)
        }
        OsReleaseCommand::SetMinimumSecurityVersion {
            feed,
            security_version,
        } => {
            let policy = client.set_os_feed_policy(
                self::feed(&feed)?,
                &SetOsFeedPolicyRequest {
                    minimum_security_version: security_version,
                },
            )?;
            emit(output, &JsonView::new(&policy, OS_FEED_FIELDS)?)
        }
        OsReleaseCommand::Key(OsReleaseKeyCommand::Add { public_key, name }) => {
            let (pem, default_name) = public_key_pem(public_key.as_deref())?;
            let added = client.add_os_release_key(&RegisterSigningKeyRequest {
                public_key_pem: pem,
                name: name.unwrap_or(default_name),
            })?;
            emit(output, &JsonView::new(&added, KEY_FIELDS)?)
        }
        OsReleaseCommand::Key(OsReleaseKeyCommand::List) => {
            let keys = all_pages(|c| client.list_os_release_keys(&page(c)))?;
            emit(output, &JsonView::new(&keys, KEY_FIELDS)?)
        }
        OsReleaseCommand::Key(OsReleaseKeyCommand::Delete { key_id }) => {
            client.delete_os_release_key(&key_id)?;
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
            let image_ids = images
                .iter()
                .map(|i| image_id(i))
                .collect::<Result<Vec<_>>>()?;
            let rollout = match (waves, wave_wait_minutes, max_failure_percent) {
                (Some(waves), Some(minutes), Some(max_failure_percent)) => {
                    let seconds = minutes.checked_mul(60).and_then(|s| i64::try_from(s).ok());
                    let wave_wait_seconds = seconds.ok_or_else(|| {
                        anyhow!("--wave-wait-minutes {minutes}: at most 43200 (30 days)")
                    })?;
                    Some(RolloutRequest {
                        waves,
                        wave_wait_seconds,
                        max_failure_percent,
                    })
                }
                _ => None,
            };
            let created = client.create_deployment(
                tenant,
                group,
                &CreateDeploymentRequest { image_ids, rollout },
            )?;
            emit(
                output,
                &JsonView::of_value(summarise_deployment(&created)?, DEPLOYMENT_FIELDS),
            )
        }
        DeploymentCommand::List {
            device_group,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let group = resolve_group(&client, tenant, &device_group)?;
            let deployments = all_pages(|c| client.list_deployments(tenant, group, &page(c)))?;
            emit(
                output,
                &JsonView::of_value(
                    deployments
                        .iter()
                        .map(summarise_deployment)
                        .collect::<Result<Value>>()?,
                    DEPLOYMENT_FIELDS,
                ),
            )
        }
        DeploymentCommand::ShowRollout(args) => {
            let (tenant, group, deployment) = rollout_target(&session, &client, &args)?;
            let status = client.get_rollout(tenant, group, deployment)?;
            emit(output, &status)
        }
        DeploymentCommand::Pause(args) => {
            let (tenant, group, deployment) = rollout_target(&session, &client, &args)?;
            let status = client.pause_rollout(tenant, group, deployment)?;
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
            let (tenant, group, deployment) = rollout_target(&session, &client, &args)?;
            let status = client.resume_rollout(tenant, group, deployment)?;
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
