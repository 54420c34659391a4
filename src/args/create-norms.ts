/** Option checks of createNorms (maxBindingBytes is checked against the device's limits when it is applied). */
import { ValueError } from '../errors.ts';
import { checkOptions, describeValue } from '../validate.ts';

// ---- Public option and result types (re-exported by index.ts; the API reference documents them from here)

/** Options of {@link createNorms}. Every key is optional; an unknown key throws a `ValueError`. */
export interface CreateNormsOptions {
  /**
   * Which implementation runs the ops. `'auto'` (default): WebGPU when a hardware adapter is
   * found, else `'wasm'` (also for CPU-emulated adapters such as SwiftShader or llvmpipe, where
   * the wasm kernels are several times faster; `norms.note` says which and why). `'webgpu'`:
   * WebGPU on whatever adapter is found (CPU-emulated ones included), or a `DeviceError`.
   * `'wasm'`: float32 WebAssembly kernels (SIMD128 where the engine has it) on the CPU, no GPU
   * objects. `'cpu'`: the float64 CPU reference (slow; for checking results).
   */
  backend?: 'auto' | 'webgpu' | 'wasm' | 'cpu';
  /**
   * wasm backend: the most threads an op may use (workers sharing the module's memory: Node's
   * worker_threads, or Web Workers on a cross-origin isolated page). `'auto'` (default): the
   * machine's cores, at most 4. `1`: none. Ops whose tensors are smaller than `threadMinBytes`
   * always run on the calling thread; results are the same bits for any number of threads.
   * Workers start at the first op large enough to use them (that op, and any op until they are
   * up, runs on one thread).
   */
  threads?: number | 'auto';
  /** wasm backend: the smallest op (bytes its kernels read) split over threads. Default 4 MiB. */
  threadMinBytes?: number;
  /** wasm backend: false forces the scalar build (no SIMD128), as on an engine without SIMD. Default true. */
  simd?: boolean;
  /**
   * A `GPUDevice` to share (e.g. ONNX Runtime Web's or TensorFlow.js's), so tensors can wrap its
   * buffers without a copy. The caller keeps ownership: `norms.destroy()` does not destroy it.
   */
  device?: GPUDevice;
  /**
   * A `navigator.gpu` stand-in to request the adapter from. Default: `navigator.gpu` (browsers).
   * In Node: `create([])` from the `webgpu` package (Dawn).
   */
  gpu?: GPU;
  /**
   * Also run the CPU reference on every op (webgpu backend) and compare: `read()` of an output,
   * and awaiting an op's result object, reject with a `ParityError` when the relative L2 error
   * exceeds 1e-4 (float32 outputs) or 2e-3 (float16 outputs). Default false. Slow: for tests.
   */
  verify?: boolean;
  /** Testing aid: fill every new output buffer with NaN before the kernels write it. Default false. */
  poisonOutputs?: boolean;
  /**
   * Testing aid: force the row-fused or the general (reduce/finalize/apply) kernels. Default `'auto'`.
   * `'fused'` takes rows of up to 8192 elements (longer ones keep the partials and their merge: one
   * invocation's sequential sums would lose precision there).
   */
  variant?: 'auto' | 'fused' | 'general';
  /**
   * Cap on the bytes of one storage binding (default and maximum: the device's
   * maxStorageBufferBindingSize). Tensors larger than this are processed in bound ranges;
   * tests set it small to exercise that on small tensors. At least 4 × minStorageBufferOffsetAlignment
   * (a `ValueError` otherwise).
   */
  maxBindingBytes?: number;
  /**
   * Which kernel family to run (webgpu backend). `'auto'` (default): detected from the adapter
   * (CPU adapters such as SwiftShader get the row-fused kernels and few long invocations;
   * GPUs get many short invocations with coalesced loads). `'cpu'` / `'gpu'` force one, e.g. to
   * test the discrete-GPU work split on SwiftShader. Results are the same within float32
   * rounding; only speed differs. A `ValueError` for any other value.
   */
  adapterClass?: 'auto' | 'cpu' | 'gpu';
  /**
   * Record what every op dispatches, for {@link Norms.profile}: per kernel its name, workgroups,
   * the tensor bytes it reads and writes, and (where the device has `'timestamp-query'`, requested
   * when this instance creates the device) its GPU time; with timestamps each kernel runs in a
   * compute pass of its own. Default false. Nothing is recorded on the cpu backend.
   */
  profile?: boolean;
  /**
   * How float16 tensors are accessed in the kernels (webgpu backend). `'auto'` (default): as
   * WGSL `f16` where the device has `'shader-f16'` (requested when this instance creates the
   * device; a caller's device must have been created with it), else packed two halves per u32
   * word and converted in the shader. `'packed'` forces the packed path (comparisons, or a driver
   * whose f16 support misbehaves); `'native'` requires `'shader-f16'` (a `ValueError` without it).
   * Both paths accumulate in f32 and round results to half the same IEEE way (NaN, ±Inf, overflow
   * past 65520), so results are the same; `norms.float16` and the profile records say which ran.
   */
  float16?: 'auto' | 'native' | 'packed';
}

