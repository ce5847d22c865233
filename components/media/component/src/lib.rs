//! dub:media as a WebAssembly component: thin glue from the WIT world `media` to `dub-media`.
//!
//! Every function converts arguments, calls the library and maps [`dub_media::Error`] to the
//! WIT `media-error`; no media logic lives here.

// The generated canonical-ABI shims are `unsafe` and `export_name` by nature; the exception is
// confined to these two modules (the workspace denies `unsafe_code`).
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({ world: "media", path: "../../../wit" });
}

#[allow(unsafe_code)]
mod export {
    use crate::Component;
    crate::bindings::export!(Component with_types_in crate::bindings);
}

use bindings::exports::dub::media::{demux, mix, remux, resample, types, validate};
use types::{AudioTrack, MediaError, Pcm, PcmBorrow, Segment, SegmentBorrow, SegmentTiming};

/// The exported component.
struct Component;

/// PCM kept inside the component; callers hold a handle.
struct PcmRes(dub_media::Pcm);

/// A validated segment kept inside the component.
/// A segment; `set-pts-wraps` changes it behind a shared borrow, as resource methods take one.
struct SegmentRes(std::cell::RefCell<dub_media::Segment>);

fn err(e: dub_media::Error) -> MediaError {
    use dub_media::Error as E;
    match e {
        E::Invalid(m) => MediaError::Invalid(m),
        E::Unsupported(m) => MediaError::Unsupported(m),
        E::Encrypted(m) => MediaError::Encrypted(m),
        E::Limit(m) => MediaError::Limit(m),
        E::Internal(m) => MediaError::Internal(m),
        other => MediaError::Internal(other.to_string()),
    }
}

fn channels(c: u32) -> Result<u16, MediaError> {
    u16::try_from(c).map_err(|_| MediaError::Limit(format!("{c} channels")))
}

fn track(t: &dub_media::AudioTrack) -> AudioTrack {
    AudioTrack {
        track_id: t.track_id,
        timescale: t.timescale,
        sample_rate: t.sample_rate,
        channels: u32::from(t.channels),
        codec: t.codec.clone(),
        asc: t.asc.clone(),
    }
}

impl types::Guest for Component {
    type Pcm = PcmRes;
    type Segment = SegmentRes;
}

impl types::GuestPcm for PcmRes {
    fn new(sample_rate: u32, channels: u32, samples: Vec<f32>) -> Self {
        // A constructor cannot fail in WIT: an invalid buffer becomes empty PCM, which every
        // consumer then rejects or treats as silence.
        let ch = u16::try_from(channels).unwrap_or(0);
        match dub_media::Pcm::new(sample_rate, ch, samples) {
            Ok(p) => PcmRes(p),
            Err(_) => PcmRes(dub_media::Pcm {
                sample_rate,
                channels: ch,
                samples: Vec::new(),
            }),
        }
    }

    fn from_wav(wav: Vec<u8>) -> Result<Pcm, MediaError> {
        dub_media::Pcm::from_wav(&wav)
            .map(|p| Pcm::new(PcmRes(p)))
            .map_err(err)
    }

    fn sample_rate(&self) -> u32 {
        self.0.sample_rate
    }

    fn channels(&self) -> u32 {
        u32::from(self.0.channels)
    }

    fn frames(&self) -> u64 {
        self.0.frames() as u64
    }

    fn slice(&self, start: u64, count: u64) -> Pcm {
        let s = usize::try_from(start).unwrap_or(usize::MAX);
        let c = usize::try_from(count).unwrap_or(usize::MAX);
        Pcm::new(PcmRes(self.0.slice(s, c)))
    }

    fn to_wav(&self) -> Vec<u8> {
        self.0.to_wav()
    }
}

impl types::GuestSegment for SegmentRes {
    fn track(&self) -> AudioTrack {
        track(self.0.borrow().track())
    }

    fn timing(&self) -> SegmentTiming {
        let t = self.0.borrow().timing();
        SegmentTiming {
            base_decode_time: t.base_decode_time,
            frame_count: t.frame_count,
            duration: t.duration,
        }
    }

