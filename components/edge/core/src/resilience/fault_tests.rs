//! One test per provider fault, through the whole segment pipeline ([`dub_segment`]) against
//! local servers speaking each provider's wire format (OpenAI-compatible STT and TTS, Apertium
//! APy MT), with the state in a shared [`MemoryKv`] as dubhost keeps it. Each checks the rung,
//! the `x-dub-fallback`, that the answer came inside the segment deadline, and the calls the
//! fake providers saw (retries within the budget, no call to a host that is not allowed).
//! A failed STT leaves nothing located: the original, byte-identical. A failed MT or TTS after
//! the speech was located: the middle rung, the original ducked where it speaks (`ducked`).
//!
//! The media side is [`ToneMedia`], a stand-in that keeps sizes and timing but does no DSP, so
//! deadlines measure the provider layer and not an unoptimised build's AAC encoder (the real
//! media path is covered by the pipeline's own tests). It reads and writes real WAV files, so
//! what the providers send and receive is checked byte for byte.

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{BUDGET_START, Breaker, RETRY_COST, Role, budget_tokens, load_breaker};
use crate::config::{Config, TtsFormat};
use crate::kv::{Kv, MemoryKv, MemoryLimits, WithKv};
use crate::media::{
    AudioTrack, Background, MediaEngine, MediaError, MixOptions, Placement, SegmentTiming,
};
use crate::pipeline::{SegmentJob, SegmentResponse, dub_segment, segment_deadline};
use crate::testutil::{
    ConnectionCounter, Recorded, StdHttpClient, TestServer, corpus, parse_multipart, test_config,
    tone_wav, wav_info,
};

const INIT: &str = "hls-fmp4/shaka-misc/sintel-audio-init.mp4";
const SEG: &str = "hls-fmp4/shaka-misc/sintel-audio-segment.mp4";
const SECRET: &str = "sk-fault-SECRET-42";
/// Segment deadline of these tests.
const DEADLINE_MS: u64 = 5000;
/// How late after the deadline an answer may come (scheduling on a loaded machine).
const SLACK: Duration = Duration::from_millis(300);
/// The provider name the breaker of the OpenAI-compatible STT at `url` is keyed by.
fn stt_provider(url: &str) -> String {
    format!("{:?} {url}", crate::config::SttProvider::OpenAi)
}

/// Decoded audio as [`ToneMedia`] keeps it: its format and a digest of its content.
#[derive(Clone, Debug, PartialEq)]
struct Pcm {
    rate: u32,
    channels: u32,
    frames: u64,
    digest: u64,
}

/// A segment as [`ToneMedia`] keeps it: its bytes.
struct Segment {
    init: Vec<u8>,
    media: Vec<u8>,
}

/// FNV-1a, to follow content through the fake pipeline.
fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// The segment stand-in: every segment is 10 s of 48 kHz stereo AAC-LC; decoded audio is kept
/// as format + digest; WAV in and out is real (16-bit PCM), so a non-WAV answer fails here as it
/// would in dub-media; the remuxed output is `DUB` + the digest of what was mixed, so equal
/// bytes out mean equal speech placed at equal times.
struct ToneMedia;

const SEG_FRAMES: u64 = 480_000;

impl MediaEngine for ToneMedia {
    type Pcm = Pcm;
    type Segment = Segment;

