//! The speech service over real HTTP with the real engines: pocketsphinx, espeak-ng, apertium.

mod common;

use std::time::Instant;

use common::*;
use dub_localsvc::wav;
use serde_json::Value;

const SENTENCES: &[&str] = &[
    "Welcome to the evening news.",
    "The weather today is sunny and warm.",
    "The city council met on Monday.",
    "Traffic was light on the main roads.",
    "A new park will open next week.",
    "Thank you for watching.",
];

/// Speaks `text` with espeak-ng (22.05 kHz mono WAV).
fn espeak(dir: &std::path::Path, name: &str, voice: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    cmd(
        "espeak-ng",
        &["-v", voice, "-s", "150", "-w", p.to_str().unwrap(), text],
    );
    p
}

/// Seconds into the WAV where the signal first exceeds 2% of full scale.
fn onset(path: &std::path::Path) -> f64 {
    let b = std::fs::read(path).unwrap();
    let i = wav::parse(&b).unwrap();
    let s = wav::first_channel(&b, &i);
    let k = s.iter().position(|&x| x.unsigned_abs() > 655).unwrap();
    k as f64 / f64::from(i.sample_rate)
}

fn duration(path: &std::path::Path) -> f64 {
    wav::parse(&std::fs::read(path).unwrap())
        .unwrap()
        .duration_secs()
}

