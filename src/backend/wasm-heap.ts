/**
 * A first-fit allocator over the shared WebAssembly.Memory, used only on the calling thread
 * (workers never allocate). Blocks are 64-byte aligned (a cache line, and enough for any SIMD
 * load); freed blocks coalesce with their neighbours; the memory grows when nothing fits.
 *
 * Growing a *shared* memory never detaches existing views, so arrays handed out stay valid;
 * `memory.buffer` returns a new SharedArrayBuffer object after each grow, so every buffer
 * object ever seen is remembered to recognise views into this memory.
 */
const ALIGN = 64;
const PAGE = 65536;
const MAX_BYTES = 65536 * PAGE; // wasm32 limit, matches the module's declared maximum

interface Block {
  offset: number;
  size: number;
}

export class WasmHeap {
  private readonly free: Block[] = []; // sorted by offset, never adjacent
  private readonly used = new Map<number, number>(); // offset -> size
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  private buffer: ArrayBufferLike;

  constructor(
    readonly memory: WebAssembly.Memory,
    base: number, // first byte the allocator may use (the module's __heap_base)
  ) {
    this.buffer = memory.buffer;
    this.buffers.add(this.buffer);
    const start = alignUp(base);
    if (start < this.buffer.byteLength) this.free.push({ offset: start, size: this.buffer.byteLength - start });
  }

  /** Whether `view` lies in this memory (then its byteOffset is its wasm address). */
  owns(view: ArrayBufferView): boolean {
    return this.buffers.has(view.buffer);
  }

  /** Allocates `bytes` (zeroed unless `zero` is false); returns the byte offset. */
  allocBytes(bytes: number, zero = true): number {
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`bad allocation size ${bytes}`);
    const size = Math.max(ALIGN, alignUp(bytes));
    let index = this.free.findIndex((b) => b.size >= size);
    if (index < 0) index = this.grow(size);
    const block = this.free[index];
    const offset = block.offset;
    if (block.size === size) this.free.splice(index, 1);
    else {
      block.offset += size;
      block.size -= size;
    }
    this.used.set(offset, size);
    if (zero) new Uint8Array(this.view(), offset, size).fill(0);
    return offset;
  }

  /** Returns a block from allocBytes; throws on an address that is not a live block. */
  freeBytes(offset: number): void {
    const size = this.used.get(offset);
    if (size === undefined) throw new Error(`free of ${offset}: not a live allocation from this backend`);
    this.used.delete(offset);
    let i = 0;
    while (i < this.free.length && this.free[i].offset < offset) i++;
    this.free.splice(i, 0, { offset, size });
    // Coalesce with the next block, then with the previous one.
    if (i + 1 < this.free.length && offset + size === this.free[i + 1].offset) {
      this.free[i].size += this.free[i + 1].size;
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1].offset + this.free[i - 1].size === offset) {
      this.free[i - 1].size += this.free[i].size;
      this.free.splice(i, 1);
    }
  }

  f32(offset: number, length: number): Float32Array {
    return new Float32Array(this.view(), offset, length);
  }

  f64(offset: number, length: number): Float64Array {
    return new Float64Array(this.view(), offset, length);
  }

  /** The current (largest) buffer of the memory. */
  view(): ArrayBufferLike {
    const b = this.memory.buffer;
    if (b !== this.buffer) {
      this.buffer = b;
      this.buffers.add(b);
    }
    return b;
  }

  /** Grows the memory so that a free block of `size` bytes exists; returns its index. */
  private grow(size: number): number {
    const end = this.view().byteLength;
    const last = this.free[this.free.length - 1];
    const tail = last && last.offset + last.size === end ? last.size : 0;
    const needed = size - tail;
    // Grow by at least 1/8 of the current size so repeated small growths stay rare.
    const pages = Math.max(Math.ceil(needed / PAGE), Math.ceil(end / PAGE / 8));
    const limited = Math.min(pages, (MAX_BYTES - end) / PAGE);
    if (limited * PAGE < needed) throw new RangeError(`wasm memory exhausted: cannot allocate ${size} bytes`);
    this.memory.grow(limited);
    const added = limited * PAGE;
    this.view();
    if (tail > 0) last.size += added;
    else this.free.push({ offset: end, size: added });
    return this.free.length - 1;
  }
}

function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}
