//! Filterbank (4.6.11): IMDCT, windowing and overlap-add.
//!
//! The IMDCT computes only the middle half of the 2N outputs (`y[N/2..3N/2]`, N = 1024 or
//! 128 coefficients); the outer quarters follow by symmetry, which the windowing uses
//! directly. The overlap bookkeeping is FFmpeg's (`imdct_and_windowing`), so streams with
//! window sequences the standard does not allow (LONG to SHORT without LONG_START) overlap
//! the way FFmpeg overlaps them.

use super::ics::{Channel, EIGHT_SHORT, LONG_START, LONG_STOP, ONLY_LONG};
use crate::dsp::fft::{Input, Output, Plan, Quad};
use std::f64::consts::PI;

/// The bitstream is in 16-bit units; PCM leaves in [-1, 1].
const OUTPUT_SCALE: f64 = 1.0 / 32768.0;

/// One IMDCT size's FFT and twiddles (shared, immutable). The FFT is the `dsp` one, which
/// gives the same bits natively and in wasm, so both decode a segment identically.
pub(super) struct ImdctPlan {
    /// Coefficients (M = N/2 of the 2N-point transform in ISO terms: 1024 or 128).
    m: usize,
    fft: Plan,
    /// `exp(-i pi (k + 1/8) / M)`, k < M/2.
    pre_re: Vec<f32>,
    pre_im: Vec<f32>,
    /// `pre[k]` times the output scale `-1 / (M * 32768)`.
    post_re: Vec<f32>,
    post_im: Vec<f32>,
}

impl ImdctPlan {
    pub(super) fn new(m: usize) -> Self {
        let h = m / 2;
        let angle = |k: usize| -PI * (k as f64 + 0.125) / m as f64;
        let scale = -OUTPUT_SCALE / m as f64;
        ImdctPlan {
            m,
            fft: Plan::new(h),
            pre_re: (0..h).map(|k| angle(k).cos() as f32).collect(),
            pre_im: (0..h).map(|k| angle(k).sin() as f32).collect(),
            post_re: (0..h).map(|k| (angle(k).cos() * scale) as f32).collect(),
            post_im: (0..h).map(|k| (angle(k).sin() * scale) as f32).collect(),
        }
    }

    /// `out[..M]` = the middle half of the IMDCT of `spec[..M]` (ISO definition), over 32768.
    ///
    /// That half is `-(1/M) DCT-IV(spec)` reversed; the DCT-IV runs as an M/2-point complex
    /// FFT between two twiddle passes. `re` and `im` hold at least M/2 values.
    pub(super) fn half(&self, spec: &[f32], out: &mut [f32], re: &mut [f32], im: &mut [f32]) {
        let m = self.m;
        let h = m / 2;
        let (spec, out, re, im) = (&spec[..m], &mut out[..m], &mut re[..h], &mut im[..h]);
        let input = PreTwiddled {
            spec,
            pre_re: &self.pre_re[..h],
            pre_im: &self.pre_im[..h],
        };
        let mut output = PostTwiddled {
            out,
            post_re: &self.post_re[..h],
            post_im: &self.post_im[..h],
        };
        self.fft.process_with(re, im, &input, &mut output);
    }
}

/// The FFT output of [`ImdctPlan::half`]: `w[k] = X[k] * post[k]`, then `out[2k] =
/// -w[k].im` and `out[M-1-2k] = w[k].re`, i.e. pair t of `out` takes `w[t]` and
/// `w[h-1-t]`. Four t from the front and the four mirrored ones from the back at a time.
struct PostTwiddled<'a> {
    out: &'a mut [f32],
    post_re: &'a [f32],
    post_im: &'a [f32],
}

