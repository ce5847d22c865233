//! MPEG-TS demux (ISO/IEC 13818-1) for HLS segments: AAC in ADTS and H.264 in Annex B.
//!
//! One module per layer: [`packet`] (188-byte packets, sync), [`psi`] (PAT/PMT), [`pes`]
//! (PES reassembly, PTS/DTS), [`adts`] (AAC frames) and [`h264`] (access units to AVCC).
//! Timestamps are unwrapped within the segment relative to its first audio PTS; the
//! caller adds whole wraps between segments (see [`crate::pts_wrapped`]).

pub(crate) mod adts;
pub(crate) mod h264;
pub(crate) mod id3;
pub(crate) mod packet;
pub(crate) mod pes;
pub(crate) mod psi;

use crate::error::{Error, Result};
use crate::limits;

/// One AAC frame of a TS segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AudioFrame {
    pub offset: usize,
    pub size: usize,
    /// PTS (90 kHz), unwrapped relative to the segment's first audio PTS.
    pub pts: i64,
}

/// One AVCC video sample of a TS segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VideoSample {
    pub offset: usize,
    pub size: usize,
    /// DTS (90 kHz), unwrapped relative to the segment's first audio PTS.
    pub dts: i64,
    /// PTS - DTS (negative when a muxer wrote PTS < DTS; trun version 1 carries it).
    pub cts: i32,
    pub key: bool,
    /// The segment's decode times were rebuilt because the carried ones do not increase
    /// (PES packets without a DTS in a stream that reorders).
    pub guessed: bool,
}

/// The video of a muxed TS segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TsVideo {
    pub data: Vec<u8>,
    pub samples: Vec<VideoSample>,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

/// A demuxed TS segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Demuxed {
    /// The ADTS elementary stream; frames point into it.
    pub audio_es: Vec<u8>,
    pub audio_cfg: adts::Header,
    pub audio: Vec<AudioFrame>,
    pub video: Option<TsVideo>,
    /// The first audio frame's PTS as carried (33-bit).
    pub first_raw_pts: u64,
    /// Packed audio (raw ADTS behind an ID3 timestamp) rather than a transport stream.
    pub packed: bool,
}

/// SAMPLE-AES stream types (HLS Sample Encryption): AAC, AC-3, H.264, E-AC-3.
const SAMPLE_AES: [u8; 4] = [0xcf, 0xc1, 0xdb, 0xc2];

