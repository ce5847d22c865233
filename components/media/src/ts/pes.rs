//! PES packets (ISO/IEC 13818-1 §2.4.3.6): reassembly per PID and PTS/DTS.

use crate::error::{Error, Result};
use crate::limits;

/// The 33-bit timestamp modulus.
pub(crate) const PTS_WRAP: u64 = 1 << 33;

/// Header fields of one PES packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PesHeader {
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    /// Offset of the payload in the PES packet.
    pub payload_start: usize,
}

fn timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | (u64::from(b[2]) >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4]) >> 1
}

/// Parse a PES header (packet start code, stream id, optional header with PTS/DTS).
pub(crate) fn parse_header(pes: &[u8]) -> Result<PesHeader> {
    if pes.len() < 6 || pes[..3] != [0, 0, 1] {
        return Err(Error::invalid("PES: no packet start code"));
    }
    let stream_id = pes[3];
    // Stream ids without the optional header (padding, private 2, ECM/EMM, directory...).
    if matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    ) {
        return Ok(PesHeader {
            pts: None,
            dts: None,
            payload_start: 6,
        });
    }
    if pes.len() < 9 {
        return Err(Error::invalid("PES: header truncated"));
    }
    if pes[6] & 0x30 != 0 {
        return Err(Error::Encrypted("PES_scrambling_control is set".into()));
    }
    let flags = pes[7] >> 6;
    let header_len = usize::from(pes[8]);
    let payload_start = 9 + header_len;
    if payload_start > pes.len() {
        return Err(Error::invalid("PES: header longer than the packet"));
    }
    let h = &pes[9..payload_start];
    let (pts, dts) = match flags {
        2 if h.len() >= 5 => (Some(timestamp(&h[..5])), None),
        3 if h.len() >= 10 => (Some(timestamp(&h[..5])), Some(timestamp(&h[5..10]))),
        0 | 1 => (None, None),
        _ => return Err(Error::invalid("PES: PTS/DTS flags past the header")),
    };
    Ok(PesHeader {
        pts,
        dts,
        payload_start,
    })
}

/// One elementary stream's payload bytes, concatenated over PES packets, with the PES
/// timestamps marked at the ES offset where each PES payload starts.
#[derive(Default, Debug)]
pub(crate) struct EsBuf {
    pub data: Vec<u8>,
    /// (offset in `data`, PTS, DTS) for each PES that carried a PTS.
    pub marks: Vec<Mark>,
    /// The PES being reassembled.
    pes: Vec<u8>,
    max_pes: usize,
}

/// Timestamps of a PES packet and where its payload starts in the elementary stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    pub offset: usize,
    pub pts: u64,
    pub dts: u64,
}

impl EsBuf {
    pub(crate) fn new(max_pes: usize) -> Self {
        EsBuf {
            max_pes,
            ..Default::default()
        }
    }

    /// Feed one TS packet payload of this PID.
    pub(crate) fn push(&mut self, pusi: bool, payload: &[u8]) -> Result<()> {
        if pusi {
            self.flush()?;
        } else if self.pes.is_empty() {
            // Continuation of a PES that started before this segment: nothing to anchor it.
            return Ok(());
        }
        if self.pes.len() + payload.len() > self.max_pes {
            return Err(Error::limit(format!(
                "PES packet over {} bytes",
                self.max_pes
            )));
        }
        self.pes.extend_from_slice(payload);
        Ok(())
    }

    /// Finish the PES being reassembled (call at end of stream).
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.pes.is_empty() {
            return Ok(());
        }
        let h = parse_header(&self.pes);
        let h = match h {
            Ok(h) => h,
            Err(e @ Error::Encrypted(_)) => return Err(e),
            // A damaged PES is dropped, like a decoder would.
            Err(_) => {
                self.pes.clear();
                return Ok(());
            }
        };
        if self.data.len() + self.pes.len() > limits::MAX_INPUT_BYTES {
            return Err(Error::limit(
                "elementary stream larger than the input limit",
            ));
        }
        if let Some(pts) = h.pts {
            if self.marks.len() >= limits::MAX_PES_PER_STREAM {
                return Err(Error::limit(format!(
                    "more than {} PES packets in one stream",
                    limits::MAX_PES_PER_STREAM
                )));
            }
            self.marks.push(Mark {
                offset: self.data.len(),
                pts,
                dts: h.dts.unwrap_or(pts),
            });
        }
        self.data
            .extend_from_slice(self.pes.get(h.payload_start..).unwrap_or(&[]));
        self.pes.clear();
        Ok(())
    }
}

/// Signed difference `t - reference` of two 33-bit timestamps, taking the short way round.
pub(crate) fn wrap_diff(t: u64, reference: u64) -> i64 {
    let d = (t.wrapping_sub(reference)) & (PTS_WRAP - 1);
    if d >= PTS_WRAP / 2 {
        d as i64 - PTS_WRAP as i64
    } else {
        d as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts_bytes(prefix: u8, t: u64) -> [u8; 5] {
        [
            (prefix << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1,
            (t >> 22) as u8,
            (((t >> 15) as u8) << 1) | 1,
            (t >> 7) as u8,
            ((t as u8) << 1) | 1,
        ]
    }

    #[test]
    fn pts_dts_parse_and_wrap() {
        let pts = PTS_WRAP - 3;
        let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0xc0, 10];
        pes.extend(ts_bytes(3, pts));
        pes.extend(ts_bytes(1, 1234));
        pes.extend([9, 9]);
        let h = parse_header(&pes).unwrap();
        assert_eq!((h.pts, h.dts, h.payload_start), (Some(pts), Some(1234), 19));
        assert_eq!(wrap_diff(5, PTS_WRAP - 3), 8);
        assert_eq!(wrap_diff(PTS_WRAP - 3, 5), -8);
        // Scrambled PES is encrypted, a header past the end is invalid.
        let mut s = pes.clone();
        s[6] |= 0x10;
        assert!(matches!(parse_header(&s), Err(Error::Encrypted(_))));
        let mut s = pes.clone();
        s[8] = 200;
        assert!(matches!(parse_header(&s), Err(Error::Invalid(_))));

        let mut es = EsBuf::new(1000);
        es.push(false, &[1, 2, 3]).unwrap(); // orphan continuation
        es.push(true, &pes[..12]).unwrap();
        es.push(false, &pes[12..]).unwrap();
        es.push(true, &pes).unwrap();
        es.flush().unwrap();
        assert_eq!(es.data, [9, 9, 9, 9]);
        assert_eq!(es.marks.len(), 2);
        assert_eq!(es.marks[1].offset, 2);
        assert!(es.push(true, &[0; 2000]).is_err());
    }
}
