//! Signed refs and the origin allowlist.
//!
//! A ref is `base64url(payload) "." base64url(HMAC-SHA256(key, payload)[..16])`, both without
//! padding, where the payload is the compact JSON of a [`RefPayload`]. The edge only serves refs it
//! signed itself, so a client cannot make it fetch an arbitrary URL.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::media::Background;
use crate::{Error, Result};

/// Longest ref (in characters) the edge signs or accepts; checked before any decoding.
pub const MAX_REF_LEN: usize = 4096;

/// Bytes of the HMAC-SHA256 tag kept in a ref.
const TAG_LEN: usize = 16;

/// What a signed ref points at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", deny_unknown_fields)]
pub enum RefPayload {
    /// A media playlist to be rewritten for a dubbed rendition.
    #[serde(rename = "p")]
    Playlist {
        /// Absolute URL of the source media playlist.
        #[serde(rename = "u")]
        url: String,
        /// Target language.
        #[serde(rename = "l")]
        lang: String,
        /// Background treatment.
        #[serde(rename = "b", with = "bg_serde")]
        bg: Background,
        /// Duck depth in dB, when not the default.
        #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
        duck_db: Option<f32>,
    },
    /// An init segment (EXT-X-MAP): served unchanged when the dubbed segments play under it
    /// (AAC-LC), otherwise rewritten (HE-AAC sources are dubbed as AAC-LC).
    #[serde(rename = "i")]
    Init {
        /// Absolute URL of the source init segment.
        #[serde(rename = "u")]
        url: String,
        /// Absolute URL of the first media segment under it: needed to rewrite the init.
        #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
        seg: Option<String>,
    },
    /// The fMP4 init segment built from an MPEG-TS segment's streams (TS sources are served as
    /// fMP4: the rewriter adds an EXT-X-MAP pointing here).
    #[serde(rename = "j")]
    BuiltInit {
        /// Absolute URL of the TS segment whose streams describe the init.
        #[serde(rename = "s")]
        seg: String,
    },
    /// A media segment to dub.
    #[serde(rename = "s")]
    Segment {
        /// Absolute URL of the source media segment.
        #[serde(rename = "u")]
        url: String,
        /// Absolute URL of its init segment; none for MPEG-TS sources.
        #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
        init: Option<String>,
        /// Absolute URL of the previous segment (none at the start or after a discontinuity).
        #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
        prev: Option<String>,
        /// Absolute URL of the next segment (none for a live playlist's last segment, before a
        /// discontinuity or a pass-through segment): its first PCM frames make the join seamless.
        #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
        /// EXTINF duration in seconds.
        #[serde(rename = "t")]
        dur: f64,
        /// The playlist is VOD (it had EXT-X-ENDLIST): every segment was signed with its
        /// successor, so the previous segment voiced sentences spilling into this one.
        #[serde(rename = "o", default, skip_serializing_if = "std::ops::Not::not")]
        vod: bool,
        /// Target language.
        #[serde(rename = "l")]
        lang: String,
        /// Background treatment.
        #[serde(rename = "b", with = "bg_serde")]
        bg: Background,
        /// Duck depth in dB, when not the default.
        #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
        duck_db: Option<f32>,
    },
}

/// `Background` as the short strings used in URLs and refs.
mod bg_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::media::Background;

    pub fn serialize<S: Serializer>(bg: &Background, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::background_name(*bg))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Background, D::Error> {
        let s = <&str>::deserialize(d)?;
        super::parse_background(s).ok_or_else(|| serde::de::Error::custom("unknown background"))
    }
}

/// The query/ref spelling of a background mode.
pub fn background_name(bg: Background) -> &'static str {
    match bg {
        Background::Duck => "duck",
        Background::Original => "original",
        Background::None => "none",
    }
}

/// Parse `duck`, `original` or `none`.
pub fn parse_background(s: &str) -> Option<Background> {
    match s {
        "duck" => Some(Background::Duck),
        "original" => Some(Background::Original),
        "none" => Some(Background::None),
        _ => None,
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// Sign a payload. Fails only if the resulting ref would exceed [`MAX_REF_LEN`].
pub fn sign(key: &[u8], payload: &RefPayload) -> Result<String> {
    let json =
        serde_json::to_vec(payload).map_err(|_| Error::BadRequest("unencodable ref".into()))?;
    let mut m = mac(key);
    m.update(&json);
    let tag = m.finalize().into_bytes();
    let mut out = URL_SAFE_NO_PAD.encode(&json);
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN]));
    if out.len() > MAX_REF_LEN {
        return Err(Error::BadRequest("ref too long".into()));
    }
    Ok(out)
}

