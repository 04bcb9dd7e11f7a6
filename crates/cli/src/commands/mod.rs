//! One module per command group; each handler returns a value that `output::emit` renders.

mod hardware_definition;
mod image_package;
mod keys;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::ImagePackage(command) => image_package::run(command, cli.output),
        Command::HardwareDefinition(command) => hardware_definition::run(command, cli.output),
    }
}
