//! `inspect`: a JSON report of what a segment contains, for a user whose stream misbehaves.
//!
//! The report lists the boxes (or TS packets and PIDs), tracks, codecs, timescales, decode
//! times, encryption and a verdict. It is built from its own bounded walk of the bytes, so it
//! can describe files the dubbing path refuses; the verdict comes from that walk and from the
//! public dubbing path itself ([`crate::probe_init`], [`crate::open_segment`],
//! [`crate::decode_audio`]). Nothing here panics on hostile input, and every list is capped.
//!
//! ```
//! let report = dub_media::inspect::inspect_file(b"not media");
//! assert!(!report.valid());
//! assert!(report.to_json().contains("\"valid\":false"));
//! ```

use crate::error::Error;
use crate::limits;
use crate::mp4::reader::fourcc;

/// Most boxes listed in one report (the walk continues to count them).
pub const MAX_LISTED_BOXES: usize = 2000;
/// Most fragments (`moof`) listed in one report.
pub const MAX_LISTED_FRAGMENTS: usize = 1024;
/// Most TS PIDs listed.
const MAX_PIDS: usize = 64;
/// Most ADTS frames walked.
const MAX_ADTS_FRAMES: usize = 100_000;

/// A JSON value, rendered by [`Json::write`] (dub-media has no serde).
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An unsigned integer.
    U(u64),
    /// A signed integer.
    I(i64),
    /// A float (non-finite values render as `null`).
    F(f64),
    /// A string (escaped on output).
    S(String),
    /// An array.
    A(Vec<Json>),
    /// An object, keys in insertion order.
    O(Vec<(String, Json)>),
}

impl Json {
    /// An empty object.
    pub fn obj() -> Json {
        Json::O(Vec::new())
    }

    /// Add `key: value` to an object (no-op on other values); returns `self` for chaining.
    pub fn set(&mut self, key: &str, value: impl Into<Json>) -> &mut Json {
        if let Json::O(kv) = self {
            kv.push((key.to_string(), value.into()));
        }
        self
    }

    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::O(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Render compact JSON into `out`.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::U(n) => out.push_str(&n.to_string()),
            Json::I(n) => out.push_str(&n.to_string()),
            Json::F(f) if f.is_finite() => out.push_str(&format!("{f}")),
            Json::F(_) => out.push_str("null"),
            Json::S(s) => write_str(s, out),
            Json::A(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::O(kv) => {
                out.push('{');
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }
}

/// A JSON string literal with RFC 8259 escaping.
fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl From<bool> for Json {
    fn from(v: bool) -> Self {
        Json::Bool(v)
    }
}
impl From<u64> for Json {
    fn from(v: u64) -> Self {
        Json::U(v)
    }
}
impl From<u32> for Json {
    fn from(v: u32) -> Self {
        Json::U(v.into())
    }
}
impl From<u16> for Json {
    fn from(v: u16) -> Self {
        Json::U(v.into())
    }
}
impl From<usize> for Json {
    fn from(v: usize) -> Self {
        Json::U(v as u64)
    }
}
impl From<i64> for Json {
    fn from(v: i64) -> Self {
        Json::I(v)
    }
}
impl From<f64> for Json {
    fn from(v: f64) -> Self {
        Json::F(v)
    }
}
impl From<&str> for Json {
    fn from(v: &str) -> Self {
        Json::S(v.to_string())
    }
}
impl From<String> for Json {
    fn from(v: String) -> Self {
        Json::S(v)
    }
}
impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(v: Option<T>) -> Self {
        v.map_or(Json::Null, Into::into)
    }
}
impl From<Vec<Json>> for Json {
    fn from(v: Vec<Json>) -> Self {
        Json::A(v)
    }
}

/// What kind of file a buffer is, from its first bytes and top-level boxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `moov` with `mvex` and no `moof`: an fMP4 init segment.
    Fmp4Init,
    /// `moof` without `moov`: an fMP4 media segment.
    Fmp4Media,
    /// `moov` and `moof` in one file (self-initialising fMP4).
    Fmp4,
    /// `moov` without `mvex` or `moof`: a progressive MP4.
    Mp4,
    /// ISO-BMFF boxes without `moov` or `moof` (e.g. only `sidx`).
    Boxes,
    /// MPEG-2 transport stream.
    Ts,
    /// Packed ADTS audio (optionally behind ID3).
    Adts,
    /// Not recognised.
    Unknown,
}

impl FileKind {
    /// The name used in the report.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Fmp4Init => "fmp4-init",
            FileKind::Fmp4Media => "fmp4-media",
            FileKind::Fmp4 => "fmp4",
            FileKind::Mp4 => "mp4",
            FileKind::Boxes => "iso-bmff",
            FileKind::Ts => "ts",
            FileKind::Adts => "adts",
            FileKind::Unknown => "unknown",
        }
    }
}

/// Classify a buffer without validating it fully.
pub fn file_kind(data: &[u8]) -> FileKind {
    if is_ts(data) {
        return FileKind::Ts;
    }
    let mut top = Vec::new();
    let mut pos = 0usize;
    while let Some(h) = header_at(data, pos) {
        top.push(h.kind);
        if top.len() >= limits::MAX_BOXES_PER_LEVEL || h.size == 0 {
            break;
        }
        pos += h.size;
    }
    let has = |k: &[u8; 4]| top.iter().any(|t| t == k);
    let boxy = |k: &[u8; 4]| k.iter().all(|&c| c.is_ascii_alphanumeric() || c == b' ');
    if let Some(first) = top.first()
        && (KNOWN_TOP.contains(first) || boxy(first) || has(b"moov") || has(b"moof"))
    {
        return match (has(b"moov"), has(b"moof")) {
            (true, true) => FileKind::Fmp4,
            (false, true) => FileKind::Fmp4Media,
            (true, false) => {
                if moov_has_mvex(data) {
                    FileKind::Fmp4Init
                } else {
                    FileKind::Mp4
                }
            }
            (false, false) => FileKind::Boxes,
        };
    }
    if adts_start(data).is_some() {
        return FileKind::Adts;
    }
    FileKind::Unknown
}

