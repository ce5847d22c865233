//! Sample-rate conversion (rubato's FFT resampler) and channel down-/up-mixing.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

use crate::dsp;
use crate::error::{Error, Result};
use crate::limits;
use crate::pcm::Pcm;

/// Convert `pcm` to `sample_rate` and `channels`.
///
/// Down-mix to mono averages the channels; up-mix from mono copies it; other layouts map
/// output channel `c` to the average of the input channels `i` with `i % channels == c`
/// (or copy input `c % in_channels` when up-mixing). The output has exactly
/// `round(frames * sample_rate / pcm.sample_rate)` frames, aligned with the input (the
/// resampler's delay is trimmed).
pub fn resample(pcm: &Pcm, sample_rate: u32, channels: u16) -> Result<Pcm> {
    pcm.validate()?;
    limits::check_audio_format(sample_rate, channels)?;
    // Same layout: resample straight from the input, no copy.
    let remixed;
    let mixed = if pcm.channels == channels {
        pcm
    } else {
        remixed = remix(pcm, channels);
        &remixed
    };
    if pcm.sample_rate == sample_rate {
        return Ok(mixed.clone());
    }
    let ch = usize::from(channels);
    let frames = mixed.frames();
    let out_frames = ((frames as u64 * u64::from(sample_rate) + u64::from(pcm.sample_rate) / 2)
        / u64::from(pcm.sample_rate)) as usize;
    if frames == 0 {
        return Pcm::new(sample_rate, channels, Vec::new());
    }
    let (chunk, sub_chunks) = fft_shape(pcm.sample_rate, sample_rate);
    let mut rs = Fft::<f32>::new_custom(
        pcm.sample_rate as usize,
        sample_rate as usize,
        chunk,
        sub_chunks,
        ch,
        WindowFunction::BlackmanHarris2,
        FixedSync::Input,
    )
    .map_err(|e| Error::internal(format!("resampler: {e}")))?;
    let input = InterleavedSlice::new(&mixed.samples[..], ch, frames)
        .map_err(|e| Error::internal(format!("resampler input: {e}")))?;
    let out = rs
        .process_all(&input, frames, None)
        .map_err(|e| Error::internal(format!("resample: {e}")))?;
    let mut samples = out.take_data();
    samples.resize(out_frames * ch, 0.0);
    dsp::zero_non_finite(&mut samples);
    // Finite (just sanitized), whole frames, and no longer than the validated input allows
    // at the checked output rate: `Pcm::new`'s O(n) re-validation is not needed.
    Ok(Pcm {
        sample_rate,
        channels,
        samples,
    })
}

/// Chunk size and FFT sub-chunks of rubato's resampler for a rate pair.
///
/// 48 kHz to 16 kHz (every segment, for speech recognition) uses one 960-frame FFT chunk:
/// measured on tones, it passes everything up to 7 kHz at 125 dB SNR against the ideal
/// signal and costs about a third of the instructions of rubato's default (1024 frames in
/// four sub-chunks), whose shorter filters already attenuate 7 kHz (18 dB SNR). Other pairs
/// keep that default: one 960-frame chunk measured 8.6 dB (22.05 kHz to 48 kHz) and 12.2 dB
/// (44.1 kHz to 48 kHz) against the ideal. Test `shapes_keep_tones_aligned` checks the shapes
/// in use.
fn fft_shape(from: u32, to: u32) -> (usize, usize) {
    match (from, to) {
        (48_000, 16_000) => (960, 1),
        _ => (1024, 4),
    }
}

/// Change the channel count at the same rate.
fn remix(pcm: &Pcm, channels: u16) -> Pcm {
    let (cin, cout) = (usize::from(pcm.channels), usize::from(channels));
    let frames = pcm.frames();
    let mut samples = vec![0.0f32; frames * cout];
    match (cin, cout) {
        (2, 1) => dsp::downmix2(&pcm.samples, &mut samples),
        (1, 2) => dsp::interleave2(&pcm.samples, &pcm.samples, &mut samples),
        _ => remix_general(&pcm.samples, cin, cout, &mut samples),
    }
    Pcm {
        sample_rate: pcm.sample_rate,
        channels,
        samples,
    }
}

