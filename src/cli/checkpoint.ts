/**
 * The work directory of a quantize run (`<out>.partial/`), so a killed run continues with
 * `--resume` from its last finished block and ends with the same bytes as an uninterrupted run:
 *   manifest.json        { version, optionsHash, blocksDone, blocks: [tensor index per block] }
 *   block-<l>.bin        the packed blobs of block l, concatenated in the manifest's order
 *   inputs-<l>.f32       the residual stream [N·seqLen, dim] entering block l = blocksDone
 *   dense-<l>.f32        unquantized tensors block l's method replaced (AQLM's trained norms), if any
 * Every file is written atomically and the manifest last, so a kill at any moment leaves the
 * directory describing a consistent prefix of finished blocks.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BlobDtype, FormatParams, PackedTensor } from '../formats/types.js';
import { InputError } from '../io/errors.js';
import { writeFileAtomic } from '../node/atomic-write.js';

const MANIFEST_VERSION = 1;

interface TensorIndex {
  name: string;
  format: string;
  outDim: number;
  inDim: number;
  params: FormatParams;
  blobs: Array<{ blob: string; dtype: BlobDtype; shape: number[]; offset: number; length: number }>;
}

interface Manifest {
  version: number;
  optionsHash: string;
  blocksDone: number;
  blocks: TensorIndex[][];
  /** Per block (absent: none), the replaced unquantized tensors stored in dense-<l>.f32 in this order. */
  dense?: Record<string, Array<{ name: string; length: number }>>;
}

export interface ResumePoint {
  blocksDone: number;
  /** Packed tensors of the finished blocks. */
  packed: Map<string, PackedTensor>;
  /** [N·seqLen, dim] inputs of block blocksDone. */
  inputs: Float32Array;
  /** Unquantized tensors the finished blocks replaced (BlockResult.dense). */
  dense: Map<string, Float32Array>;
}

export class WorkDir {
  private manifest: Manifest;

  /** Starts a fresh work directory (removing any earlier one). */
  static create(dir: string, optionsHash: string): WorkDir {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const w = new WorkDir(dir, { version: MANIFEST_VERSION, optionsHash, blocksDone: 0, blocks: [] });
    w.writeManifest();
    return w;
  }

  /**
   * The directory's finished prefix, or null when there is nothing to resume. A directory made
   * with other options is an error: its blocks would not match the rest of this run.
   * `inputValues`: the float32 count of the inputs file this run needs ([N·seqLen, dim]; 0 without calibration).
   */
  static open(dir: string, optionsHash: string, inputValues: number): { work: WorkDir; resume: ResumePoint } | null {
    const path = join(dir, 'manifest.json');
    if (!existsSync(path)) return null;
    let m: Manifest;
    try {
      m = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
    } catch (e) {
      throw new InputError(path, `unreadable work-directory manifest (${(e as Error).message}); delete ${dir} to start over`);
    }
    if (m.version !== MANIFEST_VERSION || !Array.isArray(m.blocks) || !Number.isInteger(m.blocksDone) || m.blocks.length !== m.blocksDone) {
      throw new InputError(path, `not a work-directory manifest of this bitcrush; delete ${dir} to start over`);
    }
    if (m.optionsHash !== optionsHash) {
      throw new InputError(dir, 'was written by a quantize run with different model, options or calibration; run without --resume to start over');
    }
    const w = new WorkDir(dir, m);
    if (m.blocksDone === 0) return null;
    const packed = new Map<string, PackedTensor>();
    for (let l = 0; l < m.blocksDone; l++) for (const [name, t] of w.readBlock(l, m.blocks[l]!)) packed.set(name, t);
    const dense = new Map<string, Float32Array>();
    for (let l = 0; l < m.blocksDone; l++) for (const [name, t] of w.readDense(l)) dense.set(name, t);
    const inputsPath = join(dir, `inputs-${m.blocksDone}.f32`);
    if (!existsSync(inputsPath)) throw new InputError(inputsPath, `missing: the work directory is damaged; delete ${dir} to start over`);
    const bytes = readFileSync(inputsPath);
    if (bytes.byteLength !== 4 * inputValues) {
      throw new InputError(inputsPath, `holds ${bytes.byteLength} bytes, this run needs ${inputValues} float32 values (${4 * inputValues} bytes): truncated or damaged; delete ${dir} to start over`);
    }
    const inputs = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(inputs.buffer).set(bytes);
    return { work: w, resume: { blocksDone: m.blocksDone, packed, inputs, dense } };
  }