const KNOWN_TOP: [[u8; 4]; 14] = [
    *b"ftyp", *b"styp", *b"moov", *b"moof", *b"sidx", *b"free", *b"skip", *b"mdat", *b"emsg",
    *b"prft", *b"uuid", *b"wide", *b"meta", *b"mfra",
];

/// A report for one input (a file, or an init and a media segment inspected together).
#[derive(Clone, Debug)]
pub struct Report {
    json: Json,
    valid: bool,
}

impl Report {
    /// Whether the input passed the structural walk and the dubbing path's validation.
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// The report as a JSON value.
    pub fn json(&self) -> &Json {
        &self.json
    }

    /// Prefix the report with the input's path(s) (as the CLI names them).
    pub fn with_paths(mut self, paths: &[&str]) -> Report {
        if let Json::O(kv) = &mut self.json {
            let v: Vec<Json> = paths.iter().map(|p| Json::from(*p)).collect();
            kv.insert(0, ("files".to_string(), Json::A(v)));
        }
        self
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        self.json.to_json()
    }
}

/// Collects the report's parts and the first error of the structural walk.
struct Builder {
    boxes: Vec<Json>,
    box_count: usize,
    tracks: Vec<Json>,
    fragments: Vec<Json>,
    fragment_count: usize,
    schemes: Vec<String>,
    protected_entries: Vec<String>,
    enc_notes: Vec<String>,
    /// Signs of encryption that are not proof (e.g. no sync byte in a `.ts`).
    enc_hints: Vec<String>,
    error: Option<String>,
    notes: Vec<String>,
    /// Why a structurally valid input is still not something the dubbing path takes.
    not_dubbable: Option<&'static str>,
    trex: Vec<(u32, u32)>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            boxes: Vec::new(),
            box_count: 0,
            tracks: Vec::new(),
            fragments: Vec::new(),
            fragment_count: 0,
            schemes: Vec::new(),
            protected_entries: Vec::new(),
            enc_notes: Vec::new(),
            enc_hints: Vec::new(),
            error: None,
            notes: Vec::new(),
            not_dubbable: None,
            trex: Vec::new(),
        }
    }

    fn fail(&mut self, msg: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(msg.into());
        }
    }

    fn encrypted(&self) -> bool {
        !self.schemes.is_empty() || !self.protected_entries.is_empty() || !self.enc_notes.is_empty()
    }

    fn finish(
        self,
        container: &str,
        size: usize,
        dub: Option<Json>,
        dub_err: Option<&Error>,
    ) -> Report {
        let encrypted = self.encrypted();
        let checked = dub.is_some() || dub_err.is_some();
        let mut j = Json::obj();
        j.set("container", container).set("size", size);
        if self.box_count > 0 {
            j.set("box_count", self.box_count);
            j.set("boxes", Json::A(self.boxes));
            if self.box_count > MAX_LISTED_BOXES {
                j.set("boxes_truncated", true);
            }
        }
        j.set("tracks", Json::A(self.tracks));
        if self.fragment_count > 0 {
            j.set("fragment_count", self.fragment_count);
            j.set("fragments", Json::A(self.fragments));
        }
        let mut enc = Json::obj();
        enc.set("encrypted", encrypted);
        let strs = |v: &[String]| Json::A(v.iter().map(|s| Json::from(s.as_str())).collect());
        enc.set("schemes", strs(&self.schemes));
        enc.set("protected_entries", strs(&self.protected_entries));
        enc.set("notes", strs(&self.enc_notes));
        if !self.enc_hints.is_empty() {
            enc.set("hints", strs(&self.enc_hints));
        }
        j.set("encryption", enc);
        if let Some(d) = dub {
            j.set("audio", d);
        }
        // The verdict: a structural error, or a dubbing-path error that says the bytes are
        // malformed (Invalid, Limit), makes the input invalid. Encrypted or unsupported input
        // is valid but not dubbable.
        let (valid, error) = match (&self.error, dub_err) {
            (Some(e), _) => (false, Some(e.clone())),
            (None, Some(e @ (Error::Invalid(_) | Error::Limit(_) | Error::Internal(_)))) => {
                (false, Some(e.to_string()))
            }
            _ => (true, None),
        };
        let mut verdict = Json::obj();
        verdict.set("valid", valid).set("error", error);
        verdict.set(
            "dubbable",
            valid && checked && dub_err.is_none() && self.not_dubbable.is_none(),
        );
        if valid && let Some(e) = dub_err {
            verdict.set("reason", e.to_string());
        } else if valid && let Some(why) = self.not_dubbable {
            verdict.set("reason", why);
        }
        if !self.notes.is_empty() {
            verdict.set("notes", strs(&self.notes));
        }
        j.set("verdict", verdict);
        Report { json: j, valid }
    }
}

