//! Native `dub:media`: the interfaces the edge component imports, backed by the `dub-media`
//! crate compiled for the host (SIMD, no wasm boundary copies beyond the call arguments).
//!
//! `pcm` and `segment` resources live in the store's `ResourceTable`. Host-side bytes held by
//! live resources are counted against a per-store budget, so a guest cannot grow host memory
//! without bound by creating resources: operations that can fail report `limit`, the two that
//! cannot (the `pcm` constructor and `slice`) trap.

use crate::bindings::media::dub::media::{demux, mix, remux, resample, types, validate};
use dub_media::{Pcm, Segment};
use types::{AudioTrack, MediaError, SegmentTiming};
use wasmtime::component::{HasData, Resource, ResourceTable};

/// Default cap on host memory held by one store's `pcm` and `segment` resources.
pub const DEFAULT_MEDIA_BUDGET: usize = 512 << 20;

/// Per-store accounting of host memory held by media resources.
#[derive(Debug)]
pub struct MediaBudget {
    used: usize,
    limit: usize,
}

impl MediaBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { used: 0, limit }
    }

    fn reserve(&mut self, bytes: usize) -> Result<(), String> {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.used = total;
                Ok(())
            }
            _ => Err(format!(
                "media resources would hold {} MiB, over the {} MiB per-request budget",
                (self.used.saturating_add(bytes)) >> 20,
                self.limit >> 20
            )),
        }
    }

    fn release(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }
}

/// The slice of store state the media host functions use.
pub struct MediaView<'a> {
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
    /// The store's media budget.
    pub budget: &'a mut MediaBudget,
}

/// `HasData` marker for `add_to_linker`.
pub struct MediaData;

impl HasData for MediaData {
    type Data<'a> = MediaView<'a>;
}

fn pcm_bytes(p: &Pcm) -> usize {
    p.samples.len().saturating_mul(std::mem::size_of::<f32>())
}

/// A `segment` resource: the validated segment and the host bytes charged for it.
pub struct SegmentRes {
    seg: Segment,
    bytes: usize,
}

/// What a segment holds on the host: its copy of the media bytes plus per-sample tables.
fn segment_bytes(seg: &Segment, media_len: usize) -> usize {
    media_len
        .saturating_add((seg.timing().frame_count as usize).saturating_mul(32))
        .saturating_add(seg.track().asc.len())
}

fn to_wit_error(e: dub_media::Error) -> MediaError {
    match e {
        dub_media::Error::Invalid(s) => MediaError::Invalid(s),
        dub_media::Error::Unsupported(s) => MediaError::Unsupported(s),
        dub_media::Error::Encrypted(s) => MediaError::Encrypted(s),
        dub_media::Error::Limit(s) => MediaError::Limit(s),
        dub_media::Error::Internal(s) => MediaError::Internal(s),
        other => MediaError::Internal(other.to_string()),
    }
}

fn to_wit_track(t: &dub_media::AudioTrack) -> AudioTrack {
    AudioTrack {
        track_id: t.track_id,
        timescale: t.timescale,
        sample_rate: t.sample_rate,
        channels: u32::from(t.channels),
        codec: t.codec.clone(),
        asc: t.asc.clone(),
    }
}

fn channels_u16(channels: u32) -> Result<u16, MediaError> {
    u16::try_from(channels).map_err(|_| MediaError::Invalid(format!("{channels} channels")))
}

impl MediaView<'_> {
    /// Store a new PCM, charging the budget.
    fn push_pcm(&mut self, pcm: Pcm) -> wasmtime::Result<Result<Resource<Pcm>, MediaError>> {
        if let Err(msg) = self.budget.reserve(pcm_bytes(&pcm)) {
            return Ok(Err(MediaError::Limit(msg)));
        }
        Ok(Ok(self.table.push(pcm)?))
    }

    /// Store a new PCM where the WIT signature has no error case: over budget traps.
    fn push_pcm_or_trap(&mut self, pcm: Pcm) -> wasmtime::Result<Resource<Pcm>> {
        match self.push_pcm(pcm)? {
            Ok(r) => Ok(r),
            Err(e) => Err(wasmtime::format_err!("dub:media: {e:?}")),
        }
    }
}

