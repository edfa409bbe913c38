/**
 * Packed stories260K files for the browser tests, made by `bitcrush quantize` itself, so the
 * page is tested on what users get. Enough methods are run to put every format family of the
 * registry in some file; the families are read back from the files' headers (the hints below
 * only choose which methods to try first). A method registered later is tried with its
 * defaults, so a new family is covered without changing this file; a family no method
 * produces is reported, not faked.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatIds, getFormat } from '../../src/formats/registry.js';
import type { FormatFamily } from '../../src/formats/types.js';
import { methodNames } from '../../src/methods/registry.js';
import { FileSource } from '../../src/node/fs.js';
import { PackedModel } from '../../src/packed/reader.js';
import { planPackedModel } from '../../src/packed/writer.js';
import { parseHfConfig } from '../../src/io/hf.js';
import { expectedShapes, type ModelSource } from '../../src/model/weights.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../../shared/${p}`, import.meta.url));
export const STORIES = shared('models/stories260K/stories260K.bin');
export const STORIES_TOKENIZER = shared('models/stories260K/tok512.bin');
const CALIB = shared('data/tinystories/calib.txt');
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/**
 * Options that make a method fit stories260K (widths 64 and 172) in a few seconds: quality is
 * irrelevant here, only the formats are. SliM-LLM needs several groups per row to mix widths.
 */
const RECIPES: Record<string, string[]> = {
  aqlm: ['--group-size', '4', '--scheme', '1x8', '--max-epochs', '1', '--steps-per-epoch', '5', '--kmeans-iters', '3', '--beam-size', '2'],
  slim: ['--group-size', '32', '--min-max-grids', '--sba-rows', '64'],
};
/** The family each known method is expected to produce: methods whose family is covered are tried last. */
export const FAMILY_HINTS: Readonly<Record<string, FormatFamily>> = { rtn: 'uniform', gptq: 'uniform', aqlm: 'codebook', slim: 'mixed', billm: 'binary', dbell: 'binary' };

export interface PackedFixture {
  method: string;
  /** Path of the packed file. */
  file: string;
  families: FormatFamily[];
}

export interface FixtureSet {
  /** The first file containing each family. */
  byFamily: Map<FormatFamily, PackedFixture>;
  /** Methods that could not quantize stories260K, and why. */
  failed: { method: string; error: string }[];
}

/** Every format family some registered format belongs to. */
export function registeredFamilies(): FormatFamily[] {
  return [...new Set(formatIds().map((id) => getFormat(id).family))];
}

export async function makeFixtures(dir: string, parallel = 2): Promise<FixtureSet> {
  const wanted = registeredFamilies();
  const byFamily = new Map<FormatFamily, PackedFixture>();
  const failed: FixtureSet['failed'] = [];
  // a small calibration text: tokenizing the whole file would dominate these runs
  const calib = join(dir, 'calib-head.txt');
  writeFileSync(calib, readFileSync(CALIB).subarray(0, 40_000));

  const first: string[] = [];
  const later: string[] = [];
  const hinted = new Set<FormatFamily>();
  for (const m of methodNames) {
    const hint = FAMILY_HINTS[m];
    if (hint !== undefined && hinted.has(hint)) later.push(m);
    else {
      first.push(m);
      if (hint !== undefined) hinted.add(hint);
    }
  }
  const runAll = async (methods: string[]) => {
    const queue = [...methods];
    const worker = async () => {
      for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
        const r = await quantize(m, join(dir, `stories260K-${m}.bcq`), calib);
        if ('error' in r) failed.push({ method: m, error: r.error });
        else for (const f of r.families) if (!byFamily.has(f)) byFamily.set(f, r);
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
  };
  await runAll(first);
  if (wanted.some((f) => !byFamily.has(f))) await runAll(later);
  return { byFamily, failed };
}

async function quantize(method: string, file: string, calib: string): Promise<PackedFixture | { error: string }> {
  const args = [CLI, 'quantize', STORIES, '--method', method, '--out', file, '--calib', calib, '--nsamples', '8', '--seqlen', '64', '--threads', '1'];
  const child = spawn(process.execPath, [...args, ...(RECIPES[method] ?? [])], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  // the first lines name the error (a crash ends with Node's version line, which says nothing)
  if (code !== 0) return { error: stderr.trim().split('\n').slice(0, 6).join(' | ') || `exit ${code}` };
  const source = new FileSource(file);
  try {
    const packed = new PackedModel(source);
    const formats = packed.tensors().filter((t) => packed.isPacked(t.name)).map((t) => packed.header.tensors[t.name]!.format);
    return { method, file, families: [...new Set(formats.map((f) => getFormat(f).family))] };
  } finally {
    source.close();
  }
}

/**
 * The header of a packed file for a real model's shape (../shared/models/configs/<name>.json)
 * with every tensor stored dense in F16, and the size the whole file would have: the header is
 * true to that size, but no weights exist (the planner's first chunk is the header alone).
 */
export function headerOnlyPackedFile(config: string): { header: Uint8Array; size: number } {
  const c = parseHfConfig(config, JSON.parse(readFileSync(shared(`models/configs/${config}.json`), 'utf8')));
  const shapes = expectedShapes(c);
  const source: ModelSource = {
    name: `${config}-shape-only`,
    config: c,
    tensors: () => [...shapes].map(([name, shape]) => ({ name, shape })),
    load: () => {
      throw new Error('no weights: header only');
    },
    dtypeOf: () => 'F16',
  };
  const plan = planPackedModel({ config: c, method: { name: 'rtn', options: {} }, source, packed: new Map() });
  const first = plan.chunks()[Symbol.iterator]().next();
  if (first.done) throw new Error('the planner yielded no header');
  return { header: first.value, size: plan.size };
}