    fn probe_init(&self, init: &[u8]) -> Result<AudioTrack, MediaError> {
        let seg = self.open_segment(init, b"-")?;
        Ok(self.track(&seg))
    }
    fn open_segment(&self, init: &[u8], media: &[u8]) -> Result<Segment, MediaError> {
        if init.is_empty() || media.is_empty() {
            return Err(MediaError::Invalid("empty".into()));
        }
        Ok(Segment {
            init: init.to_vec(),
            media: media.to_vec(),
        })
    }
    fn output_init(&self, seg: &Segment) -> Result<Vec<u8>, MediaError> {
        Ok(seg.init.clone())
    }
    fn repackage(&self, seg: &Segment) -> Result<Vec<u8>, MediaError> {
        // AAC-LC fMP4: the original rung is the source bytes.
        Ok(seg.media.clone())
    }
    fn first_pts(&self, _seg: &Segment) -> Option<u64> {
        None
    }
    fn set_pts_wraps(&self, _seg: &mut Segment, _wraps: u32) {}
    fn duck(&self, bg: &Pcm, spans: &[(i64, i64)], duck_db: f32) -> Result<Pcm, MediaError> {
        let mut digest = fnv(bg.digest, &duck_db.to_le_bytes());
        for (a, b) in spans {
            digest = fnv(fnv(digest, &a.to_le_bytes()), &b.to_le_bytes());
        }
        Ok(Pcm { digest, ..*bg })
    }
    fn track(&self, _seg: &Segment) -> AudioTrack {
        AudioTrack {
            track_id: 1,
            timescale: 48_000,
            sample_rate: 48_000,
            channels: 2,
            codec: "mp4a.40.2".into(),
            asc: vec![0x11, 0x90],
        }
    }
    fn timing(&self, _seg: &Segment) -> SegmentTiming {
        SegmentTiming {
            base_decode_time: 0,
            frame_count: 469,
            duration: SEG_FRAMES,
        }
    }
    fn decode_audio(&self, _seg: &Segment) -> Result<Pcm, MediaError> {
        Ok(Pcm {
            rate: 48_000,
            channels: 2,
            frames: SEG_FRAMES,
            digest: 1,
        })
    }
    fn resample(&self, pcm: &Pcm, rate: u32, channels: u32) -> Result<Pcm, MediaError> {
        Ok(Pcm {
            rate,
            channels,
            frames: pcm.frames * u64::from(rate) / u64::from(pcm.rate.max(1)),
            digest: pcm.digest,
        })
    }
    fn pcm_from_wav(&self, wav: &[u8]) -> Result<Pcm, MediaError> {
        let info = wav_info(wav).ok_or_else(|| MediaError::Invalid("not WAV".into()))?;
        if info.bits != 16 || info.rate == 0 {
            return Err(MediaError::Unsupported("not 16-bit PCM".into()));
        }
        Ok(Pcm {
            rate: info.rate,
            channels: u32::from(info.channels),
            frames: info.frames,
            digest: fnv(0xcbf2_9ce4_8422_2325, wav),
        })
    }
    fn pcm_to_wav(&self, pcm: &Pcm) -> Vec<u8> {
        tone_wav(
            pcm.rate,
            pcm.channels as u16,
            pcm.frames as f64 / f64::from(pcm.rate),
            300.0,
        )
    }
    fn pcm_frames(&self, pcm: &Pcm) -> u64 {
        pcm.frames
    }
    fn pcm_rate(&self, pcm: &Pcm) -> u32 {
        pcm.rate
    }
    fn pcm_slice(&self, pcm: &Pcm, start: u64, count: u64) -> Pcm {
        Pcm {
            frames: count.min(pcm.frames.saturating_sub(start)),
            ..pcm.clone()
        }
    }
    fn mix(
        &self,
        background: &Pcm,
        voices: &[Placement<'_, Pcm>],
        _opts: MixOptions,
    ) -> Result<Pcm, MediaError> {
        let digest = voices.iter().fold(background.digest, |h, v| {
            let h = fnv(h, &v.speech.digest.to_le_bytes());
            let h = fnv(h, &v.start_frame.to_le_bytes());
            fnv(h, &v.speed.to_le_bytes())
        });
        Ok(Pcm {
            digest,
            ..background.clone()
        })
    }
    fn remux_audio(
        &self,
        _seg: &Segment,
        audio: &Pcm,
        _priming: Option<&Pcm>,
        _lookahead: Option<&Pcm>,
    ) -> Result<Vec<u8>, MediaError> {
        let mut out = b"DUB".to_vec();
        out.extend_from_slice(&audio.digest.to_le_bytes());
        Ok(out)
    }
}

fn write_reply(s: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
}

/// A server that runs `script(n, request, stream)` for its `n`-th request (from 0).
fn scripted(
    script: impl Fn(usize, &Recorded, &mut TcpStream) + Send + Sync + 'static,
) -> TestServer {
    let n = AtomicUsize::new(0);
    TestServer::start_raw(move |req, s| script(n.fetch_add(1, Ordering::SeqCst), req, s))
}

/// The recogniser's answer for the Sintel segment: two sentences (verbose_json).
fn transcript_json() -> String {
    serde_json::json!({
        "task": "transcribe", "language": "english", "duration": 10.0,
        "text": "Where are you going? I am looking for a dragon.",
        "words": [
            {"word": "Where", "start": 1.0, "end": 1.25},
            {"word": "are", "start": 1.3, "end": 1.45},
            {"word": "you", "start": 1.5, "end": 1.65},
            {"word": "going", "start": 1.7, "end": 2.1},
            {"word": "I", "start": 4.0, "end": 4.1},
            {"word": "am", "start": 4.15, "end": 4.3},
            {"word": "looking", "start": 4.35, "end": 4.7},
            {"word": "for", "start": 4.75, "end": 4.9},
            {"word": "a", "start": 4.95, "end": 5.0},
            {"word": "dragon", "start": 5.05, "end": 5.6}
        ]
    })
    .to_string()
}

/// OpenAI-compatible STT: a multipart upload of a 16 kHz mono WAV gets the transcript, anything
/// else a 400 in OpenAI's error shape.
fn stt_ok(req: &Recorded, s: &mut TcpStream) {
    let parts = parse_multipart(req.header("content-type").unwrap_or(""), &req.body);
    let wav = parts
        .iter()
        .find(|p| p.name == "file")
        .and_then(|f| wav_info(&f.data));
    if req.path == "/v1/audio/transcriptions" && wav.is_some_and(|w| w.rate == 16_000) {
        let body = transcript_json();
        write_reply(
            s,
            200,
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
    } else {
        let body = br#"{"error":{"message":"bad upload","type":"invalid_request_error"}}"#;
        write_reply(s, 400, &[("content-type", "application/json")], body);
    }
}

/// Apertium APy `/translate?q=..&langpair=eng|spa`: `ES(<q>)`.
fn mt_ok(req: &Recorded, s: &mut TcpStream) {
    let q = req.query();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if req.path != "/translate" || get("langpair").as_deref() != Some("eng|spa") {
        let body = br#"{"status":"error","code":400,"message":"Bad Request","responseStatus":400}"#;
        return write_reply(s, 400, &[("content-type", "application/json")], body);
    }
    let body = serde_json::json!({
        "responseData": {"translatedText": format!("ES({})", get("q").unwrap_or_default())},
        "responseDetails": null, "responseStatus": 200
    })
    .to_string();
    write_reply(
        s,
        200,
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
}

/// OpenAI-compatible TTS: a JSON request for `wav` gets 0.8 s of 24 kHz speech-band tone.
fn tts_ok(req: &Recorded, s: &mut TcpStream) {
    let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    if req.path == "/v1/audio/speech" && v["response_format"] == "wav" && v["input"].is_string() {
        write_reply(
            s,
            200,
            &[("content-type", "audio/wav")],
            &tone_wav(24_000, 1, 0.8, 220.0),
        );
    } else {
        write_reply(s, 400, &[("content-type", "application/json")], b"{}");
    }
}

fn origin() -> TestServer {
    let (init, seg) = (corpus(INIT), corpus(SEG));
    TestServer::start(move |req| match req.path.as_str() {
        "/init.mp4" => crate::testutil::Reply::bytes(200, "video/mp4", init.clone()),
        "/seg.mp4" | "/variant2/seg.mp4" => {
            crate::testutil::Reply::bytes(200, "video/mp4", seg.clone())
        }
        _ => crate::testutil::Reply::text(404, "no"),
    })
}

struct Rig {
    origin: TestServer,
    stt: TestServer,
    mt: TestServer,
    tts: TestServer,
    cfg: Config,
    kv: Arc<MemoryKv>,
}

/// The shared store behind an [`Arc`], as dubhost shares one store between requests.
struct SharedKv(Arc<MemoryKv>);

impl Kv for SharedKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::kv::KvError> {
        self.0.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), crate::kv::KvError> {
        self.0.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), crate::kv::KvError> {
        self.0.delete(key)
    }
}

fn rig(stt: TestServer, mt: TestServer, tts: TestServer) -> Rig {
    let mut cfg = test_config();
    cfg.stt_url = stt.url();
    cfg.mt_url = mt.url();
    cfg.tts_url = tts.url();
    cfg.tts_voice = "{lang}".into();
    cfg.api_key = Some(SECRET.into());
    cfg.deadline_fraction = 0.0;
    cfg.deadline_min_ms = DEADLINE_MS;
    cfg.provider_connect_timeout_ms = 500;
    cfg.provider_first_byte_timeout_ms = 1000;
    cfg.provider_between_bytes_timeout_ms = 500;
    cfg.breaker_failures = 3;
    cfg.breaker_cooldown_ms = 1500;
    Rig {
        origin: origin(),
        stt,
        mt,
        tts,
        cfg,
        kv: Arc::new(MemoryKv::new(MemoryLimits::default())),
    }
}

/// Dub the segment at `path` on the origin; returns the response and how late after the
/// deadline it came (zero when in time).
fn run_path(r: &Rig, path: &str) -> (SegmentResponse, Duration) {
    let job = SegmentJob {
        segment_url: format!("{}{path}", r.origin.url()),
        init_url: Some(format!("{}/init.mp4", r.origin.url())),
        prev_url: None,
        next_url: None,
        duration: 10.0,
        vod: false,
        lang: "es".into(),
        background: Background::Duck,
        duck_db: 12.0,
        started: Instant::now(),
    };
    let http = WithKv {
        http: StdHttpClient,
        kv: SharedKv(r.kv.clone()),
    };
    let resp = dub_segment(&http, &ToneMedia, &r.cfg, &job);
    let late = Instant::now().saturating_duration_since(segment_deadline(&r.cfg, &job));
    (resp, late)
}

fn run(r: &Rig) -> (SegmentResponse, Duration) {
    run_path(r, "/seg.mp4")
}

fn header<'a>(r: &'a SegmentResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A 200 on `rung` (`dub`; `ducked` or `original` with `fallback`), inside the deadline.
fn assert_served(resp: &SegmentResponse, late: Duration, rung: &str, fallback: Option<&str>) {
    assert_eq!(resp.status, 200, "{:?}", resp.headers);
    assert_eq!(header(resp, "x-dub-rung"), Some(rung), "{:?}", resp.headers);
    assert_eq!(
        header(resp, "x-dub-fallback"),
        fallback,
        "{:?}",
        resp.headers
    );
    assert!(late <= SLACK, "answered {late:?} after the deadline");
    if rung == "original" {
        assert!(resp.body == corpus(SEG), "the original, byte-identical");
    } else {
        assert!(
            resp.body.starts_with(b"DUB"),
            "encoded here (dub or ducked)"
        );
    }
    let all = format!("{:?}", resp.headers);
    assert!(!all.contains(SECRET), "{all}");
}

fn counts(r: &Rig) -> (usize, usize, usize) {
    (
        r.stt.request_count(),
        r.mt.request_count(),
        r.tts.request_count(),
    )
}

fn healthy_mt() -> TestServer {
    scripted(|_, req, s| mt_ok(req, s))
}

fn healthy_tts() -> TestServer {
    scripted(|_, req, s| tts_ok(req, s))
}

#[test]
fn fault_5xx_is_retried_once_and_the_segment_is_dubbed() {
    let stt = scripted(|n, req, s| {
        if n == 0 {
            write_reply(s, 503, &[("content-type", "application/json")], b"{}");
        } else {
            stt_ok(req, s);
        }
    });
    let r = rig(stt, healthy_mt(), healthy_tts());
    let (resp, late) = run(&r);
    assert_served(&resp, late, "dub", None);
    assert_eq!(counts(&r), (2, 2, 2), "one STT retry");
    // The retry cost one token; three roles deposited 0.2 per call.
    assert_eq!(
        budget_tokens(r.kv.as_ref(), Role::Stt),
        BUDGET_START + 200 - RETRY_COST
    );
    assert_eq!(budget_tokens(r.kv.as_ref(), Role::Mt), BUDGET_START + 400);
    // The success after the failure left the breaker closed with no failures.
    assert_eq!(
        load_breaker(r.kv.as_ref(), Role::Stt, &stt_provider(&r.stt.url())),
        Breaker::Closed { failures: 0 }
    );
}

#[test]
fn fault_persistent_5xx_falls_back_to_the_original_after_one_retry() {
    let stt = scripted(|_, _, s| write_reply(s, 500, &[], b"internal error"));
    let r = rig(stt, healthy_mt(), healthy_tts());
    let (resp, late) = run(&r);
    assert_served(&resp, late, "original", Some("stt-error"));
    assert_eq!(counts(&r), (2, 0, 0), "exactly one retry, then the ladder");
    assert_eq!(
        load_breaker(r.kv.as_ref(), Role::Stt, &stt_provider(&r.stt.url())),
        Breaker::Closed { failures: 1 },
        "one call, one failure"
    );
}

#[test]
fn fault_429_retry_after_is_honoured_when_it_fits_the_deadline() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let t2 = times.clone();
    let tts = scripted(move |n, req, s| {
        t2.lock().unwrap().push(Instant::now());
        if n == 0 {
            let body = br#"{"error":{"message":"Rate limit reached","type":"requests"}}"#;
            write_reply(
                s,
                429,
                &[("content-type", "application/json"), ("retry-after", "1")],
                body,
            );
        } else {
            tts_ok(req, s);
        }
    });
    let r = rig(scripted(|_, q, s| stt_ok(q, s)), healthy_mt(), tts);
    let (resp, late) = run(&r);
    assert_served(&resp, late, "dub", None);
    assert_eq!(counts(&r), (1, 2, 3), "one TTS retry");
    let t = times.lock().unwrap().clone();
    let gap = t[1] - t[0];
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_millis(1500), "retried after {gap:?}");
}

