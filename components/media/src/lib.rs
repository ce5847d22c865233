//! dub-media: the media half of dub-edge, as plain Rust.
//!
//! Validate and demux fMP4 (CMAF/HLS), MPEG-TS and packed-audio segments, decode AAC-LC and
//! HE-AAC(v2) to PCM, resample, mix synthesized speech over the ducked original, re-encode
//! AAC-LC and write an fMP4 media segment with the source's decode times. For AAC-LC fMP4 the
//! source init segment stays valid; otherwise [`Segment::output_init`] gives the init the
//! output plays under (TS video carried over as AVCC). Knows nothing about WIT, Spin or
//! wasmtime.
//!
//! ```
//! use dub_media::{Pcm, resample};
//! let tone: Vec<f32> = (0..4800).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
//! let pcm = Pcm::new(48_000, 1, tone)?;
//! let speech_rate = resample(&pcm, 16_000, 1)?;
//! assert_eq!(speech_rate.frames(), 1600);
//! # Ok::<(), dub_media::Error>(())
//! ```
// `deny`, not `forbid`: the `dsp` module (SIMD kernels) is the one allowed exception.
#![deny(unsafe_code)]

pub mod error;
pub mod inspect;
pub mod limits;

mod aac;
// SIMD kernels with runtime ISA detection: the only module with `unsafe` (see its docs).
#[allow(unsafe_code)]
mod dsp;
mod duck;
mod mix;
mod mp4;
mod pcm;
mod resample;
mod ts;

pub use duck::duck;
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

/// The container a media segment came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Container {
    /// Fragmented MP4 (CMAF/HLS fMP4), read against its init segment.
    Fmp4,
    /// MPEG-2 transport stream (HLS `.ts`), self-describing.
    Ts,
    /// HLS packed audio: raw ADTS behind an ID3 `PRIV` timestamp (`.aac`).
    PackedAudio,
}

/// Where a segment's audio came from.
#[derive(Clone, Debug)]
enum Source {
    /// fMP4: the init bytes, whether the audio is AAC-LC exactly as the output declares it,
    /// and the output init's audio timescale.
    Fmp4 {
        init: Vec<u8>,
        lc: bool,
        out_timescale: u32,
    },
    /// MPEG-TS: the demuxed streams.
    Ts(Box<ts::Demuxed>),
}

/// A validated media segment with its init segment's audio track.
#[derive(Clone, Debug)]
pub struct Segment {
    track: AudioTrack,
    /// fMP4: the media segment bytes (samples point into them). TS: empty.
    media: Vec<u8>,
    /// The audio samples (for TS pointing into the demuxed ADTS stream) and fMP4 layout.
    parsed: mp4::segment::Parsed,
    src: Source,
    /// PCM frames per access unit after decoding (1024, or 2048 with SBR).
    frame_len: usize,
    /// Whole 33-bit PTS wraps added to TS timestamps.
    pts_wraps: u32,
}

/// Validate an init segment (box tree, limits, codec allowlist) and describe its audio track.
///
/// Encrypted sample entries (`enca`) are [`Error::Encrypted`]; codecs other than AAC-LC,
/// HE-AAC and HE-AACv2 are [`Error::Unsupported`]. For HE-AAC the rate and channels are
/// those of the decoded output.
pub fn probe_init(init: &[u8]) -> Result<AudioTrack> {
    Ok(mp4::init::parse_init(init)?.track)
}

/// Sniff the container of a media segment: MPEG-TS if it has sync bytes at 0, 188 and 376
/// (or is a single packet), packed audio if it starts with an ID3 tag or an ADTS header,
/// fMP4 otherwise.
pub fn sniff(media: &[u8]) -> Container {
    if ts::packet::looks_like_ts(media) {
        Container::Ts
    } else if ts::looks_like_packed_audio(media) {
        Container::PackedAudio
    } else {
        Container::Fmp4
    }
}

/// Whether the 33-bit PTS wrapped between two consecutive segments of one stream, given
/// each one's first PTS as carried ([`Segment::first_pts`]): the later one is more than
/// 2^32 ticks (13.3 h) below the earlier. Count wraps with it and pass the total to
/// [`Segment::set_pts_wraps`].
pub fn pts_wrapped(prev_first_pts: u64, first_pts: u64) -> bool {
    let (p, t) = (
        prev_first_pts % ts::pes::PTS_WRAP,
        first_pts % ts::pes::PTS_WRAP,
    );
    t < p && p - t > ts::pes::PTS_WRAP / 2
}

