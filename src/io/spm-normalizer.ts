/**
 * The text normalization a SentencePiece `.model` asks for, which llama2.c's `tokenizer.bin`
 * export drops. It matters: stories260K's tok512.model keeps SentencePiece's default
 * remove_extra_whitespaces = true, so its reference token counts (and perplexities) come from
 * text with runs of spaces collapsed and leading/trailing spaces removed, while run.c's
 * `encode` keeps every space. The Llama-2 tokenizer.model sets it to false.
 *
 * Only the two flags are read, with a minimal bounds-checked protobuf walk:
 * ModelProto field 3 = NormalizerSpec { 3: add_dummy_prefix, 4: remove_extra_whitespaces }.
 */
import type { ByteSource } from './bytes.js';
import { check, InputError } from './errors.js';

export interface SpmNormalizer {
  /** Prepend one space to non-empty text (SentencePiece's dummy prefix; run.c always does). */
  addDummyPrefix: boolean;
  /** Drop leading and trailing spaces and collapse runs of spaces into one. */
  removeExtraWhitespaces: boolean;
}

/** What llama2.c's run.c does: dummy prefix, every space kept. */
export const RUN_C_NORMALIZER: SpmNormalizer = { addDummyPrefix: true, removeExtraWhitespaces: false };

const MODEL_NORMALIZER_SPEC = 3;
const SPEC_ADD_DUMMY_PREFIX = 3;
const SPEC_REMOVE_EXTRA_WHITESPACES = 4;

/** The normalizer flags of a SentencePiece model file (proto2 defaults: both true). */
export function readSpmNormalizer(src: ByteSource): SpmNormalizer {
  const out: SpmNormalizer = { addDummyPrefix: true, removeExtraWhitespaces: true };
  const bytes = src.read(0, src.size);
  for (const f of protoFields(src.name, bytes)) {
    if (f.field !== MODEL_NORMALIZER_SPEC || f.bytes === undefined) continue;
    for (const g of protoFields(src.name, f.bytes)) {
      if (g.field === SPEC_ADD_DUMMY_PREFIX && g.varint !== undefined) out.addDummyPrefix = g.varint !== 0n;
      if (g.field === SPEC_REMOVE_EXTRA_WHITESPACES && g.varint !== undefined) out.removeExtraWhitespaces = g.varint !== 0n;
    }
  }
  return out;
}

/** SentencePiece's whitespace rule (only U+0020 counts as whitespace there). */
export function removeExtraWhitespaces(text: string): string {
  return text.replace(/ {2,}/g, ' ').replace(/^ /, '').replace(/ $/, '');
}

interface ProtoField {
  field: number;
  varint?: bigint;
  bytes?: Uint8Array;
}

function protoFields(file: string, b: Uint8Array): ProtoField[] {
  const out: ProtoField[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      check(i < b.length, file, 'truncated SentencePiece model (varint)');
      const x = b[i++]!;
      v |= BigInt(x & 0x7f) << shift;
      if (x < 0x80) return v;
    }
    throw new InputError(file, 'bad SentencePiece model: varint too long');
  };
  while (i < b.length) {
    const key = varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) out.push({ field, varint: varint() });
    else if (wire === 1 || wire === 5) i += wire === 1 ? 8 : 4;
    else if (wire === 2) {
      const n = varint();
      check(n <= BigInt(b.length - i), file, 'truncated SentencePiece model (length-delimited field)');
      out.push({ field, bytes: b.subarray(i, i + Number(n)) });
      i += Number(n);
    } else throw new InputError(file, `bad SentencePiece model: wire type ${wire}`);
    check(i <= b.length, file, 'truncated SentencePiece model');
  }
  return out;
}