/// Inspect one file on its own: an init segment, a media segment, a self-initialising fMP4,
/// a TS segment or packed ADTS audio.
pub fn inspect_file(data: &[u8]) -> Report {
    let c = file_kind(data);
    match c {
        FileKind::Ts => inspect_ts(data),
        FileKind::Adts => inspect_adts(data),
        FileKind::Unknown => {
            let mut b = Builder::new();
            if data.is_empty() {
                b.fail("empty file");
            } else {
                b.fail("not ISO-BMFF, MPEG-TS or ADTS");
                if data.len().is_multiple_of(16) {
                    // AES-128 (CBC) whole-segment encryption keeps 16-byte blocks.
                    b.enc_hints.push(
                        "no sync byte: whole-segment AES-128 encryption? (size is a multiple of 16)"
                            .into(),
                    );
                }
            }
            b.finish(c.name(), data.len(), None, None)
        }
        _ => {
            let mut b = Builder::new();
            walk_mp4(data, &mut b);
            let (dub, err) = match c {
                FileKind::Fmp4Init | FileKind::Mp4 => match crate::probe_init(data) {
                    Ok(t) => (Some(track_json(&t)), None),
                    Err(e) => (None, Some(e)),
                },
                FileKind::Fmp4 => dub_path(data, data),
                FileKind::Fmp4Media => {
                    b.not_dubbable =
                        Some("media segment without its init: give the init first to check it");
                    (None, None)
                }
                _ => {
                    b.fail("no moov or moof box");
                    (None, None)
                }
            };
            if c == FileKind::Mp4 {
                b.not_dubbable = Some("not fragmented (no mvex): not an HLS/CMAF segment");
            }
            b.finish(c.name(), data.len(), dub, err.as_ref())
        }
    }
}

/// Inspect an init segment and a media segment together (tracks from the init, fragments
/// from the media segment, trex defaults applied, and the full dubbing path as the verdict).
pub fn inspect_pair(init: &[u8], media: &[u8]) -> Report {
    let mut b = Builder::new();
    walk_mp4(init, &mut b);
    let init_boxes = std::mem::take(&mut b.boxes);
    let init_count = std::mem::replace(&mut b.box_count, 0);
    walk_mp4(media, &mut b);
    let media_boxes = std::mem::take(&mut b.boxes);
    let media_count = std::mem::replace(&mut b.box_count, 0);
    let (dub, err) = dub_path(init, media);
    let mut r = b.finish(
        "fmp4-init+media",
        init.len() + media.len(),
        dub,
        err.as_ref(),
    );
    if let Json::O(kv) = &mut r.json {
        let pos = kv
            .iter()
            .position(|(k, _)| k == "tracks")
            .unwrap_or(kv.len());
        let mut boxes = Json::obj();
        boxes
            .set("init", Json::A(init_boxes))
            .set("media", Json::A(media_boxes));
        boxes
            .set("init_count", init_count)
            .set("media_count", media_count);
        kv.insert(pos, ("boxes".to_string(), boxes));
        if let Some(size) = kv.iter_mut().find(|(k, _)| k == "size") {
            size.1 = Json::A(vec![init.len().into(), media.len().into()]);
        }
    }
    r
}

/// The dubbing path: open the segment and decode its audio.
fn dub_path(init: &[u8], media: &[u8]) -> (Option<Json>, Option<Error>) {
    let seg = match crate::open_segment(init, media) {
        Ok(s) => s,
        Err(e) => return (None, Some(e)),
    };
    let t = seg.timing();
    let mut j = track_json(seg.track());
    j.set("base_decode_time", t.base_decode_time);
    j.set("frame_count", t.frame_count);
    j.set("duration", t.duration);
    let ts = f64::from(seg.track().timescale.max(1));
    j.set("start_seconds", t.base_decode_time as f64 / ts);
    j.set("duration_seconds", t.duration as f64 / ts);
    j.set("muxed", seg.has_other_tracks());
    j.set(
        "source",
        match seg.container() {
            crate::Container::Ts => "ts",
            crate::Container::PackedAudio => "packed-audio",
            _ => "fmp4",
        },
    );
    if let Some(pts) = seg.first_pts() {
        j.set("first_pts", pts);
    }
    match crate::decode_audio(&seg) {
        Ok(pcm) => {
            j.set("decoded_frames", pcm.frames());
            (Some(j), None)
        }
        Err(e) => (Some(j), Some(e)),
    }
}

fn track_json(t: &crate::AudioTrack) -> Json {
    let mut j = Json::obj();
    j.set("track_id", t.track_id)
        .set("codec", t.codec.as_str())
        .set("timescale", t.timescale)
        .set("sample_rate", t.sample_rate)
        .set("channels", t.channels);
    j
}

// ---------------------------------------------------------------------------------------------
// ISO-BMFF

#[derive(Clone, Copy, Debug)]
struct Header {
    kind: [u8; 4],
    /// Total size (0 never: "to the end" is resolved).
    size: usize,
    header: usize,
}

/// The box header at `pos`, if it fits in `data`.
fn header_at(data: &[u8], pos: usize) -> Option<Header> {
    let rest = data.get(pos..)?;
    let size32 = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let kind: [u8; 4] = rest.get(4..8)?.try_into().ok()?;
    let (size, header) = match size32 {
        0 => (rest.len(), 8),
        1 => {
            let large = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
            (usize::try_from(large).ok()?, 16)
        }
        n => (n as usize, 8),
    };
    (size >= header && size <= rest.len()).then_some(Header { kind, size, header })
}

/// Boxes whose body is a list of boxes after `skip` bytes of fields.
fn container_skip(kind: &[u8; 4]) -> Option<usize> {
    Some(match kind {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"mvex" | b"moof" | b"traf" | b"edts"
        | b"dinf" | b"sinf" | b"schi" | b"mfra" | b"udta" | b"rinf" => 0,
        b"stsd" => 8,
        b"meta" => 4,
        b"mp4a" | b"enca" | b"ac-3" | b"ec-3" | b"Opus" | b"fLaC" => 28,
        b"avc1" | b"avc3" | b"encv" | b"hvc1" | b"hev1" | b"av01" | b"vp09" => 78,
        _ => return None,
    })
}

