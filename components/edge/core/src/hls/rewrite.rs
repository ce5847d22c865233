//! Playlist rewriting: add dubbed audio renditions to master playlists, point the segments of a
//! dubbed media playlist at the edge, and make every other URI an absolute origin URL.
//!
//! Edge URLs are root-relative (`/dub/es/s/<ref>.m4s`) so they work behind any host name.

use std::rc::Rc;

use url::Url;

use super::parse::{Kind, Line, Playlist, attr, extinf_duration, parse_attrs, write_attrs};
use crate::media::Background;
use crate::refs::{self, RefPayload};
use crate::{Error, Result};

/// Largest rewritten playlist, in bytes (refs make lines longer than the source's).
pub const MAX_OUTPUT_BYTES: usize = 32 << 20;

/// Longest segment (EXTINF seconds) sent to the dubbing pipeline; longer ones pass through.
pub const MAX_DUB_SEGMENT_SECS: f64 = 60.0;

/// Tags whose attribute lists may carry URIs.
const URI_TAGS: &[&str] = &[
    "EXT-X-MEDIA",
    "EXT-X-I-FRAME-STREAM-INF",
    "EXT-X-SESSION-DATA",
    "EXT-X-SESSION-KEY",
    "EXT-X-KEY",
    "EXT-X-MAP",
    "EXT-X-PART",
    "EXT-X-PRELOAD-HINT",
    "EXT-X-RENDITION-REPORT",
    "EXT-X-CONTENT-STEERING",
    "EXT-X-DATERANGE",
];

/// Attribute names whose (quoted) values are URIs.
const URI_ATTRS: &[&str] = &["URI", "SERVER-URI", "X-ASSET-URI", "X-ASSET-LIST"];

/// What the rewriter needs to know about the request and the deployment.
#[derive(Clone, Copy, Debug)]
pub struct RewriteCtx<'a> {
    /// Target language (validated by the router).
    pub lang: &'a str,
    /// Background treatment for dubbed segments.
    pub bg: Background,
    /// Duck depth override.
    pub duck_db: Option<f32>,
    /// HMAC key for refs.
    pub signing_key: &'a [u8],
    /// Language of the source audio, used to pick the rendition to dub.
    pub source_lang: &'a str,
    /// Origin allowlist; URIs outside it are never signed.
    pub origins: &'a [String],
}

/// A rewritten playlist and what was done to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Rewritten {
    /// The playlist text.
    pub text: String,
    /// Master or media.
    pub kind: Kind,
    /// Master: number of audio groups (EXT-X-MEDIA TYPE=AUDIO); 0 means muxed audio.
    pub audio_groups: usize,
    /// Master: number of audio groups that got a dubbed rendition.
    pub dubbed_groups: usize,
    /// Master: number of variants with muxed audio routed through the edge (their segments are
    /// remuxed: video copied bit-exact, audio dubbed).
    pub routed_variants: usize,
    /// Media: number of segments pointed at the edge for dubbing.
    pub dubbed_segments: usize,
    /// Media: no EXT-X-ENDLIST.
    pub live: bool,
}

/// Rewrite either kind of playlist fetched from `base`.
pub fn rewrite(pl: &Playlist<'_>, base: &Url, ctx: &RewriteCtx<'_>) -> Result<Rewritten> {
    match pl.kind {
        Kind::Master => rewrite_master(pl, base, ctx),
        Kind::Media => rewrite_media(pl, base, ctx),
    }
}

/// Edge URL of a dubbed media playlist.
pub fn playlist_path(lang: &str, r: &str) -> String {
    format!("/dub/{lang}/p/{r}.m3u8")
}

/// Edge URL of an init segment.
pub fn init_path(lang: &str, r: &str) -> String {
    format!("/dub/{lang}/i/{r}.mp4")
}

/// Edge URL of a dubbed media segment.
pub fn segment_path(lang: &str, r: &str) -> String {
    format!("/dub/{lang}/s/{r}.m4s")
}

/// Display name of a language in that language, for rendition NAMEs.
pub fn native_name(lang: &str) -> Option<&'static str> {
    let primary = lang.split('-').next().unwrap_or(lang).to_ascii_lowercase();
    Some(match primary.as_str() {
        "ar" => "العربية",
        "ca" => "Català",
        "cs" => "Čeština",
        "da" => "Dansk",
        "de" => "Deutsch",
        "el" => "Ελληνικά",
        "en" => "English",
        "es" => "Español",
        "fi" => "Suomi",
        "fr" => "Français",
        "he" => "עברית",
        "hi" => "हिन्दी",
        "hu" => "Magyar",
        "id" => "Bahasa Indonesia",
        "it" => "Italiano",
        "ja" => "日本語",
        "ko" => "한국어",
        "nl" => "Nederlands",
        "no" | "nb" => "Norsk",
        "pl" => "Polski",
        "pt" => "Português",
        "ro" => "Română",
        "ru" => "Русский",
        "sv" => "Svenska",
        "th" => "ไทย",
        "tr" => "Türkçe",
        "uk" => "Українська",
        "vi" => "Tiếng Việt",
        "zh" => "中文",
        _ => return None,
    })
}

/// Resolve a URI against the playlist URL. Absolute URIs (any scheme: http, data, skd) are kept
/// verbatim; an unresolvable one is kept verbatim too (it was already broken at the origin).
fn absolutize(base: &Url, uri: &str) -> String {
    if Url::parse(uri).is_ok() {
        return uri.to_string();
    }
    base.join(uri)
        .map(String::from)
        .unwrap_or_else(|_| uri.to_string())
}

/// Make URI attributes absolute; `None` if nothing had to change (emit the line verbatim).
fn absolutize_tag(name: &str, value: &str, base: &Url) -> Result<Option<String>> {
    let attrs = parse_attrs(value)?;
    let mut changed = false;
    let pairs: Vec<(&str, String)> = attrs
        .iter()
        .map(|a| {
            if URI_ATTRS.contains(&a.name) && a.is_quoted() {
                let abs = absolutize(base, a.text());
                if abs != a.text() {
                    changed = true;
                }
                (a.name, quote(&abs))
            } else {
                (a.name, a.value.to_string())
            }
        })
        .collect();
    Ok(changed.then(|| format!("#{name}:{}", write_attrs(&pairs))))
}

/// Quote a URI for an attribute list. URIs from `Url` never contain `"`, CR or LF; a verbatim
/// one that came out of a quoted string cannot either.
/// Whether a CODECS list names an AAC audio codec (`mp4a.40.*`, or bare `mp4a`).
fn has_aac(codecs: &str) -> bool {
    codecs.split(',').any(|c| {
        let c = c.trim();
        c == "mp4a" || c.starts_with("mp4a.40.")
    })
}

