//! A complex FFT whose results are the same bits on every path (scalar, SSE2, AVX2, wasm
//! simd128): radix-2 decimation in time over split real/imaginary arrays, every butterfly
//! computed with the same operations in the same order. The vector paths are the same safe
//! code compiled for the wider ISA (LLVM vectorizes the butterflies of each stage across `j`;
//! it never fuses or reorders float operations), so native and wasm MDCTs — and the AAC
//! encoder's decisions that depend on them — agree exactly. rustfft's SIMD planners pick
//! different algorithms per ISA, which differ in the last bits.
//!
//! [`Plan::process_with`] (the decoder's IMDCT and the encoder's MDCT) takes its input in natural order and
//! hands its output on through lane-wise vector code ([`Quad`]: SSE2, simd128 or plain
//! arrays, the same operations lane by lane): the first four stages run on the input as it
//! comes, with 4x4 transposes in place of the bit-reversal permutation (with AVX2, stages 4
//! and 8 on eight lanes: `stages_4_8_avx2`).

use super::Isa;

/// A transform size with its bit-reversal table and twiddles.
pub(crate) struct Plan {
    n: usize,
    rev: Vec<u32>,
    /// Twiddles of the stage with half-size `h` at `[h, 2h)`: `exp(-2 pi i j / 2h)`.
    tw_re: Vec<f32>,
    tw_im: Vec<f32>,
}

impl Plan {
    /// A forward FFT of `n` points (a power of two, at least 4).
    pub(crate) fn new(n: usize) -> Plan {
        assert!(n.is_power_of_two() && n >= 4, "FFT size {n}");
        let bits = n.trailing_zeros();
        let rev = (0..n as u32)
            .map(|i| i.reverse_bits() >> (32 - bits))
            .collect();
        let mut tw_re = vec![0.0; n];
        let mut tw_im = vec![0.0; n];
        let mut h = 1;
        while h < n {
            for j in 0..h {
                let a = -std::f64::consts::PI * j as f64 / h as f64;
                tw_re[h + j] = a.cos() as f32;
                tw_im[h + j] = a.sin() as f32;
            }
            h *= 2;
        }
        Plan {
            n,
            rev,
            tw_re,
            tw_im,
        }
    }

    /// Where input `i` goes before the butterflies (bit reversal; tests).
    #[cfg(test)]
    pub(crate) fn rev(&self) -> &[u32] {
        &self.rev
    }

    /// In-place forward transform of `re[..n] + i im[..n]` on `isa` (tests).
    #[cfg(test)]
    pub(crate) fn process_on(&self, isa: Isa, re: &mut [f32], im: &mut [f32]) {
        let (re, im) = (&mut re[..self.n], &mut im[..self.n]);
        for i in 0..self.n {
            let j = self.rev[i] as usize;
            if j > i {
                re.swap(i, j);
                im.swap(i, j);
            }
        }
        self.process_permuted_on(isa, re, im)
    }

    /// The transform of an input already in bit-reversed order (see [`Plan::rev`]): the
    /// reference [`Plan::process_with`] is tested against.
    #[cfg(test)]
    pub(crate) fn process_permuted_on(&self, isa: Isa, re: &mut [f32], im: &mut [f32]) {
        let (re, im) = (&mut re[..self.n], &mut im[..self.n]);
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only produced after `is_x86_feature_detected!("avx2")`.
            Isa::Avx2 => unsafe { avx2(self, re, im) },
            _ => {
                first_two(re, im);
                butterflies(self, re, im, stage_plain, pair_plain, 4)
            }
        }
    }

    /// The transform of an input in natural order that `x` produces four values at a time
    /// ([`Input::quarter`]), which go through the first two stages as they come and into
    /// bit-reversed order (no separate permutation pass); `y.finish` then takes the
    /// transform, on the same instruction set. Needs `n >= 16`. The results are the bits
    /// of `Plan::process_permuted_on` (the tests' reference) on the permuted input.
    pub(crate) fn process_with(
        &self,
        re: &mut [f32],
        im: &mut [f32],
        x: &impl Input,
        y: &mut impl Output,
    ) {
        self.process_with_on(super::best(), re, im, x, y)
    }

    pub(crate) fn process_with_on(
        &self,
        isa: Isa,
        re: &mut [f32],
        im: &mut [f32],
        x: &impl Input,
        y: &mut impl Output,
    ) {
        assert!(self.n >= 16, "FFT size {} for process_with", self.n);
        let (re, im) = (&mut re[..self.n], &mut im[..self.n]);
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only produced after `is_x86_feature_detected!("avx2")`.
            Isa::Avx2 => unsafe { avx2_with(self, re, im, x, y) },
            #[cfg(target_arch = "x86_64")]
            Isa::Sse2 => {
                first_two_from::<sse::Sse>(self, re, im, x);
                stages_4_8::<sse::Sse>(self, re, im);
                butterflies(self, re, im, stage_plain, pair_plain, 16);
                y.finish::<sse::Sse>(re, im)
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => {
                first_two_from::<simd128::Simd>(self, re, im, x);
                stages_4_8::<simd128::Simd>(self, re, im);
                butterflies(self, re, im, stage_plain, pair_plain, 16);
                y.finish::<simd128::Simd>(re, im)
            }
            Isa::Scalar => {
                first_two_from::<Plain4>(self, re, im, x);
                stages_4_8::<Plain4>(self, re, im);
                butterflies(self, re, im, stage_plain, pair_plain, 16);
                y.finish::<Plain4>(re, im)
            }
        }
    }
}

