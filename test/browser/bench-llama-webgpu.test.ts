/**
 * WebGPU = wasm at real layer widths: bench-llama (dim 256, hidden 768, vocab 32000, 8 layers)
 * packed by `bitcrush quantize` as RTN 2-bit g128 (uniform rows decoded a word at a time, the
 * 4-bit tied head too) and as AQLM 1x8 g8 (codebook, quantized with the fewest steps: the
 * format is the point, not its quality), run on the SwiftShader adapter in chromium and on the
 * wasm backend in Node (float activations, as the GPU computes) over the same calls: the prompt
 * as one prefill chunk, then decode steps fed wasm's greedy tokens. The last token's logits of
 * every call agree within LOGIT_TOL of the largest |logit|, and so do the greedy tokens wherever
 * wasm's top two logits are further apart than the measured difference (a near-tie may flip).
 * Short on purpose: one bench-llama decode step takes ~0.1 s (RTN) to ~1 s (AQLM) on SwiftShader.
 * Skips with the reason when chromium or a WebGPU adapter is missing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { createBackend, loadModel } from '../../src/node/index.js';
import { argmax } from '../../src/runtime/sampler.js';
import { serveStatic, type StaticServer } from './server.js';
import type { LogitsResult } from './webgpu-page.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const shared = (p: string) => fileURLToPath(new URL(`../../../../shared/${p}`, import.meta.url));
const BENCH = shared('models/bench-llama');
const TOKENIZER = shared('models/bench-llama/tokenizer.bin');
const CALIB = shared('data/austen/emma.txt');
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan'];
/** max |gpu − wasm| over a call's logits, relative to its largest |wasm logit| (float32 sums in another order). */
const LOGIT_TOL = 1e-4;
const DECODE_STEPS = 3;
const PROMPT = 'It is a truth universally acknowledged';

const FILES: Record<string, string[]> = {
  'rtn-2bit-g128': ['--method', 'rtn', '--bits', '2', '--group-size', '128'],
  'aqlm-1x8-g8': ['--method', 'aqlm', '--scheme', '1x8', '--group-size', '8', '--nsamples', '1', '--seqlen', '32', '--max-epochs', '1', '--steps-per-epoch', '1', '--kmeans-iters', '1', '--beam-size', '1', '--head-method', 'rtn'],
};

const skip = existsOr(CHROMIUM, `no chromium at ${CHROMIUM}: .ci/run installs Debian's chromium package (or set CHROMIUM_PATH)`) ?? existsOr(join(BENCH, 'model.safetensors'), `no bench-llama at ${BENCH}`) ?? false;

function existsOr(path: string, why: string): string | undefined {
  return existsSync(path) ? undefined : why;
}

async function quantize(out: string, flags: string[], calib: string): Promise<void> {
  const child = spawn(process.execPath, [CLI, 'quantize', BENCH, '--out', out, '--calib', calib, '--threads', '1', ...flags], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`quantize ${flags.join(' ')}: ${stderr.trim().split('\n').slice(0, 4).join(' | ')}`);
}

/** The calls (prompt chunk, then greedy decode steps) and their logits on the wasm backend in Node, float activations. */
function wasmCalls(file: string): { calls: Array<{ tokens: number[]; pos: number }>; logits: Float32Array[] } {
  const backend = createBackend({ kind: 'wasm', threads: 1, floatActivations: true });
  const { model, tokenizer, dispose } = loadModel(file, { tokenizer: TOKENIZER, backend });
  try {
    const prompt = tokenizer.encode(PROMPT, true);
    const calls = [{ tokens: prompt, pos: 0 }];
    const logits = [model.forward(prompt, 0, 'last').slice()];
    for (let i = 0; i < DECODE_STEPS; i++) {
      const c = { tokens: [argmax(logits[i]!)], pos: prompt.length + i };
      calls.push(c);
      logits.push(model.forward(c.tokens, c.pos, 'last').slice());
    }
    return { calls, logits };
  } finally {
    dispose();
    backend.dispose();
  }
}

