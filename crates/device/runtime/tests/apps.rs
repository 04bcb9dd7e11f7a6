//! The sample apps' sources stay in step with the hardware definitions they use.

mod common;

use ferro_manifest::generate_rust_module;

#[test]
fn blink_constants_match_the_sample_appliance() {
    let generated = generate_rust_module(
        &common::hardware(),
        "hardware/ferro_vboard/sample_appliance.json",
    );
    let path = common::repo_root().join("apps/samples/sample-appliance/src/sample_appliance.rs");
    let checked_in = std::fs::read_to_string(&path).expect("sample appliance constants");
    assert_eq!(
        checked_in,
        generated,
        "{} is stale; regenerate it from hardware/ferro_vboard/sample_appliance.json",
        path.display()
    );
}

#[test]
fn every_app_manifest_resolves_against_the_sample_appliance() {
    let apps = common::repo_root().join("apps");
    let mut count = 0;
    for entry in std::fs::read_dir(&apps).unwrap() {
        let path = entry.unwrap().path();
        let manifest = path.join("app_manifest.json");
        if manifest.is_file() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let resolved = common::manifest(&name);
            assert_eq!(resolved.name(), name);
            count += 1;
        }
    }
    assert!(count >= 12, "{count} apps");
}
