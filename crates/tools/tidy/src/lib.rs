//! `ferro-tidy` (tests only, never shipped) checks the rules ARCHITECTURE.md states about the
//! workspace's shape, in the manner of rust-analyzer's tidy tests: each rule is a line of
//! ARCHITECTURE.md starting `Architecture Invariant:` followed by its check's name in backticks,
//! and each check here is one function over a [`Tree`] (what `cargo metadata` resolves, plus the
//! manifests' lints and the libraries' sources). `tests/tidy.rs` runs every check on the real
//! tree, shows each one failing on a doctored copy, and fails when a line has no check or a check
//! no line, so the document and the test cannot drift apart.
//!
//! It depends on no Ferrosphere crate (it reads them as data) and on nothing but serde_json and
//! toml; nothing depends on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The prefix of every rule line in ARCHITECTURE.md.
pub const INVARIANT_PREFIX: &str = "Architecture Invariant:";

/// How a dependency is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepKind {
    /// `[dependencies]`.
    Normal,
    /// `[build-dependencies]`.
    Build,
    /// `[dev-dependencies]`.
    Dev,
}

/// A dependency a manifest declares (optional ones included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dep {
    /// The package name.
    pub name: String,
    /// Its kind.
    pub kind: DepKind,
}

/// A workspace member.
#[derive(Clone, Debug)]
pub struct Package {
    /// Its name (`ferro-boot`).
    pub name: String,
    /// Its directory relative to the workspace root (`crates/device/boot`).
    pub dir: String,
    /// What its manifest declares.
    pub deps: Vec<Dep>,
    /// Whether it has a binary target.
    pub has_bin: bool,
    /// The library's source files (all of `src/` but `main.rs` and `src/bin/`) with their text;
    /// empty for a package without a library. The `lib.rs` comes first.
    pub lib_sources: Vec<(PathBuf, String)>,
    /// Whether its manifest has `[lints] workspace = true`.
    pub inherits_workspace_lints: bool,
    /// Its own `[lints.rust] unsafe_code` level, when it sets one.
    pub unsafe_code_lint: Option<String>,
}

/// A resolved dependency graph (`cargo metadata`'s `resolve`, host platform only).
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Package ID to package name and version.
    pub names: BTreeMap<String, String>,
    /// Package ID to the IDs it uses as a normal or build dependency.
    pub edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// The package IDs of `name`'s closure (itself included) over normal and build edges.
    pub fn closure(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = self
            .names
            .iter()
            .filter(|(_, n)| n.split(' ').next() == Some(name))
            .map(|(id, _)| id)
            .collect();
        while let Some(id) = stack.pop() {
            if seen.insert(id.clone()) {
                stack.extend(self.edges.get(id).into_iter().flatten());
            }
        }
        seen
    }

    /// The names of `name`'s closure.
    pub fn closure_names(&self, name: &str) -> BTreeSet<String> {
        self.closure(name)
            .iter()
            .filter_map(|id| self.names.get(id))
            .map(|n| n.split(' ').next().unwrap_or_default().to_string())
            .collect()
    }
}

/// Everything the checks look at.
#[derive(Clone, Debug)]
pub struct Tree {
    /// The workspace members.
    pub packages: Vec<Package>,
    /// The graph with the workspace's default features.
    pub graph: Graph,
    /// The graph with `--features ferro-boot/tpm`.
    pub graph_tpm: Graph,
    /// Whether `[workspace.lints.rust] unsafe_code = "forbid"`.
    pub workspace_forbids_unsafe: bool,
}

/// Run `cargo metadata` in `root` (with `extra` arguments) and parse it.
pub fn cargo_metadata(root: &Path, extra: &[&str]) -> Result<serde_json::Value, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let host = host_triple()?;
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--locked"])
        // Only the host's dependencies: what runs here, and nothing to download for other
        // platforms (so it works offline).
        .args(["--filter-platform", &host])
        .args(extra)
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata output: {e}"))
}

fn host_triple() -> Result<String, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .ok_or_else(|| "rustc -vV names no host".to_string())
}

fn str_of<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key).and_then(|s| s.as_str()).unwrap_or_default()
}

