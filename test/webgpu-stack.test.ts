/**
 * linear.ts stackKernels, the one-dispatch q/k/v and gate/up of the GPU forward pass: layers of
 * the same format and options stack (their per-row blobs concatenated row-major, so row r of
 * the stack is row r − offset of its layer), layers whose shared blobs differ (act-order perms,
 * AQLM codebooks) or whose options differ do not. The stacked kernels' numbers are checked on
 * the GPU by the forward tests (test/webgpu.test.ts, test/browser/bench-llama-webgpu.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getFormat } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { mulberry32 } from '../src/quant/random.js';
import { packedKernel } from '../src/webgpu/kernels/index.js';
import { stackKernels } from '../src/webgpu/linear.js';

const rand = mulberry32(3);
function tensor(format: string, outDim: number, inDim: number, params: object): PackedTensor {
  const f = getFormat(format);
  return f.pack(f.randomPayload(outDim, inDim, params as never, rand)) as PackedTensor;
}
const layer = (t: PackedTensor) => ({ kernel: packedKernel(t), outDim: t.outDim });

describe('stackKernels', () => {
  it('stacks uniform layers of one format and options, per-row blobs row after row', () => {
    const p = { bits: 2, groupSize: 32, actOrder: false };
    const ts = [tensor('uniform-asym', 8, 64, p), tensor('uniform-asym', 4, 64, p), tensor('uniform-asym', 4, 64, p)];
    const s = stackKernels(ts.map(layer));
    assert.ok(s !== undefined);
    const k0 = packedKernel(ts[0]!);
    s.buffers.forEach((b, i) => {
      if (!k0.buffers[i]!.perRow) return assert.deepEqual(b.bytes, k0.buffers[i]!.bytes);
      const parts = ts.map((t) => packedKernel(t).buffers[i]!.bytes);
      assert.deepEqual(b.bytes, Uint8Array.from(parts.flatMap((x) => Array.from(x))));
    });
  });

  it('refuses layers whose options or shared blobs differ', () => {
    const p = { bits: 2, groupSize: 32, actOrder: false };
    assert.equal(stackKernels([layer(tensor('uniform-asym', 4, 64, p)), layer(tensor('uniform-asym', 4, 64, { ...p, bits: 4 }))]), undefined);
    assert.equal(stackKernels([layer(tensor('uniform-asym', 4, 64, p)), layer(tensor('uniform-sym', 4, 64, p))]), undefined);
    const perm = { ...p, actOrder: true };
    assert.equal(stackKernels([layer(tensor('uniform-asym', 4, 64, perm)), layer(tensor('uniform-asym', 4, 64, perm))]), undefined);
    const aqlm = getFormat('aqlm').examples()[0]!;
    assert.equal(stackKernels([layer(tensor('aqlm', aqlm.outDim, aqlm.inDim, aqlm.params)), layer(tensor('aqlm', aqlm.outDim, aqlm.inDim, aqlm.params))]), undefined);
  });
});
