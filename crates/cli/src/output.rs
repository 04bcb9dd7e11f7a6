//! `--output table|json`: every command returns a value that renders both ways, so scripts get
//! stable JSON and people get a table, from one code path.

use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// A human-readable table.
    #[default]
    Table,
    /// JSON, for scripts; field names are stable.
    Json,
}

/// A command's result: serialisable for `--output json`, with a table for people.
pub trait Render: Serialize {
    fn table(&self) -> Table;
}

pub fn emit<T: Render>(format: OutputFormat, value: &T) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
        OutputFormat::Table => println!("{}", value.table()),
    }
    Ok(())
}

/// A table with the house style.
pub fn new_table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// A two-column table of (property, value) rows, for `show`-style results.
pub fn property_table<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> Table {
    let mut table = new_table();
    table.set_header(vec!["Property", "Value"]);
    for (name, value) in rows {
        table.add_row(vec![name.to_string(), value]);
    }
    table
}
