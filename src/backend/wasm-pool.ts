/**
 * A thread pool for the WebAssembly kernels: the calling thread and N-1 workers instantiate
 * the same module over one shared memory. A call is dispatched through a control block in
 * that memory — the caller writes the op, its arguments and one range per thread, bumps a
 * generation counter (Atomics.notify), runs range 0 itself, then waits (Atomics.wait) until
 * every worker has acknowledged. Workers spin briefly before sleeping so back-to-back calls
 * (decode: many small gemvs per token) avoid the wake-up latency.
 *
 * This file is shared by both sides and has no Node imports: the Node worker entry is
 * src/node/wasm-worker.ts; a browser Web Worker entry only has to call runWasmWorker too.
 */

/** Exported kernels callable through the pool; the index is the op code. */
export const OPS = [
  { name: 'sgemm', scratch: true },
  { name: 'sgemv', scratch: false },
  { name: 'stream_sum', scratch: false },
  { name: 'xtx', scratch: true },
  { name: 'chol_panel', scratch: false },
  { name: 'chol_update', scratch: false },
  { name: 'trinv_mul', scratch: false },
  { name: 'trinv_store', scratch: false },
] as const;
export type OpName = (typeof OPS)[number]['name'];
const QUIT = -1;

// Control block layout (int32 slots).
const GEN = 0; // generation counter, bumped per dispatch
const PENDING = 1; // workers that have not yet acknowledged the current generation
const READY = 2; // workers that finished instantiating
const OP = 3;
const NARGS = 4;
const ARGS = 5;
const MAX_ARGS = 12;
const PARTS = ARGS + MAX_ARGS; // per thread: scratch, r0, r1, active
export const MAX_THREADS = 64;
export const CONTROL_BYTES = (PARTS + 4 * MAX_THREADS) * 4;

/** What a worker needs to join the pool (structured-cloneable). */
export interface WasmWorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: number; // byte offset of the control block
  index: number; // 1 .. threads-1
  spinMicros: number;
}

/** Starts a worker running the pool's worker entry with `init`; the platform layer provides it. */
export type SpawnWasmWorker = (init: WasmWorkerInit) => { terminate(): void };

type Kernel = (...args: number[]) => number;

function kernels(instance: WebAssembly.Instance): Kernel[] {
  return OPS.map(({ name }) => {
    const fn = instance.exports[name];
    if (typeof fn !== 'function') throw new Error(`kernels.wasm lacks export ${name}`);
    return fn as Kernel;
  });
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

/** Waits until ctl[slot] differs from `value`: spin for `spinMicros`, then sleep. */
function waitWhile(ctl: Int32Array, slot: number, value: number, spinMicros: number, timeoutMs = Infinity): void {
  if (Atomics.load(ctl, slot) !== value) return;
  const start = now();
  for (let i = 1; ; i++) {
    if (Atomics.load(ctl, slot) !== value) return;
    if ((i & 255) === 0 && now() - start > spinMicros / 1000) break;
  }
  while (Atomics.load(ctl, slot) === value) {
    const waited = now() - start;
    if (waited > timeoutMs) throw new Error('wasm backend: worker threads did not respond');
    Atomics.wait(ctl, slot, value, Math.min(1000, timeoutMs));
  }
}

/** The worker side: runs until the pool is disposed. */
export function runWasmWorker(init: WasmWorkerInit): void {
  const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
  const fns = kernels(instance);
  const ctl = new Int32Array(init.memory.buffer, init.control, CONTROL_BYTES / 4);
  Atomics.add(ctl, READY, 1);
  Atomics.notify(ctl, READY);
  let seen = 0;
  for (;;) {
    waitWhile(ctl, GEN, seen, init.spinMicros);
    seen = Atomics.load(ctl, GEN);
    const op = ctl[OP];
    if (op === QUIT) return;
    const part = PARTS + 4 * init.index;
    if (ctl[part + 3] !== 0) {
      const args: number[] = [];
      for (let i = 0; i < ctl[NARGS]; i++) args.push(ctl[ARGS + i]);
      if (OPS[op].scratch) args.push(ctl[part]);
      fns[op](...args, ctl[part + 1], ctl[part + 2]);
    }
    if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
  }
}

/** A [r0, r1) range of rows or columns for one thread. */
export type Range = readonly [number, number];

/** The calling thread's side of the pool. */
export class WasmPool {
  readonly fns: Kernel[];
  private readonly ctl: Int32Array;
  private readonly workers: { terminate(): void }[] = [];
  private scratch: number[] = []; // per-thread scratch addresses
  private disposed = false;

  constructor(
    readonly instance: WebAssembly.Instance,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    control: number,
    readonly threads: number,
    spawn: SpawnWasmWorker | undefined,
    private readonly spinMicros: number,
  ) {
    this.fns = kernels(instance);
    this.ctl = new Int32Array(memory.buffer, control, CONTROL_BYTES / 4);
    for (let index = 1; index < threads; index++) {
      if (!spawn) throw new Error('wasm backend: threads > 1 needs a worker factory');
      this.workers.push(spawn({ module, memory, control, index, spinMicros }));
    }
  }

  /** Resolves once every worker has instantiated (browsers must await this before calling). */
  async whenReady(): Promise<void> {
    while (Atomics.load(this.ctl, READY) < this.workers.length) await new Promise((r) => setTimeout(r, 1));
  }

  /** Sets the per-thread scratch blocks used by ops that take scratch. */
  setScratch(addresses: number[]): void {
    this.scratch = addresses;
  }

  /** Runs op over the ranges, range i on thread i, and returns when all are done. */
  run(op: OpName, args: number[], ranges: Range[]): number {
    if (this.disposed) throw new Error('wasm backend used after dispose()');
    const code = OPS.findIndex((o) => o.name === op);
    const usesScratch = OPS[code].scratch;
    const own = usesScratch ? [...args, this.scratch[0], ...ranges[0]] : [...args, ...ranges[0]];
    if (ranges.length === 1 || this.workers.length === 0) {
      let result = 0;
      for (const r of ranges) result = this.fns[code](...(usesScratch ? [...args, this.scratch[0], ...r] : [...args, ...r]));
      return result;
    }
    if (ranges.length > this.threads) throw new Error('more ranges than threads');
    const ctl = this.ctl;
    ctl[OP] = code;
    ctl[NARGS] = args.length;
    for (let i = 0; i < args.length; i++) ctl[ARGS + i] = args[i];
    for (let t = 1; t < this.threads; t++) {
      const part = PARTS + 4 * t;
      const active = t < ranges.length;
      ctl[part] = usesScratch ? this.scratch[t] : 0;
      ctl[part + 1] = active ? ranges[t][0] : 0;
      ctl[part + 2] = active ? ranges[t][1] : 0;
      ctl[part + 3] = active ? 1 : 0;
    }
    Atomics.store(ctl, PENDING, this.workers.length);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    const result = this.fns[code](...own);
    for (;;) {
      const pending = Atomics.load(ctl, PENDING);
      if (pending === 0) break;
      // Generous timeout: a worker that failed to start must not hang the process forever.
      waitWhile(ctl, PENDING, pending, this.spinMicros, 60_000);
    }
    return result;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.ctl, OP, QUIT);
    Atomics.add(this.ctl, GEN, 1);
    Atomics.notify(this.ctl, GEN);
    for (const w of this.workers) w.terminate();
  }
}