    fn output_init(&self) -> Result<Vec<u8>, MediaError> {
        self.0.borrow().output_init().map_err(err)
    }

    fn first_pts(&self) -> Option<u64> {
        self.0.borrow().first_pts()
    }

    fn set_pts_wraps(&self, wraps: u32) {
        self.0.borrow_mut().set_pts_wraps(wraps);
    }
}

impl validate::Guest for Component {
    fn probe_init(init: Vec<u8>) -> Result<AudioTrack, MediaError> {
        dub_media::probe_init(&init).map(|t| track(&t)).map_err(err)
    }

    fn open_segment(init: Vec<u8>, media: Vec<u8>) -> Result<Segment, MediaError> {
        dub_media::open_segment(&init, &media)
            .map(|s| Segment::new(SegmentRes(std::cell::RefCell::new(s))))
            .map_err(err)
    }
}

impl demux::Guest for Component {
    fn decode_audio(seg: SegmentBorrow<'_>) -> Result<Pcm, MediaError> {
        dub_media::decode_audio(&seg.get::<SegmentRes>().0.borrow())
            .map(|p| Pcm::new(PcmRes(p)))
            .map_err(err)
    }
}

impl resample::Guest for Component {
    fn resample(input: PcmBorrow<'_>, sample_rate: u32, ch: u32) -> Result<Pcm, MediaError> {
        dub_media::resample(&input.get::<PcmRes>().0, sample_rate, channels(ch)?)
            .map(|p| Pcm::new(PcmRes(p)))
            .map_err(err)
    }
}

impl mix::Guest for Component {
    fn mix(
        background: PcmBorrow<'_>,
        voices: Vec<mix::Placement<'_>>,
        options: mix::MixOptions,
    ) -> Result<Pcm, MediaError> {
        let placements: Vec<dub_media::Placement<'_>> = voices
            .iter()
            .map(|v| dub_media::Placement {
                speech: &v.speech.get::<PcmRes>().0,
                start_frame: v.start_frame,
                speed: v.speed,
            })
            .collect();
        let opts = dub_media::MixOptions {
            background: match options.background {
                mix::Background::Duck => dub_media::Background::Duck,
                mix::Background::Original => dub_media::Background::Original,
                mix::Background::None => dub_media::Background::None,
            },
            duck_db: options.duck_db,
        };
        dub_media::mix(&background.get::<PcmRes>().0, &placements, &opts)
            .map(|p| Pcm::new(PcmRes(p)))
            .map_err(err)
    }

    fn duck(
        background: PcmBorrow<'_>,
        spans: Vec<mix::Span>,
        duck_db: f32,
    ) -> Result<Pcm, MediaError> {
        let spans: Vec<(i64, i64)> = spans.iter().map(|s| (s.start, s.end)).collect();
        dub_media::duck(&background.get::<PcmRes>().0, &spans, duck_db)
            .map(|p| Pcm::new(PcmRes(p)))
            .map_err(err)
    }
}

impl remux::Guest for Component {
    fn remux_audio(
        seg: SegmentBorrow<'_>,
        audio: PcmBorrow<'_>,
        priming: Option<PcmBorrow<'_>>,
        lookahead: Option<PcmBorrow<'_>>,
    ) -> Result<Vec<u8>, MediaError> {
        let priming = priming.as_ref().map(|p| &p.get::<PcmRes>().0);
        let lookahead = lookahead.as_ref().map(|p| &p.get::<PcmRes>().0);
        dub_media::remux_audio_with_lookahead(
            &seg.get::<SegmentRes>().0.borrow(),
            &audio.get::<PcmRes>().0,
            priming,
            lookahead,
        )
        .map_err(err)
    }

    fn repackage(seg: SegmentBorrow<'_>) -> Result<Vec<u8>, MediaError> {
        dub_media::repackage(&seg.get::<SegmentRes>().0.borrow()).map_err(err)
    }
}
