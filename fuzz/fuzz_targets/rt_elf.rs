//! Checks arbitrary bytes as a real-time app's ELF against mps2-an386's memory map: a verdict,
//! never a panic; what passes has a Thumb entry point and was checked against that map.
#![no_main]

use ferro_rtcore::{MemoryMap, VerifiedElf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(elf) = VerifiedElf::verify(data.to_vec(), &MemoryMap::mps2_an386()) {
        assert_eq!(elf.entry() & 1, 1, "a verified entry point is Thumb code");
        assert_eq!(elf.memory_map(), "mps2-an386");
        assert_eq!(elf.bytes(), data);
    }
});
