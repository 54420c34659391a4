/**
 * `norms.encode()` sessions: passes recorded into the caller's command encoder, and the probes
 * that tell when the caller has submitted it (until then the buffers those passes use stay out
 * of the pool).
 */
import { grid, isRange, type Dispatch } from './bindings.ts';
import { BufferUsage, MapModeRead } from './buffers.ts';

/**
 * One `norms.encode()` call: the passes it recorded into the caller's command encoder. Until the
 * caller's submit of that encoder is seen (see {@link EncodeSessions.probe}), every buffer the passes
 * use stays out of the pool (a later op would otherwise reuse it, and its queue work would run
 * before the caller's command buffer) and evicted uniform buffers stay alive.
 */
export class EncodeSession {
  /** Storage and uniform buffers the recorded passes use. */
  readonly used = new Set<GPUBuffer>();
  /** Storage buffers the recorded passes write. */
  readonly written = new Set<GPUBuffer>();
  /** Released while pending: back to the pool once the caller's submit is seen. */
  readonly held: GPUBuffer[] = [];
  /** Evicted uniform buffers the passes use: destroyed once the caller's submit is seen. */
  readonly evicted: GPUBuffer[] = [];
  /** 4 bytes set to 1 at creation; the caller's command buffer clears it (the last command recorded). */
  marker: GPUBuffer | null = null;
  submitted = false;
  /** A background probe in flight. */
  polling = false;
  constructor(readonly encoder: GPUCommandEncoder) {}
}

/** The message of every error about work recorded by encode() that has not run. */
export const NOT_SUBMITTED =
  'recorded by norms.encode() into a command encoder that had not been submitted: call device.queue.submit([encoder.finish()]) first ' +
  '(if it was submitted, that submit failed WebGPU validation, e.g. a destroyed buffer: see the error scope around your submit)';

/** What the sessions need of their context. */
export interface SessionHost {
  /** The context was destroyed. */
  destroyed(): boolean;
  /** The device was lost. */
  lost(): boolean;
  /** Releases a buffer a confirmed session held (GpuContext.releaseBuffer). */
  release(buf: GPUBuffer): void;
}

/** The encode() call in progress and the sessions whose command buffer was not seen submitted. */
export class EncodeSessions {
  /** The encode() call in progress, if any. */
  recording: EncodeSession | null = null;
  /** Sessions whose command buffer the caller has not been seen to submit yet. */
  private pending: EncodeSession[] = [];
  private static POLL_MS = [0, 10, 100, 1000];

  constructor(
    private readonly device: GPUDevice,
    private readonly host: SessionHost,
  ) {}

  /**
   * Ends the recording: the last command in the caller's encoder clears the session's marker, so a
   * probe (a copy of the marker in a later command buffer of ours) tells whether the caller's
   * command buffer was submitted before it. Probed in the background (a few times, shortly after),
   * by every read or op that needs the recorded results, and at the next encode().
   */
  end(): void {
    const s = this.recording;
    this.recording = null;
    if (!s || s.used.size === 0 || this.host.destroyed()) return;
    const d = this.device;
    const marker = d.createBuffer({ size: 4, usage: BufferUsage.COPY_SRC | BufferUsage.COPY_DST, mappedAtCreation: true, label: 'webgpu-norm.encode-marker' });
    new Uint32Array(marker.getMappedRange()).fill(1);
    marker.unmap();
    d.pushErrorScope('validation');
    s.encoder.clearBuffer(marker);
    d.popErrorScope().catch(() => {}); // a finished encoder: its ops' own scopes already reported it
    s.marker = marker;
    for (const p of this.pending) this.poll(p);
    this.pending.push(s);
    this.poll(s);
  }

  /**
   * Records one op's dispatches into the session's encoder (one compute pass; nothing submitted),
   * noting the buffers they use and write. `bind` makes each dispatch's bind group.
   */
  record(rec: EncodeSession, label: string, live: readonly Dispatch[], bind: (x: Dispatch) => GPUBindGroup): void {
    if (live.length) {
      const pass = rec.encoder.beginComputePass({ label });
      for (const x of live) {
        pass.setPipeline(x.kernel.pipeline);
        pass.setBindGroup(0, bind(x));
        x.buffers.forEach((b, k) => {
          const buf = isRange(b) ? b.buffer : b;
          rec.used.add(buf);
          if (x.kernel.bindings[k]?.access !== 'read') rec.written.add(buf);
        });
        const [gx, gy] = grid(x.workgroups);
        pass.dispatchWorkgroups(gx, gy);
      }
      pass.end();
    }
  }

