//! OpenAI-compatible speech-to-text: `POST {stt_url}/v1/audio/transcriptions`, multipart/form-data,
//! `response_format=verbose_json` with word and segment timestamps.

use std::time::Instant;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    ProviderError, ProviderResult, SttSegment, Transcript, Word, bearer, join_url, send_checked,
};
use crate::config::Config;
use crate::http::{HttpClient, HttpRequest, Method};

/// Largest transcription response accepted.
pub const MAX_RESPONSE: usize = 1 << 20;
/// Most words (and, separately, segments) accepted in one transcription.
pub const MAX_WORDS: usize = 10_000;
/// Largest audio upload.
pub const MAX_UPLOAD: usize = 25 << 20;

#[derive(Deserialize)]
struct VerboseJson {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    words: Option<Vec<RawWord>>,
    #[serde(default)]
    segments: Option<Vec<RawSegment>>,
}

#[derive(Deserialize)]
struct RawWord {
    #[serde(default)]
    word: String,
    start: f64,
    end: f64,
}

#[derive(Deserialize)]
struct RawSegment {
    start: f64,
    end: f64,
    #[serde(default)]
    text: String,
}

/// A multipart boundary derived from the audio hash that does not occur in the body parts.
fn boundary_for(wav: &[u8], fields: &[(&str, &str)]) -> String {
    let digest = Sha256::digest(wav);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let mut n = 0u32;
    loop {
        let b = if n == 0 {
            format!("dub-edge-{hex}")
        } else {
            format!("dub-edge-{hex}-{n}")
        };
        let needle = b.as_bytes();
        let clash = wav.windows(needle.len()).any(|w| w == needle)
            || fields.iter().any(|(_, v)| v.contains(b.as_str()));
        if !clash {
            return b;
        }
        n += 1;
    }
}