impl types::Host for MediaView<'_> {}

impl types::HostPcm for MediaView<'_> {
    fn new(
        &mut self,
        sample_rate: u32,
        channels: u32,
        samples: Vec<f32>,
    ) -> wasmtime::Result<Resource<Pcm>> {
        let channels = channels_u16(channels).map_err(|e| wasmtime::format_err!("pcm: {e:?}"))?;
        let pcm = Pcm::new(sample_rate, channels, samples)
            .map_err(|e| wasmtime::format_err!("pcm constructor: {e}"))?;
        self.push_pcm_or_trap(pcm)
    }

    fn from_wav(&mut self, wav: Vec<u8>) -> wasmtime::Result<Result<Resource<Pcm>, MediaError>> {
        match Pcm::from_wav(&wav) {
            Ok(pcm) => self.push_pcm(pcm),
            Err(e) => Ok(Err(to_wit_error(e))),
        }
    }

    fn sample_rate(&mut self, pcm: Resource<Pcm>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&pcm)?.sample_rate)
    }

    fn channels(&mut self, pcm: Resource<Pcm>) -> wasmtime::Result<u32> {
        Ok(u32::from(self.table.get(&pcm)?.channels))
    }

    fn frames(&mut self, pcm: Resource<Pcm>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&pcm)?.frames() as u64)
    }

    fn slice(
        &mut self,
        pcm: Resource<Pcm>,
        start: u64,
        count: u64,
    ) -> wasmtime::Result<Resource<Pcm>> {
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let out = self.table.get(&pcm)?.slice(start, count);
        self.push_pcm_or_trap(out)
    }

    fn to_wav(&mut self, pcm: Resource<Pcm>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&pcm)?.to_wav())
    }

    fn drop(&mut self, pcm: Resource<Pcm>) -> wasmtime::Result<()> {
        let pcm = self.table.delete(pcm)?;
        self.budget.release(pcm_bytes(&pcm));
        Ok(())
    }
}

impl types::HostSegment for MediaView<'_> {
    fn track(&mut self, seg: Resource<SegmentRes>) -> wasmtime::Result<AudioTrack> {
        Ok(to_wit_track(self.table.get(&seg)?.seg.track()))
    }

    fn timing(&mut self, seg: Resource<SegmentRes>) -> wasmtime::Result<SegmentTiming> {
        let t = self.table.get(&seg)?.seg.timing();
        Ok(SegmentTiming {
            base_decode_time: t.base_decode_time,
            frame_count: t.frame_count,
            duration: t.duration,
        })
    }

    fn output_init(
        &mut self,
        seg: Resource<SegmentRes>,
    ) -> wasmtime::Result<Result<Vec<u8>, MediaError>> {
        Ok(self
            .table
            .get(&seg)?
            .seg
            .output_init()
            .map_err(to_wit_error))
    }

    fn first_pts(&mut self, seg: Resource<SegmentRes>) -> wasmtime::Result<Option<u64>> {
        Ok(self.table.get(&seg)?.seg.first_pts())
    }

    fn set_pts_wraps(&mut self, seg: Resource<SegmentRes>, wraps: u32) -> wasmtime::Result<()> {
        self.table.get_mut(&seg)?.seg.set_pts_wraps(wraps);
        Ok(())
    }

    fn drop(&mut self, seg: Resource<SegmentRes>) -> wasmtime::Result<()> {
        let seg = self.table.delete(seg)?;
        self.budget.release(seg.bytes);
        Ok(())
    }
}

