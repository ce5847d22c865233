//! Interleaved f32 PCM and its RIFF/WAVE reading and writing.

use crate::dsp;
use crate::error::{Error, Result};
use crate::limits;

/// Decoded audio: interleaved f32 samples, nominally in [-1, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Interleaved samples (`frames * channels` values).
    pub samples: Vec<f32>,
}

impl Pcm {
    /// Wrap interleaved samples, checking rate, channel count, length and finiteness.
    pub fn new(sample_rate: u32, channels: u16, samples: Vec<f32>) -> Result<Pcm> {
        let pcm = Pcm {
            sample_rate,
            channels,
            samples,
        };
        pcm.validate()?;
        Ok(pcm)
    }

    /// Silence of `frames` frames.
    pub fn silence(sample_rate: u32, channels: u16, frames: usize) -> Result<Pcm> {
        limits::check_audio_format(sample_rate, channels)?;
        check_frames(frames)?;
        Ok(Pcm {
            sample_rate,
            channels,
            samples: vec![0.0; frames * usize::from(channels)],
        })
    }

    /// Check the invariants `new` establishes (the fields are public, so callers may break them).
    pub fn validate(&self) -> Result<()> {
        self.validate_shape()?;
        check_finite(&self.samples, 0)
    }

    /// [`Pcm::validate`] without the finiteness check, for callers that check the samples
    /// block by block as they read them ([`check_finite`]).
    pub(crate) fn validate_shape(&self) -> Result<()> {
        limits::check_audio_format(self.sample_rate, self.channels)?;
        if !self
            .samples
            .len()
            .is_multiple_of(usize::from(self.channels))
        {
            return Err(Error::invalid(format!(
                "{} samples is not a whole number of {}-channel frames",
                self.samples.len(),
                self.channels
            )));
        }
        check_frames(self.frames())
    }

    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        match self.channels {
            0 => 0,
            c => self.samples.len() / usize::from(c),
        }
    }

    /// A copy of frames `[start, start + count)`, clamped to the end.
    pub fn slice(&self, start: usize, count: usize) -> Pcm {
        let ch = usize::from(self.channels);
        let frames = self.frames();
        let s = start.min(frames);
        let e = s.saturating_add(count).min(frames);
        Pcm {
            sample_rate: self.sample_rate,
            channels: self.channels,
            samples: self.samples.get(s * ch..e * ch).unwrap_or(&[]).to_vec(),
        }
    }

    /// Parse a RIFF/WAVE file: PCM 8/16/24/32-bit integer or 32/64-bit float.
    pub fn from_wav(bytes: &[u8]) -> Result<Pcm> {
        limits::check_input_len(bytes.len(), "WAV file")?;
        let riff = bytes
            .get(..12)
            .ok_or_else(|| Error::invalid("WAV: too short"))?;
        if &riff[..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
            return Err(Error::invalid("WAV: not RIFF/WAVE"));
        }
        let mut pos = 12usize;
        let mut fmt: Option<(u16, u16, u32, u16)> = None;
        let mut data: Option<&[u8]> = None;
        while pos.checked_add(8).is_some_and(|e| e <= bytes.len()) {
            let id = &bytes[pos..pos + 4];
            let len = u32::from_le_bytes([
                bytes[pos + 4],
                bytes[pos + 5],
                bytes[pos + 6],
                bytes[pos + 7],
            ]) as usize;
            let body_start = pos + 8;
            // Streaming writers put 0 or 0xFFFFFFFF in the data size: take the rest of the file.
            let body_end = body_start.saturating_add(len).min(bytes.len());
            let body = &bytes[body_start..body_end];
            match id {
                b"fmt " => {
                    if body.len() < 16 {
                        return Err(Error::invalid("WAV: fmt chunk too short"));
                    }
                    let mut tag = u16::from_le_bytes([body[0], body[1]]);
                    let channels = u16::from_le_bytes([body[2], body[3]]);
                    let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                    let bits = u16::from_le_bytes([body[14], body[15]]);
                    if tag == 0xfffe && body.len() >= 26 {
                        tag = u16::from_le_bytes([body[24], body[25]]);
                    }
                    fmt = Some((tag, channels, rate, bits));
                }
                b"data" => {
                    let end = if len == 0 || len == 0xffff_ffff {
                        bytes.len()
                    } else {
                        body_end
                    };
                    data = Some(&bytes[body_start..end]);
                    break;
                }
                _ => {}
            }
            pos = body_start.saturating_add(len).saturating_add(len & 1);
        }
        let (tag, channels, rate, bits) = fmt.ok_or_else(|| Error::invalid("WAV: no fmt chunk"))?;
        let data = data.ok_or_else(|| Error::invalid("WAV: no data chunk"))?;
        limits::check_audio_format(rate, channels)?;
        let width = usize::from(bits / 8);
        let decode: fn(&[u8]) -> f32 = match (tag, bits) {
            (1, 8) => |b| (f32::from(b[0]) - 128.0) / 128.0,
            (1, 16) => |b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0,
            (1, 24) => |b| (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0,
            (1, 32) => |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            (3, 32) => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            (3, 64) => {
                |b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            _ => {
                return Err(Error::unsupported(format!(
                    "WAV format tag {tag} with {bits} bits"
                )));
            }
        };
        let frame_bytes = width * usize::from(channels);
        let frames = data.len() / frame_bytes;
        check_frames(frames)?;
        if (tag, bits) == (1, 16) {
            // The common case (TTS output), vectorised; always finite.
            let mut samples = vec![0.0f32; frames * usize::from(channels)];
            dsp::s16le_to_f32(data, &mut samples);
            return Ok(Pcm {
                sample_rate: rate,
                channels,
                samples,
            });
        }
        let samples: Vec<f32> = data
            .chunks_exact(width)
            .take(frames * usize::from(channels))
            .map(|b| {
                let v = decode(b);
                if v.is_finite() { v } else { 0.0 }
            })
            .collect();
        Pcm::new(rate, channels, samples)
    }

    /// Encode as a 16-bit PCM WAV file (samples clipped to [-1, 1]).
    pub fn to_wav(&self) -> Vec<u8> {
        let ch = self.channels;
        let data_len = self.samples.len() * 2;
        let mut out = Vec::with_capacity(44 + data_len);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&((36 + data_len) as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&ch.to_le_bytes());
        out.extend_from_slice(&self.sample_rate.to_le_bytes());
        out.extend_from_slice(&(self.sample_rate * u32::from(ch) * 2).to_le_bytes());
        out.extend_from_slice(&(ch * 2).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data_len as u32).to_le_bytes());
        let mut buf = [0i16; 1024];
        for chunk in self.samples.chunks(buf.len()) {
            let buf = &mut buf[..chunk.len()];
            dsp::f32_to_i16(chunk, buf);
            out.extend(buf.iter().flat_map(|v| v.to_le_bytes()));
        }
        out
    }
}

