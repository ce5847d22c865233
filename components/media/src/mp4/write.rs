//! Writing an audio-only fMP4 media segment with mp4-atom.

use mp4_atom::{Decode, Encode, Mfhd, Moof, Tfdt, Tfhd, Traf, Trun, TrunEntry};

use crate::error::{Error, Result};

/// Sample flags for AAC access units: every one is a sync sample ("depends on no other").
const AUDIO_SAMPLE_FLAGS: u32 = 0x0200_0000;

/// Everything that goes into the written segment.
pub(crate) struct SegmentOut<'a> {
    pub styp: Option<&'a [u8]>,
    pub sequence_number: u32,
    pub track_id: u32,
    pub sample_description_index: Option<u32>,
    pub base_decode_time: u64,
    pub durations: &'a [u32],
    pub aus: &'a [Vec<u8>],
    /// Other tracks' `traf`s of a muxed segment, copied with their samples.
    pub others: Vec<OtherOut<'a>>,
    /// Position of the audio `traf` among all `traf`s.
    pub audio_index: usize,
}

/// Samples of one track, per `trun`.
type Runs<'a> = Vec<Vec<&'a [u8]>>;

/// Another track's `traf` (as source box bytes) and its samples per `trun`.
pub(crate) struct OtherOut<'a> {
    pub traf_box: &'a [u8],
    pub index: usize,
    pub runs: Runs<'a>,
}

/// `[styp] moof(mfhd, traf(tfhd, tfdt, trun)…) mdat`: the audio traf is written fresh; other
/// tracks' trafs (muxed segments) are copied with their samples and only their data offsets
/// rewritten. Every trun's data offset is relative to the moof (tfhd default-base-is-moof).
pub(crate) fn write_segment(s: &SegmentOut<'_>) -> Result<Vec<u8>> {
    if s.durations.len() != s.aus.len() {
        return Err(Error::internal(
            "durations and access units differ in number",
        ));
    }
    let entries: Vec<TrunEntry> = s
        .aus
        .iter()
        .zip(s.durations)
        .map(|(au, &d)| TrunEntry {
            duration: Some(d),
            size: Some(au.len() as u32),
            flags: None,
            cts: None,
        })
        .collect();
    let audio_traf = Traf {
        tfhd: Tfhd {
            track_id: s.track_id,
            base_data_offset: None,
            sample_description_index: s.sample_description_index,
            default_sample_duration: None,
            default_sample_size: None,
            default_sample_flags: Some(AUDIO_SAMPLE_FLAGS),
            duration_is_empty: false,
            default_base_is_moof: true,
        },
        tfdt: Some(Tfdt {
            base_media_decode_time: s.base_decode_time,
        }),
        trun: vec![Trun {
            data_offset: Some(0),
            samples: entries.into(),
        }],
        ..Default::default()
    };
    let audio_runs: Runs<'_> = vec![s.aus.iter().map(Vec::as_slice).collect()];

    // All trafs in source order, each with its samples per trun.
    let mut trafs: Vec<(usize, Traf, Runs<'_>)> = vec![(s.audio_index, audio_traf, audio_runs)];
    for o in &s.others {
        let mut buf = o.traf_box;
        let mut traf = Traf::decode(&mut buf)
            .map_err(|e| Error::unsupported(format!("copying a muxed traf: {e}")))?;
        if traf.senc.is_some() || !traf.saio.is_empty() || !traf.saiz.is_empty() {
            return Err(Error::Encrypted(
                "muxed track carries sample encryption".into(),
            ));
        }
        if traf.trun.len() != o.runs.len() {
            return Err(Error::internal("muxed traf: trun count changed on decode"));
        }
        traf.tfhd.base_data_offset = None;
        traf.tfhd.default_base_is_moof = true;
        for t in &mut traf.trun {
            t.data_offset = Some(0);
        }
        trafs.push((o.index, traf, o.runs.clone()));
    }
    trafs.sort_by_key(|(i, _, _)| *i);

    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: s.sequence_number,
        },
        traf: trafs.iter().map(|(_, t, _)| t.clone()).collect(),
    };
    let mut probe = Vec::new();
    moof.encode(&mut probe)
        .map_err(|e| Error::internal(format!("moof encode: {e}")))?;
    // Samples go into the mdat in traf/trun order; each trun points at its first sample.
    let mut pos = probe.len() + 8;
    for (traf, (_, _, runs)) in moof.traf.iter_mut().zip(&trafs) {
        for (trun, run) in traf.trun.iter_mut().zip(runs) {
            let off = i32::try_from(pos)
                .map_err(|_| Error::limit("segment too large for 32-bit data offsets"))?;
            trun.data_offset = Some(off);
            pos += run.iter().map(|x| x.len()).sum::<usize>();
        }
    }

    let payload = pos - probe.len() - 8;
    let mut out = Vec::with_capacity(s.styp.map_or(0, <[u8]>::len) + pos);
    if let Some(styp) = s.styp {
        out.extend_from_slice(styp);
    }
    moof.encode(&mut out)
        .map_err(|e| Error::internal(format!("moof encode: {e}")))?;
    mdat_header(&mut out, payload)?;
    for (_, _, runs) in &trafs {
        for sample in runs.iter().flatten() {
            out.extend_from_slice(sample);
        }
    }
    Ok(out)
}

