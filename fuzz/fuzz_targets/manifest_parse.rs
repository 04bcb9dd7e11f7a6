//! Parses arbitrary bytes as an app manifest; whatever resolves must round-trip through its
//! canonical JSON unchanged.
#![no_main]

use ferro_manifest::{AppManifest, ResolvedManifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = AppManifest::parse(data) else {
        return;
    };
    let Ok(resolved) = manifest.resolve(None) else {
        return;
    };
    let canonical = resolved.json_bytes();
    let reparsed = ResolvedManifest::parse(&canonical).expect("canonical JSON must parse");
    assert_eq!(reparsed, resolved, "canonical JSON must round-trip");
    assert_eq!(
        reparsed.json_bytes(),
        canonical,
        "canonical JSON must be stable"
    );
});
