//! wasm32 simd128 kernels (compiled when the build enables `+simd128`, as the components do).
//!
//! Same operations in the same order as [`super::scalar`]; `pmin`/`pmax` have the SSE
//! semantics the clamp needs. Tails go to the scalar kernels.

use core::arch::wasm32::*;

use super::scalar;

/// Load 4 floats at `p`.
///
/// # Safety
/// `p..p + 4` must be readable.
#[inline(always)]
unsafe fn ld(p: *const f32) -> v128 {
    // SAFETY: guaranteed by the caller; v128_load has no alignment requirement.
    unsafe { v128_load(p.cast()) }
}

/// Store 4 floats at `p`.
///
/// # Safety
/// `p..p + 4` must be writable.
#[inline(always)]
unsafe fn st(p: *mut f32, v: v128) {
    // SAFETY: guaranteed by the caller; v128_store has no alignment requirement.
    unsafe { v128_store(p.cast(), v) }
}

#[inline(always)]
fn non_finite(x: v128) -> v128 {
    let exp = u32x4_splat(0x7f80_0000);
    i32x4_eq(v128_and(x, exp), exp)
}

/// [`scalar::sanitize_clamp`] of four values, and which were not finite.
#[inline(always)]
fn sanitize4(x: v128) -> (v128, v128) {
    let nf = non_finite(x);
    let c = f32x4_pmin(f32x4_pmax(x, f32x4_splat(-1.0)), f32x4_splat(1.0));
    (v128_andnot(c, nf), nf)
}

pub(crate) fn add_into(dst: &mut [f32], src: &[f32]) {
    let n = dst.len().min(src.len()) / 4 * 4;
    let (dp, sp) = (dst.as_mut_ptr(), src.as_ptr());
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= len of both slices.
        unsafe { st(dp.add(i), f32x4_add(ld(dp.add(i)), ld(sp.add(i)))) };
    }
    scalar::add_into(&mut dst[n..], &src[n..]);
}

/// The eight lanes of two vectors, `lo` first.
#[inline(always)]
fn lanes8(lo: v128, hi: v128) -> [f32; 8] {
    [
        f32x4_extract_lane::<0>(lo),
        f32x4_extract_lane::<1>(lo),
        f32x4_extract_lane::<2>(lo),
        f32x4_extract_lane::<3>(lo),
        f32x4_extract_lane::<0>(hi),
        f32x4_extract_lane::<1>(hi),
        f32x4_extract_lane::<2>(hi),
        f32x4_extract_lane::<3>(hi),
    ]
}

pub(crate) fn sum_squares(x: &[f32]) -> f32 {
    let n = x.len() / 8 * 8;
    let p = x.as_ptr();
    let (mut lo, mut hi) = (f32x4_splat(0.0), f32x4_splat(0.0));
    for i in (0..n).step_by(8) {
        // SAFETY: i + 8 <= n <= x.len().
        let (a, b) = unsafe { (ld(p.add(i)), ld(p.add(i + 4))) };
        lo = f32x4_add(lo, f32x4_mul(a, a));
        hi = f32x4_add(hi, f32x4_mul(b, b));
    }
    scalar::fold8(lanes8(lo, hi), &x[n..])
}

