// CPU peers of the wasm backend (bench/wasm.mjs), timed from host data in to host data out:
//   ort-wasm  ONNX Runtime Web's wasm execution provider: the one-op models of bench/peers/ort.mjs,
//             fed a host Float32Array, the output read back (.data); 1 thread (and 2 where asked)
//   tfjs-cpu  TensorFlow.js's cpu backend: moments-based layer/instance/group norm, tf.batchNorm,
//             tf.tensor(data) in, dataSync() out
//   js        a plain float32 JavaScript loop (two-pass statistics), forward only
// Each is checked against the float64 reference like our rows before it is timed. Float16 cases
// are ours only (none of these takes half data from a Float32Array).
import { modelFor } from './ort.mjs';

const EPS = 1e-5;
const EPS_RMS = 1.1920928955078125e-7;

/** ONNX Runtime Web, wasm EP. `ort`: the imported module; `threads`: ort.env.wasm.numThreads. */
export function createOrtWasmPeer(ort, threads = 1) {
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'error';
  return {
    name: threads === 1 ? 'ort' : `ort${threads}t`,
    label: `ORT-web wasm ${threads}t`,
    version: ort.env.versions?.web ?? '?',
    async prepare(c, host) {
      if (c.dtype !== 'float32') return { reason: 'float16 data: ours only' };
      if (c.opts?.channelsLast) return { reason: 'ONNX normalization ops are NCHW' };
      const m = modelFor(c, host);
      if (m.reason) return { reason: m.reason };
      const session = await ort.InferenceSession.create(m.model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      const run = async () => {
        const feeds = {};
        for (const [name, ours, dims] of m.feeds) feeds[name] = new ort.Tensor('float32', host[ours], dims);
        const r = await session.run(feeds);
        const out = r[m.outputs[0]].data;
        for (const k of m.outputs) r[k]?.dispose?.();
        return out;
      };
      return { what: m.what, run, destroy: () => session.release() };
    },
  };
}

/** TensorFlow.js on its cpu backend. `tf`: @tensorflow/tfjs-core with the cpu backend registered. */
export function createTfjsCpuPeer(tf) {
  return {
    name: 'tfjs',
    label: 'TF.js cpu',
    version: tf.version_core ?? '?',
    async prepare(c, host) {
      if (c.dtype !== 'float32') return { reason: 'float16 data: ours only' };
      if (c.dir !== 'fwd') return { reason: 'forward only here' };
      if (c.opts?.channelsLast || c.opts?.residual) return { reason: 'NCHW, no residual form here' };
      await tf.setBackend('cpu');
      const s = c.shape;
      const D = s[s.length - 1];
      const chan = (v) => tf.tensor(v, [s[1], ...s.slice(2).map(() => 1)]);
      let f;
      if (c.op === 'layerNorm' || c.op === 'rmsNorm') {
        const w = tf.tensor(host.weight, [D]);
        const b = c.op === 'layerNorm' ? tf.tensor(host.bias, [D]) : null;
        f = (x) => {
          if (c.op === 'rmsNorm') return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), EPS_RMS))), w);
          const { mean, variance } = tf.moments(x, -1, true);
          return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, EPS))), w), b);
        };
      } else if (c.op === 'groupNorm' || c.op === 'instanceNorm') {
        const G = c.op === 'groupNorm' ? c.opts.numGroups : s[1];
        const w = chan(host.weight), b = chan(host.bias);
        f = (x) => {
          const g = tf.reshape(x, [s[0], G, -1]);
          const { mean, variance } = tf.moments(g, 2, true);
          const n = tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, EPS))), s);
          return tf.add(tf.mul(n, w), b);
        };
      } else if (c.op === 'batchNorm' && !c.opts.training) {
        const m = chan(host.runningMean), v = chan(host.runningVar), w = chan(host.weight), b = chan(host.bias);
        // tf.batchNorm's cpu kernel broadcasts mean/variance over the last axis (NHWC): NCHW by broadcasting ops.
        const a = tf.mul(tf.rsqrt(tf.add(v, EPS)), w);
        f = (x) => tf.add(tf.mul(tf.sub(x, m), a), b);
      } else {
        return { reason: c.op === 'batchNorm' ? 'tf.batchNorm is inference only (batch statistics: moments, not timed here)' : `no TF.js op for ${c.op}` };
      }
      const run = async () => {
        const out = tf.tidy(() => f(tf.tensor(host.x, s)));
        const d = out.dataSync();
        out.dispose();
        return d;
      };
      return { what: c.op === 'batchNorm' ? '(x − mean)·rsqrt(var + eps)·w + b, broadcast over [C, 1, 1]' : 'tf.moments + elementwise', run, destroy: () => {} };
    },
  };
}