/// Validate a media segment and keep the audio track's samples.
///
/// fMP4 media is read against `init`. MPEG-TS and packed audio (see [`sniff`]) are
/// self-describing: `init` may be empty and is ignored. Bytes that are neither (a whole-segment AES-128
/// `.ts` looks like that) are an error, never parsed as TS.
pub fn open_segment(init: &[u8], media: &[u8]) -> Result<Segment> {
    match sniff(media) {
        Container::Ts => return open_ts(ts::demux(media)?),
        Container::PackedAudio => return open_ts(ts::demux_packed(media)?),
        Container::Fmp4 => {}
    }
    if !looks_like_boxes(media) {
        return Err(if media.len() >= 16 && media.len().is_multiple_of(16) {
            Error::Encrypted(
                "neither fMP4 nor MPEG-TS, length a multiple of 16: whole-segment AES-128?".into(),
            )
        } else {
            Error::invalid("media segment is neither fMP4 nor MPEG-TS")
        });
    }
    let parsed_init = mp4::init::parse_init(init)?;
    let parsed = mp4::segment::parse_segment(&parsed_init, media)?;
    let mut track = parsed_init.track;
    let info = mp4::init::asc_info(&track.asc)?;
    let mut frame_len = aac::FRAME;
    // SBR may be signalled only in the stream (an LC config at a core rate of 24 kHz or
    // less): decode the first unit to learn the real output.
    if info.aot != 2 || info.core_rate <= 24_000 {
        let first = parsed
            .samples
            .first()
            .and_then(|s| media.get(s.offset..s.offset + s.size))
            .ok_or_else(|| Error::invalid("media segment has no audio samples"))?;
        let (rate, ch, len) = aac::probe_output(&track.asc, first)?;
        track.sample_rate = rate;
        track.channels = ch;
        frame_len = len;
        if len != aac::FRAME && info.aot == 2 {
            track.codec = "mp4a.40.5".into();
        }
    }
    let lc = frame_len == aac::FRAME && info.aot == 2;
    let out_timescale = if lc || track.timescale == track.sample_rate {
        track.timescale
    } else {
        track.sample_rate
    };
    Ok(Segment {
        track,
        media: media.to_vec(),
        parsed,
        src: Source::Fmp4 {
            init: init.to_vec(),
            lc,
            out_timescale,
        },
        frame_len,
        pts_wraps: 0,
    })
}

/// Whether `b` starts with a plausible ISO-BMFF box header (size >= 8 or 0/1, ASCII type).
fn looks_like_boxes(b: &[u8]) -> bool {
    if b.len() < 8 {
        return false;
    }
    let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (size >= 8 || size <= 1) && b[4..8].iter().all(|c| c.is_ascii_graphic() || *c == b' ')
}

fn open_ts(d: ts::Demuxed) -> Result<Segment> {
    let asc = d.audio_cfg.asc().to_vec();
    let first = d
        .audio
        .first()
        .and_then(|f| d.audio_es.get(f.offset..f.offset + f.size))
        .ok_or_else(|| Error::invalid("TS segment has no AAC frames"))?;
    let (rate, channels, frame_len) = aac::probe_output(&asc, first)?;
    let codec = if frame_len == aac::FRAME {
        "mp4a.40.2"
    } else if channels != u16::from(d.audio_cfg.channel_config) {
        "mp4a.40.29"
    } else {
        "mp4a.40.5"
    };
    let track = AudioTrack {
        track_id: if d.video.is_some() { 2 } else { 1 },
        timescale: rate,
        sample_rate: rate,
        channels,
        codec: codec.into(),
        asc,
    };
    let samples = d
        .audio
        .iter()
        .map(|f| mp4::segment::Sample {
            offset: f.offset,
            size: f.size,
            duration: frame_len as u32,
        })
        .collect();
    let parsed = mp4::segment::Parsed {
        samples,
        base_decode_time: 0,
        sequence_number: 0,
        sample_description_index: None,
        styp: None,
        other_tracks: d.video.is_some(),
        others: Vec::new(),
        audio_traf_index: 0,
        moofs: 0,
    };
    Ok(Segment {
        track,
        media: Vec::new(),
        parsed,
        src: Source::Ts(Box::new(d)),
        frame_len,
        pts_wraps: 0,
    })
}