/// Verify a ref in constant time and decode its payload.
///
/// Malformed input is [`Error::BadRequest`]; a well-formed ref with a wrong tag is
/// [`Error::BadSignature`]. The payload is only parsed after the tag verifies.
pub fn verify(key: &[u8], r: &str) -> Result<RefPayload> {
    if r.len() > MAX_REF_LEN {
        return Err(Error::BadRequest("ref too long".into()));
    }
    let (p64, t64) = r
        .split_once('.')
        .ok_or_else(|| Error::BadRequest("malformed ref".into()))?;
    // 16 bytes encode to exactly 22 characters without padding.
    if t64.len() != 22 || p64.is_empty() {
        return Err(Error::BadRequest("malformed ref".into()));
    }
    let payload = URL_SAFE_NO_PAD
        .decode(p64)
        .map_err(|_| Error::BadRequest("malformed ref".into()))?;
    let tag = URL_SAFE_NO_PAD
        .decode(t64)
        .map_err(|_| Error::BadRequest("malformed ref".into()))?;
    if tag.len() != TAG_LEN {
        return Err(Error::BadRequest("malformed ref".into()));
    }
    let mut m = mac(key);
    m.update(&payload);
    m.verify_truncated_left(&tag)
        .map_err(|_| Error::BadSignature)?;
    serde_json::from_slice(&payload).map_err(|_| Error::BadRequest("malformed ref".into()))
}

/// Whether `url` is an http(s) URL without userinfo whose origin matches one of `patterns`.
///
/// A pattern is `scheme://host[:port]`; host may be `*` (any) or start with `*.` (any subdomain,
/// not the bare domain); port may be `*`. Without a port the scheme's default port is meant.
pub fn origin_allowed(patterns: &[String], url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let scheme = u.scheme();
    if scheme != "http" && scheme != "https" {
        return false;
    }
    if !u.username().is_empty() || u.password().is_some() {
        return false;
    }
    let Some(host) = u.host_str() else {
        return false;
    };
    let Some(port) = u.port_or_known_default() else {
        return false;
    };
    patterns
        .iter()
        .any(|p| pattern_matches(p, scheme, &host.to_ascii_lowercase(), port))
}

