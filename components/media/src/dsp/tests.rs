//! Every vector path against the scalar reference, bit for bit, on random and special inputs.

use super::*;

/// xorshift32: deterministic test signals without a dependency.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
    /// Uniform in [-amp, amp), with special values mixed in when `specials`.
    fn signal(&mut self, n: usize, amp: f32, specials: bool) -> Vec<f32> {
        const SPECIAL: [f32; 12] = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            1.0,
            -1.0,
            0.9,
            -0.900_000_1,
            // Exact rounding ties after scaling by 32767: 0.5 / 32767 and 1.5 / 32767.
            0.5 / 32767.0,
            -1.5 / 32767.0,
            3.0,
        ];
        (0..n)
            .map(|_| {
                let r = self.next();
                if specials && r.is_multiple_of(7) {
                    SPECIAL[(r / 7) as usize % SPECIAL.len()]
                } else {
                    (r >> 8) as f32 / (1u32 << 23) as f32 * amp - amp
                }
            })
            .collect()
    }
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

const LENS: [usize; 12] = [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 33, 1031];

#[test]
fn isa_detection_is_cached_and_listed() {
    assert_eq!(best(), best());
    assert!(available().contains(&best()));
    #[cfg(target_arch = "x86_64")]
    assert!(available().len() >= 2, "SSE2 is x86_64 baseline");
}

#[test]
fn elementwise_kernels_match_scalar_bit_for_bit() {
    let mut rng = Rng(0x9e37_79b9);
    for &n in &LENS {
        for specials in [false, true] {
            let a = rng.signal(n, 1.2, specials);
            let b = rng.signal(n, 1.2, specials);
            for isa in available() {
                let mut want = a.clone();
                scalar::add_into(&mut want, &b);
                let mut got = a.clone();
                add_into_on(isa, &mut got, &b);
                assert_eq!(bits(&got), bits(&want), "add_into {isa:?} n={n}");

                assert_eq!(
                    all_finite_on(isa, &a),
                    scalar::all_finite(&a),
                    "all_finite {isa:?} n={n}"
                );

                let mut want = a.clone();
                scalar::zero_non_finite(&mut want);
                let mut got = a.clone();
                zero_non_finite_on(isa, &mut got);
                assert_eq!(bits(&got), bits(&want), "zero_non_finite {isa:?} n={n}");

                let mut want = a.clone();
                scalar::sanitize_clamp(&mut want);
                let mut got = a.clone();
                sanitize_clamp_on(isa, &mut got);
                assert_eq!(bits(&got), bits(&want), "sanitize_clamp {isa:?} n={n}");

                let mut want = vec![0i16; n];
                scalar::f32_to_i16(&a, &mut want);
                let mut got = vec![0i16; n];
                f32_to_i16_on(isa, &a, &mut got);
                assert_eq!(got, want, "f32_to_i16 {isa:?} n={n}");
            }
        }
    }
}

#[test]
fn all_finite_finds_one_bad_value_anywhere() {
    let mut rng = Rng(5);
    for n in [1usize, 7, 8, 31, 32, 33, 64, 100, 1031] {
        let mut x = rng.signal(n, 1.0, false);
        x[n / 3] = f32::MAX;
        x[n - 1] = -f32::MAX;
        for isa in available() {
            assert!(all_finite_on(isa, &x), "{isa:?} n={n}");
        }
        for pos in [0, n / 2, n - 1, n.saturating_sub(9), n.saturating_sub(33)] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
                let mut y = x.clone();
                y[pos] = bad;
                for isa in available() {
                    assert!(!all_finite_on(isa, &y), "{isa:?} n={n} pos={pos} {bad}");
                }
            }
        }
    }
}

