//! A bounded `multipart/form-data` parser (RFC 7578) for the transcription upload.

use std::fmt;

/// Most parts accepted in one body.
const MAX_PARTS: usize = 64;
/// Largest header block of one part.
const MAX_PART_HEADERS: usize = 8 * 1024;

/// One part of a `multipart/form-data` body; `data` borrows from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` of the form field.
    pub name: String,
    /// The `filename`, when the part is a file.
    pub filename: Option<String>,
    /// The part's own `Content-Type`, if given.
    pub content_type: Option<String>,
    /// The raw content.
    pub data: &'a [u8],
}

/// Why a multipart body was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// The `Content-Type` is not multipart/form-data with a valid boundary.
    BadContentType,
    /// The body does not follow the multipart syntax.
    Malformed(&'static str),
    /// More parts than [`MAX_PARTS`] or a header block over [`MAX_PART_HEADERS`].
    TooLarge(&'static str),
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadContentType => write!(f, "expected multipart/form-data with a boundary"),
            Self::Malformed(what) => write!(f, "malformed multipart body: {what}"),
            Self::TooLarge(what) => write!(f, "multipart body over limit: {what}"),
        }
    }
}

impl std::error::Error for MultipartError {}

/// Extracts the boundary from a `multipart/form-data; boundary=...` content type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut params = content_type.split(';');
    let mime = params.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::BadContentType);
    }
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            // RFC 2046 bchars: 1..=70 characters, no CR/LF, so the delimiter scan stays linear.
            let ok = !v.is_empty()
                && v.len() <= 70
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b));
            return if ok {
                Ok(v.to_owned())
            } else {
                Err(MultipartError::BadContentType)
            };
        }
    }
    Err(MultipartError::BadContentType)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay.get(i..)?.iter().position(|&b| b == first)?;
        i += off;
        if hay.get(i..i + needle.len())? == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Parses a multipart body given the request's `Content-Type`.
pub fn parse_multipart<'a>(
    content_type: &str,
    body: &'a [u8],
) -> Result<Vec<Part<'a>>, MultipartError> {
    let boundary = boundary(content_type)?;
    // Delimiters are "\r\n--boundary"; pretend the body starts after a CRLF so the first matches too.
    let dash = format!("--{boundary}");
    let delim = format!("\r\n--{boundary}");
    let mut pos = if body.starts_with(dash.as_bytes()) {
        dash.len()
    } else {
        find(body, delim.as_bytes(), 0).ok_or(MultipartError::Malformed("no boundary"))?
            + delim.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = body
            .get(pos..)
            .ok_or(MultipartError::Malformed("truncated"))?;
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding (spaces/tabs) may follow the delimiter before its CRLF.
        let pad = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if rest.get(pad..pad + 2) != Some(b"\r\n") {
            return Err(MultipartError::Malformed("delimiter not followed by CRLF"));
        }
        pos += pad + 2;
        if parts.len() == MAX_PARTS {
            return Err(MultipartError::TooLarge("too many parts"));
        }
        let hdr_end = find(body, b"\r\n\r\n", pos)
            .ok_or(MultipartError::Malformed("part headers not terminated"))?;
        if hdr_end - pos > MAX_PART_HEADERS {
            return Err(MultipartError::TooLarge("part headers"));
        }
        let headers = std::str::from_utf8(body.get(pos..hdr_end).unwrap_or_default())
            .map_err(|_| MultipartError::Malformed("part headers not UTF-8"))?;
        let data_start = hdr_end + 4;
        let data_end = find(body, delim.as_bytes(), data_start)
            .ok_or(MultipartError::Malformed("part not terminated"))?;
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            data: body.get(data_start..data_end).unwrap_or_default(),
        };
        let mut has_name = false;
        for line in headers.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let k = k.trim();
            if k.eq_ignore_ascii_case("content-disposition") {
                for param in split_params(v).into_iter().skip(1) {
                    if let Some((pk, pv)) = param.split_once('=') {
                        let pv = unquote(pv.trim());
                        match pk.trim().to_ascii_lowercase().as_str() {
                            "name" => {
                                part.name = pv;
                                has_name = true;
                            }
                            "filename" => part.filename = Some(pv),
                            _ => {}
                        }
                    }
                }
            } else if k.eq_ignore_ascii_case("content-type") {
                part.content_type = Some(v.trim().to_owned());
            }
        }
        if !has_name {
            return Err(MultipartError::Malformed("part without a name"));
        }
        parts.push(part);
        pos = data_end + delim.len();
    }
}

/// Splits a header value on `;` outside quoted strings.
fn split_params(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in v.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=\"XyZ\"";

    #[test]
    fn parses_fields_and_file() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--XY\x00\xff\r\n--XyZ--\r\n";
        let parts = parse_multipart(CT, body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "model");
        assert_eq!(parts[0].data, b"whisper-1");
        assert_eq!(parts[1].name, "file");
        assert_eq!(parts[1].filename.as_deref(), Some("a;b.wav"));
        assert_eq!(parts[1].content_type.as_deref(), Some("audio/wav"));
        assert_eq!(parts[1].data, b"RIFF\r\n--XY\x00\xff");
    }

    #[test]
    fn preamble_and_unquoted_boundary() {
        let body = b"preamble\r\n--b1\r\ncontent-disposition: form-data; name=x\r\n\r\n\r\n--b1--";
        let parts = parse_multipart("multipart/form-data;boundary=b1", body).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].name, "x");
        assert_eq!(parts[0].data, b"");
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            parse_multipart("text/plain", b""),
            Err(MultipartError::BadContentType)
        );
        assert_eq!(
            parse_multipart("multipart/form-data; boundary=", b""),
            Err(MultipartError::BadContentType)
        );
        assert!(matches!(
            parse_multipart(
                CT,
                b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nno end"
            ),
            Err(MultipartError::Malformed(_))
        ));
        assert!(matches!(
            parse_multipart(CT, b"--XyZ\r\nno headers end"),
            Err(MultipartError::Malformed(_))
        ));
        assert!(matches!(
            parse_multipart(CT, b"--XyZ"),
            Err(MultipartError::Malformed(_))
        ));
        assert!(matches!(
            parse_multipart(CT, b"--XyZ\r\nX: y\r\n\r\nd\r\n--XyZ--"),
            Err(MultipartError::Malformed(_))
        ));
        let mut many = Vec::new();
        for _ in 0..=MAX_PARTS {
            many.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n");
        }
        many.extend_from_slice(b"--XyZ--");
        assert_eq!(
            parse_multipart(CT, &many),
            Err(MultipartError::TooLarge("too many parts"))
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nabc\r\n--XyZ--";
        for n in 0..body.len() {
            assert!(parse_multipart(CT, &body[..n]).is_err(), "prefix {n}");
        }
        assert!(parse_multipart(CT, body).is_ok());
    }
}