/// `t` (90 kHz, unwrapped in its segment) plus `wraps` whole 2^33 wraps, never negative.
fn with_wraps(t: i64, wraps: u32) -> Result<u64> {
    let v = i128::from(t) + i128::from(wraps) * i128::from(ts::pes::PTS_WRAP);
    u64::try_from(v).map_err(|_| Error::invalid(format!("timestamp {t} before zero")))
}

/// 90 kHz to `rate`, rounded to nearest (so consecutive segments line up within a sample).
fn ticks_to_rate(t: u64, rate: u32) -> u64 {
    ((u128::from(t) * u128::from(rate) + 45_000) / 90_000) as u64
}

impl Segment {
    /// The audio track (for TS and HE-AAC sources: rate and channels of the decoded audio).
    pub fn track(&self) -> &AudioTrack {
        &self.track
    }

    /// The container the media segment came in.
    pub fn container(&self) -> Container {
        match &self.src {
            Source::Fmp4 { .. } => Container::Fmp4,
            Source::Ts(d) if d.packed => Container::PackedAudio,
            Source::Ts(_) => Container::Ts,
        }
    }

    /// TS and packed audio: the first audio PTS as carried (33-bit, 90 kHz); fMP4: `None`.
    pub fn first_pts(&self) -> Option<u64> {
        match &self.src {
            Source::Ts(d) => Some(d.first_raw_pts),
            Source::Fmp4 { .. } => None,
        }
    }

    /// TS: add `wraps` whole 33-bit PTS wraps to every timestamp (count them over the
    /// stream with [`pts_wrapped`]). No effect on fMP4.
    pub fn set_pts_wraps(&mut self, wraps: u32) {
        self.pts_wraps = wraps;
    }

    /// Audio timing in this segment (TS: in the output init's audio timescale, the rate).
    pub fn timing(&self) -> SegmentTiming {
        let s = &self.parsed.samples;
        SegmentTiming {
            base_decode_time: self.base_decode_time().unwrap_or(0),
            frame_count: s.len() as u32,
            duration: s.iter().map(|x| u64::from(x.duration)).sum(),
        }
    }

    fn base_decode_time(&self) -> Result<u64> {
        match &self.src {
            Source::Fmp4 { .. } => Ok(self.parsed.base_decode_time),
            Source::Ts(d) => {
                let pts = d.audio.first().map_or(0, |f| f.pts);
                Ok(ticks_to_rate(
                    with_wraps(pts, self.pts_wraps)?,
                    self.track.sample_rate,
                ))
            }
        }
    }

    /// The bytes the audio samples point into.
    fn audio_bytes(&self) -> &[u8] {
        match &self.src {
            Source::Ts(d) => &d.audio_es,
            Source::Fmp4 { .. } => &self.media,
        }
    }

    /// The audio access units in decode order.
    pub fn access_units(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        let bytes = self.audio_bytes();
        self.parsed
            .samples
            .iter()
            .map(move |s| bytes.get(s.offset..s.offset + s.size).unwrap_or(&[]))
    }

    /// Each access unit's duration in track timescale.
    pub fn sample_durations(&self) -> Vec<u32> {
        self.parsed.samples.iter().map(|s| s.duration).collect()
    }

    /// Whether the segment also carries other tracks (muxed audio and video).
    pub fn has_other_tracks(&self) -> bool {
        self.parsed.other_tracks
    }

    /// Number of PCM frames the segment decodes to (`frame_count * 1024`, or `* 2048`
    /// for HE-AAC).
    pub fn pcm_frames(&self) -> usize {
        self.parsed.samples.len() * self.frame_len
    }

    /// The AudioSpecificConfig the output init declares (what `remux_audio*` encodes).
    fn output_asc(&self) -> Result<Vec<u8>> {
        match &self.src {
            Source::Fmp4 { lc: true, .. } => Ok(self.track.asc.clone()),
            Source::Ts(_) if self.frame_len == aac::FRAME => Ok(self.track.asc.clone()),
            _ => aac::encoder_asc(self.track.sample_rate, self.track.channels),
        }
    }

