/**
 * Packed files written by an old bitcrush (test/fixtures/packed-compat, made by
 * scripts/make-compat-fixtures.sh at the commit expected.json names): the current reader must load
 * every one, with the format families it was written in, and compute the logits the old code
 * computed on the reference backend; the fast kernels (wasm, native) agree within the int8
 * activation tolerance. A format change that breaks files users already have fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/types.js';
import { createReferenceBackend } from '../src/backend/reference.js';
import { createWasmBackendNode } from '../src/node/backend.js';
import { FileSource } from '../src/node/fs.js';
import { loadNativeBackend } from '../src/node/native.js';
import { PackedModel } from '../src/packed/reader.js';
import { LlamaModel } from '../src/runtime/model.js';

const DIR = fileURLToPath(new URL('../../test/fixtures/packed-compat/', import.meta.url));

interface Expected {
  commit: string;
  prompt: number[];
  files: Record<string, { formats: string[]; lastLogits: number[]; argmax: number[] }>;
}
const expected = JSON.parse(readFileSync(DIR + 'expected.json', 'utf8')) as Expected;

const wasm = createWasmBackendNode(2);
const native = loadNativeBackend(2).backend;
const backends: Array<{ label: string; be: Backend; tol: number }> = [
  // the reference arithmetic is the old code's: only float32 summation order may differ
  { label: 'reference', be: createReferenceBackend(), tol: 2e-6 },
  // int8 activations (uniform, mixed, binary, the 4-bit tied head): measured at most 1.9e-2 of
  // max |logit| on the native kernels, 5e-7 on wasm's float kernels (when these fixtures were made)
  { label: 'wasm', be: wasm, tol: 4e-2 },
  ...(native ? [{ label: 'native', be: native, tol: 4e-2 }] : []),
];
after(() => backends.forEach(({ be }) => be.dispose()));

function logitsOf(file: string, be: Backend): { last: Float32Array; argmax: number[]; formats: string[] } {
  const pm = new PackedModel(new FileSource(DIR + file));
  const model = new LlamaModel(pm, { backend: be, linear: pm.linears(be), maxRows: 16 });
  const { prompt } = expected;
  const V = pm.config.vocabSize;
  const logits = model.forward(prompt, 0, 'all').slice();
  const argmax = prompt.map((_, p) => {
    let b = 0;
    for (let k = 1; k < V; k++) if (logits[p * V + k]! > logits[p * V + b]!) b = k;
    return b;
  });
  const formats = [...new Set(Object.values(pm.header.tensors).map((t) => t.format))].sort();
  return { last: logits.subarray((prompt.length - 1) * V), argmax, formats };
}

describe(`packed files written by commit ${expected.commit}`, () => {
  it('cover every format family', () => {
    const all = new Set(Object.values(expected.files).flatMap((f) => f.formats));
    for (const f of ['uniform-asym', 'uniform-sym', 'mixed-asym', 'aqlm', 'binary-billm', 'dense']) assert.ok(all.has(f), f);
  });
  for (const [file, want] of Object.entries(expected.files)) {
    for (const { label, be, tol } of backends) {
      it(`${file} on ${label}: the old logits`, () => {
        const got = logitsOf(file, be);
        assert.deepEqual(got.formats, want.formats);
        const scale = Math.max(...want.lastLogits.map(Math.abs));
        let worst = 0;
        want.lastLogits.forEach((w, k) => (worst = Math.max(worst, Math.abs(got.last[k]! - w))));
        assert.ok(worst <= tol * scale, `max |Δlogit| ${worst.toExponential(3)} > ${tol} · ${scale.toFixed(3)}`);
        if (label === 'reference') assert.deepEqual(got.argmax, want.argmax);
        else {
          const agree = got.argmax.filter((a, p) => a === want.argmax[p]).length;
          assert.ok(agree >= want.argmax.length - 1, `argmax agrees at ${agree}/${want.argmax.length} positions`);
        }
      });
    }
  }
});
