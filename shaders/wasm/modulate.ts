// AssemblyScript: the modulation (adaLN / AdaGN) and the gated residual around the norms.
// Element e of x reads modulation element ((e / inner / div) % mod)·inner + e % inner: x is seen
// as rows of `inner` elements, and row r reads the modulation row (r / div) % mod. Tasks: rows.
// The gradient sums over the broadcast dims (mod_grads, residual_grads) run as one task, in
// element order with float64 accumulators, so they do not depend on any split.
import { pf, pi, pp, at, ld, st } from './common';

// @ts-ignore: decorator
@inline function silu(v: f32): f32 {
  return v / (<f32>1 + Mathf.exp(-v));
}

/** acc[k..k+3] (float64) += the four lanes of v. */
// @ts-ignore: decorator
@inline function acc4(acc: usize, k: i32, v: v128): void {
  const a = acc + (<usize>k << 3);
  v128.store(a, f64x2.add(v128.load(a), f64x2.promote_low_f32x4(v)));
  v128.store(a, f64x2.add(v128.load(a, 16), f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1))), 16);
}

/** out = residual + gate[m(e)]·x. p: 0 x, 1 residual, 2 out, 3 gate, 4 inner, 5 div, 6 mod. */
export function gated_add(p: usize, begin: i32, end: i32): void {
  const x = pp(p, 0), r = pp(p, 1), out = pp(p, 2), g = pp(p, 3), inner = pi(p, 4), div = pi(p, 5), mod = pi(p, 6);
  let q = begin / div, rr = begin % div, qm = q % mod;
  for (let row = begin; row < end; row++) {
    const gb = at(g, qm * inner);
    const e0 = row * inner;
    let i = 0;
    if (ASC_FEATURE_SIMD) {
      for (; i + 4 <= inner; i += 4) v128.store(at(out, e0 + i), f32x4.add(v128.load(at(r, e0 + i)), f32x4.mul(v128.load(at(gb, i)), v128.load(at(x, e0 + i)))));
    }
    for (; i < inner; i++) st(out, e0 + i, ld(r, e0 + i) + ld(gb, i) * ld(x, e0 + i));
    if (++rr == div) {
      rr = 0;
      if (++qm == mod) qm = 0;
    }
  }
}

/**
 * y = act(y·(off + scale[m(e)]) + shift[m(e)]) in place. p: 0 y, 1 inner, 2 div, 3 mod, 4 scale
 * (0: none), 5 shift (0: none), 6 off, 7 silu.
 */
export function modulate(p: usize, begin: i32, end: i32): void {
  const y = pp(p, 0), inner = pi(p, 1), div = pi(p, 2), mod = pi(p, 3), sc = pp(p, 4), sh = pp(p, 5), off = <f32>pf(p, 6), act = pi(p, 7);
  let rr = begin % div, qm = (begin / div) % mod;
  let row = begin;
  while (row < end) {
    // A run of rows reading the same modulation row.
    const run = min(div - rr, end - row);
    const mb = qm * inner;
    const e0 = row * inner;
    const n = run * inner;
    if (inner == 1) {
      const a: f32 = sc ? off + ld(sc, mb) : <f32>1;
      const b: f32 = sh ? ld(sh, mb) : <f32>0;
      let i = 0;
      if (ASC_FEATURE_SIMD) {
        const va = f32x4.splat(a), vb = f32x4.splat(b);
        if (!act) for (; i + 4 <= n; i += 4) v128.store(at(y, e0 + i), f32x4.add(f32x4.mul(v128.load(at(y, e0 + i)), va), vb));
      }
      for (; i < n; i++) {
        const v = ld(y, e0 + i) * a + b;
        st(y, e0 + i, act ? silu(v) : v);
      }
    } else {
      for (let k = 0; k < run; k++) {
        const eb = e0 + k * inner;
        let i = 0;
        if (ASC_FEATURE_SIMD && !act) {
          const voff = f32x4.splat(off);
          for (; i + 4 <= inner; i += 4) {
            let v = v128.load(at(y, eb + i));
            if (sc) v = f32x4.mul(v, f32x4.add(voff, v128.load(at(sc, mb + i))));
            if (sh) v = f32x4.add(v, v128.load(at(sh, mb + i)));
            v128.store(at(y, eb + i), v);
          }
        }
        for (; i < inner; i++) {
          let v = ld(y, eb + i);
          if (sc) v *= off + ld(sc, mb + i);
          if (sh) v += ld(sh, mb + i);
          st(y, eb + i, act ? silu(v) : v);
        }
      }
    }
    row += run;
    rr += run;
    if (rr == div) {
      rr = 0;
      if (++qm == mod) qm = 0;
    }
  }
}

