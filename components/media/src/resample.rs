//! Sample-rate conversion (rubato's FFT resampler) and channel down-/up-mixing.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

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
    let mixed = remix(pcm, channels);
    if pcm.sample_rate == sample_rate {
        return Ok(mixed);
    }
    let ch = usize::from(channels);
    let frames = mixed.frames();
    let out_frames = ((frames as u64 * u64::from(sample_rate) + u64::from(pcm.sample_rate) / 2)
        / u64::from(pcm.sample_rate)) as usize;
    if frames == 0 {
        return Pcm::new(sample_rate, channels, Vec::new());
    }
    let mut rs = Fft::<f32>::new(
        pcm.sample_rate as usize,
        sample_rate as usize,
        1024,
        ch,
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
    for s in &mut samples {
        if !s.is_finite() {
            *s = 0.0;
        }
    }
    Pcm::new(sample_rate, channels, samples)
}

/// Change the channel count at the same rate.
fn remix(pcm: &Pcm, channels: u16) -> Pcm {
    let (cin, cout) = (usize::from(pcm.channels), usize::from(channels));
    if cin == cout {
        return pcm.clone();
    }
    let frames = pcm.frames();
    let mut samples = Vec::with_capacity(frames * cout);
    for f in pcm.samples.chunks_exact(cin) {
        if cout < cin {
            for c in 0..cout {
                let (sum, n) = f
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % cout == c)
                    .fold((0.0f32, 0u32), |(s, n), (_, v)| (s + v, n + 1));
                samples.push(sum / n.max(1) as f32);
            }
        } else {
            for c in 0..cout {
                samples.push(f.get(c % cin).copied().unwrap_or(0.0));
            }
        }
    }
    Pcm {
        sample_rate: pcm.sample_rate,
        channels,
        samples,
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
