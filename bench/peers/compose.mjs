// The unfused composition of a modulated, gated layer norm (DiT / SD3 / Flux adaLN), as a user
// without the fused op writes it on the same GPUDevice: our plain layerNorm / layerNormBackward
// plus small elementwise and column-reduction WGSL passes of their own (vec4, float32). Used as
// the "compose" variant of the modulated bench rows (bench/core.mjs), timed round-robin with the
// fused op and the copy kernel, checked against the same CPU reference.
//
// Forward (x, residual, gate, scale, shift: [B, T, D], the modulation [B, 1, D]):
//   1. gate_add   sum = residual + gate ⊙ x                          reads x, residual; writes sum
//   2. layerNorm(sum, { eps })  (ours, no affine)                    n, mean, rstd
//   3. modulate   y = n ⊙ (scaleOffset + scale) + shift              reads n; writes y
// Backward (dy, dsum, x, gate, scale, mean, rstd and the forward's sum, which the composition
// keeps from its forward; the fused op recomputes it from x and residual):
//   1. mod_bwd    dn = dy ⊙ (scaleOffset + scale); per token chunk Σ dy and Σ dy ⊙ n (n from sum,
//                 mean, rstd)                                         reads dy, sum; writes dn
//   2. finish ×2  dshift, dscale = Σ over chunks
//   3. layerNormBackward(dn, sum, mean, rstd)  (ours)                dn' = d(sum) from the norm
//   4. gate_bwd   ds = dn' + dsum; dresidual = ds; dx = gate ⊙ ds; per chunk Σ ds ⊙ x
//                                                                     reads dn', dsum, x; writes dresidual, dx
//   5. finish     dgate = Σ over chunks
// Outputs of the passes of this file go to buffers allocated once per case (the library's ops
// allocate theirs per call from its pool), which favours the composition.

const USAGE = { COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 };
const WG = 256;
const CWG = 64;

const HEADER = /* wgsl */ `
struct P {
  n4: u32,      // vec4s of x
  d4: u32,      // vec4s per row (D / 4)
  T: u32,       // tokens per sample
  chunk: u32,   // tokens per chunk (column passes)
  chunks: u32,  // chunks per sample
  B: u32,       // samples
  off: f32,     // scaleOffset
  stride: u32,  // invocations per row of the dispatch grid (elementwise passes)
}
@group(0) @binding(0) var<uniform> p: P;
`;

// The modulation index of x's vec4 i (per sample: [B, 1, D]).
const MODIDX = /* wgsl */ `
fn modIdx(i: u32) -> u32 {
  let perSample = p.T * p.d4;
  return (i / perSample) * p.d4 + i % p.d4;
}
`;

const GATE_ADD = `${HEADER}${MODIDX}
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> r: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> s: array<vec4<f32>>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * p.stride;
  if (i >= p.n4) { return; }
  s[i] = r[i] + g[modIdx(i)] * x[i];
}`;

const MODULATE = `${HEADER}${MODIDX}
@group(0) @binding(1) var<storage, read> n: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> sc: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> sh: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * p.stride;
  if (i >= p.n4) { return; }
  let m = modIdx(i);
  y[i] = n[i] * (vec4<f32>(p.off) + sc[m]) + sh[m];
}`;

// Column passes: invocation (d, b * chunks + c) walks tokens [c·chunk, (c+1)·chunk) of sample b.
const MOD_BWD = `${HEADER}
@group(0) @binding(1) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> s: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read> sc: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dn: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> part: array<vec4<f32>>; // [2][B·chunks][d4]: Σ dy·n, Σ dy
@compute @workgroup_size(${CWG})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let d = id.x;
  if (d >= p.d4) { return; }
  let bc = id.y;
  let b = bc / p.chunks;
  let c = bc % p.chunks;
  let t0 = c * p.chunk;
  let t1 = min(p.T, t0 + p.chunk);
  let m = vec4<f32>(p.off) + sc[b * p.d4 + d];
  var aScale = vec4<f32>(0.0);
  var aShift = vec4<f32>(0.0);
  for (var t = t0; t < t1; t++) {
    let row = b * p.T + t;
    let i = row * p.d4 + d;
    let g = dy[i];
    let nv = (s[i] - vec4<f32>(mean[row])) * rstd[row];
    aScale += g * nv;
    aShift += g;
    dn[i] = g * m;
  }
  let half = p.B * p.chunks * p.d4;
  part[bc * p.d4 + d] = aScale;
  part[half + bc * p.d4 + d] = aShift;
}`;

