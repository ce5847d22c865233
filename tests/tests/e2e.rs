//! End to end: the sample origin, the local speech service and dubhost running the real edge
//! component, all as separate processes on 127.0.0.1, driven over HTTP.
//!
//! These need the built artifacts (`make build`: dubhost and build/*.wasm) and the Debian engines
//! (ffmpeg, espeak-ng, pocketsphinx, apertium); `make test` provides both.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use dub_tests::*;

/// Heavy tests run one at a time: two cores, and deadlines are part of what is tested.
static SERIAL: Mutex<()> = Mutex::new(());

const T: Duration = Duration::from_secs(60);

struct Sample {
    dir: PathBuf,
    /// (start seconds, text) of each English sentence in the source.
    sentences: Vec<(f64, String)>,
}

fn sample() -> &'static Sample {
    static S: OnceLock<Sample> = OnceLock::new();
    S.get_or_init(|| make_sample("sample", &[]))
}

/// A sample whose sentences start 4 s into each 6 s segment, so each runs across a boundary.
fn sample_across_edges() -> &'static Sample {
    static S: OnceLock<Sample> = OnceLock::new();
    S.get_or_init(|| make_sample("sample-across", &["--sentence-offset", "4.0"]))
}

fn make_sample(tag: &str, extra: &[&str]) -> Sample {
    let a = artifacts();
    let dir = temp_dir(tag);
    let st = Command::new(&a.dubhost)
        .args(["make-sample", "--out"])
        .arg(&dir)
        .args(["--duration", "24"])
        .args(extra)
        .status()
        .expect("run dubhost make-sample");
    assert!(st.success(), "make-sample failed");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("speech.json")).expect("speech.json"))
            .expect("speech.json is JSON");
    let sentences = info["sentences"]
        .as_array()
        .expect("sentences array")
        .iter()
        .map(|s| {
            (
                s["start"].as_f64().expect("start"),
                s["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect::<Vec<_>>();
    assert!(!sentences.is_empty());
    Sample { dir, sentences }
}

fn origin() -> Proc {
    origin_of(sample())
}

fn origin_of(sample: &Sample) -> Proc {
    let a = artifacts();
    let mut c = Command::new(&a.dubhost);
    c.args(["origin", "--dir"])
        .arg(&sample.dir)
        .args(["--listen", "127.0.0.1:0"]);
    spawn_listening("origin", c, T)
}

fn speech() -> Proc {
    let a = artifacts();
    let mut c = Command::new(&a.dubhost);
    c.args(["speech", "--listen", "127.0.0.1:0"]);
    spawn_listening("speech", c, T)
}

/// dubhost serving the repository's spin.toml, with variables overridden the way Spin does it.
fn edge(vars: &[(&str, String)]) -> Proc {
    edge_with_manifest(&artifacts().repo.join("spin.toml"), vars)
}

fn edge_with_manifest(manifest: &std::path::Path, vars: &[(&str, String)]) -> Proc {
    let a = artifacts();
    let mut c = Command::new(&a.dubhost);
    c.args(["serve", "--manifest"])
        .arg(manifest)
        .args(["--listen", "127.0.0.1:0"]);
    for (k, v) in vars {
        c.env(format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v);
    }
    spawn_listening("dubhost", c, Duration::from_secs(300))
}

fn speech_vars(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("stt_url", base.to_string()),
        ("mt_url", base.to_string()),
        ("tts_url", base.to_string()),
    ]
}

/// The dubbed audio rendition's media playlist URL from a dubbed master playlist.
fn dubbed_rendition(edge_base: &str, master: &str) -> String {
    let line = master
        .lines()
        .find(|l| l.starts_with("#EXT-X-MEDIA:") && attr(l, "LANGUAGE").as_deref() == Some("es"))
        .unwrap_or_else(|| panic!("no dubbed rendition in:\n{master}"));
    resolve(&format!("{edge_base}/"), &attr(line, "URI").expect("URI"))
}

struct Fetched {
    source_init: Vec<u8>,
    dubbed_init: Vec<u8>,
    /// (source bytes, dubbed response, EXTINF start seconds)
    segments: Vec<(Vec<u8>, Resp, f64)>,
}

fn fetch_all(edge: &Proc, origin: &Proc, extra_query: &str) -> Fetched {
    let src = format!("{}/vod/master.m3u8", origin.base());
    let url = format!(
        "{}/dub/es/index.m3u8?src={}{extra_query}",
        edge.base(),
        encode_query(&src)
    );
    let m = get(&url, T).expect("master");
    assert_eq!(m.status, 200, "master: {}", m.text());
    let master = m.text();
    let media_url = dubbed_rendition(&edge.base(), &master);
    let p = get(&media_url, T).expect("media playlist");
    assert_eq!(p.status, 200, "{}", p.text());
    let text = p.text();
    let src_playlist_url = format!("{}/vod/audio.m3u8", origin.base());
    let src_text = get(&src_playlist_url, T).expect("source playlist").text();
    let src_segs = segment_uris(&src_playlist_url, &src_text);
    let dub_segs = segment_uris(&media_url, &text);
    assert_eq!(src_segs.len(), dub_segs.len(), "segment count");
    let source_init = get(&map_uri(&src_playlist_url, &src_text).expect("src map"), T)
        .expect("src init")
        .body;
    let dubbed_init = get(&map_uri(&media_url, &text).expect("dub map"), T).expect("init");
    assert_eq!(dubbed_init.status, 200);
    let durations: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| {
            d.split(',')
                .next()
                .unwrap_or("0")
                .trim()
                .parse()
                .unwrap_or(0.0)
        })
        .collect();
    let mut start = 0.0;
    let mut segments = Vec::new();
    for (i, (s, d)) in src_segs.iter().zip(&dub_segs).enumerate() {
        let source = get(s, T).expect("source segment").body;
        let dubbed = get(d, T).expect("dubbed segment");
        assert_eq!(dubbed.status, 200, "segment {i}: {}", dubbed.text());
        segments.push((source, dubbed, start));
        start += durations.get(i).copied().unwrap_or(0.0);
    }
    Fetched {
        source_init,
        dubbed_init: dubbed_init.body,
        segments,
    }
}

#[test]
fn vod_stream_is_dubbed_in_sync() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let origin = origin();
    let speech = speech();
    let mut vars = speech_vars(&speech.base());
    // Generous deadline: this test is about the dub itself, the fallback tests cover deadlines.
    vars.push(("deadline_min_ms", "30000".into()));
    let edge = edge(&vars);

    // The master keeps the English rendition (DEFAULT=NO now) and gains the Spanish dub.
    let src = format!("{}/vod/master.m3u8", origin.base());
    let m = get(
        &format!(
            "{}/dub/es/index.m3u8?src={}",
            edge.base(),
            encode_query(&src)
        ),
        T,
    )
    .unwrap();
    let master = m.text();
    let added: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA:") && attr(l, "LANGUAGE").as_deref() == Some("es"))
        .collect();
    assert_eq!(added.len(), 1, "{master}");
    assert_eq!(attr(added[0], "TYPE").as_deref(), Some("AUDIO"));
    assert_eq!(attr(added[0], "DEFAULT").as_deref(), Some("YES"));
    assert_eq!(attr(added[0], "AUTOSELECT").as_deref(), Some("YES"));
    assert!(attr(added[0], "NAME").unwrap().contains("AI dub"));
    let english = master
        .lines()
        .find(|l| l.starts_with("#EXT-X-MEDIA:") && attr(l, "LANGUAGE").as_deref() == Some("en"))
        .expect("English rendition kept");
    assert_eq!(attr(english, "DEFAULT").as_deref(), Some("NO"));
    // Video variants point straight at the origin.
    let variant = master
        .lines()
        .skip_while(|l| !l.starts_with("#EXT-X-STREAM-INF"))
        .nth(1)
        .expect("variant URI");
    assert!(variant.starts_with(&origin.base()), "variant {variant}");

    let f = fetch_all(&edge, &origin, "");
    assert_eq!(
        f.source_init, f.dubbed_init,
        "init segment must pass through byte-identical"
    );
    let mut concat = f.dubbed_init.clone();
    let mut dubbed_count = 0;
    for (i, (source, dubbed, _)) in f.segments.iter().enumerate() {
        let rung = dubbed.header("x-dub-rung").unwrap_or("?");
        eprintln!(
            "segment {i}: rung={rung} fallback={:?} timing={:?} server-timing={:?}",
            dubbed.header("x-dub-fallback"),
            dubbed.header("x-dub-timing"),
            dubbed.header("server-timing")
        );
        assert!(dubbed.header("server-timing").is_some());
        let a = dub_media::open_segment(&f.source_init, source).expect("source parses");
        let b = dub_media::open_segment(&f.dubbed_init, &dubbed.body).expect("dub parses");
        assert_eq!(
            a.timing(),
            b.timing(),
            "segment {i}: decode times and frame count"
        );
        if rung == "dub" {
            dubbed_count += 1;
            assert_ne!(source, &dubbed.body);
            // Every VOD segment has a neighbour: its edge is fetched for a seamless join.
            assert!(
                dubbed
                    .header("server-timing")
                    .is_some_and(|t| t.contains("join;dur=")),
                "segment {i}: no join stage"
            );
        } else {
            assert_eq!(source, &dubbed.body, "a fallback serves the original bytes");
        }
        concat.extend_from_slice(&dubbed.body);
    }
    // Every segment where the source speaks is dubbed.
    let speech_segments = {
        let mut v: Vec<usize> = sample()
            .sentences
            .iter()
            .map(|(s, _)| (*s / 6.0) as usize)
            .collect();
        v.dedup();
        v.len()
    };
    assert!(
        dubbed_count >= speech_segments,
        "{dubbed_count} dubbed segments, {speech_segments} have speech"
    );
    let dir = temp_dir("e2e");
    let errors = ffmpeg_errors(&dir, "dubbed.mp4", &concat);
    assert!(errors.trim().is_empty(), "ffmpeg decode errors:\n{errors}");
}

