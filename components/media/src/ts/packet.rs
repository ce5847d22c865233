//! Transport-stream packets (ISO/IEC 13818-1 §2.4.3): 188 bytes, sync byte 0x47.
//!
//! Resync policy: the stream must start on a sync byte with sync bytes 188 and 376 bytes
//! later (that is how [`looks_like_ts`] sniffs); a packet that loses sync later is searched
//! for again within [`limits::MAX_TS_RESYNC_SCAN`] bytes, at most [`limits::MAX_TS_RESYNCS`]
//! times. A trailing partial packet is ignored.

use crate::error::{Error, Result};
use crate::limits;

/// Bytes per packet.
pub(crate) const PACKET: usize = 188;
/// The sync byte.
pub(crate) const SYNC: u8 = 0x47;

/// Whether `data` starts like an MPEG-TS stream: sync bytes at 0, 188 and 376 (as many of
/// them as the data covers; at least one whole packet is needed).
pub(crate) fn looks_like_ts(data: &[u8]) -> bool {
    data.len() >= PACKET
        && [0, PACKET, 2 * PACKET]
            .iter()
            .filter(|&&o| o < data.len())
            .all(|&o| data.get(o) == Some(&SYNC))
}

/// One parsed packet header and its payload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Packet<'a> {
    pub pid: u16,
    /// payload_unit_start_indicator.
    pub pusi: bool,
    /// transport_scrambling_control != 0.
    pub scrambled: bool,
    /// transport_error_indicator.
    pub error: bool,
    pub payload: &'a [u8],
}

/// Parse one 188-byte packet.
pub(crate) fn parse(p: &[u8]) -> Result<Packet<'_>> {
    if p.len() != PACKET || p[0] != SYNC {
        return Err(Error::invalid("TS packet: no sync byte"));
    }
    let error = p[1] & 0x80 != 0;
    let pusi = p[1] & 0x40 != 0;
    let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
    let scrambled = p[3] >> 6 != 0;
    let afc = (p[3] >> 4) & 0x03;
    let mut start = 4usize;
    if afc & 0x02 != 0 {
        let len = usize::from(p[4]);
        start = 5 + len;
        if start > PACKET {
            return Err(Error::invalid(format!(
                "TS packet on PID {pid}: adaptation field of {len} bytes"
            )));
        }
    }
    let payload = if afc & 0x01 != 0 {
        p.get(start..).unwrap_or(&[])
    } else {
        &[]
    };
    Ok(Packet {
        pid,
        pusi,
        scrambled,
        error,
        payload,
    })
}

/// Iterator over the packets of a stream, with bounded resync.
pub(crate) struct Packets<'a> {
    data: &'a [u8],
    pos: usize,
    resyncs: usize,
}

impl<'a> Packets<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Packets {
            data,
            pos: 0,
            resyncs: 0,
        }
    }

    /// Find the next position with sync bytes at `p` and `p + 188` (or end of data).
    fn resync(&mut self) -> Result<()> {
        self.resyncs += 1;
        if self.resyncs > limits::MAX_TS_RESYNCS {
            return Err(Error::invalid(format!(
                "TS lost sync more than {} times",
                limits::MAX_TS_RESYNCS
            )));
        }
        let end = self
            .data
            .len()
            .min(self.pos.saturating_add(limits::MAX_TS_RESYNC_SCAN));
        for p in self.pos + 1..end {
            let next_ok = match self.data.get(p + PACKET) {
                Some(&b) => b == SYNC,
                None => p + PACKET == self.data.len(),
            };
            if self.data[p] == SYNC && next_ok {
                self.pos = p;
                return Ok(());
            }
        }
        Err(Error::invalid(format!(
            "TS lost sync at byte {} and found none within {} bytes",
            self.pos,
            limits::MAX_TS_RESYNC_SCAN
        )))
    }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<Packet<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos + PACKET > self.data.len() {
            return None;
        }
        if self.data[self.pos] != SYNC {
            if self.pos == 0 {
                self.pos = self.data.len();
                return Some(Err(Error::invalid("not MPEG-TS: no sync byte at 0")));
            }
            if let Err(e) = self.resync() {
                self.pos = self.data.len();
                return Some(Err(e));
            }
            if self.pos + PACKET > self.data.len() {
                return None;
            }
        }
        let p = &self.data[self.pos..self.pos + PACKET];
        self.pos += PACKET;
        Some(parse(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pid: u16, pusi: bool, afc: u8, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; PACKET];
        p[0] = SYNC;
        p[1] = (u8::from(pusi) << 6) | (pid >> 8) as u8;
        p[2] = pid as u8;
        p[3] = afc << 4;
        p
    }

    #[test]
    fn header_fields_and_adaptation() {
        let mut p = packet(0x101, true, 3, 0xaa);
        p[4] = 10;
        let h = parse(&p).unwrap();
        assert_eq!((h.pid, h.pusi, h.scrambled), (0x101, true, false));
        assert_eq!(h.payload.len(), PACKET - 15);
        // Adaptation field longer than the packet.
        p[4] = 200;
        assert!(parse(&p).is_err());
        // Adaptation only: no payload.
        let p = packet(0x44, false, 2, 0);
        assert!(parse(&p).unwrap().payload.is_empty());
    }

    #[test]
    fn sniff_and_resync() {
        let mut data = Vec::new();
        for i in 0..4 {
            data.extend(packet(i, false, 1, 0x11));
        }
        assert!(looks_like_ts(&data));
        assert!(looks_like_ts(&data[..PACKET]));
        assert!(!looks_like_ts(&data[..PACKET - 1]));
        // Three junk bytes between packets 1 and 2: resynced, every packet found.
        let mut junk = data.clone();
        junk.splice(2 * PACKET..2 * PACKET, [1u8, 2, 3]);
        let pids: Vec<u16> = Packets::new(&junk).map(|p| p.unwrap().pid).collect();
        assert_eq!(pids, [0, 1, 2, 3]);
        // No sync at the start: refused.
        let mut bad = data.clone();
        bad[0] = 0;
        assert!(Packets::new(&bad).next().unwrap().is_err());
        // Garbage after the first packet: an error, not a hang.
        let mut g = data[..PACKET].to_vec();
        g.extend(std::iter::repeat_n(0u8, 100_000));
        let r: Vec<_> = Packets::new(&g).collect();
        assert!(r.last().unwrap().is_err());
    }
}
