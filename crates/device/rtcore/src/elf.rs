//! The check of an RT app's ELF against a core's memory map, before any core starts.

use std::fmt;

use object::Endianness;
use object::elf::{self, FileHeader32, ProgramHeader32};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};

/// `e_ident` indices of the class and data encoding.
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;

/// The largest ELF file accepted (the code window is 4 MiB).
pub const MAX_ELF_BYTES: usize = 8 << 20;
/// The most `PT_LOAD` segments accepted.
pub const MAX_LOAD_SEGMENTS: usize = 16;

/// What a window of the memory map may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Code and read-only data (executable segments allowed).
    Code,
    /// Data (executable segments refused).
    Data,
}

/// A range of the core's address space that an image may load into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryWindow {
    /// Its name in the board's documentation.
    pub name: &'static str,
    /// First address.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
    /// What it may hold.
    pub kind: WindowKind,
}

impl MemoryWindow {
    fn contains(&self, start: u64, len: u64) -> bool {
        let (ws, we) = (
            u64::from(self.start),
            u64::from(self.start) + u64::from(self.len),
        );
        start >= ws && start.checked_add(len).is_some_and(|end| end <= we)
    }
}

/// The windows of a core's address space that an image may load into. Everything else (the
/// mailbox PSRAM above all, and the peripherals) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryMap {
    /// The map's name (a core's backend names the map it checks against).
    pub name: &'static str,
    /// The windows.
    pub windows: Vec<MemoryWindow>,
}

impl MemoryMap {
    /// QEMU's mps2-an386 (Cortex-M4): SSRAM1 at 0x0 (4 MiB, code, where the vector table
    /// must be) and SSRAM2/3 at 0x20000000 (4 MiB, data). The PSRAM at 0x21000000 is the
    /// mailbox and never an image's.
    pub fn mps2_an386() -> MemoryMap {
        MemoryMap {
            name: "mps2-an386",
            windows: vec![
                MemoryWindow {
                    name: "SSRAM1",
                    start: 0,
                    len: 4 << 20,
                    kind: WindowKind::Code,
                },
                MemoryWindow {
                    name: "SSRAM2/3",
                    start: 0x2000_0000,
                    len: 4 << 20,
                    kind: WindowKind::Data,
                },
            ],
        }
    }
}

