/**
 * Command-buffer batching: ops issued back to back are recorded into one command encoder and
 * submitted together by flush(), with one pair of error scopes around the submit.
 */
import { grid, isRange, type Dispatch } from './bindings.ts';
import { BufferUsage } from './buffers.ts';
import { newTiming, readTimestamps, resolveTimestamps, type KernelProfile, type Profiler, type Timing } from './profiler.ts';
import type { EncodeSessions } from './sessions.ts';

/** Ops recorded into one command buffer, submitted together by flush(). */
export interface Batch {
  enc: GPUCommandEncoder;
  /** Every buffer the recorded passes bind. */
  used: Set<GPUBuffer>;
  ops: number;
  passes: number;
  /** Evicted uniform buffers the passes may use: destroyed after the submit. */
  evicted: GPUBuffer[];
  /** Buffers released while used (pool full), staging buffers: destroyed after the submit. */
  toDestroy: { destroy(): void }[];
  /** The submit's validation and out-of-memory errors. */
  result: Promise<[GPUError | null, GPUError | null]>;
  settle: (r: Promise<[GPUError | null, GPUError | null]>) => void;
  timing: Timing | null;
}

/** The pending batch of a context, and its submits. */
export class Batcher {
  /** Passes after which a batch is submitted without waiting for the end of the task. */
  static MAX_BATCH_PASSES = 256;
  /** Timestamp queries per batch (profile with timestamp-query): two per dispatch. */
  static MAX_QUERIES = 1024;
  /** The ops recorded since the last submit, or null. */
  private batch: Batch | null = null;
  /** Submits counted (tests, benchmarks). */
  submits = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly owner: { readonly profiler: Profiler | null; flush(): void },
    private readonly sessions: EncodeSessions,
  ) {}

  /**
   * The pending batch, opened if there is none; with `queries` timestamp queries to write, a new
   * one when the pending batch's query set has no room for them.
   */
  open(queries = 0): Batch {
    let b = this.openBatch();
    if (queries && b.timing && b.timing.n + queries > Batcher.MAX_QUERIES && b.timing.n > 0) {
      this.owner.flush();
      b = this.openBatch();
    }
    return b;
  }

  private openBatch(): Batch {
    if (this.batch) return this.batch;
    let settle!: (r: Promise<[GPUError | null, GPUError | null]>) => void;
    const result = new Promise<[GPUError | null, GPUError | null]>((res) => (settle = res));
    const b: Batch = {
      enc: this.device.createCommandEncoder({ label: 'webgpu-norm.batch' }),
      used: new Set(),
      ops: 0,
      passes: 0,
      evicted: [],
      toDestroy: [],
      result,
      settle,
      timing: null,
    };
    this.batch = b;
    // An idle program still runs its work: submitted at the end of the current task.
    queueMicrotask(() => {
      if (this.batch === b) this.owner.flush();
    });
    return b;
  }

  /**
   * Records one op's dispatches into `b`: one compute pass, or with `stamps` (the op's kernel
   * profiles, one per dispatch) one pass per dispatch with its start and end written as GPU
   * timestamps. `bind` makes each dispatch's bind group.
   */
  record(b: Batch, label: string, live: readonly Dispatch[], stamps: KernelProfile[] | undefined, bind: (x: Dispatch) => GPUBindGroup): void {
    const enc = b.enc;
    const run = (x: Dispatch, pass: GPUComputePassEncoder) => {
      pass.setPipeline(x.kernel.pipeline);
      pass.setBindGroup(0, bind(x));
      for (const buf of x.buffers) b.used.add(isRange(buf) ? buf.buffer : buf);
      const [gx, gy] = grid(x.workgroups);
      pass.dispatchWorkgroups(gx, gy);
    };
    if (live.length && stamps && live.length === stamps.length) {
      // One pass per dispatch, its start and end written as GPU timestamps (profile()).
      const t = (b.timing ??= newTiming(this.device, Batcher.MAX_QUERIES));
      live.forEach((x, i) => {
        const q = t.n + 2 * i < Batcher.MAX_QUERIES ? t.n + 2 * i : -1;
        const pass = enc.beginComputePass(q < 0 ? { label } : { label, timestampWrites: { querySet: t.querySet, beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 } });
        run(x, pass);
        pass.end();
        if (q >= 0) t.kernels.push([stamps[i]!, q]);
      });
      t.n = Math.min(Batcher.MAX_QUERIES, t.n + 2 * live.length);
      b.passes += live.length;
    } else if (live.length) {
      const pass = enc.beginComputePass({ label });
      for (const x of live) run(x, pass);
      pass.end();
      b.passes++;
    }
    b.ops++;
  }

  /** Submit the pending batch (one command buffer, one pair of error scopes). */
  flush(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = null;
    const d = this.device;
    let readback: GPUBuffer | null = null;
    if (b.timing && b.timing.kernels.length) readback = resolveTimestamps(d, b.enc, b.timing, b.toDestroy);
    d.pushErrorScope('out-of-memory');
    d.pushErrorScope('validation');
    try {
      d.queue.submit([b.enc.finish()]);
      this.submits++;
    } catch {
      // (a destroyed device: the pops below, and settleLoss, report it)
    }
    const v = d.popErrorScope().catch(() => null);
    const m = d.popErrorScope().catch(() => null);
    b.settle(Promise.all([v, m]));
    if (b.timing) {
      const t = b.timing;
      const profiler = this.owner.profiler;
      if (readback && profiler) {
        profiler.timings.push(readTimestamps(readback, t, v, m));
      } else {
        readback?.destroy();
        b.toDestroy.push(t.querySet);
      }
    }
    for (const e of b.evicted) this.sessions.retire(e);
    for (const x of b.toDestroy) x.destroy();
  }

  /** Destroys a buffer now, or right after the submit of the pending batch when that batch uses it. */
  discard(buf: GPUBuffer): void {
    if (this.batch?.used.has(buf)) this.batch.toDestroy.push(buf);
    else buf.destroy();
  }

  /**
   * queue.writeBuffer in batch order: a write to a buffer the pending batch uses would run before
   * the batch (queue writes precede the later submit), so it is recorded into the batch as a copy
   * from a staging buffer instead. Other buffers are written at once.
   */
  writeBuffer(buf: GPUBuffer, offset: number, data: ArrayBufferView): void {
    const b = this.batch;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (!b || !b.used.has(buf)) {
      this.device.queue.writeBuffer(buf, offset, bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return;
    }
    const size = Math.ceil(bytes.byteLength / 4) * 4;
    if (size === 0) return;
    const staging = this.device.createBuffer({ size, usage: BufferUsage.COPY_SRC, mappedAtCreation: true, label: 'webgpu-norm.upload' });
    new Uint8Array(staging.getMappedRange()).set(bytes);
    staging.unmap();
    b.enc.copyBufferToBuffer(staging, 0, buf, offset, size);
    b.toDestroy.push(staging);
  }
}
