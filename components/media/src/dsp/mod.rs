//! Vector kernels for the hot loops we own (mix, the 48 kHz to 16 kHz FIR, PCM conversions,
//! encoder input, the AAC quantizer, finiteness checks, the FFT in [`fft`]).
//!
//! The only module of the crate allowed to use `unsafe`. Every kernel has a scalar reference in
//! [`scalar`]; the ISA-specific versions (`x86` for SSE2 and AVX2 on x86_64, chosen at run time
//! and cached; `wasm` for simd128 when the wasm build enables it) compute **bit-identical**
//! results: they use the same operations in the same order (no FMA, no approximate
//! reciprocals), and the reductions ([`sum_squares`], [`fir8`]) are defined with eight
//! interleaved partial sums that every path reproduces. So native and wasm outputs agree
//! exactly; the tests below check each available path against the scalar one on the same
//! inputs. [`vectorized`] compiles ordinary Rust loops for AVX2 under the same rule.
//!
//! FMA is deliberately not used: a fused multiply-add rounds once where the scalar and wasm
//! paths round twice, which would make native and wasm outputs differ.

pub(crate) mod fft;
pub(crate) mod scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

/// An instruction set a kernel can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Plain Rust (auto-vectorised where the compiler manages).
    Scalar,
    /// x86_64 SSE2 (always present on x86_64).
    #[cfg(target_arch = "x86_64")]
    Sse2,
    /// x86_64 AVX2, detected at run time.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// wasm32 simd128, enabled at compile time.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128,
}

/// The best instruction set of this CPU, detected once.
pub(crate) fn best() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            // Benchmarks compare paths in one binary: DUB_MEDIA_ISA=scalar|sse2 caps the choice.
            let cap = std::env::var("DUB_MEDIA_ISA").unwrap_or_default();
            if cap == "scalar" {
                Isa::Scalar
            } else if cap != "sse2" && std::arch::is_x86_feature_detected!("avx2") {
                Isa::Avx2
            } else {
                Isa::Sse2
            }
        })
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| match std::env::var("DUB_MEDIA_ISA").as_deref() {
            Ok("scalar") => Isa::Scalar,
            _ => Isa::Simd128,
        })
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    {
        Isa::Scalar
    }
}

