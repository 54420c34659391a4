/**
 * GPU test helpers: a real WebGPU device in Node (Dawn via the `webgpu` package, SwiftShader on
 * machines without a GPU). No adapter is a test failure, never a skip.
 */
import { create } from 'webgpu';
import { createNorms, relativeL2, type Norms, type CreateNormsOptions } from '../../src/index.ts';

/**
 * The kernel class the parity suites run with: vitest runs them once as detected on this adapter
 * and once more with WEBGPU_NORM_TEST_ADAPTER_CLASS=gpu (the 'gpu-class' project in
 * vitest.config.ts), so the discrete-GPU kernels are checked on SwiftShader too.
 */
export const TEST_ADAPTER_CLASS = (process.env.WEBGPU_NORM_TEST_ADAPTER_CLASS ?? 'auto') as 'auto' | 'cpu' | 'gpu';

/**
 * WEBGPU_NORM_TEST_SUBGROUPS=off (the 'gpu-class-tree' project in vitest.config.ts): the
 * one-workgroup-per-row kernels sum with the workgroup tree instead of subgroup operations, as
 * on a device without 'subgroups'.
 */
export const TEST_SUBGROUPS = process.env.WEBGPU_NORM_TEST_SUBGROUPS !== 'off';

/**
 * WEBGPU_NORM_TEST_FLOAT16=packed: GPU instances made by gpuNorms() use packed halves even where
 * the device has 'shader-f16' (createNorms({ float16: 'packed' })), so any suite can be run on
 * either float16 path; unset: 'auto' (native where the device has the feature).
 */
export const TEST_FLOAT16 = (process.env.WEBGPU_NORM_TEST_FLOAT16 ?? 'auto') as 'auto' | 'native' | 'packed';

/**
 * The float16 paths to test on `n`'s device: native and packed where it has 'shader-f16' (native
 * first), packed only where it has not, or as WEBGPU_NORM_TEST_FLOAT16 narrows them.
 */
export function float16Paths(n: Norms): ('native' | 'packed')[] {
  const has = !!n.device?.features.has('shader-f16');
  if (TEST_FLOAT16 === 'packed' || !has) return ['packed'];
  return TEST_FLOAT16 === 'native' ? ['native'] : ['native', 'packed'];
}

/** Applies TEST_SUBGROUPS to a webgpu instance. */
export function testVariant(n: Norms): Norms {
  if (n._gpu) n._gpu.useSubgroups = TEST_SUBGROUPS;
  return n;
}

/**
 * The Vulkan implementation this run is meant to test ('swiftshader' or 'lavapipe'), set per
 * project by vitest.config.ts; every GPU instance the suites make checks that it got it.
 */
export const EXPECTED_ADAPTER = process.env.WEBGPU_NORM_TEST_ADAPTER as 'swiftshader' | 'lavapipe' | undefined;

/** Whether adapter info names the implementation (SwiftShader: google/swiftshader; lavapipe: mesa/llvmpipe). */
export function adapterMatches(info: { vendor: string; architecture: string; device?: string; description?: string }, which: string): boolean {
  const all = [info.vendor, info.architecture, info.device ?? '', info.description ?? ''].join(' ').toLowerCase();
  if (which === 'swiftshader') return all.includes('swiftshader');
  if (which === 'lavapipe') return all.includes('llvmpipe') || all.includes('lavapipe');
  return false;
}

/**
 * WEBGPU_NORM_TEST_BACKEND=wasm (the 'wasm' project in vitest.config.ts): the instances that
 * gpuNorms() and openBackends() make are on the wasm backend instead, so the parity, bad-input,
 * strict-option and memory suites run on it as a third backend. WEBGPU_NORM_TEST_WASM picks its
 * build: 'simd' (default), 'scalar' (no SIMD128), or 'threads' (two threads from the first byte).
 */
export const TEST_BACKEND = (process.env.WEBGPU_NORM_TEST_BACKEND ?? 'webgpu') as 'webgpu' | 'wasm';
export const TEST_WASM = (process.env.WEBGPU_NORM_TEST_WASM ?? 'simd') as 'simd' | 'scalar' | 'threads';

/** The options that only mean something to the webgpu backend (dropped for the wasm one). */
const GPU_ONLY = ['gpu', 'device', 'variant', 'adapterClass', 'maxBindingBytes', 'float16', 'profile'] as const;