#[test]
fn dubbed_utterances_start_where_the_source_speaks() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let origin = origin();
    let speech = speech();
    let mut vars = speech_vars(&speech.base());
    vars.push(("deadline_min_ms", "30000".into()));
    let edge = edge(&vars);
    // bg=none: the output is the synthetic speech alone, so its onsets are measurable.
    let f = fetch_all(&edge, &origin, "&bg=none");
    let mut pcm = Vec::new();
    let mut rate = 48000;
    let mut channels = 2;
    for (i, (_, dubbed, _)) in f.segments.iter().enumerate() {
        eprintln!(
            "segment {i}: rung={:?} fallback={:?} timing={:?}",
            dubbed.header("x-dub-rung"),
            dubbed.header("x-dub-fallback"),
            dubbed.header("x-dub-timing")
        );
        let seg = dub_media::open_segment(&f.dubbed_init, &dubbed.body).expect("parses");
        let p = dub_media::decode_audio(&seg).expect("decodes");
        rate = p.sample_rate;
        channels = p.channels as usize;
        if dubbed.header("x-dub-rung") == Some("dub") {
            pcm.extend_from_slice(&p.samples);
        } else {
            // Fallback segments carry the original (speech over music): blank them for this
            // measurement and require below that every sentence was dubbed.
            pcm.extend(std::iter::repeat_n(0.0, p.samples.len()));
        }
    }
    let found = onsets(&pcm, channels, rate, 0.01, 0.25);
    eprintln!("source sentence starts: {:?}", sample().sentences);
    eprintln!("dubbed onsets: {found:?}");
    for (start, text) in &sample().sentences {
        let nearest = found
            .iter()
            .map(|o| (o - start).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(
            nearest <= 0.200,
            "sentence {text:?} at {start:.3}s: nearest dubbed onset is {:.0} ms away",
            nearest * 1000.0
        );
    }
}