/// The resolved graph of one `cargo metadata` output.
pub fn graph_of(meta: &serde_json::Value) -> Graph {
    let mut graph = Graph::default();
    for p in meta["packages"].as_array().into_iter().flatten() {
        graph.names.insert(
            str_of(p, "id").to_string(),
            format!("{} {}", str_of(p, "name"), str_of(p, "version")),
        );
    }
    for node in meta["resolve"]["nodes"].as_array().into_iter().flatten() {
        let used: BTreeSet<String> = node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null() || k["kind"].as_str() == Some("build"))
            })
            .map(|d| str_of(d, "pkg").to_string())
            .collect();
        graph.edges.insert(str_of(node, "id").to_string(), used);
    }
    graph
}

/// Load the real tree at `root` (the workspace root).
pub fn load(root: &Path) -> Result<Tree, String> {
    let root = &root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let meta = cargo_metadata(root, &[])?;
    let meta_tpm = cargo_metadata(root, &["--features", "ferro-boot/tpm"])?;
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .collect();
    let mut packages = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        if !members.contains(str_of(p, "id")) {
            continue;
        }
        let manifest = PathBuf::from(str_of(p, "manifest_path"));
        let dir = manifest.parent().unwrap_or(root);
        let deps = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| Dep {
                name: str_of(d, "name").to_string(),
                kind: match d["kind"].as_str() {
                    Some("dev") => DepKind::Dev,
                    Some("build") => DepKind::Build,
                    _ => DepKind::Normal,
                },
            })
            .collect();
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        let kind_is = |t: &serde_json::Value, k: &str| {
            t["kind"].as_array().into_iter().flatten().any(|x| x == k)
        };
        let has_bin = targets.iter().any(|t| kind_is(t, "bin"));
        let lib_sources = match targets.iter().find(|t| kind_is(t, "lib")) {
            Some(lib) => library_sources(Path::new(str_of(lib, "src_path")))?,
            None => Vec::new(),
        };
        let manifest_text = std::fs::read_to_string(&manifest)
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        let manifest_toml: toml::Table = manifest_text
            .parse()
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        let inherits_workspace_lints = manifest_toml
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(|w| w.as_bool())
            == Some(true);
        let unsafe_code_lint = manifest_toml
            .get("lints")
            .and_then(|l| l.get("rust"))
            .and_then(|r| r.get("unsafe_code"))
            .and_then(|u| {
                u.as_str()
                    .or_else(|| u.get("level").and_then(|l| l.as_str()))
            })
            .map(str::to_string);
        packages.push(Package {
            unsafe_code_lint,
            name: str_of(p, "name").to_string(),
            dir: dir
                .strip_prefix(root)
                .unwrap_or(dir)
                .to_string_lossy()
                .into_owned(),
            deps,
            has_bin,
            lib_sources,
            inherits_workspace_lints,
        });
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    let root_manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .map_err(|e| format!("Cargo.toml: {e}"))?
        .parse()
        .map_err(|e| format!("Cargo.toml: {e}"))?;
    let workspace_forbids_unsafe = root_manifest
        .get("workspace")
        .and_then(|w| w.get("lints"))
        .and_then(|l| l.get("rust"))
        .and_then(|r| r.get("unsafe_code"))
        .and_then(|u| {
            u.as_str()
                .or_else(|| u.get("level").and_then(|l| l.as_str()))
        })
        == Some("forbid");
    Ok(Tree {
        packages,
        graph: graph_of(&meta),
        graph_tpm: graph_of(&meta_tpm),
        workspace_forbids_unsafe,
    })
}

/// `lib.rs` first, then every other `.rs` file under its directory but `main.rs` and `bin/`.
fn library_sources(lib_rs: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut out = vec![(lib_rs.to_path_buf(), read(lib_rs)?)];
    let src = lib_rs.parent().unwrap_or(Path::new("."));
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                if path != src.join("bin") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                && path != lib_rs
                && path != src.join("main.rs")
            {
                let text = read(&path)?;
                out.push((path, text));
            }
        }
    }
    Ok(out)
}

/// What ARCHITECTURE.md states.
#[derive(Clone, Debug, Default)]
pub struct Doc {
    /// Each invariant line's check name, with the line.
    pub invariants: Vec<(String, String)>,
    /// The dependency direction: crate to the Ferrosphere crates it depends on.
    pub dependency_direction: BTreeMap<String, BTreeSet<String>>,
    /// The bound on ferro-boot's closure: without and with feature `tpm`.
    pub boot_closure_limit: Option<(usize, usize)>,
}