/// The CODECS list after dubbing, when it changes: HE-AAC (`mp4a.40.5`, `mp4a.40.29`) and other
/// AAC object types become AAC-LC (`mp4a.40.2`), which is what the dub is encoded as.
fn lc_codecs(codecs: &str) -> Option<String> {
    let mut changed = false;
    let out: Vec<&str> = codecs
        .split(',')
        .map(|c| {
            let t = c.trim();
            if t.starts_with("mp4a.40.") && t != "mp4a.40.2" {
                changed = true;
                "mp4a.40.2"
            } else {
                t
            }
        })
        .collect();
    changed.then(|| out.join(","))
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

fn lang_matches(rendition: &str, wanted: &str) -> bool {
    let primary = |s: &str| s.split('-').next().unwrap_or(s).to_ascii_lowercase();
    !rendition.is_empty() && primary(rendition) == primary(wanted)
}

struct AudioRendition {
    line: usize,
    group: String,
    language: Option<String>,
    default: bool,
    uri: Option<String>,
    channels: Option<String>,
}

/// Rewrite a master playlist.
pub fn rewrite_master(pl: &Playlist<'_>, base: &Url, ctx: &RewriteCtx<'_>) -> Result<Rewritten> {
    // Pass 1: audio renditions by group, in order of first appearance.
    let mut groups: Vec<(String, Vec<AudioRendition>)> = Vec::new();
    for (i, line) in pl.lines.iter().enumerate() {
        let Line::Tag {
            name: "EXT-X-MEDIA",
            value: Some(v),
            ..
        } = *line
        else {
            continue;
        };
        let attrs = parse_attrs(v)?;
        if attr(&attrs, "TYPE") != Some("AUDIO") {
            continue;
        }
        let Some(group) = attr(&attrs, "GROUP-ID") else {
            continue;
        };
        let r = AudioRendition {
            line: i,
            group: group.to_string(),
            language: attr(&attrs, "LANGUAGE").map(str::to_string),
            default: attr(&attrs, "DEFAULT") == Some("YES"),
            uri: attr(&attrs, "URI").map(|u| absolutize(base, u)),
            channels: attrs
                .iter()
                .find(|a| a.name == "CHANNELS")
                .map(|a| a.value.to_string()),
        };
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, rs)) => rs.push(r),
            None => groups.push((r.group.clone(), vec![r])),
        }
    }

    // Pick the source rendition of each group and build its dubbed rendition line.
    let name = match native_name(ctx.lang) {
        Some(n) => format!("{n} (AI dub)"),
        None => format!("{} (AI dub)", ctx.lang),
    };
    let mut inserts: Vec<(usize, String)> = Vec::new(); // (after line, text)
    let mut dubbed_groups: Vec<&str> = Vec::new();
    for (group, rs) in &groups {
        let dubbable = |r: &&AudioRendition| {
            r.uri
                .as_deref()
                .is_some_and(|u| refs::origin_allowed(ctx.origins, u))
        };
        let src = rs
            .iter()
            .filter(dubbable)
            .find(|r| {
                r.language
                    .as_deref()
                    .is_some_and(|l| lang_matches(l, ctx.source_lang))
            })
            .or_else(|| rs.iter().filter(dubbable).find(|r| r.default))
            .or_else(|| rs.iter().find(dubbable));
        let Some(src) = src else {
            continue;
        };
        let Some(uri) = src.uri.clone() else {
            continue;
        };
        let payload = RefPayload::Playlist {
            url: uri,
            lang: ctx.lang.to_string(),
            bg: ctx.bg,
            duck_db: ctx.duck_db,
        };
        let Ok(r) = refs::sign(ctx.signing_key, &payload) else {
            continue;
        };
        let mut pairs: Vec<(&str, String)> = vec![
            ("TYPE", "AUDIO".into()),
            ("GROUP-ID", quote(group)),
            ("LANGUAGE", quote(ctx.lang)),
            ("NAME", quote(&name)),
            ("DEFAULT", "YES".into()),
            ("AUTOSELECT", "YES".into()),
        ];
        if let Some(ch) = &src.channels {
            pairs.push(("CHANNELS", ch.clone()));
        }
        pairs.push(("URI", quote(&playlist_path(ctx.lang, &r))));
        let last = rs.last().map_or(src.line, |r| r.line);
        inserts.push((last, format!("#EXT-X-MEDIA:{}", write_attrs(&pairs))));
        dubbed_groups.push(group);
    }

    // Pass 2: emit.
    let mut out = Output::default();
    // The next URI line is a variant with muxed audio, to be routed through the edge.
    let mut route_next = false;
    let mut routed = 0usize;
    for (i, line) in pl.lines.iter().enumerate() {
        match *line {
            Line::Tag {
                name: "EXT-X-MEDIA",
                value: Some(v),
                raw,
            } => {
                let attrs = parse_attrs(v)?;
                let in_dubbed = attr(&attrs, "TYPE") == Some("AUDIO")
                    && attr(&attrs, "GROUP-ID").is_some_and(|g| dubbed_groups.contains(&g));
                let mut changed = false;
                let pairs: Vec<(&str, String)> = attrs
                    .iter()
                    .map(|a| {
                        if a.name == "URI" && a.is_quoted() {
                            let abs = absolutize(base, a.text());
                            changed |= abs != a.text();
                            (a.name, quote(&abs))
                        } else if a.name == "DEFAULT" && in_dubbed && a.value != "NO" {
                            changed = true;
                            (a.name, "NO".to_string())
                        } else {
                            (a.name, a.value.to_string())
                        }
                    })
                    .collect();
                if changed {
                    out.line(&format!("#EXT-X-MEDIA:{}", write_attrs(&pairs)))?;
                } else {
                    out.line(raw)?;
                }
            }
            Line::Tag {
                name,
                value: Some(v),
                raw,
            } if URI_TAGS.contains(&name) => match absolutize_tag(name, v, base)? {
                Some(t) => out.line(&t)?,
                None => out.line(raw)?,
            },
            Line::Tag {
                name: "EXT-X-STREAM-INF",
                value: Some(v),
                raw,
            } => {
                let attrs = parse_attrs(v)?;
                let audio_group = attr(&attrs, "AUDIO");
                let codecs = attr(&attrs, "CODECS");
                let group_dubbed = audio_group.is_some_and(|g| dubbed_groups.contains(&g));
                // Muxed audio: no audio group with renditions of its own (a group whose
                // renditions have no URI means the audio is in the variant), and an audio codec
                // we decode, or no CODECS at all.
                let group_has_uris = audio_group.is_some_and(|g| {
                    groups
                        .iter()
                        .any(|(name, rs)| name == g && rs.iter().any(|r| r.uri.is_some()))
                });
                let muxed = !group_has_uris && codecs.is_none_or(has_aac);
                route_next = muxed;
                let fixed = codecs.filter(|_| group_dubbed || muxed).and_then(lc_codecs);
                match fixed {
                    Some(c) => {
                        let pairs: Vec<(&str, String)> = attrs
                            .iter()
                            .map(|a| match a.name {
                                "CODECS" => (a.name, quote(&c)),
                                _ => (a.name, a.value.to_string()),
                            })
                            .collect();
                        out.line(&format!("#EXT-X-STREAM-INF:{}", write_attrs(&pairs)))?;
                    }
                    None => out.line(raw)?,
                }
            }
            Line::Uri { uri, .. } => {
                let abs = absolutize(base, uri);
                let edge = if std::mem::take(&mut route_next)
                    && is_http(&abs)
                    && refs::origin_allowed(ctx.origins, &abs)
                {
                    refs::sign(
                        ctx.signing_key,
                        &RefPayload::Playlist {
                            url: abs.clone(),
                            lang: ctx.lang.to_string(),
                            bg: ctx.bg,
                            duck_db: ctx.duck_db,
                        },
                    )
                    .ok()
                } else {
                    None
                };
                match edge {
                    Some(r) => {
                        routed += 1;
                        out.line(&playlist_path(ctx.lang, &r))?;
                    }
                    None => out.line(&abs)?,
                }
            }
            other => out.line(other.raw())?,
        }
        for (_, text) in inserts.iter().filter(|(after, _)| *after == i) {
            out.line(text)?;
        }
    }
    Ok(Rewritten {
        text: out.text,
        kind: Kind::Master,
        audio_groups: groups.len(),
        dubbed_groups: dubbed_groups.len(),
        routed_variants: routed,
        dubbed_segments: 0,
        live: false,
    })
}

