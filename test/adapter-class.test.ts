/**
 * Which kernel class an adapter gets (src/device/context.ts adapterClassOf), from the strings
 * each implementation reports: CPU-emulated adapters (SwiftShader, Mesa llvmpipe/lavapipe) the
 * CPU class, GPUs the GPU class; then the adapter this run got, classed as its name says.
 */
import { describe, expect, it } from 'vitest';
import { adapterClassOf, type AdapterSummary } from '../src/device/context.ts';
import { gpuNorms } from './util/gpu.ts';

const info = (vendor: string, architecture: string, device = '', description = '', isFallbackAdapter?: boolean): AdapterSummary => ({
  vendor,
  architecture,
  device,
  description,
  ...(isFallbackAdapter === undefined ? {} : { isFallbackAdapter }),
});

describe('adapterClassOf', () => {
  it.each([
    // As Dawn's Node bindings (the `webgpu` package) report them on this machine.
    ['SwiftShader (Dawn)', info('google', 'swiftshader', 'swiftshader-device-subzero-', 'SwiftShader driver 5.0.0', true)],
    ['lavapipe, Mesa 25 (Dawn)', info('mesa', 'software', 'llvmpipe-llvm-15-0-6-256-bits-', 'llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1', true)],
    // Browsers show vendor and architecture only (device and description empty by default).
    ['SwiftShader (Chrome)', info('google', 'swiftshader')],
    ['lavapipe (Chrome)', info('mesa', 'software')],
    ['lavapipe, fallback flag only', info('mesa', '', '', '', true)],
    ['llvmpipe named in the description only', info('', '', '', 'llvmpipe (LLVM 19.1.7, 256 bits)')],
    ['an implementation that tells nothing', info('', '', '', '')],
  ])('%s: cpu', (_, a) => {
    expect(adapterClassOf(a)).toBe('cpu');
  });

  it.each([
    ['NVIDIA (Dawn, Vulkan)', info('nvidia', 'hopper', '', 'NVIDIA: 550.54.15 550.54.15.0', false)],
    ['NVIDIA (Chrome)', info('nvidia', 'ampere')],
    ['AMD RADV (Mesa driver of a real GPU)', info('amd', 'rdna-3', '', 'radv: Mesa 25.0.7 (LLVM 19.1.7)', false)],
    ['Intel (Mesa ANV)', info('intel', 'gen-12lp', '', 'Intel open-source Mesa driver: Mesa 25.0.7')],
    ['Apple (Safari / Chrome on macOS)', info('apple', 'metal-3')],
    ['Qualcomm (Chrome on Android)', info('qualcomm', 'adreno-7xx')],
    ['ARM Mali', info('arm', 'valhall')],
  ])('%s: gpu', (_, a) => {
    expect(adapterClassOf(a)).toBe('gpu');
  });

  it('the adapter of this run: the class createNorms detected is adapterClassOf its info; SwiftShader and lavapipe get the CPU class', async () => {
    const n = await gpuNorms({ adapterClass: 'auto' });
    try {
      const a = n.adapter!;
      const cls = adapterClassOf(a);
      expect(n._gpu!.ctx.isCpuAdapter).toBe(cls === 'cpu');
      const icd = process.env.VK_ICD_FILENAMES ?? '';
      if (/swiftshader|lvp_icd/.test(icd)) {
        expect(`${a.vendor} ${a.architecture} ${a.device} ${a.description}`).toMatch(/swiftshader|llvmpipe/i);
        expect(cls).toBe('cpu');
      }
    } finally {
      n.destroy();
    }
  });
});
