//! The service's layering, checked over its source (in the manner of rust-analyzer's tidy
//! tests): HTTP is the edge. Nothing below the routes names a route module (`crate::routes` is
//! named only by `app.rs`, which builds the router from them), and no route module imports
//! another: what two routes share lives in a domain or datastore module under both
//! (ARCHITECTURE.md, "The service").

use std::path::{Path, PathBuf};

/// Files that may name `crate::routes`: the crate root declares it, `app.rs` builds the router.
const EDGE: &[&str] = &["lib.rs", "app.rs"];

/// The code of `text`, line by line with its number: comments left out, and nothing from a
/// trailing `#[cfg(test)]` module on (its `super::` is the file's own module).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim_start()))
        .take_while(|(_, code)| !code.starts_with("#[cfg(test)]"))
        .filter(|(_, code)| !code.starts_with("//"))
        .map(|(n, code)| (n, code.split("//").next().unwrap_or_default()))
}

/// Where `text` (the file `rel`, relative to `src/`, `/`-separated) breaks the layering: one
/// line per offence, `file:line: what`. Comments are not code and are skipped, as is a file's
/// trailing `#[cfg(test)]` module (its `super::` is the file's own module).
fn violations(rel: &str, text: &str) -> Vec<String> {
    let in_routes = rel.starts_with("routes/") && rel != "routes/mod.rs";
    let mut found = Vec::new();
    for (n, code) in code_lines(text) {
        let at = format!("{rel}:{n}");
        if in_routes {
            if code.contains("crate::routes") || code.contains("super::") {
                found.push(format!("{at}: a route module imports another route module"));
            }
        } else if !EDGE.contains(&rel)
            && (code.contains("routes::") || code.contains("crate::routes"))
        {
            found.push(format!(
                "{at}: a module below the routes names a route module"
            ));
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn nothing_below_the_routes_imports_a_route_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("routes/devices.rs")),
        "the scan must see the route modules (found {} files)",
        files.len()
    );
    let mut found = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&src)
            .expect("under src/")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f).expect("read source file");
        found.extend(violations(&rel, &text));
    }
    assert!(
        found.is_empty(),
        "move what these share into a domain or datastore module:\n{}",
        found.join("\n")
    );
}

/// The checker itself: each kind of offence is found, and what is allowed is not flagged.
#[test]
fn the_layering_check_finds_offences() {
    let cases: &[(&str, &str, usize)] = &[
        ("state.rs", "pub ca: Arc<crate::routes::ca::CaCache>,", 1),
        ("setup.rs", "use crate::routes::users::insert_user;", 1),
        (
            "routes/ownership.rs",
            "use crate::routes::devices::item;",
            1,
        ),
        ("routes/ownership.rs", "use super::devices::item;", 1),
        // Allowed: the edge, comments, a route module's own tests, domain imports.
        ("app.rs", "use crate::routes::{ca, devices};", 0),
        ("state.rs", "/// (`crate::routes::ca`)", 0),
        (
            "routes/ca.rs",
            "use crate::tenant_ca::cas_rotated; // not routes::ca",
            0,
        ),
        (
            "routes/ca.rs",
            "#[cfg(test)]\nmod tests {\n    use super::*;\n}",
            0,
        ),
    ];
    for (rel, text, want) in cases {
        assert_eq!(violations(rel, text).len(), *want, "{rel}: {text}");
    }
}

/// Modules whose SQL moved into `src/datastore/`: they reach the database only through it (no
/// `sqlx`, no statement text). A module joins the list when its last statement moves.
const SQL_FREE: &[&str] = &[
    "appraisal.rs",
    "claims.rs",
    "device_events.rs",
    "routes/attestation.rs",
    "routes/capabilities.rs",
    "routes/device_events.rs",
    "routes/devices.rs",
    "routes/error_report.rs",
    "routes/registrations.rs",
];

/// Where `text` (the file `rel`) holds SQL of its own: `sqlx::` or a string that starts a
/// statement. Comments and a trailing `#[cfg(test)]` module are skipped.
fn sql_violations(rel: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, code) in code_lines(text) {
        let statement = ["\"SELECT", "\"INSERT", "\"UPDATE", "\"DELETE", "\"WITH "]
            .iter()
            .any(|s| code.contains(s));
        if code.contains("sqlx::") || statement {
            found.push(format!(
                "{rel}:{n}: SQL outside the datastore (move it into src/datastore/)"
            ));
        }
    }
    found
}

#[test]
fn converted_modules_reach_the_database_only_through_the_datastore() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for rel in SQL_FREE {
        let text = std::fs::read_to_string(src.join(rel)).expect("a listed module exists");
        found.extend(sql_violations(rel, &text));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The SQL checker itself.
#[test]
fn the_sql_check_finds_statements() {
    let cases: &[(&str, usize)] = &[
        ("let r = sqlx::query(\"SELECT 1\").fetch_one(db).await?;", 1),
        ("    \"UPDATE devices SET blocked = $1 WHERE id = $2\",", 1),
        ("const X: &str = \"DELETE FROM t\";", 1),
        (
            "let rows = store::report(&state.db, &scope, since, n).await?;",
            0,
        ),
        ("// sqlx::query(\"SELECT 1\") in a comment", 0),
        (
            "#[cfg(test)]\nmod tests { fn f() { sqlx::query(\"SELECT 1\"); } }",
            0,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(sql_violations("x.rs", text).len(), *want, "{text}");
    }
}