const GATE_BWD = `${HEADER}
@group(0) @binding(1) var<storage, read> dn: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dsum: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dres: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dx: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> part: array<vec4<f32>>; // [B·chunks][d4]: Σ ds·x
@compute @workgroup_size(${CWG})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let d = id.x;
  if (d >= p.d4) { return; }
  let bc = id.y;
  let b = bc / p.chunks;
  let c = bc % p.chunks;
  let t0 = c * p.chunk;
  let t1 = min(p.T, t0 + p.chunk);
  let gv = g[b * p.d4 + d];
  var a = vec4<f32>(0.0);
  for (var t = t0; t < t1; t++) {
    let i = (b * p.T + t) * p.d4 + d;
    let ds = dn[i] + dsum[i];
    dres[i] = ds;
    dx[i] = gv * ds;
    a += ds * x[i];
  }
  part[bc * p.d4 + d] = a;
}`;

// out[b, d] = Σ_c part[base + (b·chunks + c)·d4 + d]; base (in vec4s) = p.n4 (reused as an offset).
const FINISH = `${HEADER}
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(${CWG})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let d = id.x;
  if (d >= p.d4) { return; }
  let b = id.y;
  var a = vec4<f32>(0.0);
  for (var c = 0u; c < p.chunks; c++) {
    a += part[p.n4 + (b * p.chunks + c) * p.d4 + d];
  }
  out[b * p.d4 + d] = a;
}`;

/** Why the composition cannot run case c, or null. */
export function composeUnsupported(c) {
  const o = c.opts ?? {};
  if (c.op !== 'layerNorm') return 'the composition is written for layerNorm';
  if (c.dtype !== 'float32') return 'the composition kernels are float32';
  if (o.modulate !== 'sample' || !o.gate || !o.residual) return 'the composition is written for per-sample scale/shift with a gated residual';
  if (o.weight !== false || o.bias !== false) return 'the composition is written for layer norm without affine (adaLN)';
  if (c.shape.length !== 3 || c.shape[2] % 4) return 'the composition needs x [B, T, D] with D a multiple of 4';
  return null;
}

/**
 * The composition for case c on `norms` (its device): { what, run(), flush(), outputs(), bytes, destroy() }.
 * host: the case's input data (x, residual, scale, shift, gate; backward also dy, dsum, mean,
 * rstd), uploaded into buffers of the composition's own (so that the fused op's tensors are
 * left as they are). run() enqueues one forward or backward; outputs() runs it once more and
 * returns { name: Float32Array } of every output, named as the fused op's.
 * bytes: the bytes the composition's own passes read and write (elements touched, as the
 * library's profile counts them); its library calls are counted by profiling them (libCall).
 */