/// Sentences that run across segment boundaries (4.0–6.x s, 10.0–12.x s, ...) are dubbed once
/// each, at their source start: the segment where a sentence starts plays the beginning of its
/// voice and the next segment plays the rest, so every synthesized clip is found whole in the
/// concatenated output, and no voice starts at a segment boundary.
#[test]
fn sentences_across_segment_edges_are_voiced_once_at_their_source_start() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sample = sample_across_edges();
    let origin = origin_of(sample);
    let speech = speech();
    let (tts_proxy, exchanges) = recording_proxy(speech.addr);
    let mut vars = speech_vars(&speech.base());
    vars.retain(|(k, _)| *k != "tts_url");
    vars.push(("tts_url", format!("http://{tts_proxy}")));
    vars.push(("deadline_min_ms", "30000".into()));
    let edge = edge(&vars);
    let f = fetch_all(&edge, &origin, "&bg=none");
    let mut pcm = Vec::new();
    let (mut rate, mut channels) = (48000, 2);
    for (i, (_, dubbed, _)) in f.segments.iter().enumerate() {
        eprintln!(
            "segment {i}: rung={:?} fallback={:?} timing={:?}",
            dubbed.header("x-dub-rung"),
            dubbed.header("x-dub-fallback"),
            dubbed.header("x-dub-timing")
        );
        assert_eq!(dubbed.header("x-dub-rung"), Some("dub"), "segment {i}");
        let seg = dub_media::open_segment(&f.dubbed_init, &dubbed.body).expect("parses");
        let p = dub_media::decode_audio(&seg).expect("decodes");
        (rate, channels) = (p.sample_rate, p.channels as usize);
        pcm.extend_from_slice(&p.samples);
    }
    let found = onsets(&pcm, channels, rate, 0.01, 0.25);
    eprintln!("source sentence starts: {:?}", sample.sentences);
    eprintln!("dubbed onsets: {found:?}");
    for (start, text) in &sample.sentences {
        let nearest = found
            .iter()
            .map(|o| (o - start).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(
            nearest <= 0.200,
            "sentence {text:?} at {start:.3}s: nearest dubbed onset is {:.0} ms away",
            nearest * 1000.0
        );
    }
    // No voice starts anywhere else (a sentence voiced twice, or restarted at a boundary).
    for o in &found {
        assert!(
            sample.sentences.iter().any(|(s, _)| (o - s).abs() <= 0.200),
            "a voice starts at {o:.2} s, where no sentence does"
        );
    }

    // Every distinct synthesized clip is in the output whole, across the boundary.
    let dir = temp_dir("across");
    let out = dir.join("dubbed.mp4");
    let mut whole = f.dubbed_init.clone();
    for (_, d, _) in &f.segments {
        whole.extend_from_slice(&d.body);
    }
    std::fs::write(&out, &whole).expect("write");
    let recorded = ffmpeg_decode_mono(&out, 16000);
    let mut clips: Vec<Vec<u8>> = exchanges
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|x| x.request_line.starts_with("POST /v1/audio/speech"))
        .map(|x| x.response_body.clone())
        .collect();
    clips.sort();
    clips.dedup();
    assert!(
        clips.len() >= sample.sentences.len(),
        "{} clips",
        clips.len()
    );
    let mut starts = Vec::new();
    for (i, wav) in clips.iter().enumerate() {
        let p = dir.join(format!("tts{i}.wav"));
        std::fs::write(&p, wav).expect("write clip");
        let clip = ffmpeg_decode_mono(&p, 16000);
        let (score, at) = find_clip(&recorded, &clip);
        let at = at as f64 / 16000.0;
        let secs = clip.len() as f64 / 16000.0;
        eprintln!("tts clip {i} ({secs:.2} s): best match {score:.3} at {at:.2} s");
        // Clips that straddle a boundary match as well as the others: the two halves line up.
        let crosses = ((at / 6.0).floor() - ((at + secs) / 6.0).floor()).abs() >= 1.0;
        if crosses {
            assert!(
                score > 0.9,
                "clip {i} across a boundary matches only {score:.3}"
            );
        }
        starts.push(at);
    }
    for (start, text) in &sample.sentences {
        assert!(
            starts.iter().any(|a| (a - start).abs() <= 0.2),
            "no whole clip for {text:?} at {start:.2} s"
        );
    }
}