const STT_ENGINES: &[&str] = &["espeak-ng", "sox", "ffmpeg", "pocketsphinx_continuous"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_word_times_and_recognition_rate() {
    if skip_without(STT_ENGINES) {
        return;
    }
    let dir = tempdir("stt");
    // 1 s of silence, then each sentence followed by 1 s of silence: pocketsphinx makes one utterance each.
    let mut parts = Vec::new();
    let mut onsets = Vec::new();
    let mut t = 1.0;
    let silence = dir.join("silence.wav");
    cmd(
        "sox",
        &[
            "-n",
            "-r",
            "22050",
            "-c",
            "1",
            "-b",
            "16",
            silence.to_str().unwrap(),
            "trim",
            "0",
            "1.0",
        ],
    );
    parts.push(silence.to_str().unwrap().to_owned());
    for (i, s) in SENTENCES.iter().enumerate() {
        let p = espeak(&dir, &format!("s{i}.wav"), "en-us+f2", s);
        onsets.push(t + onset(&p));
        t += duration(&p) + 1.0;
        parts.push(p.to_str().unwrap().to_owned());
        parts.push(silence.to_str().unwrap().to_owned());
    }
    let all = dir.join("all.wav");
    let mut args: Vec<&str> = vec!["-D"];
    args.extend(parts.iter().map(String::as_str));
    args.push(all.to_str().unwrap());
    cmd("sox", &args);
    let audio = std::fs::read(&all).unwrap();

    let addr = start_speech().await;
    let body = multipart(
        "b0undary",
        &[
            ("model", "whisper-1"),
            ("language", "en"),
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "word"),
            ("timestamp_granularities[]", "segment"),
        ],
        &audio,
    );
    let started = Instant::now();
    let (status, headers, resp) = http(
        addr,
        "POST",
        "/v1/audio/transcriptions",
        Some("multipart/form-data; boundary=b0undary"),
        body,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(headers["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["task"], "transcribe");
    assert_eq!(v["language"], "english");
    assert!(
        (v["duration"].as_f64().unwrap() - t).abs() < 0.05,
        "duration {} vs {t}",
        v["duration"]
    );
    let words = v["words"].as_array().unwrap();
    let segments = v["segments"].as_array().unwrap();
    assert!(!words.is_empty() && !segments.is_empty());
    // The first word starts where the speech starts.
    let first = words[0]["start"].as_f64().unwrap();
    assert!(
        (first - onsets[0]).abs() <= 0.3,
        "first word at {first}, speech at {:.3}",
        onsets[0]
    );
    // Word times are ordered and lie inside the audio.
    let mut last = 0.0;
    for w in words {
        let (s, e) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(s >= last - 1e-9 && e >= s && e <= t + 0.01, "{w}");
        last = s;
        assert!(
            !w["word"].as_str().unwrap().contains(['(', '<', '[']),
            "{w}"
        );
    }
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s["id"], i);
        assert!(s["avg_logprob"].as_f64().unwrap() <= 0.0);
    }
    // Each sentence's onset has an utterance starting within 0.3 s of it (most of them: a missed first
    // word moves the start).
    let matched = onsets
        .iter()
        .filter(|&&o| {
            segments
                .iter()
                .any(|s| (s["start"].as_f64().unwrap() - o).abs() <= 0.3)
        })
        .count();
    let reference: Vec<String> = SENTENCES.iter().flat_map(|s| words_of(s)).collect();
    let hypothesis = common::words(v["text"].as_str().unwrap());
    let hits = lcs(&reference, &hypothesis);
    let rate = hits as f64 / reference.len() as f64;
    eprintln!(
        "STT: {hits}/{} words recognised ({:.0}%), {matched}/{} utterance starts within 0.3 s, {:.1} s of audio in {} ms\n  heard: {}",
        reference.len(),
        rate * 100.0,
        onsets.len(),
        t,
        took.as_millis(),
        v["text"]
    );
    assert!(rate >= 0.5, "recognition rate {rate:.2}");
    assert!(
        matched * 2 >= onsets.len(),
        "{matched} of {} utterance starts matched",
        onsets.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn words_of(s: &str) -> Vec<String> {
    common::words(s)
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("dub-localsvc-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_six_second_segment_formats_and_timing() {
    if skip_without(STT_ENGINES) {
        return;
    }
    let dir = tempdir("stt6");
    let s = espeak(
        &dir,
        "s.wav",
        "en-us+f2",
        "The weather today is sunny and warm.",
    );
    // A 6 s, 48 kHz stereo clip like an HLS segment: 0.7 s lead-in, the sentence, silence to 6 s.
    let seg = dir.join("seg.wav");
    cmd(
        "sox",
        &[
            "-D", // no dither: the same input every run
            s.to_str().unwrap(),
            "-r",
            "48000",
            "-c",
            "2",
            seg.to_str().unwrap(),
            "pad",
            "0.7",
            "0",
            "trim",
            "0",
            "6.0",
            "pad",
            "0",
            "6.0",
            "trim",
            "0",
            "6.0",
        ],
    );
    let audio = std::fs::read(&seg).unwrap();
    let addr = start_speech().await;
    let ct = "multipart/form-data; boundary=xYz";

    let mut times = Vec::new();
    let mut text = String::new();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, _, body) = http(
            addr,
            "POST",
            "/v1/audio/transcriptions",
            Some(ct),
            multipart("xYz", &[("response_format", "json")], &audio),
        )
        .await;
        times.push(started.elapsed().as_millis());
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        text = v["text"].as_str().unwrap().to_owned();
        assert_eq!(
            v.as_object().unwrap().len(),
            1,
            "json format is just {{text}}"
        );
    }
    times.sort();
    eprintln!(
        "STT on a 6 s segment: {times:?} ms (median {} ms); heard {text:?}",
        times[1]
    );
    let hits = lcs(
        &words_of("the weather today is sunny and warm"),
        &common::words(&text),
    );
    assert!(hits >= 3, "heard {text:?}");

    let (status, headers, body) = http(
        addr,
        "POST",
        "/v1/audio/transcriptions",
        Some(ct),
        multipart("xYz", &[("response_format", "text")], &audio),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(String::from_utf8_lossy(&body).trim(), text);

    // Errors in OpenAI's shape.
    let err = |body: &[u8]| -> Value { serde_json::from_slice(body).unwrap() };
    let (status, _, body) = http(
        addr,
        "POST",
        "/v1/audio/transcriptions",
        Some(ct),
        multipart("xYz", &[("language", "es")], &audio),
    )
    .await;
    assert_eq!(status, 400);
    let e = err(&body);
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["param"], "language");
    assert!(e["error"]["message"].as_str().unwrap().contains("'es'"));
    assert!(e["error"].get("code").is_some());
    let (status, _, body) = http(
        addr,
        "POST",
        "/v1/audio/transcriptions",
        Some(ct),
        multipart("xYz", &[("response_format", "srt")], &audio),
    )
    .await;
    assert_eq!(
        (status.as_u16(), err(&body)["error"]["param"].as_str()),
        (400, Some("response_format"))
    );
    let (status, _, body) = http(
        addr,
        "POST",
        "/v1/audio/transcriptions",
        Some(ct),
        b"--xYz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nx\r\n--xYz--\r\n".to_vec(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), err(&body)["error"]["param"].as_str()),
        (400, Some("file"))
    );
    let (status, _, body) = http(
        addr,
        "POST",
        "/v1/audio/transcriptions",
        Some(ct),
        multipart("xYz", &[], b"this is not audio at all"),
    )
    .await;
    assert_eq!(status, 400);
    let msg = err(&body)["error"]["message"].as_str().unwrap().to_owned();
    assert!(!msg.contains('/'), "no paths in errors: {msg}");
    let (status, _, _) = http(
        addr,
        "POST",
        "/v1/audio/transcriptions",
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    // Over 25 MiB: refused without being read whole.
    let (status, _, body) = http(
        addr,
        "POST",
        "/v1/audio/transcriptions",
        Some(ct),
        vec![b'a'; 25 * 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(status, 413);
    assert!(err(&body)["error"]["message"].is_string());
    let (status, _, _) = get(addr, "/healthz").await;
    assert_eq!(status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tts_wav_pcm_voices_and_errors() {
    if skip_without(&["espeak-ng", "sox"]) {
        return;
    }
    let addr = start_speech().await;
    let tts = |body: Value| async move {
        http(
            addr,
            "POST",
            "/v1/audio/speech",
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    };
    let text = "Hola, esto es una prueba del sistema de doblaje.";
    let (status, headers, wav_bytes) =
        tts(serde_json::json!({"model": "tts-1", "input": text, "voice": "es"})).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(&wav_bytes[0..4], b"RIFF");
    assert_eq!(&wav_bytes[8..12], b"WAVE");
    let info = wav::parse(&wav_bytes).unwrap();
    let d = info.duration_secs();
    // Nine words at 175 wpm: about 3 s.
    assert!((1.5..6.0).contains(&d), "duration {d}");
    let samples = wav::first_channel(&wav_bytes, &info);
    let level = rms(&samples);
    assert!(level > 0.02, "rms {level}");

    // OpenAI voice names map to the default voice (es): same audio as asking for es.
    let (status, _, alloy) = tts(serde_json::json!({"model": "tts-1", "input": text, "voice": "alloy", "response_format": "wav"})).await;
    assert_eq!(status, 200);
    assert_eq!(alloy, wav_bytes);

    // pcm: raw 24 kHz mono s16le, same duration.
    let (status, headers, pcm) =
        tts(serde_json::json!({"input": text, "voice": "es", "response_format": "pcm"})).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "audio/pcm");
    assert_eq!(pcm.len() % 2, 0);
    assert_ne!(&pcm[0..4], b"RIFF");
    let pcm_secs = pcm.len() as f64 / 2.0 / 24000.0;
    assert!((pcm_secs - d).abs() < 0.02, "pcm {pcm_secs} s vs wav {d} s");
    let pcm_samples: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert!(
        (rms(&pcm_samples) / level - 1.0).abs() < 0.15,
        "same loudness after resampling"
    );

    // speed scales the speaking rate.
    let (_, _, fast) = tts(serde_json::json!({"input": text, "voice": "es", "speed": 2.0})).await;
    let fast_d = wav::parse(&fast).unwrap().duration_secs();
    assert!(fast_d < d * 0.7, "speed 2.0: {fast_d} s vs {d} s");

    // Text that looks like options is spoken, not obeyed.
    let (status, _, opt) = tts(serde_json::json!({"input": "--help -v en", "voice": "en"})).await;
    assert_eq!(status, 200);
    assert_eq!(&opt[0..4], b"RIFF");
    let (status, _, _) = tts(serde_json::json!({"input": "bonjour", "voice": "fr+f2"})).await;
    assert_eq!(status, 200);

    for (body, param) in [
        (
            serde_json::json!({"input": text, "voice": "es", "response_format": "mp3"}),
            "response_format",
        ),
        (
            serde_json::json!({"input": text, "voice": "-w/tmp/x"}),
            "voice",
        ),
        (
            serde_json::json!({"input": text, "voice": "klingon"}),
            "voice",
        ),
        (
            serde_json::json!({"input": text, "voice": "es", "speed": 5.0}),
            "speed",
        ),
        (serde_json::json!({"input": "", "voice": "es"}), "input"),
        (
            serde_json::json!({"input": "a".repeat(4097), "voice": "es"}),
            "input",
        ),
        (serde_json::json!({"voice": "es"}), "input"),
    ] {
        let (status, _, e) = tts(body.clone()).await;
        assert_eq!(status, 400, "{body}");
        let e: Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(e["error"]["param"], param, "{body}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mt_apertium_apy_shapes() {
    if skip_without(&["apertium"])
        || !std::path::Path::new("/usr/share/apertium/modes/eng-spa.mode").exists()
    {
        eprintln!("SKIP: needs apertium-eng-spa");
        return;
    }
    let addr = start_speech().await;
    let (status, headers, body) = get(
        addr,
        "/translate?langpair=eng%7Cspa&q=the%20house%20is%20red",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    let t = v["responseData"]["translatedText"].as_str().unwrap();
    assert!(t.contains("casa") && t.contains("roja"), "{t}");
    assert!(v["responseDetails"].is_null());
    assert_eq!(v["responseStatus"], 200);
    assert!(!t.ends_with('\n'));

    // POST form, and the reverse pair.
    let (status, _, body) = http(
        addr,
        "POST",
        "/translate",
        Some("application/x-www-form-urlencoded"),
        b"langpair=spa|eng&q=La+casa+es+roja.".to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let t = v["responseData"]["translatedText"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(t.contains("house") && t.contains("red"), "{t}");

    // Unknown words: unmarked by default, '*'-marked on request (APy's markUnknown).
    let (_, _, body) = get(
        addr,
        "/translate?langpair=eng|spa&q=the%20zorblax%20is%20red",
    )
    .await;
    let plain: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        !plain["responseData"]["translatedText"]
            .as_str()
            .unwrap()
            .contains('*')
    );
    let (_, _, body) = get(
        addr,
        "/translate?langpair=eng|spa&q=the%20zorblax%20is%20red&markUnknown=yes",
    )
    .await;
    let marked: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        marked["responseData"]["translatedText"]
            .as_str()
            .unwrap()
            .contains("*zorblax")
    );

    let (status, _, body) = get(addr, "/listPairs").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["responseStatus"], 200);
    let pairs = v["responseData"].as_array().unwrap();
    assert!(
        pairs
            .iter()
            .any(|p| p["sourceLanguage"] == "eng" && p["targetLanguage"] == "spa"),
        "{v}"
    );

    for (q, explanation) in [
        (
            "/translate?langpair=eng|xyz&q=hi",
            "That pair is not installed",
        ),
        (
            "/translate?langpair=engspa&q=hi",
            "That pair is invalid, use e.g. eng|spa",
        ),
        (
            "/translate?langpair=..%2F..|spa&q=hi",
            "That pair is invalid, use e.g. eng|spa",
        ),
        ("/translate?langpair=eng|spa", "Missing argument q"),
    ] {
        let (status, _, body) = get(addr, q).await;
        assert_eq!(status, 400, "{q}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["code"], 400);
        assert_eq!(v["message"], "Bad Request");
        assert_eq!(v["explanation"], explanation);
        assert_eq!(v["responseStatus"], 400);
    }
}