  private constructor(
    readonly dir: string,
    m: Manifest,
  ) {
    this.manifest = m;
  }

  /** Records finished block `l` and the inputs of block l + 1. */
  saveBlock(l: number, packed: ReadonlyMap<string, PackedTensor>, nextInputs: Float32Array, dense?: ReadonlyMap<string, Float32Array>): void {
    if (l !== this.manifest.blocksDone) throw new Error(`work dir: block ${l} finished after ${this.manifest.blocksDone} blocks`);
    const index: TensorIndex[] = [];
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const [name, t] of packed) {
      const blobs: TensorIndex['blobs'] = [];
      for (const [blob, b] of Object.entries(t.blobs)) {
        blobs.push({ blob, dtype: b.dtype, shape: b.shape, offset, length: b.bytes.byteLength });
        chunks.push(b.bytes);
        offset += b.bytes.byteLength;
      }
      index.push({ name, format: t.format, outDim: t.outDim, inDim: t.inDim, params: t.params, blobs });
    }
    writeFileAtomic(join(this.dir, `block-${l}.bin`), chunks, { expectedSize: offset });
    const inputBytes = new Uint8Array(nextInputs.buffer, nextInputs.byteOffset, nextInputs.byteLength);
    writeFileAtomic(join(this.dir, `inputs-${l + 1}.f32`), [inputBytes]);
    let denseIndex = this.manifest.dense;
    if (dense !== undefined && dense.size > 0) {
      const tensors = [...dense];
      const bytes = tensors.map(([, t]) => new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
      writeFileAtomic(join(this.dir, `dense-${l}.f32`), bytes, { expectedSize: bytes.reduce((a, b) => a + b.byteLength, 0) });
      denseIndex = { ...denseIndex, [String(l)]: tensors.map(([name, t]) => ({ name, length: t.length })) };
    }
    this.manifest = { ...this.manifest, blocksDone: l + 1, blocks: [...this.manifest.blocks, index], ...(denseIndex ? { dense: denseIndex } : {}) };
    this.writeManifest();
    rmSync(join(this.dir, `inputs-${l}.f32`), { force: true });
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private writeManifest(): void {
    writeFileAtomic(join(this.dir, 'manifest.json'), [new TextEncoder().encode(JSON.stringify(this.manifest))]);
  }

  private readDense(l: number): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    const index = this.manifest.dense?.[String(l)];
    if (index === undefined) return out;
    const path = join(this.dir, `dense-${l}.f32`);
    const bytes = readFileSync(path);
    const total = index.reduce((a, e) => a + e.length, 0);
    if (!index.every((e) => Number.isInteger(e.length) && e.length >= 0) || bytes.byteLength !== 4 * total) throw new InputError(path, `holds ${bytes.byteLength} bytes, the manifest lists ${total} float32 values`);
    let off = 0;
    for (const e of index) {
      const t = new Float32Array(e.length);
      new Uint8Array(t.buffer).set(bytes.subarray(off, off + 4 * e.length));
      out.set(e.name, t);
      off += 4 * e.length;
    }
    return out;
  }

  private readBlock(l: number, index: TensorIndex[]): Map<string, PackedTensor> {
    const path = join(this.dir, `block-${l}.bin`);
    const bytes = new Uint8Array(readFileSync(path));
    const out = new Map<string, PackedTensor>();
    for (const t of index) {
      const blobs: Record<string, PackedTensor['blobs'][string]> = {};
      for (const e of t.blobs) {
        if (!(e.offset >= 0 && e.offset + e.length <= bytes.byteLength)) throw new InputError(path, `blob ${t.name}.${e.blob} lies outside the file`);
        blobs[e.blob] = { dtype: e.dtype, shape: e.shape, bytes: bytes.slice(e.offset, e.offset + e.length) };
      }
      out.set(t.name, { format: t.format, outDim: t.outDim, inDim: t.inDim, params: t.params, blobs });
    }
    return out;
  }
}
