/**
 * Hugging Face GPTQ tensors ↔ bitcrush's uniform formats (src/interop/gptq.ts), against fixtures
 * packed by an independent numpy reference of the published packers (scripts/gptq-fixture.py,
 * test/fixtures/gptq-packing.json): 2, 3 (words crossed), 4 and 8 bits, sym and asym, act-order
 * g_idx, v1 (zero − 1) and v2. Reading gives the reference's weights; writing gives back the
 * reference's exact int32 words.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dequantizeGroups } from '../src/formats/quantized.js';
import { getFormat, packGroups } from '../src/formats/registry.js';
import { GptqLayoutError, gptqToGroups, groupsToGptq, type GptqCheckpointFormat, type GptqTensors } from '../src/interop/gptq.js';

interface Case {
  bits: number; sym: boolean; desc_act: boolean; checkpoint_format: GptqCheckpointFormat;
  in: number; out: number; group_size: number;
  qweight: number[]; qzeros: number[]; scales: number[]; g_idx: number[];
  w_sum: number; w_moment: number; w_first: number[];
}
const FIXTURE = fileURLToPath(new URL('../../test/fixtures/gptq-packing.json', import.meta.url));
const cases = (JSON.parse(readFileSync(FIXTURE, 'utf8')) as { cases: Case[] }).cases;

const tensorsOf = (c: Case): GptqTensors => ({
  qweight: Int32Array.from(c.qweight), qzeros: Int32Array.from(c.qzeros), scales: Uint16Array.from(c.scales), gIdx: Int32Array.from(c.g_idx),
});
const layoutOf = (c: Case) => ({ bits: c.bits, outDim: c.out, inDim: c.in, groupSize: c.group_size, checkpointFormat: c.checkpoint_format });
const name = (c: Case) => `${c.bits}-bit ${c.sym ? 'sym' : 'asym'}${c.desc_act ? ' act-order' : ''} ${c.checkpoint_format}`;

test('fixture covers every bit-width, both zero formats and act-order', () => {
  assert.deepEqual([...new Set(cases.map((c) => c.bits))].sort(), [2, 3, 4, 8]);
  assert.ok(cases.some((c) => c.desc_act) && cases.some((c) => !c.desc_act));
  assert.ok(cases.some((c) => c.checkpoint_format === 'gptq') && cases.some((c) => c.checkpoint_format === 'gptq_v2'));
});

for (const c of cases) {
  test(`GPTQ ${name(c)}: read gives the reference's weights, write gives its words back`, () => {
    const g = gptqToGroups(tensorsOf(c), layoutOf(c));
    assert.equal(g.perm !== null, c.desc_act);
    const w = dequantizeGroups(g); // [out, in]
    assert.deepEqual([...w.subarray(0, 8)], c.w_first);
    let sum = 0, moment = 0;
    for (let i = 0; i < w.length; i++) { sum += w[i]!; moment += i * w[i]!; }
    assert.ok(Math.abs(sum - c.w_sum) <= 1e-9 * Math.max(1, Math.abs(c.w_sum)), `sum ${sum} vs ${c.w_sum}`);
    assert.ok(Math.abs(moment - c.w_moment) <= 1e-9 * Math.max(1, Math.abs(c.w_moment)), `moment ${moment} vs ${c.w_moment}`);

    // stored in a bitcrush format, exactly: the symmetric grid without a zero blob
    const packed = packGroups(g);
    assert.equal(packed.format, c.sym ? 'uniform-sym' : 'uniform-asym');
    assert.deepEqual(getFormat(packed.format).dequantize(packed), w);

    const back = groupsToGptq(g, c.checkpoint_format).tensors;
    assert.deepEqual([...back.qweight], c.qweight);
    assert.deepEqual([...back.qzeros], c.qzeros);
    assert.deepEqual([...back.scales], c.scales);
    assert.deepEqual([...back.gIdx], c.g_idx);
  });
}

test('GPTQ: v1 vs v2 differ by the zero offset of 1', () => {
  const c = cases.find((k) => k.checkpoint_format === 'gptq' && !k.sym)!;
  const v1 = gptqToGroups(tensorsOf(c), layoutOf(c));
  const v2 = gptqToGroups(tensorsOf(c), { ...layoutOf(c), checkpointFormat: 'gptq_v2' });
  assert.deepEqual([...v2.zero].map((z) => z + 1), [...v1.zero]);
});

test('GPTQ: inputs that are not representable are refused with the reason', () => {
  const c = cases.find((k) => k.bits === 4)!;
  const bad = (t: Partial<GptqTensors>, l: Partial<ReturnType<typeof layoutOf>>, why: RegExp) =>
    assert.throws(() => gptqToGroups({ ...tensorsOf(c), ...t }, { ...layoutOf(c), ...l }), (e: Error) => e instanceof GptqLayoutError && why.test(e.message));
  bad({ qweight: Int32Array.from(c.qweight).subarray(1) }, {}, /qweight has \d+ values, expected/);
  bad({}, { bits: 5 }, /bits 5 is not one of 2, 3, 4, 8/);
  bad({}, { outDim: 48 }, /multiple of 32/);
  const uneven = Int32Array.from(c.g_idx);
  uneven[uneven.indexOf(0)] = 1; // group 0 one column short, group 1 one over
  bad({ gIdx: uneven }, {}, /g_idx puts \d+ columns in group 0/);
  const outside = Int32Array.from(c.g_idx);
  outside[3] = 99;
  bad({ gIdx: outside }, {}, /g_idx\[3\] = 99 is outside/);
  // zero 0 has no v1 encoding
  const g = gptqToGroups(tensorsOf(c), { ...layoutOf(c), checkpointFormat: 'gptq_v2' });
  g.zero[0] = 0;
  assert.throws(() => groupsToGptq(g, 'gptq'), /zero point 0 .* v1 format/);
  assert.doesNotThrow(() => groupsToGptq(g, 'gptq_v2'));
  g.bits[1] = 2;
  assert.throws(() => groupsToGptq(g, 'gptq_v2'), /different bit-widths/);
});
