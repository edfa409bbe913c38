/**
 * A safetensors container as chunks (header, then each tensor's bytes as it is reached), for
 * checkpoints written for other runtimes (Hugging Face directories). Layout as read by
 * io/safetensors.ts: u64 LE header length, JSON header (space-padded to 8 bytes, as the Rust
 * writer does), data section without holes.
 */
import { DTYPE_BYTES, type SafetensorsDtype } from '../io/safetensors.js';

export interface OutTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Produced when the writer reaches the tensor (one large tensor in memory at a time). */
  bytes: () => Uint8Array;
}

export function safetensorsChunks(tensors: readonly OutTensor[], metadata: Record<string, string> = {}): { size: number; chunks: () => Iterable<Uint8Array> } {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    sizes.push(n);
    offset += n;
  }
  const text = new TextEncoder().encode(JSON.stringify(header));
  const len = text.byteLength + ((8 - (text.byteLength % 8)) % 8);
  const head = new Uint8Array(8 + len).fill(0x20, 8);
  new DataView(head.buffer).setBigUint64(0, BigInt(len), true);
  head.set(text, 8);
  return {
    size: head.byteLength + offset,
    *chunks() {
      yield head;
      for (let i = 0; i < tensors.length; i++) {
        const b = tensors[i]!.bytes();
        if (b.byteLength !== sizes[i]) throw new RangeError(`${tensors[i]!.name}: ${b.byteLength} bytes, its shape needs ${sizes[i]}`);
        yield b;
      }
    },
  };
}
