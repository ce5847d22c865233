//! Media segment (`styp`/`sidx`/`moof`/`mdat`…): the audio track's samples and timing.

use super::init::Init;
use super::reader::{BoxRef, Reader, check_depth, children, first, fourcc, one};
use crate::error::{Error, Result};
use crate::limits;

/// One audio access unit: where it is in the media bytes and how long it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    pub offset: usize,
    pub size: usize,
    pub duration: u32,
}

/// The parsed audio part of a media segment.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Parsed {
    pub samples: Vec<Sample>,
    pub base_decode_time: u64,
    pub sequence_number: u32,
    pub sample_description_index: Option<u32>,
    /// Byte range of the first `styp`, copied verbatim on remux.
    pub styp: Option<(usize, usize)>,
    /// Whether any `traf` for another track was present (muxed segment).
    pub other_tracks: bool,
    /// Other tracks' `traf`s, kept so a muxed segment can be rewritten with them copied.
    pub others: Vec<OtherTraf>,
    /// Position of the (first) audio `traf` among the `traf`s of its `moof`.
    pub audio_traf_index: usize,
    /// Number of `moof` boxes.
    pub moofs: usize,
}

/// A `traf` of another track: its box bytes and its samples per `trun`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OtherTraf {
    /// Byte range of the whole `traf` box in the media segment.
    pub range: (usize, usize),
    /// Position among the `traf`s of its `moof`.
    pub index: usize,
    /// Each `trun`'s samples (offset and size in the media segment).
    pub runs: Vec<Vec<Sample>>,
}

/// Most samples of other tracks accepted in one segment.
const MAX_OTHER_SAMPLES: usize = 200_000;

const TFHD_BASE_DATA_OFFSET: u32 = 0x01;
const TFHD_SDI: u32 = 0x02;
const TFHD_DURATION: u32 = 0x08;
const TFHD_SIZE: u32 = 0x10;
const TFHD_FLAGS: u32 = 0x20;

const TRUN_DATA_OFFSET: u32 = 0x01;
const TRUN_FIRST_FLAGS: u32 = 0x04;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTO: u32 = 0x800;

