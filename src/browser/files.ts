/**
 * Files in the browser: bytes the user picked, dropped or the page fetched, held in memory and
 * exposed to the core through FileSystemLike, so tokenizer loading is the same code as in Node
 * (a `.json` is a Hugging Face tokenizer with an optional tokenizer_config.json beside it; a
 * llama2.c `tok*.bin` may have its SentencePiece `.model` beside it).
 */
import { BufferSource, type ByteSource, type FileSystemLike } from '../io/bytes.js';
import { InputError } from '../io/errors.js';
import { looksLikeSafetensors, openTokenizer } from '../io/load.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { isPackedModel, PackedModel } from '../packed/reader.js';
import { baseName, type NamedBytes } from './fetch.js';

export type { NamedBytes };

/** A flat in-memory directory: paths are base names, `dirname` is always ''. */
export class MemoryFs implements FileSystemLike {
  private readonly files = new Map<string, Uint8Array>();

  constructor(files: Iterable<NamedBytes> = []) {
    for (const f of files) this.add(f);
  }

  add(f: NamedBytes): void {
    this.files.set(baseName(f.name), f.bytes);
  }

  open(path: string): ByteSource {
    const bytes = this.files.get(baseName(path));
    if (bytes === undefined) throw new InputError(path, 'no such file (was it given to the page?)');
    return new BufferSource(baseName(path), bytes);
  }

  exists(path: string): boolean {
    return this.files.has(baseName(path));
  }

  join(_dir: string, name: string): string {
    return name;
  }

  dirname(_path: string): string {
    return '';
  }

  isDirectory(path: string): boolean {
    return path === '';
  }

  list(): string[] {
    return [...this.files.keys()];
  }
}

/** Files read beside a tokenizer.json: its config, the EOS ids of generation and model configs. */
const COMPANIONS = /^(tokenizer_config|generation_config|config|special_tokens_map)\.json$/i;

/** Which of the given files is the packed model, and which the tokenizer (told apart by content and name). */
export function sortModelFiles(files: NamedBytes[]): { model: NamedBytes; tokenizer: NamedBytes; others: NamedBytes[] } {
  const models = files.filter((f) => isPackedModel(new BufferSource(f.name, f.bytes)));
  if (models.length === 0) {
    // a file that starts like one but does not parse (truncated download): its own error, not "none of these"
    for (const f of files) {
      const src = new BufferSource(f.name, f.bytes);
      if (looksLikeSafetensors(src)) new PackedModel(src);
    }
  }
  if (models.length !== 1) {
    const names = files.map((f) => f.name).join(', ') || 'none';
    throw new InputError(names, models.length === 0 ? 'none of these is a bitcrush packed model' : 'more than one packed model given');
  }
  const model = models[0]!;
  return { model, ...sortTokenizerFiles(model.name, files.filter((f) => f !== model)) };
}

/** Which of a model's companion files is the tokenizer proper (a tokenizer.json or llama2.c tok*.bin), and the rest. */
export function sortTokenizerFiles(modelName: string, rest: NamedBytes[]): { tokenizer: NamedBytes; others: NamedBytes[] } {
  // the tokenizer proper, not its companions (tokenizer_config.json, generation_config.json, chat_template.jinja, tok512.model)
  const tokenizers = rest.filter((f) => /\.bin$/i.test(f.name) || (/\.json$/i.test(f.name) && !COMPANIONS.test(baseName(f.name))));
  if (tokenizers.length !== 1) {
    const why = tokenizers.length === 0 ? 'no tokenizer given (a tokenizer.json or llama2.c tok*.bin)' : `several tokenizers given (${tokenizers.map((f) => f.name).join(', ')})`;
    throw new InputError(modelName, why);
  }
  const tokenizer = tokenizers[0]!;
  return { tokenizer, others: rest.filter((f) => f !== tokenizer) };
}

/** The tokenizer in `main`, reading companions (tokenizer_config.json, the .model) from `others`. */
export function openTokenizerBytes(main: NamedBytes, others: NamedBytes[] = []): Tokenizer {
  const fs = new MemoryFs([...others, main]);
  return openTokenizer(baseName(main.name), fs);
}