// ---- Argument checks


/** The options createNorms accepts (any other key is a ValueError naming the nearest of these). */
const KEYS = ['backend', 'device', 'gpu', 'verify', 'poisonOutputs', 'variant', 'maxBindingBytes', 'adapterClass', 'profile', 'float16', 'threads', 'threadMinBytes', 'simd'] as const;

/** Checks every option's key and type; returns the backend asked for (default `'auto'`). */
export function createNormsArgs(options: CreateNormsOptions): 'auto' | 'webgpu' | 'wasm' | 'cpu' {
  checkOptions(options, 'createNorms', KEYS);
  for (const k of ['verify', 'poisonOutputs', 'profile', 'simd'] as const) {
    if (options[k] !== undefined && typeof options[k] !== 'boolean') throw new ValueError(`${k}: expected true or false, got ${describeValue(options[k])}`, k);
  }
  if (options.variant !== undefined && !['auto', 'fused', 'general'].includes(options.variant)) {
    throw new ValueError(`variant: expected 'auto', 'fused' or 'general', got ${describeValue(options.variant)}`, 'variant');
  }
  if (options.adapterClass !== undefined && !['auto', 'cpu', 'gpu'].includes(options.adapterClass)) {
    throw new ValueError(`adapterClass: expected 'auto', 'cpu' or 'gpu', got ${describeValue(options.adapterClass)}`, 'adapterClass');
  }
  if (options.float16 !== undefined && !['auto', 'native', 'packed'].includes(options.float16)) {
    throw new ValueError(`float16: expected 'auto', 'native' or 'packed', got ${describeValue(options.float16)}`, 'float16');
  }
  for (const k of ['device', 'gpu'] as const) {
    if (options[k] != null && typeof options[k] !== 'object') throw new ValueError(`${k}: expected a ${k === 'gpu' ? 'GPU (navigator.gpu, or create([]) from the webgpu package)' : 'GPUDevice'}, got ${describeValue(options[k])}`, k);
  }
  const t = options.threads;
  if (t !== undefined && t !== 'auto' && !(typeof t === 'number' && Number.isInteger(t) && t >= 1 && t <= 64)) {
    throw new ValueError(`threads: expected 'auto' or an integer from 1 to 64, got ${describeValue(t)}`, 'threads');
  }
  const tm = options.threadMinBytes;
  if (tm !== undefined && !(typeof tm === 'number' && tm >= 0 && Number.isFinite(tm))) {
    throw new ValueError(`threadMinBytes: expected a number of bytes >= 0, got ${describeValue(tm)}`, 'threadMinBytes');
  }
  const want = options.backend ?? 'auto';
  if (!['auto', 'webgpu', 'wasm', 'cpu'].includes(want)) throw new ValueError(`backend: expected 'auto', 'webgpu', 'wasm' or 'cpu', got ${describeValue(want)}`, 'backend');
  return want;
}
