/**
 * A thread pool for the WebAssembly kernels: the calling thread and N-1 workers instantiate
 * the same module over one shared memory. A call is dispatched through a control block in
 * that memory: the caller writes the op, its arguments and a table of row ranges (chunks),
 * opens the chunk counter, bumps a generation counter (Atomics.notify) and then claims chunks
 * itself like any worker. Chunks are claimed with compare-and-swap on one word holding
 * (generation, next chunk), so a worker that wakes late, or is not scheduled at all on a busy
 * machine, simply finds nothing left: the caller never waits for a thread that has not
 * started, only for chunks already being computed (Atomics.wait on the done counter).
 * Workers spin briefly before sleeping so back-to-back calls (decode: many gemvs per token)
 * avoid the wake-up latency.
 *
 * This file is shared by both sides and has no Node imports: the Node worker entry is
 * src/node/wasm-worker.ts; a browser Web Worker entry only has to call runWasmWorker too.
 */

/**
 * Every exported function of the module can be dispatched; its op code is its index among
 * the module's function exports, an order every thread derives identically from the module.
 * Kernels take their range (r0, r1) last, preceded by a per-thread scratch address when the
 * call asks for scratch.
 */
function exportedFunctions(module: WebAssembly.Module): string[] {
  return WebAssembly.Module.exports(module)
    .filter((e) => e.kind === 'function')
    .map((e) => e.name);
}

// Control block layout (int32 slots).
const GEN = 0; // generation counter, bumped per dispatch
const CLAIM = 1; // (generation << CHUNK_BITS) | next unclaimed chunk
const DONE = 2; // chunks finished in the current generation
const READY = 3; // workers that finished instantiating
const QUIT = 4; // set on dispose
const OP = 5;
const NARGS = 6;
const NCHUNKS = 7;
const USES_SCRATCH = 8;
const ARGS = 9;
const MAX_ARGS = 12;
const SCRATCH = ARGS + MAX_ARGS; // per-thread scratch address
export const MAX_THREADS = 64;
const CHUNKS = SCRATCH + MAX_THREADS; // per chunk: r0, r1
const CHUNK_BITS = 10;
export const MAX_CHUNKS = 1 << (CHUNK_BITS - 1); // below the field's range, so "all claimed" fits
const GEN_MASK = (1 << (31 - CHUNK_BITS)) - 1;
export const CONTROL_BYTES = (CHUNKS + 2 * MAX_CHUNKS) * 4;

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

