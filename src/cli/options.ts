/** Parsers for numeric flags: commander reports their errors as usage errors (exit code 2). */
import { InvalidArgumentError } from 'commander';
import { BACKEND_KINDS, type BackendKind } from '../node/backend.js';

/** An integer flag in [min, max]. */
export function intArg(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = /^[+-]?\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `expected an integer ≥ ${min}` : `expected an integer in ${min}..${max}`);
    }
    return n;
  };
}

/** A finite number flag in [min, max], or (min, max] when `minExclusive`. */
export function floatArg(min: number, max: number, minExclusive = false): (value: string) => number {
  return (value) => {
    const n = value.trim() === '' ? NaN : Number(value);
    if (!Number.isFinite(n) || n < min || (minExclusive && n === min) || n > max) {
      throw new InvalidArgumentError(`expected a number in ${minExclusive ? '(' : '['}${min}, ${max}]`);
    }
    return n;
  };
}

/** A positive 64-bit integer (run.c's seed is an unsigned long long). */
export function seedArg(value: string): bigint {
  const v = /^\d+$/.test(value.trim()) ? BigInt(value.trim()) : 0n;
  if (v < 1n || v >= 1n << 64n) throw new InvalidArgumentError('expected an integer in 1..2^64-1');
  return v;
}

export function backendArg(value: string): BackendKind {
  if (!(BACKEND_KINDS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${BACKEND_KINDS.join(', ')}`);
  return value as BackendKind;
}

/** Options every command that runs a model takes. */
export interface RunOptions {
  tokenizer?: string;
  backend: BackendKind;
  threads?: number;
  /** --float-activations: packed layers on float32 activations (no int8 rounding). */
  floatActivations?: boolean;
}

/** Help of --float-activations (eval, generate, quantize). */
export const FLOAT_ACTIVATIONS_HELP =
  'packed layers multiply float32 activations (exact W·x, as the reference kernels; slower) instead of int8-quantized ones';
