// One GPUDevice shared by webgpu-norm and another engine, buffers passed both ways without a
// read-back, in a real browser (e2e/run.mjs loads ?engine=ort and ?engine=tfjs):
//
// ort:  MatMul session (output kept on the GPU) -> wrap -> our layerNorm -> Tensor.fromGpuBuffer
//       -> second MatMul session; the result against the CPU reference of the whole chain.
// tfjs: a TF.js tensor's buffer (dataToGPU) wrapped as our input; our output as a zero-copy TF.js
//       tensor; one training step where layer norm is a tf.customGrad op running our forward and
//       backward kernels, its gradients and update against TF.js's own layer norm (tf.moments).
//
// Writes window.__result = { ok, engine, version, checks: [{ name, err, tol, ok }], error?, ms }.
// ORT-web's browser bundle is served byte for byte from node_modules by e2e/run.mjs; TF.js is
// imported by package name (e2e/interop-tfjs.js; Vite pre-bundles it, as a user's bundler would).
import { createNorms, relativeL2 } from '/dist/index.js';
import { buildModel } from '/bench/peers/onnx.mjs';
import { mulberry32, TOLERANCE } from '/test/catalog.js';

const ORT_DIR = '/node_modules/onnxruntime-web/dist/';

const log = (s) => (document.getElementById('log').textContent += `${s}\n`);

const rng = mulberry32(1313);
const rand = (n, mean = 0, scale = 1) => Float32Array.from({ length: n }, () => mean + scale * (2 * rng() - 1));

/** [m, k] x [k, n] in float64. */
function matmul(a, b, m, k, n) {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
    out[i * n + j] = s;
  }
  return out;
}

/** One GPUDevice for both libraries. */
async function sharedDevice() {
  if (!navigator.gpu) throw new Error('navigator.gpu is missing');
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  return adapter.requestDevice({ label: 'shared' }); // WebGPU's default limits are enough for all three
}

const checks = [];
/** The usages of the buffers each engine hands over (reported in the e2e line). */
const usages = {};
const usageNames = (u) => Object.entries(GPUBufferUsage).filter(([, v]) => u & v).map(([k]) => k).join('|');
function check(name, got, ref, tol = TOLERANCE.float32) {
  const err = relativeL2(got, ref);
  checks.push({ name, err, tol, ok: err <= tol && got.length === ref.length });
  log(`${err <= tol ? 'ok  ' : 'FAIL'} ${name}: rel. L2 ${err.toExponential(2)}`);
  if (!(err <= tol)) checks[checks.length - 1].sample = { got: Array.from(got.slice(0, 6)), ref: Array.from(ref.slice(0, 6)), n: [got.length, ref.length] };
}

// ---- ONNX Runtime Web ----
async function runOrt(device, norms, cpu) {
  const ort = await import(/* @vite-ignore */ `${ORT_DIR}ort.webgpu.min.mjs`);
  ort.env.wasm.wasmPaths = ORT_DIR;
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  const [B, I, H, O] = [4, 8, 16, 5];
  const x = rand(B * I), w1 = rand(I * H, 0, 0.5), w2 = rand(H * O, 0, 0.5);
  const gamma = rand(H, 1, 0.3), beta = rand(H, 0, 0.3);
  const f32 = (name, dims) => ({ name, dims, dtype: 'float32' });
  const matmulModel = (a, w, out, [m, k, n], wdata) =>
    buildModel({ nodes: [{ op: 'MatMul', inputs: [a, 'W'], outputs: [out] }], inputs: [f32(a, [m, k])], outputs: [f32(out, [m, n])], initializers: [{ ...f32('W', [k, n]), data: wdata }] });
  const ep = [{ name: 'webgpu', device }];
  // The first session leaves its output on the GPU; the second reads its input from our buffer.
  const s1 = await ort.InferenceSession.create(matmulModel('X', 'W1', 'H', [B, I, H], w1), { executionProviders: ep, preferredOutputLocation: 'gpu-buffer' });
  const s2 = await ort.InferenceSession.create(matmulModel('Y', 'W2', 'Z', [B, H, O], w2), { executionProviders: ep });

  const { H: h } = await s1.run({ X: new ort.Tensor('float32', x, [B, I]) });
  if (h.location !== 'gpu-buffer') throw new Error(`session 1 output location ${h.location}`);
  usages.ort = usageNames(h.gpuBuffer.usage);
  const hT = norms.wrap(h.gpuBuffer, [B, H]); // ORT's buffer: STORAGE | COPY_SRC | COPY_DST
  const weight = norms.tensor(gamma, [H]);
  const bias = norms.tensor(beta, [H]);
  const ln = norms.layerNorm(hT, { normalizedShape: [H], weight, bias });
  // Our pass is submitted: ORT may reuse its buffer now (its later work is queued after ours).
  h.dispose();
  const y = ort.Tensor.fromGpuBuffer(ln.y.buffer, { dataType: 'float32', dims: [B, H] });
  const { Z: z } = await s2.run({ Y: y });
  const got = z.data; // the only read-back: the final result
  // ORT has run the work that reads ln.y: our buffers may go back to our pool.
  for (const t of [ln.y, ln.mean, ln.rstd, weight, bias]) t.destroy();

  const hRef = Float32Array.from(matmul(x, w1, B, I, H));
  const lnRef = cpu.layerNorm(cpu.tensor(hRef, [B, H]), { normalizedShape: [H], weight: cpu.tensor(gamma, [H]), bias: cpu.tensor(beta, [H]) });
  const zRef = matmul(await cpu.read(lnRef.y), w2, B, H, O);
  check('MatMul (gpu-buffer) -> layerNorm -> Tensor.fromGpuBuffer -> MatMul', got, zRef, TOLERANCE.float32);
  await s1.release();
  await s2.release();
  return ort.env.versions?.web ?? '?';
}

async function main() {
  const t0 = performance.now();
  const engine = new URLSearchParams(location.search).get('engine');
  const res = { ok: false, engine, version: null, checks, usages, ms: 0 };
  try {
    const device = await sharedDevice();
    const norms = await createNorms({ device, backend: 'webgpu' });
    const cpu = await createNorms({ backend: 'cpu' });
    const errors = [];
    device.addEventListener('uncapturederror', (e) => errors.push(e.error.message));
    if (engine === 'ort') res.version = await runOrt(device, norms, cpu);
    else if (engine === 'tfjs') res.version = await (await import('./interop-tfjs.js')).runTfjs(device, norms, cpu, { rand, matmul, check, checks, usages, usageNames });
    else throw new Error(`?engine=ort|tfjs, got ${engine}`);
    if (errors.length) throw new Error(`uncaptured WebGPU errors: ${errors.join(' | ')}`);
    norms.destroy(); // leaves the shared device alone
    res.ok = checks.length > 0 && checks.every((c) => c.ok);
  } catch (e) {
    res.error = `${e?.name}: ${e?.message}`;
    log(res.error);
  }
  res.ms = Math.round(performance.now() - t0);
  window.__result = res;
}
main();
