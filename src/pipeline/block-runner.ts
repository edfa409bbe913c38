/**
 * Runs one float or partly quantized block over every calibration window (the pipeline's
 * propagation and its Hessian/input capture), chunked to the scratch's row count.
 */
import type { Backend } from '../backend/types.js';
import { qDim, type LlamaConfig } from '../model/config.js';
import type { LinearName } from '../model/weights.js';
import { fakeQuantizeRows } from '../quant/act-quant.js';
import { HessianAccumulator } from '../quant/hessian.js';
import { layerForward } from '../runtime/forward.js';
import { freeScratch, type LayerWeights, type Scratch } from '../runtime/model.js';
import type { CalibrationSet } from './calibration.js';

/** Linears that read the same array share one Hessian (accumulated once, copied per linear). */
export type InputId = 'attn' | 'attnOut' | 'mlp' | 'mlpOut';
export const INPUT_OF: Readonly<Record<LinearName, InputId>> = {
  'self_attn.q_proj': 'attn', 'self_attn.k_proj': 'attn', 'self_attn.v_proj': 'attn',
  'self_attn.o_proj': 'attnOut',
  'mlp.gate_proj': 'mlp', 'mlp.up_proj': 'mlp',
  'mlp.down_proj': 'mlpOut',
};

export interface Capture {
  hessian?: HessianAccumulator;
  /** [rows, in] every calibration input of the linear, when the method asks for them. */
  inputs?: Float32Array;
  filled: number;
}

/** The order layerForward applies the linears in (and calls the hook in). */
const FORWARD_ORDER: readonly LinearName[] = [
  'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
  'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj',
];

/** The linear layerForward calls the hook for first on each shared input. */
const FIRST_READERS: ReadonlySet<LinearName> = new Set(['self_attn.q_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.down_proj']);

/** Runs one block over every calibration window, chunked to the scratch's row count. */
export class BlockRunner {
  readonly rows: number;

  constructor(
    private readonly backend: Backend,
    private readonly c: LlamaConfig,
    private readonly s: Scratch,
    private readonly cal: CalibrationSet,
    /** Called after each window of every pass (progress of the long capture passes). */
    private readonly onWindow?: (windowsDone: number, windows: number) => void,
    /**
     * < 16: every linear's input is fake-quantized per token in place before the linears read it
     * (and before the capture sees it), as the activation quantizer of the packed file does;
     * q/k/v (gate/up) share the one quantized input.
     */
    private readonly actBits = 16,
  ) {
    this.rows = cal.count * cal.seqLen;
  }

  dispose(): void {
    freeScratch(this.backend, this.s);
  }

  /** X ← block(X). */
  propagate(L: LayerWeights, X: Float32Array): void {
    this.run(L, X, true, undefined);
  }

  /** Statistics of the inputs of `linears` over all windows; X is updated only when `writeBack`. */
  capture(
    L: LayerWeights,
    X: Float32Array,
    linears: readonly LinearName[],
    requires: { hessian: boolean; inputs: boolean },
    writeBack: boolean,
  ): Map<InputId, Capture> {
    const caps = new Map<InputId, Capture>();
    const firstReader = new Map<InputId, LinearName>();
    for (const linear of linears) {
      const id = INPUT_OF[linear];
      if (caps.has(id)) continue;
      firstReader.set(id, linear);
      const width = linear === 'mlp.down_proj' ? this.c.hiddenDim : linear === 'self_attn.o_proj' ? qDim(this.c) : this.c.dim;
      caps.set(id, {
        hessian: requires.hessian ? new HessianAccumulator(this.backend, width) : undefined,
        inputs: requires.inputs ? new Float32Array(this.rows * width) : undefined,
        filled: 0,
      });
    }
    // without write-back nothing after the last captured input is used: the forward stops there
    const stopAfter = writeBack ? undefined : [...FORWARD_ORDER].reverse().find((linear) => linears.includes(linear));
    this.run(L, X, writeBack, stopAfter, (linear, x, rows) => {
      const id = INPUT_OF[linear];
      if (firstReader.get(id) !== linear) return; // siblings see the same array
      const cap = caps.get(id)!;
      cap.hessian?.add(x, rows);
      if (cap.inputs) {
        const width = x.length / rows;
        cap.inputs.set(x.subarray(0, rows * width), cap.filled * width);
      }
      cap.filled += rows;
    });
    return caps;
  }

  private run(L: LayerWeights, X: Float32Array, writeBack: boolean, stopAfter: LinearName | undefined, inner?: Parameters<typeof layerForward>[7]): void {
    const { dim } = this.c;
    const bits = this.actBits;
    // the first reader of each input quantizes it in place; its siblings then read the same array
    const hook: Parameters<typeof layerForward>[7] = bits >= 16 ? inner : (linear, x, rows) => {
      if (FIRST_READERS.has(linear)) fakeQuantizeRows(x, x, rows, x.length / rows, bits);
      inner?.(linear, x, rows);
    };
    const { seqLen, count } = this.cal;
    const x = this.s.x;
    for (let w = 0; w < count; w++) {
      // each window is a fresh sequence at position 0; long windows go through the KV cache in chunks
      for (let start = 0; start < seqLen; start += this.s.maxRows) {
        const T = Math.min(this.s.maxRows, seqLen - start);
        const off = (w * seqLen + start) * dim;
        x.set(X.subarray(off, off + T * dim));
        layerForward(this.backend, this.c, L, this.s, 0, T, start, hook, stopAfter);
        if (writeBack) X.set(x.subarray(0, T * dim), off);
      }
      this.onWindow?.(w + 1, count);
    }
  }
}
