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
        OutputFormat::Json => print_line(serde_json::to_string_pretty(value)?),
        OutputFormat::Table => print_line(value.table()),
    }
}

/// Standard output was closed before everything was written (`ferro ... | head`): the command
/// ends quietly, as Unix tools do, with the status a shell reports for SIGPIPE.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// The exit status of a command whose output pipe was closed: 128 + SIGPIPE (13).
pub const STDOUT_CLOSED_STATUS: u8 = 141;

/// Writes one line to standard output. A closed pipe is [`StdoutClosed`], not a panic.
pub fn print_line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
            _ => anyhow::Error::new(e).context("cannot write to standard output"),
        })
}

/// A time as RFC 3339 (UTC), as the JSON output shows it.
pub fn timestamp(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
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

/// A typed answer shown through chosen fields: its JSON (`--output json`) is the wire shape, as
/// the service sent it; its table shows an object as (property, value) rows, an array as a table
/// with one column per field. Fields are dotted paths into the JSON (`osFeed`, `image.version`).
#[derive(Debug)]
pub struct JsonView {
    value: serde_json::Value,
    fields: &'static [(&'static str, &'static str)],
}

impl JsonView {
    /// The view of a wire value (or a list of them).
    pub fn new<T: Serialize>(
        value: &T,
        fields: &'static [(&'static str, &'static str)],
    ) -> anyhow::Result<JsonView> {
        Ok(JsonView {
            value: serde_json::to_value(value)?,
            fields,
        })
    }

    /// The view of an already shaped JSON value (a summary the CLI made).
    pub fn of_value(
        value: serde_json::Value,
        fields: &'static [(&'static str, &'static str)],
    ) -> JsonView {
        JsonView { value, fields }
    }
}

impl Serialize for JsonView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

fn field_text(value: &serde_json::Value, path: &str) -> String {
    let found = path
        .split('.')
        .try_fold(value, |v, key| v.get(key))
        .unwrap_or(&serde_json::Value::Null);
    match found {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

impl Render for JsonView {
    fn table(&self) -> Table {
        match &self.value {
            serde_json::Value::Array(items) => {
                let mut table = new_table();
                table.set_header(
                    self.fields
                        .iter()
                        .map(|(header, _)| *header)
                        .collect::<Vec<_>>(),
                );
                for item in items {
                    table.add_row(
                        self.fields
                            .iter()
                            .map(|(_, path)| field_text(item, path))
                            .collect::<Vec<_>>(),
                    );
                }
                table
            }
            value => property_table(
                self.fields
                    .iter()
                    .map(|(header, path)| (*header, field_text(value, path))),
            ),
        }
    }
}
