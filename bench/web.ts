/**
 * Browser vs Node decode speed for the same packed file (`npm run bench:web`): quantizes
 * bench-llama with `bitcrush quantize` (default RTN 2-bit, group 128), then generates greedily
 * from the same prompt in Node (wasm 1 thread, wasm N threads, native if it loads) and in
 * headless chromium through the built page (isolated N threads, isolated 1 thread, not
 * isolated). Each figure is generate()'s decode tokens/s (forward + sampling only), the best
 * of two runs after a warm-up, next to the wall-clock rate (generated tokens over the whole
 * request: prefill and, in the browser, messaging included), which does not depend on the
 * browser's timer resolution (100 µs without isolation, where one stories260K step takes
 * ~0.5 ms). Printed side by side, never asserted; a shared machine is noisy.
 *
 * In the browser, `--backend wasm|webgpu|both` (default both) picks the page's backend: the
 * WebGPU row runs chromium with the WebGPU flags (SwiftShader's CPU adapter where no GPU is
 * there, a real GPU's otherwise: the adapter is printed); prefill tok/s is the page's prompt
 * rate (one chunk: the prompt is short).
 *
 * The greedy text of every row is compared with Node wasm's (printed: "identical" or the text).
 *
 * Options: --model stories260K|bench-llama, --tokens N (default 200), and quantize flags after
 * `--` (default: --method rtn --bits 2 --group-size 128).
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism, tmpdir } from 'node:os';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel, type BackendKind } from '../src/node/index.js';
import { generate } from '../src/runtime/generate.js';
import { serveStatic } from '../test/browser/server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const MODELS: Record<string, { model: string; tokenizer: string }> = {
  'bench-llama': { model: shared('models/bench-llama'), tokenizer: shared('models/bench-llama/tokenizer.bin') },
  stories260K: { model: shared('models/stories260K/stories260K.bin'), tokenizer: shared('models/stories260K/tok512.bin') },
};
const PROMPT = 'Once upon a time';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const own = dash >= 0 ? argv.slice(0, dash) : argv;
const quantizeFlags = dash >= 0 ? argv.slice(dash + 1) : ['--method', 'rtn', '--bits', '2', '--group-size', '128'];
const opt = (name: string, fallback: string) => (own.includes(name) ? own[own.indexOf(name) + 1]! : fallback);
const which = opt('--model', 'bench-llama');
const tokens = Number(opt('--tokens', '200'));
const spec = MODELS[which];
if (spec === undefined) throw new Error(`--model must be one of ${Object.keys(MODELS).join(', ')}`);
const threads = availableParallelism();
const backendOpt = opt('--backend', 'both');
if (!['wasm', 'webgpu', 'both'].includes(backendOpt)) throw new Error('--backend must be wasm, webgpu or both');
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan'];

/** The greedy text of every runtime: the WebGPU page's must equal Node wasm's (printed, not asserted). */
const texts = new Map<string, string>();

