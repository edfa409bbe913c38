/**
 * The page: gathers the input files (picker, drop, or URLs — also from the query string:
 * ?model=…&tokenizer=…[&threads=N][&backend=auto|webgpu|wasm][&ctx=N][&cache=0]), hands them to the model worker, shows the model card and
 * streams generated text; with a model whose tokenizer has a chat template (tokenizer_config.json
 * dropped with it), a chat mode formats the prompt as the user's message (?chat=1 turns it on).
 * URLs are downloaded by the worker with progress (bar, speed, ETA) and kept in the browser's
 * storage (OPFS), so the next visit loads them offline ("from cache"); the cached files are
 * listed with their sizes and can be deleted. Each progress report is also dispatched on
 * window as a `bitcrush-progress` CustomEvent (for scripts and tests).
 * `body[data-state]` tells tests and scripts where the page is:
 * idle → loading → ready → generating → done (or error).
 */
import { ModelWorkerClient } from '../src/browser/client.js';
import type { DownloadProgress } from '../src/browser/download.js';
import type { NamedBytes } from '../src/browser/fetch.js';
import type { CacheEntry } from '../src/browser/model-cache.js';
import { BACKEND_CHOICES, type BackendChoice, type GenerateResult, type RuntimeInfo } from '../src/browser/protocol.js';
import { renderCard } from './card-view.js';
import { byId, el } from './dom.js';

type State = 'idle' | 'loading' | 'ready' | 'generating' | 'done' | 'error';

const params = new URLSearchParams(location.search);
const threadsParam = params.has('threads') ? Number(params.get('threads')) : undefined;
const ctxParam = params.has('ctx') ? Number(params.get('ctx')) : undefined;
const client = new ModelWorkerClient(new Worker(new URL('./model-worker.ts', import.meta.url), { type: 'module' }));
let loaded = false;
/** Opens the last model again (picked files are read again, URLs come from the cache): switching the backend reloads it. */
let reopen: (() => Promise<void>) | undefined;
type Loaded = Awaited<ReturnType<ModelWorkerClient['load']>>;
const backendSelect = byId<HTMLSelectElement>('backend');
const asked = params.get('backend') as BackendChoice | null;
if (asked !== null && BACKEND_CHOICES.includes(asked)) backendSelect.value = asked;
const useCache = byId<HTMLInputElement>('use-cache');
if (params.get('cache') === '0') useCache.checked = false;

function setState(s: State): void {
  document.body.dataset.state = s;
  byId<HTMLButtonElement>('generate').disabled = s === 'generating' || s === 'loading' || !loaded;
  byId<HTMLButtonElement>('stop').disabled = s !== 'generating';
}

function showError(e: unknown): void {
  const box = byId('error');
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
  byId('status').textContent = '';
  setState('error');
}

/** Runs one load (files or URLs) with the page's status, card and runtime badge. */
async function load(what: () => Promise<Loaded>, again: () => Promise<void>): Promise<void> {
  reopen = again;
  setState('loading');
  byId('error').hidden = true;
  byId('status').textContent = 'loading…';
  try {
    const { card, runtime, chat } = await what();
    const chatBox = byId<HTMLInputElement>('chat');
    chatBox.disabled = !chat;
    chatBox.checked = chat && (params.get('chat') ?? '1') !== '0';
    byId('chat-row').hidden = !chat;
    const cardEl = byId('card');
    cardEl.replaceChildren(...renderCard(card));
    cardEl.hidden = false;
    byId('run').hidden = false;
    showRuntime(runtime);
    const from = runtime.sources?.map((s) => `${s.name}${s.fromCache ? ' (from cache)' : ''}`).join(' + ') ?? card.file;
    const need = runtime.needBytes !== undefined ? ` · needs ${formatBytes(runtime.needBytes)}` : '';
    const ctx = runtime.positions !== undefined ? ` · context ${runtime.positions}` : '';
    byId('status').textContent = `loaded ${from} in ${runtime.loadMs.toFixed(0)} ms${need}${ctx}${runtime.warning ? ` · warning: ${runtime.warning}` : ''}`;
    byId('status').dataset.fromCache = String(runtime.sources?.every((s) => s.fromCache) ?? false);
    byId('status').dataset.loadMs = String(runtime.loadMs);
    loaded = true;
    setState('ready');
  } catch (e) {
    showError(e);
  }
  void refreshCache();
}

