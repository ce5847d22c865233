//! The MDCT as ISO/IEC 14496-3 defines it (4.6.11.3.1), for the encoder, computed with an
//! N/4-point complex FFT ([`crate::dsp::fft`]: the same bits natively and in wasm).
//!
//! `X[k] = 2 * sum_{n<N} z[n] * cos(2pi/N * (n + n0) * (k + 1/2))`, k < N/2,
//! with `n0 = (N/2 + 1) / 2`. Windowing is the caller's.
//!
//! The pre/post rotation is the classic split-radix arrangement (as in FFmpeg's `mdct`).

use crate::dsp::fft::Plan;

/// One transform size (N = 2048 for long windows, 256 for short ones), with its buffers.
pub struct Mdct {
    n: usize,
    fft: Plan,
    /// `-cos(2pi (i + 1/8) / N)` and `-sin(..)`, i < N/4.
    tcos: Vec<f32>,
    tsin: Vec<f32>,
    re: Vec<f32>,
    im: Vec<f32>,
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
        }
    }

    /// `out[..N/2]` = MDCT of `input[..N]` (already windowed), spec scaling.
    pub fn forward(&mut self, input: &[f32], out: &mut [f32]) {
        match self.n {
            2048 => self.forward_fixed::<2048, 1024, 512>(input, out),
            256 => self.forward_fixed::<256, 128, 64>(input, out),
            // `new` admits no other size.
            n => unreachable!("MDCT size {n}"),
        }
    }

    /// [`Mdct::forward`] for a size known at compile time (`H = N/2`, `Q = N/4`): every index
    /// is provably in range, so the loops run without bounds checks.
    fn forward_fixed<const N: usize, const H: usize, const Q: usize>(
        &mut self,
        input: &[f32],
        out: &mut [f32],
    ) {
        let (Ok(input), Ok(out), Ok(tc), Ok(ts), Ok(br), Ok(bi), Ok(rev)) = (
            <&[f32; N]>::try_from(&input[..N]),
            <&mut [f32; H]>::try_from(&mut out[..H]),
            <&[f32; Q]>::try_from(&self.tcos[..]),
            <&[f32; Q]>::try_from(&self.tsin[..]),
            <&mut [f32; Q]>::try_from(&mut self.re[..]),
            <&mut [f32; Q]>::try_from(&mut self.im[..]),
            <&[u32; Q]>::try_from(self.fft.rev()),
        ) else {
            return;
        };
        let (n2, n4, n8, n3) = (H, Q, Q / 2, 3 * Q);
        // Pre-rotation, written straight to the FFT's bit-reversed input order.
        for i in 0..n8 {
            let re = -input[2 * i + n3] - input[n3 - 1 - 2 * i];
            let im = -input[n4 + 2 * i] + input[n4 - 1 - 2 * i];
            let j = rev[i] as usize % Q;
            (br[j], bi[j]) = cmul(re, im, -tc[i], ts[i]);
            let re = input[2 * i] - input[n2 - 1 - 2 * i];
            let im = -input[n2 + 2 * i] - input[N - 1 - 2 * i];
            let j = rev[n8 + i] as usize % Q;
            (br[j], bi[j]) = cmul(re, im, -tc[n8 + i], ts[n8 + i]);
        }
        self.fft.process_permuted(br, bi);
        post_rotate(br, bi, tc, ts, out);
    }
}

/// Post-rotation: `(P_k, Q_k) = z_k * (-sin_k, -cos_k)`, then `X[2k] = 2 Q_k` and
/// `X[2k+1] = 2 P_{N/4-1-k}` (the spec's factor 2).
#[inline(always)]
fn post_rotate(br: &mut [f32], bi: &mut [f32], tc: &[f32], ts: &[f32], out: &mut [f32]) {
    for (((r, i), &c), &sn) in br.iter_mut().zip(bi.iter_mut()).zip(tc).zip(ts) {
        let (p, q) = cmul(*r, *i, -sn, -c);
        *r = 2.0 * p;
        *i = 2.0 * q;
    }
    for ((o, &q), &p) in out.chunks_exact_mut(2).zip(bi.iter()).zip(br.iter().rev()) {
        o[0] = q;
        o[1] = p;
    }
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
            m.forward(&x, &mut spec);
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
            m.forward(&z, &mut spec);
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
