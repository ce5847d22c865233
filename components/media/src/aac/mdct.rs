//! The MDCT as ISO/IEC 14496-3 defines it (4.6.11.3.1), for the encoder, computed with an
//! N/4-point complex FFT ([`crate::dsp::fft`]: the same bits natively and in wasm).
//!
//! `X[k] = 2 * sum_{n<N} z[n] * cos(2pi/N * (n + n0) * (k + 1/2))`, k < N/2,
//! with `n0 = (N/2 + 1) / 2`, of the input times a window the caller gives (in split order:
//! [`split`]).
//!
//! The pre/post rotation is the classic split-radix arrangement (as in FFmpeg's `mdct`): the
//! windowed input is read as its even and odd samples (so every pre-rotation input is a
//! forward or backward contiguous run), rotated in natural order, and handed to the FFT's
//! natural-order entry ([`Plan::process_with`]), whose output goes straight through the
//! post-rotation. The whole transform runs inside [`crate::dsp::vectorized`].

use crate::dsp::fft::{Input, Output, Plan, Quad};

/// One transform size (N = 2048 for long windows, 256 for short ones), with its buffers.
pub struct Mdct {
    n: usize,
    fft: Plan,
    /// `-cos(2pi (i + 1/8) / N)` and `-sin(..)`, i < N/4.
    tcos: Vec<f32>,
    tsin: Vec<f32>,
    re: Vec<f32>,
    im: Vec<f32>,
    /// Even and odd inputs, N/2 each.
    ze: Vec<f32>,
    zo: Vec<f32>,
    /// Pre-rotated values in natural order, N/4 each.
    tr: Vec<f32>,
    ti: Vec<f32>,
}

impl Mdct {
    /// A transform of `n` inputs (`n / 2` coefficients): 2048 (long) or 256 (short).
    pub fn new(n: usize) -> Self {
        assert!(n == 2048 || n == 256, "MDCT size {n}");
        let n4 = n / 4;
        let fft = Plan::new(n4);
        let (tcos, tsin) = (0..n4)
            .map(|i| {
                let a = 2.0 * std::f64::consts::PI * (i as f64 + 0.125) / n as f64;
                (-a.cos() as f32, -a.sin() as f32)
            })
            .unzip();
        Mdct {
            n,
            fft,
            tcos,
            tsin,
            re: vec![0.0; n4],
            im: vec![0.0; n4],
            ze: vec![0.0; n / 2],
            zo: vec![0.0; n / 2],
            tr: vec![0.0; n4],
            ti: vec![0.0; n4],
        }
    }

    /// `out[..N/2]` = MDCT of `input * window[..N]` (element by element), spec scaling, where
    /// the input is `lo[..N/2]` then `hi[..N/2]`, with the window given split: its even
    /// samples, then its odd ones (see [`split`]).
    pub fn forward(&mut self, lo: &[f32], hi: &[f32], window: &[f32], out: &mut [f32]) {
        match self.n {
            2048 => crate::dsp::vectorized(
                #[inline(always)]
                || self.forward_fixed::<2048, 1024, 512, 256>(lo, hi, window, out),
            ),
            256 => crate::dsp::vectorized(
                #[inline(always)]
                || self.forward_fixed::<256, 128, 64, 32>(lo, hi, window, out),
            ),
            // `new` admits no other size.
            n => unreachable!("MDCT size {n}"),
        }
    }

