//! `ferro hardware-definition generate-header | test-header`: Rust constants for app authors,
//! generated from a hardware definition (the counterpart of azsphere's C headers).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ferro_manifest::{HardwareDefinition, generate_rust_module};
use serde::Serialize;

use crate::cli::{HardwareDefinitionCommand, HeaderArgs};
use crate::output::{OutputFormat, Render, emit, property_table};

pub fn run(command: HardwareDefinitionCommand, output: OutputFormat) -> Result<()> {
    match command {
        HardwareDefinitionCommand::GenerateHeader(args) => generate_header(&args, output),
        HardwareDefinitionCommand::TestHeader(args) => test_header(&args, output),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HeaderReport {
    hardware_definition: String,
    header_file: PathBuf,
    peripherals: usize,
    up_to_date: bool,
}

impl Render for HeaderReport {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Hardware definition", self.hardware_definition.clone()),
            ("Header file", self.header_file.display().to_string()),
            ("Peripherals", self.peripherals.to_string()),
            ("Up to date", self.up_to_date.to_string()),
        ])
    }
}

/// Loads the definition and renders its module; returns the report skeleton and the text.
fn render(args: &HeaderArgs) -> Result<(HeaderReport, String)> {
    let file = &args.hardware_definition_file;
    let definition = HardwareDefinition::load(file, &args.hardware_definitions)
        .with_context(|| format!("cannot load the hardware definition {}", file.display()))?;
    // The file name alone, so that the output does not depend on where it was run from.
    let source_name = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    let text = generate_rust_module(&definition, &source_name);
    let report = HeaderReport {
        hardware_definition: definition.name().to_string(),
        header_file: destination(args)?,
        peripherals: definition.peripherals().len(),
        up_to_date: true,
    };
    Ok((report, text))
}

/// `--destination`, or `inc/hw/<stem>.rs` beside the definition, where azsphere puts its C header.
fn destination(args: &HeaderArgs) -> Result<PathBuf> {
    if let Some(path) = &args.destination {
        return Ok(path.clone());
    }
    let file = &args.hardware_definition_file;
    let stem = file
        .file_stem()
        .with_context(|| format!("{} has no file name", file.display()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    Ok(dir.join("inc").join("hw").join(stem).with_extension("rs"))
}

fn generate_header(args: &HeaderArgs, output: OutputFormat) -> Result<()> {
    let (report, text) = render(args)?;
    if let Some(parent) = report
        .header_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the folder {}", parent.display()))?;
    }
    std::fs::write(&report.header_file, text)
        .with_context(|| format!("cannot write {}", report.header_file.display()))?;
    emit(output, &report)
}

fn test_header(args: &HeaderArgs, output: OutputFormat) -> Result<()> {
    let (mut report, expected) = render(args)?;
    let found = match std::fs::read_to_string(&report.header_file) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read {}", report.header_file.display()));
        }
    };
    report.up_to_date = found.as_deref() == Some(expected.as_str());
    emit(output, &report)?;
    if !report.up_to_date {
        bail!(
            "{} is {} for {}: run `ferro hardware-definition generate-header --hardware-definition-file {}`{}",
            report.header_file.display(),
            if found.is_some() {
                "out of date"
            } else {
                "missing"
            },
            args.hardware_definition_file.display(),
            args.hardware_definition_file.display(),
            args.destination
                .as_ref()
                .map(|d| format!(" --destination {}", d.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}