/// Append `frames` frames of `planes` (one slice per channel) to `out`, interleaved; a plane
/// shorter than `frames` reads as zeros past its end. Stereo is vectorised (decoder output).
pub(crate) fn extend_interleaved<P: AsRef<[f32]>>(out: &mut Vec<f32>, planes: &[P], frames: usize) {
    let ch = planes.len();
    let start = out.len();
    out.resize(start + frames * ch, 0.0);
    let dst = &mut out[start..];
    match planes {
        [l, r] if l.as_ref().len() >= frames && r.as_ref().len() >= frames => {
            dsp::interleave2(l.as_ref(), r.as_ref(), dst)
        }
        _ => {
            for (c, plane) in planes.iter().enumerate() {
                let plane = plane.as_ref();
                for (t, v) in plane.iter().take(frames).enumerate() {
                    dst[t * ch + c] = *v;
                }
            }
        }
    }
}

/// Non-finite samples to 0, the rest clamped to [-1, 1] (what the encoder accepts).
pub(crate) fn sanitize_clamp(samples: &mut [f32]) {
    dsp::sanitize_clamp(samples)
}

/// The error of [`Pcm::validate`] for a non-finite sample in `samples`, which start at sample
/// `first` of the PCM.
pub(crate) fn check_finite(samples: &[f32], first: usize) -> Result<()> {
    if !dsp::all_finite(samples)
        && let Some(i) = samples.iter().position(|s| !s.is_finite())
    {
        return Err(Error::invalid(format!(
            "sample {} is not finite",
            first + i
        )));
    }
    Ok(())
}