    /// The fMP4 init segment under which [`remux_audio`] and [`repackage`] output plays.
    ///
    /// AAC-LC fMP4: the source init, unchanged. HE-AAC fMP4: the source init with the audio
    /// track rewritten to AAC-LC at the decoded rate and channels. TS: built from the
    /// stream (H.264 track 1 at 90 kHz from SPS/PPS if present, AAC-LC audio at its rate);
    /// the same stream parameters give the same bytes from any segment.
    pub fn output_init(&self) -> Result<Vec<u8>> {
        match &self.src {
            Source::Fmp4 { init, lc: true, .. } => Ok(init.clone()),
            Source::Fmp4 {
                init,
                out_timescale,
                ..
            } => mp4::build::rewrite_audio_init(
                init,
                self.track.track_id,
                self.track.sample_rate,
                self.track.channels,
                &self.output_asc()?,
                *out_timescale,
            ),
            Source::Ts(d) => {
                let asc = self.output_asc()?;
                let audio = mp4::build::AudioParams {
                    track_id: self.track.track_id,
                    sample_rate: self.track.sample_rate,
                    channels: self.track.channels,
                    asc: &asc,
                };
                match &d.video {
                    None => mp4::build::build_init(None, &audio),
                    Some(v) => {
                        let sps = ts::h264::parse_sps(v.sps.first().map_or(&[][..], |s| s))?;
                        let vp = mp4::build::VideoParams {
                            track_id: 1,
                            width: sps.width,
                            height: sps.height,
                            sps: &v.sps,
                            pps: &v.pps,
                        };
                        mp4::build::build_init(Some(&vp), &audio)
                    }
                }
            }
        }
    }

    /// RFC 6381 codecs of the output (video first, then audio), e.g.
    /// `"avc1.4d401e,mp4a.40.2"`. The audio is always AAC-LC (`mp4a.40.2`) after dubbing.
    pub fn output_codecs(&self) -> String {
        let mut codecs = match &self.src {
            Source::Fmp4 { init, .. } => {
                if self.parsed.other_tracks {
                    mp4::build::video_codecs(init)
                } else {
                    Vec::new()
                }
            }
            Source::Ts(d) => d
                .video
                .as_ref()
                .and_then(|v| v.sps.first())
                .and_then(|s| ts::h264::parse_sps(s).ok())
                .map(|s| mp4::build::avc1_codec(s.profile, s.compat, s.level))
                .into_iter()
                .collect(),
        };
        codecs.push("mp4a.40.2".into());
        codecs.join(",")
    }
}

/// Decode the segment's AAC access units to PCM at the track's rate and channel count.
///
/// The result has exactly [`Segment::pcm_frames`] frames; nothing is trimmed (the first
/// frame carries the decoder's start-up, as it would after a seek), so frame `i` of the
/// output is at decode time `base_decode_time` + `i` in samples.
pub fn decode_audio(seg: &Segment) -> Result<Pcm> {
    let t = &seg.track;
    aac::decode_aus(
        &t.asc,
        t.sample_rate,
        t.channels,
        seg.frame_len,
        seg.access_units(),
    )
}

/// Encode `audio` as AAC-LC with the segment's AudioSpecificConfig and write an fMP4 media
/// segment with the source's sequence number, track, decode time, frame count and per-sample
/// durations. Other tracks of a muxed segment (one `moof`) are copied: their samples
/// byte-identical, their `traf`s unchanged except for data offsets.
///
/// `audio` must have the track's rate and channel count; it is zero-padded or truncated to
/// [`Segment::pcm_frames`] frames. `priming` (e.g. the tail of the previous segment's PCM)
/// warms the encoder; it is not emitted. The output is deterministic for the same input.
/// TS and HE-AAC sources: see [`remux_audio_with_lookahead`].
pub fn remux_audio(seg: &Segment, audio: &Pcm, priming: Option<&Pcm>) -> Result<Vec<u8>> {
    remux_audio_with_lookahead(seg, audio, priming, None)
}

