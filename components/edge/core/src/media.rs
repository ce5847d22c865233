//! The media operations the pipeline needs, as a trait.
//!
//! The edge component implements it with the `dub:media` WIT imports (the media component under
//! Spin, native code under dubhost); native tests implement it directly with `dub-media`.

/// Why a media operation failed (mirrors `dub:media/types.media-error`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Malformed input.
    #[error("invalid media: {0}")]
    Invalid(String),
    /// Well-formed but not handled: pass the original through.
    #[error("unsupported media: {0}")]
    Unsupported(String),
    /// Encrypted: pass the original through, never decode.
    #[error("encrypted media: {0}")]
    Encrypted(String),
    /// A size/count/depth limit was hit.
    #[error("media limit: {0}")]
    Limit(String),
    /// Encoding or mixing failed.
    #[error("media internal error: {0}")]
    Internal(String),
}

/// Audio track of an init segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioTrack {
    /// track_ID.
    pub track_id: u32,
    /// Media timescale.
    pub timescale: u32,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
    /// RFC 6381 codec string.
    pub codec: String,
    /// AudioSpecificConfig.
    pub asc: Vec<u8>,
}

/// Audio timing in one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentTiming {
    /// tfdt of the first audio sample (track timescale).
    pub base_decode_time: u64,
    /// Number of AAC frames.
    pub frame_count: u32,
    /// Total duration (track timescale).
    pub duration: u64,
}

/// Background treatment under the dub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Background {
    /// Ducked under speech.
    Duck,
    /// Unchanged.
    Original,
    /// Removed.
    None,
}

/// Mix options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixOptions {
    /// Background treatment.
    pub background: Background,
    /// Duck depth in dB (positive).
    pub duck_db: f32,
}

/// One utterance placed on the segment timeline.
pub struct Placement<'a, P> {
    /// Speech PCM at the background's rate and channels.
    pub speech: &'a P,
    /// First output frame (may be negative).
    pub start_frame: i64,
    /// Speed factor (1.0 = unchanged).
    pub speed: f32,
}

/// Media operations; `Pcm` and `Segment` are opaque handles.
pub trait MediaEngine {
    /// Decoded audio handle.
    type Pcm;
    /// Validated segment handle.
    type Segment;

    /// Validate an init segment.
    fn probe_init(&self, init: &[u8]) -> Result<AudioTrack, MediaError>;
    /// Validate a media segment against its init segment.
    fn open_segment(&self, init: &[u8], media: &[u8]) -> Result<Self::Segment, MediaError>;
    /// Audio track of a segment.
    fn track(&self, seg: &Self::Segment) -> AudioTrack;
    /// Audio timing of a segment.
    fn timing(&self, seg: &Self::Segment) -> SegmentTiming;
    /// The fMP4 init segment the remuxed output of this segment plays under: the source init
    /// for AAC-LC fMP4, rewritten to AAC-LC for HE-AAC, built from the streams for MPEG-TS.
    fn output_init(&self, seg: &Self::Segment) -> Result<Vec<u8>, MediaError>;
    /// MPEG-TS: the first audio PTS as carried (33-bit, 90 kHz); `None` for fMP4.
    fn first_pts(&self, seg: &Self::Segment) -> Option<u64>;
    /// MPEG-TS: add `wraps` whole 2^33 PTS wraps to every timestamp of the segment.
    fn set_pts_wraps(&self, seg: &mut Self::Segment, wraps: u32);
    /// The segment's original audio in the output format, without dubbing (the fallback rung):
    /// the source bytes for AAC-LC fMP4, repackaged as fMP4 for TS, re-encoded for HE-AAC.
    fn repackage(&self, seg: &Self::Segment) -> Result<Vec<u8>, MediaError>;
    /// Decode the segment's audio.
    fn decode_audio(&self, seg: &Self::Segment) -> Result<Self::Pcm, MediaError>;
    /// Resample / remix channels.
    fn resample(&self, pcm: &Self::Pcm, rate: u32, channels: u32) -> Result<Self::Pcm, MediaError>;
    /// Parse a WAV file.
    fn pcm_from_wav(&self, wav: &[u8]) -> Result<Self::Pcm, MediaError>;
    /// Write a 16-bit WAV file.
    fn pcm_to_wav(&self, pcm: &Self::Pcm) -> Vec<u8>;
    /// Frames in a PCM.
    fn pcm_frames(&self, pcm: &Self::Pcm) -> u64;
    /// Sample rate of a PCM.
    fn pcm_rate(&self, pcm: &Self::Pcm) -> u32;
    /// Frames [start, start+count) as a new PCM.
    fn pcm_slice(&self, pcm: &Self::Pcm, start: u64, count: u64) -> Self::Pcm;
    /// Mix voices over a background.
    fn mix(
        &self,
        background: &Self::Pcm,
        voices: &[Placement<'_, Self::Pcm>],
        opts: MixOptions,
    ) -> Result<Self::Pcm, MediaError>;
    /// Lower the background by `duck_db` over each `[start, end)` frame span (the "original
    /// ducked" rung), adding no voice.
    fn duck(
        &self,
        background: &Self::Pcm,
        spans: &[(i64, i64)],
        duck_db: f32,
    ) -> Result<Self::Pcm, MediaError>;
    /// Encode and write the dubbed segment. `priming` is PCM just before the segment (the previous
    /// segment's tail) and `lookahead` PCM just after it (the next segment's head, 1024 frames
    /// used): with both, per-segment encodes join seamlessly. Neither is emitted.
    fn remux_audio(
        &self,
        seg: &Self::Segment,
        audio: &Self::Pcm,
        priming: Option<&Self::Pcm>,
        lookahead: Option<&Self::Pcm>,
    ) -> Result<Vec<u8>, MediaError>;
}
