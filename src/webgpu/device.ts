/**
 * The WebGPU device bitcrush runs on: an adapter asked for its largest storage limits, and
 * the few helpers every kernel uses — buffers from bytes (padded to whole 4-byte words, as
 * WGSL reads them as array<u32>), pipelines compiled once per WGSL source, bind groups.
 */
import { BUFFER, navigatorGpu, type GpuAdapter, type GpuBindGroup, type GpuBuffer, type GpuComputePipeline, type GpuDevice } from './gpu-types.js';

export interface GpuInfo {
  vendor: string;
  architecture: string;
  description: string;
  /** Largest storage buffer one binding may view: tensors larger than this are split by rows. */
  maxBindingBytes: number;
  maxBufferBytes: number;
  /** A CPU adapter (SwiftShader, or one the browser calls a fallback): lanes are threads there, not SIMD lanes. */
  cpu?: boolean;
}

export class GpuContext {
  readonly device: GpuDevice;
  readonly info: GpuInfo;
  private readonly pipelines = new Map<string, GpuComputePipeline>();
  /** Bytes of every buffer this context created and did not destroy. */
  allocatedBytes = 0;
  /** Lanes per output row for every linear when set (profiling, tests); else lanesFor's choice. */
  lanesOverride: number | undefined;

  constructor(device: GpuDevice, info: GpuInfo) {
    this.device = device;
    this.info = info;
  }

  /**
   * Invocations per output row of a linear with `inDim` columns (linear.ts LANE_COUNTS). On a
   * CPU adapter one: SwiftShader runs a workgroup's invocations as a loop, where each barrier
   * of a lane sum costs more than the row (measured on bench-llama's [32000, 256] 4-bit head,
   * one decode: 64 lanes 1–3 s, 8 lanes 220 ms, 1 lane 66 ms). On a GPU, enough lanes that
   * neighbours read neighbouring words of a row (coalesced) and each has a few words of a
   * 2-bit row (inDim / 16 words) to decode, at most a 32-wide SIMD group.
   */
  lanesFor(inDim: number): number {
    if (this.lanesOverride !== undefined) return this.lanesOverride;
    if (this.info.cpu === true) return 1;
    let lanes = 1;
    while (lanes < 32 && lanes * 2 * 4 <= inDim / 16) lanes *= 2;
    return lanes;
  }

  /** A storage buffer holding `bytes` (zero-padded to a multiple of 4, at least 4 bytes). */
  storage(bytes: Uint8Array | Float32Array | Uint32Array, label?: string): GpuBuffer {
    const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const size = Math.max(4, Math.ceil(u8.byteLength / 4) * 4);
    const buf = this.device.createBuffer({ size, usage: BUFFER.STORAGE | BUFFER.COPY_DST | BUFFER.COPY_SRC, mappedAtCreation: true, label });
    new Uint8Array(buf.getMappedRange()).set(u8);
    buf.unmap();
    this.allocatedBytes += size;
    return buf;
  }

  /** An uninitialised (zero) storage buffer of `floats` float32 values. */
  floats(floats: number, label?: string): GpuBuffer {
    const size = Math.max(4, floats * 4);
    if (size > this.info.maxBindingBytes) throw new RangeError(`${label ?? 'buffer'}: ${size} bytes exceed the device's storage binding limit of ${this.info.maxBindingBytes}`);
    this.allocatedBytes += size;
    return this.device.createBuffer({ size, usage: BUFFER.STORAGE | BUFFER.COPY_DST | BUFFER.COPY_SRC, label });
  }

  /** A uniform buffer of u32 words (f32 fields are written as their bits). */
  uniform(words: Uint32Array): GpuBuffer {
    const size = Math.max(16, Math.ceil(words.byteLength / 16) * 16);
    const buf = this.device.createBuffer({ size, usage: BUFFER.UNIFORM | BUFFER.COPY_DST });
    this.device.queue.writeBuffer(buf, 0, words);
    return buf;
  }

  pipeline(wgsl: string, label: string): GpuComputePipeline {
    let p = this.pipelines.get(wgsl);
    if (p === undefined) {
      const module = this.device.createShaderModule({ code: wgsl, label });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
      this.pipelines.set(wgsl, p);
    }
    return p;
  }

  bindGroup(p: GpuComputePipeline, buffers: GpuBuffer[]): GpuBindGroup {
    return this.device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
  }

  /** Runs `fn` and throws the first WebGPU validation error it caused (shader compile, binding). */
  async checked<T>(what: string, fn: () => T): Promise<T> {
    this.device.pushErrorScope('validation');
    const r = fn();
    const err = await this.device.popErrorScope();
    if (err) throw new Error(`WebGPU ${what}: ${err.message}`);
    return r;
  }
}

export interface AcquireOptions {
  /** Pretend the storage binding limit is this many bytes (tests of the row split). */
  maxBindingBytes?: number;
}

/** The device, or a reason there is none (no navigator.gpu, no adapter, device refused). */
export async function acquireGpu(opts: AcquireOptions = {}): Promise<GpuContext | string> {
  const gpu = navigatorGpu();
  if (gpu === undefined) return 'this browser has no WebGPU (navigator.gpu is missing)';
  let adapter: GpuAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return `requestAdapter failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (adapter === null) return 'no WebGPU adapter';
  const l = adapter.limits;
  let device: GpuDevice;
  try {
    device = await adapter.requestDevice({
      label: 'bitcrush',
      requiredLimits: {
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      },
    });
  } catch (e) {
    return `requestDevice failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  const info = adapter.info;
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  return new GpuContext(device, {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    description: info?.description ?? info?.device ?? '',
    maxBindingBytes: opts.maxBindingBytes !== undefined ? Math.min(opts.maxBindingBytes, limit) : limit,
    maxBufferBytes: device.limits.maxBufferSize,
    cpu: info?.isFallbackAdapter === true || /swiftshader/i.test(`${info?.vendor ?? ''} ${info?.architecture ?? ''} ${info?.description ?? ''}`),
  });
}

/** Workgroup counts for `n` workgroups within the per-dimension limit: (x, y) with x·y ≥ n. */
export function grid2d(n: number, maxPerDim = 65535): [number, number] {
  if (n <= maxPerDim) return [Math.max(1, n), 1];
  return [maxPerDim, Math.ceil(n / maxPerDim)];
}
