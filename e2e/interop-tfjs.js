// The TensorFlow.js half of e2e/interop.js (?engine=tfjs): imported by package name, as an
// application would (Vite pre-bundles the packages; e2e/run.mjs lists them in optimizeDeps).
// tfjs-core registers no gradients by itself: register_all_gradients is the documented side
// effect import for tf.grad / variableGrads without the @tensorflow/tfjs union package.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

export async function runTfjs(device, norms, cpu, { rand, matmul, check, checks, usages, usageNames }) {
  // TF.js's 'webgpu' factory would request a device of its own: register one on the shared device.
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new WebGPUBackend(device, device.adapterInfo), 10);
  if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") failed on the shared device');
  // Keep small ops on the GPU (dataToGPU needs GPU-resident tensors).
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  const EPS = 1e-5;
  const [R, I, K] = [8, 12, 32];
  const xh = rand(R * I), wh = rand(I * K, 0.2, 0.6), gh = rand(K, 1, 0.3), bh = rand(K, 0, 0.3), th = rand(R * K);
  const gpuTensor = (host, shape) => tf.tidy(() => tf.mul(tf.tensor(host, shape), 1)); // uploaded by a GPU op
  const fromOurs = (t) => tf.tensor({ buffer: t.buffer, zeroCopy: true }, [...t.shape], 'float32');

  // 1. A TF.js tensor's buffer as our input, our output as a zero-copy TF.js tensor.
  const X = gpuTensor(xh, [R, I]);
  const Wt = gpuTensor(wh, [I, K]);
  const a = tf.matMul(X, Wt);
  const { buffer, tensorRef } = a.dataToGPU(); // a GPU copy TF.js owns until tensorRef.dispose()
  usages.tfjs = usageNames(buffer.usage);
  const weight = norms.tensor(gh, [K]);
  const bias = norms.tensor(bh, [K]);
  const ln = norms.layerNorm(norms.wrap(buffer, [R, K]), { normalizedShape: [K], weight, bias });
  tensorRef.dispose(); // our pass is submitted: TF.js may reuse the buffer
  const y = fromOurs(ln.y);
  const z = tf.relu(y);
  const got = await z.data(); // submits TF.js's work: ln.y may be destroyed after this
  tf.dispose([y, z, a]);
  const aRef = Float32Array.from(matmul(xh, wh, R, I, K));
  const lnRef = cpu.layerNorm(cpu.tensor(aRef, [R, K]), { normalizedShape: [K], weight: cpu.tensor(gh, [K]), bias: cpu.tensor(bh, [K]) });
  check('tf.matMul -> dataToGPU -> layerNorm -> tf.tensor({ buffer, zeroCopy }) -> tf.relu', got, (await cpu.read(lnRef.y)).map((v) => Math.max(v, 0)));
  for (const t of [ln.y, ln.mean, ln.rstd]) t.destroy();

  // 2. zeroCopy is a view: our in-place running-mean update is what TF.js reads.
  const C = 6;
  const xb = rand(4 * C * 5, 0.5, 2), rm = rand(C);
  const rmT = norms.tensor(rm, [C]);
  const rvT = norms.tensor(new Float32Array(C).fill(1), [C]);
  const rmTf = fromOurs(rmT);
  norms.batchNorm(norms.tensor(xb, [4, C, 5]), { training: true, runningMean: rmT, runningVar: rvT });
  const crm = cpu.tensor(rm, [C]);
  cpu.batchNorm(cpu.tensor(xb, [4, C, 5]), { training: true, runningMean: crm, runningVar: cpu.tensor(new Float32Array(C).fill(1), [C]) });
  // data() of a zero-copy tensor returns the whole buffer (ours are padded to 16 bytes): C of them.
  check('zero-copy view of our running mean after batchNorm updated it in place', (await rmTf.data()).slice(0, C), await cpu.read(crm));
  rmTf.dispose();

  // 3. One training step: layer norm as a tf.customGrad op on our kernels vs tf.moments.
  // As in the README ("Use with ... TensorFlow.js"), word for word.
  const fromTf = (t) => { const g = t.dataToGPU(); return { t: norms.wrap(g.buffer, t.shape), done: () => g.tensorRef.dispose() }; };
  const toTf = (t) => tf.tensor({ buffer: t.buffer, zeroCopy: true }, [...t.shape], 'float32');
  const ours = [];                                              // destroy these after the training step
  const layerNorm = tf.customGrad((h, g, b, save) => {
    save([h, g, b]);
    const [H, G, B] = [fromTf(h), fromTf(g), fromTf(b)];
    const f = norms.layerNorm(H.t, { normalizedShape: [h.shape.at(-1)], weight: G.t, bias: B.t });
    [H, G, B].forEach((w) => w.done());
    ours.push(f.y, f.mean, f.rstd);
    return {
      value: toTf(f.y),
      gradFunc: (dy, [hs, gs, bs]) => {
        const w = [fromTf(dy), fromTf(hs), fromTf(gs), fromTf(bs)];
        const r = norms.layerNormBackward(w[0].t, w[1].t, f.mean, f.rstd, { normalizedShape: [hs.shape.at(-1)], weight: w[2].t, bias: w[3].t });
        w.forEach((x) => x.done());
        ours.push(r.dx, r.dweight, r.dbias);
        return [toTf(r.dx), toTf(r.dweight), toTf(r.dbias)];
      },
    };
  });
  const layerNormTf = (h, g, b) => {
    const { mean, variance } = tf.moments(h, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(h, mean), tf.rsqrt(tf.add(variance, EPS))), g), b);
  };
  const T = gpuTensor(th, [R, K]);
  const model = (ln, tag) => {
    const W = tf.variable(gpuTensor(wh, [I, K]), true, `W_${tag}`);
    const gamma = tf.variable(gpuTensor(gh, [K]), true, `gamma_${tag}`);
    const beta = tf.variable(gpuTensor(bh, [K]), true, `beta_${tag}`);
    const loss = () => tf.mean(tf.square(tf.sub(ln(tf.matMul(X, W), gamma, beta), T)));
    return { vars: { W, gamma, beta }, loss };
  };
  const mo = model(layerNorm, 'ours');
  const mt = model(layerNormTf, 'tf');
  const go = tf.variableGrads(mo.loss, Object.values(mo.vars));
  const gt = tf.variableGrads(mt.loss, Object.values(mt.vars));
  check('training step: loss', await go.value.data(), await gt.value.data());
  for (const k of ['W', 'gamma', 'beta']) check(`training step: d${k} (customGrad on our kernels vs tf.moments)`, await go.grads[`${k}_ours`].data(), await gt.grads[`${k}_tf`].data());
  const sgd = tf.train.sgd(0.5);
  sgd.applyGradients(go.grads);
  sgd.applyGradients(gt.grads);
  for (const k of ['W', 'gamma', 'beta']) check(`training step: ${k} after SGD`, await mo.vars[k].data(), await mt.vars[k].data());
  const after = await tf.tidy(mo.loss).data();
  const before = (await go.value.data())[0];
  checks.push({ name: `training step: loss decreases (${before.toFixed(4)} -> ${after[0].toFixed(4)})`, err: 0, tol: 0, ok: after[0] < before });
  // Every TF.js read above has submitted its work: our buffers may go back to our pool.
  tf.dispose([go.value, gt.value, ...Object.values(go.grads), ...Object.values(gt.grads), X, Wt, T, ...Object.values(mo.vars), ...Object.values(mt.vars)]);
  for (const t of ours) t.destroy();
  for (const t of [weight, bias, rmT, rvT]) t.destroy();
  return tf.version_core;
}