/// [`remux_audio`] with the first PCM frames of the *next* segment (`lookahead`, at least
/// 1024 frames are used), which makes the join to the next segment exact instead of
/// approximated. Use it when the next segment's audio is known (VOD, lookahead modes).
///
/// The output plays under [`Segment::output_init`]. TS sources give `styp moof mdat` with
/// the audio (tfdt = first PTS in the audio rate) and, for muxed TS, the H.264 samples in
/// AVCC (tfdt = first DTS at 90 kHz). HE-AAC sources are encoded as AAC-LC at the decoded
/// rate: twice the access units, covering the same time span.
pub fn remux_audio_with_lookahead(
    seg: &Segment,
    audio: &Pcm,
    priming: Option<&Pcm>,
    lookahead: Option<&Pcm>,
) -> Result<Vec<u8>> {
    let t = &seg.track;
    for (p, what) in [
        (Some(audio), "audio"),
        (priming, "priming"),
        (lookahead, "lookahead"),
    ] {
        if let Some(p) = p {
            // The audio's samples are checked for finiteness as the encoder reads them.
            if what == "audio" {
                p.validate_shape()?;
            } else {
                p.validate()?;
            }
            if p.sample_rate != t.sample_rate || p.channels != t.channels {
                return Err(Error::Invalid(format!(
                    "{what} PCM is {} Hz x {} ch, track is {} Hz x {} ch",
                    p.sample_rate, p.channels, t.sample_rate, t.channels
                )));
            }
        }
    }
    if seg.parsed.other_tracks && seg.container() == Container::Fmp4 && seg.parsed.moofs != 1 {
        return Err(Error::Unsupported(
            "remux of muxed segments with more than one moof".into(),
        ));
    }
    let enc_asc = aac::encoder_asc(t.sample_rate, t.channels)?;
    let out_asc = seg.output_asc()?;
    let src = mp4::init::parse_asc(&out_asc)?;
    let ours = mp4::init::parse_asc(&enc_asc)?;
    if src != ours {
        return Err(Error::Unsupported(format!(
            "encoder config {ours:?} differs from the output {src:?}"
        )));
    }

    let frames = seg.pcm_frames() / aac::FRAME;
    let bps = encode_bitrate(seg);
    let aus = aac::encode_aligned(audio, priming, lookahead, frames, bps)?;
    write_output(seg, &aus)
}

/// Write `aus` (AAC-LC access units in the output format) as the segment's output.
fn write_output(seg: &Segment, aus: &[Vec<u8>]) -> Result<Vec<u8>> {
    let t = &seg.track;
    match &seg.src {
        Source::Fmp4 {
            lc, out_timescale, ..
        } => {
            let (durations, base) = if *lc {
                (seg.sample_durations(), seg.parsed.base_decode_time)
            } else {
                // HE-AAC: 1024-frame LC units in the output timescale over the same span.
                let per = (aac::FRAME as u64 * u64::from(*out_timescale) / u64::from(t.sample_rate))
                    as u32;
                let base = if *out_timescale == t.timescale {
                    seg.parsed.base_decode_time
                } else {
                    ((u128::from(seg.parsed.base_decode_time) * u128::from(*out_timescale)
                        + u128::from(t.timescale / 2))
                        / u128::from(t.timescale)) as u64
                };
                (vec![per; aus.len()], base)
            };
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
                base_decode_time: base,
                durations: &durations,
                aus,
                others,
                audio_index: seg.parsed.audio_traf_index,
            })
        }
        Source::Ts(d) => {
            let mut tracks = Vec::with_capacity(2);
            if let Some(v) = &d.video {
                tracks.push(video_track(v, seg.pts_wraps)?);
            }
            tracks.push(mp4::write::TrackOut {
                track_id: t.track_id,
                base_decode_time: seg.base_decode_time()?,
                default_flags: mp4::write::AUDIO_FLAGS,
                entries: aus
                    .iter()
                    .map(|a| mp4_atom::TrunEntry {
                        duration: Some(aac::FRAME as u32),
                        size: Some(a.len() as u32),
                        flags: None,
                        cts: None,
                    })
                    .collect(),
                samples: aus.iter().map(Vec::as_slice).collect(),
            });
            let styp = mp4::write::styp()?;
            mp4::write::write_fragment(Some(&styp), 1, &tracks)
        }
    }
}