/// [`remix`] for any layout, frame by frame.
fn remix_general(input: &[f32], cin: usize, cout: usize, out: &mut [f32]) {
    for (f, o) in input.chunks_exact(cin).zip(out.chunks_exact_mut(cout)) {
        if cout < cin {
            for (c, v) in o.iter_mut().enumerate() {
                let (sum, n) = f
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % cout == c)
                    .fold((0.0f32, 0u32), |(s, n), (_, v)| (s + v, n + 1));
                *v = sum / n.max(1) as f32;
            }
        } else {
            for (c, v) in o.iter_mut().enumerate() {
                *v = f.get(c % cin).copied().unwrap_or(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zero_crossings(x: &[f32]) -> usize {
        x.windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count()
    }

    #[test]
    fn stereo_48k_to_mono_16k_keeps_frequency_and_length() {
        let frames = 48_000;
        let freq = 440.0f32;
        let mut s = Vec::with_capacity(frames * 2);
        for i in 0..frames {
            let v = 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin();
            s.push(v);
            s.push(v * 0.5);
        }
        let pcm = Pcm::new(48_000, 2, s).unwrap();
        let out = resample(&pcm, 16_000, 1).unwrap();
        assert_eq!((out.sample_rate, out.channels), (16_000, 1));
        assert_eq!(out.frames(), 16_000);
        // One second of 440 Hz crosses zero 880 times; allow the edges' transient.
        let zc = zero_crossings(&out.samples[100..15_900]) as f32 / (15_800.0 / 16_000.0);
        assert!((zc - 880.0).abs() < 4.0, "zero crossings/s {zc}");
        // Amplitude is the channel average, 0.375, away from the edges; and aligned in time.
        let peak = out.samples[1000..15_000]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.375).abs() < 0.01, "peak {peak}");
        let expect =
            |i: usize| 0.375 * (2.0 * std::f32::consts::PI * freq * i as f32 / 16_000.0).sin();
        let err = (2000..14_000)
            .map(|i| (out.samples[i] - expect(i)).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 0.01, "max error vs ideal {err}");
    }

    fn tones(rate: u32, frames: usize, tones: &[(f64, f64)]) -> Vec<f32> {
        (0..frames)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                tones
                    .iter()
                    .map(|(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin())
                    .sum::<f64>() as f32
            })
            .collect()
    }

    fn snr_db(ideal: &[f32], got: &[f32], margin: usize) -> f64 {
        let n = ideal.len().min(got.len());
        let (mut s, mut e) = (0f64, 0f64);
        for i in margin..n - margin {
            let (a, b) = (f64::from(ideal[i]), f64::from(got[i]));
            s += a * a;
            e += (a - b) * (a - b);
        }
        10.0 * (s / e.max(1e-30)).log10()
    }

    /// Tones up to 7 kHz pass and tones above 8 kHz vanish, on every rate pair's FFT shape:
    /// the output matches the ideal in-band signal sampled at the output rate.
    #[test]
    fn shapes_keep_tones_aligned() {
        let cases = [
            // (from, to, tones that must pass, tones that must vanish, min SNR dB)
            (
                48_000,
                16_000,
                7_000.0,
                vec![9_500.0, 12_000.0, 20_000.0],
                100.0,
            ),
            (24_000, 48_000, 10_000.0, vec![], 100.0),
            (22_050, 48_000, 9_000.0, vec![], 100.0),
            (44_100, 48_000, 18_000.0, vec![], 100.0),
            (16_000, 48_000, 6_500.0, vec![], 100.0),
        ];
        for (from, to, top, stop, min_snr) in cases {
            let pass = [(300.0, 0.2), (1000.0, 0.2), (3100.0, 0.15), (top, 0.05)];
            let all: Vec<(f64, f64)> = pass
                .iter()
                .copied()
                .chain(stop.iter().map(|f| (*f, 0.1)))
                .collect();
            let frames = from as usize * 4;
            let pcm = Pcm::new(from, 1, tones(from, frames, &all)).unwrap();
            let out = resample(&pcm, to, 1).unwrap();
            let ideal = tones(to, out.frames(), &pass);
            let snr = snr_db(&ideal, &out.samples, to as usize / 20);
            assert!(snr > min_snr, "{from} -> {to}: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn upsample_and_upmix() {
        let pcm = Pcm::new(
            16_000,
            1,
            (0..1601).map(|i| (i as f32 * 0.01).sin() * 0.3).collect(),
        )
        .unwrap();
        let out = resample(&pcm, 44_100, 2).unwrap();
        assert_eq!(out.channels, 2);
        assert_eq!(
            out.frames(),
            (1601.0f64 * 44_100.0 / 16_000.0).round() as usize
        );
        assert!(out.samples.chunks_exact(2).all(|f| f[0] == f[1]));
        let same = resample(&pcm, 16_000, 1).unwrap();
        assert_eq!(same, pcm);
        assert!(resample(&pcm, 1000, 1).is_err());
        assert!(resample(&pcm, 16_000, 9).is_err());
    }
}
