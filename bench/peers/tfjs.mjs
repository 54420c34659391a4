// Peer: TensorFlow.js with its WebGPU backend, registered on the benchmark's own GPUDevice.
// TF.js has tf.batchNorm (channels-last, running statistics) and tf.moments; layer, RMS, group
// and instance norm are written the way a TF.js user writes them (moments, rsqrt, mul, add).
// Inputs are our tensors' GPUBuffers (zero-copy) except the channels-last batch norm input,
// uploaded once in NHWC order. TF.js has no float16 tensors.
import * as tf from '@tensorflow/tfjs-core';
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

const EPS_LN = 1e-5;
const EPS_RMS = 1.1920928955078125e-7;

function nchwToNhwc(a, [N, C, H, W]) {
  const out = new Float32Array(a.length);
  const S = H * W;
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) out[(n * S + s) * C + c] = a[(n * C + c) * S + s];
  return out;
}

function nhwcToNchw(a, [N, C, H, W]) {
  const out = new Float32Array(a.length);
  const S = H * W;
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) out[(n * C + c) * S + s] = a[(n * S + s) * C + c];
  return out;
}

export async function createTfjsPeer({ device }) {
  // TF.js registers its kernels under the backend name 'webgpu': replace the factory of that name
  // (which would request its own adapter and device) by one that wraps the shared device.
  const name = 'webgpu';
  tf.removeBackend(name);
  tf.registerBackend(name, () => new WebGPUBackend(device, device.adapterInfo), 10);
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error('tf.setBackend failed for the WebGPU backend on the shared device');
  await tf.ready();
  const backend = tf.backend();
  // TF.js records into an open compute pass and submits every few dispatches; close and submit
  // the tail the way its own readback path does.
  const flush = () => {
    backend.ensureCommandEncoderReady();
    backend.endComputePassEncoder();
    backend.submitQueue();
  };
  const fromOurs = (t, shape) => tf.tensor({ buffer: t.buffer, zeroCopy: true }, shape, 'float32');
  return {
    name: 'tfjs',
    label: 'TensorFlow.js WebGPU',
    version: tf.version_core,
    unsupported(c) {
      if (c.dtype === 'float16') return 'TF.js has no float16 tensors';
      if (c.dir !== 'fwd') return 'TF.js has no backward for this op outside tf.grad (not compared)';
      if (c.op === 'batchNorm' && c.opts.training) return 'training batch norm is not a TF.js op (compared in eval mode)';
      if (c.op === 'weightNorm') return 'TF.js has no weight norm op';
      return null;
    },
    async prepare(c, { host, tensors }) {
      const keep = [];
      const own = (t) => (keep.push(t), t);
      let fn;
      let toNchw = null;
      let what;
      if (c.op === 'layerNorm' || c.op === 'rmsNorm') {
        const D = c.shape[c.shape.length - 1];
        const x = own(fromOurs(tensors.x, c.shape));
        const w = own(tf.tensor1d(host.weight));
        if (c.op === 'rmsNorm') {
          what = 'x * rsqrt(mean(x², -1) + eps) * w';
          fn = () => [tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), EPS_RMS))), w))];
        } else {
          const b = own(tf.tensor1d(host.bias));
          const r = c.opts.residual ? own(fromOurs(tensors.residual, c.shape)) : null;
          what = `${r ? 's = x + r; ' : ''}tf.moments(-1) -> (x - mean) * rsqrt(var + eps) * w + b${r ? ' (returns y and s)' : ''}`;
          fn = () =>
            tf.tidy(() => {
              const s = r ? tf.add(x, r) : x;
              const { mean, variance } = tf.moments(s, -1, true);
              const y = tf.add(tf.mul(tf.mul(tf.sub(s, mean), tf.rsqrt(tf.add(variance, EPS_LN))), w), b);
              return r ? [y, s] : [y];
            });
        }
        void D;
      } else if (c.op === 'groupNorm' || c.op === 'instanceNorm') {
        const [N, C] = c.shape;
        const G = c.op === 'groupNorm' ? c.opts.numGroups : C;
        const x = own(fromOurs(tensors.x, c.shape));
        const chan = [1, C, ...c.shape.slice(2).map(() => 1)];
        const w = own(tf.tensor(host.weight, chan));
        const b = own(tf.tensor(host.bias, chan));
        what = 'reshape [N, G, -1] -> tf.moments(-1) -> normalize -> reshape -> * w + b';
        fn = () =>
          tf.tidy(() => {
            const xg = tf.reshape(x, [N, G, -1]);
            const { mean, variance } = tf.moments(xg, -1, true);
            const n = tf.reshape(tf.mul(tf.sub(xg, mean), tf.rsqrt(tf.add(variance, EPS_LN))), c.shape);
            return [tf.add(tf.mul(n, w), b)];
          });
      } else if (c.op === 'batchNorm') {
        const [N, C, H, W] = c.shape;
        if (c.shape.length !== 4) return { reason: 'the channels-last comparison is written for 4-D inputs' };
        const x = own(tf.tensor(nchwToNhwc(host.x, c.shape), [N, H, W, C]));
        const m = own(tf.tensor1d(host.runningMean));
        const v = own(tf.tensor1d(host.runningVar));
        const w = own(tf.tensor1d(host.weight));
        const b = own(tf.tensor1d(host.bias));
        what = 'tf.batchNorm on NHWC (same element count), running statistics';
        fn = () => [tf.batchNorm(x, m, v, b, w, EPS_LN)];
        toNchw = (a) => nhwcToNchw(a, c.shape);
      } else {
        return { reason: `no TF.js formulation for ${c.op}` };
      }
      return {
        what,
        async output() {
          const outs = fn();
          try {
            const a = await outs[0].data();
            return toNchw ? toNchw(a) : Float32Array.from(a);
          } finally {
            for (const o of outs) o.dispose();
          }
        },
        run() {
          const outs = fn();
          for (const o of outs) o.dispose();
        },
        flush,
        destroy() {
          flush();
          for (const t of keep) t.dispose();
        },
      };
    },
  };
}