/// Demux an MPEG-TS segment.
pub(crate) fn demux(data: &[u8]) -> Result<Demuxed> {
    limits::check_input_len(data.len(), "TS segment")?;
    let mut pat = psi::SectionBuf::default();
    let mut pmt = psi::SectionBuf::default();
    let mut pmt_pid: Option<u16> = None;
    let mut streams: Option<(Option<u16>, Option<u16>)> = None;
    let mut audio = pes::EsBuf::new(limits::MAX_PES_BYTES);
    let mut video = pes::EsBuf::new(limits::MAX_PES_BYTES);
    for p in packet::Packets::new(data) {
        let p = p?;
        if p.error {
            continue;
        }
        if p.pid == 0 {
            if let Some(s) = pat.push(p.pusi, p.payload) {
                pmt_pid = psi::parse_pat(&s)?.or(pmt_pid);
            }
            continue;
        }
        if Some(p.pid) == pmt_pid && streams.is_none() {
            if let Some(s) = pmt.push(p.pusi, p.payload) {
                streams = Some(select(&psi::parse_pmt(&s)?)?);
            }
            continue;
        }
        let Some((a, v)) = streams else { continue };
        let es = if Some(p.pid) == a {
            &mut audio
        } else if Some(p.pid) == v {
            &mut video
        } else {
            continue;
        };
        if p.scrambled {
            return Err(Error::Encrypted(format!(
                "TS packets on PID {} are scrambled",
                p.pid
            )));
        }
        es.push(p.pusi, p.payload)?;
    }
    let Some((audio_pid, video_pid)) = streams else {
        return Err(Error::invalid("TS segment has no PAT/PMT"));
    };
    if audio_pid.is_none() {
        return Err(Error::unsupported("TS segment has no AAC audio stream"));
    }
    audio.flush()?;
    video.flush()?;

    let (cfg, frames) = adts::frames(&audio.data, &audio.marks)?;
    let (Some(cfg), Some(first)) = (cfg, frames.first()) else {
        return Err(Error::invalid("TS segment has no AAC frames"));
    };
    let reference = first.pts;
    let unwrap = |t: u64| reference as i64 + pes::wrap_diff(t, reference);
    let audio_frames = frames
        .iter()
        .map(|f| AudioFrame {
            offset: f.offset,
            size: f.size,
            pts: unwrap(f.pts),
        })
        .collect();
    let video = match video_pid {
        None => None,
        Some(_) => {
            let v = h264::access_units(&video.data, &video.marks)?;
            if v.aus.is_empty() {
                None
            } else {
                if v.sps.is_empty() || v.pps.is_empty() {
                    return Err(Error::invalid("H.264 stream without SPS/PPS"));
                }
                // (dts, pts) unwrapped.
                let mut times: Vec<(i64, i64)> = v
                    .aus
                    .iter()
                    .map(|a| {
                        let dts = unwrap(a.dts);
                        (dts, dts + pes::wrap_diff(a.pts, a.dts))
                    })
                    .collect();
                let guessed = times.windows(2).any(|w| w[1].0 <= w[0].0);
                if guessed {
                    // Decode times that do not increase (PES packets without a DTS in a
                    // stream that reorders): rebuild them from the sorted presentation
                    // times, delayed just enough that no sample is presented before it
                    // is decoded.
                    let mut sorted: Vec<i64> = times.iter().map(|t| t.1).collect();
                    sorted.sort_unstable();
                    let delay = sorted
                        .iter()
                        .zip(&times)
                        .map(|(s, t)| s - t.1)
                        .max()
                        .unwrap_or(0)
                        .max(0);
                    for (t, s) in times.iter_mut().zip(&sorted) {
                        t.0 = s - delay;
                    }
                }
                let samples = v
                    .aus
                    .iter()
                    .zip(&times)
                    .map(|(a, &(dts, pts))| VideoSample {
                        offset: a.offset,
                        size: a.size,
                        dts,
                        cts: (pts - dts).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
                        key: a.key,
                        guessed,
                    })
                    .collect();
                Some(TsVideo {
                    data: v.data,
                    samples,
                    sps: v.sps,
                    pps: v.pps,
                })
            }
        }
    };
    Ok(Demuxed {
        audio_es: audio.data,
        audio_cfg: cfg,
        audio: audio_frames,
        video,
        first_raw_pts: reference,
        packed: false,
    })
}

/// Whether `data` looks like HLS packed audio: an ID3 tag, or an ADTS header, at 0.
pub(crate) fn looks_like_packed_audio(data: &[u8]) -> bool {
    data.starts_with(b"ID3") || adts::parse_header(data).is_some()
}

/// Demux HLS packed audio: ID3 tags (the first PRIV transportStreamTimestamp gives the
/// first frame's PTS; 0 without one) and ADTS frames.
pub(crate) fn demux_packed(data: &[u8]) -> Result<Demuxed> {
    limits::check_input_len(data.len(), "packed audio segment")?;
    let mut pos = 0usize;
    let mut pts = None;
    for _ in 0..limits::MAX_ID3_TAGS {
        let Some((len, ts)) = id3::parse_tag(&data[pos..]) else {
            break;
        };
        pts = pts.or(ts);
        pos = pos.saturating_add(len).min(data.len());
    }
    if data[pos..].starts_with(b"ID3") {
        return Err(Error::invalid(
            "packed audio: malformed or too many ID3 tags",
        ));
    }
    let es = data[pos..].to_vec();
    let first_pts = pts.unwrap_or(0);
    let marks = [pes::Mark {
        offset: 0,
        pts: first_pts,
        dts: first_pts,
    }];
    let (cfg, frames) = adts::frames(&es, &marks)?;
    let (Some(cfg), Some(_)) = (cfg, frames.first()) else {
        return Err(Error::invalid("packed audio has no ADTS frames"));
    };
    let audio = frames
        .iter()
        .map(|f| AudioFrame {
            offset: f.offset,
            size: f.size,
            pts: first_pts as i64 + pes::wrap_diff(f.pts, first_pts),
        })
        .collect();
    Ok(Demuxed {
        audio_es: es,
        audio_cfg: cfg,
        audio,
        video: None,
        first_raw_pts: first_pts,
        packed: true,
    })
}

