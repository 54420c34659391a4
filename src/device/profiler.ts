/** The profiler (`createNorms({ profile: true })`): each op's kernels and, with timestamp queries, their GPU times. */
import { BufferUsage, MapModeRead } from './buffers.ts';

/** One kernel dispatch of an op, in {@link Norms.profile}'s records. */
export interface KernelProfile {
  /** The kernel: its entry point and compile-time flags, e.g. `normalize_elements[ALIGNED,MEAN_PAIR]`. */
  name: string;
  /** Workgroups dispatched. */
  workgroups: number;
  /** Tensor bytes the kernel reads (the elements its invocations touch, not the bound sizes). */
  bytesRead: number;
  /** Tensor bytes it writes. */
  bytesWritten: number;
  /** GPU time of the kernel's compute pass in milliseconds (devices with `'timestamp-query'`). */
  gpuMs?: number;
}

/** One op's kernels, in {@link Norms.profile}'s records. */
export interface OpProfile {
  /** The op, e.g. `'layerNorm'`, `'rmsNormBackward'`. */
  op: string;
  /**
   * Only for ops with a float16 tensor: how the kernels accessed halves. `'native'`: as WGSL
   * `f16` (the device has `'shader-f16'`); `'packed'`: two halves per u32 word, converted in the
   * shader (devices without the feature, or `createNorms({ float16: 'packed' })`). Arithmetic is
   * f32 and results are the same on both.
   */
  float16?: 'native' | 'packed';
  /** The kernels it dispatched, in order. */
  kernels: KernelProfile[];
}

export interface Profiler {
  records: OpProfile[];
  /** Readbacks of GPU timestamps of submitted batches. */
  timings: Promise<void>[];
  /** The device has timestamp-query: each dispatch gets a pass with timestamp writes. */
  timestamps: boolean;
}

/** A batch's timestamp queries: `n` written so far, and the kernel whose pass begins at each query index. */
export interface Timing {
  querySet: GPUQuerySet;
  n: number;
  kernels: [KernelProfile, number][];
}

export function newTiming(device: GPUDevice, count: number): Timing {
  const querySet = device.createQuerySet({ type: 'timestamp', count, label: 'webgpu-norm.profile.timestamps' });
  return { querySet, n: 0, kernels: [] };
}

/**
 * Records into the batch's encoder the resolve of its queries and their copy to a mappable
 * buffer (returned); the resolve buffer goes into `toDestroy` (destroyed after the submit).
 */
export function resolveTimestamps(d: GPUDevice, enc: GPUCommandEncoder, t: Timing, toDestroy: { destroy(): void }[]): GPUBuffer {
  const bytes = t.n * 8;
  const resolve = d.createBuffer({ size: bytes, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, label: 'webgpu-norm.profile.resolve' });
  const readback = d.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'webgpu-norm.profile.readback' });
  enc.resolveQuerySet(t.querySet, 0, t.n, resolve, 0);
  enc.copyBufferToBuffer(resolve, 0, readback, 0, bytes);
  toDestroy.push(resolve);
  return readback;
}

/** Once the batch's submit reported no error (`v`, `m`: its scopes), sets each kernel's gpuMs from the readback. */
export function readTimestamps(rb: GPUBuffer, t: Timing, v: Promise<GPUError | null>, m: Promise<GPUError | null>): Promise<void> {
  return Promise.all([v, m])
    .then(([ve, me]) => (ve || me ? undefined : rb.mapAsync(MapModeRead)))
    .then(() => {
      if (rb.mapState !== 'mapped') return;
      const ts = new BigUint64Array(rb.getMappedRange());
      for (const [k, q] of t.kernels) {
        const dt = Number(ts[q + 1]! - ts[q]!) / 1e6;
        if (ts[q + 1]! >= ts[q]! && Number.isFinite(dt)) k.gpuMs = dt;
      }
    })
    .catch(() => {})
    .finally(() => {
      rb.destroy();
      t.querySet.destroy();
    });
}
