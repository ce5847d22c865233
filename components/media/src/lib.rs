//! dub-media: the media half of dub-edge, as plain Rust.
//!
//! Validate and demux fMP4 (CMAF/HLS) audio, decode AAC-LC to PCM, resample, mix synthesized
//! speech over the ducked original, re-encode AAC-LC with the source's AudioSpecificConfig and
//! write a media segment with the source's decode times, so the source init segment and
//! the player's A/V sync are untouched. Knows nothing about WIT, Spin or wasmtime.
//!
//! ```
//! use dub_media::{Pcm, resample};
//! let tone: Vec<f32> = (0..4800).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
//! let pcm = Pcm::new(48_000, 1, tone)?;
//! let speech_rate = resample(&pcm, 16_000, 1)?;
//! assert_eq!(speech_rate.frames(), 1600);
//! # Ok::<(), dub_media::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod error;
pub mod limits;

mod aac;
mod mix;
mod mp4;
mod pcm;
mod resample;

pub use error::{Error, Result};
pub use mix::{Background, MixOptions, Placement, mix, time_stretch};
pub use pcm::Pcm;
pub use resample::resample;

/// The audio track described by an init segment.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioTrack {
    /// track_ID from tkhd/tfhd.
    pub track_id: u32,
    /// Media timescale from mdhd.
    pub timescale: u32,
    /// Sample rate (Hz) of the decoded audio.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// RFC 6381 codec string, e.g. "mp4a.40.2".
    pub codec: String,
    /// AudioSpecificConfig bytes from esds.
    pub asc: Vec<u8>,
}

/// Timing of the audio track inside one media segment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SegmentTiming {
    /// tfdt baseMediaDecodeTime of the first audio sample, in track timescale.
    pub base_decode_time: u64,
    /// Number of audio access units (AAC frames).
    pub frame_count: u32,
    /// Sum of sample durations, in track timescale.
    pub duration: u64,
}

/// A validated media segment with its init segment's audio track.
#[derive(Clone, Debug)]
pub struct Segment {
    track: AudioTrack,
    media: Vec<u8>,
    parsed: mp4::segment::Parsed,
}

/// Validate an init segment (box tree, limits, codec allowlist) and describe its audio track.
///
/// Encrypted sample entries (`enca`) are [`Error::Encrypted`]; codecs other than AAC-LC are
/// [`Error::Unsupported`].
pub fn probe_init(init: &[u8]) -> Result<AudioTrack> {
    Ok(mp4::init::parse_init(init)?.track)
}

/// Validate a media segment against its init segment and keep the audio track's samples.
pub fn open_segment(init: &[u8], media: &[u8]) -> Result<Segment> {
    let init = mp4::init::parse_init(init)?;
    let parsed = mp4::segment::parse_segment(&init, media)?;
    Ok(Segment {
        track: init.track,
        media: media.to_vec(),
        parsed,
    })
}

impl Segment {
    /// The audio track.
    pub fn track(&self) -> &AudioTrack {
        &self.track
    }

    /// Audio timing in this segment.
    pub fn timing(&self) -> SegmentTiming {
        let s = &self.parsed.samples;
        SegmentTiming {
            base_decode_time: self.parsed.base_decode_time,
            frame_count: s.len() as u32,
            duration: s.iter().map(|x| u64::from(x.duration)).sum(),
        }
    }

    /// The audio access units in decode order.
    pub fn access_units(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.parsed
            .samples
            .iter()
            .map(|s| self.media.get(s.offset..s.offset + s.size).unwrap_or(&[]))
    }

    /// Each access unit's duration in track timescale.
    pub fn sample_durations(&self) -> Vec<u32> {
        self.parsed.samples.iter().map(|s| s.duration).collect()
    }

    /// Whether the segment also carries other tracks (muxed audio and video).
    pub fn has_other_tracks(&self) -> bool {
        self.parsed.other_tracks
    }

    /// Number of PCM frames the segment decodes to (`frame_count * 1024`).
    pub fn pcm_frames(&self) -> usize {
        self.parsed.samples.len() * aac::FRAME
    }
}

/// Decode the segment's AAC-LC access units to PCM at the track's rate and channel count.
///
/// The result has exactly `frame_count * 1024` frames; nothing is trimmed (the first frame
/// carries the decoder's start-up, as it would after a seek), so frame `i` of the output is
/// at decode time `base_decode_time` + `i` in samples.
pub fn decode_audio(seg: &Segment) -> Result<Pcm> {
    let t = &seg.track;
    aac::decode_aus(&t.asc, t.sample_rate, t.channels, seg.access_units())
}

