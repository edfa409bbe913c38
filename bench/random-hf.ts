/**
 * Random-weight Hugging Face directories of real models' shapes (../shared/models/configs),
 * streamed to disk tensor by tensor in BF16, so multi-GB models are written in bounded memory.
 * Values: a fast seeded xorshift, sum of four uniforms (≈ normal), std 1/√in for matrices,
 * 1 ± 0.1 for norms. The tokenizer is bench-llama's (Llama 2's 32000 ids: TinyLlama, Mistral,
 * Llama 2 share them); config.json is the real one with num_hidden_layers set.
 */
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseHfConfig } from '../src/io/hf.js';
import { expectedShapes } from '../src/model/weights.js';

export const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));

/**
 * Writes (once: an existing complete directory is reused) the config's model with `layers` blocks
 * into `dir`; `overrides` replace config.json fields (a narrower model of the same family).
 */
export function randomHfDir(dir: string, configName: string, layers: number, tokenizer = shared('models/bench-llama/tokenizer.json'), overrides: Record<string, unknown> = {}): string {
  const done = join(dir, '.complete');
  if (existsSync(done)) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const cfg = { ...(JSON.parse(readFileSync(shared(`models/configs/${configName}.json`), 'utf8')) as Record<string, unknown>), num_hidden_layers: layers, ...overrides };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  copyFileSync(tokenizer, join(dir, 'tokenizer.json'));
  const shapes = expectedShapes(parseHfConfig(configName, cfg));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(json.length));
  const tmp = join(dir, 'model.safetensors.tmp');
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, head);
    writeSync(fd, json);
    let state = 0x9e3779b9;
    const rand = () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) / 2 ** 32;
    };
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const chunk = new Uint16Array(1 << 20);
    for (const shape of shapes.values()) {
      const n = shape.reduce((a, b) => a * b, 1);
      const norm = shape.length === 1;
      const std = norm ? 0.1 : 1 / Math.sqrt(shape[1]!);
      for (let done = 0; done < n; done += chunk.length) {
        const m = Math.min(chunk.length, n - done);
        for (let i = 0; i < m; i++) {
          // sum of four uniforms: mean 2, variance 1/3
          f32[0] = (norm ? 1 : 0) + std * (rand() + rand() + rand() + rand() - 2) * Math.sqrt(3);
          chunk[i] = u32[0]! >>> 16;
        }
        writeSync(fd, chunk.subarray(0, m));
      }
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, 'model.safetensors'));
  writeFileSync(done, '');
  return dir;
}
