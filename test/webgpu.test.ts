/**
 * The WebGPU backend (src/webgpu) in headless chromium on SwiftShader's CPU adapter
 * (--enable-unsafe-webgpu --use-webgpu-adapter=swiftshader on an http://127.0.0.1 page): every
 * format's WGSL linear (and its row gather, the packed embedding's path) against its TypeScript
 * reference on random tensors, and the GPU forward pass's greedy tokens on packed stories260K
 * files (one per format family, made by `bitcrush quantize`, plus a DBellQuant W1A8 file for
 * the activation quantization) against the wasm backend in Node and the reference backend in the page,
 * and a KV cache grown from 3 positions against the wasm backend and a cache allocated at full size.
 * Skips with the reason when chromium or a WebGPU adapter is missing.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { createBackend, loadModel } from '../src/node/index.js';
import { generate } from '../src/runtime/generate.js';
import { argmax } from '../src/runtime/sampler.js';
import { makeFixtures, registeredFamilies, STORIES, STORIES_TOKENIZER, type FixtureSet } from './browser/fixtures.js';
import { serveStatic, type StaticServer } from './browser/server.js';
import type { ForwardResult, KernelResult } from './browser/webgpu-page.js';
import { LANE_COUNTS } from '../src/webgpu/linear.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan'];
/** Kernel tolerance: max |gpu − ref| / max |ref| (float32 sums in another order than the float64 reference). */
const KERNEL_TOL = 1e-5;
/** Logit tolerance of the GPU forward against the reference backend, relative to the largest |logit|. */
const LOGIT_TOL = 1e-4;
const STEPS = 24;
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const CALIB = fileURLToPath(new URL('../../../shared/data/tinystories/calib.txt', import.meta.url));
const PROMPT = 'Once upon a time';

const skip = existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}: .ci/run installs Debian's chromium package (or set CHROMIUM_PATH)`;

/**
 * Greedy tokens of the wasm backend in Node: the prompt in chunks, then `steps` argmax tokens.
 * On float activations, as the GPU kernels compute: the wasm int8-activation kernels (2/4/8-bit
 * groups of 128) round x, which can change a greedy token of these small models.
 */
function wasmGreedy(file: string, steps: number, chunk: number): { prompt: number[]; tokens: number[]; decode: (ids: number[]) => string } {
  const backend = createBackend({ kind: 'wasm', threads: 1, floatActivations: true });
  const { model, tokenizer, dispose } = loadModel(file, { tokenizer: STORIES_TOKENIZER, backend });
  try {
    const prompt = tokenizer.encode(PROMPT, true);
    let logits: Float32Array = new Float32Array(0);
    for (let s = 0; s < prompt.length; s += chunk) logits = model.forward(prompt.slice(s, s + chunk), s, 'last');
    const tokens: number[] = [];
    for (let i = 0; i < steps; i++) {
      const next = argmax(logits);
      tokens.push(next);
      logits = model.forward([next], prompt.length + i, 'last');
    }
    const decode = (ids: number[]) => ids.map((id, i) => tokenizer.decodePiece(i === 0 ? prompt[prompt.length - 1]! : ids[i - 1]!, id)).join('');
    return { prompt, tokens, decode };
  } finally {
    dispose();
    backend.dispose();
  }
}

/** A DBellQuant W1A8 stories260K file (`bitcrush quantize --act-bits 8`), made beside the fixtures. */
async function quantizeA8(dir: string): Promise<string> {
  const out = join(dir, 'stories260K-dbell-a8.bcq');
  const calib = join(dir, 'calib-a8.txt');
  writeFileSync(calib, readFileSync(CALIB).subarray(0, 40_000));
  const args = [CLI, 'quantize', STORIES, '--method', 'dbell', '--act-bits', '8', '--out', out, '--calib', calib, '--nsamples', '8', '--seqlen', '64', '--threads', '1'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`dbell --act-bits 8: ${stderr.trim().split('\n').slice(0, 4).join(' | ')}`);
  return out;
}

