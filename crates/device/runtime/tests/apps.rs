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
    let mut count = 0;
    for (name, _) in ferro_e2e::artifacts::apps_with_manifests() {
        let resolved = common::manifest(&name);
        assert_eq!(resolved.name(), name);
        count += 1;
    }
    assert!(count >= 12, "{count} apps");
}