/// Why an ELF was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// Larger than [`MAX_ELF_BYTES`].
    #[error("the image has {len} bytes, more than {MAX_ELF_BYTES}")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// No ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// A 64-bit ELF (or an unknown class).
    #[error("not a 32-bit ELF (class {class})")]
    NotElf32 {
        /// `EI_CLASS`.
        class: u8,
    },
    /// A big-endian ELF (or an unknown data encoding).
    #[error("not a little-endian ELF (data encoding {data})")]
    NotLittleEndian {
        /// `EI_DATA`.
        data: u8,
    },
    /// Not for ARM.
    #[error("not an ARM image (e_machine {machine})")]
    NotArm {
        /// `e_machine`.
        machine: u16,
    },
    /// Not an executable (a relocatable object or a shared object).
    #[error("not an executable ELF (e_type {kind})")]
    NotExecutable {
        /// `e_type`.
        kind: u16,
    },
    /// Not the ARM EABI version 5 that Rust and GCC write.
    #[error("not an ARM EABI version 5 image (e_flags {flags:#010x})")]
    NotEabi5 {
        /// `e_flags`.
        flags: u32,
    },
    /// The ARM attributes section names another architecture than ARMv7E-M (or one of the
    /// M-profile subsets a Cortex-M4 runs).
    #[error("built for {arch} (Tag_CPU_arch {tag}), not ARMv7E-M")]
    WrongCpuArch {
        /// Tag_CPU_arch.
        tag: u64,
        /// Its name.
        arch: &'static str,
    },
    /// The ARM attributes section names an application or real-time (not microcontroller)
    /// profile.
    #[error("built for the {profile:?} profile, not M (microcontroller)")]
    WrongProfile {
        /// Tag_CPU_arch_profile.
        profile: char,
    },
    /// The headers, program headers or attributes are malformed.
    #[error("malformed ELF: {what}")]
    Malformed {
        /// What the parser said.
        what: String,
    },
    /// No `PT_LOAD` segment.
    #[error("no loadable segment")]
    NoLoadSegments,
    /// More than [`MAX_LOAD_SEGMENTS`] `PT_LOAD` segments.
    #[error("{count} loadable segments, more than {MAX_LOAD_SEGMENTS}")]
    TooManySegments {
        /// How many.
        count: usize,
    },
    /// A segment's file bytes are larger than its memory size.
    #[error("segment {index}: {filesz} file bytes in {memsz} memory bytes")]
    SegmentFileLarger {
        /// Its index among the program headers.
        index: usize,
        /// `p_filesz`.
        filesz: u32,
        /// `p_memsz`.
        memsz: u32,
    },
    /// A segment's load or run address range is outside every window of the memory map.
    #[error("segment {index} ({address:#010x}, {len} bytes) is outside the core's memory ({map})")]
    SegmentOutsideMap {
        /// Its index among the program headers.
        index: usize,
        /// The address (`p_paddr` or `p_vaddr`) outside.
        address: u32,
        /// `p_memsz`.
        len: u32,
        /// The memory map's name.
        map: &'static str,
    },
    /// An executable segment in a data window.
    #[error(
        "segment {index} at {address:#010x} is executable and loads into the data window {window}"
    )]
    ExecutableData {
        /// Its index among the program headers.
        index: usize,
        /// Its address.
        address: u32,
        /// The window's name.
        window: &'static str,
    },
    /// No loaded bytes at address 0 for the vector table (initial stack pointer, reset vector).
    #[error("no vector table: no segment loads file bytes at address 0")]
    NoVectorTable,
    /// The entry point or the reset vector lacks the Thumb bit (a Cortex-M runs Thumb code
    /// only: such a core would fault at its first instruction).
    #[error("the {which} {address:#010x} is not a Thumb address (bit 0 clear)")]
    NotThumb {
        /// "entry point" or "reset vector".
        which: &'static str,
        /// The address.
        address: u32,
    },
    /// The entry point (or the reset vector) is not inside a loaded executable segment.
    #[error("the {which} {address:#010x} is not inside a loaded executable segment")]
    EntryNotExecutable {
        /// "entry point" or "reset vector".
        which: &'static str,
        /// The address.
        address: u32,
    },
}

/// An RT app's ELF that passed [`VerifiedElf::verify`] against a memory map; the only input
/// [`crate::RealTimeCore::start`] takes.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedElf {
    bytes: Vec<u8>,
    entry: u32,
    map: &'static str,
}

impl fmt::Debug for VerifiedElf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedElf")
            .field("len", &self.bytes.len())
            .field("entry", &format_args!("{:#010x}", self.entry))
            .field("map", &self.map)
            .finish()
    }
}

struct Segment {
    paddr: u32,
    vaddr: u32,
    filesz: u32,
    memsz: u32,
    offset: u32,
    exec: bool,
}

fn malformed(e: object::read::Error) -> ElfError {
    ElfError::Malformed {
        what: e.to_string(),
    }
}

fn arch_name(tag: u64) -> &'static str {
    match tag {
        0 => "pre-ARMv4",
        1 => "ARMv4",
        2 => "ARMv4T",
        3 => "ARMv5T",
        4 => "ARMv5TE",
        5 => "ARMv5TEJ",
        6 => "ARMv6",
        7 => "ARMv6KZ",
        8 => "ARMv6T2",
        9 => "ARMv6K",
        10 => "ARMv7",
        11 => "ARMv6-M",
        12 => "ARMv6S-M",
        13 => "ARMv7E-M",
        14 => "ARMv8-A",
        15 => "ARMv8-R",
        16 => "ARMv8-M.baseline",
        17 => "ARMv8-M.mainline",
        _ => "an unknown architecture",
    }
}

