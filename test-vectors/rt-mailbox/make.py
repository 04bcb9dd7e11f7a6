#!/usr/bin/env python3
"""Writes the mailbox_region fuzz seeds (see README.md)."""
import struct


def step(selector, value, op):
    return bytes([selector]) + struct.pack("<I", value) + bytes([op])


# selector: bit 0 picks the ring (0 host-to-core, 1 core-to-host); (selector >> 1) % 8 picks the
# word: 0 head, 1 tail, 2 producer waiting, 3 consumer waiting, 4 slot length.
seeds = {
    "head-ahead.bin": step(0b0001, 0x7FFFFFF0, 1) + step(0b0001, 0, 1),
    "tail-behind.bin": step(0b0110, 0, 0) + step(0b0010, 0xDEADBEEF, 0) + step(0b0010, 0, 3),
    "length-huge.bin": step(0b0001, 1, 3) + step(0b1001, 0xFFFFFFFF, 1),
}
for name, data in seeds.items():
    with open(name, "wb") as f:
        f.write(data)