  /** The recording or pending session whose passes use `buf`. */
  holder(buf: GPUBuffer): EncodeSession | undefined {
    if (this.recording?.used.has(buf)) return this.recording;
    return this.pending.find((s) => s.used.has(buf));
  }

  /** Destroys an evicted uniform buffer now, or once the session whose passes use it is submitted. */
  retire(buf: GPUBuffer): void {
    const h = this.holder(buf);
    if (h) h.evicted.push(buf);
    else buf.destroy();
  }

  /** Pending sessions that write a buffer these dispatches use, or use one they write. */
  conflicts(live: readonly Dispatch[]): EncodeSession[] {
    if (!this.pending.length) return [];
    return this.pending.filter((s) =>
      live.some((x) =>
        x.buffers.some((b, k) => {
          const buf = isRange(b) ? b.buffer : b;
          return s.written.has(buf) || (x.kernel.bindings[k]?.access !== 'read' && s.used.has(buf));
        }),
      ),
    );
  }

  /** Pending sessions whose passes write `buf`. */
  writers(buf: GPUBuffer): EncodeSession[] {
    return this.pending.filter((s) => s.written.has(buf));
  }

  /**
   * Records into `enc` (a command buffer of ours, submitted right after) a copy of the session's
   * marker; the returned function maps it once submitted: true when the caller's command buffer
   * was submitted before `enc` (it cleared the marker), which also releases what the session held.
   */
  probe(s: EncodeSession, enc: GPUCommandEncoder): () => Promise<boolean> {
    if (s.submitted || !s.marker) return async () => true;
    const staging = this.device.createBuffer({ size: 4, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'webgpu-norm.encode-probe' });
    enc.copyBufferToBuffer(s.marker, 0, staging, 0, 4);
    return async () => {
      try {
        await staging.mapAsync(MapModeRead);
        const ran = new Uint32Array(staging.getMappedRange())[0] === 0;
        if (ran) this.confirm(s);
        return ran;
      } finally {
        staging.destroy();
      }
    };
  }

  /** Background probes, so that a session whose results nobody reads still gives its buffers back. */
  private poll(s: EncodeSession, attempt = 0): void {
    if (s.submitted || s.polling || this.host.destroyed() || attempt >= EncodeSessions.POLL_MS.length) return;
    s.polling = true;
    const timer = setTimeout(() => {
      if (s.submitted || this.host.destroyed() || this.host.lost()) {
        s.polling = false;
        return;
      }
      const enc = this.device.createCommandEncoder({ label: 'webgpu-norm.encode-probe' });
      const check = this.probe(s, enc);
      this.device.queue.submit([enc.finish()]);
      check().then(
        (ran) => {
          s.polling = false;
          if (!ran) this.poll(s, attempt + 1);
        },
        () => (s.polling = false),
      );
    }, EncodeSessions.POLL_MS[attempt]);
    (timer as { unref?: () => void }).unref?.();
  }

  /** The caller's command buffer of `s` was submitted: its buffers may be reused. */
  private confirm(s: EncodeSession): void {
    if (s.submitted) return;
    s.submitted = true;
    this.pending = this.pending.filter((p) => p !== s);
    s.marker?.destroy();
    s.marker = null;
    const held = s.held.splice(0);
    const evicted = s.evicted.splice(0);
    s.used.clear();
    s.written.clear();
    for (const b of held) this.host.release(b); // another pending session may still hold it
    for (const b of evicted) this.retire(b);
  }

  /** At the context's destroy(): passes recorded by encode() and not submitted yet become invalid (the caller's submit fails). */
  destroy(): void {
    for (const s of this.pending) {
      s.marker?.destroy();
      for (const b of [...s.held, ...s.evicted]) b.destroy();
    }
    this.pending = [];
  }
}
