// Peer: ONNX Runtime Web, WebGPU execution provider, on the benchmark's own GPUDevice. Each case
// is a one-op model built in memory (bench/peers/onnx.mjs); inputs are our tensors' GPUBuffers
// (Tensor.fromGpuBuffer, zero-copy) and outputs stay on the GPU (preferredOutputLocation
// 'gpu-buffer'). CPU fallback is disabled, so a node the WebGPU EP cannot take fails the case
// ('—' with the reason) instead of timing the wasm CPU kernel.
import { buildModel, halfBitsToFloat } from './onnx.mjs';

const EPS_LN = 1e-5;
const EPS_RMS = 1.1920928955078125e-7;

/** The model and feeds of a case, or { reason } when ORT has no such op. */
export function modelFor(c, host) {
  const dt = c.dtype;
  const X = { name: 'X', dims: c.shape, dtype: dt };
  const Y = { name: 'Y', dims: c.shape, dtype: dt };
  const init = (name, dims, data, dtype = dt) => ({ name, dims, dtype, data });
  if (c.dir !== 'fwd') return { reason: 'ORT-web is inference only: no backward kernels' };
  const D = c.shape[c.shape.length - 1];
  if (c.op === 'layerNorm' && (c.opts.modulate || c.opts.gate)) {
    // The adaLN-Zero block as an exporter writes it: sum = residual + gate ⊙ x, LayerNormalization
    // without affine (unit scale, zero bias), y = n ⊙ (1 + scale) + shift.
    if (c.opts.modulate !== 'sample' || !c.opts.gate || !c.opts.residual || c.shape.length !== 3) return { reason: 'the ORT graph is written for x [B, T, D] with per-sample scale, shift and gate' };
    const M = [c.shape[0], 1, D];
    const io = (name, dims) => ({ name, dims, dtype: dt });
    return {
      what: 'Mul + Add -> LayerNormalization (opset 17, no affine) -> Add(1) + Mul + Add, one graph',
      model: buildModel({
        nodes: [
          { op: 'Mul', inputs: ['G', 'X'], outputs: ['GX'] },
          { op: 'Add', inputs: ['R', 'GX'], outputs: ['S'] },
          { op: 'LayerNormalization', inputs: ['S', 'ones', 'zeros'], outputs: ['N'], attrs: { axis: { int: -1 }, epsilon: { float: c.opts.eps ?? EPS_LN } } },
          { op: 'Add', inputs: ['SC', 'offset'], outputs: ['SC1'] },
          { op: 'Mul', inputs: ['N', 'SC1'], outputs: ['NS'] },
          { op: 'Add', inputs: ['NS', 'SH'], outputs: ['Y'] },
        ],
        inputs: [X, io('R', c.shape), io('G', M), io('SC', M), io('SH', M)],
        outputs: [Y, io('S', c.shape)],
        initializers: [init('ones', [D], new Array(D).fill(1)), init('zeros', [D], new Array(D).fill(0)), init('offset', [1], [c.opts.scaleOffset ?? 1])],
      }),
      feeds: [
        ['X', 'x', c.shape],
        ['R', 'residual', c.shape],
        ['G', 'gate', M],
        ['SC', 'scale', M],
        ['SH', 'shift', M],
      ],
      outputs: ['Y', 'S'],
    };
  }
  if (c.op === 'layerNorm' && c.opts.residual) {
    // ORT's fused residual layer norm: com.microsoft SkipLayerNormalization, with the sum output.
    const d3 = [1, c.shape[0], D];
    return {
      what: 'com.microsoft SkipLayerNormalization (output + input_skip_bias_sum)',
      model: buildModel({
        nodes: [{ op: 'SkipLayerNormalization', domain: 'com.microsoft', inputs: ['X', 'R', 'W', 'B'], outputs: ['Y', '', '', 'S'], attrs: { epsilon: { float: EPS_LN } } }],
        inputs: [
          { ...X, dims: d3 },
          { name: 'R', dims: d3, dtype: dt },
        ],
        outputs: [
          { ...Y, dims: d3 },
          { name: 'S', dims: d3, dtype: dt },
        ],
        initializers: [init('W', [D], host.weight), init('B', [D], host.bias)],
        opsets: { '': 17, 'com.microsoft': 1 },
      }),
      feeds: [
        ['X', 'x', d3],
        ['R', 'residual', d3],
      ],
      outputs: ['Y', 'S'],
    };
  }
  if (c.op === 'layerNorm') {
    return {
      what: 'LayerNormalization (opset 17)',
      model: buildModel({
        nodes: [{ op: 'LayerNormalization', inputs: ['X', 'W', 'B'], outputs: ['Y'], attrs: { axis: { int: -1 }, epsilon: { float: EPS_LN } } }],
        inputs: [X],
        outputs: [Y],
        initializers: [init('W', [D], host.weight), init('B', [D], host.bias)],
      }),
      feeds: [['X', 'x', c.shape]],
      outputs: ['Y'],
    };
  }
  if (c.op === 'rmsNorm') {
    return {
      what: 'SimplifiedLayerNormalization (ORT contrib op in the ONNX domain)',
      model: buildModel({
        nodes: [{ op: 'SimplifiedLayerNormalization', inputs: ['X', 'W'], outputs: ['Y'], attrs: { axis: { int: -1 }, epsilon: { float: EPS_RMS } } }],
        inputs: [X],
        outputs: [Y],
        initializers: [init('W', [D], host.weight)],
      }),
      feeds: [['X', 'x', c.shape]],
      outputs: ['Y'],
    };
  }
  if (c.op === 'instanceNorm') {
    const C = c.shape[1];
    return {
      what: 'InstanceNormalization (opset 17)',
      model: buildModel({
        nodes: [{ op: 'InstanceNormalization', inputs: ['X', 'W', 'B'], outputs: ['Y'], attrs: { epsilon: { float: EPS_LN } } }],
        inputs: [X],
        outputs: [Y],
        initializers: [init('W', [C], host.weight), init('B', [C], host.bias)],
      }),
      feeds: [['X', 'x', c.shape]],
      outputs: ['Y'],
    };
  }
  if (c.op === 'groupNorm') {
    // What torch.onnx.export emits for nn.GroupNorm: Reshape -> InstanceNormalization (unit
    // scale, zero bias per group) -> Reshape -> Mul -> Add.
    const [N, C] = c.shape;
    const G = c.opts.numGroups;
    const chan = [C, ...c.shape.slice(2).map(() => 1)];
    return {
      what: 'Reshape -> InstanceNormalization -> Reshape -> Mul -> Add (torch.onnx.export of GroupNorm)',
      model: buildModel({
        nodes: [
          { op: 'Reshape', inputs: ['X', 'shape_g'], outputs: ['Xg'] },
          { op: 'InstanceNormalization', inputs: ['Xg', 'ones', 'zeros'], outputs: ['Ng'], attrs: { epsilon: { float: EPS_LN } } },
          { op: 'Reshape', inputs: ['Ng', 'shape_x'], outputs: ['Nx'] },
          { op: 'Mul', inputs: ['Nx', 'W'], outputs: ['Wx'] },
          { op: 'Add', inputs: ['Wx', 'B'], outputs: ['Y'] },
        ],
        inputs: [X],
        outputs: [Y],
        initializers: [
          init('shape_g', [3], [N, G, -1], 'int64'),
          init('shape_x', [c.shape.length], c.shape, 'int64'),
          init('ones', [G], new Array(G).fill(1)),
          init('zeros', [G], new Array(G).fill(0)),
          init('W', chan, host.weight),
          init('B', chan, host.bias),
        ],
      }),
      feeds: [['X', 'x', c.shape]],
      outputs: ['Y'],
    };
  }
  if (c.op === 'batchNorm') {
    if (c.opts.training) return { reason: 'ORT-web BatchNormalization is inference only (training_mode is not supported by the WebGPU EP)' };
    const C = c.shape[1];
    return {
      what: 'BatchNormalization (opset 15, inference)',
      model: buildModel({
        nodes: [{ op: 'BatchNormalization', inputs: ['X', 'W', 'B', 'M', 'V'], outputs: ['Y'], attrs: { epsilon: { float: EPS_LN } } }],
        inputs: [X],
        outputs: [Y],
        initializers: [init('W', [C], host.weight), init('B', [C], host.bias), init('M', [C], host.runningMean, 'float32'), init('V', [C], host.runningVar, 'float32')],
        opsets: { '': 15 },
      }),
      feeds: [['X', 'x', c.shape]],
      outputs: ['Y'],
    };
  }
  return { reason: `no ONNX operator for ${c.op}` };
}

