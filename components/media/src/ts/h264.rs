//! H.264 in Annex B (ISO/IEC 14496-10 Annex B) to AVCC access units, plus the SPS fields an
//! `avc1`/`avcC` sample entry needs.
//!
//! NAL units are found over the concatenated PES payloads, so units that overflow a PES
//! boundary come out whole. Access units start at an AUD, at SPS/PPS/SEI after a slice, or
//! at a slice with `first_mb_in_slice == 0` after a slice (§7.4.1.2.3). AUD, SPS, PPS and
//! filler data are not kept in samples (the SPS/PPS go to `avcC`, as mp4 muxers do); an
//! AU's timestamps are those of the last PES that started at or before it, and an AU that
//! shares its PES with the previous one gets the previous DTS plus the previous duration.

use super::pes::{Mark, PTS_WRAP};
use crate::error::{Error, Result};
use crate::limits;

const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SEI: u8 = 6;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const NAL_FILLER: u8 = 12;

/// One video access unit in AVCC form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Au {
    /// Location of the length-prefixed NAL units in the output buffer.
    pub offset: usize,
    pub size: usize,
    /// 33-bit DTS and PTS (90 kHz).
    pub dts: u64,
    pub pts: u64,
    pub key: bool,
}

/// The AVCC video of a segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Video {
    pub data: Vec<u8>,
    pub aus: Vec<Au>,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

/// NAL unit byte ranges (without start codes and trailing zero bytes) of an Annex B stream.
pub(crate) fn nal_units(es: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = find_start(es, 0);
    std::iter::from_fn(move || {
        let start = pos?;
        let next = find_start(es, start);
        let mut end = next.map_or(es.len(), |n| n - 3);
        while end > start && es[end - 1] == 0 {
            end -= 1;
        }
        pos = next;
        Some((start, end))
    })
}

/// The offset just after the next `00 00 01` at or after `from`.
fn find_start(es: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= es.len() {
        if es[i + 2] > 1 {
            i += 3;
        } else if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            return Some(i + 3);
        } else {
            i += 1;
        }
    }
    None
}

/// Build AVCC access units from the video elementary stream.
pub(crate) fn access_units(es: &[u8], marks: &[Mark]) -> Result<Video> {
    let mut v = Video {
        data: Vec::with_capacity(es.len()),
        ..Default::default()
    };
    // The current AU: its start in the ES, whether it has a slice, its output start.
    let mut cur: Option<(usize, bool, usize, bool)> = None;
    let mut last_mark: Option<usize> = None;
    let mut next_mark = 0usize;
    let mut prev: Option<(u64, u64, u64)> = None; // (dts, pts, duration)
    let pending_close = |v: &mut Video,
                         cur: &mut Option<(usize, bool, usize, bool)>,
                         next_mark: &mut usize,
                         last_mark: &mut Option<usize>,
                         prev: &mut Option<(u64, u64, u64)>|
     -> Result<()> {
        let Some((start, has_slice, out_start, key)) = cur.take() else {
            return Ok(());
        };
        let size = v.data.len() - out_start;
        if !has_slice || size == 0 {
            v.data.truncate(out_start);
            return Ok(());
        }
        let mut mark = None;
        while *next_mark < marks.len() && marks[*next_mark].offset <= start {
            mark = Some(*next_mark);
            *next_mark += 1;
        }
        let (dts, pts) = match (mark, *prev) {
            (Some(m), _) => {
                *last_mark = Some(m);
                (marks[m].dts, marks[m].pts)
            }
            (None, Some((d, p, dur))) => ((d + dur) % PTS_WRAP, (p + dur) % PTS_WRAP),
            // No timestamp before the first AU: not on this segment's timeline.
            (None, None) => {
                v.data.truncate(out_start);
                return Ok(());
            }
        };
        if v.aus.len() >= limits::MAX_VIDEO_SAMPLES {
            return Err(Error::limit(format!(
                "more than {} video access units",
                limits::MAX_VIDEO_SAMPLES
            )));
        }
        let dur = match *prev {
            Some((d, _, pd)) => {
                let diff = super::pes::wrap_diff(dts, d);
                if diff > 0 { diff as u64 } else { pd }
            }
            None => 3003,
        };
        *prev = Some((dts, pts, dur));
        v.aus.push(Au {
            offset: out_start,
            size,
            dts,
            pts,
            key,
        });
        Ok(())
    };
    for (s, e) in nal_units(es) {
        let Some(&hdr) = es.get(s) else { continue };
        if s >= e {
            continue;
        }
        let kind = hdr & 0x1f;
        let is_slice = kind == NAL_SLICE || kind == NAL_IDR;
        let first_mb_zero = es.get(s + 1).is_some_and(|b| b & 0x80 != 0);
        let starts_new = match cur {
            None => true,
            Some((_, has_slice, _, _)) => {
                kind == NAL_AUD
                    || (has_slice && matches!(kind, NAL_SEI | NAL_SPS | NAL_PPS | 14..=18))
                    || (has_slice && is_slice && first_mb_zero)
            }
        };
        if starts_new {
            pending_close(&mut v, &mut cur, &mut next_mark, &mut last_mark, &mut prev)?;
            cur = Some((s.saturating_sub(3), false, v.data.len(), false));
        }
        let nal = &es[s..e];
        match kind {
            NAL_SPS => {
                if nal.len() > limits::MAX_PARAM_SET_BYTES {
                    return Err(Error::invalid(format!("SPS of {} bytes", nal.len())));
                }
                if !v.sps.iter().any(|x| x == nal) {
                    if v.sps.len() >= limits::MAX_PARAM_SETS {
                        return Err(Error::limit("too many distinct SPS"));
                    }
                    v.sps.push(nal.to_vec());
                }
                continue;
            }
            NAL_PPS => {
                if nal.len() > limits::MAX_PARAM_SET_BYTES {
                    return Err(Error::invalid(format!("PPS of {} bytes", nal.len())));
                }
                if !v.pps.iter().any(|x| x == nal) {
                    if v.pps.len() >= limits::MAX_PARAM_SETS {
                        return Err(Error::limit("too many distinct PPS"));
                    }
                    v.pps.push(nal.to_vec());
                }
                continue;
            }
            NAL_AUD | NAL_FILLER => continue,
            _ => {}
        }
        if let Some(c) = cur.as_mut() {
            c.1 |= is_slice;
            // Random access: an IDR, or a recovery point SEI (open GOP), as ffmpeg's
            // parser flags keyframes.
            c.3 |= kind == NAL_IDR || (kind == NAL_SEI && sei_recovery_point(nal));
        }
        let len = u32::try_from(nal.len()).map_err(|_| Error::limit("NAL unit too large"))?;
        v.data.extend_from_slice(&len.to_be_bytes());
        v.data.extend_from_slice(nal);
    }
    pending_close(&mut v, &mut cur, &mut next_mark, &mut last_mark, &mut prev)?;
    Ok(v)
}

