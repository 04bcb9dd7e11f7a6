//! `ferro telemetry verify`: the cloud side's check of a signed telemetry batch
//! (`ferro_provenance::verify_batch`), offline.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow};
use ferro_provenance::{ExpectedProvenance, TenantAnchors, VerifiedBatch, verify_batch};
use serde::Serialize;

use crate::cli::{TelemetryCommand, TelemetryVerifyArgs};
use crate::output::{OutputFormat, Render, emit, property_table, timestamp};

pub fn run(command: TelemetryCommand, output: OutputFormat) -> Result<()> {
    match command {
        TelemetryCommand::Verify(args) => verify(&args, output),
    }
}

/// What verified: every field was covered by the device's signature.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifiedReport {
    verified: bool,
    device_id: String,
    tenant_id: uuid::Uuid,
    component_id: uuid::Uuid,
    image_id: uuid::Uuid,
    development: bool,
    boot_id: uuid::Uuid,
    sequence: u64,
    signed_at: String,
    tenant_ca_serial: String,
    payload_bytes: usize,
    /// The payload as text when it is UTF-8 (JSON batches), else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
}

impl From<&VerifiedBatch> for VerifiedReport {
    fn from(batch: &VerifiedBatch) -> VerifiedReport {
        VerifiedReport {
            verified: true,
            device_id: batch.device_id().to_string(),
            tenant_id: batch.tenant_id(),
            component_id: batch.component_id(),
            image_id: batch.image_id(),
            development: batch.development(),
            boot_id: batch.boot_id(),
            sequence: batch.sequence(),
            signed_at: timestamp(batch.signed_at()),
            tenant_ca_serial: batch.ca_serial().to_owned(),
            payload_bytes: batch.payload().len(),
            payload: std::str::from_utf8(batch.payload()).ok().map(str::to_owned),
        }
    }
}

impl Render for VerifiedReport {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Verified", self.verified.to_string()),
            ("Device", self.device_id.clone()),
            ("Tenant", self.tenant_id.to_string()),
            ("Component", self.component_id.to_string()),
            ("Image", self.image_id.to_string()),
            ("Development image", self.development.to_string()),
            ("Boot", self.boot_id.to_string()),
            ("Sequence", self.sequence.to_string()),
            ("Signed at", self.signed_at.clone()),
            ("Tenant CA serial", self.tenant_ca_serial.clone()),
            ("Payload bytes", self.payload_bytes.to_string()),
        ])
    }
}

fn verify(args: &TelemetryVerifyArgs, output: OutputFormat) -> Result<()> {
    let pem = std::fs::read_to_string(&args.tenant_ca)
        .with_context(|| format!("cannot read {}", args.tenant_ca.display()))?;
    let anchors = TenantAnchors::from_pem(&pem)
        .with_context(|| format!("{} is not a tenant CA bundle", args.tenant_ca.display()))?;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let now = match &args.at {
        Some(at) => time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("--at {at:?} is not an RFC 3339 time"))?,
        None => time::OffsetDateTime::now_utc(),
    };
    let expected = ExpectedProvenance {
        image_ids: args.image_ids.iter().copied().collect(),
        component_id: args.component_id,
        device_ids: (!args.devices.is_empty())
            .then(|| args.devices.iter().copied().collect::<BTreeSet<_>>()),
        allow_development: args.allow_development,
    };
    let batch = verify_batch(&bytes, &anchors, now, &expected).map_err(|error| {
        anyhow!(
            "{} refused ({}): {error}",
            args.file.display(),
            error.code()
        )
    })?;
    if let Some(path) = &args.payload_out {
        ferro_files::write_atomic(path, batch.payload(), ferro_files::Mode::PUBLIC)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    emit(output, &VerifiedReport::from(&batch))
}
