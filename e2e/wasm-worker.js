// Module worker of e2e/wasm.html: the bundle on the wasm backend inside a worker.
import { createNorms } from '/dist/index.js';

try {
  const n = await createNorms({ backend: 'wasm' });
  const x = Float32Array.from({ length: 4 * 96 }, (_, i) => Math.sin(i) * 3 + 1);
  const { y } = n.layerNorm(n.tensor(x, [4, 96]), { normalizedShape: [96] });
  postMessage({ ok: true, backend: n.backend, note: n.note, x: [...x], y: [...(await n.read(y))] });
  n.destroy();
} catch (e) {
  postMessage({ ok: false, error: `${e?.name}: ${e?.message}` });
}
