//! Built artifacts the tests run, checked against their sources before use, so that
//! `cargo test -p X` never silently runs old code: the workspace's binaries
//! (`target/debug/ferro-*`, built by another package than the test's) and the sample apps and
//! test guests (`apps/target/wasm32-wasip2/release/*.wasm`, built by the separate `apps`
//! workspace). A test of the same package as a binary uses `env!("CARGO_BIN_EXE_<name>")`
//! instead, which cargo builds before the test.
//!
//! Cargo writes beside every artifact a dep-info file (`<artifact>.d`, Makefile syntax) listing
//! every source file it was built from, path dependencies included. An artifact is fresh when it
//! is not older than any of them; cargo itself rebuilds on the same comparison, so running the
//! named command always makes a stale artifact fresh. Sources under `CARGO_HOME` (registry
//! crates, which cargo does not compare by time) and under the artifact's own target directory
//! (build-script output) are not compared.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The command that builds the sample apps and test guests.
pub const BUILD_APPS: &str =
    "cargo build --manifest-path apps/Cargo.toml --workspace --release --target wasm32-wasip2";

/// Why an artifact may not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// The artifact does not exist.
    Missing { artifact: PathBuf, build: String },
    /// Cargo's dep-info file beside it is missing or unreadable: freshness cannot be shown.
    NoDepInfo { artifact: PathBuf, build: String },
    /// A source it was built from is newer than it, or is gone.
    Stale {
        artifact: PathBuf,
        source: PathBuf,
        build: String,
    },
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Missing { artifact, build } => write!(
                f,
                "missing: {} does not exist: run `{build}` (scripts/test.sh does), then test again",
                artifact.display()
            ),
            Unusable::NoDepInfo { artifact, build } => write!(
                f,
                "stale: {} has no readable dep-info file beside it, so it cannot be shown to be \
                 current: run `{build}`, then test again",
                artifact.display()
            ),
            Unusable::Stale {
                artifact,
                source,
                build,
            } => write!(
                f,
                "stale: {} is older than its source {} (or that source is gone): run `{build}`, \
                 then test again",
                artifact.display(),
                source.display()
            ),
        }
    }
}

impl std::error::Error for Unusable {}

/// Checks that `artifact` exists and is not older than any source its dep-info file lists;
/// `build` is the command that rebuilds it, named in the error.
pub fn check_fresh(artifact: &Path, build: &str) -> Result<(), Unusable> {
    check_fresh_with_home(artifact, build, cargo_home().as_deref())
}

