/**
 * Tensor bytes a kernel dispatch reads and writes, for norms.profile() and the benchmark's
 * traffic ratio. Derived from the element ranges each binding's invocations touch
 * (`touched` in kernels.ts; a whole dispatch: the full range), times the element size, clamped
 * to the buffer: reads for read bindings, writes for read_write ones. A read_write binding also
 * counts as read only where the kernel really reads it: running statistics (updated in place) and
 * outputs added to (ACCUM). (Finalize steps bind their partials read-only: no kernel writes into its input.)
 */
import { elementBytes, type DType } from '../tensor.ts';
import type { KernelProfile } from '../device/context.ts';
import { invocations, kernelMemory, touched } from './memory.ts';
import type { Step } from './plan.ts';

type TrafficStep = Pick<Step, 'entry' | 'flags' | 'binds' | 'p'>;

/** Read_write bindings the kernel also reads. */
function alsoRead(s: TrafficStep, name: string): boolean {
  if (name === 'RM' || name === 'RV') return true;
  return s.flags.includes('ACCUM') && ['DW', 'DB', 'COEF', 'OUT'].includes(name);
}

/** Bytes read and written by invocations [ta, tb) of step `s` (default: all of them). */
export function traffic(s: TrafficStep, ta?: number, tb?: number): { bytesRead: number; bytesWritten: number } {
  // Families touched() does not model: every binding whole (a whole dispatch of a row kernel
  // touches all of its tensors).
  const known = kernelMemory(s.entry).modelled !== false;
  const spans = known ? touched(s, ta ?? 0, tb ?? invocations(s)) : new Map<string, readonly [number, number]>();
  let bytesRead = 0;
  let bytesWritten = 0;
  for (const b of s.binds) {
    const [lo, hi] = spans.get(b.name) ?? [0, Infinity];
    const eb = elementBytes(b.dtype);
    const cap = b.t.size / eb;
    const n = Math.max(0, Math.min(hi, cap) - Math.max(lo, 0));
    const bytes = Math.round(n * eb);
    const written = !!b.rw;
    if (written) {
      bytesWritten += bytes;
      if (alsoRead(s, b.name)) bytesRead += bytes;
    } else bytesRead += bytes;
  }
  return { bytesRead, bytesWritten };
}

/** `webgpu-norm.normalize_elements[ALIGNED,MEAN_PAIR]` → `normalize_elements[ALIGNED,MEAN_PAIR]`. */
export const profileName = (label: string): string => label.replace(/^webgpu-norm\./, '');

/** The profile record of one dispatch of step `s` (windowed: invocations [ta, tb)). */
export function kernelProfile(s: TrafficStep, label: string, workgroups: number, ta?: number, tb?: number): KernelProfile {
  return { name: profileName(label), workgroups, ...traffic(s, ta, tb) };
}