#[test]
fn fault_429_retry_after_past_the_deadline_is_not_waited_for() {
    let tts = scripted(|_, _, s| {
        write_reply(s, 429, &[("retry-after", "30")], b"slow down");
    });
    let r = rig(scripted(|_, q, s| stt_ok(q, s)), healthy_mt(), tts);
    let t0 = Instant::now();
    let (resp, late) = run(&r);
    assert_served(&resp, late, "ducked", Some("tts-error"));
    assert_eq!(
        counts(&r),
        (1, 1, 1),
        "no retry: Retry-After ends after the deadline"
    );
    assert!(t0.elapsed() < Duration::from_millis(DEADLINE_MS));
}

#[test]
fn fault_stall_before_the_first_byte_times_out_and_the_retry_dubs() {
    let stt = scripted(|n, req, s| {
        if n == 0 {
            // Accept, read the upload, never answer (until long after every deadline).
            std::thread::sleep(Duration::from_secs(15));
        } else {
            stt_ok(req, s);
        }
    });
    let r = rig(stt, healthy_mt(), healthy_tts());
    let t0 = Instant::now();
    let (resp, late) = run(&r);
    assert_served(&resp, late, "dub", None);
    assert_eq!(counts(&r), (2, 2, 2));
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "waited the first-byte timeout"
    );
}

