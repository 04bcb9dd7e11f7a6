//! The service's layering, checked over its source (in the manner of rust-analyzer's tidy
//! tests): HTTP is the edge. Nothing below the routes names a route module (`crate::routes` is
//! named only by `app.rs`, which builds the router from them), and no route module imports
//! another: what two routes share lives in a domain or datastore module under both
//! (ARCHITECTURE.md, "The service"). And SQL runs only in `src/datastore/` and the database
//! layer under it, but for the files whose SQL has not moved yet ([`SQL_NOT_YET_MOVED`]).

use std::path::{Path, PathBuf};

/// Files that may name `crate::routes`: the crate root declares it, `app.rs` builds the router.
const EDGE: &[&str] = &["lib.rs", "app.rs"];

/// Files outside `datastore/` and `db/` that still run SQL themselves. The service's SQL moves
/// into the datastore resource by resource (ARCHITECTURE.md, `datastore/mod.rs`): take a file
/// off this list when its SQL has moved. A file not on it that runs SQL fails the check, and so
/// does a file on it that no longer does (the list only shrinks).
const SQL_NOT_YET_MOVED: &[&str] = &[];

/// Whether a line of code runs SQL itself: a sqlx query, or one of `Db`'s own read and write
/// paths (the datastore's tools).
fn runs_sql(code: &str) -> bool {
    [
        "sqlx::query",
        ".read_optional(",
        ".read_all(",
        ".write_atomic(",
    ]
    .iter()
    .any(|p| code.contains(p))
}

/// Whether `rel` (relative to `src/`) is the datastore or the database layer under it.
fn is_storage(rel: &str) -> bool {
    rel.starts_with("datastore/") || rel.starts_with("db/") || rel == "db.rs"
}

/// Where `text` (the file `rel`, relative to `src/`, `/`-separated) breaks the layering: one
/// line per offence, `file:line: what`. Comments are not code and are skipped, as is a file's
/// trailing `#[cfg(test)]` module (its `super::` is the file's own module).
fn violations(rel: &str, text: &str) -> Vec<String> {
    let in_routes = rel.starts_with("routes/") && rel != "routes/mod.rs";
    let mut found = Vec::new();
    for (n, code) in code_lines(text) {
        let at = format!("{rel}:{n}");
        if runs_sql(code) && !is_storage(rel) && !SQL_NOT_YET_MOVED.contains(&rel) {
            found.push(format!(
                "{at}: SQL outside the datastore (move it into a `datastore/` module)"
            ));
        }
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

/// The lines of a source file that are code, with their numbers (from 1): comments are not
/// code and are skipped (a line's trailing comment is cut), as is a file's trailing
/// `#[cfg(test)]` module (its `super::` is the file's own module).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim_start()))
        .take_while(|(_, code)| !code.starts_with("#[cfg(test)]"))
        .filter(|(_, code)| !code.starts_with("//"))
        .map(|(n, code)| (n, code.split("//").next().unwrap_or_default()))
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

/// The Rust sources under `src/` (or under its folder `under`), sorted: each as its path
/// relative to `src/` (`/`-separated) and its text.
fn sources(under: &str) -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join(under), &mut files);
    files.sort();
    files
        .iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&src)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(f).expect("read source file"))
        })
        .collect()
}

