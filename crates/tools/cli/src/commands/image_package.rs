//! `ferro image-package ...`: pack apps, board configs and OS bundles into signed image
//! packages; show and verify them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use ferro_image::{
    AppPackageManifest, ImageError, ImageMetadata, PackOptions, Version, inspect, pack_application,
    pack_board_config, pack_os, verify,
};
use ferro_manifest::{AppManifest, HardwareDefinition};
use ferro_rfc6979::{Deterministic as _, DeterministicSigner};
use ferro_signing::KeyId;
use indicatif::ProgressBar;
use serde::Serialize;

use super::keys;
use crate::cli::{
    ImagePackageCommand, PackApplicationArgs, PackBoardConfigArgs, PackOsArgs, ShowArgs,
    VerifyArgs, VersionArgs,
};
use crate::output::{OutputFormat, Render, emit, property_table};
use crate::progress;

pub fn run(command: ImagePackageCommand, output: OutputFormat) -> Result<()> {
    match command {
        ImagePackageCommand::PackApplication(args) => pack_application_cmd(&args, output),
        ImagePackageCommand::PackBoardConfig(args) => pack_board_config_cmd(&args, output),
        ImagePackageCommand::PackOs(args) => pack_os_cmd(&args, output),
        ImagePackageCommand::Show(args) => show(&args, output),
        ImagePackageCommand::Verify(args) => verify_cmd(&args, output),
    }
}

/// What `show`, `verify` and the pack commands print about a package.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    image_package: Option<PathBuf>,
    image_id: String,
    component_id: String,
    name: String,
    image_type: String,
    version: String,
    security_version: u32,
    target_runtime_version: u32,
    debug_build: bool,
    payload_size: u64,
    payload_sha256: String,
    signing_key_id: String,
    /// `verified`, `signed` (just packed) or `not checked` (show).
    signature: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry_point: Option<String>,
}

impl ImageReport {
    fn new(
        path: &Path,
        metadata: &ImageMetadata,
        signer: KeyId,
        signature: &'static str,
    ) -> ImageReport {
        ImageReport {
            image_package: Some(path.to_path_buf()),
            image_id: metadata.image_id.to_string(),
            component_id: metadata.component_id.to_string(),
            name: metadata.name.clone(),
            image_type: metadata.image_type.to_string(),
            version: metadata.version.to_string(),
            security_version: metadata.security_version,
            target_runtime_version: metadata.target_runtime_version,
            debug_build: metadata.debug,
            payload_size: metadata.payload_size,
            payload_sha256: hex::encode(metadata.payload_sha256),
            signing_key_id: signer.to_string(),
            signature,
            entry_point: metadata.app.as_ref().map(|app| app.entry_point.clone()),
        }
    }
}