function loadFiles(read: () => Promise<NamedBytes[]>): Promise<void> {
  const again = () => loadFiles(read);
  return load(async () => client.load(await read(), threadsParam, backendSelect.value as BackendChoice, ctxParam), again);
}

function loadUrls(urls: string[]): Promise<void> {
  // absolute: the worker would resolve a relative URL against its own script's
  const given = urls.map((u) => u.trim()).filter((u) => u !== '').map((u) => new URL(u, location.href).href);
  const again = () => loadUrls(given);
  const opts = { threads: threadsParam, backend: backendSelect.value as BackendChoice, ctx: ctxParam, cache: useCache.checked };
  return load(() => client.loadUrls(given, opts, showProgress), again);
}

function showProgress(p: DownloadProgress): void {
  window.dispatchEvent(new CustomEvent('bitcrush-progress', { detail: p }));
  byId('progress').hidden = false;
  const bar = byId<HTMLProgressElement>('progress-bar');
  if (p.total !== undefined && p.total > 0) bar.value = p.loaded / p.total;
  else bar.removeAttribute('value'); // indeterminate
  const of = p.total !== undefined ? ` of ${formatBytes(p.total)}` : '';
  const eta = p.etaSeconds !== undefined && !p.done ? ` · ${p.etaSeconds.toFixed(0)} s left` : '';
  const speed = p.fromCache ? ' · from cache' : ` · ${formatBytes(p.bytesPerSecond)}/s${eta}`;
  byId('progress-text').textContent = `${p.name}: ${formatBytes(p.loaded)}${of}${speed}${p.done && !p.fromCache ? ' · done' : ''}`;
}

async function refreshCache(shown?: { entries: CacheEntry[]; available: boolean }): Promise<void> {
  let r = shown;
  try {
    r ??= await client.cacheList();
  } catch {
    return; // the list is a convenience: a failure here must not hide the load's own result
  }
  const panel = byId('cache');
  panel.hidden = !r.available;
  const total = r.entries.reduce((a, e) => a + e.bytes, 0);
  byId('cache-note').textContent = r.entries.length === 0 ? 'No files cached.' : `${r.entries.length} file${r.entries.length === 1 ? '' : 's'}, ${formatBytes(total)} in this browser's storage.`;
  byId('cache-list').replaceChildren(
    ...r.entries.map((e) => {
      const del = el('button', { type: 'button', class: 'delete' }, 'delete');
      del.addEventListener('click', () => void client.cacheDelete(e.url).then(refreshCache, showError));
      return el('li', { 'data-url': e.url, 'data-bytes': String(e.bytes) }, el('span', { class: 'name' }, e.name), el('span', { class: 'url muted' }, e.url), el('span', {}, formatBytes(e.bytes)), el('span', { class: 'muted' }, e.stored.slice(0, 16).replace('T', ' ')), del);
    }),
  );
  byId<HTMLButtonElement>('cache-clear').disabled = r.entries.length === 0;
}

function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

function showRuntime(r: RuntimeInfo): void {
  const badge = byId('runtime');
  const threads = `${r.threads} thread${r.threads === 1 ? '' : 's'}`;
  badge.dataset.backend = r.backend;
  badge.dataset.threads = String(r.threads);
  if (r.backend === 'webgpu') {
    badge.textContent = `webgpu · ${r.adapter || 'adapter'}`;
    badge.title = '';
    return;
  }
  badge.dataset.kernels = r.kernels ?? '';
  const kernels = r.kernels === 'relaxed' ? ' (relaxed SIMD)' : r.kernels === 'simd128' ? ' (SIMD128)' : '';
  badge.textContent = `${r.backend}${kernels} · ${threads} · ${r.isolated ? 'cross-origin isolated' : 'not isolated: single-threaded'}`;
  badge.title = r.webgpuUnavailable ? `WebGPU not used: ${r.webgpuUnavailable}` : '';
}