impl VerifiedElf {
    /// Checks `bytes` (see `docs/realtime.md`, "What a core runs"): a 32-bit little-endian
    /// ARM EABI5 executable; when it has an ARM attributes section, Tag_CPU_arch ARMv7E-M (or
    /// ARMv7 with profile M, ARMv6-M, ARMv6S-M: subsets a Cortex-M4 runs) and
    /// Tag_CPU_arch_profile M; at most 16 `PT_LOAD` segments, each with its load and run
    /// addresses inside one window of `map` (executable ones only in code windows); file bytes
    /// at address 0 (the vector table) whose reset vector, like the entry point, is inside a
    /// loaded executable segment, both with the Thumb bit.
    pub fn verify(bytes: Vec<u8>, map: &MemoryMap) -> Result<VerifiedElf, ElfError> {
        if bytes.len() > MAX_ELF_BYTES {
            return Err(ElfError::TooLarge { len: bytes.len() });
        }
        let data = bytes.as_slice();
        if data.len() < 16 || data[..4] != elf::ELFMAG {
            return Err(ElfError::NotElf);
        }
        if data[EI_CLASS] != elf::ELFCLASS32 {
            return Err(ElfError::NotElf32 {
                class: data[EI_CLASS],
            });
        }
        if data[EI_DATA] != elf::ELFDATA2LSB {
            return Err(ElfError::NotLittleEndian {
                data: data[EI_DATA],
            });
        }
        let header = FileHeader32::<Endianness>::parse(data).map_err(malformed)?;
        let endian = header.endian().map_err(malformed)?;
        let machine = header.e_machine(endian);
        if machine != elf::EM_ARM {
            return Err(ElfError::NotArm { machine });
        }
        let kind = header.e_type(endian);
        if kind != elf::ET_EXEC {
            return Err(ElfError::NotExecutable { kind });
        }
        let flags = header.e_flags(endian);
        if flags & elf::EF_ARM_EABIMASK != elf::EF_ARM_EABI_VER5 {
            return Err(ElfError::NotEabi5 { flags });
        }
        check_attributes(header, endian, data)?;

        let mut segments = Vec::new();
        for (index, ph) in header
            .program_headers(endian, data)
            .map_err(malformed)?
            .iter()
            .enumerate()
        {
            let ph: &ProgramHeader32<Endianness> = ph;
            if ph.p_type(endian) != elf::PT_LOAD {
                continue;
            }
            let s = Segment {
                paddr: ph.p_paddr(endian),
                vaddr: ph.p_vaddr(endian),
                filesz: ph.p_filesz(endian),
                memsz: ph.p_memsz(endian),
                offset: ph.p_offset(endian),
                exec: ph.p_flags(endian) & elf::PF_X != 0,
            };
            if s.filesz > s.memsz {
                return Err(ElfError::SegmentFileLarger {
                    index,
                    filesz: s.filesz,
                    memsz: s.memsz,
                });
            }
            // The file bytes must exist (object checks offset + size against the file).
            ph.data(endian, data).map_err(|()| ElfError::Malformed {
                what: format!("segment {index}'s file bytes are outside the file"),
            })?;
            if s.memsz > 0 {
                // QEMU loads file bytes at the physical (load) address; the code runs with the
                // virtual one: both must be in one window of the map.
                for (address, len) in [(s.paddr, s.filesz.max(1)), (s.vaddr, s.memsz)] {
                    let window = map
                        .windows
                        .iter()
                        .find(|w| w.contains(address.into(), len.into()))
                        .ok_or(ElfError::SegmentOutsideMap {
                            index,
                            address,
                            len: s.memsz,
                            map: map.name,
                        })?;
                    if s.exec && window.kind == WindowKind::Data {
                        return Err(ElfError::ExecutableData {
                            index,
                            address,
                            window: window.name,
                        });
                    }
                }
            }
            segments.push(s);
            if segments.len() > MAX_LOAD_SEGMENTS {
                return Err(ElfError::TooManySegments {
                    count: segments.len(),
                });
            }
        }
        if segments.is_empty() {
            return Err(ElfError::NoLoadSegments);
        }

        let executable = |address: u32| {
            let address = address & !1; // the Thumb bit
            segments.iter().any(|s| {
                s.exec
                    && address >= s.vaddr
                    && u64::from(address) < u64::from(s.vaddr) + u64::from(s.filesz)
            })
        };
        // The vector table: file bytes loaded at 0; word 1 is the reset vector.
        let table = segments
            .iter()
            .find(|s| s.paddr == 0 && s.filesz >= 8)
            .ok_or(ElfError::NoVectorTable)?;
        let at = table.offset as usize + 4;
        let reset = data
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(ElfError::NoVectorTable)?;
        if reset & 1 == 0 {
            return Err(ElfError::NotThumb {
                which: "reset vector",
                address: reset,
            });
        }
        if !executable(reset) {
            return Err(ElfError::EntryNotExecutable {
                which: "reset vector",
                address: reset,
            });
        }
        let entry = header.e_entry(endian);
        if entry & 1 == 0 {
            return Err(ElfError::NotThumb {
                which: "entry point",
                address: entry,
            });
        }
        if !executable(entry) {
            return Err(ElfError::EntryNotExecutable {
                which: "entry point",
                address: entry,
            });
        }
        Ok(VerifiedElf {
            bytes,
            entry,
            map: map.name,
        })
    }

