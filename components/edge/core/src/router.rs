//! Request → response, without sockets: the whole HTTP surface of the edge.
//!
//! Routes (GET and HEAD):
//! - `/dub/{lang}/index.m3u8?src=<url>[&bg=duck|original|none][&duck_db=<dB>]`: entry playlist
//! - `/dub/{lang}/p/{ref}.m3u8`: dubbed media playlist
//! - `/dub/{lang}/i/{ref}.mp4`: init segment (validated, passed through unchanged)
//! - `/dub/{lang}/s/{ref}.m4s`: dubbed media segment (the segment pipeline)
//! - `/healthz`
//!
//! Refs are verified and origins checked against the allowlist before any outbound request.

use std::time::{Duration, Instant};

use url::Url;

use crate::config::{Config, DEFAULT_DUCK_DB};
use crate::hls::{self, Kind, RewriteCtx};
use crate::http::{FetchLimits, HttpClient, HttpError, HttpRequest, Method};
use crate::media::{Background, MediaEngine, MediaError};
use crate::pipeline::{self, SegmentJob};
use crate::refs::{self, RefPayload};
use crate::{Error, Result};

/// Deadline for fetching a playlist or an init segment from the origin.
pub const ORIGIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest playlist fetched from the origin.
pub const MAX_PLAYLIST_FETCH: usize = hls::parse::MAX_PLAYLIST_BYTES;
/// Largest init segment fetched from the origin.
pub const MAX_INIT_FETCH: usize = 1 << 20;
/// Largest duck depth accepted in a query, dB.
pub const MAX_DUCK_DB: f32 = 60.0;

const M3U8: &str = "application/vnd.apple.mpegurl";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// An incoming request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// Path without the query, e.g. `/dub/es/index.m3u8`.
    pub path: String,
    /// Raw query without the `?` (may be empty).
    pub query: String,
}

/// A complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header name/value pairs (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for HEAD).
    pub body: Vec<u8>,
}