/// One track of a freshly written fragment: its traf header fields and samples.
pub(crate) struct TrackOut<'a> {
    pub track_id: u32,
    pub base_decode_time: u64,
    pub default_flags: u32,
    pub entries: Vec<TrunEntry>,
    pub samples: Vec<&'a [u8]>,
}

/// Sample flags of a non-sync video sample (depends on others, non-sync).
pub(crate) const VIDEO_NON_SYNC_FLAGS: u32 = 0x0101_0000;
/// Sample flags of a sync video sample (depends on no other).
pub(crate) const VIDEO_SYNC_FLAGS: u32 = 0x0200_0000;
/// Sample flags of an audio access unit.
pub(crate) const AUDIO_FLAGS: u32 = AUDIO_SAMPLE_FLAGS;

/// `[styp] moof(mfhd, traf(tfhd, tfdt, trun)…) mdat` with every track written fresh (one
/// trun per track, data offsets relative to the moof).
pub(crate) fn write_fragment(
    styp: Option<&[u8]>,
    sequence_number: u32,
    tracks: &[TrackOut<'_>],
) -> Result<Vec<u8>> {
    let mut moof = Moof {
        mfhd: Mfhd { sequence_number },
        traf: tracks
            .iter()
            .map(|t| Traf {
                tfhd: Tfhd {
                    track_id: t.track_id,
                    base_data_offset: None,
                    sample_description_index: None,
                    default_sample_duration: None,
                    default_sample_size: None,
                    default_sample_flags: Some(t.default_flags),
                    duration_is_empty: false,
                    default_base_is_moof: true,
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: t.base_decode_time,
                }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: t.entries.clone().into(),
                }],
                ..Default::default()
            })
            .collect(),
    };
    let mut probe = Vec::new();
    moof.encode(&mut probe)
        .map_err(|e| Error::internal(format!("moof encode: {e}")))?;
    let mut pos = probe.len() + 8;
    for (traf, t) in moof.traf.iter_mut().zip(tracks) {
        let off = i32::try_from(pos)
            .map_err(|_| Error::limit("segment too large for 32-bit data offsets"))?;
        if let Some(trun) = traf.trun.first_mut() {
            trun.data_offset = Some(off);
        }
        pos += t.samples.iter().map(|x| x.len()).sum::<usize>();
    }
    let payload = pos - probe.len() - 8;
    let mut out = Vec::with_capacity(styp.map_or(0, <[u8]>::len) + pos);
    if let Some(styp) = styp {
        out.extend_from_slice(styp);
    }
    moof.encode(&mut out)
        .map_err(|e| Error::internal(format!("moof encode: {e}")))?;
    mdat_header(&mut out, payload)?;
    for t in tracks {
        for s in &t.samples {
            out.extend_from_slice(s);
        }
    }
    Ok(out)
}

/// The 8-byte `mdat` header for `payload` bytes; the samples follow it directly (mp4-atom's
/// `Mdat` encodes its data byte by byte: 40 instructions per byte of video).
fn mdat_header(out: &mut Vec<u8>, payload: usize) -> Result<()> {
    let size = u32::try_from(payload + 8)
        .map_err(|_| Error::limit("segment too large for a 32-bit mdat"))?;
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(b"mdat");
    Ok(())
}

/// A `styp` for built segments (CMAF-style brands).
pub(crate) fn styp() -> Result<Vec<u8>> {
    let mut out = Vec::new();
    mp4_atom::Styp {
        major_brand: mp4_atom::FourCC::new(b"msdh"),
        minor_version: 0,
        compatible_brands: vec![
            mp4_atom::FourCC::new(b"msdh"),
            mp4_atom::FourCC::new(b"msix"),
        ],
    }
    .encode(&mut out)
    .map_err(|e| Error::internal(format!("styp encode: {e}")))?;
    Ok(out)
}
