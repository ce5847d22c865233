//! [`MediaEngine`] over the `dub:media` imports (the media component under Spin, native code
//! under dubhost). PCM and segments stay on the provider's side as resources.

use dub_edge_core::media::{
    AudioTrack, Background, MediaEngine, MediaError, MixOptions, Placement, SegmentTiming,
};

spin_sdk::wit_bindgen::generate!({
    world: "media-imports",
    path: "../../wit",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
    generate_all,
});

use dub::media::{demux, mix, remux, resample, types, validate};

/// The `dub:media` imports as a [`MediaEngine`].
pub struct WitMedia;

fn err(e: types::MediaError) -> MediaError {
    match e {
        types::MediaError::Invalid(m) => MediaError::Invalid(m),
        types::MediaError::Unsupported(m) => MediaError::Unsupported(m),
        types::MediaError::Encrypted(m) => MediaError::Encrypted(m),
        types::MediaError::Limit(m) => MediaError::Limit(m),
        types::MediaError::Internal(m) => MediaError::Internal(m),
    }
}

fn track(t: types::AudioTrack) -> AudioTrack {
    AudioTrack {
        track_id: t.track_id,
        timescale: t.timescale,
        sample_rate: t.sample_rate,
        channels: t.channels,
        codec: t.codec,
        asc: t.asc,
    }
}

impl MediaEngine for WitMedia {
    type Pcm = types::Pcm;
    type Segment = types::Segment;

    fn probe_init(&self, init: &[u8]) -> Result<AudioTrack, MediaError> {
        validate::probe_init(init).map(track).map_err(err)
    }

    fn open_segment(&self, init: &[u8], media: &[u8]) -> Result<Self::Segment, MediaError> {
        validate::open_segment(init, media).map_err(err)
    }

    fn track(&self, seg: &Self::Segment) -> AudioTrack {
        track(seg.track())
    }

    fn timing(&self, seg: &Self::Segment) -> SegmentTiming {
        let t = seg.timing();
        SegmentTiming {
            base_decode_time: t.base_decode_time,
            frame_count: t.frame_count,
            duration: t.duration,
        }
    }

    fn output_init(&self, seg: &Self::Segment) -> Result<Vec<u8>, MediaError> {
        seg.output_init().map_err(err)
    }

    fn first_pts(&self, seg: &Self::Segment) -> Option<u64> {
        seg.first_pts()
    }

    fn set_pts_wraps(&self, seg: &mut Self::Segment, wraps: u32) {
        seg.set_pts_wraps(wraps);
    }

    fn repackage(&self, seg: &Self::Segment) -> Result<Vec<u8>, MediaError> {
        remux::repackage(seg).map_err(err)
    }

    fn decode_audio(&self, seg: &Self::Segment) -> Result<Self::Pcm, MediaError> {
        demux::decode_audio(seg).map_err(err)
    }

    fn resample(&self, pcm: &Self::Pcm, rate: u32, channels: u32) -> Result<Self::Pcm, MediaError> {
        resample::resample(pcm, rate, channels).map_err(err)
    }

    fn pcm_from_wav(&self, wav: &[u8]) -> Result<Self::Pcm, MediaError> {
        types::Pcm::from_wav(wav).map_err(err)
    }

    fn pcm_to_wav(&self, pcm: &Self::Pcm) -> Vec<u8> {
        pcm.to_wav()
    }

    fn pcm_frames(&self, pcm: &Self::Pcm) -> u64 {
        pcm.frames()
    }

    fn pcm_rate(&self, pcm: &Self::Pcm) -> u32 {
        pcm.sample_rate()
    }

    fn pcm_slice(&self, pcm: &Self::Pcm, start: u64, count: u64) -> Self::Pcm {
        pcm.slice(start, count)
    }

    fn mix(
        &self,
        background: &Self::Pcm,
        voices: &[Placement<'_, Self::Pcm>],
        opts: MixOptions,
    ) -> Result<Self::Pcm, MediaError> {
        let placements: Vec<mix::Placement<'_>> = voices
            .iter()
            .map(|v| mix::Placement {
                speech: v.speech,
                start_frame: v.start_frame,
                speed: v.speed,
            })
            .collect();
        let options = mix::MixOptions {
            background: match opts.background {
                Background::Duck => mix::Background::Duck,
                Background::Original => mix::Background::Original,
                Background::None => mix::Background::None,
            },
            duck_db: opts.duck_db,
        };
        mix::mix(background, &placements, options).map_err(err)
    }

    fn duck(
        &self,
        background: &Self::Pcm,
        spans: &[(i64, i64)],
        duck_db: f32,
    ) -> Result<Self::Pcm, MediaError> {
        let spans: Vec<mix::Span> = spans
            .iter()
            .map(|&(start, end)| mix::Span { start, end })
            .collect();
        mix::duck(background, &spans, duck_db).map_err(err)
    }

    fn remux_audio(
        &self,
        seg: &Self::Segment,
        audio: &Self::Pcm,
        priming: Option<&Self::Pcm>,
        lookahead: Option<&Self::Pcm>,
    ) -> Result<Vec<u8>, MediaError> {
        remux::remux_audio(seg, audio, priming, lookahead).map_err(err)
    }
}
