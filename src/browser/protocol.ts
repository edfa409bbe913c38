/**
 * Messages between a page and its model worker (model-worker.ts ↔ client.ts). Requests carry
 * an id that every reply to them repeats; `stop` is a signal, not a request.
 */
import type { GenerateStats } from '../runtime/generate.js';
import type { ModelCard } from './card.js';
import type { DownloadProgress } from './download.js';
import type { CacheEntry } from './model-cache.js';
import type { NamedBytes } from './files.js';

export interface GenerateRequest {
  prompt: string;
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  seed: number;
  /** Chat mode: `prompt` is the user's message, formatted with the model's chat template (see `chat` of 'loaded'). */
  chat?: { system?: string };
}

export type ToWorker =
  /** `threads` (default: all cores when isolated) applies when the first load starts the backend. */
  | { id: number; type: 'load'; files: NamedBytes[]; threads?: number; backend?: BackendChoice; ctx?: number }
  /** Downloads (or reads from the cache) the packed model at urls[0] and its tokenizer files at the rest. */
  | { id: number; type: 'load-urls'; urls: string[]; threads?: number; backend?: BackendChoice; ctx?: number; cache?: boolean }
  | { id: number; type: 'cache-list' }
  /** Deletes one URL's cached file, or all of them (url absent). */
  | { id: number; type: 'cache-delete'; url?: string }
  | ({ id: number; type: 'generate' } & GenerateRequest)
  | { type: 'stop' };

/** Which backend runs the model: WebGPU when an adapter exists (auto), or the one asked for. */
export type BackendChoice = 'auto' | 'webgpu' | 'wasm';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'webgpu', 'wasm'];

export interface RuntimeInfo {
  /** 'webgpu' or the wasm backend's name. */
  backend: string;
  /** The WebGPU adapter (vendor, architecture) when the backend is webgpu. */
  adapter?: string;
  /** Why WebGPU is not running this model (no adapter, a format without a kernel…), when it is not. */
  webgpuUnavailable?: string;
  threads: number;
  /** The wasm kernel module running (backend/wasm-kernels.ts): relaxed SIMD where the browser has it. */
  kernels?: 'simd128' | 'relaxed';
  /** Whether the page was cross-origin isolated (threads possible). */
  isolated: boolean;
  /** Wall time of parsing the file and building the model, in ms. */
  loadMs: number;
  /** KV positions the model holds (the context it can run, counted by the budget). */
  positions?: number;
  /** Memory the model needs on the backend that runs it, bytes. */
  needBytes?: number;
  /** The model likely exceeds the device's memory (navigator.deviceMemory). */
  warning?: string;
  /** Where each URL's bytes came from (load-urls only). */
  sources?: { url: string; name: string; bytes: number; fromCache: boolean }[];
  /** Whether downloaded files are kept in the browser's storage (OPFS). */
  cached?: boolean;
}

export interface GenerateResult extends GenerateStats {
  /** True when stopped by the user (then stop is 'max-tokens' and tokensPerSecond is the wall-clock rate). */
  stopped: boolean;
  /** Wall time from request to the last piece, in seconds (includes messaging). */
  wallSeconds: number;
}

export type FromWorker =
  /** `chat`: the tokenizer has a chat template, so chat mode is available. */
  | { id: number; type: 'loaded'; card: ModelCard; runtime: RuntimeInfo; chat: boolean }
  | { id: number; type: 'piece'; text: string }
  | { id: number; type: 'progress'; progress: DownloadProgress }
  /** `available`: false where the browser gives no OPFS to a worker (nothing is cached then). */
  | { id: number; type: 'cache'; entries: CacheEntry[]; available: boolean }
  | { id: number; type: 'done'; result: GenerateResult }
  /** `file` is set for problems with an input file (InputError). */
  | { id: number; type: 'error'; message: string; file?: string };
