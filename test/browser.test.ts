/**
 * The web page in a real browser (Debian's chromium, headless, driven by playwright-core): the
 * page is built here with Vite and served on 127.0.0.1; packed stories260K files made by
 * `bitcrush quantize` (one per format family in the registry, see browser/fixtures.ts) are
 * opened by URL, generated from greedily, and the text must equal what the Node runtime
 * produces for the same file on the same wasm kernels (the page runs the relaxed-SIMD module,
 * Node 20 the SIMD128 one: they compute the same bits, test/wasm-relaxed.test.ts). Screenshots go to test-artifacts/.
 * Speeds are printed for information, never asserted.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { modelCard } from '../src/browser/card.js';
import { BufferSource } from '../src/io/bytes.js';
import { loadModel } from '../src/node/index.js';
import { PackedModel } from '../src/packed/reader.js';
import { generate } from '../src/runtime/generate.js';
import { FAMILY_HINTS, makeFixtures, registeredFamilies, STORIES_TOKENIZER, type FixtureSet } from './browser/fixtures.js';
import { serveStatic, type StaticServer } from './browser/server.js';
import { ARCH_CASES, CHATML_TEMPLATE, writeArchDir, writeChatTokenizer } from './hf-dirs.js';
import { spawnSync } from 'node:child_process';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');
const PROMPT = 'Once upon a time';
const MAX_TOKENS = 120;

const skip = existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}: .ci/run installs Debian's chromium package (or set CHROMIUM_PATH)`;

/** What the Node runtime generates from a packed file: the reference the page must match. */
function nodeGenerate(file: string, prompt: string, chat?: { tokenizer: string; system: string }): { text: string; tokensPerSecond: number } {
  const { model, tokenizer, dispose } = loadModel(file, { tokenizer: chat?.tokenizer ?? STORIES_TOKENIZER, backend: 'wasm', threads: 1 });
  try {
    const messages = chat ? [{ role: 'system' as const, content: chat.system }, { role: 'user' as const, content: prompt }] : undefined;
    const gen = generate(model, tokenizer, { prompt, messages, maxTokens: MAX_TOKENS, temperature: 0, topP: 1, seed: 1 });
    let text = '';
    for (;;) {
      const r = gen.next();
      if (r.done) return { text, tokensPerSecond: r.value.tokensPerSecond };
      text += r.value;
    }
  } finally {
    dispose();
  }
}