#[test]
fn sum_squares_matches_scalar_bit_for_bit() {
    let mut rng = Rng(7);
    for &n in &LENS {
        let a = rng.signal(n, 1.0, false);
        let want = scalar::sum_squares(&a);
        for isa in available() {
            assert_eq!(
                sum_squares_on(isa, &a).to_bits(),
                want.to_bits(),
                "{isa:?} n={n}"
            );
        }
        // And it is a sum of squares (within f32 rounding).
        let exact: f64 = a.iter().map(|v| f64::from(*v) * f64::from(*v)).sum();
        assert!(
            (f64::from(want) - exact).abs() <= 1e-5 * exact.max(1.0),
            "n={n}"
        );
    }
}

#[test]
fn fir8_matches_scalar_bit_for_bit_and_is_a_dot_product() {
    let mut rng = Rng(11);
    for (taps, step, outs) in [(8, 1, 1), (16, 3, 7), (144, 3, 101), (96, 2, 64), (0, 3, 4)] {
        let h = rng.signal(taps, 0.5, false);
        let x = rng.signal((outs - 1) * step + taps + 5, 1.0, false);
        let mut want = vec![7.0f32; outs + 2];
        scalar::fir8(&x, &h, step, &mut want[..outs]);
        for isa in available() {
            let mut got = vec![7.0f32; outs + 2];
            fir8_on(isa, &x, &h, step, &mut got);
            assert_eq!(
                bits(&got[..outs]),
                bits(&want[..outs]),
                "{isa:?} taps={taps}"
            );
            // Outputs past what `x` covers are left alone.
            let covered = (x.len() - taps) / step + 1;
            assert!(
                got[covered.min(got.len())..].iter().all(|&v| v == 7.0),
                "{isa:?}"
            );
        }
        for (m, &y) in want[..outs].iter().enumerate() {
            let exact: f64 = h
                .iter()
                .zip(&x[m * step..])
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            assert!(
                (f64::from(y) - exact).abs() < 1e-5 * taps.max(1) as f64,
                "m={m}"
            );
        }
    }
}

#[test]
fn layout_kernels_match_scalar_bit_for_bit() {
    let mut rng = Rng(99);
    for &n in &LENS {
        let x = rng.signal(2 * n, 1.0, true);
        let (l, r) = (rng.signal(n, 1.0, true), rng.signal(n, 1.0, true));
        for isa in available() {
            let (mut want, mut got) = (vec![0.0; n], vec![0.0; n]);
            scalar::downmix2(&x, &mut want);
            downmix2_on(isa, &x, &mut got);
            assert_eq!(bits(&got), bits(&want), "downmix2 {isa:?} n={n}");

            let (mut want, mut got) = (vec![0.0; 2 * n], vec![0.0; 2 * n]);
            scalar::interleave2(&l, &r, &mut want);
            interleave2_on(isa, &l, &r, &mut got);
            assert_eq!(bits(&got), bits(&want), "interleave2 {isa:?} n={n}");

            let (mut gl, mut gr) = (vec![0.0; n], vec![0.0; n]);
            deinterleave2_on(isa, &got, &mut gl, &mut gr);
            assert_eq!(
                (bits(&gl), bits(&gr)),
                (bits(&l), bits(&r)),
                "{isa:?} n={n}"
            );

            // Split, clipped and checked in one pass: the two passes' bits, and the finiteness
            // of the input, with a bad value in the last (scalar tail) pair too.
            for x in [got.clone(), rng.signal(2 * n, 3.0, false)] {
                let (mut wl, mut wr) = (
                    x.iter().step_by(2).copied().collect::<Vec<_>>(),
                    x.iter().skip(1).step_by(2).copied().collect::<Vec<_>>(),
                );
                scalar::sanitize_clamp(&mut wl);
                scalar::sanitize_clamp(&mut wr);
                let (mut gl, mut gr) = (vec![0.0; n], vec![0.0; n]);
                let finite = deinterleave2_clamp_on(isa, &x, &mut gl, &mut gr);
                assert_eq!(
                    (bits(&gl), bits(&gr)),
                    (bits(&wl), bits(&wr)),
                    "{isa:?} n={n}"
                );
                assert_eq!(finite, x.iter().all(|v| v.is_finite()), "{isa:?} n={n}");
                if n > 0 {
                    let mut y = x.clone();
                    y[2 * n - 1] = f32::NAN;
                    assert!(
                        !deinterleave2_clamp_on(isa, &y, &mut gl, &mut gr),
                        "{isa:?} n={n}"
                    );
                }
            }
        }
    }
}

