//! AAC decode (raw access units + ASC; syom) and AAC-LC encode (our own, [`encode`]).
//!
//! Decoding does not trim anything: every access unit yields exactly 1024 frames, so a segment
//! of N access units decodes to N * 1024 frames on the segment's own timeline.
//!
//! Encoding: access unit `k`'s MDCT window spans input frames `k` and `k + 1`, so once
//! overlapped with unit `k - 1` it decodes to frame `k`. [`encode_aligned`] feeds one frame
//! before the segment (transient history only) and one after (the window's second half).

use crate::error::{Error, Result};
use crate::limits;
use crate::pcm::Pcm;

pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod mdct;
pub(crate) mod tables;

/// Samples per AAC-LC access unit.
pub const FRAME: usize = 1024;

/// Decode raw AAC access units with the given AudioSpecificConfig to interleaved PCM;
/// every unit must decode to `frame_len` frames (1024 for AAC-LC, 2048 with SBR) at
/// `sample_rate` x `channels`.
pub(crate) fn decode_aus<'a>(
    asc: &[u8],
    sample_rate: u32,
    channels: u16,
    frame_len: usize,
    aus: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Result<Pcm> {
    let n = aus.len();
    if n > limits::MAX_FRAMES {
        return Err(Error::limit(format!("{n} access units")));
    }
    // Our AAC-LC decoder first (2.5x syom's speed, and the same bits natively and in wasm);
    // syom for what it refuses (HE-AAC, coupling channels, PCE layouts, ...) and for what it
    // finds invalid, so syom's verdict on damaged streams stands.
    let aus: Vec<&[u8]> = aus.collect();
    if frame_len == FRAME
        && let Ok(pcm) = decode::decode_lc(asc, aus.iter().copied())
        && pcm.sample_rate == sample_rate
        && pcm.channels == channels
    {
        return Ok(pcm);
    }
    let opts = syom::DecodeOptions::audio().with_max_duration_secs(f64::INFINITY);
    let mut dec = syom::Decoder::from_asc(asc, opts)
        .map_err(|e| Error::unsupported(format!("AAC config: {e}")))?;
    let ch = usize::from(channels);
    let mut samples: Vec<f32> = Vec::with_capacity(n * frame_len * ch);
    for (i, au) in aus.into_iter().enumerate() {
        let before = samples.len();
        let mut bad: Option<String> = None;
        dec.decode_au(au, |f| {
            if f.samples != frame_len || f.planar.len() != ch || f.sample_rate != sample_rate {
                bad = Some(format!(
                    "access unit {i} decoded to {} x {} at {} Hz",
                    f.planar.len(),
                    f.samples,
                    f.sample_rate
                ));
                return Ok(());
            }
            crate::pcm::extend_interleaved(&mut samples, f.planar, frame_len);
            Ok(())
        })
        .map_err(|e| Error::invalid(format!("AAC access unit {i}: {e}")))?;
        if let Some(msg) = bad {
            return Err(Error::unsupported(msg));
        }
        if samples.len() != before + frame_len * ch {
            return Err(Error::invalid(format!(
                "AAC access unit {i} produced no audio"
            )));
        }
    }
    Pcm::new(sample_rate, channels, samples)
}

/// What one access unit decodes to: (sample rate, channels, frames). Finds SBR and PS
/// whether the ASC signals them explicitly (object types 5 and 29) or not (implicit
/// signalling: an LC config at the core rate whose units carry SBR extension payloads).
pub(crate) fn probe_output(asc: &[u8], first_au: &[u8]) -> Result<(u32, u16, usize)> {
    let opts = syom::DecodeOptions::audio().with_max_duration_secs(f64::INFINITY);
    let mut dec = syom::Decoder::from_asc(asc, opts)
        .map_err(|e| Error::unsupported(format!("AAC config: {e}")))?;
    let mut out = None;
    dec.decode_au(first_au, |f| {
        out.get_or_insert((f.sample_rate, f.planar.len(), f.samples));
        Ok(())
    })
    .map_err(|e| Error::invalid(format!("AAC access unit 0: {e}")))?;
    let (rate, ch, frames) =
        out.ok_or_else(|| Error::invalid("AAC access unit 0 produced no audio"))?;
    let ch = u16::try_from(ch).map_err(|_| Error::unsupported("AAC channel count"))?;
    limits::check_audio_format(rate, ch)?;
    if frames != FRAME && frames != 2 * FRAME {
        return Err(Error::unsupported(format!(
            "AAC access units of {frames} samples"
        )));
    }
    Ok((rate, ch, frames))
}

