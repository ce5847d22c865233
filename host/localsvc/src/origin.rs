//! The sample origin: files as VOD under `/vod/`, and a looping live sliding window under `/live/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::http::{Resp, json, response};

/// Largest file the origin serves.
const MAX_FILE: u64 = 256 * 1024 * 1024;
/// Most segments a VOD playlist may hold to be looped live.
const MAX_SEGMENTS: usize = 100_000;

/// Configuration of the sample origin.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginOptions {
    /// Segments in the live window. Default 4.
    pub window: usize,
    /// Segments already "recorded" when the server starts, so a full window is there at once. Default 4.
    pub start_offset_segments: u64,
    /// How fast the live clock runs (2.0 = segments appear twice as fast). Default 1.0.
    pub speed: f64,
}

impl Default for OriginOptions {
    fn default() -> Self {
        Self {
            window: 4,
            start_offset_segments: 4,
            speed: 1.0,
        }
    }
}

/// Where the live clock stands for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveClock {
    /// Live-clock seconds since the server started (wall time × speed).
    pub elapsed: f64,
    /// Unix time of the server start, for `EXT-X-PROGRAM-DATE-TIME`; `None` omits the tag.
    pub epoch_unix: Option<f64>,
}

/// The live window parameters of [`live_media_playlist`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveWindow {
    /// Segments in the window.
    pub window: usize,
    /// Segments available at elapsed time zero.
    pub start_offset_segments: u64,
    /// Unix time (seconds) of elapsed zero: when set, each segment gets an
    /// `EXT-X-PROGRAM-DATE-TIME`, the first segment published after start beginning at it. PDTs
    /// advance in media time, so with `speed` ≠ 1 they run ahead of or behind the wall clock.
    pub program_date_time: Option<f64>,
}

struct Origin {
    dir: PathBuf,
    opts: OriginOptions,
    start: Instant,
    start_unix: f64,
    stats: Mutex<BTreeMap<String, u64>>,
}

/// Serves `dir` on `listener` until the task is dropped.
pub async fn serve_origin(
    listener: TcpListener,
    dir: PathBuf,
    opts: OriginOptions,
) -> anyhow::Result<()> {
    anyhow::ensure!(dir.is_dir(), "origin directory does not exist");
    anyhow::ensure!(
        opts.window > 0,
        "live window must hold at least one segment"
    );
    anyhow::ensure!(
        opts.speed.is_finite() && opts.speed > 0.0,
        "speed must be positive"
    );
    let state = Arc::new(Origin {
        dir,
        opts,
        start: Instant::now(),
        start_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        stats: Mutex::new(BTreeMap::new()),
    });
    crate::http::serve(listener, state, |req, st| async move {
        let elapsed = st.start.elapsed().as_secs_f64() * st.opts.speed;
        let path = req.uri().path().to_owned();
        if let Ok(mut s) = st.stats.lock()
            && (s.len() < 10_000 || s.contains_key(&path))
        {
            *s.entry(path).or_insert(0) += 1;
        }
        if req.uri().path() == "/stats" {
            let snapshot = st.stats.lock().map(|s| s.clone()).unwrap_or_default();
            return json(
                StatusCode::OK,
                &serde_json::to_value(snapshot).unwrap_or_default(),
            );
        }
        let clock = LiveClock {
            elapsed,
            epoch_unix: Some(st.start_unix),
        };
        handle_origin(&req, &st.dir, &st.opts, clock).await
    })
    .await
}

/// Answers one origin request with the live clock at `clock`.
pub async fn handle_origin<B>(
    req: &Request<B>,
    dir: &Path,
    opts: &OriginOptions,
    clock: LiveClock,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        );
    }
    let path = req.uri().path();
    if path == "/healthz" {
        return response(StatusCode::OK, "text/plain", "ok\n");
    }
    let (live, rel) = if let Some(r) = path.strip_prefix("/vod/") {
        (false, r)
    } else if let Some(r) = path.strip_prefix("/live/") {
        (true, r)
    } else {
        return not_found();
    };
    let Some(file) = safe_join(dir, rel) else {
        return not_found();
    };
    let ext = rel
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let content_type = match ext.as_str() {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mp4" | "m4s" => "video/mp4",
        "json" => "application/json",
        _ => "application/octet-stream",
    };
    let bytes = match read_file(&file).await {
        Some(b) => b,
        None => return not_found(),
    };
    let mut resp = if live && ext == "m3u8" {
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("#EXTINF") {
            let w = LiveWindow {
                window: opts.window,
                start_offset_segments: opts.start_offset_segments,
                program_date_time: clock.epoch_unix,
            };
            match live_media_playlist(&text, clock.elapsed, &w) {
                Ok(p) => response(StatusCode::OK, content_type, p),
                Err(e) => {
                    eprintln!("dub-localsvc origin: live playlist: {e}");
                    response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        "cannot build live playlist\n",
                    )
                }
            }
        } else {
            response(StatusCode::OK, content_type, bytes)
        }
    } else {
        response(StatusCode::OK, content_type, bytes)
    };
    let cache = match (live, ext.as_str()) {
        (true, "m3u8") => "max-age=1",
        (false, "m3u8") => "max-age=60",
        _ => "max-age=86400",
    };
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    resp.headers_mut()
        .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