impl validate::Host for MediaView<'_> {
    fn probe_init(&mut self, init: Vec<u8>) -> wasmtime::Result<Result<AudioTrack, MediaError>> {
        Ok(dub_media::probe_init(&init)
            .map(|t| to_wit_track(&t))
            .map_err(to_wit_error))
    }

    fn open_segment(
        &mut self,
        init: Vec<u8>,
        media: Vec<u8>,
    ) -> wasmtime::Result<Result<Resource<SegmentRes>, MediaError>> {
        let seg = match dub_media::open_segment(&init, &media) {
            Ok(seg) => seg,
            Err(e) => return Ok(Err(to_wit_error(e))),
        };
        let bytes = segment_bytes(&seg, media.len());
        if let Err(msg) = self.budget.reserve(bytes) {
            return Ok(Err(MediaError::Limit(msg)));
        }
        Ok(Ok(self.table.push(SegmentRes { seg, bytes })?))
    }
}

impl demux::Host for MediaView<'_> {
    fn decode_audio(
        &mut self,
        seg: Resource<SegmentRes>,
    ) -> wasmtime::Result<Result<Resource<Pcm>, MediaError>> {
        match dub_media::decode_audio(&self.table.get(&seg)?.seg) {
            Ok(pcm) => self.push_pcm(pcm),
            Err(e) => Ok(Err(to_wit_error(e))),
        }
    }
}

impl resample::Host for MediaView<'_> {
    fn resample(
        &mut self,
        input: Resource<Pcm>,
        sample_rate: u32,
        channels: u32,
    ) -> wasmtime::Result<Result<Resource<Pcm>, MediaError>> {
        let channels = match channels_u16(channels) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        match dub_media::resample(self.table.get(&input)?, sample_rate, channels) {
            Ok(pcm) => self.push_pcm(pcm),
            Err(e) => Ok(Err(to_wit_error(e))),
        }
    }
}

impl mix::Host for MediaView<'_> {
    fn mix(
        &mut self,
        background: Resource<Pcm>,
        voices: Vec<mix::Placement>,
        options: mix::MixOptions,
    ) -> wasmtime::Result<Result<Resource<Pcm>, MediaError>> {
        let bg = self.table.get(&background)?;
        let mut placements = Vec::with_capacity(voices.len());
        for v in &voices {
            placements.push(dub_media::Placement {
                speech: self.table.get(&v.speech)?,
                start_frame: v.start_frame,
                speed: v.speed,
            });
        }
        let opts = dub_media::MixOptions {
            background: match options.background {
                mix::Background::Duck => dub_media::Background::Duck,
                mix::Background::Original => dub_media::Background::Original,
                mix::Background::None => dub_media::Background::None,
            },
            duck_db: options.duck_db,
        };
        let out = dub_media::mix(bg, &placements, &opts);
        drop(placements);
        match out {
            Ok(pcm) => self.push_pcm(pcm),
            Err(e) => Ok(Err(to_wit_error(e))),
        }
    }

    fn duck(
        &mut self,
        background: Resource<Pcm>,
        spans: Vec<mix::Span>,
        duck_db: f32,
    ) -> wasmtime::Result<Result<Resource<Pcm>, MediaError>> {
        let spans: Vec<(i64, i64)> = spans.iter().map(|s| (s.start, s.end)).collect();
        match dub_media::duck(self.table.get(&background)?, &spans, duck_db) {
            Ok(pcm) => self.push_pcm(pcm),
            Err(e) => Ok(Err(to_wit_error(e))),
        }
    }
}

