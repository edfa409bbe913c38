/**
 * What `bitcrush export --to gptq|aqlm` writes, dequantized by an independent numpy reader of
 * the published layouts (scripts/hf-dequant.py), equals bitcrush's own dequantized weights:
 * RTN files quantized here at 2, 3, 4 and 8 bits (sym and asym, v1 and v2), a GPTQ act-order
 * checkpoint converted and exported again, AQLM 2x8, 1x16 and out_group_size 2 / 4 checkpoints, and a
 * file quantized here with --method aqlm --out-group-size 2. The HF row order
 * of q/k (rotate-half) is mapped back to bitcrush's interleaved one with the float loader's
 * canonicalRows. Skipped where /usr/bin/python3 with numpy is not installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { canonicalRows } from '../src/io/hf.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { FileSource } from '../src/node/fs.js';
import { PackedModel } from '../src/packed/reader.js';
import { ARCH_CASES, writeArchDir, writeChatTokenizer } from './hf-dirs.js';
import { writeAqlmDirs, writeGptqDirs } from './gptq-dirs.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const SCRIPT = fileURLToPath(new URL('../../scripts/hf-dequant.py', import.meta.url));
const PYTHON = '/usr/bin/python3';
const hasNumpy = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-interop-py-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
const arch = (name: string) => ARCH_CASES.find((k) => k.name === name)!;

/** Exports `bcq` to `to`, dequantizes the export with the Python script, compares every linear with the packed file's weights. */
function checkExport(bcq: string, to: 'gptq' | 'aqlm', flags: string[] = []): number {
  const out = join(tmp, `${bcq.split('/').pop()}-${to}${flags.join('')}`);
  const e = run('export', bcq, '--to', to, '--out', out, ...flags);
  assert.equal(e.status, 0, e.stderr);
  const deq = join(tmp, `${out.split('/').pop()}-deq.safetensors`);
  const py = spawnSync(PYTHON, [SCRIPT, out, deq], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const packed = new PackedModel(new FileSource(bcq));
  const theirs = new SafetensorsFile(new FileSource(deq));
  let n = 0;
  for (const { name } of packed.tensors()) {
    if (!packed.isPacked(name) || !/layers/.test(name)) continue;
    const w = canonicalRows(packed.config, name, new Float32Array(theirs.raw(name).slice().buffer));
    assert.deepEqual(w, packed.load(name), `${bcq} → ${to}: ${name}`);
    n++;
  }
  assert.ok(n > 0);
  return n;
}

describe('GPTQ / AQLM exports read by an independent numpy dequantizer', { skip: hasNumpy ? false : `${PYTHON} with numpy not found` }, () => {
  test('RTN files at 2, 3, 4, 8 bits (sym / asym, v1 / v2) → GPTQ → numpy: the packed file\'s weights', () => {
    const k = { ...arch('llama-attention-bias'), config: { ...arch('llama-attention-bias').config, vocab_size: 260 } };
    const src = join(tmp, 'src');
    writeArchDir(src, k);
    writeChatTokenizer(src, { special: ['<s>', '</s>'], config: { bos_token: '<s>', eos_token: '</s>' } });
    const runs: Array<[string, string[], string]> = [
      ['b2', ['--bits', '2', '--group-size', '32'], 'gptq_v2'],
      ['b3s', ['--bits', '3', '--group-size', '32', '--sym'], 'gptq'],
      ['b4', ['--bits', '4', '--group-size', '64'], 'gptq_v2'],
      ['b8s', ['--bits', '8', '--group-size', '-1', '--sym'], 'gptq'],
    ];
    for (const [name, q, format] of runs) {
      const bcq = join(tmp, `${name}.bcq`);
      const r = run('quantize', src, '--method', 'rtn', ...q, '--out', bcq);
      assert.equal(r.status, 0, r.stderr);
      checkExport(bcq, 'gptq', ['--checkpoint-format', format]);
    }
  });

  test('GPTQ 4-bit act-order checkpoint → convert → export → numpy', () => {
    const dirs = writeGptqDirs(join(tmp, 'ao'), { arch: arch('llama32-rope-llama3'), bits: 4, groupSize: 32, descAct: true, sym: false, checkpointFormat: 'gptq' }, 5);
    const bcq = join(tmp, 'ao.bcq');
    assert.equal(run('convert', dirs.gptq, '--out', bcq).status, 0);
    checkExport(bcq, 'gptq');
  });

  test('AQLM quantized here with --out-group-size 2 → export → numpy', () => {
    const k = { ...arch('llama32-rope-llama3'), config: { ...arch('llama32-rope-llama3').config, vocab_size: 260 } };
    const src = join(tmp, 'aq-src');
    writeArchDir(src, k);
    writeChatTokenizer(src, { special: ['<s>', '</s>'], config: { bos_token: '<s>', eos_token: '</s>' } });
    const calib = join(tmp, 'aq-calib.txt');
    writeFileSync(calib, 'once upon a time there was a little fox who liked to run in the woods with her friends every day. '.repeat(4));
    const bcq = join(tmp, 'aq-og2.bcq');
    const r = run('quantize', src, '--method', 'aqlm', '--scheme', '2x5', '--group-size', '4', '--out-group-size', '2', '--max-epochs', '1', '--steps-per-epoch', '2',
      '--kmeans-iters', '2', '--beam-size', '1', '--calib', calib, '--nsamples', '2', '--seqlen', '16', '--out', bcq);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(checkExport(bcq, 'aqlm'), 14);
  });

  for (const [M, B, g, og] of [[2, 8, 8, 1], [1, 16, 8, 1], [2, 8, 4, 4], [1, 12, 8, 2]] as const) {
    test(`AQLM ${M}x${B} g${g} out_group ${og} checkpoint → convert → export → numpy`, () => {
      const dirs = writeAqlmDirs(join(tmp, `aq${M}x${B}o${og}`), { arch: arch('llama32-rope-llama3'), numCodebooks: M, nbits: B, inGroupSize: g, outGroupSize: og }, 3);
      const bcq = join(tmp, `aq${M}x${B}o${og}.bcq`);
      const c = run('convert', dirs.aqlm, '--out', bcq);
      assert.equal(c.status, 0, c.stderr);
      checkExport(bcq, 'aqlm');
    });
  }
});
