/**
 * The page: gathers the input files (picker, drop, or URLs — also from the query string:
 * ?model=…&tokenizer=…[&threads=N][&backend=auto|webgpu|wasm]), hands them to the model worker, shows the model card and
 * streams generated text; with a model whose tokenizer has a chat template (tokenizer_config.json
 * dropped with it), a chat mode formats the prompt as the user's message (?chat=1 turns it on).
 * `body[data-state]` tells tests and scripts where the page is:
 * idle → loading → ready → generating → done (or error).
 */
import { ModelWorkerClient } from '../src/browser/client.js';
import { fetchBytes, type NamedBytes } from '../src/browser/fetch.js';
import { BACKEND_CHOICES, type BackendChoice, type GenerateResult, type RuntimeInfo } from '../src/browser/protocol.js';
import { renderCard } from './card-view.js';
import { byId } from './dom.js';

type State = 'idle' | 'loading' | 'ready' | 'generating' | 'done' | 'error';

const params = new URLSearchParams(location.search);
const threadsParam = params.has('threads') ? Number(params.get('threads')) : undefined;
const client = new ModelWorkerClient(new Worker(new URL('./model-worker.ts', import.meta.url), { type: 'module' }));
let loaded = false;
/** Reads the last opened files again (their bytes go to the worker): switching the backend reloads them. */
let reopen: (() => Promise<NamedBytes[]>) | undefined;
const backendSelect = byId<HTMLSelectElement>('backend');
const asked = params.get('backend') as BackendChoice | null;
if (asked !== null && BACKEND_CHOICES.includes(asked)) backendSelect.value = asked;

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

async function load(source: () => Promise<NamedBytes[]>): Promise<void> {
  reopen = source;
  const files = source();
  setState('loading');
  byId('error').hidden = true;
  byId('status').textContent = 'loading…';
  try {
    const given = await files;
    const { card, runtime, chat } = await client.load(given, threadsParam, backendSelect.value as BackendChoice);
    const chatBox = byId<HTMLInputElement>('chat');
    chatBox.disabled = !chat;
    chatBox.checked = chat && (params.get('chat') ?? '1') !== '0';
    byId('chat-row').hidden = !chat;
    const cardEl = byId('card');
    cardEl.replaceChildren(...renderCard(card));
    cardEl.hidden = false;
    byId('run').hidden = false;
    showRuntime(runtime);
    byId('status').textContent = `loaded ${given.map((f) => f.name).join(' + ')} in ${runtime.loadMs.toFixed(0)} ms`;
    loaded = true;
    setState('ready');
  } catch (e) {
    showError(e);
  }
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
  badge.textContent = `${r.backend} · ${threads} · ${r.isolated ? 'cross-origin isolated' : 'not isolated: single-threaded'}`;
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

function fetchAll(urls: string[]): Promise<NamedBytes[]> {
  return Promise.all(urls.filter((u) => u.trim() !== '').map((u) => fetchBytes(u.trim())));
}

// file picker and drag-and-drop
byId<HTMLInputElement>('files').addEventListener('change', (e) => {
  const list = (e.target as HTMLInputElement).files;
  void load(() => readFiles(list));
});
// a File can be read again: switching the backend reopens the same files
backendSelect.addEventListener('change', () => {
  if (reopen !== undefined) void load(reopen);
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
  void load(() => readFiles(list));
});

// URLs, typed or from the query string
byId('url-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const urls = [byId<HTMLInputElement>('model-url').value, ...byId<HTMLInputElement>('tokenizer-url').value.split(' ')];
  void load(() => fetchAll(urls));
});
byId('generate').addEventListener('click', () => void run());
byId('stop').addEventListener('click', () => client.stop());

if (params.has('prompt')) byId<HTMLTextAreaElement>('prompt').value = params.get('prompt')!;
if (params.has('model')) {
  byId<HTMLInputElement>('model-url').value = params.get('model')!;
  byId<HTMLInputElement>('tokenizer-url').value = params.getAll('tokenizer').join(' ');
  const urls = [params.get('model')!, ...params.getAll('tokenizer')];
  void load(() => fetchAll(urls));
} else {
  setState('idle');
}
