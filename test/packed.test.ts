/**
 * The packed model file: stories260K with its linears quantized by a small RTN fixture into
 * every uniform format variant, written atomically, read back and run by the runtime on the
 * packed kernels; corrupted files must fail with an InputError naming the file.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createReferenceBackend } from '../src/backend/reference.js';
import { BufferSource } from '../src/io/bytes.js';
import { InputError } from '../src/io/errors.js';
import { Llama2cModel } from '../src/io/llama2c.js';
import { dequantizeGroups, groupCount, roundToF16, type GroupQuantized } from '../src/formats/quantized.js';
import { getFormat, packGroups } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { LINEARS, layerTensor, type ModelSource } from '../src/model/weights.js';
import { FileSource } from '../src/node/fs.js';
import { writeFileAtomic } from '../src/node/atomic-write.js';
import { PACKED_ALIGN, PAD_PREFIX } from '../src/packed/metadata.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { LlamaModel } from '../src/runtime/model.js';

const backend = createReferenceBackend();
const STORIES = fileURLToPath(new URL('../../../shared/models/stories260K/stories260K.bin', import.meta.url));

/** Min-max round-to-nearest onto float16 scales (a fixture, not the RTN method). */
function rtnFixture(w: Float32Array, outDim: number, inDim: number, o: { bits: number; groupSize: number; sym: boolean; actOrder: boolean }): GroupQuantized {
  const nGroups = groupCount(inDim, o.groupSize);
  const maxq = 2 ** o.bits - 1;
  // act-order fixture: reversed columns, so stored column j is original column in−1−j
  const perm = o.actOrder ? Int32Array.from({ length: inDim }, (_, j) => inDim - 1 - j) : null;
  const q = new Uint8Array(outDim * inDim);
  const scale = new Float32Array(outDim * nGroups);
  const zero = new Float32Array(outDim * nGroups);
  for (let r = 0; r < outDim; r++) {
    for (let g = 0; g < nGroups; g++) {
      const cols = Array.from({ length: Math.min(o.groupSize, inDim - g * o.groupSize) }, (_, k) => g * o.groupSize + k);
      const vals = cols.map((j) => w[r * inDim + (perm ? perm[j]! : j)]!);
      const lo = Math.min(0, ...vals);
      const hi = Math.max(0, ...vals);
      const s = o.sym ? roundToF16(Math.max(hi, -lo) / 2 ** (o.bits - 1) || 1) : roundToF16((hi - lo) / maxq || 1);
      const z = o.sym ? 2 ** (o.bits - 1) : Math.min(maxq, Math.max(0, Math.round(-lo / s)));
      scale[r * nGroups + g] = s;
      zero[r * nGroups + g] = z;
      cols.forEach((j, k) => (q[r * inDim + j] = Math.min(maxq, Math.max(0, Math.round(vals[k]! / s) + z))));
    }
  }
  return { outDim, inDim, groupSize: o.groupSize, bits: new Uint8Array(nGroups).fill(o.bits), q, scale, zero, perm };
}

const VARIANTS = [
  { bits: 4, groupSize: 32, sym: false, actOrder: false },
  { bits: 3, groupSize: 32, sym: true, actOrder: false },
  { bits: 2, groupSize: 16, sym: false, actOrder: true },
  { bits: 8, groupSize: 0, sym: false, actOrder: false }, // 0: per-channel
  { bits: 3, groupSize: 32, sym: false, actOrder: true },
  { bits: 4, groupSize: 0, sym: true, actOrder: true },
];

const source = new Llama2cModel(new FileSource(STORIES));
const groups = new Map<string, GroupQuantized>();
const packed = new Map<string, PackedTensor>();
let k = 0;
for (let l = 0; l < source.config.nLayers; l++) {
  for (const part of LINEARS) {
    const name = layerTensor(l, part);
    if (l === 0 && part === 'mlp.down_proj') continue; // one linear stays dense
    const [outDim, inDim] = source.tensors().find((t) => t.name === name)!.shape as [number, number];
    const v = VARIANTS[k++ % VARIANTS.length]!;
    const g = rtnFixture(source.load(name), outDim, inDim, { ...v, groupSize: v.groupSize || inDim });
    groups.set(name, g);
    packed.set(name, packGroups(g));
  }
}

/** The fake-quantized model: the same weights the packed file must compute with. */
const fakeQuantized: ModelSource = {
  name: 'fake-quantized',
  config: source.config,
  tensors: () => source.tensors(),
  load: (name) => (groups.has(name) ? dequantizeGroups(groups.get(name)!) : source.load(name)),
};