/// The H.264 samples of a TS segment as a fragment track (track 1, 90 kHz).
fn video_track(v: &ts::TsVideo, wraps: u32) -> Result<mp4::write::TrackOut<'_>> {
    let first = v
        .samples
        .first()
        .ok_or_else(|| Error::internal("TS video without samples"))?;
    let base = with_wraps(first.dts, wraps)?;
    let any_cts = v.samples.iter().any(|s| s.cts != 0);
    let mut entries = Vec::with_capacity(v.samples.len());
    let mut last_dur = 3000u32;
    for (i, s) in v.samples.iter().enumerate() {
        let dur = match v.samples.get(i + 1) {
            Some(n) => u32::try_from(n.dts - s.dts).unwrap_or(last_dur),
            None => last_dur,
        };
        last_dur = dur;
        entries.push(mp4_atom::TrunEntry {
            duration: Some(dur),
            size: Some(s.size as u32),
            flags: Some(if s.key {
                mp4::write::VIDEO_SYNC_FLAGS
            } else {
                mp4::write::VIDEO_NON_SYNC_FLAGS
            }),
            cts: any_cts.then_some(i64::from(s.cts)),
        });
    }
    Ok(mp4::write::TrackOut {
        track_id: 1,
        base_decode_time: base,
        default_flags: mp4::write::VIDEO_NON_SYNC_FLAGS,
        entries,
        samples: v
            .samples
            .iter()
            .map(|s| v.data.get(s.offset..s.offset + s.size).unwrap_or(&[]))
            .collect(),
    })
}

/// The segment's ORIGINAL audio in the output format, without dubbing (the fallback when
/// dubbing fails): AAC-LC fMP4 gives the media bytes unchanged; AAC-LC TS gives its AAC
/// frames copied (no re-encode) with its video in fMP4; HE-AAC is decoded and encoded as
/// AAC-LC. Plays under [`Segment::output_init`].
pub fn repackage(seg: &Segment) -> Result<Vec<u8>> {
    match &seg.src {
        Source::Fmp4 { lc: true, .. } => Ok(seg.media.clone()),
        Source::Ts(_) if seg.frame_len == aac::FRAME => {
            let aus: Vec<Vec<u8>> = seg.access_units().map(<[u8]>::to_vec).collect();
            write_output(seg, &aus)
        }
        _ => {
            let pcm = decode_audio(seg)?;
            remux_audio(seg, &pcm, None)
        }
    }
}

/// The encoder bitrate for a segment: the source's average bitrate, within what the encoder
/// accepts (a pure function of the segment, so re-encodes are deterministic). HE-AAC
/// sources get at least 48 kbps per channel (their own rate would starve AAC-LC).
fn encode_bitrate(seg: &Segment) -> u32 {
    let t = &seg.track;
    let frames = seg.parsed.samples.len().max(1) as u64;
    let bytes: u64 = seg.parsed.samples.iter().map(|s| s.size as u64).sum();
    let src_bps = bytes * 8 * u64::from(t.sample_rate) / (frames * seg.frame_len as u64);
    let per_ch = if seg.frame_len == aac::FRAME {
        32_000
    } else {
        48_000
    };
    let floor = per_ch * u64::from(t.channels);
    src_bps
        .max(floor)
        .min(u64::from(aac::max_bitrate(t.sample_rate, t.channels)) * 9 / 10) as u32
}

/// Fuzzing entry (`fuzz/fuzz_targets/aac_raw.rs`), not API: decode raw AAC access units under
/// `asc` with our AAC-LC decoder one by one (a unit that fails is skipped, so the decoder state
/// after errors is exercised too), then encode what came out with our AAC-LC encoder.
#[doc(hidden)]
pub fn fuzz_aac_raw(asc: &[u8], aus: &[&[u8]]) {
    let Ok(mut dec) = aac::decode::LcDecoder::new(asc) else {
        return;
    };
    let ch = usize::from(dec.channels());
    let mut samples = Vec::new();
    for au in aus {
        let before = samples.len();
        match dec.decode_au(au, &mut samples) {
            Ok(()) => assert_eq!(
                samples.len(),
                before + aac::FRAME * ch,
                "one frame per unit"
            ),
            Err(_) => assert_eq!(samples.len(), before, "a failed unit appends nothing"),
        }
    }
    let frames = samples.len() / (aac::FRAME * ch.max(1));
    if frames == 0 || aac::encoder_asc(dec.sample_rate(), dec.channels()).is_err() {
        return;
    }
    let Ok(pcm) = Pcm::new(dec.sample_rate(), dec.channels(), samples) else {
        return;
    };
    let aus = aac::encode_aligned(&pcm, None, None, frames, 128_000).expect("encode decoded PCM");
    assert_eq!(aus.len(), frames);
}

#[cfg(test)]
mod tests;
