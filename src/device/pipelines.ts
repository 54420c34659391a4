/** The pipeline cache: a kernel's WGSL compiled once per key (entry point and compile-time choices, never shapes). */
import { bindingsWGSL, type BindingDecl, type HalfStorage, type UniformLayout } from './wgsl.ts';

/** A compiled kernel: the pipeline and the binding declarations it was built from. */
export interface Kernel {
  pipeline: GPUComputePipeline;
  /** The pipeline's bind group layout, fetched once. */
  layout: GPUBindGroupLayout;
  bindings: readonly BindingDecl[];
  uniforms: UniformLayout<string>;
  workgroupSize: number;
  label: string;
  /** How its float16 bindings are declared ('packed' when it has none). */
  half: HalfStorage;
}

export interface KernelSource {
  /** Pipeline cache key: kernel name plus compile-time choices only (never shapes). */
  key: string;
  label: string;
  bindings: readonly BindingDecl[];
  uniforms: UniformLayout<string>;
  /** WGSL after the generated declarations (built only when the pipeline is not cached yet). */
  body: () => string;
  workgroupSize: number;
  constants?: Record<string, number>;
  /** Every quad access starts at a multiple of 4 (lets float16 quads load two whole words). */
  aligned?: boolean;
  /** Bindings are ranges of their buffers, starting at the uniform word offsets wordOffset1..8. */
  window?: boolean;
  /** The compute entry point (default 'main'). */
  entryPoint?: string;
  /** WGSL extensions the body uses (`enable` directives, e.g. 'subgroups'); the device must have the feature. */
  enables?: readonly string[];
  /** How float16 bindings are declared (default 'packed'); 'native' also needs 'f16' in `enables`. */
  half?: HalfStorage;
}

/** The whole WGSL of a kernel as it is compiled: enables, uniforms, binding declarations and accessors, body. */
export function kernelCode(src: Pick<KernelSource, 'enables' | 'uniforms' | 'bindings' | 'aligned' | 'window' | 'half' | 'body'>): string {
  return `${(src.enables ?? []).map((e) => `enable ${e};\n`).join('')}${src.uniforms.wgsl()}\n${bindingsWGSL(src.bindings, src.aligned, src.window, src.half)}\noverride WG: u32 = 64u;\n${src.body()}`;
}

export class PipelineCache {
  private readonly pipelines = new Map<string, Kernel>();
  /** WGSL compile errors by cache key, thrown by the submissions that use the pipeline. */
  readonly compileErrors = new Map<string, string>();

  constructor(private readonly device: GPUDevice) {}

  kernel(src: KernelSource): Kernel {
    const hit = this.pipelines.get(src.key);
    if (hit) return hit;
    const code = kernelCode(src);
    const d = this.device;
    d.pushErrorScope('validation');
    const module = d.createShaderModule({ code, label: src.label });
    // The layout comes from the binding declarations, not from the shader's use of them: a
    // variant that leaves a binding unused (batch-norm eval dx reads no x) keeps the same bind group.
    const COMPUTE = 0x4; // GPUShaderStage.COMPUTE (the globals need not exist, e.g. in Node)
    const layout = d.createBindGroupLayout({
      label: `${src.label}.layout`,
      entries: [
        { binding: 0, visibility: COMPUTE, buffer: { type: 'uniform' } },
        ...src.bindings.map((b, k): GPUBindGroupLayoutEntry => ({ binding: k + 1, visibility: COMPUTE, buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' } })),
      ],
    });
    const pipeline = d.createComputePipeline({
      label: src.label,
      layout: d.createPipelineLayout({ label: `${src.label}.pipelineLayout`, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: src.entryPoint ?? 'main', constants: { WG: src.workgroupSize, ...(src.constants ?? {}) } },
    });
    const err = d.popErrorScope();
    err.then((e) => {
      if (e) {
        this.pipelines.delete(src.key);
        // Surface compile errors with the WGSL message: kept here and thrown by the submission
        // that uses the pipeline (its error scope catches the invalid pipeline).
        module.getCompilationInfo?.().then((info) => {
          const msgs = info.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('\n');
          this.compileErrors.set(src.key, `${e.message}\n${msgs}`);
        });
      }
    });
    const k: Kernel = { pipeline, layout, bindings: src.bindings, uniforms: src.uniforms, workgroupSize: src.workgroupSize, label: src.label, half: src.half ?? 'packed' };
    this.pipelines.set(src.key, k);
    return k;
  }

  clear(): void {
    this.pipelines.clear();
  }
}