/// Whether an SEI NAL unit carries a recovery point message (payload type 6).
fn sei_recovery_point(nal: &[u8]) -> bool {
    let body = rbsp(nal.get(1..).unwrap_or(&[]));
    let mut pos = 0usize;
    // At most a handful of messages; each one's size is checked against the body.
    for _ in 0..16 {
        let read = |pos: &mut usize| -> Option<usize> {
            let mut v = 0usize;
            loop {
                let b = *body.get(*pos)?;
                *pos += 1;
                v += usize::from(b);
                if b != 0xff {
                    return Some(v);
                }
            }
        };
        let (Some(kind), Some(size)) = (read(&mut pos), read(&mut pos)) else {
            return false;
        };
        if kind == 6 {
            return true;
        }
        pos = match pos.checked_add(size) {
            Some(p) if p < body.len() && body[p] != 0x80 => p,
            _ => return false,
        };
    }
    false
}

/// What the sample entry needs from an SPS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpsInfo {
    pub profile: u8,
    pub compat: u8,
    pub level: u8,
    pub width: u32,
    pub height: u32,
}

/// Exp-Golomb reader over an RBSP (emulation prevention removed).
struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn bit(&mut self) -> Result<u32> {
        let b = self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| Error::invalid("SPS truncated"))?;
        let v = (b >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(v))
    }
    fn bits(&mut self, n: u32) -> Result<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }
    fn ue(&mut self) -> Result<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::invalid("SPS: Exp-Golomb code too long"));
            }
        }
        Ok(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }
    fn se(&mut self) -> Result<i32> {
        let k = self.ue()?;
        Ok(if k % 2 == 1 {
            k.div_ceil(2) as i32
        } else {
            -((k / 2) as i32)
        })
    }
}

