/**
 * The relaxed-SIMD kernel module (wasm/kernels-relaxed.wasm, backend/wasm-kernels.ts): chosen only
 * where the engine has relaxed SIMD, and then it computes what the SIMD128 one does (W·x̂ within
 * the int8 tolerance of test/formats.test.ts). In Node: the whole registry-driven formats test in
 * a child under --experimental-wasm-relaxed-simd with the relaxed module forced; the choice with
 * and without the flag. In chromium (relaxed SIMD on by default): the module the web page would
 * pick, and every int8 kernel the grid formats' examples reach, against W·x̂ (browser/wasm-kernels-page.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { relaxedSimdAvailable } from '../src/backend/wasm-kernels.js';
import type { WasmKernelsResult } from './browser/wasm-kernels-page.js';
import { serveStatic, type StaticServer } from './browser/server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIST = join(ROOT, 'dist');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// Node 20 has relaxed SIMD behind a flag; engines that ship it need none
const FLAG = relaxedSimdAvailable() ? [] : ['--experimental-wasm-relaxed-simd'];
const INT8_TOL = 1e-5; // test/formats.test.ts assertProduct: relative to Σ|w||x̂|

/** `node [flags] -e script` with the wasm kernels env; returns stdout, stderr, status. */
function nodeEval(flags: string[], env: Record<string, string>, script: string) {
  return spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
}

const KIND_SCRIPT = `import { createBackend } from '${join(DIST, 'src/node/backend.js')}'; const b = createBackend({ kind: 'wasm', threads: 1 }); console.log(b.kernels); b.dispose?.();`;

describe('relaxed-SIMD kernels in Node', () => {
  it('the wasm backend runs the relaxed module exactly where the engine has relaxed SIMD', () => {
    const without = nodeEval([], { BITCRUSH_WASM_KERNELS: 'auto' }, KIND_SCRIPT);
    assert.equal(without.status, 0, without.stderr);
    assert.equal(without.stdout.trim(), relaxedSimdAvailable() ? 'relaxed' : 'simd128');
    const withFlag = nodeEval(FLAG, { BITCRUSH_WASM_KERNELS: 'auto' }, KIND_SCRIPT);
    assert.equal(withFlag.status, 0, withFlag.stderr);
    assert.equal(withFlag.stdout.trim(), 'relaxed');
    const plain = nodeEval(FLAG, { BITCRUSH_WASM_KERNELS: 'simd128' }, KIND_SCRIPT);
    assert.equal(plain.stdout.trim(), 'simd128', plain.stderr);
    if (!relaxedSimdAvailable()) {
      const refused = nodeEval([], { BITCRUSH_WASM_KERNELS: 'relaxed' }, KIND_SCRIPT);
      assert.notEqual(refused.status, 0);
      assert.match(refused.stderr, /relaxed-SIMD kernels need an engine with relaxed SIMD/);
    }
  });

  it('the two modules give the same outputs bit for bit (int8 kernels of the grid formats, float kernels, sgemm)', () => {
    // one child with relaxed SIMD runs both modules on the registry examples and prints the first difference
    const script = `
      import { createWasmBackend } from '${join(DIST, 'src/backend/wasm.js')}';
      import { wasmKernelBytes } from '${join(DIST, 'src/node/backend.js')}';
      import { getFormat } from '${join(DIST, 'src/formats/registry.js')}';
      import { mulberry32 } from '${join(DIST, 'src/quant/random.js')}';
      const bes = ['simd128', 'relaxed'].map((k) => createWasmBackend({ wasm: wasmKernelBytes(k), threads: 1 }));
      let n = 0;
      for (const id of ['uniform-asym', 'uniform-sym', 'mixed-asym', 'aqlm', 'binary-billm']) {
        const f = getFormat(id);
        for (const [i, ex] of f.examples().entries()) {
          const rand = mulberry32(7 + i);
          const t = f.pack(f.randomPayload(ex.outDim, ex.inDim, ex.params, rand));
          const x = Float32Array.from({ length: 5 * ex.inDim }, () => rand() * 2 - 1);
          const ys = bes.map((be) => {
            const lin = f.makeLinear(t, be);
            const y = new Float32Array(6 * ex.outDim);
            lin.matvec(y, x.subarray(0, ex.inDim));
            lin.matmul(y.subarray(ex.outDim), x, 5);
            lin.dispose?.();
            return y;
          });
          const k = ys[0].findIndex((v, j) => !Object.is(v, ys[1][j]));
          if (k >= 0) { console.log('differ', id, JSON.stringify(ex.params), ex.outDim, ex.inDim, k, ys[0][k], ys[1][k]); process.exit(1); }
          n++;
        }
      }
      console.log('same', n);`;
    const r = nodeEval(FLAG, {}, script);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^same [1-9]/);
  });

  it('formats.test.ts passes on the relaxed module', () => {
    const r = spawnSync(process.execPath, [...FLAG, '--test', '--test-concurrency=1', join(DIST, 'test/formats.test.js')], {
      cwd: ROOT,
      encoding: 'utf8',
      // without the runner's NODE_TEST_CONTEXT the child reports plain TAP instead of the parent protocol
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), BITCRUSH_WASM_KERNELS: 'relaxed' },
    });
    const summary = r.stdout.split('\n').filter((l) => /^# (pass|fail)/.test(l)).join(', ');
    assert.equal(r.status, 0, `${summary}\n${r.stdout.split('\n').filter((l) => /not ok|error:/.test(l)).slice(0, 10).join('\n')}${r.stderr}`);
    assert.match(r.stdout, /ok \d+ - the wasm backends run the relaxed kernel module/, 'the child ran the relaxed module');
    assert.match(summary, /# pass [1-9]/);
  });
});

const skip = existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}: .ci/run installs Debian's chromium package (or set CHROMIUM_PATH)`;

describe('relaxed-SIMD kernels in chromium', { skip }, () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;

  before(async () => {
    server = await serveStatic({ '/': DIST, '/wasm/': join(ROOT, 'wasm') }, { isolate: false });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
    page = await browser.newPage();
    await page.goto(`${server.url}test/browser/`); // a 404 page is enough: modules are imported by URL
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('the page picks the relaxed module and its int8 kernels give W·x̂', async (t) => {
    const r = await page.evaluate(
      async ([url, wasmBase]) => ((await import(url!)) as typeof import('./browser/wasm-kernels-page.js')).wasmKernelChecks(wasmBase!),
      [`${server.url}test/browser/wasm-kernels-page.js`, `${server.url}wasm/`],
    ) as WasmKernelsResult;
    assert.equal(r.relaxedAvailable, true, 'chromium validates the relaxed-SIMD probe');
    assert.equal(r.chosen, 'relaxed');
    assert.equal(r.running, 'relaxed', 'the instantiated module is the relaxed build');
    assert.ok(r.cases.some((c) => c.what.startsWith('mixed-asym')) && r.cases.some((c) => c.what.includes('"bits":3')), 'mixed and uniform 3-bit cases ran');
    for (const c of r.cases) {
      assert.equal(c.engine, 'wasm', c.what);
      assert.ok(c.err <= INT8_TOL, `${c.what}: relative error ${c.err} > ${INT8_TOL}`);
    }
    t.diagnostic(`${r.cases.length} int8 kernel cases on the relaxed module, worst relative error ${Math.max(...r.cases.map((c) => c.err)).toExponential(1)}`);
  });
});