    /// The file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The entry point (`e_entry`).
    pub fn entry(&self) -> u32 {
        self.entry
    }

    /// The memory map it was checked against.
    pub fn memory_map(&self) -> &'static str {
        self.map
    }
}

/// Checks Tag_CPU_arch and Tag_CPU_arch_profile of the "aeabi" attributes, when present.
fn check_attributes(
    header: &FileHeader32<Endianness>,
    endian: Endianness,
    data: &[u8],
) -> Result<(), ElfError> {
    let sections = header.sections(endian, data).map_err(malformed)?;
    for section in sections.iter() {
        if section.sh_type(endian) != elf::SHT_ARM_ATTRIBUTES {
            continue;
        }
        let attributes = section.attributes(endian, data).map_err(malformed)?;
        let mut subsections = attributes.subsections().map_err(malformed)?;
        while let Some(sub) = subsections.next().map_err(malformed)? {
            if sub.vendor() != b"aeabi" {
                continue;
            }
            let mut subsubs = sub.subsubsections();
            while let Some(subsub) = subsubs.next().map_err(malformed)? {
                if subsub.tag() != elf::Tag_File {
                    continue;
                }
                let mut reader = subsub.attributes();
                while let Some(tag) = reader.read_tag().map_err(malformed)? {
                    match tag {
                        // Tag_CPU_raw_name, Tag_CPU_name, Tag_also_compatible_with,
                        // Tag_conformance: strings.
                        4 | 5 | 65 | 67 => {
                            reader.read_string().map_err(malformed)?;
                        }
                        // Tag_compatibility: a flag, then a string.
                        32 => {
                            reader.read_integer().map_err(malformed)?;
                            reader.read_string().map_err(malformed)?;
                        }
                        6 => {
                            let arch = reader.read_integer().map_err(malformed)?;
                            if !(10..=13).contains(&arch) {
                                return Err(ElfError::WrongCpuArch {
                                    tag: arch,
                                    arch: arch_name(arch),
                                });
                            }
                        }
                        7 => {
                            let profile = reader.read_integer().map_err(malformed)?;
                            if profile != u64::from(b'M') {
                                let profile = char::from_u32(profile as u32).unwrap_or('?');
                                return Err(ElfError::WrongProfile { profile });
                            }
                        }
                        // Below 32 the rest are integers; above, odd tags are strings and even
                        // ones integers (the ABI's rule for tags it does not list).
                        t if t < 32 || t % 2 == 0 => {
                            reader.read_integer().map_err(malformed)?;
                        }
                        _ => {
                            reader.read_string().map_err(malformed)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
