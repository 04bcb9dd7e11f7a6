//! ARCHITECTURE.md's invariants on the real tree, each check shown to fail on a doctored copy of
//! it, and the document and the checks kept in step.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferro_tidy::{CHECKS, Dep, DepKind, Doc, Tree, drift, load, parse_doc};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| load(&root()).expect("cargo metadata of the workspace"))
}

fn doc_text() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

fn doc() -> Doc {
    parse_doc(&doc_text()).expect("ARCHITECTURE.md parses")
}

fn check(name: &str) -> ferro_tidy::Check {
    CHECKS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("no check {name}"))
}

/// Runs `name` on a copy of the real tree changed by `doctor`; returns its violations.
fn doctored(name: &str, doctor: impl FnOnce(&mut Tree)) -> Vec<String> {
    let mut t = tree().clone();
    doctor(&mut t);
    check(name)(&t, &doc())
}

fn package<'a>(t: &'a mut Tree, name: &str) -> &'a mut ferro_tidy::Package {
    t.packages
        .iter_mut()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no package {name}"))
}

fn add_dep(t: &mut Tree, from: &str, to: &str, kind: DepKind) {
    package(t, from).deps.push(Dep {
        name: to.to_string(),
        kind,
    });
}

fn assert_fails(violations: Vec<String>, expected: &str) {
    assert!(
        violations.iter().any(|v| v.contains(expected)),
        "expected a violation mentioning {expected:?}, got {violations:?}"
    );
}

