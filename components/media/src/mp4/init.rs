//! Init segment (`ftyp` + `moov`): find the audio track and its AudioSpecificConfig.

use super::reader::{BoxRef, Reader, check_depth, children, first, fourcc, one};
use crate::AudioTrack;
use crate::error::{Error, Result};
use crate::limits;

/// Per-track defaults from `mvex/trex`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Trex {
    pub default_sample_description_index: u32,
    pub default_sample_duration: u32,
    pub default_sample_size: u32,
}

/// What the rest of the crate needs from an init segment.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Init {
    pub track: AudioTrack,
    pub trex: Trex,
    /// `trex` defaults of every track (other tracks are copied on muxed remux).
    pub all_trex: Vec<(u32, Trex)>,
    /// FourCC of each sample entry in the audio track's `stsd`, in order (index 1 first).
    pub entries: Vec<[u8; 4]>,
}

/// Parse and validate an init segment.
pub(crate) fn parse_init(init: &[u8]) -> Result<Init> {
    limits::check_input_len(init.len(), "init segment")?;
    check_depth(init, 0)?;
    let top = children(init, 0)?;
    let moov = one(&top, b"moov", "init segment")?;
    let moov_kids = children(moov.body, moov.body_start())?;

    // The first sound track decides; an encrypted or foreign codec there is reported as such.
    let mut audio: Option<(u32, u32, BoxRef<'_>)> = None;
    let mut traks = 0usize;
    for trak in moov_kids.iter().filter(|b| &b.kind == b"trak") {
        traks += 1;
        if traks > limits::MAX_TRACKS {
            return Err(Error::limit(format!(
                "more than {} tracks",
                limits::MAX_TRACKS
            )));
        }
        let kids = children(trak.body, trak.body_start())?;
        let mdia = one(&kids, b"mdia", "trak")?;
        let mdia_kids = children(mdia.body, mdia.body_start())?;
        let hdlr = one(&mdia_kids, b"hdlr", "mdia")?;
        let mut r = Reader::new(hdlr.body, "hdlr");
        r.version_flags()?;
        r.skip(4)?;
        let handler = r.bytes(4)?;
        if handler != b"soun" {
            continue;
        }
        let track_id = parse_tkhd(one(&kids, b"tkhd", "trak")?)?;
        let timescale = parse_mdhd(one(&mdia_kids, b"mdhd", "mdia")?)?;
        let minf = one(&mdia_kids, b"minf", "mdia")?;
        let minf_kids = children(minf.body, minf.body_start())?;
        let stbl = one(&minf_kids, b"stbl", "minf")?;
        let stbl_kids = children(stbl.body, stbl.body_start())?;
        let stsd = one(&stbl_kids, b"stsd", "stbl")?;
        audio = Some((track_id, timescale, stsd));
        break;
    }
    let (track_id, timescale, stsd) =
        audio.ok_or_else(|| Error::unsupported("init segment has no audio (soun) track"))?;
    // The ASC's channel configuration is authoritative (the sample entry's count is often 2).
    let (asc, entries) = parse_stsd(stsd)?;
    let cfg = asc_info(&asc)?;

    let mut trex = Trex::default();
    let mut all_trex = Vec::new();
    if let Some(mvex) = first(&moov_kids, b"mvex") {
        for t in children(mvex.body, mvex.body_start())?
            .iter()
            .filter(|b| &b.kind == b"trex")
        {
            let mut r = Reader::new(t.body, "trex");
            r.version_flags()?;
            let id = r.u32()?;
            let desc = r.u32()?;
            let dur = r.u32()?;
            let size = r.u32()?;
            let t = Trex {
                default_sample_description_index: desc,
                default_sample_duration: dur,
                default_sample_size: size,
            };
            if id == track_id {
                trex = t;
            }
            all_trex.push((id, t));
        }
    }

    Ok(Init {
        track: AudioTrack {
            track_id,
            timescale,
            sample_rate: cfg.out_rate,
            channels: cfg.out_channels,
            codec: format!("mp4a.40.{}", cfg.aot),
            asc,
        },
        trex,
        all_trex,
        entries,
    })
}

fn parse_tkhd(b: BoxRef<'_>) -> Result<u32> {
    let mut r = Reader::new(b.body, "tkhd");
    let (v, _) = r.version_flags()?;
    r.skip(if v == 1 { 16 } else { 8 })?;
    let id = r.u32()?;
    if id == 0 {
        return Err(Error::invalid("tkhd: track_ID 0"));
    }
    Ok(id)
}

fn parse_mdhd(b: BoxRef<'_>) -> Result<u32> {
    let mut r = Reader::new(b.body, "mdhd");
    let (v, _) = r.version_flags()?;
    r.skip(if v == 1 { 16 } else { 8 })?;
    let ts = r.u32()?;
    if ts == 0 {
        return Err(Error::invalid("mdhd: timescale 0"));
    }
    Ok(ts)
}

/// The ASC of the first sample entry and the kinds of all entries.
fn parse_stsd(stsd: BoxRef<'_>) -> Result<(Vec<u8>, Vec<[u8; 4]>)> {
    let mut r = Reader::new(stsd.body, "stsd");
    r.version_flags()?;
    let count = r.u32()?;
    // Each sample entry is at least an 8-byte box header.
    if count == 0 || (count as usize).saturating_mul(8) > r.remaining() {
        return Err(Error::invalid(format!("stsd: {count} entries do not fit")));
    }
    let entries = children(r.rest(), 0)?;
    if entries.len() != count as usize {
        return Err(Error::invalid(format!(
            "stsd: {count} entries declared, {} present",
            entries.len()
        )));
    }
    let kinds: Vec<[u8; 4]> = entries.iter().map(|e| e.kind).collect();
    let entry = entries
        .first()
        .ok_or_else(|| Error::invalid("stsd: no sample entry"))?;
    match &entry.kind {
        b"mp4a" => {}
        b"enca" => {
            let original = sample_entry_children(entry.body)
                .ok()
                .and_then(|kids| {
                    let sinf = first(&kids, b"sinf")?;
                    let sk = children(sinf.body, 0).ok()?;
                    let frma = first(&sk, b"frma")?;
                    frma.body.get(..4).map(|k| fourcc([k[0], k[1], k[2], k[3]]))
                })
                .unwrap_or_else(|| "unknown".to_string());
            return Err(Error::Encrypted(format!(
                "audio sample entry is enca (protected {original})"
            )));
        }
        other => {
            return Err(Error::unsupported(format!(
                "audio codec {} (only AAC-LC mp4a)",
                fourcc(*other)
            )));
        }
    }
    let kids = sample_entry_children(entry.body)?;
    let esds = if let Some(e) = first(&kids, b"esds") {
        e
    } else if let Some(wave) = first(&kids, b"wave") {
        let wk = children(wave.body, 0)?;
        first(&wk, b"esds").ok_or_else(|| Error::invalid("mp4a: no esds"))?
    } else {
        return Err(Error::invalid("mp4a: no esds"));
    };
    Ok((parse_esds(esds.body)?, kinds))
}

/// Children of an audio sample entry, after its fixed fields (QuickTime v0/v1/v2 aware).
fn sample_entry_children(body: &[u8]) -> Result<Vec<BoxRef<'_>>> {
    let mut r = Reader::new(body, "audio sample entry");
    r.skip(8)?;
    let version = r.u16()?;
    let fixed = match version {
        0 => 28,
        1 => 44,
        2 => 64,
        v => {
            return Err(Error::invalid(format!("audio sample entry version {v}")));
        }
    };
    let rest = body
        .get(fixed..)
        .ok_or_else(|| Error::invalid("audio sample entry: truncated"))?;
    children(rest, 0)
}

