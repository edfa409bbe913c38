/**
 * Small random GPTQ and AQLM Hugging Face directories for the interop tests: an architecture of
 * test/hf-dirs.ts with every block linear replaced by random GPTQ levels, scales, zeros and
 * (act-order) g_idx, written as AutoGPTQ/GPTQModel do (qweight/qzeros/scales/g_idx, config.json's
 * quantization_config), next to the float directory of the same weights dequantized (the
 * reference the import must equal). (Not a test file: compiled outside *.test.js.)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dequantizeGroups } from '../src/formats/quantized.js';
import { getFormat } from '../src/formats/registry.js';
import type { UniformParams } from '../src/formats/uniform.js';
import { groupsToGptq, type GptqCheckpointFormat } from '../src/interop/gptq.js';
import { codebookToAqlm } from '../src/interop/aqlm.js';
import { codebookFormat, type CodebookQuantized } from '../src/formats/codebook.js';
import { numberToF16Bits } from '../src/io/safetensors.js';
import { LINEARS } from '../src/model/weights.js';
import { mulberry32 } from '../src/quant/random.js';
import { archTensors, safetensorsBytes, type ArchCase, type TestTensor } from './hf-dirs.js';

export interface GptqCase {
  arch: ArchCase;
  bits: number;
  /** -1: per-channel. */
  groupSize: number;
  descAct: boolean;
  sym: boolean;
  checkpointFormat: GptqCheckpointFormat;
}