    /// [`Mdct::forward`] for a size known at compile time (`H = N/2`, `Q = N/4`, `E = N/8`):
    /// every index is provably in range, so the loops run without bounds checks and
    /// vectorize.
    #[inline(always)]
    fn forward_fixed<const N: usize, const H: usize, const Q: usize, const E: usize>(
        &mut self,
        lo: &[f32],
        hi: &[f32],
        window: &[f32],
        out: &mut [f32],
    ) {
        let (Ok(lo), Ok(hi), Ok(w), Ok(out), Ok(tc), Ok(ts), Ok(br), Ok(bi)) = (
            <&[f32; H]>::try_from(&lo[..H]),
            <&[f32; H]>::try_from(&hi[..H]),
            <&[f32; N]>::try_from(&window[..N]),
            <&mut [f32; H]>::try_from(&mut out[..H]),
            <&[f32; Q]>::try_from(&self.tcos[..]),
            <&[f32; Q]>::try_from(&self.tsin[..]),
            <&mut [f32; Q]>::try_from(&mut self.re[..]),
            <&mut [f32; Q]>::try_from(&mut self.im[..]),
        ) else {
            return;
        };
        let (Ok(ze), Ok(zo), Ok(tr), Ok(ti)) = (
            <&mut [f32; H]>::try_from(&mut self.ze[..]),
            <&mut [f32; H]>::try_from(&mut self.zo[..]),
            <&mut [f32; Q]>::try_from(&mut self.tr[..]),
            <&mut [f32; Q]>::try_from(&mut self.ti[..]),
        ) else {
            return;
        };
        // Even and odd input samples: every pre-rotation input is then read forwards or
        // backwards, contiguously.
        let (ze_lo, ze_hi) = ze.split_at_mut(Q);
        let (zo_lo, zo_hi) = zo.split_at_mut(Q);
        crate::dsp::deinterleave2(lo, ze_lo, zo_lo);
        crate::dsp::deinterleave2(hi, ze_hi, zo_hi);
        let (Ok(we), Ok(wo)) = (
            <&[f32; H]>::try_from(&w[..H]),
            <&[f32; H]>::try_from(&w[H..]),
        ) else {
            return;
        };
        // Windowed: z[2k] = ze[k] we[k], z[2k + 1] = zo[k] wo[k].
        let e = |k: usize| ze[k] * we[k];
        let o = |k: usize| zo[k] * wo[k];
        // Pre-rotation in natural order (loops that vectorize). With n3 = 3N/4, n4 = N/4,
        // n2 = N/2: re = -z[n3 + 2i] - z[n3 - 1 - 2i], im = -z[n4 + 2i] + z[n4 - 1 - 2i]
        // (first N/8), re = z[2i] - z[n2 - 1 - 2i], im = -z[n2 + 2i] - z[N - 1 - 2i] (second).
        let (h3, h4, h2) = (3 * Q / 2, Q / 2, H / 2);
        for i in 0..E {
            let re = -e(h3 + i) - o(h3 - 1 - i);
            let im = -e(h4 + i) + o(h4 - 1 - i);
            (tr[i], ti[i]) = cmul(re, im, -tc[i], ts[i]);
        }
        for i in 0..E {
            let re = e(i) - o(h2 - 1 - i);
            let im = -e(h2 + i) - o(H - 1 - i);
            (tr[E + i], ti[E + i]) = cmul(re, im, -tc[E + i], ts[E + i]);
        }
        // The FFT reads them in natural order (its first stages run vectorized as they
        // come in) and hands its output to the post-rotation.
        let input = Natural { re: tr, im: ti };
        let mut post = PostRotate { tc, ts, out };
        self.fft.process_with(br, bi, &input, &mut post);
    }
}

/// The pre-rotated values in natural order, for [`Plan::process_with`].
struct Natural<'a> {
    re: &'a [f32],
    im: &'a [f32],
}

impl Input for Natural<'_> {
    #[inline(always)]
    fn quarter<V: Quad>(&self, j: usize) -> impl Iterator<Item = (V, V)> {
        let q = self.re.len() / 4;
        let (re, _) = self.re[j * q..(j + 1) * q].as_chunks::<4>();
        let (im, _) = self.im[j * q..(j + 1) * q].as_chunks::<4>();
        re.iter().zip(im).map(|(r, i)| (V::load(r), V::load(i)))
    }
}

/// Post-rotation: `(P_k, Q_k) = z_k * (-sin_k, -cos_k)`, then `X[2k] = 2 Q_k` and
/// `X[2k+1] = 2 P_{N/4-1-k}` (the spec's factor 2).
struct PostRotate<'a> {
    tc: &'a [f32],
    ts: &'a [f32],
    out: &'a mut [f32],
}