impl remux::Host for MediaView<'_> {
    fn remux_audio(
        &mut self,
        seg: Resource<SegmentRes>,
        audio: Resource<Pcm>,
        priming: Option<Resource<Pcm>>,
        lookahead: Option<Resource<Pcm>>,
    ) -> wasmtime::Result<Result<Vec<u8>, MediaError>> {
        let seg = &self.table.get(&seg)?.seg;
        let audio = self.table.get(&audio)?;
        let priming = match &priming {
            Some(p) => Some(self.table.get(p)?),
            None => None,
        };
        let lookahead = match &lookahead {
            Some(p) => Some(self.table.get(p)?),
            None => None,
        };
        Ok(
            dub_media::remux_audio_with_lookahead(seg, audio, priming, lookahead)
                .map_err(to_wit_error),
        )
    }

    fn repackage(
        &mut self,
        seg: Resource<SegmentRes>,
    ) -> wasmtime::Result<Result<Vec<u8>, MediaError>> {
        let seg = &self.table.get(&seg)?.seg;
        Ok(dub_media::repackage(seg).map_err(to_wit_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::HostPcm;

    #[test]
    fn pcm_resources_round_trip_and_budget_is_enforced() {
        let mut table = ResourceTable::new();
        let mut budget = MediaBudget::new(1 << 20);
        let mut view = MediaView {
            table: &mut table,
            budget: &mut budget,
        };
        let samples: Vec<f32> = (0..4800).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
        let pcm = view.new(48_000, 2, samples.clone()).unwrap();
        assert_eq!(view.frames(Resource::new_borrow(pcm.rep())).unwrap(), 2400);
        assert_eq!(view.channels(Resource::new_borrow(pcm.rep())).unwrap(), 2);
        let part = view
            .slice(Resource::new_borrow(pcm.rep()), 100, 1_000_000)
            .unwrap();
        assert_eq!(view.frames(Resource::new_borrow(part.rep())).unwrap(), 2300);
        let wav = view.to_wav(Resource::new_borrow(pcm.rep())).unwrap();
        let back = view.from_wav(wav).unwrap().unwrap();
        assert_eq!(view.frames(Resource::new_borrow(back.rep())).unwrap(), 2400);
        assert_eq!(
            view.sample_rate(Resource::new_borrow(back.rep())).unwrap(),
            48_000
        );
        assert_eq!(view.budget.used, (4800 + 4600 + 4800) * 4);

        // Over budget: fallible calls report `limit`, infallible ones trap.
        let big = vec![0.0f32; 300_000];
        assert!(view.new(48_000, 1, big).is_err());
        let wav = crate::media::tests::wav_of_frames(300_000);
        assert!(matches!(
            view.from_wav(wav).unwrap(),
            Err(MediaError::Limit(_))
        ));

        // Dropping releases the budget.
        HostPcm::drop(&mut view, pcm).unwrap();
        HostPcm::drop(&mut view, part).unwrap();
        HostPcm::drop(&mut view, back).unwrap();
        assert_eq!(view.budget.used, 0);

        // Bad constructor arguments trap rather than panic.
        assert!(view.new(48_000, 70_000, vec![0.0; 4]).is_err());
        assert!(view.new(48_000, 2, vec![0.0; 3]).is_err());
        assert!(view.new(48_000, 1, vec![f32::NAN]).is_err());
    }

    #[test]
    fn media_errors_map_to_wit_cases() {
        let mut table = ResourceTable::new();
        let mut budget = MediaBudget::new(DEFAULT_MEDIA_BUDGET);
        let mut view = MediaView {
            table: &mut table,
            budget: &mut budget,
        };
        assert!(matches!(
            validate::Host::probe_init(&mut view, b"not an mp4".to_vec()).unwrap(),
            Err(MediaError::Invalid(_))
        ));
        assert!(matches!(
            validate::Host::open_segment(&mut view, vec![], vec![]).unwrap(),
            Err(MediaError::Invalid(_))
        ));
        assert!(matches!(
            types::HostPcm::from_wav(&mut view, b"RIFF".to_vec()).unwrap(),
            Err(MediaError::Invalid(_))
        ));
    }

    /// A mono 16-bit WAV of `frames` frames of silence.
    pub(crate) fn wav_of_frames(frames: usize) -> Vec<u8> {
        dub_media::Pcm::new(48_000, 1, vec![0.0; frames])
            .unwrap()
            .to_wav()
    }
}