/// Whether a media playlist is an MPEG-TS (or packed audio) stream the edge can serve as fMP4:
/// no EXT-X-MAP anywhere, no encryption, no byte ranges or gaps, and every segment dubbable.
///
/// TS sources are all-or-nothing: once the edge adds an EXT-X-MAP, every segment after it must be
/// fMP4, so a playlist with one segment that cannot go through the edge passes through unchanged.
fn is_dubbable_ts(pl: &Playlist<'_>, base: &Url, ctx: &RewriteCtx<'_>) -> Result<bool> {
    let mut dur: Option<f64> = None;
    let mut segments = 0usize;
    for line in &pl.lines {
        match *line {
            Line::Tag {
                name: "EXT-X-MAP" | "EXT-X-BYTERANGE" | "EXT-X-GAP" | "EXT-X-PART",
                ..
            } => return Ok(false),
            Line::Tag {
                name: "EXT-X-KEY",
                value: Some(v),
                ..
            } if attr(&parse_attrs(v)?, "METHOD").is_some_and(|m| m != "NONE") => {
                return Ok(false);
            }
            Line::Tag {
                name: "EXTINF",
                value,
                ..
            } => dur = value.and_then(extinf_duration),
            Line::Uri { uri, .. } => {
                let abs = absolutize(base, uri);
                let ok = dur.is_some_and(|d| d > 0.0 && d <= MAX_DUB_SEGMENT_SECS)
                    && is_http(&abs)
                    && refs::origin_allowed(ctx.origins, &abs)
                    && !not_ts_extension(&abs);
                if !ok {
                    return Ok(false);
                }
                segments += 1;
                dur = None;
            }
            _ => {}
        }
    }
    Ok(segments > 0)
}

/// Whether a segment URL's extension names something that is neither MPEG-TS nor packed AAC
/// (subtitles, other packed audio, MP4 without a map): such a playlist is not made fMP4.
fn not_ts_extension(url: &str) -> bool {
    const OTHER: &[&str] = &[
        "vtt", "webvtt", "srt", "mp3", "ac3", "ec3", "mp4", "m4s", "m4a", "m4v", "cmfa", "cmfv",
    ];
    let Ok(u) = Url::parse(url) else {
        return true;
    };
    let last = u.path().rsplit('/').next().unwrap_or("");
    last.rsplit_once('.')
        .is_some_and(|(_, ext)| OTHER.contains(&ext.to_ascii_lowercase().as_str()))
}

/// HLS version that allows EXT-X-MAP without EXT-X-I-FRAMES-ONLY.
const MAP_VERSION: u32 = 6;