impl Render for ImageReport {
    fn table(&self) -> comfy_table::Table {
        let mut rows = vec![
            (
                "Image package",
                self.image_package
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("Image ID", self.image_id.clone()),
            ("Component ID", self.component_id.clone()),
            ("Name", self.name.clone()),
            ("Image type", self.image_type.clone()),
            ("Version", self.version.clone()),
            ("Security version", self.security_version.to_string()),
            (
                "Target runtime version",
                self.target_runtime_version.to_string(),
            ),
            ("Debug build", self.debug_build.to_string()),
            ("Payload size", format!("{} bytes", self.payload_size)),
            ("Payload SHA-256", self.payload_sha256.clone()),
            ("Signing key ID", self.signing_key_id.clone()),
            ("Signature", self.signature.to_string()),
        ];
        if let Some(entry_point) = &self.entry_point {
            rows.insert(5, ("Entry point", entry_point.clone()));
        }
        property_table(rows)
    }
}

fn pack_options(version: &str, security_version: u32, debug: bool) -> Result<PackOptions> {
    let version: Version = version
        .parse()
        .map_err(|reason| anyhow!("--version {version:?}: {reason} (e.g. 1.2.0)"))?;
    Ok(PackOptions {
        version,
        security_version,
        target_runtime_version: 1,
        debug,
        image_id: None,
    })
}

fn versioned_options(args: &VersionArgs, debug: bool) -> Result<PackOptions> {
    pack_options(&args.version, args.security_version, debug)
}

/// Reads, resolves and checks the manifest of a package directory.
fn resolve_manifest(args: &PackApplicationArgs) -> Result<AppPackageManifest> {
    let manifest_path = args.package_directory.join("app_manifest.json");
    let bytes = std::fs::read(&manifest_path).with_context(|| {
        format!(
            "cannot read {}: --package-directory must hold the app's app_manifest.json",
            manifest_path.display()
        )
    })?;
    let manifest = AppManifest::parse(&bytes)
        .with_context(|| format!("{} is not a valid app manifest", manifest_path.display()))?;
    let hardware = match &args.target_definition_filename {
        Some(file) => Some(load_target_definition(file, &args.hardware_definitions)?),
        None => None,
    };
    let resolved = manifest.resolve(hardware.as_ref()).with_context(|| {
        format!(
            "{} does not fit {}",
            manifest_path.display(),
            args.target_definition_filename
                .as_ref()
                .map(|f| format!("the hardware definition {}", f.display()))
                .unwrap_or_else(|| "without a hardware definition".to_string())
        )
    })?;
    Ok(AppPackageManifest {
        component_id: resolved.component_id(),
        name: resolved.name().to_string(),
        entry_point: resolved.entry_point().to_string(),
        json_bytes: resolved.json_bytes(),
        is_real_time: resolved.is_real_time(),
    })
}

/// Finds `--target-definition-filename` as given, or in the `--hardware-definitions` folders.
fn load_target_definition(file: &Path, search_dirs: &[PathBuf]) -> Result<HardwareDefinition> {
    let found = std::iter::once(file.to_path_buf())
        .chain(search_dirs.iter().map(|dir| dir.join(file)))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "the target hardware definition {} is not in any --hardware-definitions folder ({})",
                file.display(),
                if search_dirs.is_empty() {
                    "none given".to_string()
                } else {
                    search_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        })?;
    HardwareDefinition::load(&found, search_dirs)
        .with_context(|| format!("cannot load the hardware definition {}", found.display()))
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Signs with the chosen key, runs `pack` under a spinner and reports the packed image.
fn pack_and_report(
    signing_key: Option<&Path>,
    source: &Path,
    destination: &Path,
    output: OutputFormat,
    pack: impl FnOnce(&DeterministicSigner) -> Result<ImageMetadata, ImageError>,
) -> Result<()> {
    let signer = keys::signing_key(signing_key)?;
    let bar = spinner(format!("Packing {}", source.display()));
    // RFC 6979 signatures: the same inputs and image ID give the same package bytes.
    let packed = pack(&signer.deterministic());
    bar.finish_and_clear();
    let metadata = packed.with_context(|| {
        format!(
            "cannot pack {} into {}",
            source.display(),
            destination.display()
        )
    })?;
    emit(
        output,
        &ImageReport::new(destination, &metadata, signer.key_id(), "signed"),
    )
}

/// A guardian's register map (`register_map.json` in the package directory, when there is one;
/// docs/guardian.md) must have no errors and use only a transport the manifest grants; every
/// error is named with its JSON path. The app checks it again at start.
fn check_register_map(package_directory: &Path, manifest: &AppPackageManifest) -> Result<()> {
    let path = package_directory.join("register_map.json");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let grants = ferro_registermap::Grants::from_manifest_json(&manifest.json_bytes)?;
    ferro_registermap::RegisterMap::parse(&bytes, Some(&grants)).map_err(|errors| {
        let listed: Vec<String> = errors.0.iter().map(|issue| format!("  {issue}")).collect();
        anyhow!(
            "{} has {} error(s); nothing was packed:\n{}",
            path.display(),
            errors.0.len(),
            listed.join("\n")
        )
    })?;
    Ok(())
}

fn pack_application_cmd(args: &PackApplicationArgs, output: OutputFormat) -> Result<()> {
    let manifest = resolve_manifest(args)?;
    check_register_map(&args.package_directory, &manifest)?;
    let options = versioned_options(&args.version, args.debug_build)?;
    pack_and_report(
        args.signing.signing_key.as_deref(),
        &args.package_directory,
        &args.destination,
        output,
        |signer| {
            pack_application(
                &args.package_directory,
                &manifest,
                &options,
                signer,
                &args.destination,
            )
        },
    )
}

fn pack_board_config_cmd(args: &PackBoardConfigArgs, output: OutputFormat) -> Result<()> {
    let options = versioned_options(&args.version, false)?;
    pack_and_report(
        args.signing.signing_key.as_deref(),
        &args.board_config_file,
        &args.destination,
        output,
        |signer| pack_board_config(&args.board_config_file, &options, signer, &args.destination),
    )
}

fn pack_os_cmd(args: &PackOsArgs, output: OutputFormat) -> Result<()> {
    let options = pack_options(&args.version, args.security_version, false)?;
    pack_and_report(
        args.signing.signing_key.as_deref(),
        &args.os_directory,
        &args.destination,
        output,
        |signer| pack_os(&args.os_directory, &options, signer, &args.destination),
    )
}

fn open_package(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open the image package {}", path.display()))
}

fn show(args: &ShowArgs, output: OutputFormat) -> Result<()> {
    let file = open_package(&args.image_package)?;
    let image = inspect(file).with_context(|| {
        format!(
            "{} is not a readable image package",
            args.image_package.display()
        )
    })?;
    emit(
        output,
        &ImageReport::new(
            &args.image_package,
            &image.claimed_metadata,
            image.claimed_signer,
            "not checked (use `ferro image-package verify`)",
        ),
    )
}

fn verify_cmd(args: &VerifyArgs, output: OutputFormat) -> Result<()> {
    let trusted = keys::trusted_keys(&args.public_key)?;
    let file = open_package(&args.image_package)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress::bytes_bar(size, "Verifying");
    let verified = verify(bar.wrap_read(file), &trusted, &mut std::io::sink());
    bar.finish_and_clear();
    let verified = verified.with_context(|| {
        format!(
            "{} failed verification: do not install it",
            args.image_package.display()
        )
    })?;
    emit(
        output,
        &ImageReport::new(
            &args.image_package,
            verified.metadata(),
            verified.signer(),
            "verified",
        ),
    )
}
