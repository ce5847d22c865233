//! AAC in ADTS (ISO/IEC 14496-3 §1.A.2): frames over the concatenated PES payloads, with a
//! PTS per frame and the AudioSpecificConfig the header implies.

use super::pes::Mark;
use crate::error::{Error, Result};
use crate::limits;

/// Sampling rates by `sampling_frequency_index`.
pub(crate) const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The fields of an ADTS header that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// audio object type (profile + 1).
    pub aot: u8,
    pub sf_index: u8,
    pub channel_config: u8,
    /// Whole frame, header included.
    pub frame_len: usize,
    pub header_len: usize,
    pub raw_blocks: u8,
}

impl Header {
    pub(crate) fn sample_rate(&self) -> u32 {
        RATES.get(usize::from(self.sf_index)).copied().unwrap_or(0)
    }

    /// The 2-byte AudioSpecificConfig equivalent to this header.
    pub(crate) fn asc(&self) -> [u8; 2] {
        [
            (self.aot << 3) | (self.sf_index >> 1),
            ((self.sf_index & 1) << 7) | (self.channel_config << 3),
        ]
    }

    /// Same stream configuration (used to reject false syncs).
    fn same_config(&self, o: &Header) -> bool {
        self.aot == o.aot && self.sf_index == o.sf_index && self.channel_config == o.channel_config
    }
}

/// Parse an ADTS header at the start of `b` (None if there is no valid one).
pub(crate) fn parse_header(b: &[u8]) -> Option<Header> {
    if b.len() < 7 || b[0] != 0xff || b[1] & 0xf6 != 0xf0 {
        return None;
    }
    let protection_absent = b[1] & 1 != 0;
    let aot = (b[2] >> 6) + 1;
    let sf_index = (b[2] >> 2) & 0x0f;
    let channel_config = ((b[2] & 1) << 2) | (b[3] >> 6);
    let frame_len =
        (usize::from(b[3] & 0x03) << 11) | (usize::from(b[4]) << 3) | (usize::from(b[5]) >> 5);
    let raw_blocks = b[6] & 0x03;
    let header_len = if protection_absent { 7 } else { 9 };
    if sf_index > 12 || frame_len <= header_len {
        return None;
    }
    Some(Header {
        aot,
        sf_index,
        channel_config,
        frame_len,
        header_len,
        raw_blocks,
    })
}

/// One AAC frame: raw data block location in the ES buffer and its PTS (90 kHz, 33-bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub offset: usize,
    pub size: usize,
    pub pts: u64,
}