#[test]
fn fault_stall_before_the_first_byte_every_time_falls_back_inside_the_deadline() {
    let stt = scripted(|_, _, _| std::thread::sleep(Duration::from_secs(15)));
    let r = rig(stt, healthy_mt(), healthy_tts());
    let t0 = Instant::now();
    let (resp, late) = run(&r);
    // A timeout is reported as `deadline` whichever timer fired; nothing was located, so the
    // original is served.
    assert_served(&resp, late, "original", Some("deadline"));
    assert_eq!(counts(&r), (2, 0, 0), "one retry while time remained");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(DEADLINE_MS),
        "two first-byte timeouts, well before the deadline: {took:?}"
    );
}

#[test]
fn fault_stall_mid_body_times_out_between_bytes_and_the_retry_dubs() {
    let mt = scripted(|n, req, s| {
        if n == 0 {
            // Head and a third of the body, then silence.
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 90\r\n\r\n{\"responseData\": {\"tra",
            );
            let _ = s.flush();
            std::thread::sleep(Duration::from_secs(15));
        } else {
            mt_ok(req, s);
        }
    });
    let r = rig(scripted(|_, q, s| stt_ok(q, s)), mt, healthy_tts());
    let (resp, late) = run(&r);
    assert_served(&resp, late, "dub", None);
    assert_eq!(counts(&r), (1, 3, 2), "one MT retry");
}

