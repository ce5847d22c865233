//! A complex FFT whose results are the same bits on every path (scalar, SSE2, AVX2, wasm
//! simd128): radix-2 decimation in time over split real/imaginary arrays, every butterfly
//! computed with the same operations in the same order. The vector paths are the same safe
//! code compiled for the wider ISA (LLVM vectorizes the butterflies of each stage across `j`;
//! it never fuses or reorders float operations), so native and wasm MDCTs — and the AAC
//! encoder's decisions that depend on them — agree exactly. rustfft's SIMD planners pick
//! different algorithms per ISA, which differ in the last bits.

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

    /// Where input `i` goes before the butterflies (bit reversal): callers that produce the
    /// input can write it there directly and call [`Plan::process_permuted`].
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

    /// The transform of an input already in bit-reversed order (see [`Plan::rev`]).
    pub(crate) fn process_permuted(&self, re: &mut [f32], im: &mut [f32]) {
        self.process_permuted_on(super::best(), re, im)
    }

    pub(crate) fn process_permuted_on(&self, isa: Isa, re: &mut [f32], im: &mut [f32]) {
        let (re, im) = (&mut re[..self.n], &mut im[..self.n]);
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only produced after `is_x86_feature_detected!("avx2")`.
            Isa::Avx2 => unsafe { avx2(self, re, im) },
            _ => butterflies(self, re, im, stage_plain, pair_plain),
        }
    }
}

/// The same code compiled with AVX2 enabled.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2(p: &Plan, re: &mut [f32], im: &mut [f32]) {
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
) {
    let n = p.n;
    // h = 1 and h = 2: twiddles 1 and -i, no multiplications (the results are exact, so
    // they equal the general butterfly's).
    // Both in one pass over blocks of four (the same operations as two passes).
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
    let mut h = 4;
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