describe('bench-llama on WebGPU (SwiftShader) against wasm', { skip }, () => {
  let tmp: string;
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let adapter: string | undefined;
  const files = new Map<string, Promise<string>>();

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'bitcrush-bench-llama-gpu-'));
    const calib = join(tmp, 'calib.txt');
    writeFileSync(calib, readFileSync(CALIB).subarray(0, 20_000));
    for (const [name, flags] of Object.entries(FILES)) {
      const out = join(tmp, `${name}.bcq`);
      const p = quantize(out, flags, calib).then(() => out);
      p.catch(() => undefined);
      files.set(name, p);
    }
    server = await serveStatic({ '/': join(ROOT, 'dist'), '/fixtures/': tmp }, { isolate: false });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', ...WEBGPU_FLAGS] });
    page = await browser.newPage();
    await page.goto(`${server.url}test/browser/`); // a 404 page is enough: modules are imported by URL
    adapter = await page.evaluate(async () => {
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
      return gpu && (await gpu.requestAdapter()) ? undefined : 'no WebGPU adapter in chromium (flags: --enable-unsafe-webgpu --use-webgpu-adapter=swiftshader)';
    });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    for (const p of files.values()) await p.catch(() => undefined);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  for (const name of Object.keys(FILES)) {
    it(`${name}: prefill and ${DECODE_STEPS} decode steps give wasm's logits and greedy tokens`, async (t) => {
      if (adapter) return t.skip(adapter);
      const file = await files.get(name)!;
      const wasm = wasmCalls(file);
      const r = await page.evaluate(
        async ([url, f, calls, rows]) => {
          const m = (await import(url as string)) as typeof import('./webgpu-page.js');
          return m.logitsCheck(f as string, calls as Array<{ tokens: number[]; pos: number }>, rows as number);
        },
        [`${server.url}test/browser/webgpu-page.js`, `${server.url}fixtures/${name}.bcq`, wasm.calls, wasm.calls[0]!.tokens.length] as const,
      );
      assert.ok(typeof r !== 'string', String(r));
      const g = r as LogitsResult;
      assert.equal(g.logits.length, wasm.calls.length);
      const report: string[] = [];
      let checkedTokens = 0;
      for (let i = 0; i < wasm.calls.length; i++) {
        const ref = wasm.logits[i]!;
        const got = g.logits[i]!;
        assert.equal(got.length, ref.length);
        let diff = 0;
        let top = 0;
        for (let v = 0; v < ref.length; v++) {
          diff = Math.max(diff, Math.abs(got[v]! - ref[v]!));
          top = Math.max(top, Math.abs(ref[v]!));
        }
        const rel = diff / top;
        assert.ok(rel <= LOGIT_TOL, `call ${i} (${wasm.calls[i]!.tokens.length} tokens at ${wasm.calls[i]!.pos}): logits differ by ${diff} (${rel.toExponential(2)} of the largest ${top})`);
        const best = argmax(ref);
        const second = Math.max(...Array.from(ref, (v, k) => (k === best ? -Infinity : v)));
        if (ref[best]! - second > 2 * diff) {
          assert.equal(argmax(Float32Array.from(got)), best, `call ${i}: greedy token`);
          checkedTokens++;
        }
        report.push(`${rel.toExponential(1)}`);
      }
      assert.ok(checkedTokens > 0, 'every call was a near-tie: no greedy token compared');
      t.diagnostic(
        `${name} on ${g.adapter} (${g.lanes} lanes per row): ${wasm.calls.length} calls (prompt ${wasm.calls[0]!.tokens.length} tokens, ${DECODE_STEPS} decode steps), ` +
          `relative max |Δlogit| per call ${report.join(', ')}; ${checkedTokens} greedy tokens equal; ${g.weightBytes} weight bytes; upload ${g.uploadMs.toFixed(0)} ms, calls ${g.callMs.map((m) => m.toFixed(0)).join(', ')} ms`,
      );
    });
  }
});