/// What takes an FFT's output (see [`Plan::process_with`]).
pub(crate) trait Output {
    /// The transform, `re[k] + i im[k]`.
    fn finish<V: Quad>(&mut self, re: &[f32], im: &[f32]);
}

/// An FFT input in natural order, four values at a time (see [`Plan::process_with`]).
pub(crate) trait Input {
    /// Quarter `j` (0..4) of the input, `x[j n/4..(j + 1) n/4]`, as consecutive vectors of
    /// four (real and imaginary parts).
    fn quarter<V: Quad>(&self, j: usize) -> impl Iterator<Item = (V, V)>;
}

/// Stages h = 1 and h = 2 over an input in bit-reversed order: twiddles 1 and -i, no
/// multiplications (the results are exact, so they equal the general butterfly's). Both in
/// one pass over blocks of four (the same operations as two passes).
#[cfg(test)]
#[inline(always)]
fn first_two(re: &mut [f32], im: &mut [f32]) {
    for (r, i) in re.chunks_exact_mut(4).zip(im.chunks_exact_mut(4)) {
        let (Ok(r), Ok(i)) = (<&mut [f32; 4]>::try_from(r), <&mut [f32; 4]>::try_from(i)) else {
            continue;
        };
        // h = 1: (0, 1) and (2, 3).
        let (r0, i0, r1, i1) = (r[0] + r[1], i[0] + i[1], r[0] - r[1], i[0] - i[1]);
        let (r2, i2, r3, i3) = (r[2] + r[3], i[2] + i[3], r[2] - r[3], i[2] - i[3]);
        // h = 2: (0, 2) with w = 1; (1, 3) with w = -i: (x, y) * -i = (y, -x).
        r[0] = r0 + r2;
        i[0] = i0 + i2;
        r[2] = r0 - r2;
        i[2] = i0 - i2;
        r[1] = r1 + i3;
        i[1] = i1 - r3;
        r[3] = r1 - i3;
        i[3] = i1 + r3;
    }
}

/// The first two stages (h = 1, 2) on an input in natural order (see [`Plan::process_with`]).
///
/// Block `b` of four (after bit reversal) holds `x[q]`, `x[q + n/2]`, `x[q + n/4]` and
/// `x[q + 3n/4]` for `q = rev(4b)`, so four consecutive `q` are four blocks: their
/// butterflies run lane-wise on the four quarters (vectors of four `q`), and a 4x4
/// transpose turns the results into the four blocks, each stored where it goes.
#[inline(always)]
fn first_two_from<V: Quad>(p: &Plan, re: &mut [f32], im: &mut [f32], x: &impl Input) {
    let (rb, _) = re.as_chunks_mut::<4>();
    let (ib, _) = im.as_chunks_mut::<4>();
    // Slot 1 of a block is x[q + n/2] (quarter 2), slot 2 x[q + n/4] (quarter 1).
    let quads = x.quarter::<V>(0).zip(x.quarter::<V>(2));
    let quads = quads.zip(x.quarter::<V>(1)).zip(x.quarter::<V>(3));
    // Four consecutive q: blocks rev(4q), rev(4q + 4), ...
    let (revs, _) = p.rev.as_chunks::<16>();
    for ((((x0, x1), x2), x3), rev) in quads.zip(revs) {
        let ((x0r, x0i), (x1r, x1i), (x2r, x2i), (x3r, x3i)) = (x0, x1, x2, x3);
        // h = 1: (0, 1) and (2, 3) of each block.
        let (r0, i0, r1, i1) = (x0r.add(x1r), x0i.add(x1i), x0r.sub(x1r), x0i.sub(x1i));
        let (r2, i2, r3, i3) = (x2r.add(x3r), x2i.add(x3i), x2r.sub(x3r), x2i.sub(x3i));
        // h = 2: (0, 2) with w = 1; (1, 3) with w = -i.
        let rows_re = V::transpose(r0.add(r2), r1.add(i3), r0.sub(r2), r1.sub(i3));
        let rows_im = V::transpose(i0.add(i2), i1.sub(r3), i0.sub(i2), i1.add(r3));
        let blocks = [rev[0], rev[4], rev[8], rev[12]];
        for ((b, vr), vi) in blocks.into_iter().zip(rows_re).zip(rows_im) {
            if let (Some(r), Some(i)) = (rb.get_mut(b as usize), ib.get_mut(b as usize)) {
                vr.store(r);
                vi.store(i);
            }
        }
    }
}

