/**
 * Loading by URL in headless chromium: a packed stories260K file served by a local HTTP server
 * is downloaded with progress events, kept in the origin private file system, and loaded again
 * with the server answering 404 ("from cache", same greedy text as the Node runtime); the cache
 * list shows the files with their sizes and deletes them. A Llama-2-7B-shaped header is refused
 * by the memory check as soon as it arrives (the server never sends the rest), and a download
 * cut short fails with a message naming the file and leaves no cache entry.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, normalize } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { DownloadProgress } from '../../src/browser/download.js';
import { loadModel } from '../../src/node/index.js';
import { generate } from '../../src/runtime/generate.js';
import { headerOnlyPackedFile, STORIES, STORIES_TOKENIZER } from './fixtures.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const MAX_TOKENS = 40;
const skip = existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}: .ci/run installs Debian's chromium package (or set CHROMIUM_PATH)`;

/** How the server answers under /models/: files as they are, 404, or cut short. */
type Mode = 'serve' | 'not-found';

interface ModelServer {
  url: string;
  mode: Mode;
  /** Requests under /models/ and the bytes sent for each path. */
  requests: string[];
  sent: Map<string, number>;
  close(): Promise<void>;
}

/**
 * The built page at /, model files at /models/<name>. Two special files: `big.bcq` is a header
 * announcing a 13.5 GB file whose connection then stays open (a check that waits for the data
 * would hang), `cut.bcq` announces the whole stories file and closes half way.
 */