fn assert_all_fall_back(vars: Vec<(&'static str, String)>, deadline: Duration) {
    let origin = origin();
    // dubhost's own counters, on a separate listener (a free port picked here).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let a = artifacts();
    let mut c = Command::new(&a.dubhost);
    c.args(["serve", "--manifest"])
        .arg(a.repo.join("spin.toml"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")]);
    for (k, v) in &vars {
        c.env(format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v);
    }
    let edge = spawn_listening("dubhost", c, Duration::from_secs(300));
    let f = fetch_all(&edge, &origin, "");
    for (i, (source, dubbed, _)) in f.segments.iter().enumerate() {
        assert_eq!(dubbed.status, 200);
        assert_eq!(
            source, &dubbed.body,
            "segment {i} must be the original, byte-identical"
        );
        assert_eq!(dubbed.header("x-dub-rung"), Some("original"), "segment {i}");
        assert!(
            dubbed.header("x-dub-fallback").is_some(),
            "segment {i} names its fallback"
        );
        assert!(
            dubbed.elapsed <= deadline + Duration::from_millis(700),
            "segment {i} took {:?}, deadline {deadline:?}",
            dubbed.elapsed
        );
    }
    // Every segment is counted on the original rung, under the reason its header gave.
    let metrics = get(&format!("http://127.0.0.1:{port}/metrics"), T)
        .expect("metrics")
        .text();
    let mut counted = 0u64;
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("dubhost_segments_total{rung=\"original\"") {
            counted += rest
                .rsplit(' ')
                .next()
                .unwrap_or("0")
                .parse::<u64>()
                .unwrap_or(0);
        }
        assert!(
            !line.starts_with("dubhost_segments_total{rung=\"dub\""),
            "{metrics}"
        );
    }
    assert_eq!(counted, f.segments.len() as u64, "{metrics}");
}

#[test]
fn speech_service_down_falls_back_to_the_original() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dead = format!("http://{}", closed_port());
    let mut vars = speech_vars(&dead);
    vars.push(("deadline_min_ms", "1500".into()));
    vars.push(("deadline_fraction", "0.5".into()));
    // 6 s segments: deadline = max(1.5 s, 3 s).
    assert_all_fall_back(vars, Duration::from_secs(3));
}

#[test]
fn stalled_speech_service_falls_back_within_the_deadline() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (addr, count) = stalling_server();
    let mut vars = speech_vars(&format!("http://{addr}"));
    vars.push(("deadline_min_ms", "1500".into()));
    vars.push(("deadline_fraction", "0.5".into()));
    assert_all_fall_back(vars, Duration::from_secs(3));
    assert!(
        count.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the stalled STT server was actually called"
    );
}

