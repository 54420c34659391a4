/**
 * Tensors larger than one storage binding. A kernel whose bound buffers include one larger than
 * the binding limit (maxStorageBufferBindingSize) is compiled `WINDOW` and dispatched several
 * times, each dispatch over a range [t0, t1) of its invocations with every large buffer bound as
 * the range of it those invocations touch (its start in the uniform wordOffset<k>; the WGSL
 * accessors subtract it, see device/wgsl.ts). Kernels keep tensor-wide indices, so results do
 * not depend on where the ranges are cut.
 *
 * `touched` (kernels.ts, beside each entry point's other facts) gives, per binding, the element
 * range [lo, hi) that invocations [ta, tb) of a step may read or write; `planWindows` cuts the index
 * space greedily into the longest ranges whose bound ranges fit, each found by a doubling then
 * bisecting search.
 */
import type { DType } from '../tensor.ts';
import type { BoundRange } from '../device/context.ts';
import { LimitError } from '../errors.ts';
import { EMPTY, invocations, perElement, touched, type Span } from './memory.ts';
import type { Step, WindowDispatch } from './plan.ts';

/** u32 words [lo, hi) of a binding's elements [lo, hi) (float16: two per word, plus the word after a quad). */
function words(span: Span, dtype: DType): Span {
  if (span[1] <= span[0]) return EMPTY;
  if (dtype === 'float32') return span;
  return [span[0] >> 1, Math.floor((span[1] - 1) / 2) + 2];
}

/**
 * Cut a step whose buffers do not all fit one binding of `limit` bytes into windowed dispatches.
 * Buffers within the limit are bound whole. Throws LimitError when a single invocation's ranges
 * do not fit (a shape the kernels cannot split), before anything is encoded.
 */
export function planWindows(s: Step, limit: number, align: number, label: string): WindowDispatch[] {
  const T = invocations(s);
  const big = s.binds.map((b) => b.t.size > limit);
  const ranges = (ta: number, tb: number): { buffers: (GPUBuffer | BoundRange)[]; bases: number[]; worst: number; name: string } => {
    const spans = touched(s, ta, tb);
    const buffers: (GPUBuffer | BoundRange)[] = [];
    const bases: number[] = [];
    let worst = 0;
    let name = '';
    s.binds.forEach((b, k) => {
      if (!big[k]) {
        buffers.push(b.t);
        bases.push(0);
        return;
      }
      const [lo, hi] = words(spans.get(b.name) ?? [0, Infinity], b.dtype);
      let offset = 0;
      let end = Math.min(align, b.t.size);
      if (hi > lo) {
        offset = Math.floor((lo * 4) / align) * align;
        end = Math.min(hi * 4, b.t.size);
      }
      const size = Math.max(end - offset, 4);
      if (size > worst) (worst = size), (name = b.name);
      buffers.push({ buffer: b.t, offset, size });
      bases.push(offset / 4);
    });
    return { buffers, bases, worst, name };
  };
  const fits = (ta: number, tb: number) => ranges(ta, tb).worst <= limit;
  const out: WindowDispatch[] = [];
  for (let ta = 0; ta < T; ) {
    if (!fits(ta, ta + 1)) {
      const r = ranges(ta, ta + 1);
      throw new LimitError(
        `${label}: one invocation of the ${s.entry} kernel [${s.flags.join(',')}] touches ${r.worst} bytes of ${r.name}, more than the storage binding limit ${limit} (maxStorageBufferBindingSize); this shape cannot be split into bound ranges`,
        r.name,
      );
    }
    // Longest fitting range: double, then bisect between the last fit and the first miss.
    let good = ta + 1;
    let bad = T + 1;
    for (let len = 2; good < T; len *= 2) {
      const cand = Math.min(ta + len, T);
      if (!fits(ta, cand)) {
        bad = cand;
        break;
      }
      good = cand;
    }
    while (bad - good > 1) {
      const mid = Math.floor((good + bad) / 2);
      if (fits(ta, mid)) good = mid;
      else bad = mid;
    }
    const r = ranges(ta, good);
    // Element-planned steps: invocations of the quads holding elements [ta, good).
    const [t0, t1] = perElement(s) ? [Math.floor(ta / 4), Math.ceil(good / 4)] : [ta, good];
    const p: Record<string, number> = { invocationBegin: t0, invocationEnd: t1, elementBegin: ta, elementEnd: good };
    r.bases.forEach((w, k) => (p[`wordOffset${k + 1}`] = w));
    out.push({ t0, t1, buffers: r.buffers, params: p });
    ta = good;
  }
  return out;
}