fn check_frames(frames: usize) -> Result<()> {
    if frames > limits::MAX_PCM_FRAMES {
        return Err(Error::limit(format!(
            "{frames} frames exceed {}",
            limits::MAX_PCM_FRAMES
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_round_trip_16bit() {
        let samples: Vec<f32> = (0..2000)
            .map(|i| 0.5 * ((i / 2) as f32 * 0.05).sin() * if i % 2 == 0 { 1.0 } else { -0.5 })
            .collect();
        let pcm = Pcm::new(22050, 2, samples).unwrap();
        let wav = pcm.to_wav();
        assert_eq!(wav.len(), 44 + 4000);
        assert_eq!(&wav[..4], b"RIFF");
        let back = Pcm::from_wav(&wav).unwrap();
        assert_eq!(back.sample_rate, 22050);
        assert_eq!(back.channels, 2);
        assert_eq!(back.frames(), 1000);
        let max_err = pcm
            .samples
            .iter()
            .zip(&back.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err <= 1.0 / 32767.0, "max error {max_err}");
        // Byte-identical after a second trip.
        assert_eq!(back.to_wav(), wav);
    }

    #[test]
    fn wav_float_and_24bit() {
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&3u16.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&16000u32.to_le_bytes());
        wav.extend_from_slice(&64000u32.to_le_bytes());
        wav.extend_from_slice(&4u16.to_le_bytes());
        wav.extend_from_slice(&32u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&8u32.to_le_bytes());
        wav.extend_from_slice(&0.25f32.to_le_bytes());
        wav.extend_from_slice(&(-0.75f32).to_le_bytes());
        let pcm = Pcm::from_wav(&wav).unwrap();
        assert_eq!(pcm.samples, vec![0.25, -0.75]);
        assert_eq!(pcm.sample_rate, 16000);

        // Same file as 24-bit PCM: 0x400000 = 0.5, 0xC00000 = -0.5.
        let mut w24 = wav[..20].to_vec();
        w24.extend_from_slice(&1u16.to_le_bytes());
        w24.extend_from_slice(&1u16.to_le_bytes());
        w24.extend_from_slice(&16000u32.to_le_bytes());
        w24.extend_from_slice(&48000u32.to_le_bytes());
        w24.extend_from_slice(&3u16.to_le_bytes());
        w24.extend_from_slice(&24u16.to_le_bytes());
        w24.extend_from_slice(b"data");
        w24.extend_from_slice(&6u32.to_le_bytes());
        w24.extend_from_slice(&[0, 0, 0x40, 0, 0, 0xc0]);
        let pcm = Pcm::from_wav(&w24).unwrap();
        assert_eq!(pcm.samples, vec![0.5, -0.5]);
    }

    #[test]
    fn wav_garbage_is_an_error() {
        assert!(Pcm::from_wav(b"RIFF").is_err());
        assert!(Pcm::from_wav(b"RIFF\0\0\0\0WAVEdata\xff\xff\xff\xff").is_err());
        let mut no_fmt = b"RIFF\0\0\0\0WAVEjunk\x02\0\0\0ab".to_vec();
        no_fmt.extend_from_slice(b"data\x02\0\0\0\x01\x02");
        assert!(matches!(Pcm::from_wav(&no_fmt), Err(Error::Invalid(_))));
    }

    #[test]
    fn slice_clamps() {
        let pcm = Pcm::new(8000, 2, (0..20).map(|i| i as f32 / 20.0).collect()).unwrap();
        assert_eq!(pcm.frames(), 10);
        let s = pcm.slice(8, 5);
        assert_eq!(s.frames(), 2);
        assert_eq!(s.samples[0], 16.0 / 20.0);
        assert_eq!(pcm.slice(20, 5).frames(), 0);
        assert!(Pcm::new(8000, 2, vec![0.0; 3]).is_err());
        assert!(Pcm::new(8000, 0, vec![]).is_err());
        assert!(Pcm::new(8000, 1, vec![f32::NAN]).is_err());
    }
}
