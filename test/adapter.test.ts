/**
 * Which WebGPU implementation this run tests, and what its shader compiler does to floating-point
 * expressions. `npm test` runs the suites once per Vulkan implementation (vitest.config.ts sets
 * WEBGPU_NORM_TEST_ADAPTER per project): each run asserts it got the adapter it was meant for, and
 * the probe shows whether that compiler reassociates — the lavapipe run must see a compiler that
 * does, so that it provably tests numerics under the rewrites WGSL allows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create } from 'webgpu';

// GPUBufferUsage / GPUMapMode values (the globals may not exist in Node).
const STORAGE = 0x80, COPY_SRC = 0x4, COPY_DST = 0x8, MAP_READ = 0x1;
import { createNorms } from '../src/index.ts';
import { EXPECTED_ADAPTER, adapterMatches } from './util/gpu.ts';

// One WebGPU instance and device for the file (Dawn in Node: instances and devices are kept alive
// for the whole run; tearing one down mid-file has crashed the lavapipe worker).
let gpu: GPU;
let adapter: GPUAdapter;
let dev: GPUDevice;
beforeAll(async () => {
  gpu = create([]);
  const a = await gpu.requestAdapter();
  if (!a) throw new Error(`no WebGPU adapter (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? '(unset)'})`);
  adapter = a;
  dev = await adapter.requestDevice();
});
afterAll(() => dev?.destroy());

/**
 * Runs `body` (WGSL statements over a = IN[0], b = IN[1], z = the uniform-free zero IN[2] as u32)
 * and returns OUT[0..3]. The inputs come from a buffer: the compiler cannot fold them.
 */
async function probe(dev: GPUDevice, inputs: number[], body: string): Promise<Float32Array> {
  const code = `
@group(0) @binding(0) var<storage, read> IN: array<f32>;
@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@compute @workgroup_size(1) fn main() {
  let a = IN[0];
  let b = IN[1];
  let z = bitcast<u32>(IN[2]);
  ${body}
}`;
  dev.pushErrorScope('validation');
  const module = dev.createShaderModule({ code });
  const pipeline = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const inBuf = dev.createBuffer({ size: 16, usage: STORAGE | COPY_DST });
  dev.queue.writeBuffer(inBuf, 0, new Float32Array([...inputs, 0, 0, 0, 0].slice(0, 4)));
  const outBuf = dev.createBuffer({ size: 16, usage: STORAGE | COPY_SRC | COPY_DST });
  dev.queue.writeBuffer(outBuf, 0, new Float32Array([NaN, NaN, NaN, NaN]));
  const readBuf = dev.createBuffer({ size: 16, usage: MAP_READ | COPY_DST });
  const enc = dev.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, dev.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: inBuf } }, { binding: 1, resource: { buffer: outBuf } }] }));
  pass.dispatchWorkgroups(1);
  pass.end();
  enc.copyBufferToBuffer(outBuf, 0, readBuf, 0, 16);
  dev.queue.submit([enc.finish()]);
  const err = await dev.popErrorScope();
  if (err) throw new Error(`probe kernel: ${err.message}`);
  await readBuf.mapAsync(1 /* GPUMapMode.READ */);
  const out = new Float32Array(readBuf.getMappedRange().slice(0));
  readBuf.unmap();
  for (const b of [inBuf, outBuf, readBuf]) b.destroy();
  return out;
}

describe('the adapter under test', () => {
  it(`is the one this run was meant for (${EXPECTED_ADAPTER ?? 'any: WEBGPU_NORM_TEST_ADAPTER unset'})`, async () => {
    const info = adapter.info;
    const name = [info.vendor, info.architecture, info.device, info.description].join(' / ');
    console.log(`adapter: ${name}; features: ${[...adapter.features].sort().join(', ')}`);
    if (EXPECTED_ADAPTER) expect(adapterMatches(info, EXPECTED_ADAPTER), `adapter ${name}, expected ${EXPECTED_ADAPTER}`).toBe(true);
    // The library sees the same adapter.
    const norms = await createNorms({ device: dev, backend: 'webgpu' });
    expect(norms.backend).toBe('webgpu');
    expect(norms.adapter?.vendor ?? '').toBe(info.vendor);
    norms.destroy();
  });

  it('probe: does the shader compiler reassociate? (Fast2Sum error term of 1e4 + 1.234567e-4)', async () => {
    const a = 1e4, b = 1.234567e-4;
    const s = Math.fround(a + b);
    const exact = Math.fround(b - Math.fround(s - a)); // the error term, evaluated in order
    {
      // OUT[0]: the plain error term; OUT[1]: the same with each step held (the XOR with a zero the
      // compiler cannot know, as common.wgsl's hold()).
      const out = await probe(
        dev,
        [a, b, 0],
        `let s = a + b;
  OUT[0] = b - (s - a);
  let sh = bitcast<f32>(bitcast<u32>(a + b) ^ z);
  let t = bitcast<f32>(bitcast<u32>(sh - a) ^ z);
  OUT[1] = b - t;`,
      );
      const reassociates = out[0] !== exact;
      console.log(`probe: plain error term ${out[0]}, held ${out[1]}, in-order value ${exact}: this compiler ${reassociates ? 'REASSOCIATES' : 'keeps the order here'}`);
      // The held form is exact on every implementation.
      expect(out[1]).toBe(exact);
      expect(exact).not.toBe(0);
      // lavapipe's compiler is known to reassociate: its run must show it, or it tests nothing new.
      if (EXPECTED_ADAPTER === 'lavapipe') expect(reassociates, 'lavapipe was expected to reassociate').toBe(true);
    }
  });
});
