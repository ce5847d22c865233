//! Line-oriented, bounded HLS playlist parser that keeps every line.
//!
//! Lines are classified (blank, comment, tag, URI) and borrowed from the input, so a rewriter
//! can emit every line it does not touch byte for byte. Attribute lists are parsed on demand.

use crate::{Error, Result};

/// Largest playlist accepted, in bytes.
pub const MAX_PLAYLIST_BYTES: usize = 4 << 20;
/// Most lines accepted.
pub const MAX_LINES: usize = 100_000;
/// Longest line accepted, in bytes.
pub const MAX_LINE_LEN: usize = 64 << 10;
/// Most attributes accepted in one attribute list.
pub const MAX_ATTRS: usize = 512;

/// Master (multivariant) or media playlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Has EXT-X-STREAM-INF, EXT-X-I-FRAME-STREAM-INF or EXT-X-MEDIA.
    Master,
    /// Has segments (EXTINF) or only media-playlist tags.
    Media,
}

/// One playlist line, borrowed from the input (without its line terminator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// Empty or whitespace only.
    Blank(&'a str),
    /// A `#` line that is not a tag.
    Comment(&'a str),
    /// `#EXT...` line: `name` excludes the `#`, `value` is what follows the first `:`.
    Tag {
        /// The whole line as received.
        raw: &'a str,
        /// Tag name, e.g. `EXT-X-MEDIA`.
        name: &'a str,
        /// Text after the first `:`, if any.
        value: Option<&'a str>,
    },
    /// A URI line (segment or variant stream).
    Uri {
        /// The whole line as received.
        raw: &'a str,
        /// The URI, trimmed.
        uri: &'a str,
    },
}

impl<'a> Line<'a> {
    /// The line exactly as received.
    pub fn raw(&self) -> &'a str {
        match *self {
            Line::Blank(r) | Line::Comment(r) => r,
            Line::Tag { raw, .. } | Line::Uri { raw, .. } => raw,
        }
    }
}

/// A parsed playlist.
#[derive(Clone, Debug)]
pub struct Playlist<'a> {
    /// Every line, in order (the `#EXTM3U` header included).
    pub lines: Vec<Line<'a>>,
    /// Master or media.
    pub kind: Kind,
}

/// Parse a playlist from untrusted bytes.
pub fn parse(input: &[u8]) -> Result<Playlist<'_>> {
    if input.len() > MAX_PLAYLIST_BYTES {
        return Err(Error::Playlist(format!(
            "larger than {MAX_PLAYLIST_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(input).map_err(|_| Error::Playlist("not UTF-8".into()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut lines = Vec::new();
    let mut seen_header = false;
    let (mut master, mut media) = (false, false);
    for raw in split_lines(text) {
        if lines.len() >= MAX_LINES {
            return Err(Error::Playlist(format!("more than {MAX_LINES} lines")));
        }
        if raw.len() > MAX_LINE_LEN {
            return Err(Error::Playlist(format!(
                "line longer than {MAX_LINE_LEN} bytes"
            )));
        }
        let t = raw.trim();
        let line = if t.is_empty() {
            Line::Blank(raw)
        } else if t.starts_with("#EXT") {
            let full = &t[1..];
            let (name, value) = match full.split_once(':') {
                Some((n, v)) => (n, Some(v)),
                None => (full, None),
            };
            Line::Tag { raw, name, value }
        } else if t.starts_with('#') {
            Line::Comment(raw)
        } else {
            Line::Uri { raw, uri: t }
        };
        if !seen_header {
            match line {
                Line::Blank(_) => {}
                Line::Tag { name: "EXTM3U", .. } => seen_header = true,
                _ => return Err(Error::Playlist("missing #EXTM3U header".into())),
            }
        }
        if let Line::Tag { name, .. } = line {
            match name {
                "EXT-X-STREAM-INF" | "EXT-X-I-FRAME-STREAM-INF" | "EXT-X-MEDIA" => master = true,
                "EXTINF" | "EXT-X-TARGETDURATION" | "EXT-X-MEDIA-SEQUENCE" => media = true,
                _ => {}
            }
        }
        lines.push(line);
    }
    if !seen_header {
        return Err(Error::Playlist("missing #EXTM3U header".into()));
    }
    if master && media {
        return Err(Error::Playlist(
            "both master and media playlist tags".into(),
        ));
    }
    let kind = if master { Kind::Master } else { Kind::Media };
    Ok(Playlist { lines, kind })
}

/// Split on `\n`, `\r\n` or a lone `\r`; a final terminator does not start an extra line.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(['\n', '\r']) {
            Some(i) => {
                let line = &rest[..i];
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
                Some(line)
            }
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
        }
    })
}