/// A bounded read of big-endian integers.
fn be(data: &[u8], at: usize, n: usize) -> Option<u64> {
    let b = data.get(at..at.checked_add(n)?)?;
    Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

/// Children of a box body: (kind, body, absolute offset of the box).
fn kids(body: &[u8], base: usize) -> Vec<([u8; 4], &[u8], usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while out.len() < limits::MAX_BOXES_PER_LEVEL {
        let Some(h) = header_at(body, pos) else { break };
        let b = body.get(pos + h.header..pos + h.size).unwrap_or(&[]);
        out.push((h.kind, b, base + pos));
        pos += h.size;
    }
    out
}

fn child<'a>(k: &[([u8; 4], &'a [u8], usize)], kind: &[u8; 4]) -> Option<&'a [u8]> {
    k.iter().find(|(t, _, _)| t == kind).map(|(_, b, _)| *b)
}

/// Walk the whole file: list boxes, then describe `moov` tracks and `moof` fragments.
fn walk_mp4(data: &[u8], b: &mut Builder) {
    if let Err(e) = limits::check_input_len(data.len(), "file") {
        b.fail(e.to_string());
        return;
    }
    list_boxes(data, 0, 0, b);
    let top = kids(data, 0);
    if let Some(moov) = child(&top, b"moov") {
        let moov_start = top.iter().find(|(t, _, _)| t == b"moov").map_or(0, |x| x.2);
        describe_moov(moov, moov_start, b);
    }
    for (kind, body, start) in &top {
        if kind == b"moof" {
            b.fragment_count += 1;
            if b.fragments.len() < MAX_LISTED_FRAGMENTS {
                let f = describe_moof(body, *start, b);
                b.fragments.push(f);
            }
        }
    }
}

/// List boxes depth-first; the first structural error is the verdict's error.
fn list_boxes(data: &[u8], base: usize, depth: usize, b: &mut Builder) {
    if depth > limits::MAX_BOX_DEPTH {
        b.fail(format!("box nesting deeper than {}", limits::MAX_BOX_DEPTH));
        return;
    }
    let mut pos = 0usize;
    let mut n = 0usize;
    while pos < data.len() {
        n += 1;
        if n > limits::MAX_BOXES_PER_LEVEL {
            b.fail(format!(
                "more than {} boxes in one container",
                limits::MAX_BOXES_PER_LEVEL
            ));
            return;
        }
        let Some(h) = header_at(data, pos) else {
            let left = data.len() - pos;
            let what = match (be(data, pos, 4), data.get(pos + 4..pos + 8)) {
                (Some(size), Some(k)) => format!(
                    "box {} at {}: size {} does not fit in the {} bytes left",
                    fourcc([k[0], k[1], k[2], k[3]]),
                    base + pos,
                    size,
                    left
                ),
                _ => format!("{left} trailing bytes at {} are not a box", base + pos),
            };
            b.fail(what);
            return;
        };
        b.box_count += 1;
        if b.boxes.len() < MAX_LISTED_BOXES {
            let mut j = Json::obj();
            j.set("type", fourcc(h.kind))
                .set("offset", base + pos)
                .set("size", h.size)
                .set("depth", depth);
            b.boxes.push(j);
        }
        if let Some(skip) = container_skip(&h.kind) {
            let start = pos + h.header + skip;
            let body = data.get(start..pos + h.size).unwrap_or(&[]);
            let skip = if &h.kind == b"mp4a" || &h.kind == b"enca" {
                // QuickTime sound sample description versions 1 and 2 have longer fields.
                match be(data, pos + h.header + 8, 2) {
                    Some(1) => 16,
                    Some(2) => 36,
                    _ => 0,
                }
            } else {
                0
            };
            let body = body.get(skip..).unwrap_or(&[]);
            list_boxes(body, base + start + skip, depth + 1, b);
        }
        pos += h.size;
    }
}

fn describe_moov(moov: &[u8], base: usize, b: &mut Builder) {
    let k = kids(moov, base);
    if let Some(mvex) = child(&k, b"mvex") {
        for (kind, t, _) in kids(mvex, 0) {
            if &kind == b"trex"
                && let (Some(id), Some(dur)) = (be(t, 4, 4), be(t, 12, 4))
            {
                b.trex.push((id as u32, dur as u32));
            }
        }
    }
    for (kind, trak, _) in &k {
        if kind != b"trak" {
            continue;
        }
        if b.tracks.len() >= limits::MAX_TRACKS {
            b.fail(format!("more than {} tracks", limits::MAX_TRACKS));
            return;
        }
        let t = describe_trak(trak, b);
        b.tracks.push(t);
    }
}