/** A wasm-backend instance with NaN-poisoned outputs; `build` as WEBGPU_NORM_TEST_WASM (threads: started before it returns). */
export async function wasmNorms(opts: CreateNormsOptions = {}, build = TEST_WASM): Promise<Norms> {
  const o: CreateNormsOptions = { ...opts };
  for (const k of GPU_ONLY) delete o[k];
  const b = build === 'scalar' ? { simd: false, threads: 1 } : build === 'threads' ? { threads: 2, threadMinBytes: 0 } : { threads: 1 };
  const norms = await createNorms({ poisonOutputs: true, ...o, ...b, backend: 'wasm' });
  if (norms.backend !== 'wasm') throw new Error(`expected the wasm backend, got ${norms.backend}`);
  const want = build === 'scalar' ? 'scalar' : build === 'threads' ? 'simd-threads' : 'simd';
  if (norms._wasm!.m.build !== want) throw new Error(`expected the wasm build ${want}, got ${norms._wasm!.m.build} (${norms.note})`);
  await norms._wasm!.m.startThreads();
  return norms;
}

/** Whether this run's suites are on the wasm backend. */
export const ON_WASM = TEST_BACKEND === 'wasm';

/**
 * Another instance on `base`'s device with these options (webgpu), or another wasm instance of
 * this run's build (the GPU-only options dropped), for suites that make variants of an instance.
 */
export async function sameDevice(base: Norms, opts: CreateNormsOptions = {}): Promise<Norms> {
  if (ON_WASM) return wasmNorms(opts);
  return createNorms({ backend: 'webgpu', device: base.device!, ...opts });
}

export async function gpuNorms(opts: CreateNormsOptions = {}): Promise<Norms> {
  if (TEST_BACKEND === 'wasm') return wasmNorms(opts);
  const gpu = create([]);
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    throw new Error(
      'No WebGPU adapter in Node. Install Debian chromium (SwiftShader: /usr/lib/chromium/vk_swiftshader_icd.json) and libvulkan1, ' +
        `and run through the README's test command. VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? '(unset)'}`,
    );
  }
  const f16 = TEST_FLOAT16 === 'auto' ? {} : { float16: TEST_FLOAT16 };
  const norms = await createNorms({ gpu, backend: 'webgpu', poisonOutputs: true, adapterClass: TEST_ADAPTER_CLASS, ...f16, ...opts });
  if (norms.backend !== 'webgpu') throw new Error(`expected the webgpu backend, got ${norms.backend}`);
  if (EXPECTED_ADAPTER && !adapterMatches(adapter.info, EXPECTED_ADAPTER)) {
    norms.destroy();
    throw new Error(`this run tests ${EXPECTED_ADAPTER}, but the adapter is ${adapter.info.vendor} / ${adapter.info.architecture} / ${adapter.info.description} (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? '(unset)'})`);
  }
  return testVariant(norms);
}

/** Fails with a table of the first mismatches when the relative L2 error exceeds tol. */
export function expectClose(name: string, got: Float32Array, ref: Float32Array, tol: number): number {
  const err = relativeL2(got, ref);
  if (!(err <= tol) || got.length !== ref.length) {
    const rows: string[] = [];
    for (let i = 0; i < ref.length && rows.length < 8; i++) {
      const g = got[i]!, r = ref[i]!;
      const bad = Number.isNaN(g) !== Number.isNaN(r) || Math.abs(g - r) > tol * Math.max(1, Math.abs(r)) * 10;
      if (bad) rows.push(`  [${i}] got ${g} expected ${r}`);
    }
    throw new Error(`${name}: relative L2 ${err.toExponential(3)} > ${tol} (len ${got.length} vs ${ref.length})\n${rows.join('\n')}`);
  }
  return err;
}

/** Counts the dispatches submitted through the instance's context that bind ranges of buffers. */
export function countWindowed(n: Norms): { get(): number; stop(): void } {
  const ctx = n._gpu!.ctx as unknown as { submit: (label: string, d: { buffers: unknown[] }[]) => Promise<void> };
  const orig = ctx.submit;
  let count = 0;
  ctx.submit = function (label, d) {
    count += d.filter((x) => x.buffers.some((b) => typeof (b as { offset?: unknown }).offset === 'number')).length;
    return orig.call(this, label, d);
  };
  return { get: () => count, stop: () => void (ctx.submit = orig) };
}