export function createCompose(c, norms, host) {
  const device = norms.device;
  const [B, Tk, D] = c.shape;
  const d4 = D / 4;
  const n4 = (B * Tk * D) / 4;
  const rows = B * Tk;
  const bytesX = B * Tk * D * 4;
  const bytesMod = B * D * 4;
  const off = c.opts.scaleOffset ?? 1;
  const eps = c.opts.eps ?? 1e-5;
  const ns = [D];
  const owned = [];
  const buf = (size, label, extra = 0) => {
    const b = device.createBuffer({ size: Math.max(16, size), usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST | extra, label: `bench.compose.${label}` });
    owned.push(b);
    return b;
  };
  // Elementwise grid: at most 65535 workgroups per dimension.
  const groups = Math.ceil(n4 / WG);
  const gx = Math.min(groups, 65535);
  const gy = Math.ceil(groups / gx);
  // Column passes: enough invocations to fill a GPU (~64K), at most one chunk per token.
  const chunks = Math.max(1, Math.min(Tk, Math.ceil(65536 / (B * d4))));
  const chunk = Math.ceil(Tk / chunks);
  const uni = (n4v) => {
    const u = new ArrayBuffer(32);
    const v = new Uint32Array(u);
    v.set([n4v, d4, Tk, chunk, chunks, B]);
    new Float32Array(u)[6] = off;
    v[7] = gx * WG;
    const b = buf(32, 'params', USAGE.UNIFORM);
    device.queue.writeBuffer(b, 0, u);
    return b;
  };
  const P = uni(n4);
  const P0 = uni(0);
  const P1 = uni(B * chunks * d4);
  const pipe = (code, label) => device.createComputePipeline({ layout: 'auto', label: `bench.compose.${label}`, compute: { module: device.createShaderModule({ code, label: `bench.compose.${label}` }), entryPoint: 'main' } });
  const bind = (pl, bufs) => device.createBindGroup({ layout: pl.getBindGroupLayout(0), entries: bufs.map((b, i) => ({ binding: i, resource: { buffer: b } })) });
  const pass = (enc, pl, bg, x, y = 1) => {
    const ps = enc.beginComputePass();
    ps.setPipeline(pl);
    ps.setBindGroup(0, bg);
    ps.dispatchWorkgroups(x, y);
    ps.end();
  };
  const submit = (fill) => {
    const enc = device.createCommandEncoder({ label: 'bench.compose' });
    fill(enc);
    device.queue.submit([enc.finish()]);
  };
  const buffers = {};
  for (const [k, data] of Object.entries(host)) {
    const a = data instanceof Float32Array ? data : Float32Array.from(data);
    buffers[k] = buf(a.byteLength, k);
    device.queue.writeBuffer(buffers[k], 0, a);
  }
  const meanT = host.mean ? norms.wrap(buffers.mean, [B, Tk]) : null;
  const rstdT = host.rstd ? norms.wrap(buffers.rstd, [B, Tk]) : null;
  const sumBuf = buf(bytesX, 'sum');
  const sumT = norms.wrap(sumBuf, c.shape);
  const gateAdd = pipe(GATE_ADD, 'gate_add');
  const bgGateAdd = bind(gateAdd, [P, buffers.x, buffers.residual, buffers.gate, sumBuf]);

  if (c.dir === 'fwd') {
    const modulate = pipe(MODULATE, 'modulate');
    const yBuf = buf(bytesX, 'y');
    const once = () => {
      submit((enc) => pass(enc, gateAdd, bgGateAdd, gx, gy));
      const o = norms.layerNorm(sumT, { normalizedShape: ns, eps });
      const nBuf = o.y.buffer; // taking it submits the layer norm
      submit((enc) => pass(enc, modulate, bind(modulate, [P, nBuf, buffers.scale, buffers.shift, yBuf]), gx, gy));
      return o;
    };
    return {
      what: 'gate_add (WGSL) -> layerNorm (ours, no affine) -> modulate (WGSL): 3 passes',
      run() {
        const o = once();
        for (const t of Object.values(o)) t?.destroy?.();
        return null;
      },
      flush: () => norms.flush(),
      async outputs() {
        const o = once();
        try {
          return { y: await readBuf(norms, yBuf, c.shape), sum: await readBuf(norms, sumBuf, c.shape), mean: await norms.read(o.mean), rstd: await norms.read(o.rstd) };
        } finally {
          for (const t of Object.values(o)) t?.destroy?.();
        }
      },
      // gate_add: x, residual, gate -> sum; modulate: n, scale, shift -> y.
      bytes: 3 * bytesX + bytesMod + (2 * bytesX + 2 * bytesMod),
      libCall: (N, W) => N.layerNorm(W(sumBuf, c.shape), { normalizedShape: ns, eps }),
      destroy() {
        sumT.destroy();
        for (const b of owned) b.destroy();
      },
    };
  }

  // Backward. The forward's sum, as the composition's forward left it (not timed).
  submit((enc) => pass(enc, gateAdd, bgGateAdd, gx, gy));
  const modBwd = pipe(MOD_BWD, 'mod_bwd');
  const gateBwd = pipe(GATE_BWD, 'gate_bwd');
  const finish = pipe(FINISH, 'finish');
  const dnBuf = buf(bytesX, 'dn');
  const dnT = norms.wrap(dnBuf, c.shape);
  const dresBuf = buf(bytesX, 'dresidual');
  const dxBuf = buf(bytesX, 'dx');
  const partMod = buf(2 * B * chunks * D * 4, 'part.mod');
  const partGate = buf(B * chunks * D * 4, 'part.gate');
  const dscaleBuf = buf(bytesMod, 'dscale');
  const dshiftBuf = buf(bytesMod, 'dshift');
  const dgateBuf = buf(bytesMod, 'dgate');
  const bgModBwd = bind(modBwd, [P, buffers.dy, sumBuf, buffers.mean, buffers.rstd, buffers.scale, dnBuf, partMod]);
  const bgFinScale = bind(finish, [P0, partMod, dscaleBuf]);
  const bgFinShift = bind(finish, [P1, partMod, dshiftBuf]);
  const bgFinGate = bind(finish, [P0, partGate, dgateBuf]);
  const cx = Math.ceil(d4 / CWG);
  const once = () => {
    submit((enc) => {
      pass(enc, modBwd, bgModBwd, cx, B * chunks);
      pass(enc, finish, bgFinScale, cx, B);
      pass(enc, finish, bgFinShift, cx, B);
    });
    const o = norms.layerNormBackward(dnT, sumT, meanT, rstdT, { normalizedShape: ns });
    const dsBuf = o.dx.buffer; // taking it submits the backward
    submit((enc) => {
      pass(enc, gateBwd, bind(gateBwd, [P, dsBuf, buffers.dsum, buffers.x, buffers.gate, dresBuf, dxBuf, partGate]), cx, B * chunks);
      pass(enc, finish, bgFinGate, cx, B);
    });
    return o;
  };
  const partBytes = B * chunks * D * 4;
  return {
    what: 'mod_bwd + 2 finish (WGSL) -> layerNormBackward (ours) -> gate_bwd + finish (WGSL): 6 passes',
    run() {
      const o = once();
      for (const t of Object.values(o)) t?.destroy?.();
      return null;
    },
    flush: () => norms.flush(),
    async outputs() {
      const o = once();
      try {
        const mod = [B, 1, D];
        return {
          dx: await readBuf(norms, dxBuf, c.shape),
          dresidual: await readBuf(norms, dresBuf, c.shape),
          dscale: await readBuf(norms, dscaleBuf, mod),
          dshift: await readBuf(norms, dshiftBuf, mod),
          dgate: await readBuf(norms, dgateBuf, mod),
        };
      } finally {
        for (const t of Object.values(o)) t?.destroy?.();
      }
    },
    // mod_bwd: dy, sum, scale, mean, rstd -> dn + 2 partials; finish ×2; gate_bwd: dn', dsum, x,
    // gate -> dresidual, dx + partials; finish.
    bytes:
      2 * bytesX + bytesMod + 2 * rows * 4 + bytesX + 2 * partBytes +
      2 * (partBytes + bytesMod) +
      3 * bytesX + bytesMod + 2 * bytesX + partBytes +
      (partBytes + bytesMod),
    libCall: (N, W) => N.layerNormBackward(W(dnBuf, c.shape), W(sumBuf, c.shape), W(buffers.mean, [B, Tk]), W(buffers.rstd, [B, Tk]), { normalizedShape: ns }),
    destroy() {
      sumT.destroy();
      dnT.destroy();
      meanT.destroy();
      rstdT.destroy();
      for (const b of owned) b.destroy();
    },
  };
}

/** A float32 buffer of ours (this file's) read through the library: wrapped, read, unwrapped. */
async function readBuf(norms, b, shape) {
  const t = norms.wrap(b, shape);
  try {
    return await norms.read(t);
  } finally {
    t.destroy();
  }
}