#[test]
fn fault_malformed_json_is_not_retried_and_falls_back() {
    let stt = scripted(|_, _, s| {
        write_reply(
            s,
            200,
            &[("content-type", "application/json")],
            br#"{"text": "Where are you", "words": [{"word": "Where", "start": 1.0"#,
        );
    });
    let r = rig(stt, healthy_mt(), healthy_tts());
    let (resp, late) = run(&r);
    assert_served(&resp, late, "original", Some("stt-error"));
    assert_eq!(counts(&r), (1, 0, 0), "a malformed answer is not retried");
    assert_eq!(
        load_breaker(r.kv.as_ref(), Role::Stt, &stt_provider(&r.stt.url())),
        Breaker::Closed { failures: 1 },
        "but counts against the breaker"
    );
    assert!(
        r.kv.keys().iter().all(|k| !k.starts_with("dub/c1/")),
        "nothing cached"
    );
}

#[test]
fn fault_audio_in_an_unexpected_format_is_a_tts_error() {
    // MP3 where WAV was asked for.
    let tts = scripted(|_, _, s| {
        write_reply(
            s,
            200,
            &[("content-type", "audio/mpeg")],
            b"ID3\x04\0\0\0\0\0\0\xff\xfb\x90\x64 not wav at all",
        );
    });
    let r = rig(scripted(|_, q, s| stt_ok(q, s)), healthy_mt(), tts);
    let (resp, late) = run(&r);
    assert_served(&resp, late, "ducked", Some("tts-error"));
    assert_eq!(counts(&r), (1, 1, 1), "not retried");
    assert!(
        r.kv.keys().iter().all(|k| !k.starts_with("dub/c1/tts/")),
        "bad speech is not cached"
    );

    // Text where raw PCM was asked for: its bytes would pass as samples; the label gives it away.
    let tts = scripted(|_, _, s| {
        write_reply(
            s,
            200,
            &[("content-type", "text/plain; charset=utf-8")],
            b"quota exceeded for this month",
        );
    });
    let mut r = rig(scripted(|_, q, s| stt_ok(q, s)), healthy_mt(), tts);
    r.cfg.tts_format = TtsFormat::Pcm;
    let (resp, late) = run(&r);
    assert_served(&resp, late, "ducked", Some("tts-error"));
    assert_eq!(counts(&r), (1, 1, 1));
}

