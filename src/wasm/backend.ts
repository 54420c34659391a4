/**
 * The wasm backend: every op on float32 WebAssembly kernels (shaders/wasm/, SIMD128 where the
 * engine has it) over tensors that live in the module's memory (context.ts). The ops are functions
 * of that context in rows.ts (layer/RMS norm), channels.ts (group/instance/batch norm),
 * weight-norm.ts, l2-normalize.ts and, around the norms, modulate.ts; src/op-table.ts says which
 * op is which function.
 */
import type { Backend } from '../ops.ts';
import { WasmContext } from './context.ts';

export class WasmBackend extends WasmContext implements Backend {
  readonly kind = 'wasm' as const;
}
