#!/usr/bin/env python3
"""Writes the ELF vectors of ferro-rtcore's image check (crates/device/rtcore/tests/elf.rs).

Each file is a minimal ELF32 built here byte by byte (no toolchain needed): a vector table at 0x0
(initial SP 0x20001000, reset vector 0x9) and a `b .` at 0x8, in one PT_LOAD segment, then one
change that breaks one rule. A name `valid--*.elf` must pass; `<Variant>--*.elf` must be refused
with ferro_rtcore::ElfError::<Variant>. Run `python3 make.py` in this directory to rewrite them.
"""
import struct

EM_ARM, PT_LOAD, PF_X, PF_W, PF_R = 40, 1, 1, 2, 4
SHT_ARM_ATTRIBUTES, SHT_STRTAB = 0x70000003, 3


def attributes(arch=13, profile=ord("M"), name=b"7E-M", raw=None):
    if raw is not None:
        body = raw
    else:
        attrs = b"\x05" + name + b"\x00" + bytes([6, arch, 7, profile]) + b"\x08\x00\x09\x02"
        file_sub = b"\x01" + struct.pack("<I", 5 + len(attrs)) + attrs
        vendor = b"aeabi\x00"
        body = struct.pack("<I", 4 + len(vendor) + len(file_sub)) + vendor + file_sub
    return b"A" + body


def elf(segments=None, entry=0x9, machine=EM_ARM, etype=2, flags=0x05000400, cls=1, data=1,
        attrs=None, vectors=(0x20001000, 0x9), phnum=None, truncate=None):
    code = struct.pack("<II", *vectors) + b"\xfe\xe7\x00\xbf"  # b . ; nop
    if segments is None:
        segments = [dict(vaddr=0, paddr=0, filesz=len(code), memsz=len(code), flags=PF_R | PF_X)]
    phoff = 52
    code_off = phoff + 32 * len(segments)
    out = bytearray()
    sections = b""
    shoff = shnum = shstrndx = 0
    tail = bytearray(code)
    if attrs is not None:
        attr_off = code_off + len(tail)
        tail += attrs
        strtab = b"\x00.ARM.attributes\x00.shstrtab\x00"
        str_off = code_off + len(tail)
        tail += strtab
        while (code_off + len(tail)) % 4:
            tail += b"\x00"
        shoff = code_off + len(tail)
        sh = lambda name, typ, off, size: struct.pack("<IIIIIIIIII", name, typ, 0, 0, off, size, 0, 0, 1, 0)
        sections = sh(0, 0, 0, 0) + sh(1, SHT_ARM_ATTRIBUTES, attr_off, len(attrs)) + sh(17, SHT_STRTAB, str_off, len(strtab))
        shnum, shstrndx = 3, 2
    ident = b"\x7fELF" + bytes([cls, data, 1, 0]) + bytes(8)
    e = "<" if data == 1 else ">"
    out += ident + struct.pack(e + "HHIIIIIHHHHHH", etype, machine, 1, entry, phoff, shoff, flags, 52, 32,
                               len(segments) if phnum is None else phnum, 40, shnum, shstrndx)
    for s in segments:
        out += struct.pack(e + "IIIIIIII", PT_LOAD, s.get("offset", code_off), s["vaddr"], s["paddr"],
                           s["filesz"], s["memsz"], s["flags"], 4)
    out += tail + sections
    if truncate is not None:
        out = out[:truncate]
    return bytes(out)


