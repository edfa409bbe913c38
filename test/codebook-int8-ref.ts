/**
 * The int8-table reference of the native 8-bit-code AQLM kernels for test/formats.test.ts:
 * codebookInt8Matvec per row (per member for og > 1, scattered to the rows), and the check of
 * a kernel's output against it and against W·x.
 */
import assert from 'node:assert/strict';
import { codebookInt8Matvec, type CodebookInt8Result } from '../src/formats/codebook-int8.js';
import { memberPayload } from '../src/formats/codebook-split.js';
import { codebookRow, type CodebookQuantized } from '../src/formats/codebook.js';

/** Per row: codebookInt8Matvec's y and bound, and two rounding ties |s_r|·2·max Δ_s; og > 1 per member (codebook-split.ts). */
export interface Int8TableRef {
  y: Float32Array;
  bound: Float32Array;
  tie: Float32Array;
}

export function int8TableReference(q: CodebookQuantized, x: Float32Array): Int8TableRef {
  const og = q.og ?? 1;
  const il = q.il ?? 1;
  const ref: Int8TableRef = { y: new Float32Array(q.outDim), bound: new Float32Array(q.outDim), tie: new Float32Array(q.outDim) };
  for (let a = 0; a < og; a++) {
    const r: CodebookInt8Result = codebookInt8Matvec(og === 1 ? q : memberPayload(q, a), x);
    for (let o = 0; o < q.outDim / og; o++) {
      const row = og === 1 ? o : codebookRow(o, a, og, il);
      ref.y[row] = r.y[o]!;
      ref.bound[row] = r.bound[o]!;
      ref.tie[row] = Math.abs(q.scale[o]!) * 2 * r.maxStep;
    }
  }
  return ref;
}

/**
 * y [rows, out] of the int8-table kernels: within the reference's tie tolerance of
 * codebookInt8Matvec (the kernels' float32 tables may round an entry that sits on a tie the
 * other way: two such entries per row allowed, |s_r|·2·max Δ_s), and within the rounding bound
 * of W·x (|s_r|·Σ_s n_s·Δ_s/2), both plus float32 accumulation (1e-5 of Σ|w||x|).
 */
export function assertInt8Tables(y: Float32Array, refs: Int8TableRef[], w: Float32Array, x: Float32Array, out: number, inDim: number, what: string): void {
  refs.forEach((ref, i) => {
    for (let r = 0; r < out; r++) {
      let exact = 0;
      let mag = 0;
      for (let c = 0; c < inDim; c++) {
        exact += w[r * inDim + c]! * x[i * inDim + c]!;
        mag += Math.abs(w[r * inDim + c]! * x[i * inDim + c]!);
      }
      const got = y[i * out + r]!;
      const tie = ref.tie[r]! + 1e-5 * mag + 1e-30;
      assert.ok(Math.abs(got - ref.y[r]!) <= tie, `${what}: row ${i}, output ${r}: ${got} vs int8-table reference ${ref.y[r]}`);
      assert.ok(Math.abs(got - exact) <= ref.bound[r]! + 1e-5 * mag + 1e-30, `${what}: row ${i}, output ${r}: ${got} vs W·x ${exact}, bound ${ref.bound[r]}`);
    }
  });
}