/// Parse ARCHITECTURE.md. The `dependency-direction` line is followed by one list item per
/// crate on one line each, "- `crate`: `dep`, `dep`" (or "nothing"); the first two numbers of
/// the `boot-closure` line are the bound without and with feature `tpm`.
pub fn parse_doc(text: &str) -> Result<Doc, String> {
    let mut doc = Doc::default();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix(INVARIANT_PREFIX) else {
            continue;
        };
        let name = backticked(rest)
            .into_iter()
            .next()
            .ok_or_else(|| format!("line {}: no `check-name` after the prefix", i + 1))?;
        doc.invariants.push((name.clone(), line.trim().to_string()));
        match name.as_str() {
            "dependency-direction" => {
                for item in lines[i + 1..]
                    .iter()
                    .map(|l| l.trim_start())
                    .take_while(|l| l.starts_with("- `"))
                {
                    let mut names = backticked(item).into_iter();
                    let krate = names.next().unwrap_or_default();
                    doc.dependency_direction.insert(krate, names.collect());
                }
            }
            "boot-closure" => {
                let numbers: Vec<usize> = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse().ok())
                    .collect();
                match numbers.as_slice() {
                    [plain, tpm, ..] => doc.boot_closure_limit = Some((*plain, *tpm)),
                    _ => return Err(format!("line {}: boot-closure needs two numbers", i + 1)),
                }
            }
            _ => {}
        }
    }
    Ok(doc)
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// A check: the violations it finds (empty when the rule holds).
pub type Check = fn(&Tree, &Doc) -> Vec<String>;

/// Every check, by the name its ARCHITECTURE.md line carries.
pub const CHECKS: &[(&str, Check)] = &[
    ("dependency-direction", dependency_direction),
    ("no-cloud-below", no_cloud_below),
    ("only-runtime-links-wasmtime", only_runtime_links_wasmtime),
    ("only-trust-links-tpm-stack", only_trust_links_tpm_stack),
    ("only-service-links-sql", only_service_links_sql),
    ("anyhow-only-in-binaries", anyhow_only_in_binaries),
    ("boot-closure", boot_closure),
    ("boot-tcb-contents", boot_tcb_contents),
    ("lib-docs", lib_docs),
    ("unsafe-forbidden", unsafe_forbidden),
    ("device-http-through-client", device_http_through_client),
];

/// Invariant lines without a check, and checks without a line (and duplicate lines).
pub fn drift(doc: &Doc) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, _) in &doc.invariants {
        if !seen.insert(name.as_str()) {
            out.push(format!("invariant `{name}` is stated twice"));
        }
        if !CHECKS.iter().any(|(c, _)| c == name) {
            out.push(format!(
                "invariant `{name}` has no check in crates/tools/tidy"
            ));
        }
    }
    for (name, _) in CHECKS {
        if !seen.contains(name) {
            out.push(format!(
                "check `{name}` has no `{INVARIANT_PREFIX}` line in ARCHITECTURE.md"
            ));
        }
    }
    out
}

fn ours(tree: &Tree) -> BTreeSet<&str> {
    tree.packages.iter().map(|p| p.name.as_str()).collect()
}

/// Each crate depends (normal and build dependencies) on exactly the Ferrosphere crates the
/// document lists for it, and every crate is listed.
pub fn dependency_direction(tree: &Tree, doc: &Doc) -> Vec<String> {
    let ours = ours(tree);
    let mut out = Vec::new();
    for p in &tree.packages {
        let actual: BTreeSet<String> = p
            .deps
            .iter()
            .filter(|d| d.kind != DepKind::Dev && ours.contains(d.name.as_str()))
            .map(|d| d.name.clone())
            .collect();
        match doc.dependency_direction.get(&p.name) {
            None => out.push(format!(
                "{} is not in the dependency direction list",
                p.name
            )),
            Some(stated) if *stated != actual => out.push(format!(
                "{} depends on {actual:?}, ARCHITECTURE.md says {stated:?}",
                p.name
            )),
            Some(_) => {}
        }
    }
    for listed in doc.dependency_direction.keys() {
        if !ours.contains(listed.as_str()) {
            out.push(format!("{listed} is listed but is not a workspace crate"));
        }
    }
    out
}

/// Nothing under `crates/device/` or `crates/shared/` depends (in any kind) on a crate under
/// `crates/cloud/`.
pub fn no_cloud_below(tree: &Tree, _: &Doc) -> Vec<String> {
    let cloud: BTreeSet<&str> = tree
        .packages
        .iter()
        .filter(|p| p.dir.starts_with("crates/cloud/"))
        .map(|p| p.name.as_str())
        .collect();
    tree.packages
        .iter()
        .filter(|p| p.dir.starts_with("crates/device/") || p.dir.starts_with("crates/shared/"))
        .flat_map(|p| {
            p.deps
                .iter()
                .filter(|d| cloud.contains(d.name.as_str()))
                .map(move |d| {
                    format!(
                        "{} ({}) depends on {} of crates/cloud/",
                        p.name, p.dir, d.name
                    )
                })
        })
        .collect()
}