const dir = mkdtempSync(join(tmpdir(), 'bitcrush-bench-web-'));
try {
  const file = join(dir, `${which}.bcq`);
  const q = spawnSync(process.execPath, [CLI, 'quantize', spec.model, '--out', file, ...quantizeFlags], { encoding: 'utf8' });
  if (q.status !== 0) throw new Error(`quantize failed: ${q.stderr.trim()}`);
  copyFileSync(spec.tokenizer, join(dir, basename(spec.tokenizer)));
  console.log(`${which}, ${quantizeFlags.join(' ')}: ${(statSync(file).size / 2 ** 20).toFixed(2)} MiB packed; greedy from "${PROMPT}", up to ${tokens} tokens; ${threads} cores`);

  const rows: Row[] = [];
  for (const [kind, n] of [['wasm', 1], ['wasm', threads], ['native', threads]] as [BackendKind, number][]) {
    const r = nodeRate(file, spec.tokenizer, kind, n);
    if (r !== undefined) rows.push([`node ${kind}`, n, r[0], r[1], NaN]);
  }
  for (const row of await browserRates(file, basename(spec.tokenizer))) rows.push(row);
  console.log('\nruntime                          threads   decode tok/s   wall tok/s   prefill tok/s');
  for (const [name, n, rate, wall, pre] of rows) console.log(`${name.padEnd(32)} ${String(n).padStart(7)}   ${rate.toFixed(1).padStart(12)}   ${wall.toFixed(1).padStart(10)}   ${Number.isFinite(pre) ? pre.toFixed(1).padStart(13) : '            -'}`);
  const ref = texts.get('node wasm, 1 threads');
  if (ref !== undefined) {
    console.log(`\ngreedy text (${tokens} tokens) against node wasm, 1 thread: ${JSON.stringify(ref.slice(0, 80))}${ref.length > 80 ? '…' : ''}`);
    for (const [name, text] of texts) if (!name.startsWith('node wasm, 1 ')) console.log(`  ${name}: ${text === ref ? 'identical' : `DIFFERS: ${JSON.stringify(text.slice(0, 80))}`}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/** name, threads, decode tok/s, wall tok/s, prefill tok/s (NaN: not measured) */
type Row = [string, number, number, number, number];

function nodeRate(file: string, tokenizer: string, backend: BackendKind, n: number): [number, number] | undefined {
  let loaded;
  try {
    loaded = loadModel(file, { tokenizer, backend, threads: n });
  } catch (e) {
    console.log(`node ${backend}: unavailable (${(e as Error).message})`);
    return undefined;
  }
  try {
    const rate = (): [number, number] => {
      const t0 = performance.now();
      const gen = generate(loaded.model, loaded.tokenizer, { prompt: PROMPT, maxTokens: tokens, temperature: 0, topP: 1, seed: 1 });
      for (;;) {
        const r = gen.next();
        if (r.done) return [r.value.tokensPerSecond, r.value.generatedTokens / ((performance.now() - t0) / 1000)];
      }
    };
    rate(); // warm-up
    const [a, b] = [rate(), rate()];
    return [Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  } finally {
    loaded.dispose();
  }
}

async function browserRates(file: string, tokenizer: string): Promise<Row[]> {
  try {
    statSync(CHROMIUM);
  } catch {
    console.log(`no chromium at ${CHROMIUM}: browser figures skipped`);
    return [];
  }
  const { build } = await import('vite');
  await build({ configFile: join(ROOT, 'web/vite.config.ts'), logLevel: 'error' });
  const mounts = { '/': join(ROOT, 'dist/web'), '/fixtures/': dir };
  const isolated = await serveStatic(mounts, { isolate: true });
  const plain = await serveStatic(mounts, { isolate: false });
  const { chromium } = await import('playwright-core');
  mkdirSync(join(dir, 'profile'));
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', ...(backendOpt === 'wasm' ? ['--disable-gpu'] : WEBGPU_FLAGS), '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const out: Row[] = [];
  const loads: string[] = [];
  try {
    const query = `model=fixtures/${basename(file)}&tokenizer=fixtures/${tokenizer}`;
    const pages: Array<readonly [string, string]> = [];
    if (backendOpt !== 'webgpu') {
      pages.push(
        ['chromium wasm, isolated', `${isolated.url}?${query}&backend=wasm`],
        ['chromium wasm, isolated, 1 thread', `${isolated.url}?${query}&threads=1&backend=wasm`],
        ['chromium wasm, not isolated', `${plain.url}?${query}&backend=wasm`],
      );
    }
    if (backendOpt !== 'wasm') pages.push(['chromium webgpu', `${isolated.url}?${query}&backend=webgpu`]);
    for (const [name, url] of pages) {
      const page = await context.newPage();
      await page.goto(url);
      await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? ''), undefined, { timeout: 60_000 });
      if ((await page.getAttribute('body', 'data-state')) === 'error') throw new Error(`page: ${await page.textContent('#error')}`);
      // the first page downloads the files (streamed into OPFS), the others read them from the cache
      const loadMs = Number(await page.getAttribute('#status', 'data-load-ms'));
      const fromCache = (await page.getAttribute('#status', 'data-from-cache')) === 'true';
      loads.push(`${name}: ${loadMs.toFixed(0)} ms ${fromCache ? 'from cache (OPFS)' : 'downloaded over http://127.0.0.1'}`);
      await page.fill('#prompt', PROMPT);
      await page.fill('#max-tokens', String(tokens));
      await page.fill('#temperature', '0');
      const rates: number[] = [];
      const walls: number[] = [];
      const prefills: number[] = [];
      for (let i = 0; i < 3; i++) {
        await page.click('#generate');
        await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), undefined, { timeout: 120_000 });
        const attr = async (a: string) => Number(await page.getAttribute('#stats', a));
        rates.push(await attr('data-tokens-per-second'));
        walls.push((await attr('data-generated-tokens')) / (await attr('data-wall-seconds')));
        prefills.push(await attr('data-prefill-tokens-per-second'));
      }
      texts.set(name, (await page.textContent('#continuation')) ?? '');
      const threadsUsed = Number(await page.getAttribute('#runtime', 'data-threads'));
      const label = name.includes('webgpu') ? `${name} (${await page.textContent('#runtime')})` : name;
      out.push([label, threadsUsed, Math.max(rates[1]!, rates[2]!), Math.max(walls[1]!, walls[2]!), Math.max(prefills[1]!, prefills[2]!)]);
      await page.close();
    }
  } finally {
    await context.close();
    await isolated.close();
    await plain.close();
  }
  console.log(`page load (parse, budget check, model build; download on the first visit of an origin):\n  ${loads.join('\n  ')}`);
  return out;
}