const dir = mkdtempSync(join(tmpdir(), 'bitcrush-packed-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const method = { name: 'rtn-fixture', options: { variants: VARIANTS.length } };
const plan = planPackedModel({ config: source.config, method, source, packed });
const path = join(dir, 'stories260K.bcq.safetensors');
const written = writeFileAtomic(path, plan.chunks(), { expectedSize: plan.size });
const bytes = new Uint8Array(readFileSync(path));

describe('packed model file', () => {
  it('uses both uniform formats and keeps one linear dense', () => {
    const formats = new Set([...packed.values()].map((t) => t.format));
    assert.deepEqual([...formats].sort(), ['uniform-asym', 'uniform-sym']);
    assert.equal(plan.header.tensors[layerTensor(0, 'mlp.down_proj')]!.format, 'dense');
  });

  it('reads back the identical tensors', () => {
    const pm = new PackedModel(new FileSource(path));
    assert.deepEqual(pm.config, source.config);
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    assert.deepEqual(pm.tensors().sort(byName), source.tensors().sort(byName));
    for (const { name } of source.tensors()) {
      if (packed.has(name)) {
        const t = pm.packed(name);
        assert.deepEqual(t.params, packed.get(name)!.params);
        for (const [blob, b] of Object.entries(packed.get(name)!.blobs)) assert.deepEqual(t.blobs[blob]!.bytes, b.bytes, `${name}.${blob}`);
        assert.deepStrictEqual(getFormat(t.format).unpack(t), groups.get(name));
        assert.deepStrictEqual(pm.load(name), dequantizeGroups(groups.get(name)!));
      } else {
        assert.deepStrictEqual(pm.load(name), source.load(name), name);
      }
    }
  });

  it('is a strict safetensors file with 64-byte aligned blobs', () => {
    assert.equal(written, bytes.byteLength);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.equal((8 + n) % PACKED_ALIGN, 0);
    assert.match(text, /^\{.*\} *$/s); // trailing padding is spaces only
    const header = JSON.parse(text) as Record<string, { data_offsets: [number, number]; dtype: string; shape: number[] }>;
    const ranges = Object.entries(header).filter(([name]) => name !== '__metadata__').sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
    let end = 0;
    for (const [name, e] of ranges) {
      assert.equal(e.data_offsets[0], end, `${name} starts where the previous tensor ends (no holes)`);
      if (!name.startsWith(PAD_PREFIX)) assert.equal(e.data_offsets[0] % PACKED_ALIGN, 0, `${name} aligned`);
      end = e.data_offsets[1];
    }
    assert.equal(8 + n + end, bytes.byteLength, 'the data section is fully indexed');
  });

  it('reports bits per weight that agree with the file size', () => {
    const t = plan.header.totals;
    const headerLen = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(bytes.byteLength - headerLen - t.denseBytes - t.paddingBytes, t.packedBytes);
    let weights = 0;
    let blobBytes = 0;
    for (const p of packed.values()) {
      weights += p.outDim * p.inDim;
      for (const b of Object.values(p.blobs)) blobBytes += b.bytes.byteLength;
    }
    assert.equal(t.packedWeights, weights);
    assert.equal(t.packedBytes, blobBytes);
    assert.ok(Math.abs(t.packedBpw - (blobBytes * 8) / weights) < 1e-12);
    // 2 to 8-bit levels plus their metadata: strictly between the level bits and float32
    assert.ok(t.packedBpw > 2 && t.packedBpw < 9, `packed bpw ${t.packedBpw}`);
  });

  it('runs in the runtime on packed kernels exactly like the fake-quantized model', () => {
    const pm = new PackedModel(new FileSource(path));
    const a = new LlamaModel(pm, { backend: backend, linear: pm.linears(backend), maxRows: 8 });
    const b = new LlamaModel(fakeQuantized, { backend: backend, maxRows: 8 });
    const close = (x: Float32Array, y: Float32Array, what: string) => {
      const scale = Math.max(...y.map(Math.abs));
      for (let i = 0; i < y.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= 1e-4 * scale, `${what}[${i}]: ${x[i]} vs ${y[i]}`);
    };
    const prompt = [1, 320, 48, 95, 7];
    close(a.forward(prompt, 0, 'all').slice(), b.forward(prompt, 0, 'all').slice(), 'prefill logits');
    close(a.forward([200], prompt.length).slice(), b.forward([200], prompt.length).slice(), 'decode logits');
  });
});

/** The file with its header JSON changed by `edit` (data untouched), as an in-memory source. */
function withHeader(edit: (h: Record<string, any>, meta: Record<string, any>) => void): BufferSource {
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const h = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const meta = JSON.parse(h.__metadata__.bitcrush);
  edit(h, meta);
  h.__metadata__.bitcrush = JSON.stringify(meta);
  const text = new TextEncoder().encode(JSON.stringify(h));
  const out = new Uint8Array(8 + text.byteLength + (bytes.byteLength - 8 - n));
  new DataView(out.buffer).setBigUint64(0, BigInt(text.byteLength), true);
  out.set(text, 8);
  out.set(bytes.subarray(8 + n), 8 + text.byteLength);
  return new BufferSource('corrupt.bcq', out);
}

function assertInputError(fn: () => unknown, pattern: RegExp, file = 'corrupt.bcq'): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.match(e.problem, pattern);
    return true;
  });
}

