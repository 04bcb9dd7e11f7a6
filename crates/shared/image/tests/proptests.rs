//! Property tests: metadata CBOR round trip; pack -> verify round trip for arbitrary trees.

mod common;

use common::*;
use ferro_image::*;
use proptest::prelude::*;
use uuid::Uuid;

fn arb_metadata() -> impl Strategy<Value = ImageMetadata> {
    (
        prop_oneof![
            Just(ImageType::Os),
            Just(ImageType::BoardConfig),
            Just(ImageType::App)
        ],
        any::<u128>().prop_filter("non-nil", |v| *v != 0),
        "[A-Za-z0-9_ .-]{1,40}",
        (any::<u32>(), any::<u32>(), any::<u32>()),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        0u64..=MAX_BOARD_CONFIG_SIZE,
        any::<[u8; 32]>(),
        "[a-z]{1,8}(/[a-z0-9_]{1,8}(\\.[a-z]{1,3})?){0,3}",
    )
        .prop_map(
            |(ty, id, name, (a, b, c), sv, trv, debug, size, digest, entry)| {
                let component_id = match ty {
                    ImageType::Os => OS_COMPONENT_ID,
                    ImageType::BoardConfig => BOARD_CONFIG_COMPONENT_ID,
                    _ => Uuid::parse_str(APP_COMPONENT).unwrap(),
                };
                let entry = format!("/{entry}");
                let app = (ty == ImageType::App).then(|| AppMetadata {
                    manifest_json: app_manifest_json(&name, APP_COMPONENT, &entry, false),
                    entry_point: entry,
                });
                ImageMetadata {
                    image_type: ty,
                    component_id,
                    image_id: Uuid::from_u128(id),
                    name,
                    version: Version::new(a, b, c),
                    security_version: sv,
                    target_runtime_version: trv,
                    debug,
                    payload_size: size,
                    payload_sha256: digest,
                    app,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn metadata_cbor_round_trip(md in arb_metadata()) {
        let bytes = md.to_cbor().unwrap();
        prop_assert_eq!(ImageMetadata::from_cbor(&bytes).unwrap(), md);
    }

    #[test]
    fn metadata_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = ImageMetadata::from_cbor(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn pack_verify_round_trip_arbitrary_trees(
        files in proptest::collection::btree_map(
            "[a-z]{1,6}(/[a-z0-9]{1,6}){0,2}",
            (proptest::collection::vec(any::<u8>(), 0..3000), any::<bool>()),
            0..8,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        // Skip trees where a file would be a parent of another file.
        let paths: Vec<&String> = files.keys().collect();
        prop_assume!(!paths.iter().any(|a| paths.iter().any(|b| b.starts_with(&format!("{a}/")))));
        prop_assume!(!files.contains_key("bin/app") && !files.keys().any(|p| p == "bin" || p.starts_with("bin/app/")));
        prop_assume!(!files.contains_key("app_manifest.json"));
        for (p, (data, exec)) in &files {
            write_file(&src, p, data, if *exec { 0o755 } else { 0o644 });
        }
        write_file(&src, "bin/app", b"entry", 0o644);
        let dest = dir.path().join("x.fsimg");
        let md = pack_application(&src, &app_manifest(false), &options(9), &key(), &dest).unwrap();
        let mut sink = Vec::new();
        let v = verify_file(&dest, &trusted(), &mut sink).unwrap();
        prop_assert_eq!(v.metadata(), &md);
        // The payload holds exactly our files plus the manifest, with their contents and modes.
        let mut ar = tar::Archive::new(&sink[..]);
        let mut seen = std::collections::BTreeMap::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            seen.insert(e.path().unwrap().display().to_string(), (data, e.header().mode().unwrap()));
        }
        prop_assert_eq!(seen.len(), files.len() + 2);
        for (p, (data, exec)) in &files {
            let (d, mode) = &seen[p];
            prop_assert_eq!(d, data);
            prop_assert_eq!(*mode, if *exec { 0o755 } else { 0o644 });
        }
    }
}