fn pattern_matches(pattern: &str, scheme: &str, host: &str, port: u16) -> bool {
    let Some((p_scheme, rest)) = pattern.trim().split_once("://") else {
        return false;
    };
    let p_scheme = p_scheme.to_ascii_lowercase();
    if p_scheme != scheme {
        return false;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('@') {
        return false;
    }
    // Split host and port, minding IPv6 literals like `[::1]:8080`.
    let (p_host, p_port) = if let Some(after) = rest.strip_prefix('[') {
        let Some((h, tail)) = after.split_once(']') else {
            return false;
        };
        let port = match tail {
            "" => None,
            t => match t.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        (format!("[{h}]"), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    let p_host = p_host.to_ascii_lowercase();
    let port_ok = match p_port {
        Some("*") => true,
        Some(p) => p.parse::<u16>().ok() == Some(port),
        None => match scheme {
            "http" => port == 80,
            "https" => port == 443,
            _ => false,
        },
    };
    if !port_ok {
        return false;
    }
    if p_host == "*" {
        return true;
    }
    if let Some(suffix) = p_host.strip_prefix("*.") {
        return host.len() > suffix.len() + 1
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.';
    }
    host == p_host
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test-key";

    fn seg() -> RefPayload {
        RefPayload::Segment {
            url: "http://127.0.0.1:8080/a/seg2.m4s".into(),
            init: Some("http://127.0.0.1:8080/a/init.mp4".into()),
            prev: Some("http://127.0.0.1:8080/a/seg1.m4s".into()),
            next: Some("http://127.0.0.1:8080/a/seg3.m4s".into()),
            dur: 6.006,
            vod: true,
            lang: "es".into(),
            bg: Background::Duck,
            duck_db: None,
        }
    }

    #[test]
    fn round_trip_all_kinds() {
        let kinds = [
            seg(),
            RefPayload::Init {
                url: "https://o.example.com/i.mp4".into(),
                seg: None,
            },
            RefPayload::Init {
                url: "https://o.example.com/i.mp4".into(),
                seg: Some("https://o.example.com/s1.m4s".into()),
            },
            RefPayload::BuiltInit {
                seg: "https://o.example.com/s1.ts".into(),
            },
            RefPayload::Playlist {
                url: "https://o.example.com/a.m3u8?x=1&y=2".into(),
                lang: "pt-BR".into(),
                bg: Background::None,
                duck_db: Some(9.5),
            },
        ];
        for p in kinds {
            let r = sign(KEY, &p).unwrap();
            assert!(
                r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            );
            assert_eq!(verify(KEY, &r).unwrap(), p);
        }
    }

    #[test]
    fn refs_are_deterministic() {
        assert_eq!(sign(KEY, &seg()).unwrap(), sign(KEY, &seg()).unwrap());
    }

    #[test]
    fn flipped_bit_is_bad_signature() {
        let r = sign(KEY, &seg()).unwrap();
        let (p, t) = r.split_once('.').unwrap();
        // Flip one bit of the payload, re-encode: still decodable, signature must fail.
        let mut payload = URL_SAFE_NO_PAD.decode(p).unwrap();
        payload[10] ^= 0x01;
        let forged = format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), t);
        assert!(matches!(verify(KEY, &forged), Err(Error::BadSignature)));
        // Flip one bit of the tag.
        let mut tag = URL_SAFE_NO_PAD.decode(t).unwrap();
        tag[15] ^= 0x80;
        let forged = format!("{}.{}", p, URL_SAFE_NO_PAD.encode(&tag));
        assert!(matches!(verify(KEY, &forged), Err(Error::BadSignature)));
    }

    #[test]
    fn wrong_key_is_bad_signature() {
        let r = sign(KEY, &seg()).unwrap();
        assert!(matches!(verify(b"other-key", &r), Err(Error::BadSignature)));
    }

    #[test]
    fn garbage_is_bad_request() {
        for g in [
            "",
            ".",
            "abc",
            "abc.def",
            "!!!.AAAAAAAAAAAAAAAAAAAAAA",
            "a.b.c",
            "e30.%%%%%%%%%%%%%%%%%%%%%%",
        ] {
            assert!(matches!(verify(KEY, g), Err(Error::BadRequest(_))), "{g:?}");
        }
        // A correctly signed payload that is not a RefPayload is still rejected.
        let json = br#"{"k":"zz"}"#;
        let mut m = mac(KEY);
        m.update(json);
        let tag = m.finalize().into_bytes();
        let r = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json),
            URL_SAFE_NO_PAD.encode(&tag[..16])
        );
        assert!(matches!(verify(KEY, &r), Err(Error::BadRequest(_))));
    }

    #[test]
    fn oversize_is_bad_request() {
        let big = "A".repeat(MAX_REF_LEN + 1);
        assert!(matches!(verify(KEY, &big), Err(Error::BadRequest(_))));
        let long = RefPayload::Init {
            url: format!("http://127.0.0.1/{}", "x".repeat(MAX_REF_LEN)),
            seg: None,
        };
        assert!(matches!(sign(KEY, &long), Err(Error::BadRequest(_))));
    }

    #[test]
    fn origin_allowlist() {
        let pats = vec![
            "http://127.0.0.1:*".to_string(),
            "https://*.example.com".to_string(),
            "http://[::1]:8080".to_string(),
        ];
        let yes = [
            "http://127.0.0.1:8080/x.m3u8",
            "http://127.0.0.1/x.m3u8",
            "https://cdn.example.com/a/b.m3u8",
            "https://a.b.example.com:443/x",
            "HTTPS://CDN.EXAMPLE.COM/x",
            "http://[::1]:8080/x",
        ];
        let no = [
            "http://127.0.0.2:8080/",
            "http://127.0.0.1.evil.com/",
            "https://127.0.0.1:8080/x",
            "https://example.com/x",
            "https://evilexample.com/x",
            "https://cdn.example.com:8443/x",
            "http://cdn.example.com/x",
            "http://user:pw@127.0.0.1:8080/x",
            "http://user@127.0.0.1:8080/x",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
            "data:text/plain,hi",
            "/relative.m3u8",
            "http://[::1]:8081/x",
            "",
        ];
        for u in yes {
            assert!(origin_allowed(&pats, u), "{u}");
        }
        for u in no {
            assert!(!origin_allowed(&pats, u), "{u}");
        }
        assert!(!origin_allowed(&[], "http://127.0.0.1/"));
        assert!(origin_allowed(
            &["https://*:*".to_string()],
            "https://anything.net:1234/"
        ));
        assert!(!origin_allowed(
            &["https://*:*".to_string()],
            "http://anything.net/"
        ));
    }
}