/// Every instruction set usable on this CPU (for tests and benches).
#[cfg(test)]
pub(crate) fn available() -> Vec<Isa> {
    let mut v = vec![Isa::Scalar];
    #[cfg(target_arch = "x86_64")]
    {
        v.push(Isa::Sse2);
        if std::arch::is_x86_feature_detected!("avx2") {
            v.push(Isa::Avx2);
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    v.push(Isa::Simd128);
    v
}

/// Dispatch `$f(args)` to the module of `$isa`.
macro_rules! dispatch {
    ($isa:expr, $f:ident ( $($a:expr),* )) => {
        match $isa {
            Isa::Scalar => scalar::$f($($a),*),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE2 is part of the x86_64 baseline.
            Isa::Sse2 => unsafe { x86::sse2::$f($($a),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only produced after `is_x86_feature_detected!("avx2")`.
            Isa::Avx2 => unsafe { x86::avx2::$f($($a),*) },
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => wasm::$f($($a),*),
        }
    };
}

/// Run `f` inside a function compiled for the CPU's widest vector ISA (x86_64: AVX2 when
/// detected), so the loops LLVM inlines into it (`#[inline(always)]` bodies) are vectorized
/// for that ISA. The same float operations in the same order (Rust never contracts a
/// multiply and an add into an FMA), so the results are the same bits on every path.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    match best() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only produced after `is_x86_feature_detected!("avx2")`.
        Isa::Avx2 => unsafe { x86::avx2::call(f) },
        _ => f(),
    }
}

/// FIR filter with decimation: `out[m]` = dot product of `h` with `x[m * step..][..h.len()]`,
/// in eight interleaved partial sums (lane `k % 8`) folded pairwise. `h` is zero-padded to a
/// multiple of 8 taps; outputs that `x` does not cover are left as they are (the caller sizes
/// `x`).
pub(crate) fn fir8(x: &[f32], h: &[f32], step: usize, out: &mut [f32]) {
    fir8_on(best(), x, h, step, out)
}

pub(crate) fn fir8_on(isa: Isa, x: &[f32], h: &[f32], step: usize, out: &mut [f32]) {
    let h = &h[..h.len() / 8 * 8];
    // Outputs m with m * step + h.len() <= x.len().
    let covered = match x.len().checked_sub(h.len()) {
        Some(room) if step > 0 => (room / step + 1).min(out.len()),
        _ => 0,
    };
    let out = &mut out[..covered];
    dispatch!(isa, fir8(x, h, step, out))
}

/// `dst[i] += src[i]` over the shorter length.
pub(crate) fn add_into(dst: &mut [f32], src: &[f32]) {
    add_into_on(best(), dst, src)
}

pub(crate) fn add_into_on(isa: Isa, dst: &mut [f32], src: &[f32]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    dispatch!(isa, add_into(dst, src))
}

/// Sum of squares with eight interleaved partial sums (lane `i % 8`), added pairwise at the end.
pub(crate) fn sum_squares(x: &[f32]) -> f32 {
    sum_squares_on(best(), x)
}

pub(crate) fn sum_squares_on(isa: Isa, x: &[f32]) -> f32 {
    dispatch!(isa, sum_squares(x))
}

/// Whether every value is finite (no NaN, no infinity).
pub(crate) fn all_finite(x: &[f32]) -> bool {
    all_finite_on(best(), x)
}

pub(crate) fn all_finite_on(isa: Isa, x: &[f32]) -> bool {
    dispatch!(isa, all_finite(x))
}

/// Replace non-finite values by 0.
pub(crate) fn zero_non_finite(x: &mut [f32]) {
    zero_non_finite_on(best(), x)
}

pub(crate) fn zero_non_finite_on(isa: Isa, x: &mut [f32]) {
    dispatch!(isa, zero_non_finite(x))
}

/// Non-finite values to 0, the rest clamped to [-1, 1] (encoder input).
pub(crate) fn sanitize_clamp(x: &mut [f32]) {
    sanitize_clamp_on(best(), x)
}

pub(crate) fn sanitize_clamp_on(isa: Isa, x: &mut [f32]) {
    dispatch!(isa, sanitize_clamp(x))
}

/// Stereo frames to mono: `out[i] = (x[2i] + x[2i + 1]) * 0.5` for `i < out.len()`.
///
/// # Panics
/// If `x` is shorter than `2 * out.len()`.
pub(crate) fn downmix2(x: &[f32], out: &mut [f32]) {
    downmix2_on(best(), x, out)
}

pub(crate) fn downmix2_on(isa: Isa, x: &[f32], out: &mut [f32]) {
    let x = &x[..2 * out.len()];
    dispatch!(isa, downmix2(x, out))
}

/// Two planes to interleaved stereo: `out[2i] = l[i]`, `out[2i + 1] = r[i]`.
///
/// # Panics
/// If `l` or `r` is shorter than `out.len() / 2`.
pub(crate) fn interleave2(l: &[f32], r: &[f32], out: &mut [f32]) {
    interleave2_on(best(), l, r, out)
}

pub(crate) fn interleave2_on(isa: Isa, l: &[f32], r: &[f32], out: &mut [f32]) {
    let n = out.len() / 2;
    let (l, r, out) = (&l[..n], &r[..n], &mut out[..2 * n]);
    dispatch!(isa, interleave2(l, r, out))
}

/// Interleaved stereo to two planes (the inverse of [`interleave2`]).
///
/// # Panics
/// If `x` is shorter than `2 * min(l.len(), r.len())`.
pub(crate) fn deinterleave2(x: &[f32], l: &mut [f32], r: &mut [f32]) {
    deinterleave2_on(best(), x, l, r)
}

pub(crate) fn deinterleave2_on(isa: Isa, x: &[f32], l: &mut [f32], r: &mut [f32]) {
    let n = l.len().min(r.len());
    let (x, l, r) = (&x[..2 * n], &mut l[..n], &mut r[..n]);
    dispatch!(isa, deinterleave2(x, l, r))
}

/// [`deinterleave2`] then [`sanitize_clamp`] on both halves, in one pass; returns whether
/// every value of `x` it read was finite.
pub(crate) fn deinterleave2_clamp(x: &[f32], l: &mut [f32], r: &mut [f32]) -> bool {
    deinterleave2_clamp_on(best(), x, l, r)
}

pub(crate) fn deinterleave2_clamp_on(isa: Isa, x: &[f32], l: &mut [f32], r: &mut [f32]) -> bool {
    let n = l.len().min(r.len());
    let (x, l, r) = (&x[..2 * n], &mut l[..n], &mut r[..n]);
    dispatch!(isa, deinterleave2_clamp(x, l, r))
}

/// Background times a per-frame gain plus speech, through the soft limiter, in place over the
/// speech: `io[f*ch + c] = soft_limit(bg[f*ch + c] * gain[f] + io[f*ch + c])`.
///
/// `ch` 1 and 2 are vectorised; other channel counts run the scalar kernel.
///
/// # Panics
/// If `bg` or `io` hold fewer than `gain.len()` frames of `ch` channels.
pub(crate) fn duck_mix(bg: &[f32], gain: &[f32], ch: usize, io: &mut [f32]) {
    duck_mix_on(best(), bg, gain, ch, io)
}

pub(crate) fn duck_mix_on(isa: Isa, bg: &[f32], gain: &[f32], ch: usize, io: &mut [f32]) {
    let n = gain.len() * ch;
    let (bg, io) = (&bg[..n], &mut io[..n]);
    match ch {
        1 => dispatch!(isa, duck_mix1(bg, gain, io)),
        2 => dispatch!(isa, duck_mix2(bg, gain, io)),
        _ => scalar::duck_mix(bg, gain, ch, io),
    }
}

/// f32 to signed 16-bit: clamp to [-1, 1], scale by 32767, round half away from zero
/// (the same as `(x.clamp(-1.0, 1.0) * 32767.0).round() as i16`; non-finite values give 0).
///
/// # Panics
/// If `out` is shorter than `x`.
pub(crate) fn f32_to_i16(x: &[f32], out: &mut [i16]) {
    f32_to_i16_on(best(), x, out)
}

pub(crate) fn f32_to_i16_on(isa: Isa, x: &[f32], out: &mut [i16]) {
    let out = &mut out[..x.len()];
    dispatch!(isa, f32_to_i16(x, out))
}

/// Little-endian signed 16-bit PCM bytes to f32 (`v / 32768`); `out.len()` samples are read.
///
/// # Panics
/// If `bytes` is shorter than `2 * out.len()`.
pub(crate) fn s16le_to_f32(bytes: &[u8], out: &mut [f32]) {
    s16le_to_f32_on(best(), bytes, out)
}

pub(crate) fn s16le_to_f32_on(isa: Isa, bytes: &[u8], out: &mut [f32]) {
    let bytes = &bytes[..2 * out.len()];
    dispatch!(isa, s16le_to_f32(bytes, out))
}

#[cfg(test)]
mod tests;

/// The AAC quantizer over one band (see [`scalar::quantize`]); returns the largest magnitude.
///
/// # Panics
/// If `coef` or `q` is shorter than `xp`.
pub(crate) fn quantize(xp: &[f32], coef: &[f32], g: f32, q: &mut [i32]) -> i32 {
    quantize_on(best(), xp, coef, g, q)
}

pub(crate) fn quantize_on(isa: Isa, xp: &[f32], coef: &[f32], g: f32, q: &mut [i32]) -> i32 {
    let n = xp.len();
    let (coef, q) = (&coef[..n], &mut q[..n]);
    dispatch!(isa, quantize(xp, coef, g, q))
}