impl Response {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }

    fn ok(content_type: &str, cache: &str, body: Vec<u8>) -> Response {
        Response {
            status: 200,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("cache-control".into(), cache.into()),
            ],
            body,
        }
    }

    fn error(e: &Error) -> Response {
        let mut r = Response {
            status: e.status(),
            headers: vec![
                ("content-type".into(), "text/plain; charset=utf-8".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: format!("{}\n", e.public_message()).into_bytes(),
        };
        if matches!(e, Error::MethodNotAllowed) {
            r.headers.push(("allow".into(), "GET, HEAD".into()));
        }
        r
    }
}

/// Answer one request. Never panics on any input; outbound requests only go to allowed origins.
pub fn handle<H: HttpClient, M: MediaEngine>(
    req: &Request,
    cfg: &Config,
    http: &H,
    media: &M,
) -> Response {
    let started = Instant::now();
    let head = req.method == "HEAD";
    let result = if req.method == "GET" || head {
        route(req, cfg, http, media, started)
    } else {
        Err(Error::MethodNotAllowed)
    };
    let mut resp = result.unwrap_or_else(|e| Response::error(&e));
    // Players in browsers (hls.js) fetch cross-origin; every answer is public.
    resp.set_header("access-control-allow-origin", "*");
    if head {
        resp.body.clear();
    }
    resp
}

fn route<H: HttpClient, M: MediaEngine>(
    req: &Request,
    cfg: &Config,
    http: &H,
    media: &M,
    started: Instant,
) -> Result<Response> {
    if req.path == "/healthz" {
        return Ok(Response::ok(
            "text/plain; charset=utf-8",
            "no-store",
            b"ok\n".to_vec(),
        ));
    }
    let rest = req.path.strip_prefix("/dub/").ok_or(Error::NotFound)?;
    let (lang, rest) = rest.split_once('/').ok_or(Error::NotFound)?;
    if !valid_lang(lang) {
        return Err(Error::BadRequest("invalid language".into()));
    }
    if rest == "index.m3u8" {
        return entry(lang, &req.query, cfg, http);
    }
    let (kind, rest) = rest.split_once('/').ok_or(Error::NotFound)?;
    match kind {
        "p" => {
            let r = rest.strip_suffix(".m3u8").ok_or(Error::NotFound)?;
            media_playlist(lang, r, cfg, http)
        }
        "i" => {
            let r = rest.strip_suffix(".mp4").ok_or(Error::NotFound)?;
            init(r, cfg, http, media)
        }
        "s" => {
            let r = rest.strip_suffix(".m4s").ok_or(Error::NotFound)?;
            segment(lang, r, cfg, http, media, started)
        }
        _ => Err(Error::NotFound),
    }
}

/// `[a-z]{2,3}(-[A-Za-z0-9]{2,8})?`
pub fn valid_lang(lang: &str) -> bool {
    let (primary, sub) = match lang.split_once('-') {
        Some((p, s)) => (p, Some(s)),
        None => (lang, None),
    };
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase());
    let sub_ok = sub
        .is_none_or(|s| (2..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    primary_ok && sub_ok
}

/// The entry playlist: `/dub/{lang}/index.m3u8?src=...`.
fn entry<H: HttpClient>(lang: &str, query: &str, cfg: &Config, http: &H) -> Result<Response> {
    let mut src: Option<String> = None;
    let mut bg = Background::Duck;
    let mut duck_db: Option<f32> = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "src" if src.is_some() => return Err(Error::BadRequest("src given twice".into())),
            "src" => src = Some(v.into_owned()),
            "bg" => {
                bg = refs::parse_background(&v)
                    .ok_or_else(|| Error::BadRequest("bg must be duck, original or none".into()))?;
            }
            "duck_db" => {
                let d: f32 = v
                    .parse()
                    .ok()
                    .filter(|d: &f32| d.is_finite() && (0.0..=MAX_DUCK_DB).contains(d))
                    .ok_or_else(|| {
                        Error::BadRequest(format!("duck_db must be 0..={MAX_DUCK_DB}"))
                    })?;
                duck_db = Some(d);
            }
            // Reserved (voice, ...) or unknown: ignored so links stay forward compatible.
            _ => {}
        }
    }
    let src = src.ok_or_else(|| Error::BadRequest("missing src".into()))?;
    let base = Url::parse(&src)
        .map_err(|_| Error::BadRequest("src must be an absolute http(s) URL".into()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(Error::BadRequest(
            "src must be an absolute http(s) URL".into(),
        ));
    }
    if !refs::origin_allowed(&cfg.origins, &src) {
        return Err(Error::OriginNotAllowed);
    }
    let body = fetch(http, &src, MAX_PLAYLIST_FETCH)?;
    let pl = hls::parse(&body)?;
    let out = hls::rewrite(&pl, &base, &rewrite_ctx(lang, bg, duck_db, cfg))?;
    let cache = match out.kind {
        Kind::Master => "public, max-age=60",
        Kind::Media => playlist_cache(out.live),
    };
    let mut resp = Response::ok(M3U8, cache, out.text.into_bytes());
    resp.headers
        .push(("x-dub-kind".into(), kind_name(out.kind).into()));
    if out.kind == Kind::Master && out.dubbed_groups == 0 && out.routed_variants == 0 {
        let note = if out.audio_groups == 0 {
            "no variant with audio could be dubbed (none on an allowed origin)"
        } else {
            "no audio rendition could be dubbed (none with a URI on an allowed origin)"
        };
        resp.headers.push(("x-dub-note".into(), note.into()));
    }
    Ok(resp)
}

/// A dubbed media playlist: `/dub/{lang}/p/{ref}.m3u8`.
fn media_playlist<H: HttpClient>(lang: &str, r: &str, cfg: &Config, http: &H) -> Result<Response> {
    let RefPayload::Playlist {
        url,
        lang: rlang,
        bg,
        duck_db,
    } = refs::verify(&cfg.signing_key, r)?
    else {
        return Err(Error::BadRequest("wrong kind of ref".into()));
    };
    if rlang != lang {
        return Err(Error::BadSignature);
    }
    if !refs::origin_allowed(&cfg.origins, &url) {
        return Err(Error::OriginNotAllowed);
    }
    let base = Url::parse(&url).map_err(|_| Error::BadRequest("bad ref URL".into()))?;
    let body = fetch(http, &url, MAX_PLAYLIST_FETCH)?;
    let pl = hls::parse(&body)?;
    if pl.kind != Kind::Media {
        return Err(Error::Playlist("expected a media playlist".into()));
    }
    let out = hls::rewrite::rewrite_media(&pl, &base, &rewrite_ctx(lang, bg, duck_db, cfg))?;
    let mut resp = Response::ok(M3U8, playlist_cache(out.live), out.text.into_bytes());
    resp.headers.push(("x-dub-kind".into(), "media".into()));
    Ok(resp)
}

/// An init segment: `/dub/{lang}/i/{ref}.mp4`.
///
/// For an AAC-LC source the dubbed segments keep the source's AudioSpecificConfig, so the source
/// init is served byte-identical. Encrypted or unsupported tracks pass through as well (their
/// segments pass through too); so do inits our validator rejects, because a player may still
/// manage them. An HE-AAC source is dubbed as AAC-LC: its init is rewritten, which needs the
/// first media segment under it (the ref carries it). A TS source's init (`BuiltInit`) is built
/// from the streams of a TS segment.
fn init<H: HttpClient, M: MediaEngine>(
    r: &str,
    cfg: &Config,
    http: &H,
    media: &M,
) -> Result<Response> {
    let (url, seg) = match refs::verify(&cfg.signing_key, r)? {
        RefPayload::Init { url, seg } => (Some(url), seg),
        RefPayload::BuiltInit { seg } => (None, Some(seg)),
        _ => return Err(Error::BadRequest("wrong kind of ref".into())),
    };
    let allowed = |u: &str| refs::origin_allowed(&cfg.origins, u);
    if url.as_deref().is_some_and(|u| !allowed(u)) || seg.as_deref().is_some_and(|s| !allowed(s)) {
        return Err(Error::OriginNotAllowed);
    }
    let Some(url) = url else {
        // TS: the init is ours, built from the segment's streams.
        let seg = seg.unwrap_or_default();
        let body = fetch(http, &seg, pipeline::MAX_SEGMENT)?;
        let built = media
            .open_segment(&[], &body)
            .and_then(|s| media.output_init(&s))
            .map_err(|_| Error::Origin("cannot build an init from the TS segment".into()))?;
        let mut resp = Response::ok("video/mp4", IMMUTABLE, built);
        resp.headers.push(("x-dub-init".into(), "built".into()));
        return Ok(resp);
    };
    let body = fetch(http, &url, MAX_INIT_FETCH)?;
    let (verdict, cache) = match media.probe_init(&body) {
        Ok(t) if t.codec == "mp4a.40.2" => ("aac-lc", IMMUTABLE),
        Ok(t) if t.codec.starts_with("mp4a.40.") => ("rewrite", IMMUTABLE),
        Ok(_) => ("unsupported", IMMUTABLE),
        Err(MediaError::Encrypted(_)) => ("encrypted", IMMUTABLE),
        Err(MediaError::Unsupported(_)) => ("unsupported", IMMUTABLE),
        // Our verdict may change with a newer validator: do not pin it in caches for long.
        Err(_) => ("invalid", "public, max-age=60"),
    };
    if verdict == "rewrite" {
        // Another AAC profile (HE-AAC v1/v2): the dub is AAC-LC, so is its init.
        let rewritten = seg
            .ok_or_else(|| Error::Origin("no segment to rewrite the init from".into()))
            .and_then(|s| fetch(http, &s, pipeline::MAX_SEGMENT))
            .and_then(|m| {
                media
                    .open_segment(&body, &m)
                    .and_then(|s| media.output_init(&s))
                    .map_err(|_| Error::Origin("cannot rewrite the init".into()))
            });
        let mut resp = Response::ok("video/mp4", IMMUTABLE, rewritten?);
        resp.headers.push(("x-dub-init".into(), "rewritten".into()));
        return Ok(resp);
    }
    let mut resp = Response::ok("video/mp4", cache, body);
    resp.headers.push(("x-dub-init".into(), verdict.into()));
    Ok(resp)
}

/// A dubbed media segment: `/dub/{lang}/s/{ref}.m4s`.
fn segment<H: HttpClient, M: MediaEngine>(
    lang: &str,
    r: &str,
    cfg: &Config,
    http: &H,
    media: &M,
    started: Instant,
) -> Result<Response> {
    let RefPayload::Segment {
        url,
        init,
        prev,
        next,
        dur,
        vod,
        lang: rlang,
        bg,
        duck_db,
    } = refs::verify(&cfg.signing_key, r)?
    else {
        return Err(Error::BadRequest("wrong kind of ref".into()));
    };
    if rlang != lang {
        return Err(Error::BadSignature);
    }
    if !(dur.is_finite() && dur > 0.0) {
        return Err(Error::BadRequest("bad segment duration".into()));
    }
    let allowed = |u: &str| refs::origin_allowed(&cfg.origins, u);
    if !allowed(&url)
        || init.as_deref().is_some_and(|i| !allowed(i))
        || prev.as_deref().is_some_and(|p| !allowed(p))
        || next.as_deref().is_some_and(|n| !allowed(n))
    {
        return Err(Error::OriginNotAllowed);
    }
    let job = SegmentJob {
        segment_url: url,
        init_url: init,
        prev_url: prev,
        next_url: next,
        duration: dur,
        vod,
        lang: rlang,
        background: bg,
        duck_db: duck_db.unwrap_or(DEFAULT_DUCK_DB),
        started,
    };
    let out = pipeline::dub_segment(http, media, cfg, &job);
    let mut resp = Response {
        status: out.status,
        headers: lower(out.headers),
        body: out.body,
    };
    let cache = if resp.status >= 400 {
        "no-store"
    } else if resp
        .header("x-dub-rung")
        .is_some_and(|v| v.eq_ignore_ascii_case("dub"))
    {
        IMMUTABLE
    } else {
        // A fallback: let caches retry the dub soon.
        "public, max-age=10"
    };
    resp.set_header("cache-control", cache);
    Ok(resp)
}

fn lower(headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn rewrite_ctx<'a>(
    lang: &'a str,
    bg: Background,
    duck_db: Option<f32>,
    cfg: &'a Config,
) -> RewriteCtx<'a> {
    RewriteCtx {
        lang,
        bg,
        duck_db,
        signing_key: &cfg.signing_key,
        source_lang: &cfg.source_lang,
        origins: &cfg.origins,
    }
}

