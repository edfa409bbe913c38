/**
 * The runs of `npm run bench`: each method at its standard settings, one row each, on the two
 * benchmark models. stories260K is the quality benchmark (quantization hurts it like a large
 * LLM); bench-llama has LLM-like widths (group 128, codebooks, speed, memory, quantize time)
 * but its quality barely moves (its README); it is scored on heldout.txt (205 windows), not on
 * WikiText-2's 1,333.
 * `--quick` (the CI smoke test): stories260K only, 8 calibration windows of 128 tokens, three
 * cheap methods (slim for a mixed-precision bit map), evaluation on the first 16 windows.
 */
import { fileURLToPath } from 'node:url';

export const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));

export interface RunSpec {
  method: string;
  /** Short label of the setting; `<model>/<label>` is the record id. */
  label: string;
  /** Method flags passed to `bitcrush quantize`. */
  flags: string[];
}

export interface EvalSpec {
  /** Path of the text. */
  path: string;
  seqlen: number;
  /** Score only the first windows (null: all). */
  maxWindows: number | null;
}

export interface ModelSpec {
  name: string;
  path: string;
  role: string;
  calib: string;
  nsamples: number;
  seqlen: number;
  groupSize: number;
  eval: EvalSpec[];
  runs: RunSpec[];
  /** Deviations from the model's standard protocol, printed under the settings table. */
  notes?: string[];
  /** Child processes sharing this model's runs in a full bench (default 1). */
  shards?: number;
}

const uniform = (method: 'rtn' | 'gptq', bits: number, g: number): RunSpec => ({
  method,
  label: `${method} ${bits}-bit g${g}`,
  flags: ['--bits', String(bits), '--group-size', String(g)],
});
const slim = (bits: number, g: number): RunSpec => ({ method: 'slim', label: `slim ${bits}-bit g${g}`, flags: ['--bits', String(bits), '--group-size', String(g)] });
/**
 * SliM-LLM+ trains every block's clipping for `epochs` passes over the calibration windows; the
 * default 50 would take over an hour per stories260K run even on the backend's matmuls, so the
 * bench runs fewer (in the label, so the row says so).
 */
const slimPlus = (bits: number, g: number, epochs: number): RunSpec => ({
  method: 'slim+',
  label: `slim+ ${bits}-bit g${g} ${epochs} epochs`,
  flags: ['--bits', String(bits), '--group-size', String(g), '--epochs', String(epochs)],
});
const aqlm = (scheme: string, g: number): RunSpec => ({
  method: 'aqlm',
  label: `aqlm ${scheme} g${g}`,
  flags: ['--scheme', scheme, '--group-size', String(g)],
});
const billm: RunSpec = { method: 'billm', label: 'billm W1A16', flags: [] };
const dbell = (actBits: number): RunSpec => ({
  method: 'dbell',
  label: `dbell W1A${actBits}`,
  flags: actBits < 16 ? ['--act-bits', String(actBits)] : [],
});

/**
 * The same run with the embedding and head kept float32 (the layout before issue 13), so the
 * tables show what the default low-bit embedding/head costs in perplexity and saves in size.
 */
const floatEnds = (r: RunSpec): RunSpec => ({ ...r, label: `${r.label} float emb+head`, flags: [...r.flags, '--head-bits', '32', '--embed-bits', '32'] });

const tinyHeldout = shared('data/tinystories/heldout.txt');

export function fullSuite(): ModelSpec[] {
  return [
    {
      name: 'stories260K',
      path: shared('models/stories260K/stories260K.bin'),
      role: 'quality',
      calib: shared('data/tinystories/calib.txt'),
      nsamples: 128,
      seqlen: 256,
      groupSize: 32,
      eval: [{ path: tinyHeldout, seqlen: 256, maxWindows: null }],
      runs: [
        uniform('rtn', 4, 32), uniform('rtn', 3, 32), uniform('rtn', 2, 32),
        uniform('gptq', 4, 32), uniform('gptq', 3, 32), uniform('gptq', 2, 32),
        slim(3, 32), slim(2, 32), slimPlus(3, 32, 5), slimPlus(2, 32, 5),
        // 64- and 172-wide layers: 2^8-entry codebooks would cost more than the codes (bench:aqlm)
        aqlm('2x4', 4), aqlm('1x4', 4),
        billm, dbell(16), dbell(6),
        ...[uniform('rtn', 2, 32), uniform('gptq', 2, 32), slim(2, 32), aqlm('2x4', 4)].map(floatEnds),
      ],
      shards: 2,
      notes: [
        'SliM-LLM+ runs 5 training epochs per block instead of its default 50 (~0.15 s per block step here: 50 epochs of 128 windows over 5 blocks would take ~80 minutes per run); docs/slim.md has 20-epoch results.',
      ],
    },
    {
      name: 'bench-llama',
      path: shared('models/bench-llama'),
      role: 'scale, speed, codebooks',
      // the README's protocol: 128 windows of 256 tokens of emma.txt
      calib: shared('data/austen/emma.txt'),
      nsamples: 128,
      seqlen: 256,
      groupSize: 128,
      // all 205 windows of heldout.txt (~65 s per run on a quiet machine); WikiText-2's 1,333
      // windows would take ~7 minutes per run
      eval: [{ path: tinyHeldout, seqlen: 256, maxWindows: null }],
      runs: [
        uniform('rtn', 3, 128), uniform('rtn', 2, 128),
        uniform('gptq', 3, 128), uniform('gptq', 2, 128),
        slim(3, 128), slim(2, 128),
        // default options (beam 8, ≤ 20 epochs of 100 Adam steps): ~6 CPU minutes for 2x8 (docs/aqlm.md)
        aqlm('2x8', 8), aqlm('1x8', 8),
        billm, dbell(16), dbell(6),
        ...[uniform('rtn', 2, 128), uniform('gptq', 2, 128), slim(2, 128), aqlm('2x8', 8)].map(floatEnds),
      ],
      shards: 2,
      notes: [
        'Perplexity on all 205 windows of tinystories/heldout.txt, not WikiText-2 (1,333 windows, ~7 minutes per run here). Its fp32 references (the model README): heldout 149.8140, WikiText-2 547.5866.',
        'Not run here: SliM-LLM+ (2 epochs at these widths took 48 minutes on the loaded cores; docs/slim.md) and AQLM block fine-tuning (docs/aqlm.md has 1x8 with it).',
      ],
    },
  ];
}

export function quickSuite(): ModelSpec[] {
  return [
    {
      name: 'stories260K',
      path: shared('models/stories260K/stories260K.bin'),
      role: 'quality (quick smoke run)',
      calib: shared('data/tinystories/calib.txt'),
      nsamples: 8,
      seqlen: 128,
      groupSize: 32,
      eval: [{ path: tinyHeldout, seqlen: 256, maxWindows: 16 }],
      runs: [uniform('rtn', 2, 32), uniform('gptq', 2, 32), slim(2, 32)],
    },
  ];
}