#[test]
fn unsigned_refs_and_foreign_origins_are_refused_without_outbound_calls() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let origin = origin();
    // A second "origin" that is not on the allowlist; it counts connections.
    let (foreign, foreign_count) = stalling_server();
    let vars = vec![("origins", origin.base())];
    let edge = edge(&vars);

    let src = format!("http://{foreign}/master.m3u8");
    let r = get(
        &format!(
            "{}/dub/es/index.m3u8?src={}",
            edge.base(),
            encode_query(&src)
        ),
        T,
    )
    .unwrap();
    assert!(
        (400..500).contains(&r.status),
        "foreign origin: {}",
        r.status
    );
    assert!(r.text().len() < 200, "short message only");

    // A real signed segment URL, then the same with its ref tampered.
    let good = format!("{}/vod/master.m3u8", origin.base());
    let m = get(
        &format!(
            "{}/dub/es/index.m3u8?src={}",
            edge.base(),
            encode_query(&good)
        ),
        T,
    )
    .unwrap();
    assert_eq!(m.status, 200);
    let media_url = dubbed_rendition(&edge.base(), &m.text());
    let p = get(&media_url, T).unwrap().text();
    let seg = segment_uris(&media_url, &p)
        .into_iter()
        .next()
        .expect("a segment");
    let i = seg.rfind('/').expect("slash") + 5;
    let mut tampered = seg.clone().into_bytes();
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let stats = || -> Option<serde_json::Value> {
        let r = get(&format!("{}/stats", origin.base()), T).ok()?;
        let mut v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        // The counter counts /stats itself: leave it out.
        v.as_object_mut()?.remove("/stats");
        Some(v)
    };
    let before = stats();
    let r = get(&tampered, T).unwrap();
    assert!((400..500).contains(&r.status), "tampered ref: {}", r.status);
    let r2 = get(&format!("{}/dub/es/s/not-a-ref.m4s", edge.base()), T).unwrap();
    assert!(
        (400..500).contains(&r2.status),
        "garbage ref: {}",
        r2.status
    );
    let after = stats();
    assert!(before.is_some(), "origin /stats answers");
    assert_eq!(before, after, "refused refs made no request to the origin");
    assert_eq!(foreign_count.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// The demo path: a live sliding-window origin, dubbed, recorded by ffmpeg as a player would.
/// The recording must hold the Spanish synthetic speech itself: every clip the TTS service
/// returned (captured by a recording proxy in front of it) is found in the recorded audio.
#[test]
fn live_stream_recorded_by_ffmpeg_contains_the_synthetic_speech() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let origin = origin();
    let speech = speech();
    let (tts_proxy, exchanges) = recording_proxy(speech.addr);
    let mut vars = speech_vars(&speech.base());
    vars.retain(|(k, _)| *k != "tts_url");
    vars.push(("tts_url", format!("http://{tts_proxy}")));
    let edge = edge(&vars);

    let src = format!("{}/live/master.m3u8", origin.base());
    let url = format!(
        "{}/dub/es/index.m3u8?src={}",
        edge.base(),
        encode_query(&src)
    );
    let master = get(&url, T).expect("live master").text();
    let dubbed = dubbed_rendition(&edge.base(), &master);
    let media = get(&dubbed, T).expect("live media playlist");
    assert_eq!(media.status, 200);
    assert!(!media.text().contains("#EXT-X-ENDLIST"), "live stays live");
    assert_eq!(media.header("cache-control"), Some("public, max-age=1"));

    let dir = temp_dir("live");
    let out = dir.join("dubbed.m4a");
    // The command `make demo` prints: ffmpeg on the dubbed rendition's playlist, live.
    let rec = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i", &dubbed])
        .args(["-t", "30", "-c", "copy", "-y"])
        .arg(&out)
        .output()
        .expect("run ffmpeg");
    let errors = String::from_utf8_lossy(&rec.stderr);
    assert!(rec.status.success(), "ffmpeg failed: {errors}");
    assert!(errors.trim().is_empty(), "ffmpeg printed errors:\n{errors}");
    let recorded = ffmpeg_decode_mono(&out, 16000);
    let secs = recorded.len() as f64 / 16000.0;
    assert!(secs >= 29.0, "recorded {secs:.1} s");

    let clips: Vec<Vec<u8>> = exchanges
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|x| x.request_line.starts_with("POST /v1/audio/speech"))
        .map(|x| x.response_body.clone())
        .collect();
    assert!(!clips.is_empty(), "the dub synthesized speech");
    let mut found = 0;
    for (i, wav) in clips.iter().enumerate() {
        let p = dir.join(format!("tts{i}.wav"));
        std::fs::write(&p, wav).expect("write clip");
        let clip = ffmpeg_decode_mono(&p, 16000);
        // Compare the first 1.5 s: a clip may be cut at the end of its segment.
        let clip = &clip[..clip.len().min(24000)];
        let (score, at) = find_clip(&recorded, clip);
        eprintln!(
            "tts clip {i}: best match {score:.2} at {:.2} s",
            at as f64 / 16000.0
        );
        if score > 0.6 {
            found += 1;
        }
    }
    // Segments synthesized before or after the recorded window are not in it; every segment of
    // the window carries one sentence, so most clips must be found.
    assert!(
        found >= 4.min(clips.len()),
        "only {found} of {} synthesized clips are in the recording",
        clips.len()
    );
}

