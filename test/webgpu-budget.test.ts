/**
 * The WebGPU memory budget (browser/budget.ts gpuBytes) against what GpuModel really allocates:
 * the model is built in Node on a recording stand-in for a GPUDevice (every createBuffer and
 * destroy counted, nothing computed), its KV cache grown from a few positions to the full
 * context by forward calls, and the most bytes alive at once compared with the budget. The
 * peak is during a growth, when the old and the new caches both exist: a budget counting the
 * full-context cache alone is below it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gpuBytes } from '../src/browser/budget.js';
import { FileSource } from '../src/node/fs.js';
import { PackedModel } from '../src/packed/reader.js';
import { GpuContext } from '../src/webgpu/device.js';
import { GpuModel, growthPeakPositions } from '../src/webgpu/forward.js';
import type { GpuBuffer, GpuDevice } from '../src/webgpu/gpu-types.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/packed-compat/', import.meta.url));

/** A GPUDevice that only keeps the books: live bytes of buffers created and not destroyed, and their peak. */
function recordingDevice(): { device: GpuDevice; live: () => number; peak: () => number } {
  let live = 0;
  let peak = 0;
  const noop = () => undefined;
  const pass = { setPipeline: noop, setBindGroup: noop, dispatchWorkgroups: noop, end: noop };
  const device = {
    limits: { maxStorageBufferBindingSize: 2 ** 30, maxBufferSize: 2 ** 30, maxStorageBuffersPerShaderStage: 10, maxComputeWorkgroupsPerDimension: 65535, maxComputeWorkgroupStorageSize: 16384 },
    queue: { writeBuffer: noop, submit: noop, onSubmittedWorkDone: async () => undefined },
    lost: new Promise(noop),
    createBuffer({ size }: { size: number }): GpuBuffer {
      live += size;
      peak = Math.max(peak, live);
      let gone = false;
      return {
        size,
        mapAsync: async () => undefined,
        getMappedRange: () => new ArrayBuffer(size),
        unmap: noop,
        destroy: () => {
          if (!gone) live -= size;
          gone = true;
        },
      };
    },
    createShaderModule: () => ({ getCompilationInfo: async () => ({ messages: [] }) }),
    createComputePipeline: () => ({ getBindGroupLayout: () => ({}) }),
    createBindGroup: () => ({}),
    createCommandEncoder: () => ({ beginComputePass: () => pass, copyBufferToBuffer: noop, finish: () => ({}) }),
    pushErrorScope: noop,
    popErrorScope: async () => null,
    destroy: noop,
  } as unknown as GpuDevice;
  return { device, live: () => live, peak: () => peak };
}

describe('WebGPU memory budget counts the KV cache growth peak', () => {
  it('growthPeakPositions: the full context plus the capacity before the last doubling', () => {
    assert.equal(growthPeakPositions(256, 2048), 2048 + 1024);
    assert.equal(growthPeakPositions(256, 1000), 1000 + 512);
    assert.equal(growthPeakPositions(256, 256), 256);
    assert.equal(growthPeakPositions(2048, 512), 512);
    assert.equal(growthPeakPositions(3, 48), 48 + 24);
  });

  for (const file of ['rtn-w4g32.bcq', 'aqlm-2x4g8.bcq']) {
    it(`${file}: gpuBytes covers GpuModel's peak allocation while its cache grows from 4 positions to the context`, async () => {
      const source = new FileSource(`${FIXTURES}${file}`);
      try {
        const packed = new PackedModel(source);
        const rec = recordingDevice();
        const ctx = new GpuContext(rec.device, { vendor: 'test', architecture: '', description: '', maxBindingBytes: 2 ** 30, maxBufferBytes: 2 ** 30 });
        const positions = packed.config.seqLen;
        const initialPositions = 4;
        const model = new GpuModel(ctx, packed, { positions, initialPositions });
        const steady = rec.live();
        // decode steps that cross every growth point (the tokens need not be a real sequence: nothing is computed)
        for (let pos = 0; pos < positions; pos = pos === 0 ? initialPositions : pos * 2) await model.forward([1], pos);
        await model.forward([1], positions - 1);
        assert.equal(model.capacity, positions);
        const peak = rec.peak();
        const budget = gpuBytes(packed, positions, model.maxRows, initialPositions);
        const fullOnly = gpuBytes(packed, positions, model.maxRows, positions);
        assert.ok(peak > rec.live(), `the peak ${peak} is not above the full-context steady state ${rec.live()}`);
        assert.ok(fullOnly < peak, `a budget without the growth (${fullOnly}) already covers the peak ${peak}`);
        // the budget leaves out the uniforms and the one-hot / table buffers of a few hundred bytes each
        assert.ok(budget >= peak * 0.99 && budget <= peak * 1.01, `budget ${budget} against a peak of ${peak} bytes (steady at 4 positions ${steady})`);
        model.dispose();
        assert.equal(rec.live(), 0, 'dispose leaves buffers alive');
      } finally {
        source.close();
      }
    });
  }

});
