"""Golden blocks of every llama.cpp quant type bitcrush reads (test/fixtures/gguf-blocks.json).

An independent numpy dequantizer written from the block layouts of ggml-common.h /
ggml-quants.c (vectorised over the block, float32 arithmetic), run on one seeded random block
per type whose float16 fields hold ordinary values. The TypeScript reader must reproduce the
values bit for bit (test/gguf-blocks.test.ts).

    /usr/bin/python3 scripts/gguf-fixture.py test/fixtures/gguf-blocks.json
"""
import base64
import json
import sys

import numpy as np

rng = np.random.default_rng(17)
f32 = np.float32


def half(v):
    return np.frombuffer(np.float16(v).tobytes(), dtype=np.uint8)


def h(b, o):
    return f32(np.frombuffer(bytes(b[o:o + 2]), dtype=np.float16)[0])


def rand_block(size, halves):
    b = rng.integers(0, 256, size=size, dtype=np.uint8)
    for o, v in halves:
        b[o:o + 2] = half(v)
    return b


def nibbles(qs):
    return np.concatenate([qs & 15, qs >> 4]).astype(np.int32)


def q8_0(b):
    return h(b, 0) * b[2:34].view(np.int8).astype(f32)


def q4_0(b):
    return h(b, 0) * (nibbles(b[2:18]) - 8).astype(f32)


def q4_1(b):
    return h(b, 0) * nibbles(b[4:20]).astype(f32) + h(b, 2)


def high_bits32(qh_bytes):
    qh = int.from_bytes(bytes(qh_bytes), 'little')
    return np.array([(qh >> j) & 1 for j in range(32)], dtype=np.int32)


def q5_0(b):
    q = nibbles(b[6:22]) | (high_bits32(b[2:6]) << 4)
    return h(b, 0) * (q - 16).astype(f32)


def q5_1(b):
    q = nibbles(b[8:24]) | (high_bits32(b[4:8]) << 4)
    return h(b, 0) * q.astype(f32) + h(b, 2)


def k4_scales(s):
    """8 six-bit (scale, min) pairs from 12 bytes."""
    s = s.astype(np.int32)
    sc = np.zeros(8, np.int32)
    mn = np.zeros(8, np.int32)
    sc[:4] = s[0:4] & 63
    mn[:4] = s[4:8] & 63
    sc[4:] = (s[8:12] & 15) | ((s[0:4] >> 6) << 4)
    mn[4:] = (s[8:12] >> 4) | ((s[4:8] >> 6) << 4)
    return sc, mn


def q4_k(b):
    d, dmin = h(b, 0), h(b, 2)
    sc, mn = k4_scales(b[4:16])
    qs = b[16:144].reshape(4, 32).astype(np.int32)
    q = np.stack([qs & 15, qs >> 4], axis=1).reshape(8, 32)  # sub-block 2c: low nibbles, 2c+1: high
    return ((d * sc.astype(f32))[:, None] * q.astype(f32) - (dmin * mn.astype(f32))[:, None]).reshape(-1)


def q5_k(b):
    d, dmin = h(b, 0), h(b, 2)
    sc, mn = k4_scales(b[4:16])
    qh = b[16:48].astype(np.int32)
    qs = b[48:176].reshape(4, 32).astype(np.int32)
    low = np.stack([qs & 15, qs >> 4], axis=1).reshape(8, 32)
    high = np.stack([(qh >> k) & 1 for k in range(8)])  # sub-block k takes bit k of qh[l]
    q = low + 16 * high
    return ((d * sc.astype(f32))[:, None] * q.astype(f32) - (dmin * mn.astype(f32))[:, None]).reshape(-1)


def q6_k(b):
    ql, qh, sc, d = b[0:128].astype(np.int32), b[128:192].astype(np.int32), b[192:208].view(np.int8).astype(np.int32), h(b, 208)
    out = np.zeros(256, f32)
    for n in range(2):
        L, H = ql[64 * n:64 * n + 64], qh[32 * n:32 * n + 32]
        quarters = [
            (L[:32] & 15) | ((H & 3) << 4),
            (L[32:] & 15) | (((H >> 2) & 3) << 4),
            (L[:32] >> 4) | (((H >> 4) & 3) << 4),
            (L[32:] >> 4) | (((H >> 6) & 3) << 4),
        ]
        for k, qv in enumerate(quarters):
            s = sc[8 * n + 2 * k + (np.arange(32) >= 16)]  # sub-blocks of 16
            out[128 * n + 32 * k:128 * n + 32 * k + 32] = (d * s.astype(f32)) * (qv - 32).astype(f32)
    return out


def q2_k(b):
    sc = b[0:16].astype(np.int32)
    qs = b[16:80].astype(np.int32)
    d, dmin = h(b, 80), h(b, 82)
    out = np.zeros(256, f32)
    i = 0
    for n in range(2):
        q = qs[32 * n:32 * n + 32]
        for shift in (0, 2, 4, 6):
            for part in (q[:16], q[16:]):
                s = sc[i]
                out[16 * i:16 * i + 16] = (d * f32(s & 15)) * ((part >> shift) & 3).astype(f32) - dmin * f32(s >> 4)
                i += 1
    return out


def q3_k(b):
    hm = b[0:32].astype(np.int32)
    qs = b[32:96].astype(np.int32)
    s = b[96:108].astype(np.int32)
    d = h(b, 108)
    scales = []
    for j in range(16):
        low = s[j] & 15 if j < 8 else s[j - 8] >> 4
        high = (s[8 + j % 4] >> (2 * (j // 4))) & 3
        scales.append((low | (high << 4)) - 32)
    out = np.zeros(256, f32)
    i = 0
    bit = 0
    for n in range(2):
        q = qs[32 * n:32 * n + 32]
        for shift in (0, 2, 4, 6):
            for half_ in (0, 16):
                v = ((q[half_:half_ + 16] >> shift) & 3) - np.where(hm[half_:half_ + 16] & (1 << bit), 0, 4)
                out[16 * i:16 * i + 16] = (d * f32(scales[i])) * v.astype(f32)
                i += 1
            bit += 1
    return out


TYPES = {
    'Q8_0': (34, [(0, 0.013)], q8_0),
    'Q4_0': (18, [(0, -0.021)], q4_0),
    'Q4_1': (20, [(0, 0.017), (2, -0.12)], q4_1),
    'Q5_0': (22, [(0, 0.009)], q5_0),
    'Q5_1': (24, [(0, 0.007), (2, -0.08)], q5_1),
    'Q2_K': (84, [(80, 0.0031), (82, 0.0017)], q2_k),
    'Q3_K': (110, [(108, 0.0023)], q3_k),
    'Q4_K': (144, [(0, 0.0011), (2, 0.0009)], q4_k),
    'Q5_K': (176, [(0, 0.0007), (2, 0.0005)], q5_k),
    'Q6_K': (210, [(208, 0.0004)], q6_k),
}

out = {}
for name, (size, halves, fn) in TYPES.items():
    b = rand_block(size, halves)
    v = fn(b).astype(f32)
    assert v.dtype == f32 and np.all(np.isfinite(v))
    out[name] = {'block_hex': bytes(b).hex(), 'values_f32_base64': base64.b64encode(v.tobytes()).decode()}

with open(sys.argv[1], 'w') as f:
    json.dump({'generator': 'scripts/gguf-fixture.py', 'blocks': out}, f, indent=1)
    f.write('\n')