RX = PF_R | PF_X
RW = PF_R | PF_W
text = dict(vaddr=0, paddr=0, filesz=12, memsz=12, flags=RX)
vectors = {
    "valid--minimal.elf": elf(),
    "valid--attributes-v7em.elf": elf(attrs=attributes()),
    "valid--attributes-v7m.elf": elf(attrs=attributes(arch=10, name=b"7-M")),
    "valid--data-segment.elf": elf(segments=[text, dict(vaddr=0x20000000, paddr=0x100, filesz=4, memsz=64, flags=RW, offset=52 + 64)]),
    "NotElf--text.elf": b"this is not an ELF file at all\n",
    "NotElf--empty.elf": b"",
    "NotElf32--elf64.elf": elf(cls=2),
    "NotLittleEndian--big-endian.elf": elf(data=2),
    "NotArm--x86.elf": elf(machine=3),
    "NotArm--aarch64.elf": elf(machine=183),
    "NotExecutable--relocatable.elf": elf(etype=1),
    "NotExecutable--shared-object.elf": elf(etype=3),
    "NotEabi5--eabi4.elf": elf(flags=0x04000000),
    "WrongCpuArch--armv8a.elf": elf(attrs=attributes(arch=14, name=b"8-A")),
    "WrongCpuArch--armv8m-main.elf": elf(attrs=attributes(arch=17, name=b"8-M.main")),
    "WrongCpuArch--armv4t.elf": elf(attrs=attributes(arch=2, name=b"4T")),
    "WrongProfile--armv7-a.elf": elf(attrs=attributes(arch=10, profile=ord("A"), name=b"7-A")),
    "Malformed--attributes-garbage.elf": elf(attrs=attributes(raw=b"\xff\xff\xff\x7f garbage")),
    "Malformed--program-headers-past-end.elf": elf(phnum=200),
    "Malformed--segment-past-end.elf": elf(segments=[dict(vaddr=0, paddr=0, filesz=4096, memsz=4096, flags=RX)]),
    "Malformed--truncated-header.elf": elf(truncate=40),
    "NoLoadSegments--none.elf": elf(segments=[]),
    "TooManySegments--seventeen.elf": elf(segments=[text] + [dict(vaddr=0x1000 * i, paddr=0x1000 * i, filesz=4, memsz=4, flags=PF_R) for i in range(1, 17)]),
    "SegmentFileLarger--filesz-over-memsz.elf": elf(segments=[dict(vaddr=0, paddr=0, filesz=12, memsz=8, flags=RX)]),
    "SegmentOutsideMap--psram-mailbox.elf": elf(segments=[text, dict(vaddr=0x21000000, paddr=0x21000000, filesz=4, memsz=4, flags=RW)]),
    "SegmentOutsideMap--psram-load-address.elf": elf(segments=[text, dict(vaddr=0x20000000, paddr=0x21000000, filesz=4, memsz=4, flags=RW)]),
    "SegmentOutsideMap--peripherals.elf": elf(segments=[text, dict(vaddr=0x40004000, paddr=0x40004000, filesz=4, memsz=4, flags=RW)]),
    "SegmentOutsideMap--system-control-space.elf": elf(segments=[text, dict(vaddr=0xE000ED00, paddr=0xE000ED00, filesz=4, memsz=4, flags=RW)]),
    "SegmentOutsideMap--straddles-code-end.elf": elf(segments=[text, dict(vaddr=0x3FFFF0, paddr=0x3FFFF0, filesz=4, memsz=0x100, flags=PF_R)]),
    "SegmentOutsideMap--wraps-address-space.elf": elf(segments=[text, dict(vaddr=0xFFFFFFF0, paddr=0xFFFFFFF0, filesz=4, memsz=0x100, flags=PF_R)]),
    "SegmentOutsideMap--bss-past-data-end.elf": elf(segments=[text, dict(vaddr=0x203FFF00, paddr=0x100, filesz=0, memsz=0x1000, flags=RW)]),
    "ExecutableData--code-in-data-window.elf": elf(segments=[text, dict(vaddr=0x20000000, paddr=0x20000000, filesz=4, memsz=4, flags=RX)]),
    "NoVectorTable--code-at-0x1000.elf": elf(segments=[dict(vaddr=0x1000, paddr=0x1000, filesz=12, memsz=12, flags=RX)], entry=0x1009),
    "NotThumb--reset-vector-arm.elf": elf(vectors=(0x20001000, 0x8)),
    "NotThumb--entry-arm.elf": elf(entry=0x8),
    "EntryNotExecutable--reset-into-data.elf": elf(segments=[text, dict(vaddr=0x20000000, paddr=0x100, filesz=4, memsz=4, flags=RW, offset=52 + 64)], vectors=(0x20001000, 0x20000001)),
    "EntryNotExecutable--entry-outside.elf": elf(entry=0x300001),
}

for name, data in vectors.items():
    with open(name, "wb") as f:
        f.write(data)
print(f"{len(vectors)} vectors")
