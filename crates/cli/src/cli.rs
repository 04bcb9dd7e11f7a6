//! The command tree, in `azsphere`'s shape: `ferro <group> <command> --long-option VALUE`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "ferro",
    version,
    about = "Ferrosphere: build, sign and manage software for secure IoT devices",
    long_about = None
)]
pub struct Cli {
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Log what the command does (to standard error); repeat for more detail.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, inspect and verify image packages.
    #[command(subcommand)]
    ImagePackage(ImagePackageCommand),
    /// Work with hardware definitions.
    #[command(subcommand)]
    HardwareDefinition(HardwareDefinitionCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImagePackageCommand {
    /// Pack an application folder (app_manifest.json, its entry point and resources) into a signed image package.
    PackApplication(PackApplicationArgs),
    /// Pack a board configuration file into a signed image package.
    PackBoardConfig(PackBoardConfigArgs),
    /// Pack an OS bundle folder (bin/ferro-device and what it needs) into a signed image package.
    PackOs(PackOsArgs),
    /// Show an image package's metadata, without checking its signature.
    Show(ShowArgs),
    /// Verify an image package: its signature, metadata and every payload byte.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct SigningArgs {
    /// PKCS#8 PEM private key to sign with. Default: your test-signing key, made on first use in
    /// your configuration directory (devices accept it only with the appDevelopment capability).
    #[arg(long, value_name = "KEY")]
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Image version, MAJOR.MINOR.PATCH.
    #[arg(long, value_name = "VERSION", default_value = "1.0.0")]
    pub version: String,
    /// Security version: devices refuse images below the highest they have accepted (anti-rollback).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub security_version: u32,
}

#[derive(Debug, Args)]
pub struct PackApplicationArgs {
    /// Folder holding app_manifest.json, the entry point it names and read-only resources.
    #[arg(long, value_name = "DIR")]
    pub package_directory: PathBuf,
    /// Where to write the image package.
    #[arg(long, value_name = "FILE")]
    pub destination: PathBuf,
    /// Folders to search for the target hardware definition and its imports.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub hardware_definitions: Vec<PathBuf>,
    /// The hardware definition that `$NAME` peripheral values in the manifest resolve through.
    #[arg(long, value_name = "FILE")]
    pub target_definition_filename: Option<PathBuf>,
    /// Mark the image as a debug build.
    #[arg(long)]
    pub debug_build: bool,
    #[command(flatten)]
    pub version: VersionArgs,
    #[command(flatten)]
    pub signing: SigningArgs,
}

#[derive(Debug, Args)]
pub struct PackBoardConfigArgs {
    /// The board configuration (JSON) to pack.
    #[arg(long, value_name = "FILE")]
    pub board_config_file: PathBuf,
    /// Where to write the image package.
    #[arg(long, value_name = "FILE")]
    pub destination: PathBuf,
    #[command(flatten)]
    pub version: VersionArgs,
    #[command(flatten)]
    pub signing: SigningArgs,
}

#[derive(Debug, Args)]
pub struct PackOsArgs {
    /// The OS bundle folder; it must hold bin/ferro-device.
    #[arg(long, value_name = "DIR")]
    pub os_directory: PathBuf,
    /// OS version, MAJOR.MINOR.PATCH.
    #[arg(long, value_name = "VERSION")]
    pub version: String,
    /// Security version: devices refuse OS bundles below the highest they have accepted.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub security_version: u32,
    /// Where to write the image package.
    #[arg(long, value_name = "FILE")]
    pub destination: PathBuf,
    #[command(flatten)]
    pub signing: SigningArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The image package to show.
    #[arg(long, value_name = "FILE")]
    pub image_package: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image package to verify.
    #[arg(long, value_name = "FILE")]
    pub image_package: PathBuf,
    /// Public keys (SPKI PEM) to trust; repeat for several. Default: your test-signing key.
    #[arg(long, value_name = "PEM")]
    pub public_key: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum HardwareDefinitionCommand {
    /// Write a Rust module of constants for the peripherals of a hardware definition.
    GenerateHeader(HeaderArgs),
    /// Check that the generated Rust module of a hardware definition is up to date.
    TestHeader(HeaderArgs),
}

#[derive(Debug, Args)]
pub struct HeaderArgs {
    /// The hardware definition (JSON).
    #[arg(long, value_name = "FILE")]
    pub hardware_definition_file: PathBuf,
    /// Extra folders to search for its imports.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub hardware_definitions: Vec<PathBuf>,
    /// The Rust module to write or check. Default: inc/hw/<name>.rs beside the definition, as azsphere does for C headers.
    #[arg(long, value_name = "FILE")]
    pub destination: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