/// What Spin does with `[component.edge.dependencies]`: compose the media component into the
/// edge component, so `dub:media` runs as WebAssembly instead of natively. The composed
/// component imports no `dub:media` at all; dubhost runs it like any Spin HTTP component and it
/// must dub the VOD stream with the same timing guarantees.
#[test]
fn composed_component_dubs_with_the_wasm_media_component() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let a = artifacts();
    let dir = temp_dir("composed");
    // `wasm-tools compose` names the dependency after the file stem, which must be kebab-case.
    std::fs::copy(a.repo.join("build/dub_media.wasm"), dir.join("media.wasm")).expect("copy");
    std::fs::copy(a.repo.join("build/dub_edge.wasm"), dir.join("edge.wasm")).expect("copy");
    let out = Command::new("wasm-tools")
        .current_dir(&dir)
        .args([
            "compose",
            "edge.wasm",
            "-d",
            "media.wasm",
            "-o",
            "composed.wasm",
        ])
        .output()
        .expect("wasm-tools");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wit = Command::new("wasm-tools")
        .args(["component", "wit"])
        .arg(dir.join("composed.wasm"))
        .output()
        .expect("wasm-tools");
    let wit = String::from_utf8_lossy(&wit.stdout);
    assert!(
        !wit.contains("dub:media"),
        "composition left dub:media imports:\n{wit}"
    );
    assert!(wit.contains("export wasi:http/incoming-handler@0.2.0;"));

    let manifest = std::fs::read_to_string(a.repo.join("spin.toml"))
        .expect("spin.toml")
        .replace(
            "source = \"build/dub_edge.wasm\"",
            "source = \"composed.wasm\"",
        );
    assert!(manifest.contains("composed.wasm"));
    std::fs::write(dir.join("spin.toml"), manifest).expect("manifest");

    let origin = origin();
    let speech = speech();
    let mut vars = speech_vars(&speech.base());
    vars.push(("deadline_min_ms", "30000".into()));
    let edge = edge_with_manifest(&dir.join("spin.toml"), &vars);
    let f = fetch_all(&edge, &origin, "");
    assert_eq!(f.source_init, f.dubbed_init);
    for (i, (source, dubbed, _)) in f.segments.iter().enumerate() {
        eprintln!(
            "composed segment {i}: rung={:?} server-timing={:?}",
            dubbed.header("x-dub-rung"),
            dubbed.header("server-timing")
        );
        assert_eq!(dubbed.header("x-dub-rung"), Some("dub"), "segment {i}");
        let a = dub_media::open_segment(&f.source_init, source).expect("source parses");
        let b = dub_media::open_segment(&f.dubbed_init, &dubbed.body).expect("dub parses");
        assert_eq!(a.timing(), b.timing(), "segment {i}");
    }
}
