/** vitest global setup: compiles the wasm kernels (shaders/wasm/) when they changed since the last build. */
// @ts-expect-error: a plain ES module script without type declarations
import { buildWasm } from '../scripts/build-wasm.mjs';

export default async function setup(): Promise<void> {
  await (buildWasm as (o: { quiet: boolean }) => Promise<boolean>)({ quiet: true });
}
