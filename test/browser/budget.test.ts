/**
 * The page's up-front memory check (src/browser/budget.ts) on headers alone: a Llama-2-7B-shaped
 * header (dense F16, 13.5 GB as a file) parsed from its first bytes, refused on wasm with a
 * message naming what would fit, its WebGPU context capped by the binding limit; a header that
 * lies about the file's size, or arrives short, is caught before any weight is read.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { budgetRefusal, memoryBudget, packedFromPrefix } from '../../src/browser/budget.js';
import { InputError } from '../../src/io/errors.js';
import { PackedModel } from '../../src/packed/reader.js';
import { headerOnlyPackedFile } from './fixtures.js';

const MiB = 2 ** 20;

describe('memory budget from a packed header', () => {
  const { header, size } = headerOnlyPackedFile('llama2-7b');

  it('asks for more bytes until the header is in, then parses it without reading data', () => {
    assert.equal(packedFromPrefix('big.bcq', header.subarray(0, 5), size), 8);
    const need = packedFromPrefix('big.bcq', header.subarray(0, 100), size);
    assert.equal(typeof need, 'number');
    assert.ok((need as number) > 100 && (need as number) <= header.byteLength, `needs ${need} of a ${header.byteLength}-byte header`);
    const packed = packedFromPrefix('big.bcq', header, size);
    assert.ok(packed instanceof PackedModel);
    assert.equal(packed.config.nLayers, 32);
  });

  it('refuses a header that does not match the announced size (untrusted input)', () => {
    assert.throws(() => packedFromPrefix('big.bcq', header, size - 1), (e: unknown) => e instanceof InputError && /big\.bcq/.test(e.message) && /cover|outside the data section/.test(e.message));
    assert.throws(() => packedFromPrefix('big.bcq', header, header.byteLength - 10), (e: unknown) => e instanceof InputError && /truncated|bad safetensors/.test(e.message));
    const lying = header.slice();
    new DataView(lying.buffer).setBigUint64(0, 2n ** 40n, true);
    assert.throws(() => packedFromPrefix('big.bcq', lying, size), (e: unknown) => e instanceof InputError && /header length/.test(e.message));
  });

  it('wasm refuses 7B in F16 (run as float32), naming the parameters and bits that would fit', () => {
    const packed = packedFromPrefix('big.bcq', header, size) as PackedModel;
    const b = memoryBudget(packed, { gpu: 'no WebGPU adapter' });
    assert.equal(b.wasm.fits, false);
    // 6.5 B linear weights as float32, plus activations and the KV cache
    assert.ok(b.wasm.needBytes > 24 * 2 ** 30, `needs ${b.wasm.needBytes}`);
    const why = budgetRefusal(b, 'auto')!;
    assert.match(why, /wasm needs 2\d\.\d GiB of kernel memory and holds 4\.0 GiB: at this file's 32\.00 bits per weight/);
    const fit = /about ([\d.]+) ([MB]) parameters fit \(this model has 6\.7 B\), or this model packed at ≤ ([\d.]+) bits per weight/.exec(why);
    assert.ok(fit, why);
    const params = Number(fit[1]) * (fit[2] === 'B' ? 1e9 : 1e6);
    // 4 GiB at 32 bits per weight is 1.07 B parameters, less the activations and KV cache; 4 GiB over 6.5 B weights is 5.3 bits
    assert.ok(params > 0.5e9 && params < 1.07e9, why);
    assert.ok(Number(fit[3]) > 3 && Number(fit[3]) < 5.3, why);
    assert.match(why, /WebGPU: no WebGPU adapter/);
    assert.equal(budgetRefusal(b, 'webgpu'), 'does not fit: WebGPU: no WebGPU adapter');
  });

  it('WebGPU: the context is capped by the binding limit; asking for more names what fits', () => {
    const packed = packedFromPrefix('big.bcq', header, size) as PackedModel;
    const gpu = { maxBufferBytes: 256 * MiB, maxBindingBytes: 128 * MiB };
    const b = memoryBudget(packed, { gpu });
    // the key cache holds 32 layers × 4096 floats per position: 512 KiB, so 256 positions in 128 MiB
    assert.equal(b.webgpu.positions, 256);
    assert.equal(b.webgpu.fits, true);
    assert.equal(budgetRefusal(b, 'auto'), undefined);
    const asked = memoryBudget(packed, { gpu, positions: 4096 });
    assert.equal(asked.webgpu.fits, false);
    assert.match(asked.webgpu.why!, /4096 positions needs 2\.0 GiB in one buffer.*a context of 256 positions fits/);
    const tooLong = memoryBudget(packed, { gpu: { maxBufferBytes: 2 ** 32, maxBindingBytes: 2 ** 32 }, positions: 8192 });
    assert.match(tooLong.webgpu.why!, /exceeds the model's 4096/);
  });

  it('navigator.deviceMemory below the need warns, never refuses', () => {
    const packed = packedFromPrefix('big.bcq', header, size) as PackedModel;
    const b = memoryBudget(packed, { gpu: { maxBufferBytes: 2 ** 32, maxBindingBytes: 2 ** 31 }, deviceMemoryGiB: 8 });
    assert.equal(b.webgpu.fits, true);
    assert.match(b.warning ?? '', /reports 8 GiB/);
  });
});
