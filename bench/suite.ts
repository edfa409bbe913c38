/**
 * The runs of `npm run bench`: each method at its standard settings, one row each, on the two
 * benchmark models. stories260K is the quality benchmark (quantization hurts it like a large
 * LLM); bench-llama has LLM-like widths (group 128, codebooks, speed, memory, quantize time)
 * but its quality barely moves (its README), and its 32,000-token vocabulary makes evaluation
 * slow, so it is scored on a prefix of the texts (windows recorded per record).
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
  /** Texts evaluated only on these methods (fp32 included by naming it), e.g. WikiText-2. */
  extraEval?: { spec: EvalSpec; methods: string[] };
  runs: RunSpec[];
}

const uniform = (method: 'rtn' | 'gptq', bits: number, g: number): RunSpec => ({
  method,
  label: `${method} ${bits}-bit g${g}`,
  flags: ['--bits', String(bits), '--group-size', String(g)],
});
const slim = (method: 'slim' | 'slim+', bits: number, g: number): RunSpec => ({
  method,
  label: `${method} ${bits}-bit g${g}`,
  flags: ['--bits', String(bits), '--group-size', String(g)],
});
const aqlm = (scheme: string, g: number): RunSpec => ({ method: 'aqlm', label: `aqlm ${scheme} g${g}`, flags: ['--scheme', scheme, '--group-size', String(g)] });
const billm: RunSpec = { method: 'billm', label: 'billm W1A16', flags: [] };
const dbell = (actBits: number): RunSpec => ({
  method: 'dbell',
  label: `dbell W1A${actBits}`,
  flags: actBits < 16 ? ['--act-bits', String(actBits)] : [],
});

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
        slim('slim', 3, 32), slim('slim', 2, 32), slim('slim+', 2, 32),
        // 64- and 172-wide layers: 2^8-entry codebooks would cost more than the codes (bench:aqlm)
        aqlm('2x4', 4), aqlm('1x4', 4),
        billm, dbell(16), dbell(6),
      ],
    },
    {
      name: 'bench-llama',
      path: shared('models/bench-llama'),
      role: 'scale, speed, codebooks',
      calib: shared('data/austen/emma.txt'),
      nsamples: 128,
      seqlen: 256,
      groupSize: 128,
      // 205 windows of 256 with a 32,000-entry classifier per token: the first 64 windows
      eval: [{ path: tinyHeldout, seqlen: 256, maxWindows: 64 }],
      runs: [
        uniform('rtn', 3, 128), uniform('rtn', 2, 128),
        uniform('gptq', 3, 128), uniform('gptq', 2, 128),
        slim('slim', 2, 128), slim('slim+', 2, 128),
        aqlm('2x8', 8),
        billm, dbell(16),
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
      runs: [uniform('rtn', 2, 32), uniform('gptq', 2, 32), slim('slim', 2, 32)],
    },
  ];
}