/// One `NAME=value` of an attribute list; `value` is raw (quotes kept if quoted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Attribute name.
    pub name: &'a str,
    /// Raw value, with its quotes if it is a quoted string.
    pub value: &'a str,
}

impl<'a> Attr<'a> {
    /// Whether the value is a quoted string.
    pub fn is_quoted(&self) -> bool {
        self.value.len() >= 2 && self.value.starts_with('"') && self.value.ends_with('"')
    }

    /// The value without surrounding quotes.
    pub fn text(&self) -> &'a str {
        if self.is_quoted() {
            &self.value[1..self.value.len() - 1]
        } else {
            self.value
        }
    }
}

/// Parse an attribute list (`A=1,B="x,y",C=z`). Commas inside quoted strings are kept.
pub fn parse_attrs(s: &str) -> Result<Vec<Attr<'_>>> {
    let bad = |why: &str| Error::Playlist(format!("bad attribute list: {why}"));
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        if out.len() >= MAX_ATTRS {
            return Err(bad("too many attributes"));
        }
        let eq = rest.find('=').ok_or_else(|| bad("missing '='"))?;
        let name = rest[..eq].trim();
        if name.is_empty() || name.contains(',') || name.contains('"') {
            return Err(bad("bad attribute name"));
        }
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| bad("unterminated quoted string"))?;
            let value = &after[..end + 2];
            (value, after[end + 2..].trim_start())
        } else {
            match after.find(',') {
                Some(c) => (after[..c].trim(), &after[c..]),
                None => (after.trim(), ""),
            }
        };
        out.push(Attr { name, value });
        rest = match tail.strip_prefix(',') {
            Some(t) => t.trim_start(),
            None if tail.is_empty() => "",
            None => return Err(bad("junk after value")),
        };
    }
    Ok(out)
}

/// Unquoted value of the first attribute with this name.
pub fn attr<'a>(attrs: &[Attr<'a>], name: &str) -> Option<&'a str> {
    attrs.iter().find(|a| a.name == name).map(|a| a.text())
}

/// Write an attribute list from name / raw-value pairs.
pub fn write_attrs<S: AsRef<str>>(attrs: &[(&str, S)]) -> String {
    let mut out = String::new();
    for (i, (n, v)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(n);
        out.push('=');
        out.push_str(v.as_ref());
    }
    out
}

