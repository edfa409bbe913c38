/**
 * The browser side of test/wasm-relaxed.test.ts: runs in a chromium page (dist/ served as plain
 * ES modules) and returns plain JSON the Node test asserts on. Picks the kernel module as the web
 * page does (chooseWasmKernels), fetches it, and runs every int8-activation wasm kernel the
 * registry examples of the grid formats reach (uniform 2/3/4/8-bit, mixed widths) on a
 * one-thread wasm backend, against W·x̂ (the format's dequantization times the int8-quantized
 * activation, int8-activations.ts) in float64.
 */
import { createWasmBackend } from '../../src/backend/wasm.js';
import { chooseWasmKernels, relaxedSimdAvailable, WASM_KERNEL_FILES } from '../../src/backend/wasm-kernels.js';
import { int8Activations } from '../../src/formats/int8-activations.js';
import { gridInt8Fits } from '../../src/formats/mixed-wasm-int8.js';
import type { GroupQuantized } from '../../src/formats/quantized.js';
import { getFormat } from '../../src/formats/registry.js';
import type { UniformParams } from '../../src/formats/uniform.js';
import { int8WasmFits } from '../../src/formats/uniform-wasm-int8.js';
import { mulberry32 } from '../../src/quant/random.js';

export interface KernelCase {
  what: string;
  engine: string;
  /** max over outputs of |y − W·x̂| / Σ|w||x̂| */
  err: number;
}

export interface WasmKernelsResult {
  relaxedAvailable: boolean;
  chosen: string;
  /** What the instantiated module reports (WasmBackend.kernels). */
  running: string;
  cases: KernelCase[];
}

export async function wasmKernelChecks(wasmBase: string): Promise<WasmKernelsResult> {
  const chosen = chooseWasmKernels();
  const res = await fetch(`${wasmBase}${WASM_KERNEL_FILES[chosen]}`);
  if (!res.ok) throw new Error(`${res.url}: HTTP ${res.status}`);
  const be = createWasmBackend({ wasm: await res.arrayBuffer(), threads: 1 });
  const cases: KernelCase[] = [];
  for (const id of ['uniform-asym', 'uniform-sym', 'mixed-asym']) {
    const format = getFormat(id);
    for (const [n, ex] of format.examples().entries()) {
      const { outDim, inDim, params } = ex;
      const p = params as UniformParams;
      const int8 = id === 'mixed-asym' ? gridInt8Fits(inDim, p.groupSize) : int8WasmFits(inDim, p) || (p.bits === 3 && gridInt8Fits(inDim, p.groupSize));
      if (!int8) continue;
      const rand = mulberry32(500 + n);
      const t = format.pack(format.randomPayload(outDim, inDim, params, rand));
      const w = format.dequantize(t);
      const lin = format.makeLinear(t, be);
      const x = Float32Array.from({ length: inDim }, () => rand() * 2 - 1);
      const xhat = int8Activations(x, inDim, (format.unpack(t) as GroupQuantized).perm ?? null);
      const y = new Float32Array(outDim);
      lin.matvec(y, x);
      let err = 0;
      for (let r = 0; r < outDim; r++) {
        let ref = 0;
        let mag = 0;
        for (let c = 0; c < inDim; c++) {
          ref += w[r * inDim + c]! * xhat[c]!;
          mag += Math.abs(w[r * inDim + c]! * xhat[c]!);
        }
        err = Math.max(err, Math.abs(y[r]! - ref) / (mag + 1e-30));
      }
      cases.push({ what: `${id} ${JSON.stringify(params)} [${outDim}, ${inDim}]`, engine: (lin as { engine?: string }).engine ?? '?', err });
      lin.dispose?.();
    }
  }
  return { relaxedAvailable: relaxedSimdAvailable(), chosen, running: be.kernels, cases };
}