fn only_declared_by(tree: &Tree, allowed: &str, banned: impl Fn(&str) -> bool) -> Vec<String> {
    tree.packages
        .iter()
        .filter(|p| p.name != allowed)
        .flat_map(|p| {
            p.deps
                .iter()
                .filter(|d| banned(&d.name))
                .map(move |d| format!("{} declares {} (only {allowed} may)", p.name, d.name))
        })
        .collect()
}

/// Only `ferro-runtime` declares wasmtime (or a wasmtime-* crate).
pub fn only_runtime_links_wasmtime(tree: &Tree, _: &Doc) -> Vec<String> {
    only_declared_by(tree, "ferro-runtime", |n| {
        n == "wasmtime" || n.starts_with("wasmtime-")
    })
}

/// Only `ferro-trust` declares the TPM stack (tss-esapi).
pub fn only_trust_links_tpm_stack(tree: &Tree, _: &Doc) -> Vec<String> {
    only_declared_by(tree, "ferro-trust", |n| n.starts_with("tss-esapi"))
}

/// Only `ferro-service` declares sqlx or rusqlite (or SQLite itself).
pub fn only_service_links_sql(tree: &Tree, _: &Doc) -> Vec<String> {
    only_declared_by(tree, "ferro-service", |n| {
        n == "sqlx" || n.starts_with("sqlx-") || n == "rusqlite" || n == "libsqlite3-sys"
    })
}

/// How a source uses anyhow: a path into it or its macro (spelt in two pieces so that this
/// file does not match itself).
const ANYHOW_USES: [&str; 2] = [concat!("anyhow", "::"), concat!("anyhow", "!")];

/// anyhow is declared only by packages with a binary, and no library source uses it.
pub fn anyhow_only_in_binaries(tree: &Tree, _: &Doc) -> Vec<String> {
    let mut out = Vec::new();
    for p in &tree.packages {
        if !p.has_bin
            && p.deps
                .iter()
                .any(|d| d.name == "anyhow" && d.kind != DepKind::Dev)
        {
            out.push(format!("{} has no binary but depends on anyhow", p.name));
        }
        for (path, text) in &p.lib_sources {
            if ANYHOW_USES.iter().any(|u| text.contains(u)) {
                out.push(format!("{}: a library source uses anyhow", path.display()));
            }
        }
    }
    out
}

/// ferro-boot's closure is within the stated bound, without and with feature `tpm`.
pub fn boot_closure(tree: &Tree, doc: &Doc) -> Vec<String> {
    let Some((plain, tpm)) = doc.boot_closure_limit else {
        return vec!["ARCHITECTURE.md states no bound on ferro-boot's closure".to_string()];
    };
    let mut out = Vec::new();
    for (graph, limit, what) in [
        (&tree.graph, plain, ""),
        (&tree.graph_tpm, tpm, " with feature tpm"),
    ] {
        let n = graph.closure("ferro-boot").len();
        if n == 0 {
            out.push("ferro-boot is not in the graph".to_string());
        } else if n > limit {
            out.push(format!(
                "ferro-boot's closure{what} has {n} crates, more than the {limit} ARCHITECTURE.md allows"
            ));
        }
    }
    out
}

/// What the boot TCB must never contain (async runtimes, HTTP, TLS, wasmtime, databases,
/// certificate generation, X.509 parsing, a second P-256 or SHA-2 implementation beside
/// ferro-signing's `ring`, and our crates above it).
pub const NOT_IN_BOOT_TCB: &[&str] = &[
    "tokio",
    "async-std",
    "futures-util",
    "hyper",
    "reqwest",
    "axum",
    "rustls",
    "wasmtime",
    "sqlx",
    "rusqlite",
    "rcgen",
    "x509-parser",
    "x509-cert",
    "p256",
    "ecdsa",
    "sha2",
    "ferro-pki",
    "ferro-device",
    "ferro-service",
    "ferro-runtime",
    "ferro-tls",
    "ferro-attest",
    "ferro-update",
];