function toFloat32(a) {
  if (a instanceof Float32Array) return a;
  if (a instanceof Uint16Array) return Float32Array.from(a, halfBitsToFloat);
  return Float32Array.from(a); // Float16Array where the browser has it
}

/**
 * Load ORT-web and return the peer, or { name, error } when it cannot start.
 * ortUrl: the served ort.webgpu.min.mjs; wasmPaths: the served folder holding its .wasm/.mjs.
 */
export async function createOrtPeer({ device, ortUrl, wasmPaths }) {
  const ort = await import(/* @vite-ignore */ ortUrl);
  ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'error';
  const hasF16 = device.features.has('shader-f16');
  const version = ort.env.versions?.web ?? ort.env.versions?.common ?? '?';
  return {
    name: 'ort',
    label: 'ONNX Runtime Web',
    version,
    unsupported(c) {
      if (c.dtype === 'float16' && !hasF16) return "the adapter has no 'shader-f16': ORT's WebGPU EP has no float16 kernels without it";
      return null;
    },
    async prepare(c, { host, tensors }) {
      const m = modelFor(c, host);
      if (m.reason) return { reason: m.reason };
      const session = await ort.InferenceSession.create(m.model, {
        executionProviders: [{ name: 'webgpu', device }],
        preferredOutputLocation: 'gpu-buffer',
        graphOptimizationLevel: 'all',
        extra: { session: { disable_cpu_ep_fallback: '1' } },
      });
      const feeds = {};
      for (const [name, ours, dims] of m.feeds) feeds[name] = ort.Tensor.fromGpuBuffer(tensors[ours].buffer, { dataType: c.dtype, dims });
      const once = async () => {
        const r = await session.run(feeds);
        return r;
      };
      return {
        what: m.what,
        awaitEach: true,
        async output() {
          const r = await once();
          try {
            return toFloat32(await r[m.outputs[0]].getData());
          } finally {
            for (const k of m.outputs) r[k]?.dispose();
          }
        },
        async run() {
          const r = await once();
          for (const k of m.outputs) r[k]?.dispose();
        },
        async destroy() {
          await session.release();
        },
      };
    },
  };
}