/// Rewrite a media playlist so its segments are dubbed by the edge.
///
/// fMP4 segments are dubbed under their own EXT-X-MAP (pointed at the edge, which serves it
/// unchanged for AAC-LC and rewritten for HE-AAC). An MPEG-TS playlist (see [`is_dubbable_ts`])
/// becomes an fMP4 one: an EXT-X-MAP built from the first segment is added at the start and after
/// every discontinuity, the version is raised to 6, and every segment is served as fMP4.
pub fn rewrite_media(pl: &Playlist<'_>, base: &Url, ctx: &RewriteCtx<'_>) -> Result<Rewritten> {
    let ts = is_dubbable_ts(pl, base, ctx)?;
    let mut out = Output::default();
    let mut encrypted = false;
    // Absolute URL of the current init segment, when segments under it can be dubbed.
    let mut init: Option<Rc<str>> = None;
    // The previous segment, when it was dubbed under the same init with nothing in between.
    let mut prev: Option<String> = None;
    let mut dur: Option<f64> = None;
    let mut byterange = false;
    let mut gap = false;
    let mut live = true;
    let mut version_seen = false;
    // TS: an EXT-X-MAP is due before the next segment.
    let mut map_due = ts;
    // Dubbed segments and edge-served maps are signed at the end, once each one's successor
    // (segment) or first segment (map) is known.
    let mut pending: Vec<Pending> = Vec::new();

    for line in &pl.lines {
        match *line {
            Line::Tag {
                name: "EXTM3U",
                raw,
                ..
            } if ts && out.text.is_empty() => {
                out.line(raw)?;
                if !pl.lines.iter().any(|l| {
                    matches!(
                        l,
                        Line::Tag {
                            name: "EXT-X-VERSION",
                            ..
                        }
                    )
                }) {
                    out.line(&format!("#EXT-X-VERSION:{MAP_VERSION}"))?;
                }
            }
            Line::Tag {
                name: "EXT-X-VERSION",
                value,
                raw,
            } if ts && !version_seen => {
                version_seen = true;
                let v = value
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .unwrap_or(0);
                if v < MAP_VERSION {
                    out.line(&format!("#EXT-X-VERSION:{MAP_VERSION}"))?;
                } else {
                    out.line(raw)?;
                }
            }
            Line::Tag {
                name: "EXT-X-KEY",
                value: Some(v),
                raw,
            } => {
                let attrs = parse_attrs(v)?;
                encrypted = attr(&attrs, "METHOD").is_some_and(|m| m != "NONE");
                match absolutize_tag("EXT-X-KEY", v, base)? {
                    Some(t) => out.line(&t)?,
                    None => out.line(raw)?,
                }
            }
            Line::Tag {
                name: "EXT-X-MAP",
                value: Some(v),
                ..
            } => {
                let attrs = parse_attrs(v)?;
                let abs = attr(&attrs, "URI").map(|u| absolutize(base, u));
                let old_init = init.take();
                let dubbable = abs.as_ref().filter(|abs| {
                    attr(&attrs, "BYTERANGE").is_none()
                        && is_http(abs)
                        && refs::origin_allowed(ctx.origins, abs)
                });
                if let Some(abs) = dubbable {
                    init = Some(Rc::from(abs.as_str()));
                }
                // Neighbours under another init are another stream: no priming or lookahead.
                if init.is_none() || init != old_init {
                    prev = None;
                }
                let other: Vec<(String, String)> = attrs
                    .iter()
                    .filter(|a| a.name != "URI")
                    .map(|a| (a.name.to_string(), a.value.to_string()))
                    .collect();
                match dubbable {
                    Some(abs) => {
                        let at = out.text.len();
                        out.reserve(abs.len().saturating_mul(2).saturating_add(256))?;
                        pending.push(Pending::Map(PendingMap {
                            at,
                            source: MapSource::Init(abs.clone()),
                            attrs: other,
                            first: None,
                        }));
                    }
                    None => {
                        let pairs: Vec<(&str, String)> = attrs
                            .iter()
                            .map(|a| match (a.name, &abs) {
                                ("URI", Some(abs)) => (a.name, quote(abs)),
                                _ => (a.name, a.value.to_string()),
                            })
                            .collect();
                        out.line(&format!("#EXT-X-MAP:{}", write_attrs(&pairs)))?;
                    }
                }
            }
            Line::Tag {
                name: "EXTINF",
                value,
                raw,
            } => {
                dur = value.and_then(extinf_duration);
                out.line(raw)?;
            }
            Line::Tag {
                name: "EXT-X-BYTERANGE",
                raw,
                ..
            } => {
                byterange = true;
                out.line(raw)?;
            }
            Line::Tag {
                name: "EXT-X-GAP",
                raw,
                ..
            } => {
                gap = true;
                out.line(raw)?;
            }
            Line::Tag {
                name: "EXT-X-DISCONTINUITY",
                raw,
                ..
            } => {
                prev = None;
                // A new TS stream may have other parameters: a new init for what follows.
                map_due = ts;
                out.line(raw)?;
            }
            Line::Tag {
                name: "EXT-X-ENDLIST",
                raw,
                ..
            } => {
                live = false;
                out.line(raw)?;
            }
            Line::Tag {
                name,
                value: Some(v),
                raw,
            } if URI_TAGS.contains(&name) => match absolutize_tag(name, v, base)? {
                Some(t) => out.line(&t)?,
                None => out.line(raw)?,
            },
            Line::Uri { uri, .. } => {
                let abs = absolutize(base, uri);
                if map_due {
                    // The map goes before this segment's EXTINF: find that line's start.
                    let at = last_tag_block_start(&out.text);
                    out.reserve(abs.len().saturating_add(256))?;
                    pending.push(Pending::Map(PendingMap {
                        at,
                        source: MapSource::Ts,
                        attrs: Vec::new(),
                        first: None,
                    }));
                    map_due = false;
                }
                let init_of_seg: Option<Option<Rc<str>>> = if ts {
                    Some(None)
                } else {
                    init.as_ref().map(|i| Some(Rc::clone(i)))
                };
                match (init_of_seg, dur) {
                    (Some(seg_init), Some(d))
                        if d > 0.0
                            && d <= MAX_DUB_SEGMENT_SECS
                            && !encrypted
                            && !byterange
                            && !gap
                            && is_http(&abs)
                            && refs::origin_allowed(ctx.origins, &abs) =>
                    {
                        out.reserve(abs.len())?;
                        // The first segment under a pending map describes it.
                        if let Some(Pending::Map(m)) = pending
                            .iter_mut()
                            .rev()
                            .find(|p| matches!(p, Pending::Map(_)))
                            && m.first.is_none()
                        {
                            m.first = Some(abs.clone());
                        }
                        pending.push(Pending::Segment(PendingSegment {
                            at: out.text.len(),
                            url: abs.clone(),
                            init: seg_init,
                            prev: prev.take(),
                            dur: d,
                        }));
                        prev = Some(abs);
                    }
                    _ => {
                        out.line(&abs)?;
                        prev = None;
                    }
                }
                dur = None;
                byterange = false;
                gap = false;
            }
            other => out.line(other.raw())?,
        }
    }

    // Each dubbed segment's `next` is the following segment when that one is linked back to it
    // (dubbed, same init, no discontinuity, encrypted, byte-range or gap segment in between).
    // A live playlist's last segment has no next yet: it is dubbed without lookahead, so its
    // join to the following segment is approximated (a short fade). Players fetch it once and
    // caches keep that response, so the join stays approximate even after later playlists list
    // its successor (whose ref then differs from this playlist's; players key segments by
    // media sequence number, and the same happens to `prev` when the window slides).
    let cap = out
        .text
        .len()
        .saturating_add(pending.len().saturating_mul(256));
    let mut text = String::with_capacity(cap.min(MAX_OUTPUT_BYTES));
    let mut from = 0;
    let mut dubbed = 0usize;
    let segs: Vec<&PendingSegment> = pending
        .iter()
        .filter_map(|p| match p {
            Pending::Segment(s) => Some(s),
            Pending::Map(_) => None,
        })
        .collect();
    let mut seg_index = 0usize;
    for p in &pending {
        let (at, line) = match p {
            Pending::Segment(s) => {
                seg_index += 1;
                let next = segs
                    .get(seg_index)
                    .filter(|n| n.prev.is_some())
                    .map(|n| n.url.as_str());
                let line = match sign_segment(ctx, s, next, !live) {
                    Some(r) => {
                        dubbed += 1;
                        segment_path(ctx.lang, &r)
                    }
                    None => s.url.clone(),
                };
                (s.at, line)
            }
            Pending::Map(m) => (m.at, map_line(ctx, m)?),
        };
        text.push_str(out.text.get(from..at).unwrap_or_default());
        from = at;
        if text.len() + line.len() + 1 > MAX_OUTPUT_BYTES {
            return Err(Error::Playlist("rewritten playlist too large".into()));
        }
        text.push_str(&line);
        text.push('\n');
    }
    let rest = out.text.get(from..).unwrap_or_default();
    if text.len() + rest.len() > MAX_OUTPUT_BYTES {
        return Err(Error::Playlist("rewritten playlist too large".into()));
    }
    text.push_str(rest);
    Ok(Rewritten {
        text,
        kind: Kind::Media,
        audio_groups: 0,
        dubbed_groups: 0,
        routed_variants: 0,
        dubbed_segments: dubbed,
        live,
    })
}

/// Start of the block of tag lines that ends the text (the segment's EXTINF and friends), so a
/// map can be inserted before them; a discontinuity tag stays before the map.
fn last_tag_block_start(text: &str) -> usize {
    let mut at = text.len();
    let body = text.strip_suffix('\n').unwrap_or(text);
    for line in body.rsplit('\n') {
        let is_segment_tag = line.starts_with("#EXTINF")
            || line.starts_with("#EXT-X-PROGRAM-DATE-TIME")
            || line.starts_with("#EXT-X-BITRATE")
            || line.starts_with("#EXT-X-DATERANGE");
        if !is_segment_tag {
            break;
        }
        at = at.saturating_sub(line.len() + 1);
    }
    at
}

/// An edge-served line decided at the end of a media playlist rewrite.
enum Pending {
    /// A dubbed segment.
    Segment(PendingSegment),
    /// An EXT-X-MAP pointing at the edge.
    Map(PendingMap),
}

/// Where an edge-served init segment comes from.
enum MapSource {
    /// The source's own EXT-X-MAP (absolute URL).
    Init(String),
    /// Built from the first TS segment after it.
    Ts,
}

/// An EXT-X-MAP served by the edge.
struct PendingMap {
    /// Byte offset of its line in the output text (a line start).
    at: usize,
    /// The source init, or TS.
    source: MapSource,
    /// The source tag's other attributes, kept in order.
    attrs: Vec<(String, String)>,
    /// The first dubbed segment under it.
    first: Option<String>,
}

