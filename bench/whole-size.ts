/**
 * File sizes of the real models' shapes (../shared/models/configs) in the packed layout, without
 * weights: the packed writer's own planner lays out every tensor of a 2-bit g128 file (block
 * linears) with the embedding and head as `quantize` stores them by default, and reports the
 * exact file size it would write (the sizes follow from shapes and format params alone). Beside
 * it, the same file with float embedding/head in the source dtype, and the layout before issue 13
 * (everything outside the linears float32). Usage: node dist/bench/whole-size.js [--json]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getFormat } from '../src/formats/registry.js';
import type { BlobSpec, FormatParams, PackedTensor } from '../src/formats/types.js';
import { blobBytes } from '../src/formats/types.js';
import { parseHfConfig } from '../src/io/hf.js';
import type { LlamaConfig } from '../src/model/config.js';
import { EMBED, expectedShapes, LM_HEAD, type ModelSource, type SourceDtype } from '../src/model/weights.js';
import { describeSize, sizeReport } from '../src/packed/size.js';
import { planPackedModel, type PackedModelInput } from '../src/packed/writer.js';
import { getMethod } from '../src/methods/registry.js';
import { sourceForLayout, wholeModelLayout, type TensorQuant } from '../src/pipeline/whole-model.js';
import { DEFAULT_EMBED_BITS, DEFAULT_HEAD_BITS, DEFAULT_WHOLE_GROUP } from '../src/cli/whole-flags.js';

const CONFIGS = fileURLToPath(new URL('../../../shared/models/configs/', import.meta.url));
const json = process.argv.includes('--json');

/** A packed tensor of the right blob sizes; its bytes are never read for a size. */
function sizedTensor(out: number, inDim: number, params: FormatParams, zeros: Uint8Array): PackedTensor {
  const f = getFormat('uniform-asym');
  const specs: Record<string, BlobSpec> = f.blobs(out, inDim, params);
  const blobs = Object.fromEntries(Object.entries(specs).map(([k, s]) => [k, { ...s, bytes: zeros.subarray(0, blobBytes(s)) }]));
  return { format: f.id, outDim: out, inDim, params, blobs };
}

function plan(c: LlamaConfig, dtype: SourceDtype, ends: 'low-bit' | 'source dtype' | 'float32'): { size: number; lines: string[]; bpw: number } {
  const grid = (bits: number): TensorQuant => (({ method, opts }) => ({ method, options: opts }))(getMethod('rtn', { bits, groupSize: DEFAULT_WHOLE_GROUP }));
  const whole = ends === 'low-bit' ? { head: grid(DEFAULT_HEAD_BITS), embed: grid(DEFAULT_EMBED_BITS) } : {};
  const layout = wholeModelLayout(c, whole);
  const shapes = expectedShapes(c);
  const base: ModelSource = {
    name: 'shape-only',
    config: c,
    tensors: () => [...shapes].map(([name, shape]) => ({ name, shape })),
    load: () => { throw new Error('no weights: sizes only'); },
    dtypeOf: () => (ends === 'float32' ? 'F32' : dtype),
  };
  const source = sourceForLayout(base, layout);
  const zeros = new Uint8Array(c.vocabSize * c.dim); // ≥ any blob of ≤ 8 bits here
  const packed = new Map<string, PackedTensor>();
  for (const [name, shape] of expectedShapes(layout.config)) {
    if (shape.length !== 2) continue;
    const [out, inDim] = shape as [number, number];
    const g = Math.min(DEFAULT_WHOLE_GROUP, inDim);
    if (name === EMBED || name === LM_HEAD) {
      if (ends !== 'low-bit') continue;
      const bits = name === EMBED && !layout.shared ? DEFAULT_EMBED_BITS : DEFAULT_HEAD_BITS;
      packed.set(name, sizedTensor(out, inDim, { bits, groupSize: g, actOrder: false }, zeros));
    } else packed.set(name, sizedTensor(out, inDim, { bits: 2, groupSize: g, actOrder: false }, zeros));
  }
  let params = 0;
  for (const s of shapes.values()) params += s.reduce((a, b) => a * b, 1);
  const input: PackedModelInput = { config: layout.config, method: { name: 'rtn', options: {} }, source, packed, modelWeights: params };
  const p = planPackedModel(input);
  const s = sizeReport(p.header, p.size);
  return { size: p.size, lines: describeSize(s), bpw: s.bpw };
}

const rows: unknown[] = [];
for (const file of readdirSync(CONFIGS).filter((f) => f.endsWith('.json')).sort()) {
  const raw = JSON.parse(readFileSync(join(CONFIGS, file), 'utf8')) as Record<string, unknown>;
  const c = parseHfConfig(file, raw);
  const dtype = (raw.torch_dtype === 'float32' ? 'F32' : raw.torch_dtype === 'float16' ? 'F16' : 'BF16') as SourceDtype;
  const r = { model: file.replace(/\.json$/, ''), low: plan(c, dtype, 'low-bit'), source: plan(c, dtype, 'source dtype'), float32: plan(c, dtype, 'float32') };
  rows.push({ model: r.model, bytes: r.low.size, bpw: r.low.bpw, floatEndsBytes: r.source.size, float32EndsBytes: r.float32.size });
  if (!json) {
    console.log(`${r.model} (${c.nLayers} layers, vocab ${c.vocabSize}, ${c.tiedEmbeddings ? 'tied' : 'untied'}, ${dtype}): 2-bit g128 block linears, embedding ${DEFAULT_EMBED_BITS}-bit, head ${DEFAULT_HEAD_BITS}-bit`);
    for (const l of r.low.lines) console.log(`  ${l}`);
    console.log(`  float embedding/head in ${dtype}: ${(r.source.size / 1e6).toFixed(1)} MB (${r.source.bpw.toFixed(3)} bpw); everything outside the linears float32 (before): ${(r.float32.size / 1e6).toFixed(1)} MB (${r.float32.bpw.toFixed(3)} bpw)`);
  }
}
if (json) console.log(JSON.stringify(rows));
