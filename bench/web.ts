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
 * WebGPU row runs chromium with the WebGPU flags (SwiftShader's CPU adapter, or with
 * `--adapter gpu` the machine's GPU: the adapter is printed); prefill tok/s is the page's prompt
 * rate (one chunk: the prompt is short).
 *
 * The greedy text of every row is compared with Node wasm's (printed: "identical" or the text).
 *
 * Decode is memory-bound, so each row also prints the bytes one decode step reads (every block
 * linear and the head as uploaded — packed blobs as stored, float tensors as float32 — plus the
 * K/V cache up to the step's position, averaged over the generation) and the GB/s that rate
 * implies; with `--bandwidth GBps` (the memory bandwidth of the GPU or CPU it ran on, from its
 * data sheet: no API tells) also the percentage of it. The WebGPU row names the adapter.
 *
 * Options: --model stories260K|bench-llama, --tokens N (default 200), --bandwidth GBps,
 * --adapter swiftshader|gpu (the WebGPU row's adapter: SwiftShader's CPU one, the default, or
 * the machine's GPU), and quantize flags after `--` (default: --method rtn --bits 2 --group-size 128).
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism, tmpdir } from 'node:os';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBackend, loadModel, type BackendKind } from '../src/node/index.js';
import { generate } from '../src/runtime/generate.js';
import { FileSource, nodeFs } from '../src/node/fs.js';
import { openTokenizer } from '../src/io/load.js';
import { PackedModel } from '../src/packed/reader.js';
import { kvDim } from '../src/model/config.js';
import { EMBED, LINEARS, LM_HEAD, layerTensor } from '../src/model/weights.js';
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
const bandwidth = own.includes('--bandwidth') ? Number(opt('--bandwidth', '')) : undefined;
if (bandwidth !== undefined && !(bandwidth > 0)) throw new Error('--bandwidth takes the memory bandwidth in GB/s, e.g. --bandwidth 1008');
if (!['wasm', 'webgpu', 'both'].includes(backendOpt)) throw new Error('--backend must be wasm, webgpu or both');
// --adapter swiftshader (default): the CPU adapter every machine has; --adapter gpu: the machine's
// GPU through Vulkan (headless chromium blocklists most GPUs unless told not to)
const adapterOpt = opt('--adapter', 'swiftshader');
if (!['swiftshader', 'gpu'].includes(adapterOpt)) throw new Error('--adapter must be swiftshader or gpu');
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', ...(adapterOpt === 'gpu' ? ['--ignore-gpu-blocklist', '--use-angle=vulkan'] : ['--use-webgpu-adapter=swiftshader'])];

/** The WebGPU adapters the pages ran on (vendor, architecture, description). */
const adapters = new Set<string>();

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
  const perToken = decodeBytes(file, promptLength(spec.tokenizer), tokens);
  console.log(`one decode step reads ${(perToken.bytes / 2 ** 20).toFixed(2)} MiB: weights ${(perToken.weights / 2 ** 20).toFixed(2)} MiB (block linears and head as uploaded), K/V cache ${(perToken.kv / 2 ** 20).toFixed(2)} MiB (at the mean position ${perToken.meanPos.toFixed(0)})`);
  console.log(`\nruntime                          threads   decode tok/s   wall tok/s   prefill tok/s   decode GB/s${bandwidth ? `   % of ${bandwidth} GB/s` : ''}`);
  for (const [name, n, rate, wall, pre] of rows) {
    const gbs = (rate * perToken.bytes) / 1e9;
    const pct = bandwidth ? `   ${((100 * gbs) / bandwidth).toFixed(1).padStart(6)} %` : '';
    console.log(`${name.padEnd(32)} ${String(n).padStart(7)}   ${rate.toFixed(1).padStart(12)}   ${wall.toFixed(1).padStart(10)}   ${Number.isFinite(pre) ? pre.toFixed(1).padStart(13) : '            -'}   ${gbs.toFixed(2).padStart(11)}${pct}`);
  }
  if (bandwidth === undefined) console.log('(decode GB/s = decode tok/s × bytes per step; --bandwidth <GB/s of the memory> adds the percentage)');
  for (const a of adapters) console.log(`WebGPU adapter: ${a}`);
  // wasm rows against Node wasm (int8 activations where the kernels have them, as in the page's
  // wasm); the WebGPU row against Node wasm on float activations, which is what the GPU computes
  const ref = texts.get('node wasm, 1 threads');
  const refFloat = backendOpt === 'wasm' ? undefined : floatText(file, spec.tokenizer);
  if (ref !== undefined) {
    console.log(`\ngreedy text (${tokens} tokens) of node wasm, 1 thread: ${JSON.stringify(ref.slice(0, 80))}${ref.length > 80 ? '…' : ''}`);
    if (refFloat !== undefined) console.log(`  node wasm, float activations: ${refFloat === ref ? 'identical' : `DIFFERS: ${JSON.stringify(refFloat.slice(0, 80))}`}`);
    for (const [name, text] of texts) {
      if (name.startsWith('node wasm, 1 ')) continue;
      const against = name.includes('webgpu') ? refFloat! : ref;
      console.log(`  ${name}${name.includes('webgpu') ? ' (against float activations)' : ''}: ${text === against ? 'identical' : `DIFFERS: ${JSON.stringify(text.slice(0, 80))}`}`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Bytes one decode step reads, averaged over a generation of `tokens` after the prompt: the
 * block linears and the head as the backends hold them (packed blobs as stored, float tensors as
 * float32; the embedding is one row, unless tied, when it is the head), and keys and values of
 * every cached position.
 */
function decodeBytes(file: string, promptLen: number, tokens: number): { bytes: number; weights: number; kv: number; meanPos: number } {
  const source = new FileSource(file);
  try {
    const packed = new PackedModel(source);
    const c = packed.config;
    const shapes = new Map(packed.tensors().map((t) => [t.name, t.shape]));
    const names = [...Array.from({ length: c.nLayers }, (_, l) => LINEARS.map((x) => layerTensor(l, x))).flat(), c.tiedEmbeddings ? EMBED : LM_HEAD];
    let weights = 0;
    for (const n of names) weights += packed.packedBytes(n) ?? (shapes.get(n) ?? []).reduce((a, b) => a * b, 1) * 4;
    const meanPos = Math.min(c.seqLen, promptLen + tokens / 2);
    const kv = 2 * c.nLayers * meanPos * kvDim(c) * 4;
    return { bytes: weights + kv, weights, kv, meanPos };
  } finally {
    source.close();
  }
}

/** Tokens of the prompt with BOS, as generate() feeds them. */
function promptLength(tokenizer: string): number {
  return openTokenizer(tokenizer, nodeFs).encode(PROMPT, true).length;
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
    let text = '';
    const rate = (): [number, number] => {
      const t0 = performance.now();
      const gen = generate(loaded.model, loaded.tokenizer, { prompt: PROMPT, maxTokens: tokens, temperature: 0, topP: 1, seed: 1 });
      text = '';
      for (;;) {
        const r = gen.next();
        if (r.done) return [r.value.tokensPerSecond, r.value.generatedTokens / ((performance.now() - t0) / 1000)];
        text += r.value;
      }
    };
    rate(); // warm-up
    const [a, b] = [rate(), rate()];
    texts.set(`node ${backend}, ${n} threads`, text);
    return [Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  } finally {
    loaded.dispose();
  }
}

/** The greedy text of the wasm backend in Node on float activations (as the WebGPU kernels compute), untimed. */
function floatText(file: string, tokenizer: string): string {
  const backend = createBackend({ kind: 'wasm', threads: 1, floatActivations: true });
  const loaded = loadModel(file, { tokenizer, backend });
  try {
    let text = '';
    for (const piece of generate(loaded.model, loaded.tokenizer, { prompt: PROMPT, maxTokens: tokens, temperature: 0, topP: 1, seed: 1 })) text += piece;
    return text;
  } finally {
    loaded.dispose();
    backend.dispose();
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
      const badge = (await page.textContent('#runtime')) ?? '';
      if (name.includes('webgpu')) adapters.add(badge.replace(/^webgpu · /, ''));
      const label = name.includes('webgpu') ? `${name} (${badge})` : name;
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
