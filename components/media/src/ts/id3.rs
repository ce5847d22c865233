//! ID3v2 tags in front of packed audio (HLS §3.4: raw ADTS segments carry their first
//! timestamp in a `PRIV` frame owned by `com.apple.streaming.transportStreamTimestamp`).

/// Owner of the HLS timestamp `PRIV` frame.
const TIMESTAMP_OWNER: &[u8] = b"com.apple.streaming.transportStreamTimestamp\0";

/// A tag at the start of `data`: (its total length, the HLS timestamp if it has one).
pub(crate) fn parse_tag(data: &[u8]) -> Option<(usize, Option<u64>)> {
    if data.len() < 10 || &data[..3] != b"ID3" {
        return None;
    }
    let version = data[3];
    let flags = data[5];
    let syncsafe = |b: &[u8]| -> Option<usize> {
        if b.iter().any(|x| x & 0x80 != 0) {
            return None;
        }
        Some(b.iter().fold(0usize, |a, &x| (a << 7) | usize::from(x)))
    };
    let size = syncsafe(&data[6..10])?;
    let footer = if flags & 0x10 != 0 { 10 } else { 0 };
    let total = 10 + size + footer;
    let body = data.get(10..(10 + size).min(data.len()))?;
    let mut pos = 0usize;
    if flags & 0x40 != 0 {
        // Extended header: its size is syncsafe in v2.4 and plain in v2.3.
        let b = body.get(..4)?;
        let n = if version >= 4 {
            syncsafe(b)?
        } else {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize + 4
        };
        pos = n;
    }
    let mut ts = None;
    while pos + 10 <= body.len() {
        let id = &body[pos..pos + 4];
        if id[0] == 0 {
            break; // padding
        }
        let b = &body[pos + 4..pos + 8];
        let n = if version >= 4 {
            syncsafe(b)?
        } else {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        };
        let frame = body.get(pos + 10..pos + 10 + n)?;
        if id == b"PRIV"
            && let Some(rest) = frame.strip_prefix(TIMESTAMP_OWNER)
            && rest.len() >= 8
        {
            let v = u64::from_be_bytes([
                rest[0], rest[1], rest[2], rest[3], rest[4], rest[5], rest[6], rest[7],
            ]);
            ts = Some(v & (super::pes::PTS_WRAP - 1));
        }
        pos += 10 + n;
    }
    Some((total, ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_timestamp_priv() {
        let mut frame = TIMESTAMP_OWNER.to_vec();
        frame.extend(0x1_0000_0d99u64.to_be_bytes());
        let mut tag = b"ID3\x04\x00\x00".to_vec();
        let size = 10 + frame.len();
        tag.extend([0, 0, (size >> 7) as u8, (size & 0x7f) as u8]);
        tag.extend(b"PRIV");
        tag.extend([0, 0, 0, frame.len() as u8, 0, 0]);
        tag.extend(&frame);
        tag.extend([0xff, 0xf1]);
        assert_eq!(parse_tag(&tag), Some((10 + size, Some(0x1_0000_0d99))));
        // Truncated frame, bad syncsafe size, no tag.
        assert_eq!(parse_tag(&tag[..30]), None);
        let mut bad = tag.clone();
        bad[8] = 0x80;
        assert_eq!(parse_tag(&bad), None);
        assert_eq!(parse_tag(b"\xff\xf1\x50\x80\x00\x1f\xfc\x00\x00\x00"), None);
    }
}
