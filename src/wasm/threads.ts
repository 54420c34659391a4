/**
 * Threads of the WebAssembly backend: workers (Node's worker_threads, or Web Workers where the
 * page is cross-origin isolated) that instantiate the same shared-memory module on the same
 * memory and run ranges of a kernel's tasks. A job is posted through a control block of Int32
 * words in that memory (CONTROL_BASE): [0] job number, [1] workers done, [2] kernel index
 * (−1: exit), [3] parameter pointer, [8 + 2w, 9 + 2w] worker w's task range. Workers sleep in
 * Atomics.wait; the calling thread runs the first range itself and then waits for the others
 * (Atomics.wait where it may block, else a spin on Atomics.load: a browser's main thread).
 *
 * Tasks are split into equal contiguous ranges; each task computes the same bits wherever it runs
 * (reductions never cross tasks except in the host's fixed-order merges), so the result does not
 * depend on the number of threads.
 */

/** The worker's whole program, as source (runs in Node workers and in Web Workers). */
const WORKER_SOURCE = `
const start = (module, memory, id, base, names) => {
  const ex = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const fns = names.map((n) => ex[n]);
  const ctrl = new Int32Array(memory.buffer, base, 64);
  let seen = Atomics.load(ctrl, 0);
  return () => {
    for (;;) {
      Atomics.wait(ctrl, 0, seen);
      const now = Atomics.load(ctrl, 0);
      if (now === seen) continue;
      seen = now;
      const k = Atomics.load(ctrl, 2);
      if (k < 0) return;
      const b = Atomics.load(ctrl, 8 + 2 * id), e = Atomics.load(ctrl, 9 + 2 * id);
      if (b < e) fns[k](Atomics.load(ctrl, 3), b, e);
      Atomics.add(ctrl, 1, 1);
      Atomics.notify(ctrl, 1);
    }
  };
};
if (typeof self === 'undefined' || typeof self.postMessage !== 'function') {
  const wt = process.getBuiltinModule ? process.getBuiltinModule('worker_threads') : require('worker_threads');
  const d = wt.workerData;
  const loop = start(d.module, d.memory, d.id, d.base, d.names);
  wt.parentPort.postMessage('ready');
  loop();
} else {
  self.onmessage = (ev) => {
    const d = ev.data;
    const loop = start(d.module, d.memory, d.id, d.base, d.names);
    self.postMessage('ready');
    loop();
  };
}
`;

interface NodeProcess {
  versions?: { node?: string };
  getBuiltinModule?: (name: string) => unknown;
}
const proc = (globalThis as { process?: NodeProcess }).process;
const isNode = !!proc?.versions?.node;

interface WorkerLike {
  terminate(): unknown;
}
type NodeWorkerCtor = new (code: string, o: { eval: true; workerData: unknown }) => WorkerLike & { on(ev: string, f: (m: unknown) => void): void; unref(): void };

function nodeWorkerCtor(): NodeWorkerCtor | null {
  const wt = proc?.getBuiltinModule?.('node:worker_threads') as { Worker?: NodeWorkerCtor } | undefined;
  return wt?.Worker ?? null;
}

/** Whether workers on a shared memory can be had here: Node with worker_threads, or a cross-origin isolated page/worker. */
export function threadsAvailable(): boolean {
  if (typeof SharedArrayBuffer === 'undefined' || typeof Atomics === 'undefined') return false;
  if (isNode) return !!nodeWorkerCtor();
  const g = globalThis as { crossOriginIsolated?: boolean; Worker?: unknown; Blob?: unknown; URL?: { createObjectURL?: unknown } };
  return g.crossOriginIsolated === true && typeof g.Worker === 'function' && typeof g.Blob === 'function' && typeof g.URL?.createObjectURL === 'function';
}

/** Whether this thread may block in Atomics.wait (not a browser's main thread). */
function canBlock(): boolean {
  if (isNode) return true;
  return typeof (globalThis as { document?: unknown }).document === 'undefined';
}

export class ThreadPool {
  readonly started: Promise<void>;
  ready = false;
  private readonly workers: WorkerLike[] = [];
  private readonly ctrl: Int32Array;
  private readonly block = canBlock();

  constructor(module: WebAssembly.Module, private readonly memory: WebAssembly.Memory, readonly size: number, base: number, names: readonly string[]) {
    this.ctrl = new Int32Array(memory.buffer, base, 64);
    this.ctrl.fill(0);
    const ready: Promise<void>[] = [];
    for (let id = 0; id < size; id++) {
      const data = { module, memory, id, base, names: [...names] };
      if (isNode) {
        const W = nodeWorkerCtor()!;
        const w = new W(WORKER_SOURCE, { eval: true, workerData: data });
        w.unref();
        ready.push(new Promise((res, rej) => (w.on('message', () => res()), w.on('error', rej))));
        this.workers.push(w);
      } else {
        const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
        const w = new Worker(url);
        ready.push(new Promise((res, rej) => ((w.onmessage = () => res()), (w.onerror = (e) => rej(e)))));
        w.postMessage(data);
        this.workers.push(w);
      }
    }
    this.started = Promise.all(ready).then(() => {
      this.ready = true;
    });
    this.started.catch(() => {});
  }

  /** Runs tasks [0, tasks) of kernel k split over the workers and this thread; `self` runs a range here. */
  run(k: number, params: number, tasks: number, self: (b: number, e: number) => void): void {
    const c = this.ctrl;
    const parts = Math.min(this.size + 1, tasks);
    const per = Math.ceil(tasks / parts);
    for (let w = 0; w < this.size; w++) {
      const b = Math.min(tasks, (w + 1) * per);
      c[8 + 2 * w] = b;
      c[9 + 2 * w] = Math.min(tasks, b + per);
    }
    Atomics.store(c, 1, 0);
    Atomics.store(c, 2, k);
    Atomics.store(c, 3, params);
    Atomics.add(c, 0, 1);
    Atomics.notify(c, 0);
    self(0, Math.min(tasks, per));
    for (;;) {
      const done = Atomics.load(c, 1);
      if (done >= this.size) break;
      if (this.block) Atomics.wait(c, 1, done, 1000);
    }
  }

  terminate(): void {
    if (this.ready) {
      Atomics.store(this.ctrl, 2, -1);
      Atomics.add(this.ctrl, 0, 1);
      Atomics.notify(this.ctrl, 0);
    }
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
    this.ready = false;
  }
}

/** threads: 'auto': this machine's cores (Node: os.availableParallelism; browsers: navigator.hardwareConcurrency), at most 4. */
export function defaultThreads(): number {
  let cores = 1;
  if (isNode) {
    const os = proc?.getBuiltinModule?.('node:os') as { availableParallelism?: () => number; cpus?: () => unknown[] } | undefined;
    cores = os?.availableParallelism?.() ?? os?.cpus?.().length ?? 1;
  } else {
    cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
  }
  return Math.max(1, Math.min(4, cores));
}