impl Output for PostRotate<'_> {
    /// Four k from the front and the mirrored four from the back at a time: each four's
    /// doubled Q's zipped with the other four's doubled P's reversed.
    #[inline(always)]
    fn finish<V: Quad>(&mut self, re: &[f32], im: &[f32]) {
        let n = self.out.len() / 2;
        let (re, im, tc, ts) = (&re[..n], &im[..n], &self.tc[..n], &self.ts[..n]);
        let two = V::load(&[2.0; 4]);
        // (2 P_k, 2 Q_k) for the four k from k0: cmul(re, im, -sin, -cos).
        let pq = |k0: usize| {
            let (r, i) = (V::load(&re[k0..]), V::load(&im[k0..]));
            let (c, s) = (V::load(&tc[k0..]).neg(), V::load(&ts[k0..]).neg());
            let p = r.mul(s).sub(i.mul(c));
            let q = r.mul(c).add(i.mul(s));
            (two.mul(p), two.mul(q))
        };
        let (out, _) = self.out.as_chunks_mut::<4>();
        for k0 in (0..n / 2).step_by(4) {
            let kb = n - 4 - k0;
            let ((pf, qf), (pb, qb)) = (pq(k0), pq(kb));
            for (k, q, p) in [(k0, qf, pb), (kb, qb, pf)] {
                let [a, b] = V::zip(q, p.rev());
                if let [lo, hi] = &mut out[k / 2..k / 2 + 2] {
                    a.store(lo);
                    b.store(hi);
                }
            }
        }
    }
}

/// A window in the split order [`Mdct::forward`] takes: even samples, then odd ones.
pub fn split(window: &[f32]) -> Vec<f32> {
    let evens = window.iter().step_by(2);
    let odds = window.iter().skip(1).step_by(2);
    evens.chain(odds).copied().collect()
}

#[inline(always)]
fn cmul(are: f32, aim: f32, bre: f32, bim: f32) -> (f32, f32) {
    (are * bre - aim * bim, are * bim + aim * bre)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_forward(x: &[f32]) -> Vec<f64> {
        let n = x.len();
        let n0 = (n as f64 / 2.0 + 1.0) / 2.0;
        (0..n / 2)
            .map(|k| {
                2.0 * (0..n)
                    .map(|i| {
                        f64::from(x[i])
                            * (2.0 * std::f64::consts::PI / n as f64
                                * (i as f64 + n0)
                                * (k as f64 + 0.5))
                                .cos()
                    })
                    .sum::<f64>()
            })
            .collect()
    }

    fn naive_inverse(spec: &[f32]) -> Vec<f64> {
        let n = spec.len() * 2;
        let n0 = (n as f64 / 2.0 + 1.0) / 2.0;
        (0..n)
            .map(|i| {
                2.0 / n as f64
                    * (0..n / 2)
                        .map(|k| {
                            f64::from(spec[k])
                                * (2.0 * std::f64::consts::PI / n as f64
                                    * (i as f64 + n0)
                                    * (k as f64 + 0.5))
                                    .cos()
                        })
                        .sum::<f64>()
            })
            .collect()
    }

    fn signal(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn max_err(a: &[f32], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn forward_matches_the_definition() {
        for n in [256usize, 2048] {
            let mut m = Mdct::new(n);
            let x = signal(n, n as u32);
            let mut spec = vec![0.0; n / 2];
            m.forward(&x[..n / 2], &x[n / 2..], &split(&vec![1.0; n]), &mut spec);
            let want = naive_forward(&x);
            let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
            assert!(max_err(&spec, &want) < 1e-4 * scale, "forward N={n}");
        }
    }

    #[test]
    fn sine_windowed_overlap_add_reconstructs() {
        let n = 2048;
        let w: Vec<f32> = (0..n)
            .map(|i| (std::f32::consts::PI * (i as f32 + 0.5) / n as f32).sin())
            .collect();
        let x = signal(3 * n / 2, 7);
        let mut m = Mdct::new(n);
        let mut acc = vec![0.0f32; 3 * n / 2];
        let mut spec = vec![0.0; n / 2];
        let mut y = vec![0.0; n];
        for b in 0..2 {
            let start = b * n / 2;
            let z: Vec<f32> = (0..n).map(|i| x[start + i] * w[i]).collect();
            m.forward(&z[..n / 2], &z[n / 2..], &split(&vec![1.0; n]), &mut spec);
            for (o, v) in y.iter_mut().zip(naive_inverse(&spec)) {
                *o = v as f32;
            }
            for i in 0..n {
                acc[start + i] += y[i] * w[i];
            }
        }
        // The middle half has both overlapping blocks.
        for i in n / 2..n {
            assert!(
                (acc[i] - x[i]).abs() < 1e-4,
                "sample {i}: {} vs {}",
                acc[i],
                x[i]
            );
        }
    }
}