/// Remove emulation prevention bytes (`00 00 03` → `00 00`).
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Parse profile, level and the cropped picture size from an SPS NAL unit.
pub(crate) fn parse_sps(nal: &[u8]) -> Result<SpsInfo> {
    if nal.len() < 4 || nal[0] & 0x1f != NAL_SPS {
        return Err(Error::invalid("not an SPS"));
    }
    let mut b = Bits {
        data: rbsp(&nal[1..]),
        pos: 0,
    };
    let profile = b.bits(8)? as u8;
    let compat = b.bits(8)? as u8;
    let level = b.bits(8)? as u8;
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = b.ue()?;
        if chroma_format_idc == 3 {
            b.bit()?; // separate_colour_plane_flag
        }
        b.ue()?; // bit_depth_luma_minus8
        b.ue()?; // bit_depth_chroma_minus8
        b.bit()?; // qpprime_y_zero_transform_bypass_flag
        if b.bit()? == 1 {
            let n = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..n {
                if b.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + b.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    let poc_type = b.ue()?;
    if poc_type == 0 {
        b.ue()?;
    } else if poc_type == 1 {
        b.bit()?;
        b.se()?;
        b.se()?;
        let n = b.ue()?;
        if n > 255 {
            return Err(Error::invalid("SPS: too many ref frames in POC cycle"));
        }
        for _ in 0..n {
            b.se()?;
        }
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?; // gaps_in_frame_num_value_allowed_flag
    let w_mbs = u64::from(b.ue()?) + 1;
    let h_map = u64::from(b.ue()?) + 1;
    let frame_mbs_only = u64::from(b.bit()?);
    if frame_mbs_only == 0 {
        b.bit()?; // mb_adaptive_frame_field_flag
    }
    b.bit()?; // direct_8x8_inference_flag
    let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0u64, 0u64, 0u64);
    if b.bit()? == 1 {
        cl = u64::from(b.ue()?);
        cr = u64::from(b.ue()?);
        ct = u64::from(b.ue()?);
        cb = u64::from(b.ue()?);
    }
    let (cx, cy) = match chroma_format_idc {
        0 | 3 => (1, 2 - frame_mbs_only),
        2 => (2, 2 - frame_mbs_only),
        _ => (2, 2 * (2 - frame_mbs_only)),
    };
    let w = (w_mbs * 16).saturating_sub(cx * (cl + cr));
    let h = ((2 - frame_mbs_only) * h_map * 16).saturating_sub(cy * (ct + cb));
    if w == 0 || h == 0 || w > 16384 || h > 16384 {
        return Err(Error::invalid(format!("SPS: picture {w}x{h}")));
    }
    Ok(SpsInfo {
        profile,
        compat,
        level,
        width: w as u32,
        height: h as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_scan_strips_start_codes_and_trailing_zeros() {
        let es = [
            0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x65, 0x88, 0, 0, 0, 0, 1, 0x41, 0x9a,
        ];
        let nals: Vec<&[u8]> = nal_units(&es).map(|(s, e)| &es[s..e]).collect();
        assert_eq!(nals, [&[9u8, 0xf0][..], &[0x65, 0x88], &[0x41, 0x9a]]);
    }

    #[test]
    fn aus_split_on_aud_and_nal_overflowing_a_pes() {
        // AU 1: AUD SPS PPS IDR; AU 2: AUD slice whose bytes continue into the next PES.
        let sps = *b"\x67B\xc0\x1f\xda\x01@\x16\xec\x04@\0\0\x03\0@\0\0\x0c#\xc6\x0c\xa8";
        let mut es = vec![0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1];
        es.extend(sps);
        es.extend([
            0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 0, 1, 0x65, 0x88, 0x84,
        ]);
        let second = es.len();
        es.extend([0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x41, 0x9a, 0x11]);
        let split = es.len();
        es.extend([0x22, 0x33]); // the overflow: the next PES starts mid-NAL
        es.extend([0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x41, 0x9b, 0x01]);
        let marks = [
            Mark {
                offset: 0,
                pts: 9000,
                dts: 6000,
            },
            Mark {
                offset: second,
                pts: 12000,
                dts: 9000,
            },
            Mark {
                offset: split,
                pts: 15000,
                dts: 12000,
            },
        ];
        let v = access_units(&es, &marks).unwrap();
        assert_eq!(v.sps, [sps.to_vec()]);
        assert_eq!(v.pps, [vec![0x68, 0xce, 0x3c, 0x80]]);
        assert_eq!(v.aus.len(), 3);
        let au = |i: usize| &v.data[v.aus[i].offset..v.aus[i].offset + v.aus[i].size];
        assert_eq!(au(0), [0, 0, 0, 3, 0x65, 0x88, 0x84]);
        assert_eq!(au(1), [0, 0, 0, 5, 0x41, 0x9a, 0x11, 0x22, 0x33]);
        assert_eq!(au(2), [0, 0, 0, 3, 0x41, 0x9b, 0x01]);
        assert_eq!(
            v.aus
                .iter()
                .map(|a| (a.dts, a.pts, a.key))
                .collect::<Vec<_>>(),
            [
                (6000, 9000, true),
                (9000, 12000, false),
                (12000, 15000, false)
            ]
        );
        let info = parse_sps(&sps).unwrap();
        assert_eq!((info.profile, info.compat, info.level), (66, 0xc0, 31));
        assert_eq!((info.width, info.height), (1280, 720));
    }
}