/// Read an MPEG-4 descriptor header: (tag, body).
fn descriptor<'a>(r: &mut Reader<'a>) -> Result<(u8, &'a [u8])> {
    let tag = r.u8()?;
    let mut len = 0usize;
    for i in 0..4 {
        let b = r.u8()?;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(Error::invalid("esds: descriptor length too long"));
        }
    }
    Ok((tag, r.bytes(len)?))
}

/// The AudioSpecificConfig inside an `esds` body.
fn parse_esds(body: &[u8]) -> Result<Vec<u8>> {
    let mut r = Reader::new(body, "esds");
    r.version_flags()?;
    let (tag, es) = descriptor(&mut r)?;
    if tag != 0x03 {
        return Err(Error::invalid(format!(
            "esds: expected ES_Descriptor, got tag {tag}"
        )));
    }
    let mut r = Reader::new(es, "ES_Descriptor");
    r.skip(2)?;
    let flags = r.u8()?;
    if flags & 0x80 != 0 {
        r.skip(2)?;
    }
    if flags & 0x40 != 0 {
        let n = r.u8()?;
        r.skip(usize::from(n))?;
    }
    if flags & 0x20 != 0 {
        r.skip(2)?;
    }
    while r.remaining() > 0 {
        let (tag, d) = descriptor(&mut r)?;
        if tag != 0x04 {
            continue;
        }
        let mut dr = Reader::new(d, "DecoderConfigDescriptor");
        let oti = dr.u8()?;
        if oti != 0x40 {
            return Err(Error::unsupported(format!(
                "mp4a objectTypeIndication 0x{oti:02x} (only MPEG-4 audio 0x40)"
            )));
        }
        dr.skip(12)?;
        while dr.remaining() > 0 {
            let (tag, dsi) = descriptor(&mut dr)?;
            if tag == 0x05 {
                if dsi.len() < 2 || dsi.len() > 64 {
                    return Err(Error::invalid(format!(
                        "AudioSpecificConfig of {} bytes",
                        dsi.len()
                    )));
                }
                return Ok(dsi.to_vec());
            }
        }
        return Err(Error::invalid("esds: no DecoderSpecificInfo"));
    }
    Err(Error::invalid("esds: no DecoderConfigDescriptor"))
}

