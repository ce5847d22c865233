//! x86_64 kernels: SSE2 (part of the x86_64 baseline) and AVX2 (detected at run time).
//!
//! Each kernel runs its vector loop over whole blocks and hands the tail to the scalar kernel
//! on the remaining sub-slices, so results are bit-identical to [`super::scalar`].

use super::scalar;

pub(crate) mod sse2 {
    use core::arch::x86_64::*;

    use super::scalar;

    /// The eight lanes of two vectors, `lo` first.
    #[inline(always)]
    fn lanes8(lo: __m128, hi: __m128) -> [f32; 8] {
        let mut acc = [0.0f32; 8];
        // SAFETY: `acc` holds 8 floats; unaligned stores.
        unsafe {
            _mm_storeu_ps(acc.as_mut_ptr(), lo);
            _mm_storeu_ps(acc.as_mut_ptr().add(4), hi);
        }
        acc
    }

    /// All-ones in the lanes of `x` that are NaN or infinite.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn non_finite(x: __m128) -> __m128i {
        let exp = _mm_set1_epi32(0x7f80_0000);
        _mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(x), exp), exp)
    }

    /// [`scalar::sanitize_clamp`] of four values, and which were not finite.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn sanitize4(x: __m128) -> (__m128, __m128i) {
        let nf = non_finite(x);
        let c = _mm_min_ps(_mm_max_ps(x, _mm_set1_ps(-1.0)), _mm_set1_ps(1.0));
        (_mm_andnot_ps(_mm_castsi128_ps(nf), c), nf)
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn add_into(dst: &mut [f32], src: &[f32]) {
        let n = dst.len().min(src.len()) / 4 * 4;
        let (dp, sp) = (dst.as_mut_ptr(), src.as_ptr());
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= len of both slices; unaligned loads/stores.
            unsafe {
                let v = _mm_add_ps(_mm_loadu_ps(dp.add(i)), _mm_loadu_ps(sp.add(i)));
                _mm_storeu_ps(dp.add(i), v);
            }
        }
        scalar::add_into(&mut dst[n..], &src[n..]);
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn sum_squares(x: &[f32]) -> f32 {
        let n = x.len() / 8 * 8;
        let p = x.as_ptr();
        let (mut lo, mut hi) = (_mm_setzero_ps(), _mm_setzero_ps());
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= x.len().
            let (a, b) = unsafe { (_mm_loadu_ps(p.add(i)), _mm_loadu_ps(p.add(i + 4))) };
            lo = _mm_add_ps(lo, _mm_mul_ps(a, a));
            hi = _mm_add_ps(hi, _mm_mul_ps(b, b));
        }
        scalar::fold8(lanes8(lo, hi), &x[n..])
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does); `x` must cover every output:
    /// `(out.len() - 1) * step + h.len() <= x.len()` (checked by the caller), `h.len() % 8 == 0`.
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn fir8(x: &[f32], h: &[f32], step: usize, out: &mut [f32]) {
        let taps = h.len() / 8 * 8;
        let (xp, hp) = (x.as_ptr(), h.as_ptr());
        for (m, o) in out.iter_mut().enumerate() {
            let (mut lo, mut hi) = (_mm_setzero_ps(), _mm_setzero_ps());
            for k in (0..taps).step_by(8) {
                // SAFETY: k + 8 <= taps <= h.len(); m * step + k + 8 <= x.len() (caller).
                let (h0, h1, x0, x1) = unsafe {
                    (
                        _mm_loadu_ps(hp.add(k)),
                        _mm_loadu_ps(hp.add(k + 4)),
                        _mm_loadu_ps(xp.add(m * step + k)),
                        _mm_loadu_ps(xp.add(m * step + k + 4)),
                    )
                };
                lo = _mm_add_ps(lo, _mm_mul_ps(h0, x0));
                hi = _mm_add_ps(hi, _mm_mul_ps(h1, x1));
            }
            *o = scalar::fold8(lanes8(lo, hi), &[]);
        }
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn all_finite(x: &[f32]) -> bool {
        let n = x.len() / 4 * 4;
        let p = x.as_ptr();
        let mut bad = _mm_setzero_si128();
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= x.len().
            let v = unsafe { _mm_loadu_ps(p.add(i)) };
            bad = _mm_or_si128(bad, non_finite(v));
        }
        _mm_movemask_epi8(bad) == 0 && scalar::all_finite(&x[n..])
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn zero_non_finite(x: &mut [f32]) {
        let n = x.len() / 4 * 4;
        let p = x.as_mut_ptr();
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= x.len().
            unsafe {
                let v = _mm_loadu_ps(p.add(i));
                let v = _mm_andnot_ps(_mm_castsi128_ps(non_finite(v)), v);
                _mm_storeu_ps(p.add(i), v);
            }
        }
        scalar::zero_non_finite(&mut x[n..]);
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn sanitize_clamp(x: &mut [f32]) {
        let n = x.len() / 4 * 4;
        let p = x.as_mut_ptr();
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= x.len().
            unsafe { _mm_storeu_ps(p.add(i), sanitize4(_mm_loadu_ps(p.add(i))).0) };
        }
        scalar::sanitize_clamp(&mut x[n..]);
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn deinterleave2_clamp(x: &[f32], l: &mut [f32], r: &mut [f32]) -> bool {
        let n = l.len() / 4 * 4;
        let (xp, lp, rp) = (x.as_ptr(), l.as_mut_ptr(), r.as_mut_ptr());
        let mut bad = _mm_setzero_si128();
        for i in (0..n).step_by(4) {
            // SAFETY: x holds 2 * l.len() values, r.len() == l.len() (caller); i + 4 <= n.
            unsafe {
                let (a, b) = (_mm_loadu_ps(xp.add(2 * i)), _mm_loadu_ps(xp.add(2 * i + 4)));
                for (v, p) in [
                    (_mm_shuffle_ps::<0b10_00_10_00>(a, b), lp.add(i)),
                    (_mm_shuffle_ps::<0b11_01_11_01>(a, b), rp.add(i)),
                ] {
                    let (c, nf) = sanitize4(v);
                    bad = _mm_or_si128(bad, nf);
                    _mm_storeu_ps(p, c);
                }
            }
        }
        let tail = scalar::deinterleave2_clamp(&x[2 * n..], &mut l[n..], &mut r[n..]);
        _mm_movemask_epi8(bad) == 0 && tail
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn downmix2(x: &[f32], out: &mut [f32]) {
        let n = out.len() / 4 * 4;
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let half = _mm_set1_ps(0.5);
        for i in (0..n).step_by(4) {
            // SAFETY: x holds 2 * out.len() values (checked by the caller); i + 4 <= n.
            unsafe {
                let a = _mm_loadu_ps(xp.add(2 * i));
                let b = _mm_loadu_ps(xp.add(2 * i + 4));
                let l = _mm_shuffle_ps::<0b10_00_10_00>(a, b);
                let r = _mm_shuffle_ps::<0b11_01_11_01>(a, b);
                _mm_storeu_ps(op.add(i), _mm_mul_ps(_mm_add_ps(l, r), half));
            }
        }
        scalar::downmix2(&x[2 * n..], &mut out[n..]);
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn interleave2(l: &[f32], r: &[f32], out: &mut [f32]) {
        let n = l.len() / 4 * 4;
        let (lp, rp, op) = (l.as_ptr(), r.as_ptr(), out.as_mut_ptr());
        for i in (0..n).step_by(4) {
            // SAFETY: l, r hold out.len() / 2 values (checked by the caller); i + 4 <= n.
            unsafe {
                let (a, b) = (_mm_loadu_ps(lp.add(i)), _mm_loadu_ps(rp.add(i)));
                _mm_storeu_ps(op.add(2 * i), _mm_unpacklo_ps(a, b));
                _mm_storeu_ps(op.add(2 * i + 4), _mm_unpackhi_ps(a, b));
            }
        }
        scalar::interleave2(&l[n..], &r[n..], &mut out[2 * n..]);
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn deinterleave2(x: &[f32], l: &mut [f32], r: &mut [f32]) {
        let n = l.len() / 4 * 4;
        let (xp, lp, rp) = (x.as_ptr(), l.as_mut_ptr(), r.as_mut_ptr());
        for i in (0..n).step_by(4) {
            // SAFETY: x holds 2 * l.len() values, r.len() == l.len() (caller); i + 4 <= n.
            unsafe {
                let a = _mm_loadu_ps(xp.add(2 * i));
                let b = _mm_loadu_ps(xp.add(2 * i + 4));
                _mm_storeu_ps(lp.add(i), _mm_shuffle_ps::<0b10_00_10_00>(a, b));
                _mm_storeu_ps(rp.add(i), _mm_shuffle_ps::<0b11_01_11_01>(a, b));
            }
        }
        scalar::deinterleave2(&x[2 * n..], &mut l[n..], &mut r[n..]);
    }

    /// `bg * g + s`, stored; lanes above the knee then go through the scalar limiter.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn mix4(bg: __m128, g: __m128, s: __m128, out: &mut [f32]) {
        let y = _mm_add_ps(_mm_mul_ps(bg, g), s);
        let abs = _mm_andnot_ps(_mm_set1_ps(-0.0), y);
        let over = _mm_movemask_ps(_mm_cmpgt_ps(abs, _mm_set1_ps(scalar::LIMIT_KNEE)));
        // SAFETY: callers pass `out` with at least 4 values.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), y) };
        if over != 0 {
            for v in &mut out[..4] {
                *v = scalar::soft_limit(*v);
            }
        }
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn duck_mix1(bg: &[f32], gain: &[f32], io: &mut [f32]) {
        let n = gain.len() / 4 * 4;
        let (bp, gp) = (bg.as_ptr(), gain.as_ptr());
        for i in (0..n).step_by(4) {
            let out = &mut io[i..i + 4];
            // SAFETY: bg and gain hold gain.len() values (caller), `out` 4; i + 4 <= n.
            let (b, s, g) = unsafe {
                (
                    _mm_loadu_ps(bp.add(i)),
                    _mm_loadu_ps(out.as_ptr()),
                    _mm_loadu_ps(gp.add(i)),
                )
            };
            mix4(b, g, s, out);
        }
        scalar::duck_mix(&bg[n..], &gain[n..], 1, &mut io[n..]);
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn duck_mix2(bg: &[f32], gain: &[f32], io: &mut [f32]) {
        let n = gain.len() / 4 * 4;
        let (bp, gp) = (bg.as_ptr(), gain.as_ptr());
        for f in (0..n).step_by(4) {
            let i = 2 * f;
            let out = &mut io[i..i + 8];
            // SAFETY: bg holds 2 * gain.len() values (caller), `out` 8; f + 4 <= n.
            let (b0, b1, s0, s1, g) = unsafe {
                (
                    _mm_loadu_ps(bp.add(i)),
                    _mm_loadu_ps(bp.add(i + 4)),
                    _mm_loadu_ps(out.as_ptr()),
                    _mm_loadu_ps(out.as_ptr().add(4)),
                    _mm_loadu_ps(gp.add(f)),
                )
            };
            let (lo, hi) = out.split_at_mut(4);
            mix4(b0, _mm_unpacklo_ps(g, g), s0, lo);
            mix4(b1, _mm_unpackhi_ps(g, g), s1, hi);
        }
        scalar::duck_mix(&bg[2 * n..], &gain[n..], 2, &mut io[2 * n..]);
    }

    /// Four samples to i32, rounded as [`scalar::to_i16`] rounds.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn round4(x: __m128) -> __m128i {
        let ordered = _mm_cmpord_ps(x, x);
        let c = _mm_min_ps(_mm_max_ps(x, _mm_set1_ps(-1.0)), _mm_set1_ps(1.0));
        let v = _mm_mul_ps(_mm_and_ps(c, ordered), _mm_set1_ps(32767.0));
        let t = _mm_cvttps_epi32(v);
        // v - trunc(v) is exact here (|v| <= 32767).
        let d = _mm_sub_ps(v, _mm_cvtepi32_ps(t));
        let frac = _mm_andnot_ps(_mm_set1_ps(-0.0), d);
        let away = _mm_castps_si128(_mm_cmpge_ps(frac, _mm_set1_ps(0.5)));
        let sign = _mm_or_si128(_mm_srai_epi32::<31>(_mm_castps_si128(v)), _mm_set1_epi32(1));
        _mm_add_epi32(t, _mm_and_si128(away, sign))
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn f32_to_i16(x: &[f32], out: &mut [i16]) {
        let n = x.len() / 8 * 8;
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        for i in (0..n).step_by(8) {
            // SAFETY: out.len() >= x.len() (caller); i + 8 <= n.
            unsafe {
                let a = round4(_mm_loadu_ps(xp.add(i)));
                let b = round4(_mm_loadu_ps(xp.add(i + 4)));
                _mm_storeu_si128(op.add(i).cast(), _mm_packs_epi32(a, b));
            }
        }
        scalar::f32_to_i16(&x[n..], &mut out[n..]);
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn s16le_to_f32(bytes: &[u8], out: &mut [f32]) {
        let n = out.len() / 8 * 8;
        let (bp, op) = (bytes.as_ptr(), out.as_mut_ptr());
        let scale = _mm_set1_ps(1.0 / 32768.0);
        for i in (0..n).step_by(8) {
            // SAFETY: bytes holds 2 * out.len() bytes (caller); i + 8 <= n.
            unsafe {
                let v = _mm_loadu_si128(bp.add(2 * i).cast());
                let lo = _mm_srai_epi32::<16>(_mm_unpacklo_epi16(v, v));
                let hi = _mm_srai_epi32::<16>(_mm_unpackhi_epi16(v, v));
                _mm_storeu_ps(op.add(i), _mm_mul_ps(_mm_cvtepi32_ps(lo), scale));
                _mm_storeu_ps(op.add(i + 4), _mm_mul_ps(_mm_cvtepi32_ps(hi), scale));
            }
        }
        scalar::s16le_to_f32(&bytes[2 * n..], &mut out[n..]);
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does). `coef` and `q` are as long as `xp`.
    #[target_feature(enable = "sse2")]
    pub(crate) unsafe fn quantize(xp: &[f32], coef: &[f32], g: f32, q: &mut [i32]) -> i32 {
        let n = xp.len() / 4 * 4;
        let (pp, cp, qp) = (xp.as_ptr(), coef.as_ptr(), q.as_mut_ptr());
        let (vg, vr, vm) = (
            _mm_set1_ps(g),
            _mm_set1_ps(scalar::QUANT_ROUND),
            _mm_set1_ps(scalar::QUANT_MAX),
        );
        let zero = _mm_setzero_ps();
        let mut acc = _mm_setzero_si128();
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= len of xp, coef and q.
            unsafe {
                let m = _mm_min_ps(_mm_add_ps(_mm_mul_ps(_mm_loadu_ps(pp.add(i)), vg), vr), vm);
                let mi = _mm_cvttps_epi32(m);
                let gt = _mm_cmpgt_epi32(mi, acc);
                acc = _mm_or_si128(_mm_and_si128(gt, mi), _mm_andnot_si128(gt, acc));
                let neg = _mm_castps_si128(_mm_cmplt_ps(_mm_loadu_ps(cp.add(i)), zero));
                let v = _mm_sub_epi32(_mm_xor_si128(mi, neg), neg);
                _mm_storeu_si128(qp.add(i).cast(), v);
            }
        }
        let mut lanes = [0i32; 4];
        // SAFETY: lanes holds 4 i32.
        unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), acc) };
        let tail = scalar::quantize(&xp[n..], &coef[n..], g, &mut q[n..]);
        lanes.into_iter().fold(tail, i32::max)
    }
}

pub(crate) mod avx2 {
    //! AVX2 kernels. Each is `unsafe` only because it needs AVX2: `super::super::best` selects
    //! this module after `is_x86_feature_detected!("avx2")`.
    use core::arch::x86_64::*;

    use super::scalar;

    #[target_feature(enable = "avx2")]
    #[inline]
    fn non_finite(x: __m256) -> __m256i {
        let exp = _mm256_set1_epi32(0x7f80_0000);
        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(x), exp), exp)
    }

    /// [`scalar::sanitize_clamp`] of eight values, and which were not finite.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn sanitize8(x: __m256) -> (__m256, __m256i) {
        let nf = non_finite(x);
        let c = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-1.0)), _mm256_set1_ps(1.0));
        (_mm256_andnot_ps(_mm256_castsi256_ps(nf), c), nf)
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn add_into(dst: &mut [f32], src: &[f32]) {
        let n = dst.len().min(src.len()) / 8 * 8;
        let (dp, sp) = (dst.as_mut_ptr(), src.as_ptr());
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= len of both slices; unaligned loads/stores.
            unsafe {
                let v = _mm256_add_ps(_mm256_loadu_ps(dp.add(i)), _mm256_loadu_ps(sp.add(i)));
                _mm256_storeu_ps(dp.add(i), v);
            }
        }
        scalar::add_into(&mut dst[n..], &src[n..]);
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn sum_squares(x: &[f32]) -> f32 {
        let n = x.len() / 8 * 8;
        let p = x.as_ptr();
        let mut acc = _mm256_setzero_ps();
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= x.len().
            let a = unsafe { _mm256_loadu_ps(p.add(i)) };
            acc = _mm256_add_ps(acc, _mm256_mul_ps(a, a));
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 floats; unaligned store.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        let tail = &x[n..];
        if tail.len() < 4 {
            return scalar::fold8(lanes, tail);
        }
        // Tail element k goes to lane k (as in the scalar reference): four of them in one
        // 128-bit step (short bands: widths are multiples of 4), the rest to lanes 4...
        // SAFETY: n + 4 <= x.len(); `lanes` holds 8 floats.
        unsafe {
            let a = _mm_loadu_ps(p.add(n));
            let lo = _mm_add_ps(_mm_loadu_ps(lanes.as_ptr()), _mm_mul_ps(a, a));
            _mm_storeu_ps(lanes.as_mut_ptr(), lo);
        }
        for (l, v) in lanes[4..].iter_mut().zip(&tail[4..]) {
            *l += v * v;
        }
        scalar::fold8(lanes, &[])
    }

    /// `f()`, compiled with AVX2 for whatever LLVM inlines into it.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) unsafe fn call<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// # Safety
    /// The CPU must support AVX2; `x` must cover every output:
    /// `(out.len() - 1) * step + h.len() <= x.len()` (checked by the caller), `h.len() % 8 == 0`.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn fir8(x: &[f32], h: &[f32], step: usize, out: &mut [f32]) {
        let taps = h.len() / 8 * 8;
        let (xp, hp) = (x.as_ptr(), h.as_ptr());
        let fold = |acc: __m256| {
            let mut lanes = [0.0f32; 8];
            // SAFETY: `lanes` holds 8 floats; unaligned store.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
            scalar::fold8(lanes, &[])
        };
        // Four outputs per pass: four independent add chains (one would wait on the add
        // latency), sharing the coefficient loads.
        let mut quads = out.chunks_exact_mut(4);
        let mut m = 0;
        for o in &mut quads {
            let mut acc = [_mm256_setzero_ps(); 4];
            for k in (0..taps).step_by(8) {
                // SAFETY: k + 8 <= taps <= h.len(); (m + 3) * step + k + 8 <= x.len() (caller).
                let hv = unsafe { _mm256_loadu_ps(hp.add(k)) };
                for (i, a) in acc.iter_mut().enumerate() {
                    // SAFETY: as above.
                    let xv = unsafe { _mm256_loadu_ps(xp.add((m + i) * step + k)) };
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(hv, xv));
                }
            }
            for (o, a) in o.iter_mut().zip(acc) {
                *o = fold(a);
            }
            m += 4;
        }
        for o in quads.into_remainder() {
            let mut a = _mm256_setzero_ps();
            for k in (0..taps).step_by(8) {
                // SAFETY: as above, for output m.
                let (hv, xa) = unsafe {
                    (
                        _mm256_loadu_ps(hp.add(k)),
                        _mm256_loadu_ps(xp.add(m * step + k)),
                    )
                };
                a = _mm256_add_ps(a, _mm256_mul_ps(hv, xa));
            }
            *o = fold(a);
            m += 1;
        }
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn all_finite(x: &[f32]) -> bool {
        // A value is not finite when its exponent is all ones: when its bits shifted left by
        // one (the sign dropped) are at least 0xFF00_0000. The largest such word over four
        // independent accumulators, 32 values per pass.
        let n32 = x.len() / 32 * 32;
        let p = x.as_ptr().cast::<__m256i>();
        let mut m = [_mm256_setzero_si256(); 4];
        for i in (0..n32 / 8).step_by(4) {
            for (k, acc) in m.iter_mut().enumerate() {
                // SAFETY: 8 * (i + k) + 8 <= n32 <= x.len().
                let v = unsafe { _mm256_loadu_si256(p.add(i + k)) };
                *acc = _mm256_max_epu32(*acc, _mm256_slli_epi32::<1>(v));
            }
        }
        let top = _mm256_max_epu32(_mm256_max_epu32(m[0], m[1]), _mm256_max_epu32(m[2], m[3]));
        let limit = _mm256_set1_epi32(0xff00_0000_u32 as i32);
        let bad = _mm256_cmpeq_epi32(_mm256_max_epu32(top, limit), top);
        if _mm256_testz_si256(bad, bad) == 0 {
            return false;
        }
        let rest = &x[n32..];
        let n = rest.len() / 8 * 8;
        let p = rest.as_ptr();
        let mut bad = _mm256_setzero_si256();
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= rest.len().
            let v = unsafe { _mm256_loadu_ps(p.add(i)) };
            bad = _mm256_or_si256(bad, non_finite(v));
        }
        _mm256_testz_si256(bad, bad) == 1 && scalar::all_finite(&rest[n..])
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn zero_non_finite(x: &mut [f32]) {
        let n = x.len() / 8 * 8;
        let p = x.as_mut_ptr();
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= x.len().
            unsafe {
                let v = _mm256_loadu_ps(p.add(i));
                let v = _mm256_andnot_ps(_mm256_castsi256_ps(non_finite(v)), v);
                _mm256_storeu_ps(p.add(i), v);
            }
        }
        scalar::zero_non_finite(&mut x[n..]);
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn sanitize_clamp(x: &mut [f32]) {
        let n = x.len() / 8 * 8;
        let p = x.as_mut_ptr();
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= x.len().
            unsafe { _mm256_storeu_ps(p.add(i), sanitize8(_mm256_loadu_ps(p.add(i))).0) };
        }
        scalar::sanitize_clamp(&mut x[n..]);
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn deinterleave2_clamp(x: &[f32], l: &mut [f32], r: &mut [f32]) -> bool {
        let n = l.len() / 8 * 8;
        let (xp, lp, rp) = (x.as_ptr(), l.as_mut_ptr(), r.as_mut_ptr());
        let mut bad = _mm256_setzero_si256();
        for i in (0..n).step_by(8) {
            // SAFETY: x holds 2 * l.len() values, r.len() == l.len() (caller); i + 8 <= n.
            unsafe {
                let a = _mm256_loadu_ps(xp.add(2 * i));
                let b = _mm256_loadu_ps(xp.add(2 * i + 8));
                let (e, o) = split_even_odd(a, b);
                for (v, p) in [(e, lp.add(i)), (o, rp.add(i))] {
                    let (c, nf) = sanitize8(v);
                    bad = _mm256_or_si256(bad, nf);
                    _mm256_storeu_ps(p, c);
                }
            }
        }
        let tail = scalar::deinterleave2_clamp(&x[2 * n..], &mut l[n..], &mut r[n..]);
        _mm256_testz_si256(bad, bad) == 1 && tail
    }

    /// Even and odd elements of the 16 floats `a ++ b`, in order.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn split_even_odd(a: __m256, b: __m256) -> (__m256, __m256) {
        let e = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
        let o = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
        // 64-bit chunks come out as (a lo, b lo, a hi, b hi): put them back in order.
        let e = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(e)));
        let o = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(o)));
        (e, o)
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn downmix2(x: &[f32], out: &mut [f32]) {
        let n = out.len() / 8 * 8;
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let half = _mm256_set1_ps(0.5);
        for i in (0..n).step_by(8) {
            // SAFETY: x holds 2 * out.len() values (checked by the caller); i + 8 <= n.
            unsafe {
                let a = _mm256_loadu_ps(xp.add(2 * i));
                let b = _mm256_loadu_ps(xp.add(2 * i + 8));
                let (l, r) = split_even_odd(a, b);
                _mm256_storeu_ps(op.add(i), _mm256_mul_ps(_mm256_add_ps(l, r), half));
            }
        }
        scalar::downmix2(&x[2 * n..], &mut out[n..]);
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn interleave2(l: &[f32], r: &[f32], out: &mut [f32]) {
        let n = l.len() / 8 * 8;
        let (lp, rp, op) = (l.as_ptr(), r.as_ptr(), out.as_mut_ptr());
        for i in (0..n).step_by(8) {
            // SAFETY: l, r hold out.len() / 2 values (checked by the caller); i + 8 <= n.
            unsafe {
                let (a, b) = (_mm256_loadu_ps(lp.add(i)), _mm256_loadu_ps(rp.add(i)));
                let (lo, hi) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
                _mm256_storeu_ps(op.add(2 * i), _mm256_permute2f128_ps::<0x20>(lo, hi));
                _mm256_storeu_ps(op.add(2 * i + 8), _mm256_permute2f128_ps::<0x31>(lo, hi));
            }
        }
        scalar::interleave2(&l[n..], &r[n..], &mut out[2 * n..]);
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn deinterleave2(x: &[f32], l: &mut [f32], r: &mut [f32]) {
        let n = l.len() / 8 * 8;
        let (xp, lp, rp) = (x.as_ptr(), l.as_mut_ptr(), r.as_mut_ptr());
        for i in (0..n).step_by(8) {
            // SAFETY: x holds 2 * l.len() values, r.len() == l.len() (caller); i + 8 <= n.
            unsafe {
                let a = _mm256_loadu_ps(xp.add(2 * i));
                let b = _mm256_loadu_ps(xp.add(2 * i + 8));
                let (e, o) = split_even_odd(a, b);
                _mm256_storeu_ps(lp.add(i), e);
                _mm256_storeu_ps(rp.add(i), o);
            }
        }
        scalar::deinterleave2(&x[2 * n..], &mut l[n..], &mut r[n..]);
    }

    /// `bg * g + s`, stored; lanes above the knee then go through the scalar limiter.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn mix8(bg: __m256, g: __m256, s: __m256, out: &mut [f32]) {
        let y = _mm256_add_ps(_mm256_mul_ps(bg, g), s);
        let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), y);
        let knee = _mm256_set1_ps(scalar::LIMIT_KNEE);
        let over = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(abs, knee));
        let out = &mut out[..8];
        // SAFETY: `out` has 8 values (sliced above).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), y) };
        if over != 0 {
            for v in out {
                *v = scalar::soft_limit(*v);
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn duck_mix1(bg: &[f32], gain: &[f32], io: &mut [f32]) {
        let n = gain.len() / 8 * 8;
        let (bp, gp) = (bg.as_ptr(), gain.as_ptr());
        for i in (0..n).step_by(8) {
            let out = &mut io[i..i + 8];
            // SAFETY: bg and gain hold gain.len() values (caller), `out` 8; i + 8 <= n.
            let (b, s, g) = unsafe {
                (
                    _mm256_loadu_ps(bp.add(i)),
                    _mm256_loadu_ps(out.as_ptr()),
                    _mm256_loadu_ps(gp.add(i)),
                )
            };
            mix8(b, g, s, out);
        }
        scalar::duck_mix(&bg[n..], &gain[n..], 1, &mut io[n..]);
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn duck_mix2(bg: &[f32], gain: &[f32], io: &mut [f32]) {
        let n = gain.len() / 8 * 8;
        let (bp, gp) = (bg.as_ptr(), gain.as_ptr());
        for f in (0..n).step_by(8) {
            let i = 2 * f;
            let out = &mut io[i..i + 16];
            // SAFETY: bg holds 2 * gain.len() values (caller), `out` 16; f + 8 <= n.
            let (b0, b1, s0, s1, g) = unsafe {
                (
                    _mm256_loadu_ps(bp.add(i)),
                    _mm256_loadu_ps(bp.add(i + 8)),
                    _mm256_loadu_ps(out.as_ptr()),
                    _mm256_loadu_ps(out.as_ptr().add(8)),
                    _mm256_loadu_ps(gp.add(f)),
                )
            };
            // Each gain twice: (g0 g0 g1 g1 g2 g2 g3 g3) and (g4 g4 ... g7 g7).
            let (lo, hi) = (_mm256_unpacklo_ps(g, g), _mm256_unpackhi_ps(g, g));
            let g0 = _mm256_permute2f128_ps::<0x20>(lo, hi);
            let g1 = _mm256_permute2f128_ps::<0x31>(lo, hi);
            let (lo, hi) = out.split_at_mut(8);
            mix8(b0, g0, s0, lo);
            mix8(b1, g1, s1, hi);
        }
        scalar::duck_mix(&bg[2 * n..], &gain[n..], 2, &mut io[2 * n..]);
    }

    /// Eight samples to i32, rounded as [`scalar::to_i16`] rounds.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn round8(x: __m256) -> __m256i {
        let ordered = _mm256_cmp_ps::<_CMP_ORD_Q>(x, x);
        let c = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-1.0)), _mm256_set1_ps(1.0));
        let v = _mm256_mul_ps(_mm256_and_ps(c, ordered), _mm256_set1_ps(32767.0));
        let t = _mm256_cvttps_epi32(v);
        // v - trunc(v) is exact here (|v| <= 32767).
        let d = _mm256_sub_ps(v, _mm256_cvtepi32_ps(t));
        let frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0), d);
        let away = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5)));
        let sign = _mm256_or_si256(
            _mm256_srai_epi32::<31>(_mm256_castps_si256(v)),
            _mm256_set1_epi32(1),
        );
        _mm256_add_epi32(t, _mm256_and_si256(away, sign))
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn f32_to_i16(x: &[f32], out: &mut [i16]) {
        let n = x.len() / 16 * 16;
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        for i in (0..n).step_by(16) {
            // SAFETY: out.len() >= x.len() (caller); i + 16 <= n.
            unsafe {
                let a = round8(_mm256_loadu_ps(xp.add(i)));
                let b = round8(_mm256_loadu_ps(xp.add(i + 8)));
                // packs works per 128-bit half: (a0 b0 a1 b1) in 64-bit chunks; reorder.
                let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(a, b));
                _mm256_storeu_si256(op.add(i).cast(), p);
            }
        }
        scalar::f32_to_i16(&x[n..], &mut out[n..]);
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn s16le_to_f32(bytes: &[u8], out: &mut [f32]) {
        let n = out.len() / 8 * 8;
        let (bp, op) = (bytes.as_ptr(), out.as_mut_ptr());
        let scale = _mm256_set1_ps(1.0 / 32768.0);
        for i in (0..n).step_by(8) {
            // SAFETY: bytes holds 2 * out.len() bytes (caller); i + 8 <= n.
            unsafe {
                let v = _mm_loadu_si128(bp.add(2 * i).cast());
                let w = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(v));
                _mm256_storeu_ps(op.add(i), _mm256_mul_ps(w, scale));
            }
        }
        scalar::s16le_to_f32(&bytes[2 * n..], &mut out[n..]);
    }

    /// # Safety
    /// The CPU must support AVX2. `coef` and `q` are as long as `xp`.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn quantize(xp: &[f32], coef: &[f32], g: f32, q: &mut [i32]) -> i32 {
        let n = xp.len() / 8 * 8;
        let (pp, cp, qp) = (xp.as_ptr(), coef.as_ptr(), q.as_mut_ptr());
        let (vg, vr, vm) = (
            _mm256_set1_ps(g),
            _mm256_set1_ps(scalar::QUANT_ROUND),
            _mm256_set1_ps(scalar::QUANT_MAX),
        );
        let zero = _mm256_setzero_ps();
        let mut acc = _mm256_setzero_si256();
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= len of xp, coef and q.
            unsafe {
                let p = _mm256_loadu_ps(pp.add(i));
                let m = _mm256_min_ps(_mm256_add_ps(_mm256_mul_ps(p, vg), vr), vm);
                let mi = _mm256_cvttps_epi32(m);
                acc = _mm256_max_epi32(acc, mi);
                let c = _mm256_loadu_ps(cp.add(i));
                let neg = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(c, zero));
                let v = _mm256_sub_epi32(_mm256_xor_si256(mi, neg), neg);
                _mm256_storeu_si256(qp.add(i).cast(), v);
            }
        }
        let mut lanes = [0i32; 8];
        // SAFETY: lanes holds 8 i32.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
        // Four more in 128-bit lanes (band widths are multiples of 4: most bands end here).
        let mut n4 = n;
        if xp.len() - n >= 4 {
            // SAFETY: n + 4 <= len of xp, coef and q.
            unsafe {
                let p = _mm_loadu_ps(pp.add(n));
                let m = _mm_min_ps(
                    _mm_add_ps(
                        _mm_mul_ps(p, _mm256_castps256_ps128(vg)),
                        _mm256_castps256_ps128(vr),
                    ),
                    _mm256_castps256_ps128(vm),
                );
                let mi = _mm_cvttps_epi32(m);
                let c = _mm_loadu_ps(cp.add(n));
                let neg = _mm_castps_si128(_mm_cmplt_ps(c, _mm_setzero_ps()));
                let v = _mm_sub_epi32(_mm_xor_si128(mi, neg), neg);
                _mm_storeu_si128(qp.add(n).cast(), v);
                let mut four = [0i32; 4];
                _mm_storeu_si128(four.as_mut_ptr().cast(), mi);
                for (l, f) in lanes.iter_mut().zip(four) {
                    *l = (*l).max(f);
                }
            }
            n4 = n + 4;
        }
        let tail = scalar::quantize(&xp[n4..], &coef[n4..], g, &mut q[n4..]);
        lanes.into_iter().fold(tail, i32::max)
    }
}