/// `x` must cover every output: `(out.len() - 1) * step + h.len() <= x.len()` (checked by
/// the caller).
pub(crate) fn fir8(x: &[f32], h: &[f32], step: usize, out: &mut [f32]) {
    let taps = h.len() / 8 * 8;
    let (xp, hp) = (x.as_ptr(), h.as_ptr());
    let fold = |lo: v128, hi: v128| scalar::fold8(lanes8(lo, hi), &[]);
    // Two outputs per pass: four independent add chains, sharing the coefficient loads.
    let mut pairs = out.chunks_exact_mut(2);
    let mut m = 0;
    for o in &mut pairs {
        let mut acc = [f32x4_splat(0.0); 4];
        for k in (0..taps).step_by(8) {
            // SAFETY: k + 8 <= taps <= h.len(); (m + 1) * step + k + 8 <= x.len() (caller).
            let (h0, h1) = unsafe { (ld(hp.add(k)), ld(hp.add(k + 4))) };
            for i in 0..2 {
                // SAFETY: as above.
                let (x0, x1) = unsafe {
                    (
                        ld(xp.add((m + i) * step + k)),
                        ld(xp.add((m + i) * step + k + 4)),
                    )
                };
                acc[2 * i] = f32x4_add(acc[2 * i], f32x4_mul(h0, x0));
                acc[2 * i + 1] = f32x4_add(acc[2 * i + 1], f32x4_mul(h1, x1));
            }
        }
        o[0] = fold(acc[0], acc[1]);
        o[1] = fold(acc[2], acc[3]);
        m += 2;
    }
    for o in pairs.into_remainder() {
        let (mut lo, mut hi) = (f32x4_splat(0.0), f32x4_splat(0.0));
        for k in (0..taps).step_by(8) {
            // SAFETY: as above, for output m.
            let (h0, h1, x0, x1) = unsafe {
                (
                    ld(hp.add(k)),
                    ld(hp.add(k + 4)),
                    ld(xp.add(m * step + k)),
                    ld(xp.add(m * step + k + 4)),
                )
            };
            lo = f32x4_add(lo, f32x4_mul(h0, x0));
            hi = f32x4_add(hi, f32x4_mul(h1, x1));
        }
        *o = fold(lo, hi);
    }
}

pub(crate) fn all_finite(x: &[f32]) -> bool {
    let n = x.len() / 4 * 4;
    let p = x.as_ptr();
    let mut bad = u32x4_splat(0);
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= x.len().
        bad = v128_or(bad, non_finite(unsafe { ld(p.add(i)) }));
    }
    !v128_any_true(bad) && scalar::all_finite(&x[n..])
}

pub(crate) fn zero_non_finite(x: &mut [f32]) {
    let n = x.len() / 4 * 4;
    let p = x.as_mut_ptr();
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= x.len().
        unsafe {
            let v = ld(p.add(i));
            st(p.add(i), v128_andnot(v, non_finite(v)));
        }
    }
    scalar::zero_non_finite(&mut x[n..]);
}

pub(crate) fn sanitize_clamp(x: &mut [f32]) {
    let n = x.len() / 4 * 4;
    let p = x.as_mut_ptr();
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= x.len().
        unsafe { st(p.add(i), sanitize4(ld(p.add(i))).0) };
    }
    scalar::sanitize_clamp(&mut x[n..]);
}

pub(crate) fn deinterleave2_clamp(x: &[f32], l: &mut [f32], r: &mut [f32]) -> bool {
    let n = l.len() / 4 * 4;
    let (xp, lp, rp) = (x.as_ptr(), l.as_mut_ptr(), r.as_mut_ptr());
    let mut bad = u32x4_splat(0);
    for i in (0..n).step_by(4) {
        // SAFETY: x holds 2 * l.len() values, r.len() == l.len() (caller); i + 4 <= n.
        unsafe {
            let (a, b) = (ld(xp.add(2 * i)), ld(xp.add(2 * i + 4)));
            for (v, p) in [
                (i32x4_shuffle::<0, 2, 4, 6>(a, b), lp.add(i)),
                (i32x4_shuffle::<1, 3, 5, 7>(a, b), rp.add(i)),
            ] {
                let (c, nf) = sanitize4(v);
                bad = v128_or(bad, nf);
                st(p, c);
            }
        }
    }
    let tail = scalar::deinterleave2_clamp(&x[2 * n..], &mut l[n..], &mut r[n..]);
    !v128_any_true(bad) && tail
}

pub(crate) fn downmix2(x: &[f32], out: &mut [f32]) {
    let n = out.len() / 4 * 4;
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    let half = f32x4_splat(0.5);
    for i in (0..n).step_by(4) {
        // SAFETY: x holds 2 * out.len() values (caller); i + 4 <= n.
        unsafe {
            let (a, b) = (ld(xp.add(2 * i)), ld(xp.add(2 * i + 4)));
            let l = i32x4_shuffle::<0, 2, 4, 6>(a, b);
            let r = i32x4_shuffle::<1, 3, 5, 7>(a, b);
            st(op.add(i), f32x4_mul(f32x4_add(l, r), half));
        }
    }
    scalar::downmix2(&x[2 * n..], &mut out[n..]);
}

