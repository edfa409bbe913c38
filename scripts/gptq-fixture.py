"""Independent reference for test/interop-gptq.test.ts: packs random GPTQ linears the way the
published packers do (AutoGPTQ's QuantLinear.pack loop: 32/bits values per int32 for 2/4/8 bits,
the 10 + 2/3 + 10 + 1/3 + 10 split over three words for 3 bits; qzeros the same along the
outputs; v1 stores zero - 1), written from their description, not their code.

  /usr/bin/python3 scripts/gptq-fixture.py > test/fixtures/gptq-packing.json
"""
import json
import numpy as np

def pack_rows(intw, bits):
    """intw: uint32 [n, cols] -> uint32 [n*bits/32, cols], packed along axis 0."""
    n, cols = intw.shape
    out = np.zeros((n // 32 * bits, cols), dtype=np.uint32)
    i, row = 0, 0
    while row < out.shape[0]:
        if bits in (2, 4, 8):
            for j in range(i, i + 32 // bits):
                out[row] |= intw[j] << np.uint32(bits * (j - i))
            i += 32 // bits
            row += 1
        else:  # 3 bits: 32 values in three words
            for j in range(i, i + 10):
                out[row] |= intw[j] << np.uint32(3 * (j - i))
            i += 10
            out[row] |= intw[i] << np.uint32(30)
            row += 1
            out[row] |= (intw[i] >> np.uint32(2)) & np.uint32(1)
            i += 1
            for j in range(i, i + 10):
                out[row] |= intw[j] << np.uint32(3 * (j - i) + 1)
            i += 10
            out[row] |= intw[i] << np.uint32(31)
            row += 1
            out[row] |= (intw[i] >> np.uint32(1)) & np.uint32(3)
            i += 1
            for j in range(i, i + 10):
                out[row] |= intw[j] << np.uint32(3 * (j - i) + 2)
            i += 10
            row += 1
    return out

def case(rng, bits, sym, act_order, fmt, in_dim=32, out_dim=32, group=8):
    maxq = 2 ** bits - 1
    groups = in_dim // group
    q = rng.integers(0, maxq + 1, size=(in_dim, out_dim)).astype(np.uint32)  # [in, out]
    if sym:
        z = np.full((groups, out_dim), 2 ** (bits - 1), dtype=np.int64)
    else:  # v1 cannot hold zero 0 (it stores z - 1)
        z = rng.integers(1 if fmt == 'gptq' else 0, maxq + 1, size=(groups, out_dim))
    scales = (rng.uniform(0.001, 0.1, size=(groups, out_dim)) * rng.choice([-1, 1], size=(groups, out_dim))).astype(np.float16)
    if act_order:
        perm = rng.permutation(in_dim)  # stored j holds column perm[j]
        g_idx = np.empty(in_dim, dtype=np.int32)
        g_idx[perm] = np.arange(in_dim) // group
    else:
        g_idx = (np.arange(in_dim) // group).astype(np.int32)
    stored_z = (z - (1 if fmt == 'gptq' else 0)).astype(np.uint32)
    qweight = pack_rows(q, bits).view(np.int32)
    qzeros = pack_rows(stored_z.T.copy(), bits).T.copy().view(np.int32)  # packed along the outputs
    # W [out, in] = scales[g_idx[i], o] * (q[i, o] - z[g_idx[i], o]), in float32 like the fp32 reference
    s32 = scales.astype(np.float32)
    w = (s32[g_idx, :] * (q.astype(np.float32) - z[g_idx, :].astype(np.float32))).T
    return {
        'bits': bits, 'sym': sym, 'desc_act': act_order, 'checkpoint_format': fmt,
        'in': in_dim, 'out': out_dim, 'group_size': group,
        'qweight': qweight.flatten().tolist(), 'qzeros': qzeros.flatten().tolist(),
        'scales': scales.view(np.uint16).flatten().tolist(), 'g_idx': g_idx.tolist(),
        # a checksum of W instead of W itself keeps the file small: sum and sum of i*w in float64
        'w_sum': float(w.astype(np.float64).sum()),
        'w_moment': float((w.astype(np.float64).flatten() * np.arange(w.size)).sum()),
        'w_first': w.flatten()[:8].astype(np.float64).tolist(),
    }

rng = np.random.default_rng(17)
cases = []
for bits in (2, 3, 4, 8):
    cases.append(case(rng, bits, sym=False, act_order=True, fmt='gptq'))
    cases.append(case(rng, bits, sym=True, act_order=False, fmt='gptq_v2' if bits != 3 else 'gptq'))
cases.append(case(rng, 3, sym=False, act_order=False, fmt='gptq_v2'))
print(json.dumps({'generator': 'scripts/gptq-fixture.py', 'cases': cases}))
