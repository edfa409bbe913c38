/**
 * What the fuzz suite mutates and runs: every input file type bitcrush reads, each with the
 * CLI commands that read it. `buildCorpus` writes the unmutated files once (stories260K as
 * llama2.c and as a Hugging Face directory with a 512-token tokenizer.json, and packed files
 * of three format families quantized from it, the RTN one also exported as GGUF, and small
 * random GPTQ (4-bit act-order v1) and AQLM (2x8) Hugging Face directories with the 512-token
 * tokenizer); `caseFiles` lays out one case's directory:
 * the mutated file written, every other file a symlink to the corpus.
 */
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { smallTokenizerJson, writeHfStories, STORIES_BIN } from '../hf-fixture.js';
import { ARCH_CASES } from '../hf-dirs.js';
import { writeAqlmDirs, writeGptqDirs } from '../gptq-dirs.js';
import type { FileKind } from './mutate.js';

const SHARED = process.env['BITCRUSH_SHARED'] ?? fileURLToPath(new URL('../../../../shared/', import.meta.url));
const TOK512 = join(SHARED, 'models/stories260K/tok512.bin');
const HELDOUT = join(SHARED, 'data/tinystories/heldout.txt');

export interface Target {
  id: string;
  kind: FileKind;
  /** Files of a case directory: path inside it → corpus file (the first is the one mutated). */
  files: Array<[string, string]>;
  /** The commands that read the mutated file, argv after `bitcrush`, in a case directory `d`. */
  commands: Array<(d: string) => string[]>;
  /** A successful run removes the file by design (a resumed work directory): not a modified input. */
  consumed?: boolean;
}

export interface Corpus {
  dir: string;
  targets: Target[];
  /** Every corpus file, to check afterwards that no case modified one through its symlink. */
  files: string[];
}

/** Packed files of three format families: uniform grid (RTN), mixed-precision grid (SliM-LLM), binary (BiLLM). */
export const PACKED_METHODS: Array<{ name: string; args: string[] }> = [
  { name: 'rtn', args: ['--method', 'rtn', '--bits', '2', '--group-size', '32'] },
  { name: 'slim', args: ['--method', 'slim', '--bits', '2', '--group-size', '32'] },
  { name: 'billm', args: ['--method', 'billm'] },
];

/**
 * Writes the corpus into `dir`. `quantize(argv)` runs the CLI (in process or spawned) and
 * resolves to its exit code: the packed files are made by bitcrush itself.
 */