/// Build the multipart/form-data body; returns (content-type header value, body).
pub fn multipart_body(wav: &[u8], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = boundary_for(wav, fields);
    let mut body = Vec::with_capacity(wav.len() + 1024);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"audio.wav\"\r\n\
             Content-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(wav);
    body.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Parse a verbose_json transcription (unknown fields ignored, `words`/`segments` optional).
pub fn parse_verbose_json(body: &[u8]) -> ProviderResult<Transcript> {
    if body.len() > MAX_RESPONSE {
        return Err(ProviderError::BadResponse("transcription too large".into()));
    }
    let v: VerboseJson = serde_json::from_slice(body)
        .map_err(|_| ProviderError::BadResponse("not a verbose_json transcription".into()))?;
    let words = v.words.unwrap_or_default();
    let segments = v.segments.unwrap_or_default();
    if words.len() > MAX_WORDS || segments.len() > MAX_WORDS {
        return Err(ProviderError::BadResponse(format!(
            "more than {MAX_WORDS} words or segments"
        )));
    }
    Ok(Transcript {
        text: v.text.unwrap_or_default(),
        language: v.language,
        duration: v.duration.filter(|d| d.is_finite() && *d >= 0.0),
        words: words
            .into_iter()
            .map(|w| Word {
                word: w.word,
                start: w.start,
                end: w.end,
                speaker: None,
            })
            .collect(),
        segments: segments
            .into_iter()
            .map(|s| SttSegment {
                start: s.start,
                end: s.end,
                text: s.text,
            })
            .collect(),
    })
}

/// Transcribe a WAV file in `cfg.source_lang` with `cfg.stt_model`, failing at `deadline`.
pub fn transcribe<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    wav: &[u8],
    deadline: Instant,
) -> ProviderResult<Transcript> {
    super::check_stt_upload(wav)?;
    let fields = [
        ("model", cfg.stt_model.as_str()),
        ("response_format", "verbose_json"),
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
        ("language", cfg.source_lang.as_str()),
    ];
    let (content_type, body) = multipart_body(wav, &fields);
    let mut headers = vec![
        ("content-type".to_string(), content_type),
        ("accept".into(), "application/json".into()),
    ];
    bearer(&mut headers, cfg.stt_key());
    let req = HttpRequest {
        method: Method::Post,
        url: join_url(&cfg.stt_url, "/v1/audio/transcriptions"),
        headers,
        body,
    };
    let resp = send_checked(http, &req, deadline, MAX_RESPONSE, cfg.stt_key())?;
    parse_verbose_json(&resp.body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testutil::{
        Reply, StdHttpClient, TestServer, parse_multipart, test_config, tone_wav, wav_info,
    };

    const OPENAI_SAMPLE: &str = r#"{
      "task": "transcribe", "language": "english", "duration": 3.5,
      "text": "The beach was a popular spot. Everyone came.",
      "words": [
        {"word": "The", "start": 0.0, "end": 0.24},
        {"word": "beach", "start": 0.24, "end": 0.6},
        {"word": "was", "start": 0.6, "end": 0.8},
        {"word": "a", "start": 0.8, "end": 0.9},
        {"word": "popular", "start": 0.9, "end": 1.3},
        {"word": "spot", "start": 1.3, "end": 1.7},
        {"word": "Everyone", "start": 2.0, "end": 2.5, "probability": 0.9},
        {"word": "came", "start": 2.5, "end": 2.9}
      ],
      "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 3.5,
        "text": " The beach was a popular spot. Everyone came.", "tokens": [1, 2],
        "temperature": 0.0, "avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01}],
      "usage": {"type": "duration", "seconds": 4}
    }"#;

    #[test]
    fn parses_openai_verbose_json() {
        let t = parse_verbose_json(OPENAI_SAMPLE.as_bytes()).unwrap();
        assert_eq!(t.language.as_deref(), Some("english"));
        assert_eq!(t.duration, Some(3.5));
        assert_eq!(t.words.len(), 8);
        assert_eq!(
            t.words[6],
            Word {
                word: "Everyone".into(),
                start: 2.0,
                end: 2.5,
                speaker: None,
            }
        );
        assert_eq!(t.segments.len(), 1);
        let u = t.utterances();
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].text, "The beach was a popular spot.");
        assert_eq!((u[1].start, u[1].end), (2.0, 2.9));
    }

    #[test]
    fn tolerates_missing_words_and_rejects_garbage() {
        let t = parse_verbose_json(
            br#"{"text":"hi","segments":[{"start":0.5,"end":1.0,"text":"hi"}]}"#,
        )
        .unwrap();
        assert!(t.words.is_empty());
        assert_eq!(t.utterances()[0].start, 0.5);
        assert!(
            parse_verbose_json(br#"{"text":"hi"}"#)
                .unwrap()
                .utterances()
                .is_empty()
        );
        assert!(matches!(
            parse_verbose_json(b"<html>"),
            Err(ProviderError::BadResponse(_))
        ));
        let many = format!(
            r#"{{"text":"","words":[{}]}}"#,
            vec![r#"{"word":"a","start":0,"end":0}"#; MAX_WORDS + 1].join(",")
        );
        assert!(matches!(
            parse_verbose_json(many.as_bytes()),
            Err(ProviderError::BadResponse(_))
        ));
    }

    #[test]
    fn boundary_is_deterministic_and_absent_from_the_body() {
        let wav = tone_wav(16_000, 1, 0.1, 440.0);
        let (ct1, b1) = multipart_body(&wav, &[("model", "m")]);
        let (ct2, b2) = multipart_body(&wav, &[("model", "m")]);
        assert_eq!((ct1.clone(), &b1), (ct2, &b2));
        let boundary = ct1.split("boundary=").nth(1).unwrap().to_string();
        // A body that contains the first-choice boundary gets another one.
        let mut evil = wav.clone();
        evil.extend_from_slice(boundary.as_bytes());
        let (ct3, _) = multipart_body(&evil, &[]);
        let b3 = ct3.split("boundary=").nth(1).unwrap();
        assert!(!evil.windows(b3.len()).any(|w| w == b3.as_bytes()));
    }

    #[test]
    fn sends_the_documented_multipart_request() {
        let server = TestServer::start(|req| {
            let ct = req.header("content-type").unwrap_or_default().to_string();
            let parts = parse_multipart(&ct, &req.body);
            let ok = req.method == "POST"
                && req.path == "/v1/audio/transcriptions"
                && req.header("authorization") == Some("Bearer sk-test-KEY")
                && parts.len() == 6;
            if !ok {
                return Reply::text(400, "bad request shape");
            }
            Reply::json(200, OPENAI_SAMPLE)
        });
        let mut cfg = test_config();
        cfg.stt_url = format!("{}/", server.url());
        cfg.stt_model = "whisper-1".into();
        cfg.api_key = Some("sk-test-KEY".into());
        let wav = tone_wav(16_000, 1, 0.5, 300.0);
        let t = transcribe(
            &StdHttpClient,
            &cfg,
            &wav,
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(t.words.len(), 8);

        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        let req = &reqs[0];
        let parts = parse_multipart(req.header("content-type").unwrap(), &req.body);
        let field = |name: &str| -> Vec<String> {
            parts
                .iter()
                .filter(|p| p.name == name)
                .map(|p| String::from_utf8_lossy(&p.data).into_owned())
                .collect()
        };
        assert_eq!(field("model"), ["whisper-1"]);
        assert_eq!(field("response_format"), ["verbose_json"]);
        assert_eq!(field("timestamp_granularities[]"), ["word", "segment"]);
        assert_eq!(field("language"), ["en"]);
        let file = parts.iter().find(|p| p.name == "file").unwrap();
        assert_eq!(file.filename.as_deref(), Some("audio.wav"));
        assert_eq!(file.content_type.as_deref(), Some("audio/wav"));
        assert_eq!(file.data, wav, "the WAV part is the upload, byte for byte");
        assert_eq!(
            wav_info(&file.data).map(|w| (w.rate, w.channels, w.frames)),
            Some((16_000, 1, 8000))
        );
    }

    #[test]
    fn status_and_connection_errors_never_leak_the_key() {
        let key = "sk-live-VERY-SECRET-123";
        // The server echoes the Authorization header back in its error body.
        let server = TestServer::start(|req| {
            Reply::text(
                401,
                &format!("invalid key: {}", req.header("authorization").unwrap_or("")),
            )
        });
        let mut cfg = test_config();
        cfg.stt_url = server.url();
        cfg.api_key = Some(key.into());
        let wav = tone_wav(16_000, 1, 0.1, 300.0);
        let err = transcribe(
            &StdHttpClient,
            &cfg,
            &wav,
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(err, ProviderError::Status(401));
        assert!(!format!("{err} {err:?}").contains(key));

        cfg.stt_url = crate::testutil::refused_url();
        let err = transcribe(
            &StdHttpClient,
            &cfg,
            &wav,
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(err, ProviderError::Transport(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains(key));
    }

    #[test]
    fn stalled_server_times_out_at_the_deadline() {
        let server = TestServer::start(|_| {
            std::thread::sleep(Duration::from_secs(3));
            Reply::json(200, "{}")
        });
        let mut cfg = test_config();
        cfg.stt_url = server.url();
        let wav = tone_wav(16_000, 1, 0.1, 300.0);
        let t0 = Instant::now();
        let err =
            transcribe(&StdHttpClient, &cfg, &wav, t0 + Duration::from_millis(300)).unwrap_err();
        assert_eq!(err, ProviderError::Timeout);
        assert!(
            t0.elapsed() < Duration::from_millis(600),
            "{:?}",
            t0.elapsed()
        );
    }
}