fn not_found() -> Resp {
    response(StatusCode::NOT_FOUND, "text/plain", "not found\n")
}

/// Joins a URL path below `dir`, refusing anything but plain names (no `..`, no dot files, no escapes).
fn safe_join(dir: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = dir.to_path_buf();
    for comp in rel.split('/') {
        let ok = !comp.is_empty()
            && !comp.starts_with('.')
            && comp
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return None;
        }
        p.push(comp);
    }
    Some(p)
}

async fn read_file(p: &Path) -> Option<Vec<u8>> {
    let meta = tokio::fs::metadata(p).await.ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    tokio::fs::read(p).await.ok()
}

struct Segment<'a> {
    duration: f64,
    lines: Vec<&'a str>,
}

/// Builds the live media playlist at `elapsed` seconds of live clock from a VOD media playlist.
///
/// The VOD segments loop forever; a segment is published once its end time has passed (plus the
/// `start_offset_segments` already there at time zero); the playlist lists the last `window` published
/// ones, with `EXT-X-DISCONTINUITY` before each loop restart and a matching discontinuity sequence.
pub fn live_media_playlist(vod: &str, elapsed: f64, w: &LiveWindow) -> anyhow::Result<String> {
    anyhow::ensure!(w.window > 0, "window must be at least one segment");
    let mut header: Vec<&str> = Vec::new();
    let mut segs: Vec<Segment> = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    let mut duration = None;
    for line in vod.lines().map(str::trim_end) {
        if line.is_empty() {
            continue;
        }
        let tag = line.split(':').next().unwrap_or("");
        if matches!(
            tag,
            "#EXT-X-PLAYLIST-TYPE"
                | "#EXT-X-ENDLIST"
                | "#EXT-X-MEDIA-SEQUENCE"
                | "#EXT-X-DISCONTINUITY-SEQUENCE"
        ) {
            continue;
        }
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            let d: f64 = d.split(',').next().unwrap_or("").trim().parse()?;
            anyhow::ensure!(d.is_finite() && d > 0.0, "bad segment duration");
            duration = Some(d);
            pending.push(line);
        } else if line.starts_with('#') {
            if segs.is_empty() && duration.is_none() && pending.is_empty() && !is_segment_tag(tag) {
                header.push(line);
            } else {
                pending.push(line);
            }
        } else {
            let d = duration
                .take()
                .ok_or_else(|| anyhow::anyhow!("segment URI without EXTINF"))?;
            pending.push(line);
            anyhow::ensure!(segs.len() < MAX_SEGMENTS, "too many segments");
            segs.push(Segment {
                duration: d,
                lines: std::mem::take(&mut pending),
            });
        }
    }
    anyhow::ensure!(!segs.is_empty(), "playlist has no segments");
    let n = segs.len() as u64;
    let total: f64 = segs.iter().map(|s| s.duration).sum();
    let elapsed = if elapsed.is_finite() {
        elapsed.max(0.0)
    } else {
        0.0
    };
    // Whole loops done (bounded so the arithmetic below cannot overflow), then segments into this loop.
    let loops = (elapsed / total).floor().min(1e12) as u64;
    let mut rem = elapsed - loops as f64 * total;
    let mut in_loop = 0u64;
    for s in &segs {
        if rem + 1e-9 < s.duration {
            break;
        }
        rem -= s.duration;
        in_loop += 1;
    }
    let published = (loops * n + in_loop + w.start_offset_segments).max(1);
    let first = published.saturating_sub(w.window as u64);
    let disc_seq = if first == 0 { 0 } else { (first - 1) / n };

    let mut out = String::new();
    let mut seq_written = false;
    let seq = format!("#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-DISCONTINUITY-SEQUENCE:{disc_seq}\n");
    for h in &header {
        out.push_str(h);
        out.push('\n');
        if h.starts_with("#EXT-X-TARGETDURATION") {
            out.push_str(&seq);
            seq_written = true;
        }
    }
    if !seq_written {
        out.push_str(&seq);
    }
    // Media start of each VOD segment within a loop, for program date-times.
    let mut cum = Vec::with_capacity(segs.len());
    let mut acc = 0.0;
    for sg in &segs {
        cum.push(acc);
        acc += sg.duration;
    }
    let media_start = |k: u64| -> f64 {
        let idx = usize::try_from(k % n).unwrap_or(0);
        (k / n) as f64 * total + cum.get(idx).copied().unwrap_or(0.0)
    };
    let epoch_media = media_start(w.start_offset_segments);
    for k in first..published {
        if k % n == 0 && k > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(epoch) = w.program_date_time {
            let t = epoch + media_start(k) - epoch_media;
            out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
            out.push_str(&iso8601(t));
            out.push('\n');
        }
        let Some(seg) = usize::try_from(k % n).ok().and_then(|i| segs.get(i)) else {
            continue;
        };
        for l in &seg.lines {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// `YYYY-MM-DDThh:mm:ss.sssZ` for a Unix time (proleptic Gregorian, H. Hinnant's civil_from_days).
fn iso8601(unix: f64) -> String {
    let ms = if unix.is_finite() {
        (unix * 1000.0).round().clamp(0.0, 253_402_300_799_999.0) as i64
    } else {
        0
    };
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, sec, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}.{milli:03}Z")
}

/// Tags that belong to the next segment rather than the playlist header.
fn is_segment_tag(tag: &str) -> bool {
    matches!(
        tag,
        "#EXT-X-BYTERANGE"
            | "#EXT-X-DISCONTINUITY"
            | "#EXT-X-PROGRAM-DATE-TIME"
            | "#EXT-X-KEY"
            | "#EXT-X-GAP"
            | "#EXT-X-BITRATE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOD: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"audio_init.mp4\"\n#EXTINF:6.016000,\naudio_000.m4s\n#EXTINF:5.994667,\naudio_001.m4s\n#EXTINF:6.0,\naudio_002.m4s\n#EXT-X-ENDLIST\n";

    fn uris(p: &str) -> Vec<&str> {
        p.lines().filter(|l| !l.starts_with('#')).collect()
    }

    fn tag<'a>(p: &'a str, t: &str) -> Option<&'a str> {
        p.lines().find_map(|l| l.strip_prefix(t))
    }

    #[test]
    fn window_slides_and_wraps_with_discontinuities() {
        let w = LiveWindow {
            window: 2,
            start_offset_segments: 0,
            program_date_time: None,
        };
        let p = live_media_playlist(VOD, 0.0, &w).unwrap();
        // Nothing finished yet: the first segment is still published so the playlist is never empty.
        assert_eq!(uris(&p), ["audio_000.m4s"]);
        assert_eq!(tag(&p, "#EXT-X-MEDIA-SEQUENCE:"), Some("0"));
        assert!(!p.contains("ENDLIST") && !p.contains("PLAYLIST-TYPE"));
        assert!(p.contains("#EXT-X-MAP:URI=\"audio_init.mp4\""));
        assert_eq!(p.matches("#EXT-X-MEDIA-SEQUENCE").count(), 1);

        let p = live_media_playlist(VOD, 12.02, &w).unwrap();
        assert_eq!(uris(&p), ["audio_000.m4s", "audio_001.m4s"]);
        let p = live_media_playlist(VOD, 18.1, &w).unwrap();
        assert_eq!(uris(&p), ["audio_001.m4s", "audio_002.m4s"]);
        assert_eq!(tag(&p, "#EXT-X-MEDIA-SEQUENCE:"), Some("1"));
        assert_eq!(tag(&p, "#EXT-X-DISCONTINUITY-SEQUENCE:"), Some("0"));
        assert!(!p.contains("#EXT-X-DISCONTINUITY\n"));

        // 4 segments published: 000 001 002 | 000 — the wrap carries a discontinuity.
        let p = live_media_playlist(VOD, 24.05, &w).unwrap();
        assert_eq!(uris(&p), ["audio_002.m4s", "audio_000.m4s"]);
        assert_eq!(tag(&p, "#EXT-X-MEDIA-SEQUENCE:"), Some("2"));
        let lines: Vec<&str> = p.lines().collect();
        let i = lines.iter().position(|l| *l == "audio_000.m4s").unwrap();
        assert_eq!(lines[i - 2], "#EXT-X-DISCONTINUITY");
        assert_eq!(tag(&p, "#EXT-X-DISCONTINUITY-SEQUENCE:"), Some("0"));

        // Window starting at the wrapped segment keeps its tag; then it is removed and counted.
        let p = live_media_playlist(VOD, 30.05, &w).unwrap();
        assert_eq!(uris(&p), ["audio_000.m4s", "audio_001.m4s"]);
        assert_eq!(tag(&p, "#EXT-X-MEDIA-SEQUENCE:"), Some("3"));
        assert!(p.contains("#EXT-X-DISCONTINUITY\n"));
        assert_eq!(tag(&p, "#EXT-X-DISCONTINUITY-SEQUENCE:"), Some("0"));
        let p = live_media_playlist(VOD, 36.05, &w).unwrap();
        assert_eq!(tag(&p, "#EXT-X-MEDIA-SEQUENCE:"), Some("4"));
        assert_eq!(tag(&p, "#EXT-X-DISCONTINUITY-SEQUENCE:"), Some("1"));
        assert!(!p.contains("#EXT-X-DISCONTINUITY\n"));
    }

    #[test]
    fn media_sequence_is_monotonic_and_window_full() {
        let w = LiveWindow {
            window: 4,
            start_offset_segments: 4,
            program_date_time: None,
        };
        let mut last = 0u64;
        for i in 0..2000 {
            let t = f64::from(i) * 0.37;
            let p = live_media_playlist(VOD, t, &w).unwrap();
            let seq: u64 = tag(&p, "#EXT-X-MEDIA-SEQUENCE:").unwrap().parse().unwrap();
            assert!(seq >= last);
            last = seq;
            assert_eq!(uris(&p).len(), 4, "t={t}");
        }
        // 2000 * 0.37 s = 740 s ≈ 41 loops of 18.01 s: sequence ≈ 740/6 + 4 - 4.
        assert!((120..=125).contains(&last), "{last}");
        let p = live_media_playlist(VOD, 1e300, &w).unwrap();
        assert_eq!(uris(&p).len(), 4);
        assert!(live_media_playlist(VOD, f64::NAN, &w).is_ok());
    }

    #[test]
    fn rejects_bad_playlists() {
        let w = LiveWindow {
            window: 2,
            start_offset_segments: 0,
            program_date_time: None,
        };
        assert!(live_media_playlist("#EXTM3U\n", 0.0, &w).is_err());
        assert!(live_media_playlist("#EXTM3U\n#EXTINF:-1,\na.m4s\n", 0.0, &w).is_err());
        assert!(live_media_playlist("#EXTM3U\n#EXTINF:x,\na.m4s\n", 0.0, &w).is_err());
        assert!(live_media_playlist("#EXTM3U\na.m4s\n", 0.0, &w).is_err());
        assert!(
            live_media_playlist(
                VOD,
                0.0,
                &LiveWindow {
                    window: 0,
                    start_offset_segments: 0,
                    program_date_time: None,
                }
            )
            .is_err()
        );
    }

    #[test]
    fn program_date_times_follow_media_time() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400.5), "2000-02-29T00:00:00.500Z");
        assert_eq!(iso8601(1_795_000_000.0), "2026-11-18T11:06:40.000Z");
        let w = LiveWindow {
            window: 3,
            start_offset_segments: 1,
            program_date_time: Some(1_795_000_000.0),
        };
        // One loop + 1 s: published 000 (the offset) 001 002 | 000.
        let p = live_media_playlist(VOD, 18.0107 + 1.0, &w).unwrap();
        let pdts: Vec<&str> = p
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
            .collect();
        assert_eq!(
            uris(&p),
            ["audio_001.m4s", "audio_002.m4s", "audio_000.m4s"]
        );
        // Segment 1 (the first published after start) begins at the epoch; the rest follow by EXTINF.
        assert_eq!(
            pdts,
            [
                "2026-11-18T11:06:40.000Z",
                "2026-11-18T11:06:45.995Z",
                "2026-11-18T11:06:51.995Z"
            ]
        );
        // The tag order after a wrap: discontinuity, date-time, EXTINF.
        let lines: Vec<&str> = p.lines().collect();
        let i = lines
            .iter()
            .position(|l| *l == "#EXT-X-DISCONTINUITY")
            .unwrap();
        assert!(lines[i + 1].starts_with("#EXT-X-PROGRAM-DATE-TIME:"));
        assert!(lines[i + 2].starts_with("#EXTINF:"));
    }

    #[test]
    fn path_safety() {
        let d = Path::new("/srv");
        assert_eq!(
            safe_join(d, "audio_001.m4s"),
            Some(PathBuf::from("/srv/audio_001.m4s"))
        );
        for bad in [
            "../etc/passwd",
            "a/../../b",
            ".hidden",
            "",
            "a//b",
            "a\\b",
            "%2e%2e/x",
        ] {
            assert_eq!(safe_join(d, bad), None, "{bad}");
        }
    }
}
