/** Adapter and device acquisition: the caller's device, or a new one from `gpu` / `navigator.gpu`. */
import { DeviceError } from '../errors.ts';

export interface AcquireOptions {
  device?: GPUDevice;
  gpu?: GPU;
}

/** Resolve a device: the caller's, or a new one from options.gpu / navigator.gpu. Null when no adapter. */
export interface Acquired {
  device: GPUDevice;
  adapterInfo: AdapterSummary;
  owned: boolean;
  /** Kept alive with the device: in Node, a collected GPU instance takes its devices down with it. */
  keepAlive: unknown[];
}

export async function acquireDevice(opts: AcquireOptions): Promise<Acquired | null> {
  if (opts.device) return { device: opts.device, adapterInfo: summarize(opts.device.adapterInfo), owned: false, keepAlive: [] };
  const gpu = opts.gpu ?? (typeof navigator !== 'undefined' ? (navigator as Navigator & { gpu?: GPU }).gpu : undefined);
  if (!gpu) return null;
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return null;
  const wanted: GPUFeatureName[] = ['subgroups', 'timestamp-query', 'shader-f16'];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const L = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
    maxBufferSize: L.maxBufferSize,
    maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
    maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'webgpu-norm' });
  } catch (e) {
    throw new DeviceError(`requestDevice failed: ${(e as Error).message}`);
  }
  return { device, adapterInfo: summarize(adapter.info), owned: true, keepAlive: [gpu, adapter] };
}

/** What the adapter says about itself (GPUAdapterInfo; empty strings where it says nothing). */
export interface AdapterSummary {
  /** e.g. `'nvidia'`, `'google'` (SwiftShader). */
  vendor: string;
  /** e.g. `'swiftshader'`, `'hopper'`. */
  architecture: string;
  /** Device name or id, often empty in browsers. */
  device: string;
  /** Driver description, often empty in browsers. */
  description: string;
  /** GPUAdapterInfo.isFallbackAdapter where the implementation has it (SwiftShader and lavapipe: true). */
  isFallbackAdapter?: boolean;
}

function summarize(info: GPUAdapterInfo | undefined): AdapterSummary {
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    ...(typeof (info as { isFallbackAdapter?: unknown } | undefined)?.isFallbackAdapter === 'boolean' ? { isFallbackAdapter: (info as { isFallbackAdapter: boolean }).isFallbackAdapter } : {}),
  };
}