#[test]
fn fault_redirect_to_a_host_not_allowed_is_not_followed() {
    let elsewhere = ConnectionCounter::start();
    let target = format!("{}/translate?q=x&langpair=eng|spa", elsewhere.url());
    let mt = scripted(move |_, _, s| {
        write_reply(s, 302, &[("location", target.as_str())], b"");
    });
    let r = rig(scripted(|_, q, s| stt_ok(q, s)), mt, healthy_tts());
    let (resp, late) = run(&r);
    assert_served(&resp, late, "ducked", Some("mt-error"));
    assert_eq!(counts(&r), (1, 1, 0), "a redirect is not retried");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        elsewhere.count(),
        0,
        "no connection reached the redirect target"
    );
}

#[test]
fn breaker_opens_after_repeated_failures_fails_fast_then_half_opens() {
    let healthy = Arc::new(AtomicBool::new(false));
    let h2 = healthy.clone();
    let stt = scripted(move |_, req, s| {
        if h2.load(Ordering::SeqCst) {
            stt_ok(req, s);
        } else {
            write_reply(s, 502, &[], b"bad gateway");
        }
    });
    let mut r = rig(stt, healthy_mt(), healthy_tts());
    r.cfg.breaker_failures = 2;
    let provider = stt_provider(&r.stt.url());
    let breaker = |r: &Rig| load_breaker(r.kv.as_ref(), Role::Stt, &provider);

    // Call 1: fails, retried once (the budget's first token), one failure.
    let (resp, late) = run(&r);
    assert_served(&resp, late, "original", Some("stt-error"));
    assert_eq!(r.stt.request_count(), 2);
    assert_eq!(breaker(&r), Breaker::Closed { failures: 1 });
    // Call 2: fails, no token left for a retry; the second failure opens the breaker.
    let (resp, late) = run(&r);
    assert_served(&resp, late, "original", Some("stt-error"));
    assert_eq!(r.stt.request_count(), 3, "retry budget spent: no retry");
    assert!(
        matches!(breaker(&r), Breaker::Open { .. }),
        "{:?}",
        breaker(&r)
    );
    // Call 3: open: fails fast, no request reaches the provider.
    let (resp, late) = run(&r);
    assert_served(&resp, late, "original", Some("stt-error"));
    assert_eq!(r.stt.request_count(), 3, "open breaker: no call");

    // After the cooldown one probe goes through; it fails, so the breaker opens again.
    std::thread::sleep(Duration::from_millis(r.cfg.breaker_cooldown_ms + 100));
    let (resp, late) = run(&r);
    assert_served(&resp, late, "original", Some("stt-error"));
    assert_eq!(r.stt.request_count(), 4, "one probe, never retried");
    assert!(matches!(breaker(&r), Breaker::Open { .. }));
    let (resp, _) = run(&r);
    assert_eq!(header(&resp, "x-dub-fallback"), Some("stt-error"));
    assert_eq!(r.stt.request_count(), 4, "open again: no call");

    // The provider recovers: the next probe succeeds and closes the breaker.
    healthy.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(r.cfg.breaker_cooldown_ms + 100));
    let (resp, late) = run(&r);
    assert_served(&resp, late, "dub", None);
    assert_eq!(counts(&r), (5, 2, 2));
    assert_eq!(breaker(&r), Breaker::Closed { failures: 0 });
    // Retries within budget: 4 calls reached the provider, 1 retry ≤ 1 + 0.2 × 4.
}