const bytesOf = (a: Int32Array | Uint16Array | Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Writes `<root>/gptq` and `<root>/float`; returns their paths. */
export function writeGptqDirs(root: string, k: GptqCase, seed = 7): { gptq: string; float: string } {
  const rand = mulberry32(seed);
  const floats: TestTensor[] = [];
  const quant: TestTensor[] = [];
  for (const t of archTensors(k.arch, seed)) {
    const linear = LINEARS.some((l) => t.name.endsWith(`.${l}.weight`));
    if (!linear) {
      floats.push(t);
      quant.push(t);
      continue;
    }
    const [outDim, inDim] = t.shape as [number, number];
    const groupSize = k.groupSize === -1 ? inDim : k.groupSize;
    const p: UniformParams = { bits: k.bits, groupSize, actOrder: k.descAct };
    const g = getFormat(k.sym ? 'uniform-sym' : 'uniform-asym').randomPayload(outDim, inDim, p, rand) as Parameters<typeof dequantizeGroups>[0];
    if (k.checkpointFormat === 'gptq') for (let i = 0; i < g.zero.length; i++) g.zero[i] = Math.max(1, g.zero[i]!); // v1 has no zero 0
    const w = dequantizeGroups(g);
    floats.push({ name: t.name, dtype: 'F32', shape: t.shape, bytes: bytesOf(w) });
    const { tensors: q } = groupsToGptq(g, k.checkpointFormat);
    const base = t.name.replace(/\.weight$/, '');
    quant.push(
      { name: `${base}.qweight`, dtype: 'I32', shape: [(inDim / 32) * k.bits, outDim], bytes: bytesOf(q.qweight) },
      { name: `${base}.qzeros`, dtype: 'I32', shape: [q.scales.length / outDim, (outDim / 32) * k.bits], bytes: bytesOf(q.qzeros) },
      { name: `${base}.scales`, dtype: 'F16', shape: [q.scales.length / outDim, outDim], bytes: bytesOf(q.scales) },
      { name: `${base}.g_idx`, dtype: 'I32', shape: [inDim], bytes: bytesOf(q.gIdx) },
    );
  }
  const dirs = { gptq: join(root, 'gptq'), float: join(root, 'float') };
  const quantization_config = {
    quant_method: 'gptq', bits: k.bits, group_size: k.groupSize, desc_act: k.descAct, sym: k.sym,
    checkpoint_format: k.checkpointFormat, damp_percent: 0.01, true_sequential: true, static_groups: false,
  };
  mkdirSync(dirs.gptq, { recursive: true });
  mkdirSync(dirs.float, { recursive: true });
  writeFileSync(join(dirs.gptq, 'config.json'), JSON.stringify({ ...k.arch.config, torch_dtype: 'float16', quantization_config }, null, 2));
  writeFileSync(join(dirs.gptq, 'model.safetensors'), safetensorsBytes(quant, { format: 'pt' }));
  writeFileSync(join(dirs.float, 'config.json'), JSON.stringify(k.arch.config, null, 2));
  writeFileSync(join(dirs.float, 'model.safetensors'), safetensorsBytes(floats, { format: 'pt' }));
  return dirs;
}

export interface AqlmCase {
  arch: ArchCase;
  numCodebooks: number;
  nbits: number;
  inGroupSize: number;
  /** AQLM's out_group_size (rows per codeword); default 1. */
  outGroupSize?: number;
}

/**
 * AQLM's reconstruction written out for the checkpoint's own layout, apart from bitcrush's
 * format code: W[o·og + a, j·g + t] = scales[o] · Σ_m codebooks[m, codes[o, j, m], a, t],
 * float32 sums over m in order (the reference every import must equal).
 */
export function aqlmReference(q: CodebookQuantized, og: number): Float32Array {
  const { outDim, inDim, M, B, g } = q;
  const K = 2 ** B;
  const nG = inDim / g;
  const w = new Float32Array(outDim * inDim);
  for (let r = 0; r < outDim; r++) {
    const o = Math.floor(r / og);
    const a = r % og;
    for (let c = 0; c < inDim; c++) {
      const j = Math.floor(c / g);
      let acc = 0;
      for (let m = 0; m < M; m++) acc = Math.fround(acc + q.codebooks[((m * K + q.codes[(o * nG + j) * M + m]!) * og + a) * g + (c % g)]!);
      w[r * inDim + c] = Math.fround(q.scale[o]! * acc);
    }
  }
  return w;
}

/** An AQLM directory (codes/codebooks/scales as transformers' aqlm integration loads them) and its float twin. */
export function writeAqlmDirs(root: string, k: AqlmCase, seed = 9): { aqlm: string; float: string } {
  const rand = mulberry32(seed);
  const floats: TestTensor[] = [];
  const quant: TestTensor[] = [];
  const notQuantized: string[] = [];
  for (const t of archTensors(k.arch, seed)) {
    if (!LINEARS.some((l) => t.name.endsWith(`.${l}.weight`))) {
      floats.push(t);
      quant.push(t);
      notQuantized.push(t.name);
      continue;
    }
    const [outDim, inDim] = t.shape as [number, number];
    const og = k.outGroupSize ?? 1;
    const p = { M: k.numCodebooks, B: k.nbits, g: k.inGroupSize, ...(og > 1 ? { og } : {}) };
    const q = codebookFormat.randomPayload(outDim, inDim, p, rand);
    floats.push({ name: t.name, dtype: 'F32', shape: t.shape, bytes: bytesOf(aqlmReference(q, og)) });
    const { codes } = codebookToAqlm(q);
    const base = t.name.replace(/\.weight$/, '');
    quant.push(
      { name: `${base}.codes`, dtype: k.nbits <= 8 ? 'I8' : 'I16', shape: [outDim / og, inDim / k.inGroupSize, k.numCodebooks], bytes: new Uint8Array(codes.buffer) },
      { name: `${base}.codebooks`, dtype: 'F16', shape: [k.numCodebooks, 2 ** k.nbits, og, k.inGroupSize], bytes: bytesOf(Uint16Array.from(q.codebooks, numberToF16Bits)) },
      { name: `${base}.scales`, dtype: 'F16', shape: [outDim / og, 1, 1, 1], bytes: bytesOf(Uint16Array.from(q.scale, numberToF16Bits)) },
    );
  }
  const dirs = { aqlm: join(root, 'aqlm'), float: join(root, 'float') };
  const quantization_config = {
    quant_method: 'aqlm', in_group_size: k.inGroupSize, out_group_size: k.outGroupSize ?? 1, num_codebooks: k.numCodebooks,
    nbits_per_codebook: k.nbits, linear_weights_not_to_quantize: notQuantized,
  };
  mkdirSync(dirs.aqlm, { recursive: true });
  mkdirSync(dirs.float, { recursive: true });
  writeFileSync(join(dirs.aqlm, 'config.json'), JSON.stringify({ ...k.arch.config, torch_dtype: 'float16', quantization_config }, null, 2));
  writeFileSync(join(dirs.aqlm, 'model.safetensors'), safetensorsBytes(quant, { format: 'pt' }));
  writeFileSync(join(dirs.float, 'config.json'), JSON.stringify(k.arch.config, null, 2));
  writeFileSync(join(dirs.float, 'model.safetensors'), safetensorsBytes(floats, { format: 'pt' }));
  return dirs;
}
