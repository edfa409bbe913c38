/**
 * Every llama.cpp quant type bitcrush reads against golden blocks from an independent numpy
 * dequantizer (scripts/gguf-fixture.py → test/fixtures/gguf-blocks.json): bit for bit.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ggmlType } from '../src/io/gguf-quants.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/gguf-blocks.json', import.meta.url));
const blocks = (JSON.parse(readFileSync(FIXTURE, 'utf8')) as { blocks: Record<string, { block_hex: string; values_f32_base64: string }> }).blocks;

for (const [name, b] of Object.entries(blocks)) {
  test(`${name}: one block dequantizes to the numpy reference's values bit for bit`, () => {
    const t = ggmlType(name);
    const bytes = Uint8Array.from(Buffer.from(b.block_hex, 'hex'));
    assert.equal(bytes.length, t.blockBytes);
    const raw = Buffer.from(b.values_f32_base64, 'base64');
    const want = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    assert.equal(want.length, t.blockWeights);
    const got = new Float32Array(t.blockWeights);
    t.dequantize(bytes, got);
    const bad = got.findIndex((v, i) => !Object.is(v, want[i]));
    assert.equal(bad, -1, `${name}: value ${bad} is ${got[bad]}, the reference says ${want[bad]}`);
  });
}

test('the fixture covers every quantized type of the reader', () => {
  assert.deepEqual(Object.keys(blocks).sort(), ['Q2_K', 'Q3_K', 'Q4_0', 'Q4_1', 'Q4_K', 'Q5_0', 'Q5_1', 'Q5_K', 'Q6_K', 'Q8_0']);
});