/// Split the concatenated ADTS stream into frames.
///
/// The first frame starting at or after a PES start takes that PES's PTS; the others are
/// the previous frame's PTS plus 1024 samples at the header's rate (so frames split across
/// PES packets, and several frames per PES, are timed as ffmpeg times them). Frames before
/// the first PTS, a truncated last frame and bytes without a valid header are skipped;
/// every frame must have the first frame's configuration.
pub(crate) fn frames(es: &[u8], marks: &[Mark]) -> Result<(Option<Header>, Vec<Frame>)> {
    let mut out: Vec<Frame> = Vec::new();
    let mut first: Option<Header> = None;
    let mut pos = 0usize;
    let mut next_mark = 0usize;
    let mut pts: Option<u64> = None;
    let mut skipped = 0usize;
    // Fractional 90 kHz ticks accumulate exactly: ticks = n * 1024 * 90000 / rate.
    let mut since_mark = 0u64;
    let mut mark_pts = 0u64;
    while pos + 7 <= es.len() {
        let Some(h) = parse_header(&es[pos..]).filter(|h| first.is_none_or(|f| f.same_config(h)))
        else {
            pos += 1;
            skipped += 1;
            if skipped > limits::MAX_INPUT_BYTES {
                break;
            }
            continue;
        };
        if pos + h.frame_len > es.len() {
            break;
        }
        if h.raw_blocks != 0 {
            return Err(Error::unsupported(
                "ADTS frames with several raw data blocks",
            ));
        }
        // ADTS profile 1 (object type 2) is AAC-LC, also the core of HE-AAC; Main, SSR
        // and LTP are not handled.
        if h.aot != 2 {
            return Err(Error::unsupported(format!(
                "ADTS audio object type {} (only AAC-LC and HE-AAC over LC)",
                h.aot
            )));
        }
        if h.channel_config == 0 {
            return Err(Error::unsupported("ADTS channel configuration 0 (PCE)"));
        }
        let rate = h.sample_rate();
        // The first frame starting at/after each PES start takes its PTS.
        let mut marked = false;
        while next_mark < marks.len() && marks[next_mark].offset <= pos {
            mark_pts = marks[next_mark].pts;
            next_mark += 1;
            marked = true;
        }
        if marked {
            since_mark = 0;
            pts = Some(mark_pts);
        }
        let frame_pts = match pts {
            Some(_) => {
                (mark_pts + since_mark * 1024 * 90_000 / u64::from(rate)) % super::pes::PTS_WRAP
            }
            None => {
                // No timestamp yet: not anchored on this segment's timeline.
                pos += h.frame_len;
                continue;
            }
        };
        since_mark += 1;
        if out.len() >= limits::MAX_FRAMES {
            return Err(Error::limit(format!(
                "more than {} AAC frames in a segment",
                limits::MAX_FRAMES
            )));
        }
        let size = h.frame_len - h.header_len;
        if size > limits::MAX_AU_BYTES {
            return Err(Error::invalid(format!("AAC frame of {size} bytes")));
        }
        first.get_or_insert(h);
        out.push(Frame {
            offset: pos + h.header_len,
            size,
            pts: frame_pts,
        });
        pos += h.frame_len;
    }
    Ok((first, out))
}

#[cfg(test)]
pub(crate) fn header_bytes(h: &Header) -> [u8; 7] {
    let len = h.frame_len;
    [
        0xff,
        0xf1,
        ((h.aot - 1) << 6) | (h.sf_index << 2) | (h.channel_config >> 2),
        ((h.channel_config & 3) << 6) | ((len >> 11) as u8 & 3),
        (len >> 3) as u8,
        ((len as u8 & 7) << 5) | 0x1f,
        0xfc,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_pes_get_interpolated_pts() {
        let h = Header {
            aot: 2,
            sf_index: 3,
            channel_config: 2,
            frame_len: 7 + 20,
            header_len: 7,
            raw_blocks: 0,
        };
        assert_eq!(parse_header(&header_bytes(&h)), Some(h));
        assert_eq!(h.asc(), [0x11, 0x90]);
        let mut es = Vec::new();
        for i in 0..5u8 {
            es.extend(header_bytes(&h));
            es.extend([i; 20]);
        }
        // PES 1 at 0 (PTS 1000) holds frames 0, 1 and half of 2; PES 2 starts mid-frame 2
        // (PTS 9000): frame 3 is the first to start in it.
        let marks = [
            Mark {
                offset: 0,
                pts: 1000,
                dts: 1000,
            },
            Mark {
                offset: 27 * 2 + 10,
                pts: 9000,
                dts: 9000,
            },
        ];
        let (cfg, f) = frames(&es, &marks).unwrap();
        assert_eq!(cfg, Some(h));
        let pts: Vec<u64> = f.iter().map(|x| x.pts).collect();
        assert_eq!(pts, [1000, 2920, 4840, 9000, 10920]);
        assert_eq!(f[4].offset, 4 * 27 + 7);
        assert_eq!(es[f[4].offset], 4);
        // Truncated last frame dropped; garbage in front skipped.
        let mut g = vec![0xffu8, 0x00, 0x12];
        g.extend(&es[..es.len() - 3]);
        let marks = [Mark {
            offset: 0,
            pts: 0,
            dts: 0,
        }];
        let (_, f) = frames(&g, &marks).unwrap();
        assert_eq!(f.len(), 4);
    }
}
