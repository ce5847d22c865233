//! Scalar reference kernels. The vector versions reproduce these bit for bit.

/// The limiter leaves samples at or below this magnitude untouched.
pub(crate) const LIMIT_KNEE: f32 = 0.9;

/// Identity up to [`LIMIT_KNEE`], then a tanh curve approaching 1.
pub(crate) fn soft_limit(x: f32) -> f32 {
    let a = x.abs();
    if a <= LIMIT_KNEE {
        return x;
    }
    let room = 1.0 - LIMIT_KNEE;
    let y = LIMIT_KNEE + room * ((a - LIMIT_KNEE) / room).tanh();
    y.min(1.0).copysign(x)
}

pub(crate) fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// Lane `i % 8` accumulates `x[i]^2`; lanes are then added as
/// `((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))`, the order a 256-bit register folds in.
pub(crate) fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    fold8(acc, chunks.remainder())
}

/// `out[m]` = dot product of `h` (a multiple of 8 long) with `x[m * step..][..h.len()]`, in
/// eight interleaved partial sums (lane `k % 8`) folded as in [`fold8`]. The caller checks
/// that `x` covers every output.
pub(crate) fn fir8(x: &[f32], h: &[f32], step: usize, out: &mut [f32]) {
    for (m, o) in out.iter_mut().enumerate() {
        let w = x.get(m * step..m * step + h.len()).unwrap_or(&[]);
        let mut acc = [0.0f32; 8];
        for (hc, xc) in h.chunks_exact(8).zip(w.chunks_exact(8)) {
            for ((a, &hv), &xv) in acc.iter_mut().zip(hc).zip(xc) {
                *a += hv * xv;
            }
        }
        *o = fold8(acc, &[]);
    }
}

/// Add the tail to lanes `0..tail.len()` and fold the eight lanes (shared by every path).
pub(crate) fn fold8(mut acc: [f32; 8], tail: &[f32]) -> f32 {
    for (a, v) in acc.iter_mut().zip(tail) {
        *a += v * v;
    }
    let b = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (b[0] + b[2]) + (b[1] + b[3])
}

pub(crate) fn all_finite(x: &[f32]) -> bool {
    x.iter().all(|v| v.is_finite())
}

pub(crate) fn zero_non_finite(x: &mut [f32]) {
    for v in x {
        if !v.is_finite() {
            *v = 0.0;
        }
    }
}

pub(crate) fn sanitize_clamp(x: &mut [f32]) {
    for v in x {
        *v = if v.is_finite() {
            v.clamp(-1.0, 1.0)
        } else {
            0.0
        };
    }
}

pub(crate) fn downmix2(x: &[f32], out: &mut [f32]) {
    for (o, f) in out.iter_mut().zip(x.chunks_exact(2)) {
        *o = (f[0] + f[1]) * 0.5;
    }
}

pub(crate) fn interleave2(l: &[f32], r: &[f32], out: &mut [f32]) {
    for ((o, a), b) in out.chunks_exact_mut(2).zip(l).zip(r) {
        o[0] = *a;
        o[1] = *b;
    }
}

pub(crate) fn deinterleave2(x: &[f32], l: &mut [f32], r: &mut [f32]) {
    for ((f, a), b) in x.chunks_exact(2).zip(l.iter_mut()).zip(r.iter_mut()) {
        *a = f[0];
        *b = f[1];
    }
}

pub(crate) fn deinterleave2_clamp(x: &[f32], l: &mut [f32], r: &mut [f32]) -> bool {
    let finite = all_finite(&x[..2 * l.len().min(r.len())]);
    deinterleave2(x, l, r);
    sanitize_clamp(l);
    sanitize_clamp(r);
    finite
}

pub(crate) fn duck_mix(bg: &[f32], gain: &[f32], ch: usize, io: &mut [f32]) {
    for ((b, o), g) in bg.chunks_exact(ch).zip(io.chunks_exact_mut(ch)).zip(gain) {
        for (o, b) in o.iter_mut().zip(b) {
            *o = soft_limit(b * g + *o);
        }
    }
}

pub(crate) fn duck_mix1(bg: &[f32], gain: &[f32], io: &mut [f32]) {
    duck_mix(bg, gain, 1, io)
}

pub(crate) fn duck_mix2(bg: &[f32], gain: &[f32], io: &mut [f32]) {
    duck_mix(bg, gain, 2, io)
}

/// One sample of [`f32_to_i16`]: the conversion `Pcm::to_wav` has always used.
pub(crate) fn to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

pub(crate) fn f32_to_i16(x: &[f32], out: &mut [i16]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = to_i16(*v);
    }
}

pub(crate) fn s16le_to_f32(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0;
    }
}

/// AAC quantizer: `m = trunc(min(xp[i] * g + 0.4054, 8191))`, `q[i] = m` with the sign of
/// `coef[i]` (negative only when `coef[i] < 0`); returns the largest `m` (0 when empty).
/// `xp` holds |coef|^(3/4); inputs are finite.
pub(crate) fn quantize(xp: &[f32], coef: &[f32], g: f32, q: &mut [i32]) -> i32 {
    let mut maxq = 0;
    for ((d, &p), &c) in q.iter_mut().zip(xp).zip(coef) {
        let m = (p * g + QUANT_ROUND).min(QUANT_MAX) as i32;
        maxq = maxq.max(m);
        *d = if c < 0.0 { -m } else { m };
    }
    maxq
}

/// The quantizer's rounding offset (ISO/IEC 14496-3 informative encoder).
pub(crate) const QUANT_ROUND: f32 = 0.4054;
/// The largest quantized magnitude (book 11 with escapes).
pub(crate) const QUANT_MAX: f32 = 8191.0;