pub(crate) fn interleave2(l: &[f32], r: &[f32], out: &mut [f32]) {
    let n = l.len() / 4 * 4;
    let (lp, rp, op) = (l.as_ptr(), r.as_ptr(), out.as_mut_ptr());
    for i in (0..n).step_by(4) {
        // SAFETY: l, r hold out.len() / 2 values (caller); i + 4 <= n.
        unsafe {
            let (a, b) = (ld(lp.add(i)), ld(rp.add(i)));
            st(op.add(2 * i), i32x4_shuffle::<0, 4, 1, 5>(a, b));
            st(op.add(2 * i + 4), i32x4_shuffle::<2, 6, 3, 7>(a, b));
        }
    }
    scalar::interleave2(&l[n..], &r[n..], &mut out[2 * n..]);
}

pub(crate) fn deinterleave2(x: &[f32], l: &mut [f32], r: &mut [f32]) {
    let n = l.len() / 4 * 4;
    let (xp, lp, rp) = (x.as_ptr(), l.as_mut_ptr(), r.as_mut_ptr());
    for i in (0..n).step_by(4) {
        // SAFETY: x holds 2 * l.len() values, r.len() == l.len() (caller); i + 4 <= n.
        unsafe {
            let (a, b) = (ld(xp.add(2 * i)), ld(xp.add(2 * i + 4)));
            st(lp.add(i), i32x4_shuffle::<0, 2, 4, 6>(a, b));
            st(rp.add(i), i32x4_shuffle::<1, 3, 5, 7>(a, b));
        }
    }
    scalar::deinterleave2(&x[2 * n..], &mut l[n..], &mut r[n..]);
}

#[inline(always)]
fn mix4(bg: v128, g: v128, s: v128, out: &mut [f32]) {
    let y = f32x4_add(f32x4_mul(bg, g), s);
    let over = f32x4_gt(f32x4_abs(y), f32x4_splat(scalar::LIMIT_KNEE));
    let out = &mut out[..4];
    // SAFETY: `out` has 4 values (sliced above).
    unsafe { st(out.as_mut_ptr(), y) };
    if v128_any_true(over) {
        for v in out {
            *v = scalar::soft_limit(*v);
        }
    }
}

pub(crate) fn duck_mix1(bg: &[f32], gain: &[f32], io: &mut [f32]) {
    let n = gain.len() / 4 * 4;
    let (bp, gp) = (bg.as_ptr(), gain.as_ptr());
    for i in (0..n).step_by(4) {
        let out = &mut io[i..i + 4];
        // SAFETY: bg and gain hold gain.len() values (caller), `out` 4; i + 4 <= n.
        let (b, s, g) = unsafe { (ld(bp.add(i)), ld(out.as_ptr()), ld(gp.add(i))) };
        mix4(b, g, s, out);
    }
    scalar::duck_mix(&bg[n..], &gain[n..], 1, &mut io[n..]);
}

pub(crate) fn duck_mix2(bg: &[f32], gain: &[f32], io: &mut [f32]) {
    let n = gain.len() / 4 * 4;
    let (bp, gp) = (bg.as_ptr(), gain.as_ptr());
    for f in (0..n).step_by(4) {
        let i = 2 * f;
        let out = &mut io[i..i + 8];
        // SAFETY: bg holds 2 * gain.len() values (caller), `out` 8; f + 4 <= n.
        let (b0, b1, s0, s1, g) = unsafe {
            (
                ld(bp.add(i)),
                ld(bp.add(i + 4)),
                ld(out.as_ptr()),
                ld(out.as_ptr().add(4)),
                ld(gp.add(f)),
            )
        };
        let (lo, hi) = out.split_at_mut(4);
        mix4(b0, i32x4_shuffle::<0, 0, 1, 1>(g, g), s0, lo);
        mix4(b1, i32x4_shuffle::<2, 2, 3, 3>(g, g), s1, hi);
    }
    scalar::duck_mix(&bg[2 * n..], &gain[n..], 2, &mut io[2 * n..]);
}