/// Parse `media` against `init`, keeping only the audio track's samples.
pub(crate) fn parse_segment(init: &Init, media: &[u8]) -> Result<Parsed> {
    limits::check_input_len(media.len(), "media segment")?;
    check_depth(media, 0)?;
    let top = children(media, 0)?;
    if top.iter().any(|b| &b.kind == b"moov") {
        // A self-initialising file: treat it as media only if it also has fragments.
        if !top.iter().any(|b| &b.kind == b"moof") {
            return Err(Error::invalid("media segment has no moof"));
        }
    }
    let mdats: Vec<(usize, usize)> = top
        .iter()
        .filter(|b| &b.kind == b"mdat")
        .map(|b| (b.body_start(), b.body_start() + b.body.len()))
        .collect();
    let styp = first(&top, b"styp").map(|b| (b.start, b.start + b.size));

    let track_id = init.track.track_id;
    let mut samples: Vec<Sample> = Vec::new();
    let mut base_decode_time: Option<u64> = None;
    let mut sequence_number: Option<u32> = None;
    let mut sdi = None;
    let mut other_tracks = false;
    let mut others: Vec<OtherTraf> = Vec::new();
    let mut other_samples = 0usize;
    let mut audio_traf_index = 0usize;
    let mut moofs = 0usize;

    for moof in top.iter().filter(|b| &b.kind == b"moof") {
        moofs += 1;
        if moofs > limits::MAX_FRAGMENTS {
            return Err(Error::limit(format!(
                "more than {} moof boxes",
                limits::MAX_FRAGMENTS
            )));
        }
        let kids = children(moof.body, moof.body_start())?;
        let mfhd = one(&kids, b"mfhd", "moof")?;
        let mut r = Reader::new(mfhd.body, "mfhd");
        r.version_flags()?;
        let seq = r.u32()?;
        for (traf_index, traf) in kids.iter().filter(|b| &b.kind == b"traf").enumerate() {
            let tk = children(traf.body, traf.body_start())?;
            let tfhd = parse_tfhd(one(&tk, b"tfhd", "traf")?)?;
            if tfhd.track_id != track_id {
                other_tracks = true;
                let trex = init
                    .all_trex
                    .iter()
                    .find(|(id, _)| *id == tfhd.track_id)
                    .map(|(_, t)| *t)
                    .unwrap_or_default();
                let base = match tfhd.base_data_offset {
                    Some(b) => usize::try_from(b)
                        .map_err(|_| Error::invalid("tfhd: base_data_offset out of range"))?,
                    None => moof.start,
                };
                let run_limits = RunLimits {
                    max_sample: limits::MAX_INPUT_BYTES,
                    max_samples: MAX_OTHER_SAMPLES.saturating_sub(other_samples),
                    default_duration: tfhd.default_sample_duration.unwrap_or(0),
                    default_size: tfhd.default_sample_size.unwrap_or(trex.default_sample_size),
                };
                let mut next = base;
                let mut runs = Vec::new();
                for trun in tk.iter().filter(|b| &b.kind == b"trun") {
                    let mut run = Vec::new();
                    parse_trun(trun, base, &mut next, &run_limits, &mdats, &mut run)?;
                    other_samples += run.len();
                    runs.push(run);
                }
                others.push(OtherTraf {
                    range: (traf.start, traf.start + traf.size),
                    index: traf_index,
                    runs,
                });
                continue;
            }
            for enc in [b"senc", b"saiz", b"saio"] {
                if first(&tk, enc).is_some() {
                    return Err(Error::Encrypted(format!(
                        "audio traf carries {} (sample encryption)",
                        fourcc(*enc)
                    )));
                }
            }
            let index = tfhd
                .sample_description_index
                .unwrap_or(init.trex.default_sample_description_index.max(1));
            match init.entries.get((index as usize).wrapping_sub(1)) {
                Some(b"mp4a") => {}
                Some(b"enca") => {
                    return Err(Error::Encrypted(format!(
                        "audio samples use encrypted sample entry {index}"
                    )));
                }
                Some(other) => {
                    return Err(Error::unsupported(format!(
                        "audio samples use sample entry {index} ({})",
                        fourcc(*other)
                    )));
                }
                None => {
                    return Err(Error::invalid(format!(
                        "sample description index {index} not in the init segment's {} entries",
                        init.entries.len()
                    )));
                }
            }
            let tfdt = one(&tk, b"tfdt", "audio traf")?;
            let mut r = Reader::new(tfdt.body, "tfdt");
            let (v, _) = r.version_flags()?;
            let bdt = if v == 1 {
                r.u64()?
            } else {
                u64::from(r.u32()?)
            };
            if base_decode_time.is_none() {
                audio_traf_index = traf_index;
                base_decode_time = Some(bdt);
                sequence_number = Some(seq);
                sdi = tfhd.sample_description_index;
            }
            let base = match tfhd.base_data_offset {
                Some(b) => usize::try_from(b)
                    .map_err(|_| Error::invalid("tfhd: base_data_offset out of range"))?,
                None => moof.start,
            };
            let run_limits = RunLimits {
                max_sample: limits::MAX_AU_BYTES,
                max_samples: limits::MAX_FRAMES,
                default_duration: tfhd
                    .default_sample_duration
                    .unwrap_or(init.trex.default_sample_duration),
                default_size: tfhd
                    .default_sample_size
                    .unwrap_or(init.trex.default_sample_size),
            };
            let mut next = base;
            for trun in tk.iter().filter(|b| &b.kind == b"trun") {
                parse_trun(trun, base, &mut next, &run_limits, &mdats, &mut samples)?;
            }
        }
    }
    let base_decode_time = base_decode_time.ok_or_else(|| {
        Error::invalid(format!(
            "media segment has no traf for audio track {track_id}"
        ))
    })?;
    if samples.is_empty() {
        return Err(Error::invalid("media segment has no audio samples"));
    }
    Ok(Parsed {
        samples,
        base_decode_time,
        sequence_number: sequence_number.unwrap_or(0),
        sample_description_index: sdi,
        styp,
        other_tracks,
        others,
        audio_traf_index,
        moofs,
    })
}

/// Bounds and defaults for the samples of one track's runs.
struct RunLimits {
    /// Largest single sample (bytes).
    max_sample: usize,
    /// Most samples in total in the output vector.
    max_samples: usize,
    default_duration: u32,
    default_size: u32,
}

