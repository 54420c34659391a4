/**
 * Encoding a settled plan (settle.ts): one pipeline per step from its entry point, flags
 * and bindings, the dispatches (several per windowed step), one submission; temporaries are
 * released after it and the outputs get its error promise. Nothing here decides anything.
 */
import type { Dispatch, GpuContext, KernelProfile } from '../device/context.ts';
import type { BindingDecl } from '../device/wgsl.ts';
import { entryPoint, kernel, params, WG } from './source.ts';
import { kernelProfile } from './traffic.ts';
import type { Plan } from './plan.ts';

export function encode(ctx: GpuContext, plan: Plan): void {
  const dispatches: Dispatch[] = [];
  const kernels: KernelProfile[] | undefined = ctx.profiler ? [] : undefined;
  for (const s of plan.steps) {
    const family = entryPoint(s.entry).family;
    const k = kernel(
      ctx,
      s.entry,
      s.flags,
      s.binds.map((b): BindingDecl => ({ name: b.name, access: b.rw ? 'read_write' : 'read', dtype: b.dtype })),
      { workgroupSize: s.wg, enables: s.enables },
    );
    if (!s.windows) {
      dispatches.push({ kernel: k, buffers: s.binds.map((b) => b.t), params: params(family, s.p), workgroups: s.workgroups });
      if (kernels && s.workgroups > 0) kernels.push(kernelProfile(s, k.label, s.workgroups));
      continue;
    }
    for (const w of s.windows) {
      const wg = Math.ceil((w.t1 - w.t0) / WG);
      dispatches.push({ kernel: k, buffers: w.buffers, params: params(family, { ...s.p, ...w.params }), workgroups: wg });
      if (kernels && wg > 0) kernels.push(kernelProfile(s, k.label, wg, w.params.elementBegin!, w.params.elementEnd!));
    }
  }
  let done: Promise<void>;
  try {
    done = ctx.submit(plan.op, dispatches, kernels);
  } finally {
    for (const t of plan.temps) ctx.releaseBuffer(t);
  }
  done.catch(() => {});
  for (const o of plan.outputs) if (o) o._pending = done;
}