/// Encode `audio` (truncated or zero-padded to `frames * 1024` frames) to `frames` raw AAC-LC
/// access units that decode in sync with it.
///
/// The encoder is fed `priming` (its last 1024 frames, zero-padded in front; silence when
/// absent: only the transient detector looks at it), then the audio, then one frame of
/// look-ahead, and emits exactly `frames` units: unit `k` decodes to input frame `k` once
/// overlapped with unit `k - 1` (the previous segment's last unit, for `k = 0`).
///
/// The last kept unit's MDCT window reaches one frame past the segment, and a player overlaps
/// it with the next segment's first unit: the join is exact only if that look-ahead frame is
/// the next segment's first frame of PCM (`lookahead`). Without it, the segment's last frame
/// is mirrored under a short fade (continuous at the join, then silence); measured, this beats
/// both plain silence and an untapered mirror (see `remux_join_stays_in_sync`).
pub(crate) fn encode_aligned(
    audio: &Pcm,
    priming: Option<&Pcm>,
    lookahead: Option<&Pcm>,
    frames: usize,
    bitrate_bps: u32,
) -> Result<Vec<Vec<u8>>> {
    let input = Aligned {
        audio,
        priming,
        lookahead,
        frames,
        avail: audio.frames().min(frames * FRAME),
        checked: std::cell::Cell::new(Ok(0)),
    };
    let aus = encode::LcEncoder::new(audio.sample_rate, audio.channels, bitrate_bps)?
        .encode(frames, |f, out, at| input.frame(f, out, at))?;
    // The audio's samples were checked as the encoder read them; the rest now.
    let ch = usize::from(audio.channels);
    let done = input.checked.replace(Ok(0))?;
    crate::pcm::check_finite(
        &audio.samples[(done * ch).min(audio.samples.len())..],
        done * ch,
    )?;
    Ok(aus)
}

/// The encoder's input planes, read a frame at a time from the interleaved PCM (no copy of
/// the whole segment): frame 0 is the priming, frames `1..=frames` the audio (truncated or
/// zero-padded), frame `frames + 1` the look-ahead; every sample clipped to [-1, 1].
struct Aligned<'a> {
    audio: &'a Pcm,
    priming: Option<&'a Pcm>,
    lookahead: Option<&'a Pcm>,
    frames: usize,
    /// Audio frames used: `min(audio.frames(), frames * FRAME)`.
    avail: usize,
    /// Audio frames known finite (checked as they are first read, while in cache), or the
    /// error for the first non-finite sample.
    checked: std::cell::Cell<Result<usize>>,
}