describe('web page in chromium', { skip }, () => {
  let tmp: string;
  let fixtures: FixtureSet;
  let isolated: StaticServer;
  let plain: StaticServer;
  let context: BrowserContext;
  const pageErrors: string[] = [];

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'bitcrush-browser-'));
    mkdirSync(ARTIFACTS, { recursive: true });
    const fixtureDir = join(tmp, 'fixtures');
    mkdirSync(fixtureDir);
    const t0 = performance.now();
    // the page is built while `bitcrush quantize` makes the packed files
    const { build } = await import('vite');
    [fixtures] = await Promise.all([makeFixtures(fixtureDir), build({ configFile: join(ROOT, 'web/vite.config.ts'), logLevel: 'error' })]);
    const made = [...new Set(fixtures.byFamily.values())].map((f) => `${f.method} (${f.families.join(', ')})`);
    console.log(`page built and packed fixtures made: ${made.join(', ')} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    copyFileSync(STORIES_TOKENIZER, join(fixtureDir, basename(STORIES_TOKENIZER)));
    makeChatFixture(fixtureDir);
    const mounts = { '/': join(ROOT, 'dist/web'), '/fixtures/': fixtureDir };
    isolated = await serveStatic(mounts, { isolate: true });
    plain = await serveStatic(mounts, { isolate: false });
    const { chromium } = await import('playwright-core');
    context = await chromium.launchPersistentContext(join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1000, height: 1300 },
    });
  });

  after(async () => {
    await context?.close();
    await isolated?.close();
    await plain?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function newPage(): Promise<Page> {
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    return page;
  }

  /** Waits for body[data-state] to become `state`; an error state fails with the page's message. */
  async function waitFor(page: Page, state: string): Promise<void> {
    const handle = await page.waitForFunction((s) => ['error', s].includes(document.body.dataset.state ?? '') && document.body.dataset.state, state, { timeout: 30_000 });
    const reached = await handle.jsonValue();
    if (reached !== state) assert.fail(`page error: ${await page.textContent('#error')} ${pageErrors.join(' | ')}`);
  }

  /** Greedy generation through the page's controls; returns the text and the page's decode speed. */
  async function generateOnPage(page: Page, prompt: string): Promise<{ text: string; tokensPerSecond: number }> {
    await page.fill('#prompt', prompt);
    await page.fill('#max-tokens', String(MAX_TOKENS));
    await page.fill('#temperature', '0');
    await page.click('#generate');
    await waitFor(page, 'done');
    return {
      text: (await page.textContent('#continuation')) ?? '',
      tokensPerSecond: Number(await page.getAttribute('#stats', 'data-tokens-per-second')),
    };
  }

  for (const family of registeredFamilies()) {
    it(`${family} format family: greedy text in the page equals the Node runtime's`, async (t) => {
      const fixture = fixtures.byFamily.get(family);
      if (fixture === undefined) {
        // a method expected to produce this family failed: that is a bug, not a reason to skip
        const broken = fixtures.failed.filter((f) => FAMILY_HINTS[f.method] === family);
        assert.equal(broken.length, 0, broken.map((f) => `${f.method}: ${f.error}`).join('; '));
        const why = fixtures.failed.map((f) => `${f.method}: ${f.error}`).join('; ');
        t.skip(`no registered method produced a ${family} file from stories260K with default options${why ? ` (${why})` : ''}`);
        return;
      }
      const expected = nodeGenerate(fixture.file, PROMPT);
      assert.ok(expected.text.length > 20, `Node generated only ${JSON.stringify(expected.text)}`);

      const page = await newPage();
      const name = basename(fixture.file);
      await page.goto(`${isolated.url}?model=fixtures/${name}&tokenizer=fixtures/tok512.bin`);
      await waitFor(page, 'ready');
      assert.match((await page.textContent('#runtime')) ?? '', /cross-origin isolated/);
      // chromium has relaxed SIMD: the page runs wasm/kernels-relaxed.wasm (the same results as Node's SIMD128 module, bit for bit)
      assert.equal(await page.getAttribute('#runtime', 'data-kernels'), 'relaxed');
      assert.equal(await page.textContent('#card-file'), name);
      assert.equal(await page.textContent('#card-method'), fixture.method + ((await page.textContent('#card-method .muted')) ?? ''));
      const cells = await page.$$eval('#bitmap .cell', (els) => els.map((e) => e.getAttribute('data-format')));
      assert.equal(cells.length, 5 * 7, 'one bit-map cell per linear of stories260K');
      const hasGroups = modelCard(new PackedModel(new BufferSource(name, readFileSync(fixture.file))), 0).groupBits.length > 0;
      assert.equal(await page.isVisible('#group-bitmap'), hasGroups, 'group bit-map shown exactly for grid formats');

      const got = await generateOnPage(page, PROMPT);
      assert.equal(got.text, expected.text);
      assert.deepEqual(pageErrors, [], 'errors in the page console');
      const threads = await page.getAttribute('#runtime', 'data-threads');
      await page.screenshot({ path: join(ARTIFACTS, `browser-${family}.png`), fullPage: true });
      t.diagnostic(`${family} (${fixture.method}): decode ${got.tokensPerSecond.toFixed(0)} tok/s in chromium (${threads} threads) vs ${expected.tokensPerSecond.toFixed(0)} tok/s in Node (wasm, 1 thread)`);
      await page.close();
    });
  }

  it('without cross-origin isolation the page runs single-threaded; file picker input; same text', async () => {
    const fixture = [...fixtures.byFamily.values()][0];
    assert.ok(fixture !== undefined, 'no packed fixture at all');
    const expected = nodeGenerate(fixture.file, '');
    const page = await newPage();
    await page.goto(plain.url);
    await page.setInputFiles('#files', [fixture.file, STORIES_TOKENIZER]);
    await waitFor(page, 'ready');
    assert.match((await page.textContent('#runtime')) ?? '', /1 thread · not isolated/);
    const got = await generateOnPage(page, '');
    assert.equal(got.text, expected.text);
    await page.close();
  });

  it('chat mode: a Qwen2.5-shaped packed file with its chat template answers as in Node', async () => {
    const dir = join(tmp, 'fixtures');
    const expected = nodeGenerate(join(dir, 'qwen-chat.bcq'), 'Hi', { tokenizer: join(dir, 'qwen-chat', 'tokenizer.json'), system: 'Be brief.' });
    assert.ok(expected.text.length > 0, 'the reference answer is not empty');
    const page = await newPage();
    await page.goto(`${plain.url}?model=fixtures/qwen-chat.bcq&tokenizer=fixtures/qwen-chat/tokenizer.json&tokenizer=fixtures/qwen-chat/tokenizer_config.json&tokenizer=fixtures/qwen-chat/generation_config.json`);
    await waitFor(page, 'ready');
    assert.equal(await page.isChecked('#chat'), true, 'chat mode is on for a model with a chat template');
    await page.fill('#system', 'Be brief.');
    const got = await generateOnPage(page, 'Hi');
    assert.equal(got.text, expected.text);
    assert.equal(await page.textContent('#output-prompt'), '', 'the answer is shown alone');
    await page.close();
  });

  it('a corrupt packed file dropped on the page is refused with a message naming it', async () => {
    const fixture = [...fixtures.byFamily.values()][0]!;
    const bytes = readFileSync(fixture.file);
    const files = [
      { name: 'truncated.bcq', base64: bytes.subarray(0, bytes.length - 100).toString('base64') },
      { name: basename(STORIES_TOKENIZER), base64: readFileSync(STORIES_TOKENIZER).toString('base64') },
    ];
    const page = await newPage();
    await page.goto(plain.url);
    const dataTransfer = await page.evaluateHandle((given) => {
      const dt = new DataTransfer();
      for (const f of given) dt.items.add(new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name));
      return dt;
    }, files);
    await page.dispatchEvent('#drop', 'drop', { dataTransfer });
    const state = await page.waitForFunction(() => ['error', 'ready'].includes(document.body.dataset.state ?? '') && document.body.dataset.state);
    assert.equal(await state.jsonValue(), 'error');
    assert.match((await page.textContent('#error')) ?? '', /truncated\.bcq/);
    assert.equal(await page.isHidden('#run'), true, 'no generate panel for a refused file');
    await page.close();
  });
});

/** A Qwen2.5-shaped random model with a ChatML tokenizer (3 special + 256 byte tokens), packed with RTN 4-bit. */
function makeChatFixture(dir: string): void {
  const qwen = ARCH_CASES.find((k) => k.name === 'qwen25-bias')!;
  const model = join(dir, 'qwen-chat');
  writeArchDir(model, { ...qwen, config: { ...qwen.config, vocab_size: 259 } });
  writeChatTokenizer(model, {
    special: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
    config: { bos_token: null, eos_token: '<|im_end|>', chat_template: CHATML_TEMPLATE },
    generationEos: [2, 0],
  });
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const r = spawnSync(process.execPath, [cli, 'quantize', model, '--method', 'rtn', '--bits', '4', '--group-size', '16', '--out', join(dir, 'qwen-chat.bcq')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}