#[test]
fn nothing_below_the_routes_imports_a_route_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources("");
    assert!(
        files.iter().any(|(rel, _)| rel == "routes/devices.rs"),
        "the scan must see the route modules (found {} files)",
        files.len()
    );
    let mut found = Vec::new();
    for (rel, text) in &files {
        found.extend(violations(rel, text));
    }
    assert!(
        found.is_empty(),
        "move what these share into a domain or datastore module:\n{}",
        found.join("\n")
    );
    // The list of files whose SQL has not moved yet names only files that still run SQL.
    let stale: Vec<&str> = SQL_NOT_YET_MOVED
        .iter()
        .copied()
        .filter(|rel| {
            let text = std::fs::read_to_string(src.join(rel)).unwrap_or_default();
            !code_lines(&text).any(|(_, code)| runs_sql(code))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "these files run no SQL any more: take them off SQL_NOT_YET_MOVED: {stale:?}"
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
        // SQL outside the datastore.
        ("routes/me.rs", "let r = sqlx::query(\"SELECT 1\")", 1),
        ("users.rs", "state.db.read_optional(SQL, &args, map)", 1),
        ("login_guard.rs", "db.write_atomic(&[stmt]).await?;", 1),
        // Allowed: the datastore and the database layer, comments.
        ("datastore/users.rs", "sqlx::query(\"SELECT 1\")", 0),
        ("db/lite.rs", "db.read_all(SQL, &args, map)", 0),
        ("db.rs", "sqlx::query(\"SELECT 1\")", 0),
        ("routes/me.rs", "// sqlx::query(\"SELECT 1\")", 0),
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

/// Datastore modules whose functions may take a tenant as a stored-form `&str`, each for a
/// reason: a tenant being created, roles (read by the authorization check itself, by an
/// invitation's acceptance before its user holds a role, by an operator deleting a user).
const TENANT_STR_ALLOWED: &[&str] = &[
    "datastore/tenants.rs",
    "datastore/roles.rs",
    // Claims and transfers: a claim acts for the claiming tenant, a transfer for either side.
    "datastore/devices.rs",
    "datastore/ownership.rs",
    // Tenant CAs: authentication reads them before anyone is authorized in the tenant.
    "datastore/tenant_cas.rs",
];

/// Where a datastore module (`rel` under `src/`) breaks its rules: it knows nothing of HTTP
/// (no `ApiError`, `axum`, status codes), and a tenant-scoped function takes the caller's
/// `TenantScope`, never a bare tenant ID (`&TenantId`, or a `tid`/`tenant_id` string).
fn datastore_violations(rel: &str, text: &str) -> Vec<String> {
    if !rel.starts_with("datastore/") {
        return Vec::new();
    }
    let mut found = Vec::new();
    for (n, code) in code_lines(text) {
        let at = format!("{rel}:{n}");
        for http in ["ApiError", "ApiResult", "axum", "StatusCode"] {
            if code.contains(http) {
                found.push(format!(
                    "{at}: the datastore names `{http}` (HTTP belongs to the edge)"
                ));
            }
        }
        if code.contains(": &TenantId") {
            found.push(format!(
                "{at}: takes `&TenantId`; take the caller's `&TenantScope`"
            ));
        }
        if !TENANT_STR_ALLOWED.contains(&rel)
            && (code.contains("tid: &str") || code.contains("tenant_id: &str"))
        {
            found.push(format!(
                "{at}: takes a tenant ID string; take the caller's `&TenantScope`"
            ));
        }
    }
    found
}

#[test]
fn the_datastore_knows_no_http_and_takes_scopes() {
    let files = sources("datastore");
    assert!(files.len() >= 5, "the scan must see the datastore modules");
    let mut found = Vec::new();
    for (rel, text) in &files {
        found.extend(datastore_violations(rel, text));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_datastore_check_finds_offences() {
    let cases: &[(&str, &str, usize)] = &[
        ("datastore/devices.rs", "use crate::error::ApiResult;", 1),
        (
            "datastore/devices.rs",
            "pub async fn get(db: &Db, tenant: &TenantId) {}",
            1,
        ),
        (
            "datastore/images.rs",
            "pub async fn get(db: &Db, tid: &str) {}",
            1,
        ),
        (
            "datastore/tenants.rs",
            "pub async fn exists_in(tx: &mut Tx, tid: &str) {}",
            0,
        ),
        (
            "datastore/devices.rs",
            "pub async fn get(db: &Db, scope: &TenantScope) {}",
            0,
        ),
        ("datastore/devices.rs", "/// not an ApiError", 0),
        ("routes/devices.rs", "use crate::error::ApiResult;", 0),
    ];
    for (rel, text, want) in cases {
        assert_eq!(
            datastore_violations(rel, text).len(),
            *want,
            "{rel}: {text}"
        );
    }
}