/// Encode `audio` as AAC-LC with the segment's AudioSpecificConfig and write an fMP4 media
/// segment with the source's sequence number, track, decode time, frame count and per-sample
/// durations. Other tracks of a muxed segment (one `moof`) are copied: their samples
/// byte-identical, their `traf`s unchanged except for data offsets.
///
/// `audio` must have the track's rate and channel count; it is zero-padded or truncated to
/// `frame_count * 1024` frames. `priming` (e.g. the tail of the previous segment's PCM) warms
/// the encoder; it is not emitted. The output is deterministic for the same input.
pub fn remux_audio(seg: &Segment, audio: &Pcm, priming: Option<&Pcm>) -> Result<Vec<u8>> {
    remux_audio_with_lookahead(seg, audio, priming, None)
}

/// [`remux_audio`] with the first PCM frames of the *next* segment (`lookahead`, at least
/// 1024 frames are used), which makes the join to the next segment exact instead of
/// approximated. Use it when the next segment's audio is known (VOD, lookahead modes).
pub fn remux_audio_with_lookahead(
    seg: &Segment,
    audio: &Pcm,
    priming: Option<&Pcm>,
    lookahead: Option<&Pcm>,
) -> Result<Vec<u8>> {
    let t = &seg.track;
    audio.validate()?;
    if audio.sample_rate != t.sample_rate || audio.channels != t.channels {
        return Err(Error::Invalid(format!(
            "audio is {} Hz x {} ch, track is {} Hz x {} ch",
            audio.sample_rate, audio.channels, t.sample_rate, t.channels
        )));
    }
    if let Some(p) = priming {
        p.validate()?;
        if p.sample_rate != t.sample_rate || p.channels != t.channels {
            return Err(Error::Invalid(
                "priming PCM format differs from the track".into(),
            ));
        }
    }
    if let Some(p) = lookahead {
        p.validate()?;
        if p.sample_rate != t.sample_rate || p.channels != t.channels {
            return Err(Error::Invalid(
                "lookahead PCM format differs from the track".into(),
            ));
        }
    }
    if seg.parsed.other_tracks && seg.parsed.moofs != 1 {
        return Err(Error::Unsupported(
            "remux of muxed segments with more than one moof".into(),
        ));
    }
    let enc_asc = aac::encoder_asc(t.sample_rate, t.channels)?;
    let src = mp4::init::parse_asc(&t.asc)?;
    let ours = mp4::init::parse_asc(&enc_asc)?;
    if src != ours {
        return Err(Error::Unsupported(format!(
            "encoder config {ours:?} differs from source {src:?}"
        )));
    }

    let frames = seg.parsed.samples.len();
    let mut padded = audio.slice(0, frames * aac::FRAME);
    padded
        .samples
        .resize(frames * aac::FRAME * usize::from(t.channels), 0.0);

    let bps = encode_bitrate(seg);
    let aus = aac::encode_aligned(&padded, priming, lookahead, frames, bps)?;
    let durations = seg.sample_durations();
    let styp = seg.parsed.styp.and_then(|(s, e)| seg.media.get(s..e));
    let others = seg
        .parsed
        .others
        .iter()
        .map(|o| {
            let traf_box = seg.media.get(o.range.0..o.range.1).unwrap_or(&[]);
            let runs = o
                .runs
                .iter()
                .map(|run| {
                    run.iter()
                        .map(|x| seg.media.get(x.offset..x.offset + x.size).unwrap_or(&[]))
                        .collect()
                })
                .collect();
            mp4::write::OtherOut {
                traf_box,
                index: o.index,
                runs,
            }
        })
        .collect();
    mp4::write::write_segment(&mp4::write::SegmentOut {
        styp,
        sequence_number: seg.parsed.sequence_number,
        track_id: t.track_id,
        sample_description_index: seg.parsed.sample_description_index,
        base_decode_time: seg.parsed.base_decode_time,
        durations: &durations,
        aus: &aus,
        others,
        audio_index: seg.parsed.audio_traf_index,
    })
}

/// The encoder bitrate for a segment: the source's average bitrate, within what the encoder
/// accepts (a pure function of the segment, so re-encodes are deterministic).
fn encode_bitrate(seg: &Segment) -> u32 {
    let t = &seg.track;
    let frames = seg.parsed.samples.len().max(1) as u64;
    let bytes: u64 = seg.parsed.samples.iter().map(|s| s.size as u64).sum();
    let src_bps = bytes * 8 * u64::from(t.sample_rate) / (frames * aac::FRAME as u64);
    let floor = 32_000 * u64::from(t.channels);
    src_bps
        .max(floor)
        .min(u64::from(aac::max_bitrate(t.sample_rate, t.channels)) * 9 / 10) as u32
}

#[cfg(test)]
mod tests;
