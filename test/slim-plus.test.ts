/**
 * What SliM-LLM+'s OmniQuant targets rest on: the pipeline's float stream
 * (QuantMethod.requires.floatStream → BlockRefineContext.floatInputs) is the float model's
 * residual stream entering each block, also after a resume, while ctx.inputs is the quantized
 * model's. Checked with a probe method (RTN layers plus a refineBlock that records the streams).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend } from '../src/backend/reference.js';
import { getMethod } from '../src/methods/registry.js';
import { quantizeModel, type PipelineOptions } from '../src/pipeline/quantize.js';
import type { BlockRefineContext, QuantMethod } from '../src/quant/method.js';
import { storiesData } from './stories.js';

describe('pipeline float stream for block-level targets', () => {
  const { source, calibration } = storiesData({ count: 4, seqLen: 32 });
  const backend = createReferenceBackend();
  const { method: rtn, opts } = getMethod('rtn', { bits: 2, groupSize: 32 });

  /** Runs the probe; returns each block's [quantized stream, float stream] as it entered the block. */
  const probe = (extra: Partial<PipelineOptions>) => {
    const seen = new Map<number, { inputs: Float32Array; floatInputs: Float32Array | undefined }>();
    const method: QuantMethod<object> = {
      ...rtn,
      name: 'probe',
      requires: { hessian: false, inputs: true, floatStream: true },
      refineBlock(ctx: BlockRefineContext) {
        seen.set(ctx.block, { inputs: ctx.inputs.slice(), floatInputs: ctx.floatInputs?.slice() });
        return new Map();
      },
    };
    quantizeModel(source, { backend, method, methodOptions: opts, calibration, ...extra });
    return seen;
  };

  const quant = probe({});
  const float = probe({ floatInputs: true }); // ctx.inputs is the float model's stream here

  it('floatInputs is the float model\'s stream; inputs is the quantized model\'s', () => {
    assert.equal(quant.size, source.config.nLayers);
    for (const [l, q] of quant) {
      assert.ok(q.floatInputs, `block ${l}: no float stream`);
      assert.deepEqual(q.floatInputs, float.get(l)!.inputs, `block ${l}: float stream`);
      if (l > 0) assert.notDeepEqual(q.inputs, q.floatInputs, `block ${l}: the quantized stream should differ from the float one after 2-bit blocks`);
    }
  });

  it('a resumed run recomputes the float stream through the skipped float blocks', () => {
    const resumed = probe({ resume: { block: 2, inputs: quant.get(2)!.inputs.slice() } });
    assert.deepEqual([...resumed.keys()], [2, 3, 4]);
    for (const [l, r] of resumed) assert.deepEqual(r.floatInputs, quant.get(l)!.floatInputs, `block ${l}`);
  });
});