impl Output for PostTwiddled<'_> {
    #[inline(always)]
    fn finish<V: Quad>(&mut self, re: &[f32], im: &[f32]) {
        let h = self.post_re.len();
        fn half(x: &[f32], h: usize) -> (&[[f32; 4]], &[[f32; 4]]) {
            let (front, back) = x[..h].split_at(h / 2);
            (front.as_chunks::<4>().0, back.as_rchunks::<4>().1)
        }
        let (re_f, re_b) = half(re, h);
        let (im_f, im_b) = half(im, h);
        let (pr_f, pr_b) = half(self.post_re, h);
        let (pi_f, pi_b) = half(self.post_im, h);
        let (out_f, out_b) = self.out[..2 * h].split_at_mut(h);
        let (out_f, _) = out_f.as_chunks_mut::<4>();
        let (_, out_b) = out_b.as_rchunks_mut::<4>();
        let w = |r: &[f32; 4], i: &[f32; 4], pr: &[f32; 4], pi: &[f32; 4]| {
            let (a, b, pr, pi) = (V::load(r), V::load(i), V::load(pr), V::load(pi));
            (a.mul(pr).sub(b.mul(pi)), a.mul(pi).add(b.mul(pr)))
        };
        let front = re_f.iter().zip(im_f).zip(pr_f).zip(pi_f);
        let back = re_b.iter().rev().zip(im_b.iter().rev());
        let back = back.zip(pr_b.iter().rev()).zip(pi_b.iter().rev());
        let outs = out_f.chunks_exact_mut(2).zip(out_b.rchunks_exact_mut(2));
        for (((((rf, i_f), prf), pif), (((rb, ib), prb), pib)), (of, ob)) in
            front.zip(back).zip(outs)
        {
            // w at t = j..j+4 and at t = h-4-j..h-j.
            let (wr_f, wi_f) = w(rf, i_f, prf, pif);
            let (wr_b, wi_b) = w(rb, ib, prb, pib);
            for (o, wi, wr) in [(of, wi_f, wr_b), (ob, wi_b, wr_f)] {
                if let [lo, hi] = o {
                    let [a, b] = V::zip(wi.neg(), wr.rev());
                    a.store(lo);
                    b.store(hi);
                }
            }
        }
    }
}

/// The FFT input of [`ImdctPlan::half`]: `z[k] = (spec[2k] + i spec[M-1-2k]) * pre[k]`.
struct PreTwiddled<'a> {
    spec: &'a [f32],
    pre_re: &'a [f32],
    pre_im: &'a [f32],
}

impl Input for PreTwiddled<'_> {
    #[inline(always)]
    fn quarter<V: Quad>(&self, j: usize) -> impl Iterator<Item = (V, V)> {
        // Quarter j of z (k in j M/8..(j + 1) M/8) takes the even values of quarter j of
        // spec, ascending, and the odd ones of quarter 3 - j, descending.
        let m = self.spec.len();
        let (q, e) = (m / 4, m / 8);
        let (lo, _) = self.spec[j * q..(j + 1) * q].as_chunks::<8>();
        let (_, hi) = self.spec[m - (j + 1) * q..m - j * q].as_rchunks::<8>();
        let (pr, _) = self.pre_re[j * e..(j + 1) * e].as_chunks::<4>();
        let (pi, _) = self.pre_im[j * e..(j + 1) * e].as_chunks::<4>();
        lo.iter()
            .zip(hi.iter().rev())
            .zip(pr)
            .zip(pi)
            .map(|(((lo, hi), pr), pi)| {
                // spec[2k..2k + 8] and spec[M-8-2k..M-2k].
                let a = V::even(V::load(&lo[..4]), V::load(&lo[4..]));
                let b = V::odd_rev(V::load(&hi[..4]), V::load(&hi[4..]));
                let (pr, pi) = (V::load(pr), V::load(pi));
                (a.mul(pr).sub(b.mul(pi)), a.mul(pi).add(b.mul(pr)))
            })
    }
}

/// Windows: the rising halves, `[sine, KBD]`, long (1024) and short (128).
pub(super) struct Windows {
    pub(super) long: [Vec<f32>; 2],
    pub(super) short: [Vec<f32>; 2],
}

impl Windows {
    pub(super) fn new() -> Self {
        Windows {
            long: [sine(1024), kbd(1024, 4.0)],
            short: [sine(128), kbd(128, 6.0)],
        }
    }
}

/// Rising half of the sine window of length 2n (4.6.11.3.2).
fn sine(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f64 + 0.5) * PI / (2 * n) as f64).sin() as f32)
        .collect()
}