/// Duration of an `EXTINF` value (`6.006,title`), if it is a finite non-negative number.
pub fn extinf_duration(value: &str) -> Option<f64> {
    let d = value.split(',').next()?.trim();
    let d: f64 = d.parse().ok()?;
    (d.is_finite() && d >= 0.0).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_lines_and_keeps_them() {
        let src = "\u{feff}#EXTM3U\r\n#EXT-X-VERSION:7\r\n\r\n# a comment\n#EXTINF:6.0,\nseg 1.m4s\r#EXT-X-ENDLIST";
        let p = parse(src.as_bytes()).unwrap();
        assert_eq!(p.kind, Kind::Media);
        assert_eq!(
            p.lines,
            vec![
                Line::Tag {
                    raw: "#EXTM3U",
                    name: "EXTM3U",
                    value: None
                },
                Line::Tag {
                    raw: "#EXT-X-VERSION:7",
                    name: "EXT-X-VERSION",
                    value: Some("7")
                },
                Line::Blank(""),
                Line::Comment("# a comment"),
                Line::Tag {
                    raw: "#EXTINF:6.0,",
                    name: "EXTINF",
                    value: Some("6.0,")
                },
                Line::Uri {
                    raw: "seg 1.m4s",
                    uri: "seg 1.m4s"
                },
                Line::Tag {
                    raw: "#EXT-X-ENDLIST",
                    name: "EXT-X-ENDLIST",
                    value: None
                },
            ]
        );
    }

    #[test]
    fn detects_master() {
        let p = parse(b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n").unwrap();
        assert_eq!(p.kind, Kind::Master);
        assert_eq!(p.lines.len(), 3);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(parse(b""), Err(Error::Playlist(_))));
        assert!(matches!(parse(b"hello\n#EXTM3U"), Err(Error::Playlist(_))));
        assert!(matches!(
            parse(b"#EXTM3U\n\xff\xfe"),
            Err(Error::Playlist(_))
        ));
        assert!(matches!(
            parse(b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n#EXTINF:1,\ns.ts"),
            Err(Error::Playlist(_))
        ));
        let long = format!("#EXTM3U\n{}\n", "a".repeat(MAX_LINE_LEN + 1));
        assert!(matches!(parse(long.as_bytes()), Err(Error::Playlist(_))));
        let many = format!("#EXTM3U\n{}", "\n".repeat(MAX_LINES + 1));
        assert!(matches!(parse(many.as_bytes()), Err(Error::Playlist(_))));
        let huge = vec![b'#'; MAX_PLAYLIST_BYTES + 1];
        assert!(matches!(parse(&huge), Err(Error::Playlist(_))));
    }

    #[test]
    fn attribute_lists() {
        let a = parse_attrs(r#"TYPE=AUDIO,GROUP-ID="aac",NAME="A, B",CODECS="mp4a.40.2,avc1.4d401f", DEFAULT=YES,BANDWIDTH=123"#).unwrap();
        let names: Vec<_> = a.iter().map(|a| a.name).collect();
        assert_eq!(
            names,
            ["TYPE", "GROUP-ID", "NAME", "CODECS", "DEFAULT", "BANDWIDTH"]
        );
        assert_eq!(attr(&a, "NAME"), Some("A, B"));
        assert_eq!(attr(&a, "CODECS"), Some("mp4a.40.2,avc1.4d401f"));
        assert_eq!(a[2].value, "\"A, B\"");
        assert_eq!(attr(&a, "DEFAULT"), Some("YES"));
        assert_eq!(attr(&a, "BANDWIDTH"), Some("123"));
        assert_eq!(attr(&a, "URI"), None);
        let pairs: Vec<(&str, &str)> = a.iter().map(|a| (a.name, a.value)).collect();
        assert_eq!(
            write_attrs(&pairs),
            r#"TYPE=AUDIO,GROUP-ID="aac",NAME="A, B",CODECS="mp4a.40.2,avc1.4d401f",DEFAULT=YES,BANDWIDTH=123"#
        );
        assert!(parse_attrs(r#"URI="x"#).is_err());
        assert!(parse_attrs("NOVALUE").is_err());
        assert!(parse_attrs(r#"A="x"junk"#).is_err());
        assert_eq!(parse_attrs("").unwrap(), vec![]);
        assert_eq!(parse_attrs(r#"A="""#).unwrap()[0].text(), "");
    }

    #[test]
    fn extinf() {
        assert_eq!(extinf_duration("6.006,title, with comma"), Some(6.006));
        assert_eq!(extinf_duration("10"), Some(10.0));
        assert_eq!(extinf_duration("-1,"), None);
        assert_eq!(extinf_duration("NaN,"), None);
        assert_eq!(extinf_duration("inf"), None);
        assert_eq!(extinf_duration("abc"), None);
    }
}