fn playlist_cache(live: bool) -> &'static str {
    if live {
        "public, max-age=1"
    } else {
        "public, max-age=300"
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Master => "master",
        Kind::Media => "media",
    }
}

/// GET from the origin under [`ORIGIN_TIMEOUT`] and a size cap; only 2xx bodies are returned.
fn fetch<H: HttpClient>(http: &H, url: &str, max_body: usize) -> Result<Vec<u8>> {
    let req = HttpRequest {
        method: Method::Get,
        url: url.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    let limits = FetchLimits {
        deadline: Instant::now() + ORIGIN_TIMEOUT,
        max_body,
    };
    let resp = http.send(&req, &limits).map_err(|e| match e {
        HttpError::Timeout => Error::OriginTimeout,
        HttpError::TooLarge(n) => Error::Origin(format!("response larger than {n} bytes")),
        HttpError::Forbidden(_) => Error::OriginNotAllowed,
        HttpError::Connect(_) => Error::Origin("unreachable".into()),
        _ => Error::Origin("request failed".into()),
    })?;
    if !(200..300).contains(&resp.status) {
        return Err(Error::Origin(format!("origin answered {}", resp.status)));
    }
    if resp.body.len() > max_body {
        return Err(Error::Origin(format!(
            "response larger than {max_body} bytes"
        )));
    }
    Ok(resp.body)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;
    use crate::http::HttpResponse;
    use crate::media::{AudioTrack, MixOptions, Placement, SegmentTiming};

    /// Serves canned bodies by URL and records every call.
    #[derive(Default)]
    struct FakeHttp {
        bodies: HashMap<String, (u16, Vec<u8>)>,
        fail: Option<HttpError>,
        calls: RefCell<Vec<(String, usize)>>,
    }

    impl FakeHttp {
        fn with(mut self, url: &str, body: &str) -> Self {
            self.bodies
                .insert(url.to_string(), (200, body.as_bytes().to_vec()));
            self
        }
        fn calls(&self) -> Vec<String> {
            self.calls.borrow().iter().map(|(u, _)| u.clone()).collect()
        }
    }

    impl HttpClient for FakeHttp {
        fn send(
            &self,
            req: &HttpRequest,
            limits: &FetchLimits,
        ) -> std::result::Result<HttpResponse, HttpError> {
            assert_eq!(req.method, Method::Get);
            assert!(limits.deadline > Instant::now());
            self.calls
                .borrow_mut()
                .push((req.url.clone(), limits.max_body));
            if let Some(e) = &self.fail {
                return Err(e.clone());
            }
            let (status, body) = self
                .bodies
                .get(&req.url)
                .cloned()
                .unwrap_or((404, b"nope".to_vec()));
            if body.len() > limits.max_body {
                return Err(HttpError::TooLarge(limits.max_body));
            }
            Ok(HttpResponse {
                status,
                headers: vec![],
                body,
            })
        }
    }

    /// Media engine whose every operation fails; `probe` decides what probe_init says.
    struct StubMedia {
        probe: std::result::Result<AudioTrack, MediaError>,
    }

    impl StubMedia {
        fn failing() -> Self {
            StubMedia {
                probe: Err(MediaError::Invalid("stub".into())),
            }
        }
    }

    impl MediaEngine for StubMedia {
        type Pcm = ();
        type Segment = ();
        fn probe_init(&self, _: &[u8]) -> std::result::Result<AudioTrack, MediaError> {
            self.probe.clone()
        }
        fn open_segment(&self, _: &[u8], _: &[u8]) -> std::result::Result<(), MediaError> {
            Err(MediaError::Internal("stub".into()))
        }
        fn output_init(&self, _: &()) -> std::result::Result<Vec<u8>, MediaError> {
            Err(MediaError::Internal("test engine".into()))
        }
        fn repackage(&self, _: &()) -> std::result::Result<Vec<u8>, MediaError> {
            Err(MediaError::Internal("test engine".into()))
        }
        fn first_pts(&self, _: &()) -> Option<u64> {
            None
        }
        fn set_pts_wraps(&self, _: &mut (), _: u32) {}
        fn duck(&self, _: &(), _: &[(i64, i64)], _: f32) -> std::result::Result<(), MediaError> {
            Err(MediaError::Internal("test engine".into()))
        }
        fn track(&self, _: &()) -> AudioTrack {
            AudioTrack {
                track_id: 0,
                timescale: 0,
                sample_rate: 0,
                channels: 0,
                codec: String::new(),
                asc: vec![],
            }
        }
        fn timing(&self, _: &()) -> SegmentTiming {
            SegmentTiming {
                base_decode_time: 0,
                frame_count: 0,
                duration: 0,
            }
        }
        fn decode_audio(&self, _: &()) -> std::result::Result<(), MediaError> {
            Err(MediaError::Internal("stub".into()))
        }
        fn resample(&self, _: &(), _: u32, _: u32) -> std::result::Result<(), MediaError> {
            Err(MediaError::Internal("stub".into()))
        }
        fn pcm_from_wav(&self, _: &[u8]) -> std::result::Result<(), MediaError> {
            Err(MediaError::Internal("stub".into()))
        }
        fn pcm_to_wav(&self, _: &()) -> Vec<u8> {
            Vec::new()
        }
        fn pcm_frames(&self, _: &()) -> u64 {
            0
        }
        fn pcm_rate(&self, _: &()) -> u32 {
            0
        }
        fn pcm_slice(&self, _: &(), _: u64, _: u64) {}
        fn mix(
            &self,
            _: &(),
            _: &[Placement<'_, ()>],
            _: MixOptions,
        ) -> std::result::Result<(), MediaError> {
            Err(MediaError::Internal("stub".into()))
        }
        fn remux_audio(
            &self,
            _: &(),
            _: &(),
            _: Option<&()>,
            _: Option<&()>,
        ) -> std::result::Result<Vec<u8>, MediaError> {
            Err(MediaError::Internal("stub".into()))
        }
    }

    fn cfg() -> Config {
        let mut c = Config::from_lookup(|_| None).unwrap();
        c.origins = vec!["http://127.0.0.1:*".into()];
        c.signing_key = b"router-test-key".to_vec();
        c
    }

    fn get(path_and_query: &str) -> Request {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Request {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
        }
    }

    fn body(r: &Response) -> &str {
        std::str::from_utf8(&r.body).unwrap()
    }

    const O: &str = "http://127.0.0.1:8080";
    const MASTER: &str = "#EXTM3U\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",LANGUAGE=\"en\",NAME=\"English\",DEFAULT=YES,CHANNELS=\"2\",URI=\"audio/en.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1000,AUDIO=\"a\"\nvideo/v.m3u8\n";
    const MEDIA_VOD: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.0,\ns1.m4s\n#EXTINF:4.0,\ns2.m4s\n#EXT-X-ENDLIST\n";

    fn uri_after(text: &str, prefix: &str) -> String {
        let start = text.find(prefix).unwrap();
        let rest = &text[start..];
        let end = rest.find(['"', '\n']).unwrap();
        rest[..end].to_string()
    }

    #[test]
    fn full_playlist_chain() {
        let http = FakeHttp::default()
            .with(&format!("{O}/show/master.m3u8"), MASTER)
            .with(&format!("{O}/show/audio/en.m3u8"), MEDIA_VOD)
            .with(&format!("{O}/show/audio/init.mp4"), "INITBYTES");
        let media = StubMedia::failing();
        let c = cfg();
        let src = "http%3A%2F%2F127.0.0.1%3A8080%2Fshow%2Fmaster.m3u8";
        let r = handle(
            &get(&format!("/dub/es/index.m3u8?src={src}&bg=original")),
            &c,
            &http,
            &media,
        );
        assert_eq!(r.status, 200, "{}", body(&r));
        assert_eq!(r.header("content-type"), Some(M3U8));
        assert_eq!(r.header("x-dub-kind"), Some("master"));
        assert_eq!(r.header("x-dub-note"), None);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert!(body(&r).contains(&format!("\n{O}/show/video/v.m3u8\n")));
        assert!(
            body(&r)
                .contains("NAME=\"Español (AI dub)\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\"")
        );
        assert_eq!(http.calls(), [format!("{O}/show/master.m3u8")]);
        assert_eq!(http.calls.borrow()[0].1, MAX_PLAYLIST_FETCH);

        // Follow the dubbed rendition.
        let p = uri_after(body(&r), "/dub/es/p/");
        let r = handle(&get(&p), &c, &http, &media);
        assert_eq!(r.status, 200, "{}", body(&r));
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
        let text = body(&r).to_string();
        assert!(text.starts_with("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"/dub/es/i/"));
        assert_eq!(text.matches("\n/dub/es/s/").count(), 2);
        let s1 = uri_after(&text, "/dub/es/s/");
        let r_seg = refs::verify(
            &c.signing_key,
            s1.strip_prefix("/dub/es/s/")
                .unwrap()
                .strip_suffix(".m4s")
                .unwrap(),
        );
        assert!(matches!(
            r_seg,
            Ok(RefPayload::Segment {
                bg: Background::Original,
                ..
            })
        ));

        // And the init segment: passed through byte-identical even though the stub rejects it.
        let i = uri_after(&text, "/dub/es/i/");
        let r = handle(&get(&i), &c, &http, &media);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"INITBYTES");
        assert_eq!(r.header("content-type"), Some("video/mp4"));
        assert_eq!(r.header("x-dub-init"), Some("invalid"));
        assert_eq!(http.calls.borrow().last().unwrap().1, MAX_INIT_FETCH);
        let aac = StubMedia {
            probe: Ok(AudioTrack {
                track_id: 1,
                timescale: 48000,
                sample_rate: 48000,
                channels: 2,
                codec: "mp4a.40.2".into(),
                asc: vec![0x11, 0x90],
            }),
        };
        let r = handle(&get(&i), &c, &http, &aac);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, b"INITBYTES".as_slice())
        );
        assert_eq!(r.header("cache-control"), Some(IMMUTABLE));
        assert_eq!(r.header("x-dub-init"), Some("aac-lc"));
        let enc = StubMedia {
            probe: Err(MediaError::Encrypted("cbcs".into())),
        };
        let r = handle(&get(&i), &c, &http, &enc);
        assert_eq!((r.status, r.header("x-dub-init")), (200, Some("encrypted")));
        assert_eq!(http.calls().len(), 5);

        // HEAD: same headers, no body.
        let mut h = get(&p);
        h.method = "HEAD".into();
        let r = handle(&h, &c, &http, &media);
        assert_eq!((r.status, r.body.len()), (200, 0));
        assert_eq!(r.header("content-type"), Some(M3U8));
    }

    #[test]
    fn live_media_playlist_is_short_cached_and_muxed_master_is_marked() {
        let live = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:4.0,\ns7.m4s\n";
        let muxed = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
        let http = FakeHttp::default()
            .with(&format!("{O}/live.m3u8"), live)
            .with(&format!("{O}/muxed.m3u8"), muxed);
        let c = cfg();
        let m = StubMedia::failing();
        let r = handle(
            &get(&format!("/dub/es/index.m3u8?src={O}/live.m3u8")),
            &c,
            &http,
            &m,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-dub-kind"), Some("media"));
        assert_eq!(r.header("cache-control"), Some("public, max-age=1"));
        assert!(body(&r).contains("#EXT-X-MEDIA-SEQUENCE:7\n"));
        let r = handle(
            &get(&format!("/dub/es/index.m3u8?src={O}/muxed.m3u8")),
            &c,
            &http,
            &m,
        );
        assert_eq!(r.status, 200);
        // Muxed audio: the variant goes through the edge (its segments are remuxed).
        assert_eq!(r.header("x-dub-note"), None);
        let text = body(&r);
        assert!(
            text.starts_with("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n/dub/es/p/"),
            "{text}"
        );
    }

    #[test]
    fn no_outbound_call_for_disallowed_origin_or_bad_ref() {
        let http = FakeHttp::default();
        let m = StubMedia::failing();
        let c = cfg();
        let forged = refs::sign(
            b"other-key",
            &RefPayload::Init {
                url: format!("{O}/i.mp4"),
                seg: None,
            },
        )
        .unwrap();
        let off_list = refs::sign(
            &c.signing_key,
            &RefPayload::Init {
                url: "http://10.0.0.1/i.mp4".into(),
                seg: None,
            },
        )
        .unwrap();
        let seg_off = refs::sign(
            &c.signing_key,
            &RefPayload::Segment {
                url: format!("{O}/s.m4s"),
                init: Some(format!("{O}/i.mp4")),
                prev: Some("http://169.254.169.254/latest".into()),
                next: None,
                dur: 4.0,
                vod: false,
                lang: "es".into(),
                bg: Background::Duck,
                duck_db: None,
            },
        )
        .unwrap();
        let next_off = refs::sign(
            &c.signing_key,
            &RefPayload::Segment {
                url: format!("{O}/s.m4s"),
                init: Some(format!("{O}/i.mp4")),
                prev: None,
                next: Some("http://10.0.0.1/next.m4s".into()),
                dur: 4.0,
                vod: false,
                lang: "es".into(),
                bg: Background::Duck,
                duck_db: None,
            },
        )
        .unwrap();
        let seg_fr = refs::sign(
            &c.signing_key,
            &RefPayload::Segment {
                url: format!("{O}/s.m4s"),
                init: Some(format!("{O}/i.mp4")),
                prev: None,
                next: None,
                dur: 4.0,
                vod: false,
                lang: "fr".into(),
                bg: Background::Duck,
                duck_db: None,
            },
        )
        .unwrap();
        let cases: Vec<(String, u16, &str)> = vec![
            (
                "/dub/es/index.m3u8?src=http://127.0.0.2:8080/m.m3u8".into(),
                403,
                "origin not allowed\n",
            ),
            (
                "/dub/es/index.m3u8?src=http://127.0.0.1.evil.com/m.m3u8".into(),
                403,
                "origin not allowed\n",
            ),
            (
                "/dub/es/index.m3u8?src=http://u:p@127.0.0.1:8080/m.m3u8".into(),
                403,
                "origin not allowed\n",
            ),
            ("/dub/es/index.m3u8?src=file:///etc/passwd".into(), 400, ""),
            ("/dub/es/index.m3u8?src=/relative.m3u8".into(), 400, ""),
            (
                "/dub/es/index.m3u8".into(),
                400,
                "bad request: missing src\n",
            ),
            (
                format!("/dub/es/index.m3u8?src={O}/m.m3u8&bg=loud"),
                400,
                "",
            ),
            (
                format!("/dub/es/index.m3u8?src={O}/m.m3u8&duck_db=-3"),
                400,
                "",
            ),
            (
                format!("/dub/es/index.m3u8?src={O}/a.m3u8&src={O}/b.m3u8"),
                400,
                "",
            ),
            (
                format!("/dub/ES/index.m3u8?src={O}/m.m3u8"),
                400,
                "bad request: invalid language\n",
            ),
            (format!("/dub/es/i/{forged}.mp4"), 403, "invalid ref\n"),
            (format!("/dub/es/p/{forged}.m3u8"), 403, "invalid ref\n"),
            (format!("/dub/es/s/{forged}.m4s"), 403, "invalid ref\n"),
            ("/dub/es/s/garbage.m4s".into(), 400, ""),
            (format!("/dub/es/s/{}.m4s", "A".repeat(5000)), 400, ""),
            (
                format!("/dub/es/i/{off_list}.mp4"),
                403,
                "origin not allowed\n",
            ),
            (
                format!("/dub/es/p/{off_list}.m3u8"),
                400,
                "bad request: wrong kind of ref\n",
            ),
            (
                format!("/dub/es/s/{seg_off}.m4s"),
                403,
                "origin not allowed\n",
            ),
            (
                format!("/dub/es/s/{next_off}.m4s"),
                403,
                "origin not allowed\n",
            ),
            (format!("/dub/es/s/{seg_fr}.m4s"), 403, "invalid ref\n"),
            (format!("/dub/es/x/{forged}.m4s"), 404, "not found\n"),
            (format!("/dub/es/s/{forged}.mp4"), 404, "not found\n"),
            ("/".into(), 404, "not found\n"),
            ("/dub/es".into(), 404, "not found\n"),
        ];
        for (path, status, msg) in &cases {
            let r = handle(&get(path), &c, &http, &m);
            assert_eq!(r.status, *status, "{path}: {}", body(&r));
            assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
            if !msg.is_empty() {
                assert_eq!(body(&r), *msg, "{path}");
            }
            assert!(
                !body(&r).contains("127.0.0") && !body(&r).contains("router-test-key"),
                "{path}"
            );
        }
        assert!(
            http.calls().is_empty(),
            "outbound calls: {:?}",
            http.calls()
        );
    }

    #[test]
    fn methods_and_health() {
        let http = FakeHttp::default();
        let m = StubMedia::failing();
        let c = cfg();
        let r = handle(&get("/healthz"), &c, &http, &m);
        assert_eq!((r.status, body(&r)), (200, "ok\n"));
        for method in ["POST", "PUT", "DELETE", "OPTIONS", ""] {
            let r = handle(
                &Request {
                    method: method.into(),
                    path: "/healthz".into(),
                    query: String::new(),
                },
                &c,
                &http,
                &m,
            );
            assert_eq!(r.status, 405);
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
        assert!(http.calls().is_empty());
    }

    #[test]
    fn origin_failures_map_to_gateway_errors() {
        let c = cfg();
        let m = StubMedia::failing();
        let url = format!("/dub/es/index.m3u8?src={O}/m.m3u8");
        let cases = [
            (Some(HttpError::Timeout), 504, "origin timed out\n"),
            (
                Some(HttpError::Connect("refused 127.0.0.1:8080".into())),
                502,
                "origin error: unreachable\n",
            ),
            (
                Some(HttpError::Forbidden("x".into())),
                403,
                "origin not allowed\n",
            ),
            (Some(HttpError::TooLarge(1)), 502, ""),
            (None, 502, "origin error: origin answered 404\n"),
        ];
        for (fail, status, msg) in cases {
            let http = FakeHttp {
                fail,
                ..Default::default()
            };
            let r = handle(&get(&url), &c, &http, &m);
            assert_eq!(r.status, status);
            if !msg.is_empty() {
                assert_eq!(body(&r), msg);
            }
            assert_eq!(http.calls().len(), 1);
        }
        // Not a playlist.
        let http = FakeHttp::default().with(&format!("{O}/m.m3u8"), "<html>");
        let r = handle(&get(&url), &c, &http, &m);
        assert_eq!(
            (r.status, body(&r)),
            (502, "origin sent an unusable playlist\n")
        );
        // A master playlist where a media playlist is expected.
        let master_ref = refs::sign(
            &c.signing_key,
            &RefPayload::Playlist {
                url: format!("{O}/m.m3u8"),
                lang: "es".into(),
                bg: Background::Duck,
                duck_db: None,
            },
        )
        .unwrap();
        let http = FakeHttp::default().with(&format!("{O}/m.m3u8"), MASTER);
        let r = handle(&get(&format!("/dub/es/p/{master_ref}.m3u8")), &c, &http, &m);
        assert_eq!(r.status, 502);
        let r = handle(&get(&format!("/dub/fr/p/{master_ref}.m3u8")), &c, &http, &m);
        assert_eq!(r.status, 403);
    }

    /// The segment route hands a verified job to the pipeline and sets Cache-Control by rung.
    /// (The pipeline itself is tested in pipeline.rs; here the stub media engine fails, so the
    /// pipeline falls back to the original bytes.)
    #[test]
    fn segment_route_sets_cache_by_rung() {
        let c = cfg();
        let m = StubMedia::failing();
        let seg_ref = |url: &str| {
            refs::sign(
                &c.signing_key,
                &RefPayload::Segment {
                    url: format!("{O}/{url}"),
                    init: Some(format!("{O}/init.mp4")),
                    prev: None,
                    next: None,
                    dur: 4.0,
                    vod: false,
                    lang: "es".into(),
                    bg: Background::Duck,
                    duck_db: None,
                },
            )
            .unwrap()
        };
        let http = FakeHttp::default()
            .with(&format!("{O}/s1.m4s"), "SEGMENTBYTES")
            .with(&format!("{O}/init.mp4"), "INIT");
        let r = handle(
            &get(&format!("/dub/es/s/{}.m4s", seg_ref("s1.m4s"))),
            &c,
            &http,
            &m,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"SEGMENTBYTES");
        assert_eq!(r.header("x-dub-rung"), Some("original"));
        assert_eq!(r.header("cache-control"), Some("public, max-age=10"));
        assert_eq!(
            r.headers
                .iter()
                .filter(|(k, _)| k == "cache-control")
                .count(),
            1
        );
        assert_eq!(
            http.calls(),
            [format!("{O}/s1.m4s"), format!("{O}/init.mp4")]
        );
        // Origin has no such segment: an error, not cached.
        let r = handle(
            &get(&format!("/dub/es/s/{}.m4s", seg_ref("gone.m4s"))),
            &c,
            &http,
            &m,
        );
        assert!(r.status >= 400, "{}", r.status);
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }

    #[test]
    fn languages() {
        for ok in ["es", "en", "pt-BR", "zh-Hans", "yue", "es-419"] {
            assert!(valid_lang(ok), "{ok}");
        }
        for bad in [
            "",
            "e",
            "ES",
            "espa",
            "es-",
            "es-a",
            "es-123456789",
            "es_MX",
            "es-B R",
            "../x",
            "es-BR-x",
        ] {
            assert!(!valid_lang(bad), "{bad}");
        }
    }
}
