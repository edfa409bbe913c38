/**
 * Little-endian bitstreams of small unsigned integers, the storage of every sub-byte array:
 * value i occupies bits [i·b, i·b + b) where bit k is bit (k mod 8) of byte floor(k / 8).
 * So 4-bit pairs are (lo nibble, hi nibble), 2-bit values fill a byte from its low end, and
 * 3-bit values are dense: 8 of them in 3 bytes.
 */
import { copyToArrayBuffer } from '../io/bytes.js';
import { f16BitsToNumber, f16ToF32, numberToF16Bits } from '../io/safetensors.js';

export function bitstreamBytes(count: number, bits: number): number {
  return Math.ceil((count * bits) / 8);
}

/** Writes values[0..n) (each < 2^bits) as a bitstream at dst[offset..]. The bytes must be zero. */
export function packBits(dst: Uint8Array, offset: number, values: ArrayLike<number>, n: number, bits: number): void {
  let acc = 0; // pending bits, fewer than 8 + bits ≤ 16 of them
  let have = 0;
  let o = offset;
  for (let i = 0; i < n; i++) {
    acc |= values[i]! << have;
    have += bits;
    while (have >= 8) {
      dst[o++] = acc & 0xff;
      acc >>>= 8;
      have -= 8;
    }
  }
  if (have > 0) dst[o] = acc & 0xff;
}

/**
 * Reads n values of `bits` bits from the bitstream at src[offset..] into out[0..n).
 * The hot loop of decode: specialised for the byte-friendly widths, generic otherwise.
 */
export function unpackBits(src: Uint8Array, offset: number, out: Uint8Array, n: number, bits: number): void {
  let i = 0;
  let o = offset;
  switch (bits) {
    case 8:
      out.set(src.subarray(offset, offset + n));
      return;
    case 4:
      for (; i + 2 <= n; i += 2) {
        const b = src[o++]!;
        out[i] = b & 15;
        out[i + 1] = b >>> 4;
      }
      break;
    case 2:
      for (; i + 4 <= n; i += 4) {
        const b = src[o++]!;
        out[i] = b & 3;
        out[i + 1] = (b >>> 2) & 3;
        out[i + 2] = (b >>> 4) & 3;
        out[i + 3] = b >>> 6;
      }
      break;
    case 3:
      for (; i + 8 <= n; i += 8) {
        const v = src[o]! | (src[o + 1]! << 8) | (src[o + 2]! << 16);
        o += 3;
        out[i] = v & 7;
        out[i + 1] = (v >>> 3) & 7;
        out[i + 2] = (v >>> 6) & 7;
        out[i + 3] = (v >>> 9) & 7;
        out[i + 4] = (v >>> 12) & 7;
        out[i + 5] = (v >>> 15) & 7;
        out[i + 6] = (v >>> 18) & 7;
        out[i + 7] = v >>> 21;
      }
      break;
  }
  if (i < n) unpackBitsGeneric(src, offset, out, i, n, bits);
}

/** Values start..n-1 of the stream at src[offset..], any width 1..8. */
function unpackBitsGeneric(src: Uint8Array, offset: number, out: Uint8Array, start: number, n: number, bits: number): void {
  const mask = (1 << bits) - 1;
  for (let i = start; i < n; i++) {
    const bit = i * bits;
    const byte = offset + (bit >>> 3);
    const shift = bit & 7;
    // a value spans at most two bytes (bits ≤ 8); the second may lie past a row's end
    const two = src[byte]! | (shift + bits > 8 ? src[byte + 1]! << 8 : 0);
    out[i] = (two >>> shift) & mask;
  }
}

/** float values (each exactly a float16) → little-endian F16 bytes; RangeError when one is not. */
export function encodeF16(values: ArrayLike<number>, what: string): Uint8Array {
  const bits = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const h = numberToF16Bits(values[i]!);
    if (f16BitsToNumber(h) !== values[i] && !Number.isNaN(values[i])) {
      throw new RangeError(`${what}[${i}] = ${values[i]} is not a float16 value (round it with roundToF16)`);
    }
    bits[i] = h;
  }
  return littleEndianBytes(bits);
}

export function decodeF16(bytes: Uint8Array): Float32Array {
  return f16ToF32(new Uint16Array(copyToArrayBuffer(bytes)));
}

/** The bytes of a typed array, little-endian (every platform bitcrush targets is little-endian). */
export function littleEndianBytes(a: Uint16Array | Int16Array | Int32Array | Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** An aligned Int32 copy of an I16 or I32 blob. */
export function decodeInts(bytes: Uint8Array, dtype: 'I16' | 'I32'): Int32Array {
  const copy = copyToArrayBuffer(bytes);
  return dtype === 'I16' ? Int32Array.from(new Int16Array(copy)) : new Int32Array(copy);
}