struct Tfhd {
    track_id: u32,
    base_data_offset: Option<u64>,
    sample_description_index: Option<u32>,
    default_sample_duration: Option<u32>,
    default_sample_size: Option<u32>,
}

fn parse_tfhd(b: BoxRef<'_>) -> Result<Tfhd> {
    let mut r = Reader::new(b.body, "tfhd");
    let (_, flags) = r.version_flags()?;
    let track_id = r.u32()?;
    let base_data_offset = (flags & TFHD_BASE_DATA_OFFSET != 0)
        .then(|| r.u64())
        .transpose()?;
    let sample_description_index = (flags & TFHD_SDI != 0).then(|| r.u32()).transpose()?;
    let default_sample_duration = (flags & TFHD_DURATION != 0).then(|| r.u32()).transpose()?;
    let default_sample_size = (flags & TFHD_SIZE != 0).then(|| r.u32()).transpose()?;
    if flags & TFHD_FLAGS != 0 {
        r.u32()?;
    }
    Ok(Tfhd {
        track_id,
        base_data_offset,
        sample_description_index,
        default_sample_duration,
        default_sample_size,
    })
}

fn parse_trun(
    trun: &BoxRef<'_>,
    base: usize,
    next: &mut usize,
    lim: &RunLimits,
    mdats: &[(usize, usize)],
    out: &mut Vec<Sample>,
) -> Result<()> {
    let mut r = Reader::new(trun.body, "trun");
    let (_, flags) = r.version_flags()?;
    let count = r.u32()? as usize;
    if flags & TRUN_DATA_OFFSET != 0 {
        let off = r.u32()? as i32;
        // base comes from tfhd's 64-bit base_data_offset: the sum may overflow (fuzz finding).
        let pos = i64::try_from(base)
            .ok()
            .and_then(|b| b.checked_add(i64::from(off)))
            .ok_or_else(|| Error::invalid(format!("trun: data_offset {off} overflows")))?;
        *next = usize::try_from(pos)
            .map_err(|_| Error::invalid(format!("trun: data_offset {off} before the segment")))?;
    }
    if flags & TRUN_FIRST_FLAGS != 0 {
        r.u32()?;
    }
    let entry = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count()
        * 4;
    if entry > 0 && count.saturating_mul(entry) > r.remaining() {
        return Err(Error::invalid(format!(
            "trun: {count} samples of {entry} bytes do not fit in {} bytes",
            r.remaining()
        )));
    }
    if out.len().saturating_add(count) > lim.max_samples {
        return Err(Error::limit(format!(
            "more than {} samples of one track in a segment",
            lim.max_samples
        )));
    }
    out.reserve(count);
    for _ in 0..count {
        let duration = if flags & TRUN_DURATION != 0 {
            r.u32()?
        } else {
            lim.default_duration
        };
        let size = if flags & TRUN_SIZE != 0 {
            r.u32()?
        } else {
            lim.default_size
        } as usize;
        if flags & TRUN_FLAGS != 0 {
            r.u32()?;
        }
        if flags & TRUN_CTO != 0 {
            r.u32()?;
        }
        if size == 0 || size > lim.max_sample {
            return Err(Error::invalid(format!("sample of {size} bytes")));
        }
        let offset = *next;
        let end = offset
            .checked_add(size)
            .ok_or_else(|| Error::invalid("sample offset overflow"))?;
        if !mdats.iter().any(|&(s, e)| offset >= s && end <= e) {
            return Err(Error::invalid(format!(
                "sample at {offset}..{end} is outside every mdat"
            )));
        }
        out.push(Sample {
            offset,
            size,
            duration,
        });
        *next = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::write::{SegmentOut, write_segment};

    fn init() -> Init {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpus/hls-fmp4/shaka-clear-encrypted-hls/audio-init-clear.mp4");
        crate::mp4::init::parse_init(&std::fs::read(path).unwrap()).unwrap()
    }

    fn segment(n: usize) -> Vec<u8> {
        let aus: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 10 + i % 3]).collect();
        write_segment(&SegmentOut {
            styp: None,
            sequence_number: 7,
            track_id: 1,
            sample_description_index: None,
            base_decode_time: 1 << 40,
            durations: &vec![1024; n],
            aus: &aus,
            others: Vec::new(),
            audio_index: 0,
        })
        .unwrap()
    }

    fn find(data: &[u8], kind: &[u8; 4]) -> usize {
        data.windows(4).position(|w| w == kind).unwrap() - 4
    }

    #[test]
    fn written_segment_parses_back() {
        let seg = segment(5);
        let p = parse_segment(&init(), &seg).unwrap();
        assert_eq!(p.samples.len(), 5);
        assert_eq!(p.base_decode_time, 1 << 40);
        assert_eq!(p.sequence_number, 7);
        assert_eq!(p.samples[1].size, 11);
        assert_eq!(
            &seg[p.samples[4].offset..p.samples[4].offset + 11],
            &[4u8; 11]
        );
        assert_eq!(p.samples[4].offset + 11, seg.len());
    }

    #[test]
    fn hostile_trun_counts_are_refused_before_allocating() {
        let seg = segment(5);
        let trun = find(&seg, b"trun");
        // sample_count = u32::MAX with per-sample fields: cannot fit in the box.
        let mut m = seg.clone();
        m[trun + 12..trun + 16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(parse_segment(&init(), &m), Err(Error::Invalid(_))));
        // No per-sample fields (flags = data offset only) and 30 000 samples: the frame limit.
        let mut m = seg.clone();
        m[trun + 9..trun + 12].copy_from_slice(&[0, 0, 1]);
        m[trun + 12..trun + 16].copy_from_slice(&30_000u32.to_be_bytes());
        assert!(matches!(parse_segment(&init(), &m), Err(Error::Limit(_))));
        // A data offset pointing past the mdat.
        let mut m = seg.clone();
        m[trun + 16..trun + 20].copy_from_slice(&100_000i32.to_be_bytes());
        assert!(matches!(parse_segment(&init(), &m), Err(Error::Invalid(_))));
        // Negative data offset before the start of the segment.
        let mut m = seg.clone();
        m[trun + 16..trun + 20].copy_from_slice(&(-100_000i32).to_be_bytes());
        assert!(matches!(parse_segment(&init(), &m), Err(Error::Invalid(_))));
        // Another track's traf only: no audio.
        let mut m = seg.clone();
        let tfhd = find(&seg, b"tfhd");
        m[tfhd + 12..tfhd + 16].copy_from_slice(&9u32.to_be_bytes());
        assert!(matches!(parse_segment(&init(), &m), Err(Error::Invalid(_))));
        // Sample entry 2 does not exist in this init.
        let mut m = seg.clone();
        m[tfhd + 11] |= 0x02;
        m.splice(tfhd + 16..tfhd + 16, 2u32.to_be_bytes());
        assert!(parse_segment(&init(), &m).is_err());
    }

    /// Fuzz finding (`mp4_boxes`, debug assertions): a tfhd base_data_offset near i64::MAX
    /// plus a positive trun data_offset overflowed i64 ("attempt to add with overflow").
    #[test]
    fn fuzz_base_data_offset_plus_data_offset_overflow_is_invalid() {
        let seg = segment(5);
        let (moof, traf, tfhd) = (
            find(&seg, b"moof"),
            find(&seg, b"traf"),
            find(&seg, b"tfhd"),
        );
        let mut m = seg.clone();
        // tfhd flag 0x01 (base_data_offset present) and the 8-byte field after track_ID.
        m[tfhd + 11] |= 0x01;
        m.splice(tfhd + 16..tfhd + 16, (i64::MAX as u64).to_be_bytes());
        for at in [moof, traf, tfhd] {
            let size = u32::from_be_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]) + 8;
            m[at..at + 4].copy_from_slice(&size.to_be_bytes());
        }
        let trun = find(&m, b"trun");
        m[trun + 16..trun + 20].copy_from_slice(&100i32.to_be_bytes());
        let err = parse_segment(&init(), &m).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(msg) if msg.contains("overflows")),
            "{err:?}"
        );
    }

    #[test]
    fn oversized_input_is_a_limit() {
        let big = vec![0u8; limits::MAX_INPUT_BYTES + 1];
        assert!(matches!(parse_segment(&init(), &big), Err(Error::Limit(_))));
    }
}
