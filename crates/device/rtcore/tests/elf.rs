//! The image check over `test-vectors/rt-elf/` (each file named `valid--*` or
//! `<ElfError variant>--*`), the real guests of `apps/rt` when built, and random mutations
//! (never a panic).

use std::path::PathBuf;

use ferro_rtcore::{ElfError, MemoryMap, VerifiedElf};
use proptest::prelude::*;

fn vectors() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../test-vectors/rt-elf");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("test-vectors/rt-elf")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "elf"))
        .map(|p| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read(&p).expect("read"),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_vector_is_judged_as_its_name_says() {
    let map = MemoryMap::mps2_an386();
    let vectors = vectors();
    assert!(vectors.len() >= 30, "{} vectors", vectors.len());
    for (name, bytes) in vectors {
        let (expected, _) = name.split_once("--").expect("name: <verdict>--<what>.elf");
        match VerifiedElf::verify(bytes, &map) {
            Ok(elf) => assert_eq!(expected, "valid", "{name} passed: {elf:?}"),
            Err(e) => {
                let variant = format!("{e:?}");
                assert!(
                    variant.starts_with(expected)
                        && variant[expected.len()..].starts_with([' ', '{', '('])
                        || variant == expected,
                    "{name}: refused with {variant} ({e})"
                );
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn refusals_say_where() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../test-vectors/rt-elf");
    let bytes = std::fs::read(dir.join("SegmentOutsideMap--psram-mailbox.elf")).expect("vector");
    let e = VerifiedElf::verify(bytes, &MemoryMap::mps2_an386()).expect_err("refused");
    assert_eq!(
        e,
        ElfError::SegmentOutsideMap {
            index: 1,
            address: 0x2100_0000,
            len: 4,
            map: "mps2-an386"
        }
    );
    assert_eq!(
        e.to_string(),
        "segment 1 (0x21000000, 4 bytes) is outside the core's memory (mps2-an386)"
    );
    let big = vec![0u8; ferro_rtcore::MAX_ELF_BYTES + 1];
    assert!(matches!(
        VerifiedElf::verify(big, &MemoryMap::mps2_an386()),
        Err(ElfError::TooLarge { .. })
    ));
}

#[test]
fn the_built_guests_pass() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../apps/rt/target/thumbv7em-none-eabihf/release");
    for name in [
        "rt-echo",
        "rt-spin",
        "rt-hardfault",
        "rt-flood",
        "rt-scribble",
        "rt-exit",
    ] {
        let bytes = std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}; build apps/rt first"));
        let elf = VerifiedElf::verify(bytes, &MemoryMap::mps2_an386())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(elf.entry() & 1, 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any byte of a valid image changed to anything: a verdict, never a panic.
    #[test]
    fn mutations_never_panic(index in any::<prop::sample::Index>(), value in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../test-vectors/rt-elf");
        let mut bytes = std::fs::read(dir.join("valid--attributes-v7em.elf")).expect("vector");
        let i = index.index(bytes.len());
        bytes[i] = value;
        let keep = cut.index(bytes.len() + 1).max(bytes.len() / 2);
        bytes.truncate(keep);
        let _ = VerifiedElf::verify(bytes, &MemoryMap::mps2_an386());
    }
}