impl Aligned<'_> {
    /// Check audio frames `[from, to)` for non-finite samples, once each.
    fn check(&self, from: usize, to: usize) {
        let ch = usize::from(self.audio.channels);
        let r = match self.checked.replace(Ok(0)) {
            Ok(done) if done == from && from < to => {
                crate::pcm::check_finite(&self.audio.samples[from * ch..to * ch], from * ch)
                    .map(|()| to)
            }
            other => other,
        };
        self.checked.set(r);
    }

    /// Record audio frames `[from, to)` as finite (checked by the caller), in order.
    fn checked_finite(&self, from: usize, to: usize) {
        let r = match self.checked.replace(Ok(0)) {
            Ok(done) if done == from => Ok(to),
            other => other,
        };
        self.checked.set(r);
    }

    /// Write plane frame `f` of every channel `c` to `out[c][at..at + FRAME]`.
    fn frame(&self, f: usize, out: &mut [Vec<f32>], at: usize) {
        let ch = usize::from(self.audio.channels).max(1);
        let n = self.frames * FRAME;
        let audio = &self.audio.samples;
        // A stereo audio frame wholly available (nearly every frame): split, clipped and
        // checked in one pass.
        if ch == 2 && (1..=self.frames).contains(&f) && f * FRAME <= self.avail {
            let s0 = (f - 1) * FRAME;
            if let [l, r] = out
                && let (Some(l), Some(r)) = (l.get_mut(at..at + FRAME), r.get_mut(at..at + FRAME))
            {
                let src = &audio[2 * s0..2 * (s0 + FRAME)];
                if crate::dsp::deinterleave2_clamp(src, l, r) {
                    self.checked_finite(s0, s0 + FRAME);
                } else {
                    self.check(s0, s0 + FRAME);
                }
                return;
            }
        }
        // Plane sample `i` of channel `c` within the audio (zero past what is available).
        let sample = |i: usize, c: usize| {
            if i < self.avail {
                audio.get(i * ch + c).copied().unwrap_or(0.0)
            } else {
                0.0
            }
        };
        for (c, plane) in out.iter_mut().enumerate() {
            let Some(d) = plane.get_mut(at..at + FRAME) else {
                continue;
            };
            if f == 0 {
                d.fill(0.0);
                if let Some(p) = self.priming {
                    let prime = p.frames().min(FRAME);
                    let first = p.frames() - prime;
                    for (d, t) in d[FRAME - prime..].iter_mut().zip(first..) {
                        *d = p.samples.get(t * ch + c).copied().unwrap_or(0.0);
                    }
                }
            } else if f <= self.frames {
                let s0 = (f - 1) * FRAME;
                if c == 0 {
                    self.check(s0, (s0 + FRAME).min(self.avail));
                }
                for (t, d) in d.iter_mut().enumerate() {
                    *d = sample(s0 + t, c);
                }
            } else {
                match self.lookahead {
                    Some(la) => {
                        let la_ch = usize::from(la.channels).max(1);
                        for (t, d) in d.iter_mut().enumerate() {
                            *d = la.samples.get(t * la_ch + c).copied().unwrap_or(0.0);
                        }
                    }
                    // Mirror the last frame under the fade (nothing to mirror when there are
                    // no frames).
                    None if n > 0 => {
                        for (t, d) in d.iter_mut().enumerate() {
                            *d = sample(n - 1 - t.min(n - 1), c) * taper(t);
                        }
                    }
                    None => d.fill(0.0),
                }
            }
        }
        for plane in out.iter_mut() {
            if let Some(d) = plane.get_mut(at..at + FRAME) {
                crate::pcm::sanitize_clamp(d);
            }
        }
    }
}

/// Fade for the mirrored look-ahead: 1 at the join, 0 after 128 samples.
fn taper(t: usize) -> f32 {
    const LEN: usize = 128;
    if t < LEN {
        0.5 + 0.5 * (std::f32::consts::PI * t as f32 / LEN as f32).cos()
    } else {
        0.0
    }
}

/// The AudioSpecificConfig of our AAC-LC encoder at this rate and channel count.
pub(crate) fn encoder_asc(sample_rate: u32, channels: u16) -> Result<Vec<u8>> {
    Ok(encode::asc(sample_rate, channels)?.to_vec())
}

/// Highest bitrate AAC allows for this layout (6144 bits per channel per frame).
pub(crate) fn max_bitrate(sample_rate: u32, channels: u16) -> u32 {
    let v = 6144u64 * u64::from(channels) * u64::from(sample_rate) / 1024;
    u32::try_from(v).unwrap_or(u32::MAX)
}