/// Stages h = 4 and h = 8 over every block of 16 (after [`first_two_from`]): the
/// butterflies of [`pair_fixed`] with H = 4, lane `j` of the vectors being its `j`, in one
/// loop (no call and no slicing per block).
#[inline(always)]
fn stages_4_8<V: Quad>(p: &Plan, re: &mut [f32], im: &mut [f32]) {
    let tw = |t: &[f32], k: usize| V::load(&t[k..k + 4]);
    let (wr, wi) = (tw(&p.tw_re, 4), tw(&p.tw_im, 4));
    let (ur, ui) = (tw(&p.tw_re, 8), tw(&p.tw_im, 8));
    let (vr, vi) = (tw(&p.tw_re, 12), tw(&p.tw_im, 12));
    let (rb, _) = re.as_chunks_mut::<16>();
    let (ib, _) = im.as_chunks_mut::<16>();
    for (r, i) in rb.iter_mut().zip(ib.iter_mut()) {
        let (r0, r1, r2, r3) = (
            V::load(&r[..4]),
            V::load(&r[4..8]),
            V::load(&r[8..12]),
            V::load(&r[12..]),
        );
        let (i0, i1, i2, i3) = (
            V::load(&i[..4]),
            V::load(&i[4..8]),
            V::load(&i[8..12]),
            V::load(&i[12..]),
        );
        // Stage h: (x0, x1) and (x2, x3), twiddle w.
        let (tr, ti) = (r1.mul(wr).sub(i1.mul(wi)), r1.mul(wi).add(i1.mul(wr)));
        let (y0r, y0i, y1r, y1i) = (r0.add(tr), i0.add(ti), r0.sub(tr), i0.sub(ti));
        let (sr, si) = (r3.mul(wr).sub(i3.mul(wi)), r3.mul(wi).add(i3.mul(wr)));
        let (y2r, y2i, y3r, y3i) = (r2.add(sr), i2.add(si), r2.sub(sr), i2.sub(si));
        // Stage 2h: (y0, y2) with u, (y1, y3) with v.
        let (pr, pi) = (y2r.mul(ur).sub(y2i.mul(ui)), y2r.mul(ui).add(y2i.mul(ur)));
        let (qr, qi) = (y3r.mul(vr).sub(y3i.mul(vi)), y3r.mul(vi).add(y3i.mul(vr)));
        let (rq, _) = r.as_chunks_mut::<4>();
        let (iq, _) = i.as_chunks_mut::<4>();
        let outs = [
            (y0r.add(pr), y0i.add(pi)),
            (y1r.add(qr), y1i.add(qi)),
            (y0r.sub(pr), y0i.sub(pi)),
            (y1r.sub(qr), y1i.sub(qi)),
        ];
        for ((r, i), (vr, vi)) in rq.iter_mut().zip(iq.iter_mut()).zip(outs) {
            vr.store(r);
            vi.store(i);
        }
    }
}

/// Four f32 lanes: the operations [`first_two_from`] needs, for each instruction set.
pub(crate) trait Quad: Copy {
    /// The first four values of `x` (which holds at least four).
    fn load(x: &[f32]) -> Self;
    fn store(self, x: &mut [f32; 4]);
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// `[a0, a2, b0, b2]`.
    fn even(a: Self, b: Self) -> Self;
    /// `[b3, b1, a3, a1]`.
    fn odd_rev(a: Self, b: Self) -> Self;
    /// `-a` (the sign flipped, also of zeros).
    fn neg(self) -> Self;
    /// `[a3, a2, a1, a0]`.
    fn rev(self) -> Self;
    /// `[a0, b0, a1, b1]` and `[a2, b2, a3, b3]`.
    fn zip(a: Self, b: Self) -> [Self; 2];
    /// Rows of the 4x4 matrix whose columns are `a`, `b`, `c`, `d`.
    fn transpose(a: Self, b: Self, c: Self, d: Self) -> [Self; 4];
}

/// Plain arrays (the reference, and targets without a vector path).
#[derive(Clone, Copy)]
pub(crate) struct Plain4([f32; 4]);

impl Quad for Plain4 {
    #[inline(always)]
    fn load(x: &[f32]) -> Self {
        Plain4([x[0], x[1], x[2], x[3]])
    }
    #[inline(always)]
    fn store(self, x: &mut [f32; 4]) {
        *x = self.0;
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Plain4(std::array::from_fn(|k| self.0[k] + o.0[k]))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Plain4(std::array::from_fn(|k| self.0[k] - o.0[k]))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Plain4(std::array::from_fn(|k| self.0[k] * o.0[k]))
    }
    #[inline(always)]
    fn even(a: Self, b: Self) -> Self {
        Plain4([a.0[0], a.0[2], b.0[0], b.0[2]])
    }
    #[inline(always)]
    fn odd_rev(a: Self, b: Self) -> Self {
        Plain4([b.0[3], b.0[1], a.0[3], a.0[1]])
    }
    #[inline(always)]
    fn neg(self) -> Self {
        Plain4(self.0.map(|v| -v))
    }
    #[inline(always)]
    fn rev(self) -> Self {
        let a = self.0;
        Plain4([a[3], a[2], a[1], a[0]])
    }
    #[inline(always)]
    fn zip(a: Self, b: Self) -> [Self; 2] {
        let (a, b) = (a.0, b.0);
        [
            Plain4([a[0], b[0], a[1], b[1]]),
            Plain4([a[2], b[2], a[3], b[3]]),
        ]
    }
    #[inline(always)]
    fn transpose(a: Self, b: Self, c: Self, d: Self) -> [Self; 4] {
        std::array::from_fn(|k| Plain4([a.0[k], b.0[k], c.0[k], d.0[k]]))
    }
}

#[cfg(target_arch = "x86_64")]
mod sse {
    use core::arch::x86_64::*;

    /// SSE2 (part of the x86_64 baseline).
    #[derive(Clone, Copy)]
    pub(crate) struct Sse(__m128);