describe('WebGPU backend in chromium (SwiftShader)', { skip }, () => {
  let tmp: string;
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let adapter: string | undefined;
  let fixtures: Promise<FixtureSet>;
  let a8File: Promise<string>;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'bitcrush-webgpu-'));
    const dir = join(tmp, 'fixtures');
    mkdirSync(dir);
    copyFileSync(STORIES_TOKENIZER, join(dir, basename(STORIES_TOKENIZER)));
    fixtures = makeFixtures(dir);
    fixtures.catch(() => undefined);
    a8File = quantizeA8(dir);
    a8File.catch(() => undefined);
    server = await serveStatic({ '/web/': join(ROOT, 'dist/web'), '/': join(ROOT, 'dist'), '/fixtures/': dir }, { isolate: false });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', ...WEBGPU_FLAGS] });
    page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}test/browser/`); // a 404 page is enough: modules are imported by URL
    adapter = await page.evaluate(async () => {
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
      return gpu && (await gpu.requestAdapter()) ? undefined : 'no WebGPU adapter in chromium (flags: --enable-unsafe-webgpu --use-webgpu-adapter=swiftshader)';
    });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await fixtures?.catch(() => undefined);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('every format\'s WGSL linear equals its TypeScript reference (decode, prefill, bias + residual, row split, row gather)', async (t) => {
    if (adapter) return t.skip(adapter);
    const results = await page.evaluate(async (url) => {
      const m = (await import(url)) as typeof import('./browser/webgpu-page.js');
      return m.kernelChecks(7);
    }, `${server.url}test/browser/webgpu-page.js`);
    assert.ok(typeof results !== 'string', String(results));
    const rs = results as KernelResult[];
    for (const family of registeredFamilies()) assert.ok(rs.some((r) => r.family === family), `no ${family} case ran`);
    const worst = new Map<string, number>();
    for (const r of rs) {
      const what = `${r.format} ${r.params} [${r.shape}]`;
      const checks = [['decode', r.decodeErr], ['prefill', r.prefillErr], ['bias+accumulate', r.fusedErr], ['placed in wider rows, split', r.placedErr], ['row gather', r.gatherErr ?? 0], ['row gather, split', r.gatherSplitErr ?? 0], [`split, ${r.splitLanes} lanes`, r.splitErr]] as const;
      for (const [k, v] of checks) assert.ok(v <= KERNEL_TOL, `${what} ${k} (${r.lanes} lanes per row): relative error ${v} > ${KERNEL_TOL}`);
      if (r.expectSplit) assert.ok(r.parts > 1, `${what}: the small binding limit did not split the tensor`);
      // the same lanes sum in the same order whatever the parts; other lane counts only reorder float32 sums
      if (r.splitLanes === r.lanes) assert.equal(r.splitDiff, 0, `${what}: split into ${r.parts} parts changes the output by ${r.splitDiff}`);
      worst.set(r.format, Math.max(worst.get(r.format) ?? 0, r.decodeErr, r.prefillErr, r.fusedErr, r.gatherErr ?? 0, r.gatherSplitErr ?? 0));
    }
    // the part selection of the gather is the same code for every family: split cases of some families suffice
    for (const family of registeredFamilies()) assert.ok(rs.some((r) => r.family === family && r.gatherErr !== null), `no ${family} case checked the row gather`);
    const splitGathers = rs.filter((r) => r.gatherSplitErr !== null && r.parts > 1).length;
    assert.ok(splitGathers > 0, 'no row gather over split parts was checked');
    for (const lanes of LANE_COUNTS) assert.ok(rs.some((r) => r.splitLanes === lanes && r.gatherSplitErr !== null), `no case ran a linear and a gather with ${lanes} lanes per row`);
    assert.ok(rs.some((r) => r.splitLanes === r.lanes && r.parts > 1), 'no split case ran with the device\'s own lanes (bit-identical to unsplit)');
    const split = rs.filter((r) => r.parts > 1).length;
    t.diagnostic(`${rs.length} cases, ${rs[0]!.lanes} lanes per row on this adapter (${split} split into row parts; ${rs.filter((r) => r.gatherErr !== null).length} row gathers, ${splitGathers} split); worst relative error per format: ${[...worst].map(([f, e]) => `${f} ${e.toExponential(1)}`).join(', ')}`);
  });

  /** The GPU forward's greedy tokens and logits on `file` against the wasm backend in Node. */
  async function checkGreedy(t: TestContext, file: string, what: string, opts: { initialPositions?: number } = {}): Promise<ForwardResult> {
    const chunk = 4; // the prompt spans two prefill chunks
    const wasm = wasmGreedy(file, STEPS, chunk);
    const r = await page.evaluate(
      async ([url, f, prompt, steps, c, o]) => {
        const m = (await import(url as string)) as typeof import('./browser/webgpu-page.js');
        return m.forwardCheck(f as string, prompt as number[], steps as number, c as number, o as { initialPositions?: number });
      },
      [`${server.url}test/browser/webgpu-page.js`, `${server.url}fixtures/${basename(file)}`, wasm.prompt, STEPS, chunk, opts] as const,
    );
    assert.ok(typeof r !== 'string', String(r));
    const f = r as ForwardResult;
    assert.deepEqual(f.refTokens, wasm.tokens, 'the in-page reference backend agrees with wasm in Node');
    assert.equal(wasm.decode(f.gpuTokens), wasm.decode(wasm.tokens));
    assert.deepEqual(f.gpuTokens, wasm.tokens);
    const rel = f.maxLogitDiff / f.maxLogit;
    assert.ok(rel <= LOGIT_TOL, `logits differ by ${f.maxLogitDiff} (${rel.toExponential(2)} of the largest ${f.maxLogit})`);
    t.diagnostic(`${what} on ${f.adapter}: ${STEPS} greedy tokens equal; max |Δlogit| ${f.maxLogitDiff.toExponential(2)} (${rel.toExponential(2)} relative); ${f.weightBytes} weight bytes uploaded; upload ${f.uploadMs.toFixed(0)} ms, GPU forwards ${f.gpuMs.toFixed(0)} ms, reference ${f.refMs.toFixed(0)} ms`);
    return f;
  }

  for (const family of registeredFamilies()) {
    it(`${family} family: greedy tokens of a packed stories260K on WebGPU equal the wasm backend's`, async (t) => {
      if (adapter) return t.skip(adapter);
      const fixture = (await fixtures).byFamily.get(family);
      if (fixture === undefined) return t.skip(`no method produced a ${family} file from stories260K`);
      await checkGreedy(t, fixture.file, `${family} (${fixture.method})`);
    });
  }

  it('a KV cache growing from 3 positions (prefill and decode cross growth points) gives the wasm backend\'s greedy tokens and the full-size cache\'s logits', async (t) => {
    if (adapter) return t.skip(adapter);
    const fixture = (await fixtures).byFamily.get('uniform');
    assert.ok(fixture !== undefined, 'no uniform fixture');
    const f = await checkGreedy(t, fixture.file, `uniform (${fixture.method}), KV cache from 3 positions`, { initialPositions: 3 });
    const caps = [...new Set(f.capacities)];
    // the first prefill chunk (4 tokens) grows 3 → 6 with nothing to copy; decode then grows with copies
    assert.deepEqual(caps.slice(0, 4), [6, 12, 24, 48], `capacities ${caps.join(' → ')}`);
    assert.equal(f.growDiff, 0, 'a grown cache changes the logits against one allocated at full size');
    t.diagnostic(`capacities ${caps.join(' → ')}; logits identical to the full-size cache's`);
  });

  it('activation quantization: a DBellQuant W1A8 stories260K file on WebGPU gives the wasm backend\'s greedy tokens', async (t) => {
    if (adapter) return t.skip(adapter);
    await checkGreedy(t, await a8File, 'dbell --act-bits 8');
  });

  it('the page picks WebGPU when an adapter exists, shows it, and switches to wasm on request: same greedy text', async (t) => {
    if (adapter) return t.skip(adapter);
    const { build } = await import('vite');
    await build({ configFile: join(ROOT, 'web/vite.config.ts'), logLevel: 'error' });
    const fixture = (await fixtures).byFamily.get('uniform');
    assert.ok(fixture !== undefined, 'no uniform fixture');
    const { model, tokenizer, dispose } = loadModel(fixture.file, { tokenizer: STORIES_TOKENIZER, backend: 'wasm', threads: 1 });
    let expected = '';
    try {
      for (const piece of generate(model, tokenizer, { prompt: PROMPT, maxTokens: STEPS, temperature: 0, topP: 1, seed: 1 })) expected += piece;
    } finally {
      dispose();
    }
    const p = await browser.newPage();
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(e.message));
    const state = async (want: string) => {
      const h = await p.waitForFunction((w) => ['error', w].includes(document.body.dataset.state ?? '') && document.body.dataset.state, want, { timeout: 120_000 });
      const got = await h.jsonValue();
      if (got !== want) assert.fail(`page error: ${await p.textContent('#error')} ${errors.join(' | ')}`);
    };
    const greedy = async () => {
      await p.fill('#prompt', PROMPT);
      await p.fill('#max-tokens', String(STEPS));
      await p.fill('#temperature', '0');
      await p.click('#generate');
      await state('done');
      return (await p.textContent('#continuation')) ?? '';
    };
    await p.goto(`${server.url}web/?model=../fixtures/${basename(fixture.file)}&tokenizer=../fixtures/${basename(STORIES_TOKENIZER)}`);
    await state('ready');
    assert.equal(await p.getAttribute('#runtime', 'data-backend'), 'webgpu');
    assert.match((await p.textContent('#runtime')) ?? '', /^webgpu · .*swiftshader/);
    assert.equal(await greedy(), expected);
    await p.selectOption('#backend', 'wasm');
    await state('ready');
    assert.equal(await p.getAttribute('#runtime', 'data-backend'), 'wasm');
    assert.equal(await greedy(), expected);
    assert.deepEqual(errors, []);
    await p.close();
  });
});
