//! Writing init segments with mp4-atom: built from a TS stream's parameters, or an HE-AAC
//! init rewritten to declare the AAC-LC that dubbed segments carry.

use mp4_atom::{
    Audio, Avc1, Avcc, Codec, Decode, Dinf, Dref, Encode, Esds, FourCC, Ftyp, Hdlr, Mdhd, Mdia,
    Minf, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tkhd, Trak, Trex, Url,
    Visual, Vmhd, esds,
};

use crate::error::{Error, Result};

/// The audio track of a built init segment.
pub(crate) struct AudioParams<'a> {
    pub track_id: u32,
    pub sample_rate: u32,
    pub channels: u16,
    pub asc: &'a [u8],
}

/// The H.264 track of a built init segment.
pub(crate) struct VideoParams<'a> {
    pub track_id: u32,
    pub width: u32,
    pub height: u32,
    pub sps: &'a [Vec<u8>],
    pub pps: &'a [Vec<u8>],
}

/// Video timescale of built init segments (the TS clock).
pub(crate) const VIDEO_TIMESCALE: u32 = 90_000;

fn dinf() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![
                Url {
                    location: String::new(),
                }
                .into(),
            ],
        },
    }
}

fn empty_stbl(codec: Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stts: Stts::default(),
        stsc: Stsc::default(),
        stsz: Stsz::default(),
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

fn esds_for(track_id: u32, asc: &[u8]) -> Esds {
    Esds {
        es_desc: esds::EsDescriptor {
            es_id: u16::try_from(track_id).unwrap_or(0),
            depends_on_es_id: None,
            url: None,
            ocr_es_id: None,
            stream_priority: 0,
            dec_config: esds::DecoderConfig {
                object_type_indication: 0x40,
                stream_type: 5,
                dec_specific: Some(esds::DecoderSpecific {
                    profile: asc.first().map_or(0, |b| b >> 3),
                    freq_index: 0,
                    chan_conf: 0,
                    raw: asc.to_vec(),
                }),
                ..Default::default()
            },
            sl_config: esds::SLConfig {},
        },
    }
}

fn audio_trak(a: &AudioParams<'_>) -> Trak {
    Trak {
        tkhd: Tkhd {
            track_id: a.track_id,
            alternate_group: 1,
            enabled: true,
            in_movie: true,
            volume: 1.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: a.sample_rate,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"soun".into(),
                name: "SoundHandler".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: dinf(),
                stbl: empty_stbl(
                    Mp4a {
                        audio: Audio {
                            data_reference_index: 1,
                            channel_count: a.channels,
                            sample_size: 16,
                            sample_rate: u16::try_from(a.sample_rate).unwrap_or(0).into(),
                        },
                        esds: esds_for(a.track_id, a.asc),
                        btrt: None,
                        taic: None,
                    }
                    .into(),
                ),
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

fn video_trak(v: &VideoParams<'_>) -> Result<Trak> {
    let sps = v
        .sps
        .first()
        .filter(|s| s.len() >= 4)
        .ok_or_else(|| Error::invalid("H.264 without SPS"))?;
    let w = u16::try_from(v.width).map_err(|_| Error::invalid("video width"))?;
    let h = u16::try_from(v.height).map_err(|_| Error::invalid("video height"))?;
    Ok(Trak {
        tkhd: Tkhd {
            track_id: v.track_id,
            enabled: true,
            in_movie: true,
            width: w.into(),
            height: h.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: VIDEO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "VideoHandler".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: dinf(),
                stbl: empty_stbl(
                    Avc1 {
                        visual: Visual {
                            data_reference_index: 1,
                            width: w,
                            height: h,
                            horizresolution: 72.into(),
                            vertresolution: 72.into(),
                            frame_count: 1,
                            compressor: "".into(),
                            depth: 24,
                        },
                        avcc: Avcc {
                            configuration_version: 1,
                            avc_profile_indication: sps[1],
                            profile_compatibility: sps[2],
                            avc_level_indication: sps[3],
                            length_size: 4,
                            sequence_parameter_sets: v.sps.to_vec(),
                            picture_parameter_sets: v.pps.to_vec(),
                            ext: None,
                        },
                        btrt: None,
                        colr: None,
                        pasp: None,
                        taic: None,
                        fiel: None,
                        spatial: None,
                    }
                    .into(),
                ),
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

/// `ftyp` + `moov` (mvhd, video trak, audio trak, mvex/trex): deterministic for the same
/// parameters.
pub(crate) fn build_init(
    video: Option<&VideoParams<'_>>,
    audio: &AudioParams<'_>,
) -> Result<Vec<u8>> {
    let mut traks = Vec::new();
    let mut trex = Vec::new();
    if let Some(v) = video {
        traks.push(video_trak(v)?);
        trex.push(Trex {
            track_id: v.track_id,
            default_sample_description_index: 1,
            ..Default::default()
        });
    }
    traks.push(audio_trak(audio));
    trex.push(Trex {
        track_id: audio.track_id,
        default_sample_description_index: 1,
        ..Default::default()
    });
    let next = traks.iter().map(|t| t.tkhd.track_id).max().unwrap_or(0) + 1;
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: next,
            ..Default::default()
        },
        mvex: Some(Mvex {
            trex,
            ..Default::default()
        }),
        trak: traks,
        ..Default::default()
    };
    let ftyp = Ftyp {
        major_brand: FourCC::new(b"iso6"),
        minor_version: 0,
        compatible_brands: vec![
            FourCC::new(b"iso6"),
            FourCC::new(b"cmfc"),
            FourCC::new(b"mp41"),
        ],
    };
    let mut out = Vec::new();
    ftyp.encode(&mut out)
        .map_err(|e| Error::internal(format!("ftyp encode: {e}")))?;
    moov.encode(&mut out)
        .map_err(|e| Error::internal(format!("moov encode: {e}")))?;
    Ok(out)
}

/// Rewrite an init segment so audio track `track_id` declares AAC-LC with `asc` at
/// `sample_rate` x `channels`, its mdhd timescale set to `timescale`. Other boxes and tracks
/// are kept as mp4-atom decodes them (track ids, trex and other tracks unchanged).
pub(crate) fn rewrite_audio_init(
    init: &[u8],
    track_id: u32,
    sample_rate: u32,
    channels: u16,
    asc: &[u8],
    timescale: u32,
) -> Result<Vec<u8>> {
    let mut buf = init;
    let mut out = Vec::with_capacity(init.len() + 16);
    let mut done = false;
    while !buf.is_empty() {
        let any = mp4_atom::Any::decode(&mut buf)
            .map_err(|e| Error::unsupported(format!("rewriting the init segment: {e}")))?;
        match any {
            mp4_atom::Any::Moov(mut moov) => {
                for trak in moov.trak.iter_mut().filter(|t| t.tkhd.track_id == track_id) {
                    trak.mdia.mdhd.timescale = timescale;
                    for codec in &mut trak.mdia.minf.stbl.stsd.codecs {
                        if let Codec::Mp4a(m) = codec {
                            m.audio.channel_count = channels;
                            m.audio.sample_rate = u16::try_from(sample_rate).unwrap_or(0).into();
                            let es_id = m.esds.es_desc.es_id;
                            m.esds = esds_for(u32::from(es_id), asc);
                            done = true;
                        }
                    }
                }
                moov.encode(&mut out)
                    .map_err(|e| Error::internal(format!("moov encode: {e}")))?;
            }
            other => other
                .encode(&mut out)
                .map_err(|e| Error::internal(format!("init encode: {e}")))?,
        }
    }
    if !done {
        return Err(Error::invalid(format!(
            "init segment has no mp4a entry for track {track_id}"
        )));
    }
    Ok(out)
}

/// RFC 6381 codec strings of the video tracks of an init segment (e.g. `avc1.4d401e`).
pub(crate) fn video_codecs(init: &[u8]) -> Vec<String> {
    let mut buf = init;
    let mut out = Vec::new();
    while !buf.is_empty() {
        let Ok(any) = mp4_atom::Any::decode(&mut buf) else {
            break;
        };
        if let mp4_atom::Any::Moov(moov) = any {
            for trak in &moov.trak {
                for codec in &trak.mdia.minf.stbl.stsd.codecs {
                    if let Codec::Avc1(a) = codec {
                        out.push(avc1_codec(
                            a.avcc.avc_profile_indication,
                            a.avcc.profile_compatibility,
                            a.avcc.avc_level_indication,
                        ));
                    }
                }
            }
        }
    }
    out
}

/// `avc1.PPCCLL`.
pub(crate) fn avc1_codec(profile: u8, compat: u8, level: u8) -> String {
    format!("avc1.{profile:02x}{compat:02x}{level:02x}")
}