/// The EXT-X-MAP line for a pending map.
fn map_line(ctx: &RewriteCtx<'_>, m: &PendingMap) -> Result<String> {
    let payload = match (&m.source, &m.first) {
        (MapSource::Init(url), first) => RefPayload::Init {
            url: url.clone(),
            seg: first.clone(),
        },
        (MapSource::Ts, Some(seg)) => RefPayload::BuiltInit { seg: seg.clone() },
        // Unreachable: a TS map is only added before a segment that is dubbed.
        (MapSource::Ts, None) => return Err(Error::Playlist("TS map without a segment".into())),
    };
    // Without the first segment the ref may be shorter; a URL too long for a ref is refused.
    let r = match refs::sign(ctx.signing_key, &payload) {
        Ok(r) => r,
        Err(_) => match &m.source {
            MapSource::Init(url) => refs::sign(
                ctx.signing_key,
                &RefPayload::Init {
                    url: url.clone(),
                    seg: None,
                },
            )?,
            MapSource::Ts => return Err(Error::Playlist("segment URL too long".into())),
        },
    };
    let mut pairs: Vec<(&str, String)> = vec![("URI", quote(&init_path(ctx.lang, &r)))];
    pairs.extend(m.attrs.iter().map(|(k, v)| (k.as_str(), v.clone())));
    Ok(format!("#EXT-X-MAP:{}", write_attrs(&pairs)))
}

/// A segment of a media playlist to be dubbed, signed once its successor is known.
struct PendingSegment {
    /// Byte offset of its line in the output text (a line start).
    at: usize,
    /// Absolute URL.
    url: String,
    /// Absolute URL of its init segment (none for TS).
    init: Option<Rc<str>>,
    /// The previous segment, when linked (see `rewrite_media`).
    prev: Option<String>,
    /// EXTINF duration.
    dur: f64,
}

/// Sign a segment ref; drop the next-segment, then the previous-segment context if the ref
/// would be too long.
fn sign_segment(
    ctx: &RewriteCtx<'_>,
    s: &PendingSegment,
    next: Option<&str>,
    vod: bool,
) -> Option<String> {
    let payload = |prev: Option<&str>, next: Option<&str>| RefPayload::Segment {
        url: s.url.clone(),
        init: s.init.as_deref().map(str::to_string),
        prev: prev.map(str::to_string),
        next: next.map(str::to_string),
        dur: s.dur,
        vod,
        lang: ctx.lang.to_string(),
        bg: ctx.bg,
        duck_db: ctx.duck_db,
    };
    let prev = s.prev.as_deref();
    [(prev, next), (prev, None), (None, next), (None, None)]
        .into_iter()
        .find_map(|(p, n)| refs::sign(ctx.signing_key, &payload(p, n)).ok())
}