/// The parts of an AudioSpecificConfig we act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AscInfo {
    pub sample_rate: u32,
    pub channels: u16,
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// An AudioSpecificConfig of AAC-LC, HE-AAC (SBR, object type 5) or HE-AACv2 (PS, 29).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AscFull {
    /// Signalled object type: 2, 5 or 29.
    pub aot: u8,
    /// Core (LC) rate and channels.
    pub core_rate: u32,
    pub core_channels: u16,
    /// Decoded output rate and channels (SBR doubles the rate, PS makes mono stereo).
    pub out_rate: u32,
    pub out_channels: u16,
}

/// Channels of an AAC `channelConfiguration` (1–6 as is, 7 is 7.1); 0 (a PCE) and the
/// reserved values are unsupported.
fn config_channels(cc: u32) -> Result<u16> {
    match cc {
        0 => Err(Error::unsupported("AAC channel configuration 0 (PCE)")),
        1..=6 => Ok(cc as u16),
        7 => Ok(8),
        _ => Err(Error::unsupported(format!(
            "AAC channel configuration {cc}"
        ))),
    }
}

fn rate_of(bits: &mut Bits<'_>) -> Result<u32> {
    let sfi = bits.read(4)?;
    if sfi == 15 {
        return bits.read(24);
    }
    AAC_RATES
        .get(sfi as usize)
        .copied()
        .ok_or_else(|| Error::invalid(format!("AAC sampling frequency index {sfi}")))
}

