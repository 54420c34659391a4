import { TensorError } from './errors.ts';

/** Element type of a tensor: `'float32'` (4 bytes) or `'float16'` (IEEE half, 2 bytes, packed two per 32-bit word on the GPU). */
export type DType = 'float32' | 'float16';

export const DTYPES: readonly DType[] = ['float32', 'float16'];

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes of storage for n elements: float32, or float16 packed two per u32 word. */
export function storageBytes(n: number, dtype: DType): number {
  return dtype === 'float16' ? Math.ceil(n / 2) * 4 : n * 4;
}

/** Bytes per element on average (float16: 2, packed two per word). */
export const elementBytes = (dtype: DType): number => storageBytes(2, dtype) / 2;

/**
 * A tensor owned by one `createNorms` instance. On the webgpu backend it lives in a GPUBuffer
 * (float32, or float16 packed two halves per u32 word); on the cpu backend in a Float32Array, on
 * the wasm backend in the WebAssembly module's memory (both: float16 values stored as float32
 * rounded to half).
 */
export class Tensor {
  /** Dims, row-major (frozen). */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  /** @internal */ _buffer: GPUBuffer | null;
  /** @internal */ _data: Float32Array | null;
  /** @internal byte address in the WebAssembly backend's memory (−1 elsewhere). */
  _ptr: number;
  /** @internal */ readonly _owner: object;
  /** @internal whether destroy() frees the storage (false for wrap()). */
  readonly _owns: boolean;
  /** @internal work that must settle before the contents are valid (GPU errors, verify checks). */
  _pending: Promise<void> | null = null;
  /** @internal */ _onDestroy: ((t: Tensor) => void) | null = null;
  /** @internal called when the buffer is handed out (submits the ops batched so far). */
  _onExport: (() => void) | null = null;
  private _destroyed = false;

  /** @internal */
  constructor(
    owner: object,
    shape: readonly number[],
    dtype: DType,
    storage: { buffer: GPUBuffer } | { data: Float32Array } | { ptr: number },
    owns: boolean,
  ) {
    this._owner = owner;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = numel(shape);
    this._buffer = 'buffer' in storage ? storage.buffer : null;
    this._data = 'data' in storage ? storage.data : null;
    this._ptr = 'ptr' in storage ? storage.ptr : -1;
    this._owns = owns;
  }

  /** Whether {@link Tensor.destroy} was called (or the owning instance destroyed). */
  get destroyed(): boolean {
    return this._destroyed;
  }

  /**
   * The GPUBuffer behind this tensor (webgpu backend), e.g. to hand to another library. Taking it
   * submits the ops issued so far (they are batched into one command buffer until then), so
   * queue work the caller submits afterwards sees their results.
   */
  get buffer(): GPUBuffer | null {
    this._onExport?.();
    return this._buffer;
  }

  /**
   * Releases the storage (its GPU buffer goes back to the instance's pool; a wrapped caller's
   * buffer is left alone). Later use of the tensor throws `TensorError`. Idempotent.
   */
  destroy(): void {
    if (this._destroyed) return;
    this._destroyed = true;
    this._onDestroy?.(this);
    this._buffer = null;
    this._data = null;
    this._ptr = -1;
  }

  /** @internal */
  _check(argument: string): void {
    if (this._destroyed) throw new TensorError(`${argument}: tensor of shape [${this.shape.join(', ')}] was destroyed`, argument);
  }
}