fn is_http(u: &str) -> bool {
    Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// Output text with a size cap.
#[derive(Default)]
struct Output {
    text: String,
    /// Bytes reserved for lines inserted later.
    pending: usize,
}

impl Output {
    /// Count `n` bytes that will be inserted later (at least a pending segment's URL) against
    /// the cap, so the pending segments' memory is bounded too.
    fn reserve(&mut self, n: usize) -> Result<()> {
        self.pending = self.pending.saturating_add(n + 1);
        if self.text.len().saturating_add(self.pending) > MAX_OUTPUT_BYTES {
            return Err(Error::Playlist("rewritten playlist too large".into()));
        }
        Ok(())
    }

    fn line(&mut self, s: &str) -> Result<()> {
        if self.text.len() + self.pending + s.len() + 1 > MAX_OUTPUT_BYTES {
            return Err(Error::Playlist("rewritten playlist too large".into()));
        }
        self.text.push_str(s);
        self.text.push('\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::parse::parse;

    const KEY: &[u8] = b"k";

    fn origins() -> Vec<String> {
        vec![
            "https://cdn.example.com".to_string(),
            "http://127.0.0.1:*".to_string(),
        ]
    }

    fn ctx(origins: &[String]) -> RewriteCtx<'_> {
        RewriteCtx {
            lang: "es",
            bg: Background::Duck,
            duck_db: None,
            signing_key: KEY,
            source_lang: "en",
            origins,
        }
    }

    fn run(src: &str, base: &str) -> Rewritten {
        let o = origins();
        let pl = parse(src.as_bytes()).unwrap();
        rewrite(&pl, &Url::parse(base).unwrap(), &ctx(&o)).unwrap()
    }

    /// Decode the ref inside an edge path like `/dub/es/s/<ref>.m4s`.
    fn ref_of(path: &str, kind: &str, ext: &str) -> RefPayload {
        let prefix = format!("/dub/es/{kind}/");
        let r = path
            .strip_prefix(&prefix)
            .unwrap()
            .strip_suffix(ext)
            .unwrap();
        refs::verify(KEY, r).unwrap()
    }

    fn uri_attr(line: &str) -> String {
        let (_, v) = line.split_once(':').unwrap();
        attr(&parse_attrs(v).unwrap(), "URI").unwrap().to_string()
    }

    const MASTER: &str = r#"#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SESSION-DATA:DATA-ID="com.example.title",URI="meta/title.json"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",LANGUAGE="fr",NAME="Français",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/fr/index.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",LANGUAGE="en",NAME="English",DEFAULT=NO,AUTOSELECT=YES,CHANNELS="6",URI="audio/en/index.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="en",NAME="English",URI="subs/en.m3u8"
#EXT-X-FOO-UNKNOWN:X=1
#EXT-X-STREAM-INF:BANDWIDTH=2000000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud",SUBTITLES="subs"
video/720p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000,CODECS="avc1.640028,mp4a.40.2",AUDIO="aud",SUBTITLES="subs"
https://other.example.net/video/1080p.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI="video/iframes.m3u8"
"#;

    #[test]
    fn master_gets_one_dubbed_rendition_per_audio_group() {
        let out = run(MASTER, "https://cdn.example.com/show/master.m3u8?token=abc");
        assert_eq!(out.kind, Kind::Master);
        assert_eq!((out.audio_groups, out.dubbed_groups), (1, 1));
        let lines: Vec<&str> = out.text.lines().collect();
        assert_eq!(lines.len(), MASTER.lines().count() + 1);
        assert_eq!(lines[0..3], MASTER.lines().collect::<Vec<_>>()[0..3]);
        assert_eq!(
            lines[3],
            r#"#EXT-X-SESSION-DATA:DATA-ID="com.example.title",URI="https://cdn.example.com/show/meta/title.json""#
        );
        assert_eq!(
            lines[4],
            r#"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",LANGUAGE="fr",NAME="Français",DEFAULT=NO,AUTOSELECT=YES,CHANNELS="2",URI="https://cdn.example.com/show/audio/fr/index.m3u8""#
        );
        assert_eq!(
            lines[5],
            r#"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",LANGUAGE="en",NAME="English",DEFAULT=NO,AUTOSELECT=YES,CHANNELS="6",URI="https://cdn.example.com/show/audio/en/index.m3u8""#
        );
        // The dub follows the group's last rendition, copies the English source's CHANNELS.
        let dub = lines[6];
        assert!(
            dub.starts_with(
                r#"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",LANGUAGE="es",NAME="Español (AI dub)",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="6",URI="/dub/es/p/"#
            ),
            "{dub}"
        );
        assert_eq!(
            ref_of(&uri_attr(dub), "p", ".m3u8"),
            RefPayload::Playlist {
                url: "https://cdn.example.com/show/audio/en/index.m3u8".into(),
                lang: "es".into(),
                bg: Background::Duck,
                duck_db: None,
            }
        );
        assert_eq!(
            lines[7],
            r#"#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="en",NAME="English",URI="https://cdn.example.com/show/subs/en.m3u8""#
        );
        assert_eq!(lines[8], "#EXT-X-FOO-UNKNOWN:X=1");
        assert_eq!(lines[9], MASTER.lines().nth(8).unwrap());
        assert_eq!(lines[10], "https://cdn.example.com/show/video/720p.m3u8");
        assert_eq!(lines[12], "https://other.example.net/video/1080p.m3u8");
        assert_eq!(
            lines[13],
            r#"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI="https://cdn.example.com/show/video/iframes.m3u8""#
        );
    }

    #[test]
    fn source_rendition_falls_back_to_default_then_first() {
        let m = "#EXTM3U\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",LANGUAGE=\"de\",NAME=\"D\",URI=\"de.m3u8\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",LANGUAGE=\"fr\",NAME=\"F\",DEFAULT=YES,URI=\"fr.m3u8\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"b\",NAME=\"X\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"b\",LANGUAGE=\"it\",NAME=\"I\",URI=\"it.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nv.m3u8\n";
        let out = run(m, "http://127.0.0.1:8080/x/m.m3u8");
        assert_eq!(out.dubbed_groups, 2);
        let dubs: Vec<RefPayload> = out
            .text
            .lines()
            .filter(|l| l.contains("(AI dub)"))
            .map(|l| ref_of(&uri_attr(l), "p", ".m3u8"))
            .collect();
        let urls: Vec<String> = dubs
            .into_iter()
            .map(|p| match p {
                RefPayload::Playlist { url, .. } => url,
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:8080/x/fr.m3u8",
                "http://127.0.0.1:8080/x/it.m3u8"
            ]
        );
        // Group b's dub comes right after its last rendition, not after group a.
        let lines: Vec<&str> = out.text.lines().collect();
        assert!(lines[3].contains("(AI dub)") && lines[3].contains("GROUP-ID=\"a\""));
        assert!(lines[6].contains("(AI dub)") && lines[6].contains("GROUP-ID=\"b\""));
        assert!(!out.text.contains("CHANNELS"));
    }

    #[test]
    fn muxed_variants_are_routed_through_the_edge() {
        // No audio renditions: the audio is in the variants. Those with AAC (or no CODECS) go
        // through the edge, whose segments keep the video and carry the dub; a video-only
        // variant and one off the allowlist stay at the origin.
        let m = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow/v.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2,CODECS=\"avc1.64001f,mp4a.40.5\"\n/abs/hi.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=3,CODECS=\"avc1.64001f\"\nvideo-only.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=4,CODECS=\"avc1.64001f,mp4a.40.2\"\nhttps://evil.example.org/v.m3u8\n";
        let out = run(m, "https://cdn.example.com/a/b/master.m3u8");
        assert_eq!((out.audio_groups, out.dubbed_groups), (0, 0));
        assert_eq!(out.routed_variants, 2);
        let lines: Vec<&str> = out.text.lines().collect();
        assert_eq!(lines[1], "#EXT-X-STREAM-INF:BANDWIDTH=1");
        let play = |line: &str| ref_of(line, "p", ".m3u8");
        assert_eq!(
            play(lines[2]),
            RefPayload::Playlist {
                url: "https://cdn.example.com/a/b/low/v.m3u8".into(),
                lang: "es".into(),
                bg: Background::Duck,
                duck_db: None,
            }
        );
        // HE-AAC is dubbed as AAC-LC: CODECS follows.
        assert_eq!(
            lines[3],
            "#EXT-X-STREAM-INF:BANDWIDTH=2,CODECS=\"avc1.64001f,mp4a.40.2\""
        );
        assert!(
            matches!(play(lines[4]), RefPayload::Playlist { url, .. } if url == "https://cdn.example.com/abs/hi.m3u8")
        );
        assert_eq!(lines[6], "https://cdn.example.com/a/b/video-only.m3u8");
        assert_eq!(lines[8], "https://evil.example.org/v.m3u8");
    }

    #[test]
    fn he_aac_group_codecs_become_lc_when_dubbed() {
        let m = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",LANGUAGE=\"en\",NAME=\"E\",DEFAULT=YES,URI=\"a/en.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.4d401e,mp4a.40.29\",AUDIO=\"a\"\nv.m3u8\n";
        let out = run(m, "https://cdn.example.com/m.m3u8");
        assert_eq!((out.dubbed_groups, out.routed_variants), (1, 0));
        assert!(out.text.contains(
            "CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"a\"\nhttps://cdn.example.com/v.m3u8\n"
        ));
    }

    #[test]
    fn ts_playlist_becomes_fmp4_with_built_maps() {
        let ts = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:4.0,\nseg7.ts\n#EXTINF:4.0,\nseg8.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z\n#EXTINF:3.0,\nseg9.ts\n#EXT-X-ENDLIST\n";
        let o = "http://127.0.0.1:8080/ts/";
        let out = run(ts, &format!("{o}index.m3u8"));
        assert_eq!(out.dubbed_segments, 3);
        let lines: Vec<&str> = out.text.lines().collect();
        assert_eq!(lines[1], "#EXT-X-VERSION:6");
        assert_eq!(
            lines[2..4],
            ["#EXT-X-TARGETDURATION:4", "#EXT-X-MEDIA-SEQUENCE:7"]
        );
        let built = |line: &str| ref_of(&uri_attr(line), "i", ".mp4");
        assert_eq!(
            built(lines[4]),
            RefPayload::BuiltInit {
                seg: format!("{o}seg7.ts")
            }
        );
        assert_eq!(lines[5], "#EXTINF:4.0,");
        let seg7 = ref_of(lines[6], "s", ".m4s");
        assert!(
            matches!(&seg7, RefPayload::Segment { init: None, prev: None, next: Some(n), .. } if *n == format!("{o}seg8.ts"))
        );
        assert!(matches!(
            ref_of(lines[8], "s", ".m4s"),
            RefPayload::Segment {
                init: None,
                prev: Some(_),
                next: None,
                ..
            }
        ));
        // After the discontinuity: a new map from the next segment, after the discontinuity
        // tag and before the segment's own tags.
        assert_eq!(lines[9], "#EXT-X-DISCONTINUITY");
        assert_eq!(
            built(lines[10]),
            RefPayload::BuiltInit {
                seg: format!("{o}seg9.ts")
            }
        );
        assert_eq!(lines[11], "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z");
        assert_eq!(lines[14], "#EXT-X-ENDLIST");
        assert_eq!(lines.len(), 15);

        // Without a version tag one is added; an encrypted TS playlist passes through whole.
        let out = run("#EXTM3U\n#EXTINF:4,\na.ts\n", &format!("{o}index.m3u8"));
        assert!(
            out.text
                .starts_with("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-MAP:URI=")
        );
        let enc = "#EXTM3U\n#EXTINF:4,\na.ts\n#EXT-X-KEY:METHOD=AES-128,URI=\"k.key\"\n#EXTINF:4,\nb.ts\n";
        let out = run(enc, &format!("{o}index.m3u8"));
        assert_eq!(out.dubbed_segments, 0);
        assert!(!out.text.contains("EXT-X-MAP") && !out.text.contains("/dub/"));
        assert!(out.text.contains(&format!("{o}a.ts\n")));
        // Subtitles and other packed audio have no map either: not TS, left alone.
        for other in ["sub.vtt", "a.mp3", "x.m4s?t=1"] {
            let pl = format!("#EXTM3U\n#EXTINF:4,\n{other}\n");
            let out = run(&pl, &format!("{o}index.m3u8"));
            assert_eq!(out.dubbed_segments, 0, "{other}");
            assert!(!out.text.contains("EXT-X-MAP"), "{other}");
        }
    }

    #[test]
    fn audio_outside_allowlist_is_not_dubbed() {
        let m = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"E\",DEFAULT=YES,URI=\"https://evil.example.org/a.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nv.m3u8\n";
        let out = run(m, "https://cdn.example.com/m.m3u8");
        assert_eq!((out.audio_groups, out.dubbed_groups), (1, 0));
        assert!(
            out.text
                .contains("DEFAULT=YES,URI=\"https://evil.example.org/a.m3u8\"")
        );
    }

    const MEDIA: &str = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-DISCONTINUITY-SEQUENCE:3
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z
#EXTINF:6.006,
seg100.m4s
#EXTINF:5.5,
seg101.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"init2.mp4\"
#EXTINF:4.0,
seg102.m4s?x=1
#EXT-X-CUSTOM-THING:A=\"b\"
#EXTINF:4.0,
#EXT-X-BYTERANGE:1000@0
big.m4s
#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://key\",KEYFORMAT=\"com.apple.streamingkeydelivery\"
#EXTINF:4.0,
enc.m4s
#EXT-X-KEY:METHOD=NONE
#EXTINF:4.0,
clear.m4s
#EXT-X-PART:DURATION=1.0,URI=\"part1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part2.m4s\"
";

    #[test]
    fn media_segments_point_at_the_edge_with_signed_context() {
        let base = "http://127.0.0.1:8080/live/en/index.m3u8";
        let out = run(MEDIA, base);
        assert_eq!(out.kind, Kind::Media);
        assert!(out.live);
        assert_eq!(out.dubbed_segments, 4);
        let lines: Vec<&str> = out.text.lines().collect();
        let src: Vec<&str> = MEDIA.lines().collect();
        assert_eq!(lines.len(), src.len());
        for i in [0, 1, 2, 3, 4, 6, 7, 9, 11, 13, 15, 16, 17, 20, 22, 23] {
            assert_eq!(lines[i], src[i], "line {i}");
        }
        let o = "http://127.0.0.1:8080/live/en/";
        let init_ref = |line: &str| ref_of(&uri_attr(line), "i", ".mp4");
        assert_eq!(
            init_ref(lines[5]),
            RefPayload::Init {
                url: format!("{o}init.mp4"),
                seg: Some(format!("{o}seg100.m4s")),
            }
        );
        assert_eq!(
            init_ref(lines[12]),
            RefPayload::Init {
                url: format!("{o}init2.mp4"),
                seg: Some(format!("{o}seg102.m4s?x=1")),
            }
        );
        let seg = |url: &str, init: &str, prev: Option<&str>, dur: f64| RefPayload::Segment {
            url: format!("{o}{url}"),
            init: Some(format!("{o}{init}")),
            prev: prev.map(|p| format!("{o}{p}")),
            next: (url == "seg100.m4s").then(|| format!("{o}seg101.m4s")),
            dur,
            vod: false,
            lang: "es".into(),
            bg: Background::Duck,
            duck_db: None,
        };
        assert_eq!(
            ref_of(lines[8], "s", ".m4s"),
            seg("seg100.m4s", "init.mp4", None, 6.006)
        );
        assert_eq!(
            ref_of(lines[10], "s", ".m4s"),
            seg("seg101.m4s", "init.mp4", Some("seg100.m4s"), 5.5)
        );
        // After a discontinuity there is no previous segment.
        assert_eq!(
            ref_of(lines[14], "s", ".m4s"),
            seg("seg102.m4s?x=1", "init2.mp4", None, 4.0)
        );
        // Byte range and encrypted segments pass through to the origin.
        assert_eq!(lines[18], format!("{o}big.m4s"));
        assert_eq!(lines[19], src[19]);
        assert_eq!(lines[21], format!("{o}enc.m4s"));
        // Only seg100 has a next (seg101): seg101 is followed by a discontinuity, seg102 by a
        // byte-range segment, and clear.m4s is the live playlist's last segment.
        // After a pass-through segment there is no previous segment either.
        assert_eq!(
            ref_of(lines[24], "s", ".m4s"),
            seg("clear.m4s", "init2.mp4", None, 4.0)
        );
        assert_eq!(
            lines[25],
            format!("#EXT-X-PART:DURATION=1.0,URI=\"{o}part1.m4s\"")
        );
        assert_eq!(
            lines[26],
            format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{o}part2.m4s\"")
        );
    }

    /// `next` mirrors `prev`: set between dubbed neighbours under the same init, cleared by a
    /// new init (even without a discontinuity); the last segment of a VOD playlist has none.
    #[test]
    fn segments_link_to_their_next_under_the_same_init() {
        let m = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"i.mp4\"\n\
#EXTINF:4,\na.m4s\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:4,\nb.m4s\n\
#EXT-X-MAP:URI=\"j.mp4\"\n#EXTINF:4,\nc.m4s\n#EXTINF:4,\nd.m4s\n#EXT-X-ENDLIST\n";
        let out = run(m, "https://cdn.example.com/p/x.m3u8");
        assert!(!out.live);
        assert_eq!(out.dubbed_segments, 4);
        let links: Vec<(String, Option<String>, Option<String>)> = out
            .text
            .lines()
            .filter(|l| l.starts_with("/dub/es/s/"))
            .map(|l| match ref_of(l, "s", ".m4s") {
                RefPayload::Segment {
                    url, prev, next, ..
                } => {
                    let short = |u: String| u.rsplit('/').next().unwrap().to_string();
                    (short(url), prev.map(short), next.map(short))
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            links,
            [
                ("a.m4s".into(), None, s("b.m4s")),
                ("b.m4s".into(), s("a.m4s"), None),
                ("c.m4s".into(), None, s("d.m4s")),
                ("d.m4s".into(), s("c.m4s"), None),
            ]
        );
    }

    /// When prev and next together make the ref too long, next is dropped first, then prev.
    #[test]
    fn long_neighbour_urls_are_dropped_from_the_ref() {
        let long = |c: char| format!("{}.m4s", c.to_string().repeat(1600));
        let m = format!(
            "#EXTM3U\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:4,\n{}\n#EXTINF:4,\nb.m4s\n#EXTINF:4,\n{}\n#EXT-X-ENDLIST\n",
            long('a'),
            long('c')
        );
        let out = run(&m, "https://cdn.example.com/p/x.m3u8");
        assert_eq!(out.dubbed_segments, 3);
        let middle = out
            .text
            .lines()
            .filter(|l| l.starts_with("/dub/es/s/"))
            .nth(1)
            .unwrap();
        match ref_of(middle, "s", ".m4s") {
            RefPayload::Segment {
                url, prev, next, ..
            } => {
                assert_eq!(url, "https://cdn.example.com/p/b.m4s");
                assert_eq!(
                    prev,
                    Some(format!("https://cdn.example.com/p/{}", long('a')))
                );
                assert_eq!(next, None, "dropped to fit MAX_REF_LEN");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn media_without_map_or_outside_allowlist_passes_through() {
        // TS with one segment off the allowlist: the whole playlist passes through.
        let ts = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n#EXTINF:4,\nhttps://elsewhere.example.org/b.ts\n#EXT-X-ENDLIST\n";
        let out = run(ts, "https://cdn.example.com/p/x.m3u8");
        assert!(!out.live);
        assert_eq!(out.dubbed_segments, 0);
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nhttps://cdn.example.com/p/a.ts\n#EXTINF:4,\nhttps://elsewhere.example.org/b.ts\n#EXT-X-ENDLIST\n"
        );
        let off = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:4,\nhttps://elsewhere.example.org/a.m4s\n";
        let out = run(off, "https://cdn.example.com/p/x.m3u8");
        assert_eq!(out.dubbed_segments, 0);
        assert!(
            out.text
                .ends_with("\nhttps://elsewhere.example.org/a.m4s\n")
        );
        let br = "#EXTM3U\n#EXT-X-MAP:URI=\"f.mp4\",BYTERANGE=\"700@0\"\n#EXTINF:4,\n#EXT-X-BYTERANGE:1000@700\nf.mp4\n";
        let out = run(br, "https://cdn.example.com/p/x.m3u8");
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-MAP:URI=\"https://cdn.example.com/p/f.mp4\",BYTERANGE=\"700@0\"\n#EXTINF:4,\n#EXT-X-BYTERANGE:1000@700\nhttps://cdn.example.com/p/f.mp4\n"
        );
    }

    #[test]
    fn native_names() {
        assert_eq!(native_name("es"), Some("Español"));
        assert_eq!(native_name("pt-BR"), Some("Português"));
        assert_eq!(native_name("xx"), None);
        let m = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"E\",URI=\"a.m3u8\"\n";
        let o = origins();
        let pl = parse(m.as_bytes()).unwrap();
        let c = RewriteCtx {
            lang: "xx",
            ..ctx(&o)
        };
        let out = rewrite(&pl, &Url::parse("https://cdn.example.com/").unwrap(), &c).unwrap();
        assert!(out.text.contains("LANGUAGE=\"xx\",NAME=\"xx (AI dub)\""));
    }

    /// Served from the edge, a playlist may only hold absolute URIs or root-relative edge paths.
    fn assert_no_relative_uris(name: &str, pl: &Playlist<'_>) {
        let ok = |u: &str| Url::parse(u).is_ok() || u.starts_with("/dub/es/");
        for line in &pl.lines {
            match *line {
                Line::Uri { uri, .. } => assert!(ok(uri), "{name}: relative URI line {uri}"),
                Line::Tag {
                    name: tag,
                    value: Some(v),
                    ..
                } if URI_TAGS.contains(&tag) => {
                    for a in parse_attrs(v).unwrap_or_default() {
                        if URI_ATTRS.contains(&a.name) && a.is_quoted() {
                            assert!(
                                ok(a.text()),
                                "{name}: relative {tag} {}={}",
                                a.name,
                                a.text()
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Every corpus playlist and every playlist in the hls.js parser tests goes through parse +
    /// rewrite (both kinds) without panicking; rewritten output parses again.
    #[test]
    fn corpus_never_panics() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/corpus");
        let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
        // Non-playlist files beside them (expected-result .js, the .ts test file): no panic.
        let mut others: Vec<Vec<u8>> = Vec::new();
        let mut stack = vec![
            root.join("playlists"),
            root.join("hls-fmp4"),
            root.join("hls-ts"),
        ];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "m3u8") {
                    inputs.push((p.display().to_string(), std::fs::read(&p).unwrap()));
                } else if p.starts_with(root.join("playlists")) {
                    others.push(std::fs::read(&p).unwrap());
                }
            }
        }
        let hlsjs =
            std::fs::read_to_string(root.join("playlists/hlsjs/m3u8-parser.test.ts")).unwrap();
        let mut n_hlsjs = 0;
        for (i, chunk) in hlsjs.split('`').enumerate() {
            if i % 2 == 1 && chunk.contains("#EXTM3U") {
                inputs.push((format!("hlsjs#{i}"), chunk.as_bytes().to_vec()));
                // Also as hls.js sees it after its own trimming.
                inputs.push((format!("hlsjs#{i}-trim"), chunk.trim().as_bytes().to_vec()));
                n_hlsjs += 1;
            }
        }
        assert!(n_hlsjs >= 50, "only {n_hlsjs} hls.js playlists found");
        assert!(
            inputs.len() >= 60 + 2 * n_hlsjs,
            "only {} inputs",
            inputs.len()
        );

        let o = vec!["https://*:*".to_string(), "http://*:*".to_string()];
        let c = ctx(&o);
        let base = Url::parse("https://cdn.example.com/a/b/master.m3u8").unwrap();
        let (mut ok, mut err) = (0, 0);
        for (name, bytes) in &inputs {
            let Ok(pl) = parse(bytes) else {
                err += 1;
                continue;
            };
            for r in [
                rewrite(&pl, &base, &c),
                rewrite_master(&pl, &base, &c),
                rewrite_media(&pl, &base, &c),
            ] {
                match r {
                    Ok(out) => {
                        ok += 1;
                        let again = parse(out.text.as_bytes());
                        assert!(
                            again.is_ok(),
                            "{name}: rewritten output does not parse: {again:?}"
                        );
                        assert_no_relative_uris(name, &again.unwrap());
                    }
                    Err(Error::Playlist(_)) => err += 1,
                    Err(e) => panic!("{name}: unexpected error {e:?}"),
                }
            }
        }
        // Mutated copies: structural characters and multi-byte text dropped in at random places,
        // and truncations (deterministic xorshift, so a failure reproduces).
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let pieces: [&[u8]; 10] = [
            b"\"",
            b"=",
            b",",
            b":",
            b"#",
            b"\n",
            b"\r",
            "é".as_bytes(),
            b"#EXT-X-MEDIA:",
            b"URI=\"",
        ];
        for (_, bytes) in inputs.iter().filter(|(_, b)| !b.is_empty()) {
            for _ in 0..20 {
                let mut m = bytes.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % m.len();
                    let piece = pieces[(next() as usize) % pieces.len()];
                    m.splice(at..at, piece.iter().copied());
                }
                if next() % 4 == 0 {
                    m.truncate((next() as usize) % m.len());
                }
                if let Ok(pl) = parse(&m) {
                    let _ = rewrite_master(&pl, &base, &c);
                    let _ = rewrite_media(&pl, &base, &c);
                }
            }
        }
        assert!(others.len() >= 50);
        for bytes in &others {
            if let Ok(pl) = parse(bytes) {
                let _ = rewrite(&pl, &base, &c);
            }
        }
        // Only the few corpus files without a leading #EXTM3U (or mixing master and media tags) fail.
        assert!(
            err <= 12 && ok == 3 * (inputs.len() - err),
            "ok={ok} err={err}"
        );
    }
}