fn describe_trak(trak: &[u8], b: &mut Builder) -> Json {
    let mut j = Json::obj();
    let k = kids(trak, 0);
    let tkhd = child(&k, b"tkhd").unwrap_or(&[]);
    let id_at = if tkhd.first() == Some(&1) { 20 } else { 12 };
    j.set("id", be(tkhd, id_at, 4));
    let mdia = kids(child(&k, b"mdia").unwrap_or(&[]), 0);
    let hdlr = child(&mdia, b"hdlr").unwrap_or(&[]);
    let handler = hdlr.get(8..12).map(|h| fourcc([h[0], h[1], h[2], h[3]]));
    j.set("handler", handler.clone());
    let mdhd = child(&mdia, b"mdhd").unwrap_or(&[]);
    let ts_at = if mdhd.first() == Some(&1) { 20 } else { 12 };
    j.set("timescale", be(mdhd, ts_at, 4));
    let minf = kids(child(&mdia, b"minf").unwrap_or(&[]), 0);
    let stbl = kids(child(&minf, b"stbl").unwrap_or(&[]), 0);
    let Some(stsd) = child(&stbl, b"stsd") else {
        j.set("codec", Json::Null);
        return j;
    };
    let entries = kids(stsd.get(8..).unwrap_or(&[]), 0);
    j.set("sample_entries", be(stsd, 4, 4));
    let Some((kind, entry, _)) = entries.first() else {
        j.set("codec", Json::Null);
        return j;
    };
    let audio = handler.as_deref() == Some("soun");
    let fixed = if audio {
        match be(entry, 8, 2) {
            Some(1) => 44,
            Some(2) => 64,
            _ => 28,
        }
    } else {
        78
    };
    let ek = kids(entry.get(fixed..).unwrap_or(&[]), 0);
    let mut format = *kind;
    if matches!(kind, b"enca" | b"encv" | b"enct" | b"encs") {
        b.protected_entries.push(fourcc(*kind));
        let mut p = Json::obj();
        p.set("entry", fourcc(*kind));
        if let Some(sinf) = child(&ek, b"sinf") {
            let sk = kids(sinf, 0);
            if let Some(f) = child(&sk, b"frma").and_then(|f| f.get(..4)) {
                format = [f[0], f[1], f[2], f[3]];
                p.set("original_format", fourcc(format));
            }
            if let Some(schm) = child(&sk, b"schm").and_then(|s| s.get(4..8)) {
                let s = fourcc([schm[0], schm[1], schm[2], schm[3]]);
                if !b.schemes.contains(&s) {
                    b.schemes.push(s.clone());
                }
                p.set("scheme", s);
            }
        }
        j.set("protection", p);
    }
    let codec = match &format {
        b"mp4a" => {
            let asc = child(&ek, b"esds").and_then(esds_asc);
            match asc.as_ref().and_then(|(oti, asc)| asc_info(*oti, asc)) {
                Some((codec, rate, ch)) => {
                    j.set("sample_rate", rate).set("channels", ch);
                    codec
                }
                None => "mp4a".to_string(),
            }
        }
        b"avc1" | b"avc3" => match child(&ek, b"avcC").and_then(|c| c.get(1..4)) {
            Some(p) => format!("{}.{:02x}{:02x}{:02x}", fourcc(format), p[0], p[1], p[2]),
            None => fourcc(format),
        },
        other => fourcc(*other),
    };
    if audio && j.get("sample_rate").is_none() {
        // The sample entry's own fields (16.16 rate) when the codec config gave none.
        j.set("sample_rate", be(entry, 24, 2))
            .set("channels", be(entry, 16, 2));
    } else if !audio && handler.as_deref() == Some("vide") {
        j.set("width", be(entry, 24, 2))
            .set("height", be(entry, 26, 2));
    }
    j.set("codec", codec);
    j
}