/// Rising half of the Kaiser-Bessel-derived window of length 2n with parameter `alpha`
/// (4.6.11.3.2): the running sum of a Kaiser kernel over n + 1 points, normalized.
fn kbd(n: usize, alpha: f64) -> Vec<f32> {
    let kernel: Vec<f64> = (0..=n)
        .map(|p| {
            let x = (p as f64 - n as f64 / 2.0) / (n as f64 / 2.0);
            bessel_i0(PI * alpha * (1.0 - x * x).max(0.0).sqrt())
        })
        .collect();
    let total: f64 = kernel.iter().sum();
    let mut acc = 0.0;
    kernel[..n]
        .iter()
        .map(|&k| {
            acc += k;
            (acc / total).sqrt() as f32
        })
        .collect()
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// `dst[..2len]` = overlap of `src0[..len]` (previous, falling) and `src1[..len]` (current,
/// rising, read backwards) under `win[..2len]` (FFmpeg's `vector_fmul_window`).
#[inline]
fn fmul_window(dst: &mut [f32], src0: &[f32], src1: &[f32], win: &[f32], len: usize) {
    let (dst, src0, src1, win) = (
        &mut dst[..2 * len],
        &src0[..len],
        &src1[..len],
        &win[..2 * len],
    );
    let (d_lo, d_hi) = dst.split_at_mut(len);
    let (w_lo, w_hi) = win.split_at(len);
    for t in 0..len {
        let s0 = src0[t];
        let s1 = src1[len - 1 - t];
        let wi = w_lo[t];
        let wj = w_hi[len - 1 - t];
        d_lo[t] = s0 * wj - s1 * wi;
        d_hi[len - 1 - t] = s0 * wi + s1 * wj;
    }
}

/// Per-decoder IMDCT buffers.
pub(super) struct Synth {
    buf: Vec<f32>,
    temp: Vec<f32>,

    fft_re: Vec<f32>,
    fft_im: Vec<f32>,
}

impl Synth {
    pub(super) fn new() -> Self {
        Synth {
            buf: vec![0.0; 1024],
            temp: vec![0.0; 128],

            fft_re: vec![0.0; 512],
            fft_im: vec![0.0; 512],
        }
    }

    /// Heap bytes held (the bound the tests check).
    pub(super) fn heap_bytes(&self) -> usize {
        (self.buf.capacity() + self.temp.capacity()) * 4
            + (self.fft_re.capacity() + self.fft_im.capacity()) * 4
    }

    /// IMDCT of `ch.coef`, windowing and overlap-add into `ch.out`, keeping the second half
    /// in `ch.saved`.
    pub(super) fn run(
        &mut self,
        ch: &mut Channel,
        long: &ImdctPlan,
        short: &ImdctPlan,
        w: &Windows,
    ) {
        let (seq, prev) = (ch.seq[0], ch.seq[1]);
        let shape = usize::from(ch.shape[0] & 1);
        let pshape = usize::from(ch.shape[1] & 1);
        let buf = &mut self.buf[..1024];
        if seq == EIGHT_SHORT {
            for (spec, out) in ch.coef.chunks_exact(128).zip(buf.chunks_exact_mut(128)) {
                short.half(spec, out, &mut self.fft_re, &mut self.fft_im);
            }
        } else {
            long.half(&ch.coef, buf, &mut self.fft_re, &mut self.fft_im);
        }
        let swin = &w.short[shape][..];
        let lwin_prev = &w.long[pshape][..];
        let swin_prev = &w.short[pshape][..];
        let out = &mut ch.out;
        let saved = &mut ch.saved;
        let temp = &mut self.temp[..128];
        if matches!(prev, ONLY_LONG | LONG_STOP) && matches!(seq, ONLY_LONG | LONG_START) {
            fmul_window(out, &saved[..], &buf[..512], lwin_prev, 512);
        } else {
            out[..448].copy_from_slice(&saved[..448]);
            if seq == EIGHT_SHORT {
                fmul_window(&mut out[448..], &saved[448..], &buf[0..], swin_prev, 64);
                fmul_window(&mut out[576..], &buf[64..], &buf[128..], swin, 64);
                fmul_window(&mut out[704..], &buf[192..], &buf[256..], swin, 64);
                fmul_window(&mut out[832..], &buf[320..], &buf[384..], swin, 64);
                fmul_window(temp, &buf[448..], &buf[512..], swin, 64);
                out[960..].copy_from_slice(&temp[..64]);
            } else {
                fmul_window(&mut out[448..], &saved[448..], &buf[0..], swin_prev, 64);
                out[576..].copy_from_slice(&buf[64..512]);
            }
        }
        if seq == EIGHT_SHORT {
            saved[..64].copy_from_slice(&temp[64..]);
            fmul_window(&mut saved[64..], &buf[576..], &buf[640..], swin, 64);
            fmul_window(&mut saved[192..], &buf[704..], &buf[768..], swin, 64);
            fmul_window(&mut saved[320..], &buf[832..], &buf[896..], swin, 64);
            saved[448..].copy_from_slice(&buf[960..]);
        } else {
            debug_assert!(seq == LONG_START || seq == ONLY_LONG || seq == LONG_STOP);
            saved.copy_from_slice(&buf[512..]);
        }
    }
}