/** Plain float32 JavaScript loops (two-pass statistics per group), forward. */
export function createJsLoopPeer() {
  return {
    name: 'js',
    label: 'JS loop',
    version: '',
    async prepare(c, host) {
      if (c.dtype !== 'float32') return { reason: 'float16 data: ours only' };
      if (c.dir !== 'fwd') return { reason: 'forward only' };
      if (c.opts?.channelsLast || c.opts?.residual) return { reason: 'NCHW, no residual form here' };
      const s = c.shape;
      const n = s.reduce((a, b) => a * b, 1);
      if (c.op === 'layerNorm' || c.op === 'rmsNorm') {
        const K = s[s.length - 1], R = n / K, rms = c.op === 'rmsNorm';
        return { what: 'two-pass rows', run: async () => rowsLoop(host.x, R, K, host.weight, rms ? null : host.bias, rms) };
      }
      if (c.op === 'groupNorm' || c.op === 'instanceNorm') {
        const C = s[1], G = c.op === 'groupNorm' ? c.opts.numGroups : C, S = n / (s[0] * C);
        return { what: 'two-pass groups', run: async () => groupsLoop(host.x, s[0], C, G, S, host.weight, host.bias) };
      }
      if (c.op === 'batchNorm') {
        const C = s[1], S = n / (s[0] * C);
        return { what: c.opts.training ? 'two-pass channels' : 'one pass', run: async () => batchLoop(host, s[0], C, S, c.opts.training) };
      }
      return { reason: `no loop for ${c.op}` };
    },
  };
}

function rowsLoop(x, R, K, w, b, rms) {
  const y = new Float32Array(x.length);
  for (let r = 0; r < R; r++) {
    const o = r * K;
    let mean = 0;
    if (!rms) {
      let s = 0;
      for (let i = 0; i < K; i++) s += x[o + i];
      mean = Math.fround(s / K);
    }
    let q = 0;
    for (let i = 0; i < K; i++) {
      const d = x[o + i] - mean;
      q += d * d;
    }
    const rstd = 1 / Math.sqrt(q / K + (rms ? EPS_RMS : EPS));
    for (let i = 0; i < K; i++) y[o + i] = (x[o + i] - mean) * rstd * w[i] + (b ? b[i] : 0);
  }
  return y;
}

function groupsLoop(x, N, C, G, S, w, b) {
  const y = new Float32Array(x.length);
  const Cg = C / G, K = Cg * S;
  for (let g = 0; g < N * G; g++) {
    const o = g * K;
    let s = 0;
    for (let i = 0; i < K; i++) s += x[o + i];
    const mean = s / K;
    let q = 0;
    for (let i = 0; i < K; i++) {
      const d = x[o + i] - mean;
      q += d * d;
    }
    const rstd = 1 / Math.sqrt(q / K + EPS);
    for (let j = 0; j < Cg; j++) {
      const c = (g % G) * Cg + j, a = rstd * w[c], p = o + j * S;
      for (let i = 0; i < S; i++) y[p + i] = (x[p + i] - mean) * a + b[c];
    }
  }
  return y;
}

function batchLoop(host, N, C, S, training) {
  const x = host.x, y = new Float32Array(x.length);
  for (let c = 0; c < C; c++) {
    let mean = host.runningMean?.[c] ?? 0, rstd;
    if (training) {
      let s = 0;
      for (let n = 0; n < N; n++) for (let i = 0, o = (n * C + c) * S; i < S; i++) s += x[o + i];
      mean = s / (N * S);
      let q = 0;
      for (let n = 0; n < N; n++) {
        for (let i = 0, o = (n * C + c) * S; i < S; i++) {
          const d = x[o + i] - mean;
          q += d * d;
        }
      }
      rstd = 1 / Math.sqrt(q / (N * S) + EPS);
    } else {
      rstd = 1 / Math.sqrt(host.runningVar[c] + EPS);
    }
    const a = rstd * (host.weight?.[c] ?? 1), bb = host.bias?.[c] ?? 0;
    for (let n = 0; n < N; n++) for (let i = 0, o = (n * C + c) * S; i < S; i++) y[o + i] = (x[o + i] - mean) * a + bb;
  }
  return y;
}