function kernels(module: WebAssembly.Module, instance: WebAssembly.Instance): Kernel[] {
  return exportedFunctions(module).map((name) => instance.exports[name] as Kernel);
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

/** Waits until ctl[slot] differs from `value`: spin for `spinMicros`, then sleep. */
function waitWhile(ctl: Int32Array, slot: number, value: number, spinMicros: number): void {
  if (Atomics.load(ctl, slot) !== value) return;
  const start = now();
  for (let i = 1; ; i++) {
    if (Atomics.load(ctl, slot) !== value) return;
    if ((i & 255) === 0 && now() - start > spinMicros / 1000) break;
  }
  while (Atomics.load(ctl, slot) === value) Atomics.wait(ctl, slot, value);
}

/**
 * Claims and runs chunks of generation `gen` until none is left. The arguments were read
 * before the claim; they are valid exactly when the claim succeeds, because the caller only
 * rewrites them after every chunk of the generation has been claimed and finished.
 */
function work(ctl: Int32Array, fns: Kernel[], gen: number, index: number): void {
  const op = ctl[OP];
  const nargs = ctl[NARGS];
  const args: number[] = [];
  for (let i = 0; i < nargs && i < MAX_ARGS; i++) args.push(ctl[ARGS + i]);
  const tag = (gen & GEN_MASK) << CHUNK_BITS;
  for (;;) {
    const claim = Atomics.load(ctl, CLAIM);
    const chunk = claim - tag;
    if (chunk < 0 || chunk >= Atomics.load(ctl, NCHUNKS) || chunk >= MAX_CHUNKS) return;
    if (Atomics.compareExchange(ctl, CLAIM, claim, claim + 1) !== claim) continue;
    const base = CHUNKS + 2 * chunk;
    if (ctl[USES_SCRATCH]) fns[op](...args, ctl[SCRATCH + index], ctl[base], ctl[base + 1]);
    else fns[op](...args, ctl[base], ctl[base + 1]);
    if (Atomics.add(ctl, DONE, 1) + 1 === ctl[NCHUNKS]) Atomics.notify(ctl, DONE);
  }
}

/** The worker side: runs until the pool is disposed. */
export function runWasmWorker(init: WasmWorkerInit): void {
  const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
  const fns = kernels(init.module, instance);
  const ctl = new Int32Array(init.memory.buffer, init.control, CONTROL_BYTES / 4);
  Atomics.add(ctl, READY, 1);
  Atomics.notify(ctl, READY);
  let seen = 0;
  for (;;) {
    waitWhile(ctl, GEN, seen, init.spinMicros);
    if (Atomics.load(ctl, QUIT)) return;
    seen = Atomics.load(ctl, GEN);
    work(ctl, fns, seen, init.index);
  }
}

/** A [r0, r1) range of rows or columns for one chunk. */
export type Range = readonly [number, number];

/** The calling thread's side of the pool. */
export class WasmPool {
  private readonly fns: Kernel[];
  private readonly codes: Map<string, number>;
  private readonly ctl: Int32Array;
  private readonly workers: { terminate(): void }[] = [];
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
    this.fns = kernels(module, instance);
    this.codes = new Map(exportedFunctions(module).map((name, i) => [name, i]));
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

  /** Sets the per-thread scratch blocks used by ops that take scratch (between calls only). */
  setScratch(addresses: number[]): void {
    addresses.forEach((a, i) => (this.ctl[SCRATCH + i] = a));
  }

  /**
   * Runs the exported kernel `op` over the chunks (any thread may take any chunk) and returns
   * when all are done: op(...args, [thread scratch if withScratch], r0, r1) per chunk. With one
   * chunk, or no workers, everything runs here without touching the control block.
   */
  run(op: string, args: number[], chunks: Range[], withScratch: boolean): void {
    if (this.disposed) throw new Error('wasm backend used after dispose()');
    if (args.length > MAX_ARGS || chunks.length > MAX_CHUNKS) throw new Error('wasm pool: too many arguments or chunks');
    const code = this.codes.get(op);
    if (code === undefined) throw new Error(`kernels.wasm has no export ${op}`);
    const ctl = this.ctl;
    if (chunks.length === 1 || this.workers.length === 0) {
      const scratch = withScratch ? [ctl[SCRATCH]] : [];
      for (const [r0, r1] of chunks) this.fns[code](...args, ...scratch, r0, r1);
      return;
    }
    // Close the previous generation first: a worker still looping over it must not see the
    // new chunk count with its old claim word and take a chunk it would run with stale args.
    const gen = (Atomics.load(ctl, GEN) + 1) & GEN_MASK;
    Atomics.store(ctl, CLAIM, gen << CHUNK_BITS);
    // No worker holds `gen` until GEN is stored below, so nobody claims while these are written.
    ctl[OP] = code;
    ctl[USES_SCRATCH] = withScratch ? 1 : 0;
    ctl[NARGS] = args.length;
    for (let i = 0; i < args.length; i++) ctl[ARGS + i] = args[i];
    chunks.forEach(([r0, r1], i) => {
      ctl[CHUNKS + 2 * i] = r0;
      ctl[CHUNKS + 2 * i + 1] = r1;
    });
    Atomics.store(ctl, NCHUNKS, chunks.length);
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, GEN, gen);
    Atomics.notify(ctl, GEN);
    work(ctl, this.fns, gen, 0);
    for (;;) {
      const done = Atomics.load(ctl, DONE);
      if (done === chunks.length) break;
      // Only chunks already claimed (being computed) remain, so this wait is bounded by them.
      waitWhile(ctl, DONE, done, this.spinMicros);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.ctl, QUIT, 1);
    Atomics.add(this.ctl, GEN, 1);
    Atomics.notify(this.ctl, GEN);
    for (const w of this.workers) w.terminate();
  }
}
