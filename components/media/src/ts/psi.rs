//! Program-specific information: PAT and PMT sections (ISO/IEC 13818-1 §2.4.4).
//!
//! Sections are reassembled per PID up to [`limits::MAX_PSI_SECTION`] bytes; a section whose
//! CRC-32 does not match is dropped (the next repetition is used).

use crate::error::{Error, Result};
use crate::limits;

/// Reassembles one PSI section from packet payloads.
#[derive(Default, Debug)]
pub(crate) struct SectionBuf {
    buf: Vec<u8>,
    active: bool,
}

impl SectionBuf {
    /// Feed a packet payload; returns a complete section (header to CRC) when one is done.
    pub(crate) fn push(&mut self, pusi: bool, payload: &[u8]) -> Option<Vec<u8>> {
        if pusi {
            let pointer = usize::from(*payload.first()?);
            self.buf.clear();
            self.buf
                .extend_from_slice(payload.get(1 + pointer..).unwrap_or(&[]));
            self.active = true;
        } else if self.active {
            if self.buf.len() + payload.len() > limits::MAX_PSI_SECTION + 188 {
                self.active = false;
                return None;
            }
            self.buf.extend_from_slice(payload);
        } else {
            return None;
        }
        if self.buf.len() < 3 {
            return None;
        }
        let len = (usize::from(self.buf[1] & 0x0f) << 8) | usize::from(self.buf[2]);
        if len > limits::MAX_PSI_SECTION - 3 {
            self.active = false;
            return None;
        }
        if self.buf.len() < 3 + len {
            return None;
        }
        self.active = false;
        let section = self.buf[..3 + len].to_vec();
        crc_ok(&section).then_some(section)
    }
}

/// CRC-32/MPEG-2 of `bytes`.
fn crc32_mpeg2(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// CRC-32/MPEG-2 over a whole section (including its CRC) is zero when intact.
fn crc_ok(section: &[u8]) -> bool {
    crc32_mpeg2(section) == 0
}

/// The section body between the 8-byte long header and the CRC, after checking the table id.
fn body(section: &[u8], table_id: u8) -> Result<&[u8]> {
    if section.first() != Some(&table_id) {
        return Err(Error::invalid(format!(
            "PSI: table id {:?}, expected {table_id}",
            section.first()
        )));
    }
    if section.len() < 12 {
        return Err(Error::invalid("PSI section too short"));
    }
    Ok(&section[8..section.len() - 4])
}

/// The PMT PID of the first program in a PAT section.
pub(crate) fn parse_pat(section: &[u8]) -> Result<Option<u16>> {
    let body = body(section, 0x00)?;
    for e in body.chunks_exact(4) {
        let program = u16::from_be_bytes([e[0], e[1]]);
        let pid = (u16::from(e[2] & 0x1f) << 8) | u16::from(e[3]);
        if program != 0 {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

/// One elementary stream declared by a PMT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PmtStream {
    pub stream_type: u8,
    pub pid: u16,
}

/// The elementary streams of a PMT section (at most [`limits::MAX_TS_STREAMS`]).
pub(crate) fn parse_pmt(section: &[u8]) -> Result<Vec<PmtStream>> {
    let body = body(section, 0x02)?;
    if body.len() < 4 {
        return Err(Error::invalid("PMT too short"));
    }
    let info_len = (usize::from(body[2] & 0x0f) << 8) | usize::from(body[3]);
    let mut pos = 4usize
        .checked_add(info_len)
        .filter(|&p| p <= body.len())
        .ok_or_else(|| Error::invalid("PMT: program_info_length past the section"))?;
    let mut out = Vec::new();
    while pos + 5 <= body.len() {
        let stream_type = body[pos];
        let pid = (u16::from(body[pos + 1] & 0x1f) << 8) | u16::from(body[pos + 2]);
        let es_len = (usize::from(body[pos + 3] & 0x0f) << 8) | usize::from(body[pos + 4]);
        pos += 5 + es_len;
        if pos > body.len() {
            return Err(Error::invalid("PMT: ES_info_length past the section"));
        }
        if out.len() >= limits::MAX_TS_STREAMS {
            return Err(Error::limit(format!(
                "PMT declares more than {} streams",
                limits::MAX_TS_STREAMS
            )));
        }
        out.push(PmtStream { stream_type, pid });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) fn with_crc(mut section: Vec<u8>) -> Vec<u8> {
    let crc = crc32_mpeg2(&section);
    section.extend_from_slice(&crc.to_be_bytes());
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat() -> Vec<u8> {
        // table 0, length 13, ts id 1, version, section 0/0, program 1 -> PID 0x1000.
        with_crc(vec![
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00,
        ])
    }

    #[test]
    fn pat_pmt_and_crc() {
        let s = pat();
        assert_eq!(parse_pat(&s).unwrap(), Some(0x1000));
        let mut buf = SectionBuf::default();
        let mut payload = vec![0u8];
        payload.extend(&s);
        assert_eq!(buf.push(true, &payload), Some(s.clone()));
        // A flipped bit fails the CRC: dropped.
        let mut bad = payload.clone();
        bad[5] ^= 1;
        assert_eq!(buf.push(true, &bad), None);
        // Split over two packets.
        assert_eq!(buf.push(true, &payload[..6]), None);
        assert_eq!(buf.push(false, &payload[6..]), Some(s));
        // PMT: PCR PID, no program info, AAC on 0x101 and H.264 on 0x100.
        let pmt = with_crc(vec![
            0x02, 0xb0, 0x17, 0x00, 0x01, 0xc1, 0x00, 0x00, 0xe1, 0x00, 0xf0, 0x00, 0x1b, 0xe1,
            0x00, 0xf0, 0x00, 0x0f, 0xe1, 0x01, 0xf0, 0x00,
        ]);
        let streams = parse_pmt(&pmt).unwrap();
        assert_eq!(
            streams,
            [
                PmtStream {
                    stream_type: 0x1b,
                    pid: 0x100
                },
                PmtStream {
                    stream_type: 0x0f,
                    pid: 0x101
                }
            ]
        );
        // ES_info_length past the end.
        let mut bad = pmt.clone();
        bad[16] = 0x40;
        let bad = with_crc(bad[..bad.len() - 4].to_vec());
        assert!(parse_pmt(&bad).is_err());
    }
}