#[test]
fn every_invariant_line_has_a_check_and_every_check_a_line() {
    let problems = drift(&doc());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn drift_is_found_both_ways() {
    let text = doc_text();
    let line = text
        .lines()
        .find(|l| l.contains("`lib-docs`"))
        .expect("the lib-docs line");
    let without = text.replace(line, "");
    assert_fails(
        drift(&parse_doc(&without).unwrap()),
        "check `lib-docs` has no",
    );
    let extra = format!("{text}\nArchitecture Invariant: `made-up`: nothing checks this.\n");
    assert_fails(
        drift(&parse_doc(&extra).unwrap()),
        "invariant `made-up` has no check",
    );
}

#[test]
fn the_tree_keeps_every_invariant() {
    let doc = doc();
    let mut all = Vec::new();
    for (name, check) in CHECKS {
        all.extend(
            check(tree(), &doc)
                .into_iter()
                .map(|v| format!("{name}: {v}")),
        );
    }
    assert!(all.is_empty(), "{all:#?}");
}

/// Each rule over declared dependencies, and one new dependency that breaks it: (check, from,
/// to, kind, a part of the violation it must report).
const NEW_EDGE_VIOLATIONS: &[(&str, &str, &str, DepKind, &str)] = &[
    (
        "dependency-direction",
        "ferro-signing",
        "ferro-pki",
        DepKind::Normal,
        "ferro-signing depends on",
    ),
    (
        "dependency-direction",
        "ferro-boot",
        "ferro-device",
        DepKind::Build,
        "ferro-boot depends on",
    ),
    (
        "no-cloud-below",
        "ferro-trust",
        "ferro-service",
        DepKind::Dev,
        "ferro-trust (crates/device/trust) depends on ferro-service",
    ),
    (
        "no-cloud-below",
        "ferro-wire",
        "ferro-service",
        DepKind::Normal,
        "ferro-wire (crates/shared/wire)",
    ),
    (
        "only-runtime-links-wasmtime",
        "ferro-device",
        "wasmtime",
        DepKind::Normal,
        "ferro-device declares wasmtime",
    ),
    (
        "only-trust-links-tpm-stack",
        "ferro-boot",
        "tss-esapi",
        DepKind::Normal,
        "ferro-boot declares tss-esapi",
    ),
    (
        "only-service-links-sql",
        "ferro-update",
        "rusqlite",
        DepKind::Normal,
        "ferro-update declares rusqlite",
    ),
    (
        "only-service-links-sql",
        "ferro-e2e",
        "sqlx",
        DepKind::Dev,
        "ferro-e2e declares sqlx",
    ),
    (
        "anyhow-only-in-binaries",
        "ferro-image",
        "anyhow",
        DepKind::Normal,
        "ferro-image has no binary",
    ),
];

#[test]
fn each_dependency_rule_fails_on_a_new_edge() {
    for (name, from, to, kind, expected) in NEW_EDGE_VIOLATIONS {
        let violations = doctored(name, |t| add_dep(t, from, to, *kind));
        assert!(
            violations.iter().any(|v| v.contains(expected)),
            "{name}: {from} -> {to} should report {expected:?}, got {violations:?}"
        );
    }
}

#[test]
fn dependency_direction_fails_on_a_missing_edge_and_ignores_dev_dependencies() {
    assert_fails(
        doctored("dependency-direction", |t| {
            package(t, "ferro-boot")
                .deps
                .retain(|d| d.name != "ferro-image")
        }),
        "ferro-boot depends on",
    );
    // Dev-dependencies are free (tests may use what they like).
    assert!(
        doctored("dependency-direction", |t| {
            add_dep(t, "ferro-signing", "ferro-pki", DepKind::Dev)
        })
        .is_empty()
    );
}

#[test]
fn anyhow_fails_in_a_library_with_a_binary() {
    // ferro-device has a binary, but its library must not use anyhow.
    assert_fails(
        doctored("anyhow-only-in-binaries", |t| {
            package(t, "ferro-device").lib_sources.push((
                "run.rs".into(),
                "fn f() -> anyhow::Result<()> { Ok(()) }".into(),
            ))
        }),
        "run.rs: a library source uses anyhow",
    );
}

#[test]
fn boot_closure_fails_when_the_tcb_grows() {
    // Doctored metadata: ferro-boot now uses tokio (and so its closure).
    let grow = |t: &mut Tree| {
        for graph in [&mut t.graph, &mut t.graph_tpm] {
            let boot = graph.closure("ferro-boot").into_iter().next();
            let heavy: Vec<String> = graph
                .names
                .iter()
                .filter(|(_, n)| n.starts_with("tokio ") || n.starts_with("x509-parser "))
                .map(|(id, _)| id.clone())
                .collect();
            assert!(
                !heavy.is_empty(),
                "tokio and x509-parser are in the workspace"
            );
            let boot_id = graph
                .names
                .iter()
                .find(|(_, n)| n.starts_with("ferro-boot "))
                .map(|(id, _)| id.clone())
                .expect("ferro-boot");
            assert!(boot.is_some());
            graph.edges.entry(boot_id).or_default().extend(heavy);
        }
    };
    assert_fails(doctored("boot-closure", grow), "more than the");
    assert_fails(
        doctored("boot-tcb-contents", grow),
        "ferro-boot's closure contains tokio",
    );
    assert_fails(doctored("boot-tcb-contents", grow), "contains x509-parser");
    // And a bound below today's size fails on the real tree.
    let mut tight = doc();
    tight.boot_closure_limit = Some((10, 10));
    assert_fails(check("boot-closure")(tree(), &tight), "more than the 10");
}

#[test]
fn lib_docs_fails_on_an_undocumented_library() {
    assert_fails(
        doctored("lib-docs", |t| {
            let lib = &mut package(t, "ferro-boot").lib_sources[0];
            lib.1 = format!("mod error;\n{}", lib.1);
        }),
        "ferro-boot",
    );
}

#[test]
fn unsafe_forbidden_fails_when_a_crate_or_the_workspace_opts_out() {
    assert_fails(
        doctored("unsafe-forbidden", |t| {
            package(t, "ferro-trust").inherits_workspace_lints = false
        }),
        "ferro-trust does not have [lints] workspace = true",
    );
    assert_fails(
        doctored("unsafe-forbidden", |t| t.workspace_forbids_unsafe = false),
        "unsafe_code",
    );
    // The one exception: unsafe in its named module only, and the lint denied.
    assert_fails(
        doctored("unsafe-forbidden", |t| {
            let p = package(t, "ferro-mailbox");
            let ring = p
                .lib_sources
                .iter_mut()
                .find(|(path, _)| path.ends_with("src/ring.rs"))
                .expect("ring.rs");
            ring.1
                .push_str("\nfn f() { unsafe { core::hint::unreachable_unchecked() } }\n");
        }),
        "unsafe outside src/raw.rs",
    );
    assert_fails(
        doctored("unsafe-forbidden", |t| {
            package(t, "ferro-mailbox").unsafe_code_lint = Some("allow".to_string())
        }),
        "ferro-mailbox: an unsafe exception must set",
    );
}

#[test]
fn device_http_fails_when_a_device_crate_makes_its_own_requests() {
    assert_fails(
        doctored("device-http-through-client", |t| {
            package(t, "ferro-device").lib_sources.push((
                "events.rs".into(),
                "fn f(r: &reqwest::Response) -> bool { r.status() == reqwest::StatusCode::OK }"
                    .into(),
            ))
        }),
        "events.rs: uses reqwest for more than building a client (2 time(s))",
    );
    // Building the client is what a device crate does.
    assert!(
        doctored("device-http-through-client", |t| {
            package(t, "ferro-attest").lib_sources.push((
                "net.rs".into(),
                "let c = reqwest::Client::builder();".into(),
            ))
        })
        .is_empty()
    );
}