async function serveModels(pageDir: string, models: Map<string, string>, big: { header: Uint8Array; size: number }): Promise<ModelServer> {
  const state: ModelServer = { url: '', mode: 'serve', requests: [], sent: new Map(), close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path.startsWith('/models/')) {
      const name = path.slice('/models/'.length);
      state.requests.push(name);
      const file = models.get(name);
      if (state.mode === 'not-found' || (file === undefined && name !== 'big.bcq')) {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
        return;
      }
      const count = (n: number) => state.sent.set(name, (state.sent.get(name) ?? 0) + n);
      if (name === 'big.bcq') {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': big.size });
        res.write(big.header);
        count(big.header.byteLength);
        return; // the rest never comes: the page must decide from the header
      }
      const size = statSync(file!).size;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': size, 'Cache-Control': 'no-store' });
      if (name === 'cut.bcq') {
        const half = readFileSync(file!).subarray(0, Math.floor(size / 2));
        res.write(half, () => res.destroy());
        count(half.byteLength);
        return;
      }
      const stream = createReadStream(file!);
      stream.on('data', (d) => count(d.length));
      stream.pipe(res);
      return;
    }
    let file = normalize(join(pageDir, path));
    if (path.endsWith('/')) file = join(file, 'index.html');
    if (!file.startsWith(pageDir) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    const type = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' }[file.slice(file.lastIndexOf('.'))];
    res.writeHead(200, { 'Content-Type': type ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

function nodeGreedy(file: string): string {
  const { model, tokenizer, dispose } = loadModel(file, { tokenizer: STORIES_TOKENIZER, backend: 'wasm', threads: 1 });
  try {
    const gen = generate(model, tokenizer, { prompt: 'Once upon a time', maxTokens: MAX_TOKENS, temperature: 0, topP: 1, seed: 1 });
    let text = '';
    for (let r = gen.next(); !r.done; r = gen.next()) text += r.value;
    return text;
  } finally {
    dispose();
  }
}

describe('loading by URL in chromium: progress, cache, memory check', { skip }, () => {
  let tmp: string;
  let packed: string;
  let server: ModelServer;
  let browser: Browser;
  let context: BrowserContext;
  let expected: string;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'bitcrush-cache-'));
    packed = join(tmp, 'stories-q4.bcq');
    const r = spawnSync(process.execPath, [CLI, 'quantize', STORIES, '--method', 'rtn', '--bits', '4', '--group-size', '32', '--out', packed, '--threads', '1'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    expected = nodeGreedy(packed);
    const { build } = await import('vite');
    await build({ configFile: join(ROOT, 'web/vite.config.ts'), logLevel: 'error' });
    const models = new Map([['stories-q4.bcq', packed], ['tok512.bin', STORIES_TOKENIZER], ['cut.bcq', packed]]);
    server = await serveModels(join(ROOT, 'dist/web'), models, headerOnlyPackedFile('llama2-7b'));
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
    context = await browser.newContext(); // one origin storage (OPFS) for every page of this suite
  });

  after(async () => {
    await context?.close();
    await browser?.close();
    await server?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** A page that records every progress event; `query` opens models by URL. */
  async function openPage(query: string): Promise<Page> {
    const page = await context.newPage();
    await page.addInitScript(() => {
      const w = window as unknown as { progress: unknown[] };
      w.progress = [];
      window.addEventListener('bitcrush-progress', (e) => w.progress.push((e as CustomEvent).detail));
    });
    await page.goto(`${server.url}${query}`);
    return page;
  }

  async function settle(page: Page): Promise<string> {
    const h = await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? '') && document.body.dataset.state, undefined, { timeout: 60_000 });
    return (await h.jsonValue()) as string;
  }

  async function greedy(page: Page): Promise<string> {
    await page.fill('#max-tokens', String(MAX_TOKENS));
    await page.fill('#temperature', '0');
    await page.click('#generate');
    await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), undefined, { timeout: 60_000 });
    return (await page.textContent('#continuation')) ?? '';
  }

  const progressOf = (page: Page) => page.evaluate(() => (window as unknown as { progress: DownloadProgress[] }).progress);
  const cached = (page: Page) => page.$$eval('#cache-list li', (lis) => lis.map((li) => ({ url: li.getAttribute('data-url') ?? '', bytes: Number(li.getAttribute('data-bytes')) })));
  const query = '?model=models/stories-q4.bcq&tokenizer=models/tok512.bin&backend=wasm';

  it('downloads with progress events, then loads from the cache with the server answering 404', async (t) => {
    const size = statSync(packed).size;
    const page = await openPage(query);
    assert.equal(await settle(page), 'ready', (await page.textContent('#error')) ?? '');
    const events = (await progressOf(page)).filter((p) => p.name === 'stories-q4.bcq');
    assert.ok(events.length >= 1, 'progress events for the model');
    const last = events.at(-1)!;
    assert.deepEqual([last.done, last.fromCache, last.loaded, last.total], [true, false, size, size]);
    for (let i = 1; i < events.length; i++) assert.ok(events[i]!.loaded >= events[i - 1]!.loaded, 'progress never goes back');
    assert.ok(last.bytesPerSecond > 0);
    assert.equal(await page.getAttribute('#status', 'data-from-cache'), 'false');
    assert.equal(await greedy(page), expected);
    await page.waitForSelector('#cache-list li');
    const entries = await cached(page);
    assert.deepEqual(entries.map((e) => [basename(e.url), e.bytes]).sort(), [['stories-q4.bcq', size], ['tok512.bin', statSync(STORIES_TOKENIZER).size]]);
    await page.close();

    server.mode = 'not-found';
    t.after(() => (server.mode = 'serve'));
    server.requests.length = 0;
    const again = await openPage(query);
    assert.equal(await settle(again), 'ready', (await again.textContent('#error')) ?? '');
    assert.deepEqual(server.requests, [], 'no model file was asked of the network');
    assert.equal(await again.getAttribute('#status', 'data-from-cache'), 'true');
    assert.match((await again.textContent('#status')) ?? '', /stories-q4\.bcq \(from cache\)/);
    assert.ok((await progressOf(again)).every((p) => p.fromCache));
    assert.equal(await greedy(again), expected);

    // deleting the tokenizer's entry: the next load needs the network, which answers 404
    await again.click(`#cache-list li[data-url$="tok512.bin"] button`);
    await again.waitForFunction(() => document.querySelectorAll('#cache-list li').length === 1);
    await again.close();
    const third = await openPage(query);
    assert.equal(await settle(third), 'error');
    assert.match((await third.textContent('#error')) ?? '', /tok512\.bin: HTTP 404/);
    await third.close();
  });

  it('refuses a 7B-shaped header on wasm from its first bytes, naming what would fit', async () => {
    const page = await openPage('?model=models/big.bcq&tokenizer=models/tok512.bin&backend=wasm');
    assert.equal(await settle(page), 'error');
    const message = (await page.textContent('#error')) ?? '';
    assert.match(message, /^big\.bcq: does not fit: wasm needs 2\d\.\d GiB of kernel memory and holds 4\.0 GiB/);
    assert.match(message, /parameters fit \(this model has 6\.7 B\), or this model packed at ≤ \d\.\d bits per weight/);
    assert.ok((server.sent.get('big.bcq') ?? 0) < 1 << 20, 'only the header was sent');
    await page.waitForFunction(() => document.querySelector('#cache-note')?.textContent !== '');
    assert.ok((await cached(page)).every((e) => !e.url.endsWith('big.bcq')), 'nothing of big.bcq cached');
    await page.close();
  });

  it('a download cut short fails naming the file and leaves no cache entry', async () => {
    const page = await openPage('?model=models/cut.bcq&tokenizer=models/tok512.bin&backend=wasm');
    assert.equal(await settle(page), 'error');
    assert.match((await page.textContent('#error')) ?? '', /cut\.bcq: download (failed after|stopped at) \d+ of \d+ bytes/);
    await page.waitForFunction(() => document.querySelector('#cache-note')?.textContent !== '');
    assert.ok((await cached(page)).every((e) => !e.url.endsWith('cut.bcq')), 'no cache entry for cut.bcq');
    // nor a stray file in the origin's storage: only complete entries (bytes + record) remain
    const files = await page.evaluate(async () => {
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('bitcrush-models');
      const names: string[] = [];
      for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
      return names.filter((n) => n !== '.probe');
    });
    const listed = (await cached(page)).length;
    assert.equal(files.length, 2 * listed, `files in OPFS: ${files.join(', ')}`);
    await page.close();
  });
});
