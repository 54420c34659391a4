/** Option checks of createNorms (maxBindingBytes is checked against the device's limits when it is applied). */
import { ValueError } from '../errors.ts';
import type { CreateNormsOptions } from '../types.ts';
import { checkOptions, describeValue } from '../validate.ts';

/** The options createNorms accepts (any other key is a ValueError naming the nearest of these). */
const KEYS = ['backend', 'device', 'gpu', 'verify', 'poisonOutputs', 'variant', 'maxBindingBytes', 'adapterClass', 'profile', 'float16'] as const;

/** Checks every option's key and type; returns the backend asked for (default `'auto'`). */
export function createNormsArgs(options: CreateNormsOptions): 'auto' | 'webgpu' | 'cpu' {
  checkOptions(options, 'createNorms', KEYS);
  for (const k of ['verify', 'poisonOutputs', 'profile'] as const) {
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
  const want = options.backend ?? 'auto';
  if (!['auto', 'webgpu', 'cpu'].includes(want)) throw new ValueError(`backend: expected 'auto', 'webgpu' or 'cpu', got ${describeValue(want)}`, 'backend');
  return want;
}