/// ferro-boot's closure (with feature `tpm` too) holds nothing of [`NOT_IN_BOOT_TCB`].
pub fn boot_tcb_contents(tree: &Tree, _: &Doc) -> Vec<String> {
    let mut found = tree.graph.closure_names("ferro-boot");
    found.extend(tree.graph_tpm.closure_names("ferro-boot"));
    NOT_IN_BOOT_TCB
        .iter()
        .filter(|n| found.contains(**n))
        .map(|n| format!("ferro-boot's closure contains {n}"))
        .collect()
}

/// Every library's `lib.rs` opens with a `//!` doc.
pub fn lib_docs(tree: &Tree, _: &Doc) -> Vec<String> {
    tree.packages
        .iter()
        .filter_map(|p| p.lib_sources.first().map(|(path, text)| (p, path, text)))
        .filter(|(_, _, text)| !text.starts_with("//!"))
        .map(|(p, path, _)| {
            format!(
                "{}: {} does not open with a //! doc",
                p.name,
                path.display()
            )
        })
        .collect()
}

/// The crates allowed `unsafe`, each in one module of its library (ARCHITECTURE.md's
/// `unsafe-forbidden` line names them): `ferro-mailbox` views shared memory as atomics.
pub const UNSAFE_EXCEPTIONS: &[(&str, &str)] = &[("ferro-mailbox", "src/raw.rs")];

/// Whether a source line (not a comment) uses `unsafe` code or lifts the lint.
fn uses_unsafe(line: &str) -> bool {
    let code = line.trim_start();
    !code.starts_with("//")
        && [
            "unsafe {",
            "unsafe fn",
            "unsafe impl",
            "unsafe extern",
            "allow(unsafe_code)",
        ]
        .iter()
        .any(|t| code.contains(t))
}

/// The workspace forbids `unsafe_code` and every crate inherits the workspace lints, but the
/// named exceptions: those deny it in their own `[lints]` and use it in their one module only
/// (and lift the lint only for it, in `lib.rs`).
pub fn unsafe_forbidden(tree: &Tree, _: &Doc) -> Vec<String> {
    let mut out = Vec::new();
    if !tree.workspace_forbids_unsafe {
        out.push("[workspace.lints.rust] does not set unsafe_code = \"forbid\"".to_string());
    }
    for p in tree.packages.iter().filter(|p| !p.inherits_workspace_lints) {
        let Some((_, module)) = UNSAFE_EXCEPTIONS.iter().find(|(n, _)| *n == p.name) else {
            out.push(format!("{} does not have [lints] workspace = true", p.name));
            continue;
        };
        if p.unsafe_code_lint.as_deref() != Some("deny") {
            out.push(format!(
                "{}: an unsafe exception must set [lints.rust] unsafe_code = \"deny\"",
                p.name
            ));
        }
        for (path, text) in &p.lib_sources {
            let is_module = path.ends_with(module);
            let is_lib = path.ends_with("src/lib.rs");
            for (i, line) in text.lines().enumerate() {
                let lifts_for_module = is_lib
                    && line.contains("allow(unsafe_code)")
                    && text.lines().nth(i + 1).is_some_and(|next| {
                        let m = module.trim_start_matches("src/").trim_end_matches(".rs");
                        next.trim() == format!("mod {m};")
                    });
                if uses_unsafe(line) && !is_module && !lifts_for_module {
                    out.push(format!(
                        "{}:{}: unsafe outside {} ({} may use it there only)",
                        path.display(),
                        i + 1,
                        module,
                        p.name
                    ));
                }
            }
        }
    }
    out
}

/// The one use of reqwest a device library may make: building the HTTPS client (its TLS through
/// the root of trust) that it hands to `ferro_client::DeviceClient`.
const DEVICE_REQWEST_USE: &str = "reqwest::Client::builder()";

/// Under `crates/device/`, library sources name reqwest only to build a client: requests,
/// statuses and headers are `ferro_client::DeviceClient`'s.
pub fn device_http_through_client(tree: &Tree, _: &Doc) -> Vec<String> {
    let mut out = Vec::new();
    for p in tree
        .packages
        .iter()
        .filter(|p| p.dir.starts_with("crates/device/"))
    {
        for (path, text) in &p.lib_sources {
            let other = text
                .match_indices("reqwest::")
                .filter(|(at, _)| {
                    !text
                        .get(*at..)
                        .is_some_and(|r| r.starts_with(DEVICE_REQWEST_USE))
                })
                .count();
            if other > 0 {
                out.push(format!(
                    "{}: uses reqwest for more than building a client ({other} time(s)); \
                     requests go through ferro_client::DeviceClient",
                    path.display()
                ));
            }
        }
    }
    out
}
