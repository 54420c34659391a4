/** Option checks of createNorms (maxBindingBytes is checked against the device's limits when it is applied). */
import { ValueError } from '../errors.ts';
import type { CreateNormsOptions } from '../types.ts';
import { checkOptions, describeValue } from '../validate.ts';

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
