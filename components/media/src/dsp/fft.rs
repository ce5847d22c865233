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

    /// Points.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Where input `i` goes before the butterflies (bit reversal): callers that produce the
    /// input can write it there directly and call [`Plan::process_permuted`].
    pub(crate) fn rev(&self) -> &[u32] {
        &self.rev
    }

    /// In-place forward transform of `re[..n] + i im[..n]`.
    pub(crate) fn process(&self, re: &mut [f32], im: &mut [f32]) {
        self.process_on(super::best(), re, im)
    }

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
            _ => butterflies(self, re, im, stage_plain),
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
    butterflies(p, re, im, |ra, ia, rb, ib, wr, wi| {
        // SAFETY: this function only runs on AVX2 CPUs (see above).
        unsafe { stage_avx2(ra, ia, rb, ib, wr, wi) }
    })
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
) {
    let n = p.n;
    // h = 1 and h = 2: twiddles 1 and -i, no multiplications (the results are exact, so
    // they equal the general butterfly's).
    for b in (0..n).step_by(2) {
        let (ar, ai, br, bi) = (re[b], im[b], re[b + 1], im[b + 1]);
        re[b] = ar + br;
        im[b] = ai + bi;
        re[b + 1] = ar - br;
        im[b + 1] = ai - bi;
    }
    for b in (0..n).step_by(4) {
        let (ar, ai, br, bi) = (re[b], im[b], re[b + 2], im[b + 2]);
        re[b] = ar + br;
        im[b] = ai + bi;
        re[b + 2] = ar - br;
        im[b + 2] = ai - bi;
        // b + 1 with w = -i: (br, bi) * -i = (bi, -br).
        let (ar, ai, br, bi) = (re[b + 1], im[b + 1], re[b + 3], im[b + 3]);
        re[b + 1] = ar + bi;
        im[b + 1] = ai - br;
        re[b + 3] = ar - bi;
        im[b + 3] = ai + br;
    }
    let mut h = 4;
    while h < n {
        let (wr, wi) = (&p.tw_re[h..2 * h], &p.tw_im[h..2 * h]);
        for (rb, ib) in re.chunks_exact_mut(2 * h).zip(im.chunks_exact_mut(2 * h)) {
            let (ra, rb) = rb.split_at_mut(h);
            let (ia, ib) = ib.split_at_mut(h);
            stage(ra, ia, rb, ib, wr, wi);
        }
        h *= 2;
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