/// Pick the audio and video PIDs from a PMT, refusing encrypted and foreign codecs.
fn select(streams: &[psi::PmtStream]) -> Result<(Option<u16>, Option<u16>)> {
    if let Some(s) = streams.iter().find(|s| SAMPLE_AES.contains(&s.stream_type)) {
        return Err(Error::Encrypted(format!(
            "SAMPLE-AES stream type 0x{:02x} on PID {}",
            s.stream_type, s.pid
        )));
    }
    let audio = streams
        .iter()
        .find(|s| s.stream_type == 0x0f)
        .map(|s| s.pid);
    let video = streams
        .iter()
        .find(|s| s.stream_type == 0x1b)
        .map(|s| s.pid);
    if audio.is_none()
        && let Some(s) = streams
            .iter()
            .find(|s| matches!(s.stream_type, 0x03 | 0x04 | 0x11 | 0x81 | 0x87))
    {
        return Err(Error::unsupported(format!(
            "TS audio stream type 0x{:02x} (only AAC in ADTS)",
            s.stream_type
        )));
    }
    if video.is_none()
        && let Some(s) = streams
            .iter()
            .find(|s| matches!(s.stream_type, 0x01 | 0x02 | 0x10 | 0x24))
    {
        return Err(Error::unsupported(format!(
            "TS video stream type 0x{:02x} (only H.264)",
            s.stream_type
        )));
    }
    Ok((audio, video))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One TS packet with `payload` (at most 184 bytes), stuffed with an adaptation field.
    pub(crate) fn packet(pid: u16, pusi: bool, scrambled: bool, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() <= 184);
        let mut p = vec![0x47, (u8::from(pusi) << 6) | (pid >> 8) as u8, pid as u8];
        let scr = if scrambled { 0x80 } else { 0 };
        if payload.len() == 184 {
            p.push(scr | 0x10);
        } else {
            p.push(scr | 0x30);
            let af = 183 - payload.len();
            p.push(af as u8);
            if af > 0 {
                p.push(0);
                p.extend(std::iter::repeat_n(0xff, af - 1));
            }
        }
        p.extend_from_slice(payload);
        assert_eq!(p.len(), 188);
        p
    }

    /// A PES with a PTS.
    pub(crate) fn pes(stream_id: u8, pts: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 1, stream_id, 0, 0, 0x80, 0x80, 5];
        v.extend([
            0x21 | (((pts >> 30) as u8 & 7) << 1),
            (pts >> 22) as u8,
            (((pts >> 15) as u8) << 1) | 1,
            (pts >> 7) as u8,
            ((pts as u8) << 1) | 1,
        ]);
        v.extend_from_slice(payload);
        v
    }

    /// PAT + PMT (streams as (type, pid)) + each PES cut into packets.
    pub(crate) fn stream(
        streams: &[(u8, u16)],
        pes_list: &[(u16, Vec<u8>)],
        scrambled: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let pat = psi::with_crc(vec![
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00,
        ]);
        let mut payload = vec![0u8];
        payload.extend(pat);
        out.extend(packet(0, true, false, &payload));
        let len = 9 + 5 * streams.len() + 4;
        let mut pmt = vec![
            0x02, 0xb0, len as u8, 0, 1, 0xc1, 0, 0, 0xe1, 0x00, 0xf0, 0x00,
        ];
        for &(t, pid) in streams {
            pmt.extend([t, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0x00]);
        }
        let mut payload = vec![0u8];
        payload.extend(psi::with_crc(pmt));
        out.extend(packet(0x1000, true, false, &payload));
        for (pid, p) in pes_list {
            for (i, chunk) in p.chunks(184).enumerate() {
                out.extend(packet(*pid, i == 0, scrambled, chunk));
            }
        }
        out
    }

    fn adts_frames(n: usize, len: usize) -> Vec<u8> {
        let h = adts::Header {
            aot: 2,
            sf_index: 3,
            channel_config: 2,
            frame_len: 7 + len,
            header_len: 7,
            raw_blocks: 0,
        };
        let mut v = Vec::new();
        for i in 0..n {
            v.extend(adts::header_bytes(&h));
            v.extend(std::iter::repeat_n(i as u8, len));
        }
        v
    }

    #[test]
    fn audio_across_pes_and_the_33_bit_wrap() {
        let frames = adts_frames(6, 300);
        // PES 1 (PTS 2^33 - 1920) ends mid-frame 2; PES 2 carries the rest, PTS wrapped.
        let cut = 2 * 307 + 100;
        let p1 = pes(0xc0, pes::PTS_WRAP - 1920, &frames[..cut]);
        let p2 = pes(0xc0, 2 * 1920 - 1920 + 1920, &frames[cut..]);
        let ts = stream(&[(0x0f, 0x101)], &[(0x101, p1), (0x101, p2)], false);
        let d = demux(&ts).unwrap();
        assert!(d.video.is_none());
        assert_eq!(d.first_raw_pts, pes::PTS_WRAP - 1920);
        let pts: Vec<i64> = d.audio.iter().map(|f| f.pts).collect();
        let w = pes::PTS_WRAP as i64;
        assert_eq!(pts, [w - 1920, w, w + 1920, w + 3840, w + 5760, w + 7680]);
        assert_eq!(d.audio_es[d.audio[2].offset], 2);
        assert_eq!(d.audio[2].size, 300);
        assert_eq!(d.audio_cfg.asc(), [0x11, 0x90]);
    }

    #[test]
    fn sample_aes_scrambling_and_foreign_codecs_are_typed() {
        let frames = adts_frames(2, 50);
        for t in SAMPLE_AES {
            let ts = stream(&[(t, 0x101)], &[(0x101, pes(0xc0, 0, &frames))], false);
            assert!(matches!(demux(&ts), Err(Error::Encrypted(_))), "0x{t:02x}");
        }
        let ts = stream(&[(0x0f, 0x101)], &[(0x101, pes(0xc0, 0, &frames))], true);
        assert!(matches!(demux(&ts), Err(Error::Encrypted(_))));
        for t in [0x03, 0x81, 0x11] {
            let ts = stream(&[(t, 0x101)], &[(0x101, pes(0xc0, 0, &frames))], false);
            assert!(
                matches!(demux(&ts), Err(Error::Unsupported(_))),
                "0x{t:02x}"
            );
        }
        let ts = stream(
            &[(0x24, 0x100), (0x0f, 0x101)],
            &[(0x101, pes(0xc0, 0, &frames))],
            false,
        );
        assert!(matches!(demux(&ts), Err(Error::Unsupported(_))));
        // ID3 (0x15) beside AAC is ignored.
        let ts = stream(
            &[(0x15, 0x102), (0x0f, 0x101)],
            &[
                (0x102, pes(0xbd, 0, b"ID3junk")),
                (0x101, pes(0xc0, 0, &frames)),
            ],
            false,
        );
        assert_eq!(demux(&ts).unwrap().audio.len(), 2);
        // No PMT at all, or no sync: invalid.
        let mut no_pmt = ts.clone();
        no_pmt.drain(188..376);
        assert!(matches!(demux(&no_pmt), Err(Error::Invalid(_))));
        assert!(matches!(demux(&[0u8; 376]), Err(Error::Invalid(_))));
    }

    #[test]
    fn too_many_streams_is_a_limit() {
        let streams: Vec<(u8, u16)> = (0..33).map(|i| (0x06, 0x200 + i)).collect();
        let ts = stream(&streams, &[], false);
        assert!(matches!(demux(&ts), Err(Error::Limit(_))));
    }
}