export async function buildCorpus(dir: string, quantize: (argv: string[]) => Promise<number>): Promise<Corpus> {
  const f = (p: string) => join(dir, p);
  mkdirSync(f('llama2c'), { recursive: true });
  copyFileSync(STORIES_BIN, f('llama2c/stories260K.bin'));
  copyFileSync(TOK512, f('llama2c/tok512.bin'));
  mkdirSync(f('hf'));
  writeHfStories(f('hf'));
  writeFileSync(f('hf/tokenizer.json'), smallTokenizerJson());
  // the special tokens and a chat template (zephyr-style), as chat models ship them
  const template = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";
  writeFileSync(f('hf/tokenizer_config.json'), JSON.stringify({ add_bos_token: true, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: null, chat_template: template }));
  // a few windows' worth: eval and calibration stay fast
  writeFileSync(f('text.txt'), readFileSync(HELDOUT, 'utf8').slice(0, 4000));
  const calib = ['--calib', f('text.txt'), '--nsamples', '4', '--seqlen', '32'];
  for (const m of PACKED_METHODS) {
    const code = await quantize(['quantize', f('llama2c/stories260K.bin'), ...m.args, ...(m.name === 'rtn' ? [] : calib), '--out', f(`${m.name}.bcq`), '--json']);
    if (code !== 0) throw new Error(`fuzz corpus: quantize ${m.name} failed with exit code ${code}`);
  }

  if ((await quantize(['export', f('rtn.bcq'), '--to', 'gguf', '--out', f('rtn.gguf'), '--tokenizer', f('llama2c/tok512.bin'), '--float-fallback'])) !== 0) throw new Error('fuzz corpus: export --to gguf failed');
  // quantized HF checkpoints of a tiny Llama 3.2 shaped model, vocabulary widened to the tokenizer's 512
  const l3 = ARCH_CASES.find((c) => c.name === 'llama32-rope-llama3')!;
  const arch = { ...l3, config: { ...l3.config, vocab_size: 512 } };
  const gptqDir = writeGptqDirs(f('gptq-src'), { arch, bits: 4, groupSize: 32, descAct: true, sym: false, checkpointFormat: 'gptq' }).gptq;
  const aqlmDir = writeAqlmDirs(f('aqlm-src'), { arch, numCodebooks: 2, nbits: 8, inGroupSize: 8 }).aqlm;
  for (const dir of [gptqDir, aqlmDir]) for (const name of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(f(`hf/${name}`), join(dir, name));

  // a resume work directory: a GPTQ run stopped after 2 of 5 blocks. Its options hash records the
  // model's path relative to the output's directory, which is the same from every case directory
  // (siblings of this one), so each case's --resume continues it
  const resumeArgs = ['quantize', f('llama2c/stories260K.bin'), '--method', 'gptq', '--bits', '2', '--group-size', '32', ...calib];
  mkdirSync(f('../resume'));
  if ((await quantize([...resumeArgs, '--out', f('../resume/q.bcq'), '--stop-after-block', '1'])) !== 0) throw new Error('fuzz corpus: the stopped quantize run failed');
  mkdirSync(f('resume'));
  for (const name of ['manifest.json', 'block-0.bin', 'block-1.bin', 'inputs-2.f32']) copyFileSync(f(`../resume/q.bcq.partial/${name}`), f(`resume/${name}`));
  const resumeFiles = ['manifest.json', 'block-0.bin', 'block-1.bin', 'inputs-2.f32'];
  const resumeTarget = (name: string, kind: FileKind): Target => ({
    id: `resume-${name}`,
    kind,
    files: [name, ...resumeFiles.filter((n) => n !== name)].map((n): [string, string] => [`q.bcq.partial/${n}`, f(`resume/${n}`)]),
    commands: [(d) => [...resumeArgs, '--out', join(d, 'q.bcq'), '--resume', '--json']],
    consumed: true,
  });

  const text = f('text.txt');
  /** The commands that run a model `m` of case directory `d`. */
  const run = (m: string, d: string): string[][] => [
    ['info', m, '--json'],
    ['generate', m, '-n', '8', '-t', '0', '--json'],
    ['generate', m, '-n', '6', '-t', '0.8', '-s', '7', '-p', 'Once upon a time', '--backend', 'reference'],
    ['eval', m, '--text', text, '--seqlen', '32', '--max-windows', '2', '--json'],
    ['quantize', m, '--method', 'rtn', '--bits', '2', '--group-size', '32', '--out', join(d, 'out.bcq'), '--json'],
    ['quantize', m, '--method', 'gptq', '--bits', '2', '--group-size', '32', '--calib', text, '--nsamples', '2', '--seqlen', '32', '--out', join(d, 'out.bcq'), '--json'],
  ];
  const llama2c = (d: string) => join(d, 'stories260K.bin');
  const hf = (d: string) => join(d, 'hf');
  const hfFiles: Array<[string, string]> = [
    ['hf/config.json', f('hf/config.json')],
    ['hf/model.safetensors', f('hf/model.safetensors')],
    ['hf/tokenizer.json', f('hf/tokenizer.json')],
    ['hf/tokenizer_config.json', f('hf/tokenizer_config.json')],
  ];
  const first = (name: string): Array<[string, string]> => [hfFiles.find(([p]) => p === name)!, ...hfFiles.filter(([p]) => p !== name)];
  const forAll = (model: (d: string) => string): Array<(d: string) => string[]> =>
    Array.from({ length: 6 }, (_, i) => (d: string) => run(model(d), d)[i]!);

  /** A quantized HF directory's files under `name/`, `first` the one mutated; its commands. */
  const quantDir = (name: string, src: string, first: string): Pick<Target, 'files' | 'commands'> => {
    const names = [first, ...['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].filter((n) => n !== first)];
    const m = (d: string) => join(d, name);
    return {
      files: names.map((n): [string, string] => [`${name}/${n}`, join(src, n)]),
      commands: [...forAll(m).slice(0, 4), (d) => ['inspect', m(d), '--json'], (d) => ['convert', m(d), '--out', join(d, 'c.bcq'), '--json']],
    };
  };
  const gguf = (d: string) => join(d, 'rtn.gguf');

  const targets: Target[] = [
    {
      id: 'llama2c-model',
      kind: 'llama2c-model',
      files: [['stories260K.bin', f('llama2c/stories260K.bin')], ['tok512.bin', f('llama2c/tok512.bin')]],
      commands: forAll(llama2c),
    },
    {
      id: 'llama2c-tokenizer',
      kind: 'llama2c-tokenizer',
      files: [['tok512.bin', f('llama2c/tok512.bin')], ['stories260K.bin', f('llama2c/stories260K.bin')]],
      commands: [...forAll(llama2c), (d) => ['info', llama2c(d), '--tokenizer', join(d, 'tok512.bin')]],
    },
    { id: 'config.json', kind: 'json', files: first('hf/config.json'), commands: forAll(hf).slice(0, 5) },
    { id: 'model.safetensors', kind: 'safetensors', files: first('hf/model.safetensors'), commands: forAll(hf).slice(0, 5) },
    { id: 'tokenizer.json', kind: 'json', files: first('hf/tokenizer.json'), commands: forAll(hf) },
    {
      id: 'tokenizer_config.json',
      kind: 'json',
      files: first('hf/tokenizer_config.json'),
      commands: [...forAll(hf).slice(0, 4), (d) => ['generate', hf(d), '--chat', '-p', 'Tell me a story.', '--system', 'Be brief.', '-n', '8', '-t', '0', '--json']],
    },
    { id: 'gguf', kind: 'gguf', files: [['rtn.gguf', f('rtn.gguf')]], commands: [...forAll(gguf).slice(0, 5), (d) => ['export', gguf(d), '--to', 'gguf', '--out', join(d, 'again.gguf'), '--float-fallback']] },
    { id: 'gptq-safetensors', kind: 'safetensors', ...quantDir('gptq', gptqDir, 'model.safetensors') },
    { id: 'gptq-config.json', kind: 'json', ...quantDir('gptq', gptqDir, 'config.json') },
    { id: 'aqlm-safetensors', kind: 'safetensors', ...quantDir('aqlm', aqlmDir, 'model.safetensors') },
    resumeTarget('manifest.json', 'json'),
    resumeTarget('inputs-2.f32', 'raw'),
    resumeTarget('block-1.bin', 'raw'),
    ...PACKED_METHODS.map((m): Target => {
      const p = (d: string) => join(d, `${m.name}.bcq`);
      return {
        id: `packed-${m.name}`,
        kind: 'safetensors',
        files: [[`${m.name}.bcq`, f(`${m.name}.bcq`)], ['tok512.bin', f('llama2c/tok512.bin')]],
        commands: [
          (d) => ['info', p(d), '--json'],
          (d) => ['inspect', p(d), '--json'],
          (d) => ['inspect', p(d), '--plot', join(d, 'map.svg')],
          (d) => ['generate', p(d), '-n', '8', '-t', '0', '--json'],
          (d) => ['generate', p(d), '-n', '6', '-t', '0', '--backend', 'reference'],
          (d) => ['eval', p(d), '--text', text, '--seqlen', '32', '--max-windows', '2', '--json'],
        ],
      };
    }),
  ];
  const files = [...new Set(targets.flatMap((t) => t.files.map(([, src]) => src))), text];
  return { dir, targets, files };
}

/** Lays out case directory `d`: the mutated bytes at the target's first path, symlinks for the rest. */
export function caseFiles(d: string, t: Target, mutated: Uint8Array): string {
  mkdirSync(d, { recursive: true });
  let mutatedPath = '';
  t.files.forEach(([rel, src], i) => {
    const p = join(d, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    if (i === 0) {
      writeFileSync(p, mutated);
      mutatedPath = p;
    } else symlinkSync(src, p);
  });
  return mutatedPath;
}