/// Parse an AudioSpecificConfig of AAC-LC, HE-AAC or HE-AACv2 (explicit signalling).
pub(crate) fn asc_info(asc: &[u8]) -> Result<AscFull> {
    let mut bits = Bits { data: asc, pos: 0 };
    let read_aot = |bits: &mut Bits<'_>| -> Result<u32> {
        let a = bits.read(5)?;
        Ok(if a == 31 { 32 + bits.read(6)? } else { a })
    };
    let signalled = read_aot(&mut bits)?;
    let core_rate = rate_of(&mut bits)?;
    let cc = bits.read(4)?;
    let (core_aot, out_rate) = if signalled == 5 || signalled == 29 {
        let ext = rate_of(&mut bits)?;
        (read_aot(&mut bits)?, ext)
    } else {
        (signalled, core_rate)
    };
    if core_aot != 2 || !matches!(signalled, 2 | 5 | 29) {
        return Err(Error::unsupported(format!(
            "AAC object type {signalled} over {core_aot} (only LC, HE-AAC and HE-AACv2)"
        )));
    }
    if bits.read(1)? != 0 {
        return Err(Error::unsupported("AAC with 960-sample frames"));
    }
    let core_channels = config_channels(cc)?;
    let out_channels = if signalled == 29 && core_channels == 1 {
        2
    } else {
        core_channels
    };
    limits::check_audio_format(core_rate, core_channels)?;
    limits::check_audio_format(out_rate, out_channels)?;
    Ok(AscFull {
        aot: signalled as u8,
        core_rate,
        core_channels,
        out_rate,
        out_channels,
    })
}

/// Parse an AudioSpecificConfig; only AAC-LC (object type 2, 1024-sample frames) is accepted.
pub(crate) fn parse_asc(asc: &[u8]) -> Result<AscInfo> {
    let mut bits = Bits { data: asc, pos: 0 };
    let mut aot = bits.read(5)?;
    if aot == 31 {
        aot = 32 + bits.read(6)?;
    }
    let sfi = bits.read(4)?;
    let sample_rate = if sfi == 15 {
        bits.read(24)?
    } else {
        *AAC_RATES
            .get(sfi as usize)
            .ok_or_else(|| Error::invalid(format!("AAC sampling frequency index {sfi}")))?
    };
    let cc = bits.read(4)?;
    if aot != 2 {
        return Err(Error::unsupported(format!(
            "AAC object type {aot} (only AAC-LC, type 2)"
        )));
    }
    let frame_length_flag = bits.read(1)?;
    if frame_length_flag != 0 {
        return Err(Error::unsupported("AAC-LC with 960-sample frames"));
    }
    let channels = config_channels(cc)?;
    limits::check_audio_format(sample_rate, channels)?;
    Ok(AscInfo {
        sample_rate,
        channels,
    })
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Result<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self
                .data
                .get(self.pos / 8)
                .ok_or_else(|| Error::invalid("AudioSpecificConfig: truncated"))?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_lc_48k_stereo() {
        assert_eq!(
            parse_asc(&[0x11, 0x90]).unwrap(),
            AscInfo {
                sample_rate: 48000,
                channels: 2
            }
        );
        assert_eq!(
            parse_asc(&[0x12, 0x08]).unwrap(),
            AscInfo {
                sample_rate: 44100,
                channels: 1
            }
        );
        // HE-AAC (object type 5) is not AAC-LC...
        assert!(matches!(
            parse_asc(&[0x2b, 0x92, 0x08, 0x00]),
            Err(Error::Unsupported(_))
        ));
        // ...but is described by asc_info: 22.05 kHz stereo core, 44.1 kHz out.
        let he = asc_info(&[0x2b, 0x92, 0x08, 0x00]).unwrap();
        assert_eq!(
            (he.aot, he.core_rate, he.out_rate, he.out_channels),
            (5, 22050, 44100, 2)
        );
        // HE-AACv2: PS over a 24 kHz mono core (AOT 29, ext 48 kHz, core AOT 2).
        let v2 = asc_info(&[0xeb, 0x09, 0x88, 0x00]).unwrap();
        assert_eq!(
            (
                v2.aot,
                v2.core_rate,
                v2.core_channels,
                v2.out_rate,
                v2.out_channels
            ),
            (29, 24000, 1, 48000, 2)
        );
        assert!(matches!(parse_asc(&[0x11]), Err(Error::Invalid(_))));
    }
}
