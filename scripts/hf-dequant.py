"""Independent dequantizer of Hugging Face GPTQ and AQLM checkpoints, for checking what
`bitcrush export --to gptq|aqlm` writes (test/interop-python.test.ts). Written from the
documented layouts, not from bitcrush's code (numpy only):

GPTQ (AutoGPTQ / GPTQModel / Optimum; quantization_config bits, group_size, sym, desc_act,
checkpoint_format):
  qweight int32 [in * bits / 32, out]: input rows packed along axis 0, 32/bits values per word
    from the low bits up (2, 4, 8 bits); 3 bits: 32 values per 3 words, value 10 split over
    words 0/1 (2 + 1 bits), value 21 over words 1/2 (1 + 2 bits)
  qzeros int32 [groups, out * bits / 32]: the same packing along the output axis; checkpoint
    format "gptq" (v1) stores zero - 1, "gptq_v2" the zero itself
  scales float16 [groups, out]; g_idx int32 [in]: the group of each input column
  W[o, i] = scales[g_idx[i], o] * (q[i, o] - zero[g_idx[i], o])
AQLM (Vahe1994/AQLM, transformers' aqlm integration; in_group_size, out_group_size,
num_codebooks, nbits_per_codebook):
  codes int8/int16 [out / out_group, in / in_group, num_codebooks] (two's complement of the
    unsigned code); codebooks float16 [num_codebooks, 2^nbits, out_group, in_group];
    scales float16 [out / out_group, 1, 1, 1]
  W[o * out_group + a, j * in_group + t] = scales[o] * sum_m codebooks[m, codes[o, j, m], a, t]
    (AQLM's _dequantize_weight: float32 sums over m in order, then the scale of the out group)

  /usr/bin/python3 scripts/hf-dequant.py <hf dir> <out.safetensors>

writes every quantized linear's dequantized weight as <prefix>.weight, float32 [out, in], in the
checkpoint's own (Hugging Face) row order.
"""
import json
import os
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        arr = np.frombuffer(data[base + a : base + b], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        out[name] = arr
    return out


def write_safetensors(path, tensors):
    header = {}
    offset = 0
    blobs = []
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def unpack_rows(packed, bits):
    """int32 [n * bits / 32, cols] -> int64 [n, cols], values packed along axis 0."""
    w = packed.astype(np.uint32).astype(np.int64)
    mask = (1 << bits) - 1
    if bits in (2, 4, 8):
        per = 32 // bits
        out = np.zeros((w.shape[0] * per, w.shape[1]), dtype=np.int64)
        for j in range(per):
            out[j::per] = (w >> (bits * j)) & mask
        return out
    assert bits == 3
    words = w.reshape(-1, 3, w.shape[1])
    out = np.zeros((words.shape[0], 32, w.shape[1]), dtype=np.int64)
    w0, w1, w2 = words[:, 0], words[:, 1], words[:, 2]
    for j in range(10):
        out[:, j] = (w0 >> (3 * j)) & 7
    out[:, 10] = ((w0 >> 30) & 3) | ((w1 & 1) << 2)
    for j in range(10):
        out[:, 11 + j] = (w1 >> (1 + 3 * j)) & 7
    out[:, 21] = ((w1 >> 31) & 1) | ((w2 & 3) << 1)
    for j in range(10):
        out[:, 22 + j] = (w2 >> (2 + 3 * j)) & 7
    return out.reshape(-1, w.shape[1])


def gptq_weight(t, prefix, qc):
    bits = qc["bits"]
    q = unpack_rows(t[prefix + ".qweight"], bits)  # [in, out]
    zeros = unpack_rows(t[prefix + ".qzeros"].T, bits).T  # [groups, out]
    if qc.get("checkpoint_format", "gptq") == "gptq":
        zeros = zeros + 1  # as AutoGPTQ's dequantization adds it back (no wrap)
    scales = t[prefix + ".scales"].astype(np.float32)  # [groups, out]
    n_in = q.shape[0]
    g_idx = t.get(prefix + ".g_idx")
    if g_idx is None:
        gs = qc["group_size"] if qc["group_size"] > 0 else n_in
        g_idx = np.arange(n_in) // gs
    g_idx = g_idx.astype(np.int64)
    w = scales[g_idx] * (q - zeros[g_idx]).astype(np.float32)  # [in, out]
    return w.T


def aqlm_weight(t, prefix, qc):
    codes = t[prefix + ".codes"].astype(np.int64)
    books = t[prefix + ".codebooks"].astype(np.float32)  # [M, 2^B, og, ig]
    scales = t[prefix + ".scales"].astype(np.float32)
    codes = codes % (1 << qc["nbits_per_codebook"])
    n_og, n_ig, m = codes.shape
    _, _, og, ig = books.shape
    assert og == qc["out_group_size"] and ig == qc["in_group_size"]
    blocks = np.zeros((n_og, n_ig, og, ig), dtype=np.float32)
    for k in range(m):
        blocks += books[k][codes[:, :, k]]
    blocks *= scales.reshape(n_og, 1, 1, 1)
    return blocks.transpose(0, 2, 1, 3).reshape(n_og * og, n_ig * ig)


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    t = read_safetensors(os.path.join(src, "model.safetensors"))
    method = qc["quant_method"]
    key = ".qweight" if method == "gptq" else ".codes"
    result = {}
    for name in sorted(t):
        if name.endswith(key):
            prefix = name[: -len(key)]
            result[prefix + ".weight"] = gptq_weight(t, prefix, qc) if method == "gptq" else aqlm_weight(t, prefix, qc)
    write_safetensors(out, result)
    print(json.dumps({"method": method, "linears": len(result)}))


main()