describe('corrupted packed files', () => {
  const q0 = layerTensor(0, 'self_attn.q_proj');
  const actOrdered = [...packed].find(([, t]) => t.blobs.perm !== undefined)![0];

  it('the unmodified header re-encoded still reads (the edits below are the only fault)', () => {
    assert.doesNotThrow(() => new PackedModel(withHeader(() => {})));
  });

  it('truncated file', () => {
    assertInputError(() => new PackedModel(new BufferSource('corrupt.bcq', bytes.subarray(0, bytes.byteLength - 100))), /outside the data section|truncated/);
    assertInputError(() => new PackedModel(new BufferSource('corrupt.bcq', bytes.subarray(0, 4))), /truncated/);
  });

  it('unknown format id, bad params, wrong bpw', () => {
    assertInputError(() => new PackedModel(withHeader((_, m) => (m.tensors[q0].format = 'q9_k'))), /unknown packed format "q9_k"/);
    assertInputError(() => new PackedModel(withHeader((_, m) => (m.tensors[q0].params.bits = 5))), /bad params: bits 5/);
    assertInputError(() => new PackedModel(withHeader((_, m) => (m.tensors[q0].bpw = 1))), /bits per weight/);
  });

  it('blob sizes that do not match the format', () => {
    // group size changed in the header: the scale blob no longer has the implied shape
    assertInputError(() => new PackedModel(withHeader((_, m) => (m.tensors[q0].params.groupSize = 16))), /expected F16/);
    assertInputError(() => new PackedModel(withHeader((h) => (h[`${q0}.q`].dtype = 'I16'))), /q_proj\.weight\.q/);
    assertInputError(() => new PackedModel(withHeader((h) => delete h[`${q0}.scale`])), /missing from the data|tensors cover .* a hole/);
  });

  it('shapes against the config, unknown and missing tensors', () => {
    assertInputError(() => new PackedModel(withHeader((_, m) => (m.config.hiddenDim = 200))), /config implies/);
    assertInputError(() => new PackedModel(withHeader((_, m) => (m.config.nHeads = 7))), /nHeads|dim/);
    assertInputError(() => new PackedModel(withHeader((_, m) => delete m.tensors['model.norm.weight'])), /model\.norm\.weight is missing/);
    assertInputError(() => new PackedModel(withHeader((h) => (h.extra = { dtype: 'U8', shape: [0], data_offsets: [0, 0] }))), /unexpected tensor extra/);
    assertInputError(() => new PackedModel(withHeader((_, m) => (m.version = 2))), /version 2/);
    assertInputError(() => new PackedModel(withHeader((h) => (h.__metadata__.format = 'pt'))), /not a bitcrush packed model/);
  });

  it('bad data behind a valid header fails when the tensor is used', () => {
    const e = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true)))))[`${actOrdered}.perm`];
    const broken = bytes.slice();
    const at = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true)) + e.data_offsets[0];
    broken[at] = broken[at + 2]!; // two equal column indices (I16 little-endian)
    broken[at + 1] = broken[at + 3]!;
    const pm = new PackedModel(new BufferSource('corrupt.bcq', broken));
    assertInputError(() => pm.linearFor(actOrdered, backend), /not a permutation/);
  });
});

describe('unquantized tensors as F16', () => {
  it('stores embeddings and norms as float16 when asked', () => {
    const half = planPackedModel({ config: source.config, method, source, packed, denseDtype: 'F16' });
    const out = join(dir, 'f16.safetensors');
    writeFileAtomic(out, half.chunks(), { expectedSize: half.size });
    const pm = new PackedModel(new FileSource(out));
    assert.equal(half.header.totals.denseBytes * 2, plan.header.totals.denseBytes);
    assert.deepStrictEqual(pm.load('model.embed_tokens.weight'), source.load('model.embed_tokens.weight').map(roundToF16));
    assert.deepStrictEqual(pm.load(layerTensor(0, 'mlp.down_proj')), source.load(layerTensor(0, 'mlp.down_proj')).map(roundToF16));
  });
});

describe('atomic write', () => {
  it('never leaves a half-written file at the output path', () => {
    const out = join(dir, 'half.bin');
    function* failing() {
      yield new Uint8Array(1000);
      throw new Error('disk full');
    }
    assert.throws(() => writeFileAtomic(out, failing()), /disk full/);
    assert.equal(existsSync(out), false);
    writeFileSync(out, 'previous');
    assert.throws(() => writeFileAtomic(out, failing()), /disk full/);
    assert.equal(readFileSync(out, 'utf8'), 'previous');
    assert.throws(() => writeFileAtomic(out, [new Uint8Array(3)], { expectedSize: 4 }), /expected 4/);
    assert.equal(readFileSync(out, 'utf8'), 'previous');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
  });
});