#[test]
fn duck_mix_matches_scalar_bit_for_bit_and_limits() {
    let mut rng = Rng(2024);
    for &n in &LENS {
        // Loud enough that about a third of the samples go through the limiter.
        let gain: Vec<f32> = rng.signal(n, 0.5, false).iter().map(|g| g + 0.5).collect();
        for ch in [1usize, 2, 3] {
            let bg = rng.signal(n * ch, 1.0, false);
            let sp = rng.signal(n * ch, 0.6, false);
            let mut want = sp.clone();
            scalar::duck_mix(&bg, &gain, ch, &mut want);
            assert!(want.iter().all(|v| v.abs() <= 1.0));
            for isa in available() {
                let mut got = sp.clone();
                duck_mix_on(isa, &bg, &gain, ch, &mut got);
                assert_eq!(bits(&got), bits(&want), "duck_mix {isa:?} ch={ch} n={n}");
            }
        }
    }
}

#[test]
fn s16le_round_trip_and_paths_agree() {
    let all: Vec<u8> = (i16::MIN..=i16::MAX)
        .flat_map(|v| v.to_le_bytes())
        .collect();
    for &n in &[0usize, 5, 8, 13, 65_536] {
        let bytes = &all[..2 * n];
        let mut want = vec![0.0; n];
        scalar::s16le_to_f32(bytes, &mut want);
        for isa in available() {
            let mut got = vec![0.0; n];
            s16le_to_f32_on(isa, bytes, &mut got);
            assert_eq!(bits(&got), bits(&want), "{isa:?} n={n}");
        }
    }
    // -32768 maps to -1.0 exactly, 16384 to 0.5.
    let mut v = [0.0f32; 2];
    s16le_to_f32(&[0x00, 0x80, 0x00, 0x40], &mut v);
    assert_eq!(v, [-1.0, 0.5]);
    // f32_to_i16 rounds ties away from zero, as f32::round does.
    let mut o = [0i16; 4];
    f32_to_i16(&[0.5 / 32767.0, -1.5 / 32767.0, 2.0, f32::NAN], &mut o);
    assert_eq!(o, [1, -2, 32767, 0]);
}

#[test]
fn quantize_paths_agree() {
    let mut rng = Rng(0x5eed_0a0c);
    for &n in LENS.iter().chain(&[1024usize]) {
        let coef = rng.signal(n, 3.0e6, false);
        let mut coef = coef;
        for (i, c) in coef.iter_mut().enumerate() {
            if i % 11 == 3 {
                *c = if i % 2 == 0 { 0.0 } else { -0.0 };
            }
        }
        let xp: Vec<f32> = coef
            .iter()
            .map(|c| c.abs().sqrt() * c.abs().sqrt().sqrt())
            .collect();
        for g in [0.0f32, 1e-3, 0.01731, 0.5, 2.0] {
            let mut want = vec![0; n];
            let wmax = scalar::quantize(&xp, &coef, g, &mut want);
            assert_eq!(wmax, want.iter().map(|v| v.abs()).max().unwrap_or(0));
            assert!(wmax <= 8191);
            for isa in available() {
                let mut got = vec![7; n];
                let gmax = quantize_on(isa, &xp, &coef, g, &mut got);
                assert_eq!((gmax, &got), (wmax, &want), "quantize {isa:?} n={n} g={g}");
            }
        }
    }
    // Rounding: 0.5946 rounds down to 0 (0.5946 + 0.4054 = 1.0 exactly is 1), signs follow coef.
    let mut q = [0; 3];
    let m = quantize(&[0.5945, 0.5946, 1.0], &[1.0, -1.0, -0.0], 1.0, &mut q);
    assert_eq!((m, q), (1, [0, -1, 1]));
}
