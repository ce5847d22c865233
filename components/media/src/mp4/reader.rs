//! Bounded big-endian reading and box-header walking over untrusted bytes.
//!
//! Nothing here indexes blindly: every read is checked against the remaining bytes, every box
//! size against its parent, and the walkers cap the number of boxes per level.

use crate::error::{Error, Result};
use crate::limits::MAX_BOXES_PER_LEVEL;

/// A cursor over a byte slice whose reads fail instead of panicking.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `data`; `what` names the structure in error messages.
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Reader { data, pos: 0, what }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| Error::invalid(format!("{}: truncated", self.what)))?;
        let out = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| Error::invalid(self.what))?;
        self.pos = end;
        Ok(out)
    }

    /// Skip `n` bytes.
    pub(crate) fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    /// The rest of the data.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.data.get(self.pos..).unwrap_or(&[]);
        self.pos = self.data.len();
        out
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?.first().copied().unwrap_or(0))
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A full box's version and flags.
    pub(crate) fn version_flags(&mut self) -> Result<(u8, u32)> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
}

/// One box inside a parent: its FourCC, body and where it sits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BoxRef<'a> {
    /// The FourCC.
    pub kind: [u8; 4],
    /// The body (after the header).
    pub body: &'a [u8],
    /// Offset of the box start, relative to the buffer the walk started on.
    pub start: usize,
    /// Total size including the header.
    pub size: usize,
}

impl BoxRef<'_> {
    /// Offset of the first body byte, relative to the walked buffer.
    pub(crate) fn body_start(&self) -> usize {
        self.start + (self.size - self.body.len())
    }
}

/// Render a FourCC for messages (non-printable bytes escaped).
pub(crate) fn fourcc(kind: [u8; 4]) -> String {
    kind.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

/// Split `data` (which starts at offset `base` in the walked buffer) into its boxes.
///
/// The boxes must tile `data` exactly; a size of 0 means "to the end". At most
/// [`MAX_BOXES_PER_LEVEL`] boxes are accepted.
pub(crate) fn children(data: &[u8], base: usize) -> Result<Vec<BoxRef<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        if out.len() >= MAX_BOXES_PER_LEVEL {
            return Err(Error::limit(format!(
                "more than {MAX_BOXES_PER_LEVEL} boxes in one container"
            )));
        }
        let rest = data.get(pos..).unwrap_or(&[]);
        let mut r = Reader::new(rest, "box header");
        let size32 = r.u32()?;
        let kind_b = r.bytes(4)?;
        let kind = [kind_b[0], kind_b[1], kind_b[2], kind_b[3]];
        let (size, header) = match size32 {
            0 => (rest.len(), 8usize),
            1 => {
                let large = r.u64()?;
                let large = usize::try_from(large).map_err(|_| {
                    Error::invalid(format!("box {}: size does not fit", fourcc(kind)))
                })?;
                (large, 16usize)
            }
            n => (n as usize, 8usize),
        };
        if size < header || size > rest.len() {
            return Err(Error::invalid(format!(
                "box {} at {}: size {} outside its parent ({} bytes left)",
                fourcc(kind),
                base + pos,
                size,
                rest.len()
            )));
        }
        let body = rest
            .get(header..size)
            .ok_or_else(|| Error::invalid("box body"))?;
        out.push(BoxRef {
            kind,
            body,
            start: base + pos,
            size,
        });
        pos += size;
    }
    Ok(out)
}

/// The only child of kind `kind`, or an error naming `parent` when it is missing or repeated.
pub(crate) fn one<'a>(boxes: &[BoxRef<'a>], kind: &[u8; 4], parent: &str) -> Result<BoxRef<'a>> {
    let mut found = boxes.iter().filter(|b| &b.kind == kind);
    let first = found
        .next()
        .ok_or_else(|| Error::invalid(format!("{parent}: missing {}", fourcc(*kind))))?;
    if found.next().is_some() {
        return Err(Error::invalid(format!(
            "{parent}: more than one {}",
            fourcc(*kind)
        )));
    }
    Ok(*first)
}

/// The first child of kind `kind`, if any.
pub(crate) fn first<'a>(boxes: &[BoxRef<'a>], kind: &[u8; 4]) -> Option<BoxRef<'a>> {
    boxes.iter().find(|b| &b.kind == kind).copied()
}

/// Walk the whole tree below `data` (as far as known container boxes go) and enforce the
/// nesting-depth limit, so deeply nested hostile input is refused before any parsing.
pub(crate) fn check_depth(data: &[u8], depth: usize) -> Result<()> {
    if depth > crate::limits::MAX_BOX_DEPTH {
        return Err(Error::limit(format!(
            "box nesting deeper than {}",
            crate::limits::MAX_BOX_DEPTH
        )));
    }
    for b in children(data, 0)? {
        if is_container(&b.kind) {
            check_depth(b.body, depth + 1)?;
        }
    }
    Ok(())
}

/// Pure container boxes (their body is a list of boxes).
pub(crate) fn is_container(kind: &[u8; 4]) -> bool {
    matches!(
        kind,
        b"moov"
            | b"trak"
            | b"mdia"
            | b"minf"
            | b"stbl"
            | b"mvex"
            | b"moof"
            | b"traf"
            | b"edts"
            | b"dinf"
            | b"sinf"
            | b"schi"
            | b"mfra"
            | b"udta"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_boxes_and_rejects_overruns() {
        let mut data = Vec::new();
        data.extend_from_slice(&12u32.to_be_bytes());
        data.extend_from_slice(b"free");
        data.extend_from_slice(&[1, 2, 3, 4]);
        data.extend_from_slice(&8u32.to_be_bytes());
        data.extend_from_slice(b"skip");
        let boxes = children(&data, 100).unwrap();
        assert_eq!(boxes.len(), 2);
        assert_eq!(&boxes[0].kind, b"free");
        assert_eq!(boxes[0].body, &[1, 2, 3, 4]);
        assert_eq!(boxes[1].start, 112);
        assert_eq!(boxes[1].body_start(), 120);

        let mut bad = data.clone();
        bad[3] = 200;
        assert!(matches!(children(&bad, 0), Err(Error::Invalid(_))));
        let mut tiny = data.clone();
        tiny[3] = 4;
        assert!(matches!(children(&tiny, 0), Err(Error::Invalid(_))));
        assert!(matches!(children(&data[..10], 0), Err(Error::Invalid(_))));
    }

    #[test]
    fn depth_limit() {
        // 40 nested moov boxes.
        let mut data: Vec<u8> = Vec::new();
        for _ in 0..40 {
            let mut outer = ((data.len() + 8) as u32).to_be_bytes().to_vec();
            outer.extend_from_slice(b"moov");
            outer.extend_from_slice(&data);
            data = outer;
        }
        assert!(matches!(check_depth(&data, 0), Err(Error::Limit(_))));
    }

    #[test]
    fn reader_bounds() {
        let mut r = Reader::new(&[1, 2, 3], "t");
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert!(r.u16().is_err());
        assert_eq!(r.u8().unwrap(), 3);
        assert!(r.u8().is_err());
        assert!(r.bytes(usize::MAX).is_err());
    }
}