    impl super::Quad for Sse {
        #[inline(always)]
        fn load(x: &[f32]) -> Self {
            let x = &x[..4];
            // SAFETY: `x` holds four floats; unaligned loads are allowed.
            Sse(unsafe { _mm_loadu_ps(x.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, x: &mut [f32; 4]) {
            // SAFETY: `x` holds four floats; unaligned stores are allowed.
            unsafe { _mm_storeu_ps(x.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            // SAFETY: SSE is part of the x86_64 baseline.
            Sse(unsafe { _mm_add_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            // SAFETY: SSE is part of the x86_64 baseline.
            Sse(unsafe { _mm_sub_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            // SAFETY: SSE is part of the x86_64 baseline.
            Sse(unsafe { _mm_mul_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn even(a: Self, b: Self) -> Self {
            // SAFETY: SSE is part of the x86_64 baseline.
            Sse(unsafe { _mm_shuffle_ps::<0b10_00_10_00>(a.0, b.0) })
        }
        #[inline(always)]
        fn odd_rev(a: Self, b: Self) -> Self {
            // SAFETY: SSE is part of the x86_64 baseline.
            Sse(unsafe { _mm_shuffle_ps::<0b01_11_01_11>(b.0, a.0) })
        }
        #[inline(always)]
        fn neg(self) -> Self {
            // SAFETY: SSE is part of the x86_64 baseline.
            Sse(unsafe { _mm_xor_ps(self.0, _mm_set1_ps(-0.0)) })
        }
        #[inline(always)]
        fn rev(self) -> Self {
            // SAFETY: SSE is part of the x86_64 baseline.
            Sse(unsafe { _mm_shuffle_ps::<0b00_01_10_11>(self.0, self.0) })
        }
        #[inline(always)]
        fn zip(a: Self, b: Self) -> [Self; 2] {
            // SAFETY: SSE is part of the x86_64 baseline.
            unsafe {
                [
                    Sse(_mm_unpacklo_ps(a.0, b.0)),
                    Sse(_mm_unpackhi_ps(a.0, b.0)),
                ]
            }
        }
        #[inline(always)]
        fn transpose(a: Self, b: Self, c: Self, d: Self) -> [Self; 4] {
            // SAFETY: SSE is part of the x86_64 baseline.
            unsafe {
                let t0 = _mm_unpacklo_ps(a.0, b.0);
                let t1 = _mm_unpacklo_ps(c.0, d.0);
                let t2 = _mm_unpackhi_ps(a.0, b.0);
                let t3 = _mm_unpackhi_ps(c.0, d.0);
                [
                    Sse(_mm_movelh_ps(t0, t1)),
                    Sse(_mm_movehl_ps(t1, t0)),
                    Sse(_mm_movelh_ps(t2, t3)),
                    Sse(_mm_movehl_ps(t3, t2)),
                ]
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use core::arch::wasm32::*;

    /// wasm simd128.
    #[derive(Clone, Copy)]
    pub(crate) struct Simd(v128);

    impl super::Quad for Simd {
        #[inline(always)]
        fn load(x: &[f32]) -> Self {
            let x = &x[..4];
            // SAFETY: `x` holds four floats; v128_load has no alignment requirement.
            Simd(unsafe { v128_load(x.as_ptr().cast()) })
        }
        #[inline(always)]
        fn store(self, x: &mut [f32; 4]) {
            // SAFETY: `x` holds four floats; v128_store has no alignment requirement.
            unsafe { v128_store(x.as_mut_ptr().cast(), self.0) }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Simd(f32x4_add(self.0, o.0))
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            Simd(f32x4_sub(self.0, o.0))
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            Simd(f32x4_mul(self.0, o.0))
        }
        #[inline(always)]
        fn even(a: Self, b: Self) -> Self {
            Simd(i32x4_shuffle::<0, 2, 4, 6>(a.0, b.0))
        }
        #[inline(always)]
        fn odd_rev(a: Self, b: Self) -> Self {
            Simd(i32x4_shuffle::<7, 5, 3, 1>(a.0, b.0))
        }
        #[inline(always)]
        fn neg(self) -> Self {
            Simd(f32x4_neg(self.0))
        }
        #[inline(always)]
        fn rev(self) -> Self {
            Simd(i32x4_shuffle::<3, 2, 1, 0>(self.0, self.0))
        }
        #[inline(always)]
        fn zip(a: Self, b: Self) -> [Self; 2] {
            [
                Simd(i32x4_shuffle::<0, 4, 1, 5>(a.0, b.0)),
                Simd(i32x4_shuffle::<2, 6, 3, 7>(a.0, b.0)),
            ]
        }
        #[inline(always)]
        fn transpose(a: Self, b: Self, c: Self, d: Self) -> [Self; 4] {
            let t0 = i32x4_shuffle::<0, 4, 1, 5>(a.0, b.0);
            let t1 = i32x4_shuffle::<0, 4, 1, 5>(c.0, d.0);
            let t2 = i32x4_shuffle::<2, 6, 3, 7>(a.0, b.0);
            let t3 = i32x4_shuffle::<2, 6, 3, 7>(c.0, d.0);
            [
                Simd(i64x2_shuffle::<0, 2>(t0, t1)),
                Simd(i64x2_shuffle::<1, 3>(t0, t1)),
                Simd(i64x2_shuffle::<0, 2>(t2, t3)),
                Simd(i64x2_shuffle::<1, 3>(t2, t3)),
            ]
        }
    }
}

/// The same code compiled with AVX2 enabled.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(all(test, target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
unsafe fn avx2(p: &Plan, re: &mut [f32], im: &mut [f32]) {
    first_two(re, im);
    // SAFETY: this function only runs on AVX2 CPUs (see above).
    unsafe { avx2_rest(p, re, im, 4) }
}

/// [`Plan::process_with`] compiled with AVX2 enabled.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_with(p: &Plan, re: &mut [f32], im: &mut [f32], x: &impl Input, y: &mut impl Output) {
    first_two_from::<sse::Sse>(p, re, im, x);
    // SAFETY: this function only runs on AVX2 CPUs (see above).
    unsafe {
        stages_4_8_avx2(p, re, im);
        avx2_rest(p, re, im, 16);
    }
    y.finish::<sse::Sse>(re, im)
}

/// [`stages_4_8`] on eight lanes: stage 4 on the block's four-value quarters 0 and 2 side by
/// side (then 1 and 3), stage 8 on the halves; every value goes through the same
/// operations as in [`stages_4_8`], so the results are the same bits.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn stages_4_8_avx2(p: &Plan, re: &mut [f32], im: &mut [f32]) {
    use core::arch::x86_64::*;
    let load = |x: &[f32]| {
        let x: &[f32; 8] = x[..8].try_into().unwrap_or(&[0.0; 8]);
        // SAFETY: `x` holds 8 floats; unaligned load.
        unsafe { _mm256_loadu_ps(x.as_ptr()) }
    };
    let store = |v: __m256, x: &mut [f32; 8]| {
        // SAFETY: `x` holds 8 floats; unaligned store.
        unsafe { _mm256_storeu_ps(x.as_mut_ptr(), v) }
    };
    let twice = |t: &[f32]| {
        let mut d = [0.0f32; 8];
        d[..4].copy_from_slice(&t[..4]);
        d[4..].copy_from_slice(&t[..4]);
        load(&d)
    };
    // Stage 4's twiddles on both quarters, stage 8's (u, then v) across the halves.
    let (wr, wi) = (twice(&p.tw_re[4..8]), twice(&p.tw_im[4..8]));
    let (ur, ui) = (load(&p.tw_re[8..16]), load(&p.tw_im[8..16]));
    let (rb, _) = re.as_chunks_mut::<16>();
    let (ib, _) = im.as_chunks_mut::<16>();
    for (r, i) in rb.iter_mut().zip(ib.iter_mut()) {
        let (rl, rh, il, ih) = (load(&r[..8]), load(&r[8..]), load(&i[..8]), load(&i[8..]));
        // Quarters 0 and 2, quarters 1 and 3.
        let (r0, r1) = (
            _mm256_permute2f128_ps::<0x20>(rl, rh),
            _mm256_permute2f128_ps::<0x31>(rl, rh),
        );
        let (i0, i1) = (
            _mm256_permute2f128_ps::<0x20>(il, ih),
            _mm256_permute2f128_ps::<0x31>(il, ih),
        );
        // Stage 4: (x0, x1) and (x2, x3), twiddle w.
        let tr = _mm256_sub_ps(_mm256_mul_ps(r1, wr), _mm256_mul_ps(i1, wi));
        let ti = _mm256_add_ps(_mm256_mul_ps(r1, wi), _mm256_mul_ps(i1, wr));
        // [y0 | y2] and [y1 | y3].
        let (ar, ai, br, bi) = (
            _mm256_add_ps(r0, tr),
            _mm256_add_ps(i0, ti),
            _mm256_sub_ps(r0, tr),
            _mm256_sub_ps(i0, ti),
        );
        // Stage 8: [y0 | y1] with [y2 | y3] times [u | v].
        let (lr, li) = (
            _mm256_permute2f128_ps::<0x20>(ar, br),
            _mm256_permute2f128_ps::<0x20>(ai, bi),
        );
        let (hr, hi) = (
            _mm256_permute2f128_ps::<0x31>(ar, br),
            _mm256_permute2f128_ps::<0x31>(ai, bi),
        );
        let pr = _mm256_sub_ps(_mm256_mul_ps(hr, ur), _mm256_mul_ps(hi, ui));
        let pi = _mm256_add_ps(_mm256_mul_ps(hr, ui), _mm256_mul_ps(hi, ur));
        let (r_lo, r_hi) = r.split_at_mut(8);
        let (i_lo, i_hi) = i.split_at_mut(8);
        for (v, x) in [
            (_mm256_add_ps(lr, pr), r_lo),
            (_mm256_sub_ps(lr, pr), r_hi),
            (_mm256_add_ps(li, pi), i_lo),
            (_mm256_sub_ps(li, pi), i_hi),
        ] {
            if let Ok(x) = <&mut [f32; 8]>::try_from(x) {
                store(v, x);
            }
        }
    }
}

/// The stages from h = `start` on, compiled with AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn avx2_rest(p: &Plan, re: &mut [f32], im: &mut [f32], start: usize) {
    butterflies(
        p,
        re,
        im,
        |ra, ia, rb, ib, wr, wi| {
            // SAFETY: this function only runs on AVX2 CPUs (see above).
            unsafe { stage_avx2(ra, ia, rb, ib, wr, wi) }
        },
        |r0, i0, r1, i1, r2, i2, r3, i3, t| {
            // SAFETY: as above.
            unsafe { pair_avx2(r0, i0, r1, i1, r2, i2, r3, i3, t) }
        },
        start,
    )
}

/// [`pair_body`] compiled with AVX2, as its own function (`noalias` slices).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn pair_avx2(
    r0: &mut [f32],
    i0: &mut [f32],
    r1: &mut [f32],
    i1: &mut [f32],
    r2: &mut [f32],
    i2: &mut [f32],
    r3: &mut [f32],
    i3: &mut [f32],
    t: &Twiddles<'_>,
) {
    pair_body(r0, i0, r1, i1, r2, i2, r3, i3, t)
}

/// [`pair_body`] for the baseline ISA.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn pair_plain(
    r0: &mut [f32],
    i0: &mut [f32],
    r1: &mut [f32],
    i1: &mut [f32],
    r2: &mut [f32],
    i2: &mut [f32],
    r3: &mut [f32],
    i3: &mut [f32],
    t: &Twiddles<'_>,
) {
    pair_body(r0, i0, r1, i1, r2, i2, r3, i3, t)
}

/// [`stage_body`] compiled with AVX2, as its own function: its slices are parameters, which
/// tells LLVM they do not overlap, so the loop vectorizes.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn stage_avx2(
    ra: &mut [f32],
    ia: &mut [f32],
    rb: &mut [f32],
    ib: &mut [f32],
    wr: &[f32],
    wi: &[f32],
) {
    stage_body(ra, ia, rb, ib, wr, wi)
}

/// [`stage_body`] for the baseline ISA (SSE2 natively, simd128 in wasm).
#[inline(never)]
fn stage_plain(
    ra: &mut [f32],
    ia: &mut [f32],
    rb: &mut [f32],
    ib: &mut [f32],
    wr: &[f32],
    wi: &[f32],
) {
    stage_body(ra, ia, rb, ib, wr, wi)
}

#[inline(always)]
fn butterflies(
    p: &Plan,
    re: &mut [f32],
    im: &mut [f32],
    stage: impl Fn(&mut [f32], &mut [f32], &mut [f32], &mut [f32], &[f32], &[f32]),
    pair: impl Fn(
        &mut [f32],
        &mut [f32],
        &mut [f32],
        &mut [f32],
        &mut [f32],
        &mut [f32],
        &mut [f32],
        &mut [f32],
        &Twiddles<'_>,
    ),
    start: usize,
) {
    let n = p.n;
    // The stages before `start` ran before ([`first_two`], [`first_two_from`],
    // [`stages_4_8`]).
    let mut h = start;
    while h < n {
        if 4 * h <= n {
            // Two stages (h and 2h) in one pass over memory: the same operations in the same
            // order as running them one after the other.
            let t = Twiddles {
                wr: &p.tw_re[h..2 * h],
                wi: &p.tw_im[h..2 * h],
                ur: &p.tw_re[2 * h..3 * h],
                ui: &p.tw_im[2 * h..3 * h],
                vr: &p.tw_re[3 * h..4 * h],
                vi: &p.tw_im[3 * h..4 * h],
            };
            for (rb, ib) in re.chunks_exact_mut(4 * h).zip(im.chunks_exact_mut(4 * h)) {
                let (r01, r23) = rb.split_at_mut(2 * h);
                let (r0, r1) = r01.split_at_mut(h);
                let (r2, r3) = r23.split_at_mut(h);
                let (i01, i23) = ib.split_at_mut(2 * h);
                let (i0, i1) = i01.split_at_mut(h);
                let (i2, i3) = i23.split_at_mut(h);
                pair(r0, i0, r1, i1, r2, i2, r3, i3, &t);
            }
            h *= 4;
        } else {
            let (wr, wi) = (&p.tw_re[h..2 * h], &p.tw_im[h..2 * h]);
            for (rb, ib) in re.chunks_exact_mut(2 * h).zip(im.chunks_exact_mut(2 * h)) {
                let (ra, rb) = rb.split_at_mut(h);
                let (ia, ib) = ib.split_at_mut(h);
                stage(ra, ia, rb, ib, wr, wi);
            }
            h *= 2;
        }
    }
}

/// Twiddles of a fused pair of stages: `w` for stage h, `u` and `v` for the two halves of
/// stage 2h.
struct Twiddles<'a> {
    wr: &'a [f32],
    wi: &'a [f32],
    ur: &'a [f32],
    ui: &'a [f32],
    vr: &'a [f32],
    vi: &'a [f32],
}

/// [`pair_body`] for a block size known at compile time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pair_fixed<const H: usize>(
    r0: &mut [f32; H],
    i0: &mut [f32; H],
    r1: &mut [f32; H],
    i1: &mut [f32; H],
    r2: &mut [f32; H],
    i2: &mut [f32; H],
    r3: &mut [f32; H],
    i3: &mut [f32; H],
    t: &Twiddles<'_>,
) {
    let (Ok(wr), Ok(wi), Ok(ur), Ok(ui), Ok(vr), Ok(vi)) = (
        <&[f32; H]>::try_from(&t.wr[..H]),
        <&[f32; H]>::try_from(&t.wi[..H]),
        <&[f32; H]>::try_from(&t.ur[..H]),
        <&[f32; H]>::try_from(&t.ui[..H]),
        <&[f32; H]>::try_from(&t.vr[..H]),
        <&[f32; H]>::try_from(&t.vi[..H]),
    ) else {
        return;
    };
    let mut y = [[0.0f32; H]; 8];
    for j in 0..H {
        let (tr, ti) = (r1[j] * wr[j] - i1[j] * wi[j], r1[j] * wi[j] + i1[j] * wr[j]);
        y[0][j] = r0[j] + tr;
        y[1][j] = i0[j] + ti;
        y[2][j] = r0[j] - tr;
        y[3][j] = i0[j] - ti;
        let (sr, si) = (r3[j] * wr[j] - i3[j] * wi[j], r3[j] * wi[j] + i3[j] * wr[j]);
        y[4][j] = r2[j] + sr;
        y[5][j] = i2[j] + si;
        y[6][j] = r2[j] - sr;
        y[7][j] = i2[j] - si;
    }
    for j in 0..H {
        let (y0r, y0i, y1r, y1i) = (y[0][j], y[1][j], y[2][j], y[3][j]);
        let (y2r, y2i, y3r, y3i) = (y[4][j], y[5][j], y[6][j], y[7][j]);
        let (pr, pi) = (y2r * ur[j] - y2i * ui[j], y2r * ui[j] + y2i * ur[j]);
        let (qr, qi) = (y3r * vr[j] - y3i * vi[j], y3r * vi[j] + y3i * vr[j]);
        r0[j] = y0r + pr;
        i0[j] = y0i + pi;
        r2[j] = y0r - pr;
        i2[j] = y0i - pi;
        r1[j] = y1r + qr;
        i1[j] = y1i + qi;
        r3[j] = y1r - qr;
        i3[j] = y1i - qi;
    }
}

/// Stages h and 2h over one block of 4h.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pair_body(
    r0: &mut [f32],
    i0: &mut [f32],
    r1: &mut [f32],
    i1: &mut [f32],
    r2: &mut [f32],
    i2: &mut [f32],
    r3: &mut [f32],
    i3: &mut [f32],
    t: &Twiddles<'_>,
) {
    if r0.len() == 4 {
        // Four butterflies: fixed-size arrays, so the SLP vectorizer makes 4-wide vectors
        // (the loop vectorizer would pick 8 lanes and run these in the scalar tail).
        if let (Ok(r0), Ok(i0), Ok(r1), Ok(i1), Ok(r2), Ok(i2), Ok(r3), Ok(i3)) = (
            <&mut [f32; 4]>::try_from(r0),
            <&mut [f32; 4]>::try_from(i0),
            <&mut [f32; 4]>::try_from(r1),
            <&mut [f32; 4]>::try_from(i1),
            <&mut [f32; 4]>::try_from(r2),
            <&mut [f32; 4]>::try_from(i2),
            <&mut [f32; 4]>::try_from(r3),
            <&mut [f32; 4]>::try_from(i3),
        ) {
            pair_fixed::<4>(r0, i0, r1, i1, r2, i2, r3, i3, t);
        }
        return;
    }
    let h = r0.len();
    let (i0, r1, i1, r2, i2, r3, i3) = (
        &mut i0[..h],
        &mut r1[..h],
        &mut i1[..h],
        &mut r2[..h],
        &mut i2[..h],
        &mut r3[..h],
        &mut i3[..h],
    );
    let (wr, wi, ur, ui, vr, vi) = (
        &t.wr[..h],
        &t.wi[..h],
        &t.ur[..h],
        &t.ui[..h],
        &t.vr[..h],
        &t.vi[..h],
    );
    for j in 0..h {
        // Stage h: (x0, x1) and (x2, x3), twiddle w.
        let (tr, ti) = (r1[j] * wr[j] - i1[j] * wi[j], r1[j] * wi[j] + i1[j] * wr[j]);
        let (y0r, y0i, y1r, y1i) = (r0[j] + tr, i0[j] + ti, r0[j] - tr, i0[j] - ti);
        let (sr, si) = (r3[j] * wr[j] - i3[j] * wi[j], r3[j] * wi[j] + i3[j] * wr[j]);
        let (y2r, y2i, y3r, y3i) = (r2[j] + sr, i2[j] + si, r2[j] - sr, i2[j] - si);
        // Stage 2h: (y0, y2) with u, (y1, y3) with v.
        let (pr, pi) = (y2r * ur[j] - y2i * ui[j], y2r * ui[j] + y2i * ur[j]);
        let (qr, qi) = (y3r * vr[j] - y3i * vi[j], y3r * vi[j] + y3i * vr[j]);
        r0[j] = y0r + pr;
        i0[j] = y0i + pi;
        r2[j] = y0r - pr;
        i2[j] = y0i - pi;
        r1[j] = y1r + qr;
        i1[j] = y1i + qi;
        r3[j] = y1r - qr;
        i3[j] = y1i - qi;
    }
}

/// One block of a stage: `a + w b` into `a`, `a - w b` into `b`.
#[inline(always)]
fn stage_body(
    ra: &mut [f32],
    ia: &mut [f32],
    rb: &mut [f32],
    ib: &mut [f32],
    wr: &[f32],
    wi: &[f32],
) {
    let h = ra.len();
    let (ia, rb, ib, wr, wi) = (&mut ia[..h], &mut rb[..h], &mut ib[..h], &wr[..h], &wi[..h]);
    for j in 0..h {
        let (br, bi) = (rb[j], ib[j]);
        let tr = br * wr[j] - bi * wi[j];
        let ti = br * wi[j] + bi * wr[j];
        let (ar, ai) = (ra[j], ia[j]);
        ra[j] = ar + tr;
        ia[j] = ai + ti;
        rb[j] = ar - tr;
        ib[j] = ai - ti;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pairs<'a>(&'a [(f32, f32)]);

    /// Keeps a copy of the output.
    struct Collect(Vec<f32>, Vec<f32>);

    impl Output for Collect {
        fn finish<V: Quad>(&mut self, re: &[f32], im: &[f32]) {
            (self.0, self.1) = (re.to_vec(), im.to_vec());
        }
    }

    impl Input for Pairs<'_> {
        fn quarter<V: Quad>(&self, j: usize) -> impl Iterator<Item = (V, V)> {
            let n = self.0.len();
            self.0[j * n / 4..(j + 1) * n / 4].chunks_exact(4).map(|q| {
                (
                    V::load(&q.iter().map(|v| v.0).collect::<Vec<_>>()),
                    V::load(&q.iter().map(|v| v.1).collect::<Vec<_>>()),
                )
            })
        }
    }

    /// Every lane operation of every vector type against the plain arrays, zeros and
    /// non-finite values included.
    #[test]
    fn quad_operations_agree_on_every_path() {
        fn ops<V: Quad>(a: &[f32], b: &[f32]) -> Vec<u32> {
            let (a, b) = (V::load(a), V::load(b));
            let [z0, z1] = V::zip(a, b);
            let t = V::transpose(a, b, a.add(b), a.mul(b));
            let all = [
                a.add(b),
                a.sub(b),
                a.mul(b),
                V::even(a, b),
                V::odd_rev(a, b),
                a.neg(),
                b.neg(),
                a.rev(),
                z0,
                z1,
                t[0],
                t[1],
                t[2],
                t[3],
            ];
            let mut out = Vec::new();
            for v in all {
                let mut x = [0f32; 4];
                v.store(&mut x);
                out.extend(x.map(f32::to_bits));
            }
            out
        }
        let a = [1.5f32, -0.0, 0.0, f32::INFINITY];
        let b = [3.25f32, 0.0, -7.0, 1e-40];
        let want = ops::<Plain4>(&a, &b);
        assert_eq!(
            want[20..24],
            [
                (-1.5f32).to_bits(),
                0,
                (-0.0f32).to_bits(),
                f32::NEG_INFINITY.to_bits()
            ]
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(ops::<sse::Sse>(&a, &b), want);
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        assert_eq!(ops::<simd128::Simd>(&a, &b), want);
    }

    #[test]
    fn natural_order_input_gives_the_bits_of_the_permuted_one() {
        for n in [16usize, 32, 64, 128, 512] {
            let p = Plan::new(n);
            let x: Vec<(f32, f32)> = (0..n)
                .map(|i| {
                    (
                        ((i * 41 % 103) as f32 - 51.0) / 9.0,
                        ((i * 29 % 97) as f32 - 48.0) / 5.0,
                    )
                })
                .collect();
            let (mut re, mut im) = (vec![0f32; n], vec![0f32; n]);
            for (i, &(r, m)) in x.iter().enumerate() {
                re[p.rev()[i] as usize] = r;
                im[p.rev()[i] as usize] = m;
            }
            p.process_permuted_on(Isa::Scalar, &mut re, &mut im);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            for isa in super::super::available() {
                let (mut r2, mut i2) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                let mut got = Collect(Vec::new(), Vec::new());
                p.process_with_on(isa, &mut r2, &mut i2, &Pairs(&x), &mut got);
                assert_eq!((bits(&got.0), bits(&got.1)), (bits(&r2), bits(&i2)));
                assert_eq!(
                    (bits(&r2), bits(&i2)),
                    (bits(&re), bits(&im)),
                    "{isa:?} n={n}"
                );
            }
        }
    }

    #[test]
    fn matches_the_dft_and_every_path_gives_the_same_bits() {
        for n in [4usize, 8, 64, 512] {
            let p = Plan::new(n);
            let x: Vec<(f32, f32)> = (0..n)
                .map(|i| {
                    (
                        ((i * 37 % 101) as f32 - 50.0) / 7.0,
                        ((i * 53 % 89) as f32 - 44.0) / 3.0,
                    )
                })
                .collect();
            let (mut re, mut im): (Vec<f32>, Vec<f32>) = x.iter().copied().unzip();
            p.process_on(Isa::Scalar, &mut re, &mut im);
            for k in 0..n {
                let (mut sr, mut si) = (0.0f64, 0.0f64);
                for (j, &(xr, xi)) in x.iter().enumerate() {
                    let a = -2.0 * std::f64::consts::PI * (j * k % n) as f64 / n as f64;
                    sr += f64::from(xr) * a.cos() - f64::from(xi) * a.sin();
                    si += f64::from(xr) * a.sin() + f64::from(xi) * a.cos();
                }
                let tol = 1e-4 * n as f64 * 30.0;
                assert!(
                    (f64::from(re[k]) - sr).abs() < tol && (f64::from(im[k]) - si).abs() < tol,
                    "n={n} k={k}"
                );
            }
            for isa in super::super::available() {
                let (mut r2, mut i2): (Vec<f32>, Vec<f32>) = x.iter().copied().unzip();
                p.process_on(isa, &mut r2, &mut i2);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    (bits(&r2), bits(&i2)),
                    (bits(&re), bits(&im)),
                    "{isa:?} n={n}"
                );
            }
        }
    }
}