/**
 * The backward's start (one task): dz = dy·act'(z), dn = dz·(off + scale[m]); acc (float64,
 * 2·M): dshift[k] += dz, dscale[k] += dz·n. p: 0 dy, 1 n (the norm's output before the
 * modulation), 2 dn out, 3 inner, 4 div, 5 mod, 6 scale, 7 shift, 8 off, 9 silu, 10 acc, 11 M, 12 rows.
 */
export function mod_grads(p: usize, begin: i32, end: i32): void {
  const dy = pp(p, 0), nv = pp(p, 1), dn = pp(p, 2), inner = pi(p, 3), div = pi(p, 4), mod = pi(p, 5);
  const sc = pp(p, 6), sh = pp(p, 7), off = pf(p, 8), act = pi(p, 9), acc = pp(p, 10), M = pi(p, 11), rows = pi(p, 12);
  if (begin > 0 || end < 1) return;
  let rr = 0, qm = 0;
  for (let row = 0; row < rows; row++) {
    const mb = qm * inner;
    let i = 0;
    if (ASC_FEATURE_SIMD && !act) {
      // Four elements at a time: float32 products, float64 accumulators.
      const voff = f32x4.splat(<f32>off), one = f32x4.splat(1);
      for (; i + 4 <= inner; i += 4) {
        const e = row * inner + i, k = mb + i;
        const dz = v128.load(at(dy, e));
        const a = sc ? f32x4.add(voff, v128.load(at(sc, k))) : one;
        acc4(acc, k, dz);
        acc4(acc, M + k, f32x4.mul(dz, v128.load(at(nv, e))));
        v128.store(at(dn, e), f32x4.mul(dz, a));
      }
    }
    for (; i < inner; i++) {
      const e = row * inner + i, k = mb + i;
      let dz = <f64>ld(dy, e);
      const n = <f64>ld(nv, e);
      const a: f64 = sc ? off + <f64>ld(sc, k) : 1;
      if (act) {
        const z = n * a + (sh ? <f64>ld(sh, k) : 0);
        const s = 1 / (1 + Math.exp(-z));
        dz *= s * (1 + z * (1 - s));
      }
      const ak = acc + (<usize>k << 3);
      store<f64>(ak, load<f64>(ak) + dz);
      const bk = acc + (<usize>(M + k) << 3);
      store<f64>(bk, load<f64>(bk) + dz * n);
      st(dn, e, <f32>(dz * a));
    }
    if (++rr == div) {
      rr = 0;
      if (++qm == mod) qm = 0;
    }
  }
}

/**
 * The backward's end (one task): t = dxn + dsum; dresidual = t; dx = gate[m]·t; acc (float64, M):
 * dgate[k] += t·x. p: 0 dxn, 1 dsum (0: none), 2 x, 3 gate (0: none), 4 dresidual out (0: none),
 * 5 dx out, 6 inner, 7 div, 8 mod, 9 acc, 10 rows.
 */
export function residual_grads(p: usize, begin: i32, end: i32): void {
  const dxn = pp(p, 0), dsum = pp(p, 1), x = pp(p, 2), g = pp(p, 3), dres = pp(p, 4), dx = pp(p, 5);
  const inner = pi(p, 6), div = pi(p, 7), mod = pi(p, 8), acc = pp(p, 9), rows = pi(p, 10);
  if (begin > 0 || end < 1) return;
  let rr = 0, qm = 0;
  for (let row = 0; row < rows; row++) {
    const mb = qm * inner;
    let i = 0;
    if (ASC_FEATURE_SIMD) {
      for (; i + 4 <= inner; i += 4) {
        const e = row * inner + i;
        const t = dsum ? f32x4.add(v128.load(at(dxn, e)), v128.load(at(dsum, e))) : v128.load(at(dxn, e));
        if (dres) v128.store(at(dres, e), t);
        if (g) {
          v128.store(at(dx, e), f32x4.mul(v128.load(at(g, mb + i)), t));
          acc4(acc, mb + i, f32x4.mul(t, v128.load(at(x, e))));
        } else {
          v128.store(at(dx, e), t);
        }
      }
    }
    for (; i < inner; i++) {
      const e = row * inner + i;
      const t: f32 = dsum ? ld(dxn, e) + ld(dsum, e) : ld(dxn, e);
      if (dres) st(dres, e, t);
      if (g) {
        st(dx, e, ld(g, mb + i) * t);
        const ak = acc + (<usize>(mb + i) << 3);
        store<f64>(ak, load<f64>(ak) + <f64>t * <f64>ld(x, e));
      } else {
        st(dx, e, t);
      }
    }
    if (++rr == div) {
      rr = 0;
      if (++qm == mod) qm = 0;
    }
  }
}
