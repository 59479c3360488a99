#!/usr/bin/env python3
"""gen_corpus_console.py - writes the seed corpus for fuzz_console.c.

Owns: hand-built console streams in the harness's input format (see the
head comment of fuzz_console.c), one per file in corpus_console/: terminal
attacks (CSI, OSC, DCS, C1, BEL/BS/CR tricks), UTF-8 good and bad, splits
inside sequences, long lines, floods under each kind of budget, flushes.
Re-run after changing the input format:  tests/fuzz/gen_corpus_console.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_console")

NONE, DEFAULT, TINY = b"\x00", b"\x01", b"\x02"

def custom(rate, burst):
    return b"\x03" + struct.pack("<HH", rate - 1, burst - 257)

def chunk(data, t=0):
    out = b""
    while True:
        part, data = data[:254], data[254:]
        out += bytes([len(part), t]) + part
        t = 0
        if not data:
            return out

def flush(t=0):
    return bytes([255, t])

def bytewise(data, t=0):
    return b"".join(bytes([1, t]) + data[i:i + 1] for i in range(len(data)))

SEEDS = {
    "csi": NONE + chunk(b"\x1b[2J\x1b[H\x1b[31mred\x1b[0m\n"),
    "osc_title": NONE + chunk(b"\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x1b\\\n"),
    "dcs_c1_raw": NONE + chunk(b"\x90q\x9c\x9b2J\x9d0;x\x07\x85\n"),
    "c1_utf8": NONE + chunk("\u0085\u009b2J\u009d".encode() + b"\n"),
    "bel_bs_del": NONE + chunk(b"ab\b\b\x7f\x07\x00\x0c\x0b\t\n"),
    "cr_tricks": NONE + chunk(b"secret\rpublic\n\r\n\r\r\nend\r") + flush(),
    "bidi": NONE + chunk("abc\u202efed\u2066x\u2069\u2028y\u2029\n".encode()),
    "utf8_good": NONE + chunk("h\u00e9llo \u2603 \U0001f600 \u65e5\u672c \U0010fffd\n".encode()),
    "utf8_bad": NONE + chunk(b"\xc0\xaf\xe0\x80\xaf\xed\xa0\x80\xf4\x90\x80\x80"
                             b"\xf5\xff\x80\xbf\xe2\x82x\xf0\x9f\n"),
    "split_bytewise": NONE + bytewise("\x1b[m\r\n\U0001f600\u009b\u202e".encode()
                                      + b"\xe2\x82" + b"x\r") + flush(),
    "split_at_flush": NONE + chunk(b"tail\xf0\x9f\x98") + flush() + chunk(b"\x80\n"),
    "long_line": NONE + chunk(b"a" * 1000) + chunk(b"\x1b" * 300) + chunk(
        b"b" * 255 + "\u20ac".encode() + b"\n"),
    "flood_default": DEFAULT + b"".join(chunk(b"x" * 253 + b"\n") for _ in range(15)),
    "flood_tiny": TINY + b"".join(chunk(b"y" * 100 + b"\n", t=3) for _ in range(30)) + flush(40),
    "flood_custom": custom(1000, 2048) + b"".join(
        chunk(b"\x1b" * 60 + b"\n", t=(i % 4) * 5) for i in range(60)) + flush(),
    "quiet_after_flood": custom(300, 600) + b"".join(chunk(b"z" * 200 + b"\n") for _ in range(10))
        + chunk(b"later\n", t=60) + chunk(b"\xe2\x80", t=0) + flush(),
}

def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        assert len(data) <= 4096, name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {OUT}")

if __name__ == "__main__":
    main()
