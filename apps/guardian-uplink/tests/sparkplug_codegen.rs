//! `src/sparkplug/generated.rs` is prost-build's output for `proto/sparkplug_b.proto` (checked
//! in, so that building the app needs no code generator): this test generates it again, with
//! protox parsing the schema (no system protoc), and compares. `FERRO_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn the_checked_in_sparkplug_code_is_what_prost_build_generates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let descriptors = protox::compile([root.join("proto/sparkplug_b.proto")], [root.join("proto")])
        .expect("sparkplug_b.proto parses");
    let out = tempfile_dir();
    prost_build::Config::new()
        .out_dir(&out)
        .compile_fds(descriptors)
        .expect("prost-build");
    let generated = std::fs::read_to_string(out.join("org.eclipse.tahu.protobuf.rs"))
        .expect("generated module");
    let checked_in_path = root.join("src/sparkplug/generated.rs");
    if std::env::var_os("FERRO_BLESS").is_some() {
        std::fs::write(&checked_in_path, &generated).expect("write generated.rs");
    }
    let checked_in = std::fs::read_to_string(&checked_in_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        checked_in == generated,
        "src/sparkplug/generated.rs differs from prost-build's output; regenerate with \
         FERRO_BLESS=1 cargo test --manifest-path apps/Cargo.toml -p guardian-uplink --test sparkplug_codegen"
    );
}

/// A fresh directory under the target directory (this crate has no tempfile dependency).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sparkplug-codegen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("out dir");
    dir
}