async function run(): Promise<void> {
  const num = (id: string) => Number(byId<HTMLInputElement>(id).value);
  const out = byId('continuation');
  const stats = byId('stats');
  const prompt = byId<HTMLTextAreaElement>('prompt').value;
  const chatBox = byId<HTMLInputElement>('chat');
  const chat = chatBox.checked && !chatBox.disabled ? { system: byId<HTMLInputElement>('system').value || undefined } : undefined;
  // a chat answer is shown alone; a continuation after its prompt
  byId('output-prompt').textContent = chat ? '' : prompt;
  out.textContent = '';
  stats.textContent = '';
  byId('error').hidden = true;
  setState('generating');
  const t0 = performance.now();
  let pieces = 0;
  let lastShown = 0;
  try {
    const result = await client.generate(
      { prompt, maxTokens: num('max-tokens'), temperature: num('temperature'), topP: num('top-p'), seed: num('seed'), ...(chat ? { chat } : {}) },
      (text) => {
        out.append(text);
        pieces++;
        const now = performance.now();
        if (now - lastShown > 100) {
          lastShown = now;
          stats.textContent = `${pieces} tokens · ~${((pieces * 1000) / (now - t0)).toFixed(0)} tokens/s`;
        }
      },
    );
    showStats(result);
    setState('done');
  } catch (e) {
    showError(e);
  }
}

function showStats(r: GenerateResult): void {
  const stats = byId('stats');
  const why = r.stopped ? 'stopped' : { 'end-of-text': 'end of text', 'max-tokens': 'max tokens', context: 'context full' }[r.stop];
  const prefill = Number.isFinite(r.prefillSeconds) ? ` · prompt ${r.promptTokens} tokens in ${(r.prefillSeconds * 1000).toFixed(1)} ms` : '';
  stats.textContent = `${r.generatedTokens} tokens · ${r.tokensPerSecond.toFixed(1)} tokens/s decode${prefill} · ${why}`;
  stats.dataset.tokensPerSecond = String(r.tokensPerSecond);
  stats.dataset.generatedTokens = String(r.generatedTokens);
  stats.dataset.wallSeconds = String(r.wallSeconds);
  stats.dataset.prefillTokensPerSecond = String(r.promptTokens / r.prefillSeconds);
}

async function readFiles(list: FileList | null): Promise<NamedBytes[]> {
  return Promise.all([...(list ?? [])].map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
}


// file picker and drag-and-drop
byId<HTMLInputElement>('files').addEventListener('change', (e) => {
  const list = (e.target as HTMLInputElement).files;
  void loadFiles(() => readFiles(list));
});
// a File can be read again: switching the backend reopens the same files
backendSelect.addEventListener('change', () => {
  if (reopen !== undefined) void reopen();
});
const drop = byId('drop');
for (const type of ['dragenter', 'dragover']) {
  document.addEventListener(type, (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
}
document.addEventListener('dragleave', () => drop.classList.remove('over'));
document.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const list = e.dataTransfer?.files ?? null;
  void loadFiles(() => readFiles(list));
});

// URLs, typed or from the query string
byId('url-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const urls = [byId<HTMLInputElement>('model-url').value, ...byId<HTMLInputElement>('tokenizer-url').value.split(' ')];
  void loadUrls(urls);
});
byId('cache-clear').addEventListener('click', () => void client.cacheDelete().then(refreshCache, showError));
byId('generate').addEventListener('click', () => void run());
byId('stop').addEventListener('click', () => client.stop());

if (params.has('prompt')) byId<HTMLTextAreaElement>('prompt').value = params.get('prompt')!;
if (params.has('model')) {
  byId<HTMLInputElement>('model-url').value = params.get('model')!;
  byId<HTMLInputElement>('tokenizer-url').value = params.getAll('tokenizer').join(' ');
  void loadUrls([params.get('model')!, ...params.getAll('tokenizer')]);
} else {
  setState('idle');
  void refreshCache();
}