#[test]
fn retry_budget_keeps_retries_to_a_fifth_of_calls() {
    let mt = scripted(|_, _, s| write_reply(s, 503, &[("retry-after", "0")], b"busy"));
    let mut cfg = test_config();
    cfg.mt_url = mt.url();
    cfg.breaker_failures = 0; // no breaker: every call reaches the provider
    let http = WithKv {
        http: StdHttpClient,
        kv: MemoryKv::new(MemoryLimits::default()),
    };
    for i in 0..30 {
        let dl = Instant::now() + Duration::from_secs(5);
        let err = crate::providers::translate(&http, &cfg, &format!("text {i}"), "en", "es", dl);
        assert_eq!(err, Err(crate::providers::ProviderError::Status(503)));
    }
    // 1 starting token + 30 × 0.2 deposited = 7 retries, exactly.
    assert_eq!(mt.request_count(), 30 + 7);
    assert_eq!(budget_tokens(&http.kv, Role::Mt), 0);

    // Without a store there is nothing to count a budget in: no retries at all.
    let dl = Instant::now() + Duration::from_secs(5);
    let err = crate::providers::translate(&StdHttpClient, &cfg, "x", "en", "es", dl);
    assert_eq!(err, Err(crate::providers::ProviderError::Status(503)));
    assert_eq!(mt.request_count(), 38);
}

#[test]
fn second_request_for_the_same_audio_makes_no_provider_call() {
    let r = rig(
        scripted(|_, q, s| stt_ok(q, s)),
        healthy_mt(),
        healthy_tts(),
    );
    let (first, late) = run(&r);
    assert_served(&first, late, "dub", None);
    assert_eq!(counts(&r), (1, 2, 2));
    // The same audio under another URL (another variant, a replay, another node sharing the
    // store): the same bytes out, and no provider call at all.
    let (second, late) = run_path(&r, "/variant2/seg.mp4");
    assert_served(&second, late, "dub", None);
    assert_eq!(second.body, first.body);
    assert_eq!(counts(&r), (1, 2, 2), "served from the cache");
    let keys = r.kv.keys();
    let n = |p: &str| keys.iter().filter(|k| k.starts_with(p)).count();
    assert_eq!(
        (n("dub/c1/stt/"), n("dub/c1/mt/"), n("dub/c1/tts/")),
        (1, 2, 2)
    );
    // Nothing stored carries a secret or a request detail.
    for k in &keys {
        let v = r.kv.get(k).unwrap().unwrap();
        for needle in [SECRET, "api_key", "authorization", "Bearer", &r.stt.url()] {
            assert!(!k.contains(needle), "{k}");
            assert!(
                !v.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in the value of {k}"
            );
        }
    }
    let mt_vals: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with("dub/c1/mt/"))
        .map(|k| String::from_utf8(r.kv.get(k).unwrap().unwrap()).unwrap())
        .collect();
    assert!(
        mt_vals.contains(&"ES(Where are you going?)".to_string()),
        "{mt_vals:?}"
    );

    // Speech above the size cap is not cached: a fresh store with a 20 kB cap keeps the
    // transcript (~1 kB) and translations, not the 38 kB WAVs.
    let mut r = rig(
        scripted(|_, q, s| stt_ok(q, s)),
        healthy_mt(),
        healthy_tts(),
    );
    r.cfg.cache_max_bytes = 20_000;
    run(&r);
    let (again, late) = run(&r);
    assert_served(&again, late, "dub", None);
    assert_eq!(counts(&r), (1, 2, 4), "only TTS called again");
}