/// (objectTypeIndication, DecoderSpecificInfo) from an `esds` body, bounded.
fn esds_asc(body: &[u8]) -> Option<(u8, Vec<u8>)> {
    fn desc(d: &[u8], pos: &mut usize) -> Option<(u8, std::ops::Range<usize>)> {
        let tag = *d.get(*pos)?;
        *pos += 1;
        let mut len = 0usize;
        for _ in 0..4 {
            let b = *d.get(*pos)?;
            *pos += 1;
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        let r = *pos..pos.checked_add(len)?;
        d.get(r.clone())?;
        *pos = r.end;
        Some((tag, r))
    }
    let d = body.get(4..)?;
    let mut pos = 0;
    let (tag, es) = desc(d, &mut pos)?;
    if tag != 3 {
        return None;
    }
    let es = d.get(es)?;
    let flags = *es.get(2)?;
    let mut p = 3;
    if flags & 0x80 != 0 {
        p += 2;
    }
    if flags & 0x40 != 0 {
        p += 1 + usize::from(*es.get(p)?);
    }
    if flags & 0x20 != 0 {
        p += 2;
    }
    while p < es.len() {
        let (tag, r) = desc(es, &mut p)?;
        if tag != 4 {
            continue;
        }
        let dc = es.get(r)?;
        let oti = *dc.first()?;
        let mut q = 13;
        while q < dc.len() {
            let (tag, r) = desc(dc, &mut q)?;
            if tag == 5 {
                return Some((oti, dc.get(r)?.to_vec()));
            }
        }
        return Some((oti, Vec::new()));
    }
    None
}

/// Codec string, sample rate and channels from an OTI and AudioSpecificConfig.
fn asc_info(oti: u8, asc: &[u8]) -> Option<(String, u32, u32)> {
    if oti != 0x40 {
        return Some((format!("mp4a.{oti:02x}"), 0, 0));
    }
    let bit = |i: usize| -> Option<u32> { Some(u32::from((asc.get(i / 8)? >> (7 - i % 8)) & 1)) };
    let bits = |from: usize, n: usize| -> Option<u32> {
        (from..from + n).try_fold(0u32, |acc, i| Some((acc << 1) | bit(i)?))
    };
    let mut pos = 0;
    let mut aot = bits(pos, 5)?;
    pos += 5;
    if aot == 31 {
        aot = 32 + bits(pos, 6)?;
        pos += 6;
    }
    let sfi = bits(pos, 4)?;
    pos += 4;
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let rate = if sfi == 15 {
        let r = bits(pos, 24)?;
        pos += 24;
        r
    } else {
        RATES.get(sfi as usize).copied().unwrap_or(0)
    };
    let cc = bits(pos, 4)?;
    let channels = if cc == 7 { 8 } else { cc };
    Some((format!("mp4a.40.{aot}"), rate, channels))
}

fn describe_moof(moof: &[u8], start: usize, b: &mut Builder) -> Json {
    let mut j = Json::obj();
    let k = kids(moof, start);
    j.set("offset", start);
    j.set(
        "sequence_number",
        child(&k, b"mfhd").and_then(|m| be(m, 4, 4)),
    );
    let mut trafs = Vec::new();
    for (kind, traf, _) in &k {
        if kind != b"traf" {
            continue;
        }
        let tk = kids(traf, 0);
        let mut t = Json::obj();
        let tfhd = child(&tk, b"tfhd").unwrap_or(&[]);
        let flags = be(tfhd, 1, 3).unwrap_or(0);
        let id = be(tfhd, 4, 4);
        t.set("track_id", id);
        // Optional tfhd fields in order: base offset (8), sdi (4), duration (4), size (4).
        let mut p = 8;
        if flags & 0x01 != 0 {
            p += 8;
        }
        if flags & 0x02 != 0 {
            p += 4;
        }
        let tfhd_dur = (flags & 0x08 != 0).then(|| be(tfhd, p, 4)).flatten();
        let trex_dur = id.and_then(|id| {
            b.trex
                .iter()
                .find(|(t, _)| u64::from(*t) == id)
                .map(|(_, d)| u64::from(*d))
        });
        let default_dur = tfhd_dur.or(trex_dur);
        let tfdt = child(&tk, b"tfdt").and_then(|d| {
            if d.first() == Some(&1) {
                be(d, 4, 8)
            } else {
                be(d, 4, 4)
            }
        });
        t.set("tfdt", tfdt);
        let (mut count, mut duration, mut runs) = (0u64, Some(0u64), 0usize);
        for (kind, trun, _) in &tk {
            if kind != b"trun" {
                continue;
            }
            runs += 1;
            match trun_totals(trun, default_dur) {
                Some((n, d)) => {
                    count = count.saturating_add(n);
                    duration = duration.zip(d).map(|(a, b)| a.saturating_add(b));
                }
                None => {
                    b.fail(format!(
                        "trun in traf of track {}: samples do not fit the box",
                        id.unwrap_or(0)
                    ));
                    duration = None;
                }
            }
        }
        t.set("truns", runs)
            .set("sample_count", count)
            .set("duration", duration);
        let enc: Vec<Json> = [b"senc", b"saiz", b"saio", b"sbgp", b"sgpd"]
            .iter()
            .filter(|k| tk.iter().any(|(t, _, _)| &t == *k))
            .map(|k| Json::from(fourcc(**k)))
            .collect();
        if enc
            .iter()
            .any(|e| matches!(e, Json::S(s) if s == "senc" || s == "saiz"))
        {
            let note = "sample encryption info (senc/saiz) in a traf".to_string();
            if !b.enc_notes.contains(&note) {
                b.enc_notes.push(note);
            }
        }
        if !enc.is_empty() {
            t.set("encryption_boxes", Json::A(enc));
        }
        trafs.push(t);
    }
    j.set("trafs", Json::A(trafs));
    j
}

/// (sample count, total duration if known) of one `trun`; `None` if the entries overrun.
fn trun_totals(trun: &[u8], default_dur: Option<u64>) -> Option<(u64, Option<u64>)> {
    let flags = be(trun, 1, 3)?;
    let count = be(trun, 4, 4)?;
    let mut p = 8;
    if flags & 0x01 != 0 {
        p += 4;
    }
    if flags & 0x04 != 0 {
        p += 4;
    }
    let entry = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count()
        * 4;
    let left = trun.len().checked_sub(p)?;
    if (count as usize).saturating_mul(entry) > left {
        return None;
    }
    if flags & 0x100 == 0 {
        return Some((count, default_dur.map(|d| d.saturating_mul(count))));
    }
    let mut total = 0u64;
    for i in 0..count as usize {
        total = total.saturating_add(be(trun, p + i * entry, 4)?);
    }
    Some((count, Some(total)))
}

fn moov_has_mvex(data: &[u8]) -> bool {
    let top = kids(data, 0);
    child(&top, b"moov").is_some_and(|m| child(&kids(m, 0), b"mvex").is_some())
}

// ---------------------------------------------------------------------------------------------
// MPEG-TS

fn is_ts(data: &[u8]) -> bool {
    data.first() == Some(&0x47) && (data.len() < 189 || data.get(188) == Some(&0x47))
}

fn stream_type_name(t: u8) -> &'static str {
    match t {
        0x0f => "AAC (ADTS)",
        0x11 => "AAC (LATM)",
        0x03 | 0x04 => "MPEG audio",
        0x1b => "H.264",
        0x24 => "HEVC",
        0x15 => "ID3 metadata",
        0x81 => "AC-3",
        0x87 => "E-AC-3",
        0xcf => "SAMPLE-AES AAC",
        0xdb => "SAMPLE-AES H.264",
        0xc1 => "SAMPLE-AES AC-3",
        0xc2 => "SAMPLE-AES E-AC-3",
        0x06 => "private PES",
        _ => "other",
    }
}

#[derive(Default)]
struct PidInfo {
    pid: u16,
    packets: u64,
    pes_starts: u64,
    first_pts: Option<u64>,
    cc_errors: u64,
    last_cc: Option<u8>,
}

