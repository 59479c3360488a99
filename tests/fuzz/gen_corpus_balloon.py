#!/usr/bin/env python3
"""gen_corpus_balloon.py - writes the seed corpus for fuzz_balloon_host.c.

Owns: hand-built sessions in the harness's input format (see the head
comment of fuzz_balloon_host.c), one per file in corpus_balloon/: a normal
inflate/deflate cycle, hostile ranges, base-backed RAM with the ksm hook,
bad counts and raw hypercalls, host-side calls, odd registrations.
Re-run after changing the input format:  tests/fuzz/gen_corpus_balloon.py
Files named regress_* are inputs the fuzzer found crashing, kept by hand as
regression seeds (they follow the format of their time: re-check them when
the format changes).
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_balloon")

def u8(v): return struct.pack("<B", v & 0xff)
def u16(v): return struct.pack("<H", v & 0xffff)
def u64(v): return struct.pack("<Q", v & 0xffffffffffffffff)

# pick_gpa selectors
def r0(page): return u8(0) + u16(page)           # page of RAM range 0 (8 MiB)
def r1(page): return u8(1) + u16(page)           # page of range 1 (4 GiB + 4 MiB)
def r0_2m(i): return u8(2) + u8(i)
def r1_2m(i): return u8(3) + u8(i)
def hole(page): return u8(4) + u16(page)
def gap(page): return u8(5) + u16(page)
def r0_end(k): return u8(6) + u8(k)
def r1_end(k): return u8(7) + u8(k)
def cfgpage(): return u8(8) + u8(1)
def ringpage(k): return u8(8) + u8(0) + u8(k)
def raw(v): return u8(9) + u64(v)
def lowdev(page): return u8(10) + u8(page)
def past_end(k): return u8(11) + u8(k)

def register(cfg, ring, pages, ver_ok=True):
    return u8(0) + cfg + ring + u8(pages) + (u8(1) if ver_ok else u8(0) + u64(2))

def fill(entries):
    """entries: list of (flags, gpa-bytes[, raw u64])"""
    b = u8(1) + u16(len(entries))
    for e in entries:
        b += u8(e[0]) + e[1]
        if e[0] == 0xff:
            b += u64(e[2])
    return b

def ring_op(op, count, sel=0, extra=b""):
    cmd = {"inflate": 2, "deflate": 3, "report": 4}[op]
    return u8(cmd) + u16(count) + u8(sel) + extra + u8(1)

def stats(garbage=b""):
    return u8(5) + u8(len(garbage)) + garbage + u8(1)

def rawcall(*a):
    a = list(a) + [0] * (5 - len(a))
    return u8(6) + b"".join(u64(x) for x in a)

def host(choice, operand=b"", buflen=None):
    lb = u8(1) if buflen is None else u8(0) + u8(buflen)
    return u8(7) + lb + u8(choice) + operand

def advance(ms): return u8(8) + u8(0) + u16(ms)
def unregister(): return u8(8) + u8(130)
def busy_inflate(pfn): return u8(8) + u8(200) + u16(pfn)

REG = register(r0(1024), r0(1025), 1)
GOOD = [(0, r0(1500)), (0, r0(1501)), (1, r0_2m(3)), (1, r1_2m(1))]

seeds = {
    "basic": u8(0) + REG + host(0, u64(6 << 20)) + fill(GOOD) + ring_op("inflate", 4)
             + fill(GOOD) + ring_op("deflate", 4) + fill(GOOD) + ring_op("inflate", 4)
             + unregister(),
    "hostile_ranges": u8(0) + REG + fill([
        (0, hole(0)), (0, hole(0x3ffff)), (1, hole(0)), (0, gap(5)), (0, r0_end(0)),
        (1, r1_end(0)), (0, past_end(1)), (0, raw(0xfffffffffffff000)),
        (1, raw(0xffffffffffe00000)), (0, lowdev(5)), (1, lowdev(0)), (0, cfgpage()),
        (0, ringpage(0)), (1, r0_2m(0)), (0x41, r0(1600)), (0xc1, r0(1601)),
        (0xff, r0(1), 0x123456789abcdef0)]) + ring_op("inflate", 17)
        + ring_op("deflate", 17) + host(1, u8(1)) + ring_op("report", 17),
    "duplicates": u8(0) + REG + fill([(0, r0(1500)), (0, r0(1500)), (1, r0_2m(2)),
        (0, r0(1030)), (1, r0_2m(2)), (0, r0(1030))]) + ring_op("inflate", 6)
        + fill([(0, r0(1500)), (0, r0(1500))]) + ring_op("deflate", 2)
        + ring_op("deflate", 2),
    "base_hook": u8(0x0b) + b"".join(u16(1500 + i) for i in range(8)) + REG
        + fill([(1, r0_2m(3)), (0, r0(1500)), (0, r0(1501)), (0, r0(1502))])
        + ring_op("inflate", 4) + host(1, u8(1)) + fill([(0, r0(1503)), (1, r0_2m(1))])
        + ring_op("report", 2) + fill([(1, r0_2m(3))]) + ring_op("deflate", 1)
        + unregister(),
    "counts": u8(0) + REG + ring_op("inflate", 0, 2, u8(1) + u8(1))
        + ring_op("deflate", 0, 3, u64(0xffffffffffffffff))
        + ring_op("inflate", 0, 1, u8(0xff)) + stats(bytes(range(150)))
        + rawcall(3, 513) + rawcall(3, 1, 1) + rawcall(7) + rawcall(6, 1)
        + rawcall(2, 0, 0, 0, 1) + rawcall(1, 0x400000, 0x401000, 1, 1)
        + fill(GOOD) + ring_op("inflate", 4),
    "host_side": u8(0) + REG + host(0, u64(4 << 20)) + advance(7) + fill(GOOD)
        + ring_op("inflate", 4) + host(3, u16(250), buflen=0) + host(2, buflen=13)
        + stats(u64(1) + u64(2) + u64(3)) + host(4, u64(1 << 20)) + host(1, u8(0))
        + advance(1000) + host(0, u64(0)) + fill(GOOD) + ring_op("deflate", 4),
    "registers": u8(0) + register(r0(1024), r0(1024), 1) + register(r0(1025), r0(1024), 2)
        + register(lowdev(3), r0(1024), 16) + register(hole(0), r0(1), 1)
        + register(r0(1024), r0_end(1), 2) + register(r0(1024), r0(1025), 1, False)
        + register(r0(1024), r0(1025), 17) + REG + fill(GOOD) + ring_op("inflate", 4)
        + register(r0(1501), r0(1600), 4) + register(cfgpage(), ringpage(0), 1)
        + fill(GOOD) + ring_op("inflate", 4),
    "busy_and_time": u8(0x04) + b"".join(u16(1700 + i) for i in range(4)) + REG
        + busy_inflate(1800) + fill([(0, r0(1700)), (0, r0(1701))]) + ring_op("inflate", 2)
        + advance(2000) + unregister() + unregister() + fill(GOOD) + ring_op("inflate", 4),
    "full_ring": u8(0) + register(r0(1024), r0(1025), 2)
        + fill([(0, r0(1100 + i)) for i in range(599)]) + ring_op("inflate", 599)
        + ring_op("inflate", 1024, 2, u8(2) + u8(0)),
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {OUT}")
