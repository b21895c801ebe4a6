#!/usr/bin/env python3
"""Writes LZO1X test vectors with liblzo2 (through python-lzo) for the kdump reader's tests.

Run in a throwaway venv:  python3 -m venv /tmp/v && /tmp/v/bin/pip install python-lzo
(needs liblzo2-dev), then  /tmp/v/bin/python make_vectors.py  in this folder.
Each NAME.page is a 4096-byte page; NAME.lzo1x_1 is lzo1x_1_compress output (what QEMU's
dump-guest-memory -l and makedumpfile -l write), NAME.lzo1x_999 is lzo1x_999_compress output
(longest matches, every instruction kind). header=False: a bare LZO1X stream, as kdump stores.
"""
import random
import lzo

def pages():
    r = random.Random(20261204)
    yield "text", (b"The quick brown fox jumps over the lazy dog. " * 100)[:4096]
    yield "random", bytes(r.getrandbits(8) for _ in range(4096))
    p = bytearray(4096); p[0:8] = b"\x01\x02\x03\x04\x05\x06\x07\x08"; p[4000] = 0xAB
    yield "sparse", bytes(p)
    yield "zero", bytes(4096)
    # Mixed: runs, short repeats at every distance class (1 B .. 48 KiB is capped by 4 KiB).
    m = bytearray()
    while len(m) < 4096:
        k = r.randrange(6)
        if k == 0:
            m += bytes([r.getrandbits(8)]) * r.randrange(1, 300)
        elif k == 1:
            m += bytes(r.getrandbits(8) for _ in range(r.randrange(1, 40)))
        elif len(m) > 8:
            d = r.randrange(1, len(m)); n = r.randrange(2, 60)
            for _ in range(n):
                m.append(m[-d])
    yield "mixed", bytes(m[:4096])

for name, page in pages():
    assert len(page) == 4096
    open(name + ".page", "wb").write(page)
    for level in (1, 9):
        c = lzo.compress(page, level, False)
        assert lzo.decompress(c, False, 4096) == page
        open(f"{name}.lzo1x_{1 if level == 1 else 999}", "wb").write(c)