#[inline(always)]
fn round4(x: v128) -> v128 {
    let ordered = f32x4_eq(x, x);
    let c = f32x4_pmin(f32x4_pmax(x, f32x4_splat(-1.0)), f32x4_splat(1.0));
    let v = f32x4_mul(v128_and(c, ordered), f32x4_splat(32767.0));
    let t = i32x4_trunc_sat_f32x4(v);
    // v - trunc(v) is exact here (|v| <= 32767).
    let frac = f32x4_abs(f32x4_sub(v, f32x4_convert_i32x4(t)));
    let away = f32x4_ge(frac, f32x4_splat(0.5));
    let sign = v128_or(i32x4_shr(v, 31), i32x4_splat(1));
    i32x4_add(t, v128_and(away, sign))
}

pub(crate) fn f32_to_i16(x: &[f32], out: &mut [i16]) {
    let n = x.len() / 8 * 8;
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    for i in (0..n).step_by(8) {
        // SAFETY: out.len() >= x.len() (caller); i + 8 <= n.
        unsafe {
            let a = round4(ld(xp.add(i)));
            let b = round4(ld(xp.add(i + 4)));
            v128_store(op.add(i).cast(), i16x8_narrow_i32x4(a, b));
        }
    }
    scalar::f32_to_i16(&x[n..], &mut out[n..]);
}

pub(crate) fn s16le_to_f32(bytes: &[u8], out: &mut [f32]) {
    let n = out.len() / 8 * 8;
    let (bp, op) = (bytes.as_ptr(), out.as_mut_ptr());
    let scale = f32x4_splat(1.0 / 32768.0);
    for i in (0..n).step_by(8) {
        // SAFETY: bytes holds 2 * out.len() bytes (caller); i + 8 <= n.
        unsafe {
            let v = v128_load(bp.add(2 * i).cast());
            let lo = f32x4_convert_i32x4(i32x4_extend_low_i16x8(v));
            let hi = f32x4_convert_i32x4(i32x4_extend_high_i16x8(v));
            st(op.add(i), f32x4_mul(lo, scale));
            st(op.add(i + 4), f32x4_mul(hi, scale));
        }
    }
    scalar::s16le_to_f32(&bytes[2 * n..], &mut out[n..]);
}

pub(crate) fn quantize(xp: &[f32], coef: &[f32], g: f32, q: &mut [i32]) -> i32 {
    let n = xp.len() / 4 * 4;
    let (pp, cp, qp) = (xp.as_ptr(), coef.as_ptr(), q.as_mut_ptr());
    let (vg, vr, vm) = (
        f32x4_splat(g),
        f32x4_splat(scalar::QUANT_ROUND),
        f32x4_splat(scalar::QUANT_MAX),
    );
    let zero = f32x4_splat(0.0);
    let mut acc = i32x4_splat(0);
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= len of xp, coef and q.
        unsafe {
            let m = f32x4_pmin(vm, f32x4_add(f32x4_mul(ld(pp.add(i)), vg), vr));
            let mi = i32x4_trunc_sat_f32x4(m);
            acc = i32x4_max(acc, mi);
            let neg = f32x4_lt(ld(cp.add(i)), zero);
            let v = i32x4_sub(v128_xor(mi, neg), neg);
            v128_store(qp.add(i).cast(), v);
        }
    }
    let lanes = [
        i32x4_extract_lane::<0>(acc),
        i32x4_extract_lane::<1>(acc),
        i32x4_extract_lane::<2>(acc),
        i32x4_extract_lane::<3>(acc),
    ];
    let tail = scalar::quantize(&xp[n..], &coef[n..], g, &mut q[n..]);
    lanes.into_iter().fold(tail, i32::max)
}