fn inspect_ts(data: &[u8]) -> Report {
    let mut b = Builder::new();
    if let Err(e) = limits::check_input_len(data.len(), "TS segment") {
        b.fail(e.to_string());
        return b.finish("ts", data.len(), None, None);
    }
    let mut pids: Vec<PidInfo> = Vec::new();
    let mut pmt_pid: Option<u16> = None;
    let mut streams: Vec<(u16, u8)> = Vec::new();
    let mut packets = 0u64;
    let mut tei = 0u64;
    let mut extra_pids = false;
    for (i, p) in data.chunks(188).enumerate() {
        if p.len() < 188 {
            b.fail(format!("{} trailing bytes after {} packets", p.len(), i));
            break;
        }
        if p[0] != 0x47 {
            b.fail(format!("packet {i} at {}: no sync byte", i * 188));
            break;
        }
        packets += 1;
        if p[1] & 0x80 != 0 {
            tei += 1;
            continue;
        }
        let pusi = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        let afc = (p[3] >> 4) & 3;
        let cc = p[3] & 0x0f;
        let mut off = 4usize;
        if afc & 2 != 0 {
            off += 1 + usize::from(p[4]);
        }
        let payload = if afc & 1 != 0 {
            p.get(off..).unwrap_or(&[])
        } else {
            &[]
        };
        let idx = match pids.iter().position(|x| x.pid == pid) {
            Some(i) => i,
            None if pids.len() < MAX_PIDS => {
                pids.push(PidInfo {
                    pid,
                    ..PidInfo::default()
                });
                pids.len() - 1
            }
            None => {
                extra_pids = true;
                continue;
            }
        };
        let info = &mut pids[idx];
        info.packets += 1;
        if afc & 1 != 0 && pid != 0x1fff {
            if let Some(last) = info.last_cc
                && (last + 1) & 0x0f != cc
                && last != cc
            {
                info.cc_errors += 1;
            }
            info.last_cc = Some(cc);
        }
        if pid == 0 && pusi {
            // PAT: first program's PMT PID.
            let s = payload
                .get(1 + usize::from(*payload.first().unwrap_or(&0))..)
                .unwrap_or(&[]);
            let len = (be(s, 1, 2).unwrap_or(0) & 0x0fff) as usize;
            let mut q = 8;
            while q + 4 <= (3 + len).saturating_sub(4).min(s.len()) {
                let prog = be(s, q, 2).unwrap_or(0);
                let ppid = (be(s, q + 2, 2).unwrap_or(0) & 0x1fff) as u16;
                if prog != 0 {
                    pmt_pid.get_or_insert(ppid);
                    break;
                }
                q += 4;
            }
        } else if Some(pid) == pmt_pid && pusi && streams.is_empty() {
            let s = payload
                .get(1 + usize::from(*payload.first().unwrap_or(&0))..)
                .unwrap_or(&[]);
            let len = (be(s, 1, 2).unwrap_or(0) & 0x0fff) as usize;
            let end = (3 + len).saturating_sub(4).min(s.len());
            let pi_len = (be(s, 10, 2).unwrap_or(0) & 0x0fff) as usize;
            let mut q = 12 + pi_len;
            while q + 5 <= end && streams.len() < MAX_PIDS {
                let st = s[q];
                let epid = (be(s, q + 1, 2).unwrap_or(0) & 0x1fff) as u16;
                let es_len = (be(s, q + 3, 2).unwrap_or(0) & 0x0fff) as usize;
                streams.push((epid, st));
                q += 5 + es_len;
            }
        } else if pusi && payload.starts_with(&[0, 0, 1]) {
            info.pes_starts += 1;
            if info.first_pts.is_none() && payload.get(7).is_some_and(|f| f & 0x80 != 0) {
                info.first_pts = payload.get(9..14).map(|t| {
                    (u64::from(t[0] >> 1 & 7) << 30)
                        | (u64::from(t[1]) << 22)
                        | (u64::from(t[2] >> 1) << 15)
                        | (u64::from(t[3]) << 7)
                        | u64::from(t[4] >> 1)
                });
            }
        }
    }
    let mut list = Vec::new();
    for info in &pids {
        let mut j = Json::obj();
        j.set("pid", info.pid).set("packets", info.packets);
        let st = streams
            .iter()
            .find(|(p, _)| *p == info.pid)
            .map(|(_, t)| *t);
        let role = match info.pid {
            0 => "PAT".to_string(),
            0x11 if st.is_none() => "SDT".to_string(),
            0x1fff => "null".to_string(),
            p if Some(p) == pmt_pid => "PMT".to_string(),
            _ => st.map_or("unknown".to_string(), |t| stream_type_name(t).to_string()),
        };
        j.set("content", role);
        if let Some(t) = st {
            j.set("stream_type", u16::from(t));
        }
        if info.pes_starts > 0 {
            j.set("pes_packets", info.pes_starts);
            j.set("first_pts", info.first_pts);
            j.set(
                "first_pts_seconds",
                info.first_pts.map(|p| p as f64 / 90_000.0),
            );
        }
        if info.cc_errors > 0 {
            j.set("continuity_errors", info.cc_errors);
        }
        list.push(j);
    }
    for (pid, st) in &streams {
        if matches!(st, 0xcf | 0xdb | 0xc1 | 0xc2) {
            b.enc_notes
                .push(format!("SAMPLE-AES stream type 0x{st:02x} on PID {pid}"));
        }
        let mut t = Json::obj();
        t.set("id", *pid).set("stream_type", u16::from(*st));
        t.set("codec", stream_type_name(*st));
        b.tracks.push(t);
    }
    if b.error.is_none() && pmt_pid.is_none() {
        b.fail("no PAT with a program");
    } else if b.error.is_none() && streams.is_empty() {
        b.fail("no PMT");
    }
    if b.error.is_none() && tei > 0 {
        b.notes
            .push(format!("{tei} packets with transport_error_indicator"));
    }
    if extra_pids {
        b.notes
            .push(format!("more than {MAX_PIDS} PIDs; the rest not listed"));
    }
    if !b.enc_notes.is_empty() {
        b.not_dubbable = Some("SAMPLE-AES encrypted: passed through, never decoded");
    }
    let (dub, err) = if b.error.is_none() && b.enc_notes.is_empty() {
        dub_path(&[], data)
    } else {
        (None, None)
    };
    let mut r = b.finish("ts", data.len(), dub, err.as_ref());
    if let Json::O(kv) = &mut r.json {
        let mut ts = Json::obj();
        ts.set("packets", packets).set("pids", Json::A(list));
        ts.set("pmt_pid", pmt_pid);
        kv.insert(2, ("ts".to_string(), ts));
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Packed ADTS audio

/// Offset of the first ADTS frame after any ID3v2 tags.
fn adts_start(data: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    for _ in 0..8 {
        let rest = data.get(pos..)?;
        if rest.starts_with(b"ID3") {
            let size = rest
                .get(6..10)?
                .iter()
                .fold(0usize, |a, &b| (a << 7) | usize::from(b & 0x7f));
            pos = pos.checked_add(10 + size)?;
            continue;
        }
        return (rest.len() >= 7 && rest[0] == 0xff && rest[1] & 0xf6 == 0xf0).then_some(pos);
    }
    None
}

fn inspect_adts(data: &[u8]) -> Report {
    let mut b = Builder::new();
    let mut pos = adts_start(data).unwrap_or(data.len());
    let (mut frames, mut first) = (0usize, None);
    while pos < data.len() && frames < MAX_ADTS_FRAMES {
        let h = match data.get(pos..pos + 7) {
            Some(h) if h[0] == 0xff && h[1] & 0xf6 == 0xf0 => h,
            _ => {
                b.fail(format!("no ADTS sync at {pos}"));
                break;
            }
        };
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        if len < 7 || pos + len > data.len() {
            b.fail(format!("ADTS frame at {pos} of {len} bytes overruns"));
            break;
        }
        first.get_or_insert((
            h[2] >> 6,
            (h[2] >> 2) & 0x0f,
            ((h[2] & 1) << 2) | (h[3] >> 6),
        ));
        frames += 1;
        pos += len;
    }
    if let Some((profile, sfi, cc)) = first {
        let mut t = Json::obj();
        t.set("codec", format!("mp4a.40.{}", profile + 1));
        const RATES: [u32; 13] = [
            96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
        ];
        t.set("sample_rate", RATES.get(usize::from(sfi)).copied());
        t.set("channels", u32::from(cc));
        t.set("frames", frames);
        b.tracks.push(t);
    }
    let (dub, err) = if b.error.is_none() {
        dub_path(&[], data)
    } else {
        (None, None)
    };
    b.finish("adts", data.len(), dub, err.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(rel: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpus")
            .join(rel);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut j = Json::obj();
        j.set("k\"", "a\\b\n\u{1}\u{2028}é");
        assert_eq!(j.to_json(), r#"{"k\"":"a\\b\n\u0001\u2028é"}"#);
        assert_eq!(Json::F(f64::NAN).to_json(), "null");
        assert_eq!(Json::from(Some(3u32)).to_json(), "3");
    }

    #[test]
    fn clear_pair_reports_tfdt_and_samples() {
        let f = "hls-fmp4/shaka-clear-encrypted-hls/";
        let r = inspect_pair(
            &corpus(&format!("{f}audio-init-clear.mp4")),
            &corpus(&format!("{f}audio-s1.mp4")),
        );
        assert!(r.valid(), "{}", r.to_json());
        let audio = r.json().get("audio").unwrap();
        assert_eq!(audio.get("frame_count"), Some(&Json::U(189)));
        assert_eq!(audio.get("decoded_frames"), Some(&Json::U(189 * 1024)));
        let frag = match r.json().get("fragments") {
            Some(Json::A(f)) => f[0].clone(),
            other => panic!("{other:?}"),
        };
        let traf = match frag.get("trafs") {
            Some(Json::A(t)) => t[0].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(traf.get("sample_count"), Some(&Json::U(189)));
        assert_eq!(traf.get("tfdt"), audio.get("base_decode_time"));
    }

    #[test]
    fn encrypted_init_reports_scheme() {
        let r = inspect_file(&corpus(
            "hls-fmp4/shaka-clear-encrypted-hls/audio-init-encrypted.mp4",
        ));
        let j = r.to_json();
        assert!(r.valid(), "{j}");
        assert!(j.contains(r#""schemes":["cbcs"]"#), "{j}");
        assert!(j.contains(r#""original_format":"mp4a""#), "{j}");
        assert!(j.contains(r#""dubbable":false"#), "{j}");
    }

    #[test]
    fn malformed_and_truncated_inputs_are_invalid() {
        let r = inspect_file(&corpus("mp4-malformed/exiv2/issue_2340_poc.mp4"));
        assert!(!r.valid(), "{}", r.to_json());
        let init = corpus("hls-fmp4/shaka-clear-encrypted-hls/audio-init-clear.mp4");
        for cut in [1, 7, 100, init.len() - 1] {
            let r = inspect_file(&init[..cut]);
            assert!(!r.valid(), "cut {cut}: {}", r.to_json());
        }
        assert_eq!(file_kind(&init), FileKind::Fmp4Init);
    }

    #[test]
    fn ts_lists_pids_and_stream_types() {
        let r = inspect_file(&corpus("hls-ts/videojs-segments/muxed.ts"));
        let j = r.to_json();
        assert!(j.contains(r#""container":"ts""#), "{j}");
        assert!(j.contains(r#""codec":"H.264""#), "{j}");
        assert!(j.contains(r#""codec":"AAC (ADTS)""#), "{j}");
        assert!(j.contains(r#""packets":17"#), "{j}");
        // SAMPLE-AES: a PAT and a PMT declaring stream type 0xcf (SAMPLE-AES AAC).
        let packet = |pid: u16, section: &[u8]| {
            let mut p = vec![0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0x00];
            p.extend_from_slice(section);
            p.resize(188, 0xff);
            p
        };
        let pat = [
            0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xe1, 0x00, 0, 0, 0, 0,
        ];
        let pmt = [
            0x02, 0xb0, 18, 0, 1, 0xc1, 0, 0, 0xe1, 0x01, 0xf0, 0, 0xcf, 0xe1, 0x01, 0xf0, 0, 0, 0,
            0, 0,
        ];
        let mut ts = packet(0, &pat);
        ts.extend(packet(0x100, &pmt));
        let r = inspect_file(&ts);
        let j = r.to_json();
        assert!(r.valid(), "{j}");
        assert!(j.contains(r#""encrypted":true"#), "{j}");
        assert!(j.contains("SAMPLE-AES stream type 0xcf on PID 257"), "{j}");
        assert!(j.contains(r#""dubbable":false"#), "{j}");
        let enc = inspect_file(&corpus("hls-ts/videojs-segments/encrypted.ts"));
        assert!(!enc.valid());
        assert!(enc.to_json().contains("no sync byte"), "{}", enc.to_json());
    }
}
