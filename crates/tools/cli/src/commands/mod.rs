//! One module per command group; each handler returns a value that `output::emit` renders.

mod account;
mod attached;
mod devices;
mod hardware_definition;
mod image_package;
mod images;
mod keys;
mod ownership;
mod product;
mod telemetry;
mod tenant;

use anyhow::Result;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<()> {
    let output = cli.output;
    match cli.command {
        Command::ImagePackage(command) => image_package::run(command, output),
        Command::HardwareDefinition(command) => hardware_definition::run(command, output),
        Command::Login(args) => account::login(&args, output),
        Command::Logout => account::logout(),
        Command::ShowUser => account::show_user(output),
        Command::User(command) => account::user(command, output),
        Command::ApiToken(command) => account::api_token(command, output),
        Command::Tenant(command) => tenant::tenant(command, output),
        Command::Role(command) => tenant::role(command, output),
        Command::Product(command) => product::product(command, output),
        Command::DeviceGroup(command) => product::device_group(command, output),
        Command::Image(command) => images::image(command, output),
        Command::DeveloperKey(command) => images::developer_key(command, output),
        Command::OsRelease(command) => images::os_release(command, output),
        Command::Device(command) => devices::device(command, output),
        Command::Manufacturing(command) => devices::manufacturing(command, output),
        Command::CaCertificate(command) => devices::ca_certificate(command, output),
        Command::Telemetry(command) => telemetry::run(command, output),
    }
}