fn check_fresh_with_home(
    artifact: &Path,
    build: &str,
    cargo_home: Option<&Path>,
) -> Result<(), Unusable> {
    let built = match modified(artifact) {
        Some(time) => time,
        None => {
            return Err(Unusable::Missing {
                artifact: artifact.to_path_buf(),
                build: build.to_string(),
            });
        }
    };
    let no_dep_info = || Unusable::NoDepInfo {
        artifact: artifact.to_path_buf(),
        build: build.to_string(),
    };
    let dep_info =
        std::fs::read_to_string(artifact.with_extension("d")).map_err(|_| no_dep_info())?;
    let sources = dep_info_sources(&dep_info);
    if sources.is_empty() {
        return Err(no_dep_info());
    }
    let target_dir = target_dir_of(artifact);
    for source in sources {
        let skipped = [target_dir.as_deref(), cargo_home]
            .into_iter()
            .flatten()
            .any(|dir| source.starts_with(dir));
        if skipped {
            continue;
        }
        match modified(&source) {
            Some(time) if time <= built => {}
            _ => {
                return Err(Unusable::Stale {
                    artifact: artifact.to_path_buf(),
                    source,
                    build: build.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The source files of a dep-info file: every path after a `target:` rule head, with Makefile
/// escapes (`\ `, `\\`, `$$`) undone.
pub fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let mut tokens = Vec::new();
        let mut token = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if matches!(chars.peek(), Some(' ' | '\\' | '#')) => {
                    token.extend(chars.next());
                }
                '$' if chars.peek() == Some(&'$') => {
                    chars.next();
                    token.push('$');
                }
                ' ' | '\t' => {
                    if !token.is_empty() {
                        tokens.push(std::mem::take(&mut token));
                    }
                }
                _ => token.push(c),
            }
        }
        if !token.is_empty() {
            tokens.push(token);
        }
        // A rule: the targets end with a token that ends in ':'; the rest are its sources.
        if let Some(head) = tokens.iter().position(|t| t.ends_with(':')) {
            sources.extend(tokens[head + 1..].iter().map(PathBuf::from));
        }
    }
    sources
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The target directory an artifact lies in: the nearest ancestor named `target`.
fn target_dir_of(artifact: &Path) -> Option<PathBuf> {
    artifact
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(Path::to_path_buf)
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

/// Panics with the reason (and `note`) when `artifact` may not be used; returns it otherwise.
fn fresh_or_panic(artifact: PathBuf, build: &str, note: &str) -> PathBuf {
    if let Err(unusable) = check_fresh(&artifact, build) {
        panic!("{unusable}{note}");
    }
    artifact
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .canonicalize()
        .expect("the repository root")
}

/// The workspace's target directory for this build, found from the running test binary's own
/// location (`<target>/debug/deps/<test>`).
fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target/debug"))
}

/// A workspace binary of another package by name (`ferro`, `ferro-service`, `ferro-boot`, ...);
/// panics, naming the command to run, when it is missing or older than its sources.
pub fn binary(name: &str) -> PathBuf {
    fresh_or_panic(
        binaries_dir().join(name),
        &format!("cargo build --bin {name}"),
        " (add the --features of this test run; scripts/test.sh builds every binary with \
         `cargo build --workspace --features ...` before the tests)",
    )
}

/// The source directory of app `name`: a production app (`apps/<name>`, the guardian), a
/// sample (`apps/samples/<name>`) or a test guest (`apps/test-guests/<name>`).
pub fn app_dir(name: &str) -> PathBuf {
    let apps = repo_root().join("apps");
    [".", "samples", "test-guests"]
        .iter()
        .map(|group| apps.join(group).join(name))
        .find(|dir| dir.join("Cargo.toml").is_file())
        .unwrap_or_else(|| panic!("no app {name} in apps, apps/samples or apps/test-guests"))
}

/// Every app of `apps`, `apps/samples` and `apps/test-guests` with an `app_manifest.json`:
/// (name, directory).
pub fn apps_with_manifests() -> Vec<(String, PathBuf)> {
    let apps = repo_root().join("apps");
    let mut found = Vec::new();
    for group in [".", "samples", "test-guests"] {
        for entry in std::fs::read_dir(apps.join(group)).expect("apps directory") {
            let dir = entry.expect("apps directory entry").path();
            if dir.join("app_manifest.json").is_file() {
                let name = dir
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                found.push((name, dir));
            }
        }
    }
    found.sort();
    found
}

/// The built component of sample app or test guest `name`; panics, naming the command to run,
/// when it is missing or older than its sources (the app's, `sdk/`'s, `wit/`'s).
pub fn wasm_app(name: &str) -> PathBuf {
    fresh_or_panic(
        repo_root()
            .join("apps/target/wasm32-wasip2/release")
            .join(format!("{name}.wasm")),
        BUILD_APPS,
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set_mtime(path: &Path, time: SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(time))
            .expect("set mtime");
    }

    /// An artifact `target/app.wasm` built from `src/a.rs` and `src/b.rs`, and the state of the
    /// files before the check; the check's verdict, as data.
    #[test]
    fn staleness_is_decided_by_the_sources_cargo_listed() {
        enum Doctor {
            Nothing,
            SourceNewer,
            SourceGone,
            NoDepInfo,
            EmptyDepInfo,
            NoArtifact,
            RegistrySourceNewer,
        }
        let cases = [
            (Doctor::Nothing, None),
            (Doctor::SourceNewer, Some("stale: ")),
            (Doctor::SourceGone, Some("stale: ")),
            (Doctor::NoDepInfo, Some("stale: ")),
            (Doctor::EmptyDepInfo, Some("stale: ")),
            (Doctor::NoArtifact, Some("missing: ")),
            (Doctor::RegistrySourceNewer, None),
        ];
        for (doctor, expected) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let root = dir.path();
            let home = root.join("cargo-home");
            std::fs::create_dir_all(root.join("src")).expect("mkdir");
            std::fs::create_dir_all(root.join("target")).expect("mkdir");
            std::fs::create_dir_all(home.join("registry")).expect("mkdir");
            let artifact = root.join("target/app.wasm");
            let (a, b, dep) = (
                root.join("src/a b.rs"),
                root.join("src/b.rs"),
                home.join("registry/dep.rs"),
            );
            let built = SystemTime::now() - Duration::from_secs(60);
            for (path, age) in [(&a, 120), (&b, 90), (&dep, 100), (&artifact, 60)] {
                std::fs::write(path, b"x").expect("write");
                set_mtime(path, SystemTime::now() - Duration::from_secs(age));
            }
            let escape = |p: &Path| p.display().to_string().replace(' ', "\\ ");
            std::fs::write(
                artifact.with_extension("d"),
                format!(
                    "{}: {} {} {}\n",
                    escape(&artifact),
                    escape(&a),
                    escape(&b),
                    escape(&dep)
                ),
            )
            .expect("dep-info");
            match doctor {
                Doctor::Nothing => {}
                Doctor::SourceNewer => set_mtime(&b, built + Duration::from_secs(1)),
                Doctor::SourceGone => std::fs::remove_file(&a).expect("rm"),
                Doctor::NoDepInfo => {
                    std::fs::remove_file(artifact.with_extension("d")).expect("rm")
                }
                Doctor::EmptyDepInfo => {
                    std::fs::write(artifact.with_extension("d"), "").expect("write")
                }
                Doctor::NoArtifact => std::fs::remove_file(&artifact).expect("rm"),
                Doctor::RegistrySourceNewer => set_mtime(&dep, SystemTime::now()),
            }
            // The check reads CARGO_HOME from the environment; the test passes its own.
            let result = check_fresh_with_home(&artifact, "cargo build -p app", Some(&home));
            match (expected, result) {
                (None, Ok(())) => {}
                (Some(prefix), Err(e)) => {
                    let message = e.to_string();
                    assert!(message.starts_with(prefix), "{message}");
                    assert!(message.contains("run `cargo build -p app`"), "{message}");
                }
                (expected, result) => panic!("expected {expected:?}, got {result:?}"),
            }
        }
    }

    #[test]
    fn dep_info_paths_are_unescaped() {
        let text = "/t/app\\ x.wasm: /s/a\\ b.rs /s/c$$d.rs\n\n/s/a\\ b.rs:\n";
        assert_eq!(
            dep_info_sources(text),
            [PathBuf::from("/s/a b.rs"), PathBuf::from("/s/c$d.rs")]
        );
    }
}
