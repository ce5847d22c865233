//! Deepgram pre-recorded speech-to-text: `POST {stt_url}/v1/listen?model=…&language=…&diarize=true
//! &punctuate=true&smart_format=true` with the raw WAV as the body, `Authorization: Token <key>`.
//! Words come from `results.channels[0].alternatives[0].words[]`.

use std::time::Instant;

use serde::Deserialize;

use super::openai_stt::{MAX_RESPONSE, MAX_WORDS};
use super::{
    ProviderError, ProviderResult, Transcript, Word, join_url, send_checked, speaker_label,
};
use crate::config::Config;
use crate::http::{HttpClient, HttpRequest, Method};

#[derive(Deserialize)]
struct Listen {
    #[serde(default)]
    metadata: Option<Metadata>,
    results: Results,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    duration: Option<f64>,
}

#[derive(Deserialize)]
struct Results {
    channels: Vec<Channel>,
}

#[derive(Deserialize)]
struct Channel {
    alternatives: Vec<Alternative>,
    #[serde(default)]
    detected_language: Option<String>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    words: Vec<RawWord>,
}

#[derive(Deserialize)]
struct RawWord {
    #[serde(default)]
    word: String,
    #[serde(default)]
    punctuated_word: Option<String>,
    start: f64,
    end: f64,
    #[serde(default)]
    speaker: Option<u32>,
}

/// Parse a `/v1/listen` response: the first channel's best alternative. `punctuated_word` is
/// preferred (it carries the sentence ends), speakers become labels `"0"`, `"1"`, ….
pub fn parse_response(body: &[u8], language: &str) -> ProviderResult<Transcript> {
    if body.len() > MAX_RESPONSE {
        return Err(ProviderError::BadResponse("transcription too large".into()));
    }
    let v: Listen = serde_json::from_slice(body)
        .map_err(|_| ProviderError::BadResponse("not a Deepgram listen response".into()))?;
    let channel = v
        .results
        .channels
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::BadResponse("no channels".into()))?;
    let detected = channel.detected_language;
    let Some(alt) = channel.alternatives.into_iter().next() else {
        return Err(ProviderError::BadResponse("no alternatives".into()));
    };
    if alt.words.len() > MAX_WORDS {
        return Err(ProviderError::BadResponse(format!(
            "more than {MAX_WORDS} words"
        )));
    }
    Ok(Transcript {
        text: alt.transcript,
        language: detected.or_else(|| Some(language.to_string())),
        duration: v
            .metadata
            .and_then(|m| m.duration)
            .filter(|d| d.is_finite() && *d >= 0.0),
        words: alt
            .words
            .into_iter()
            .map(|w| Word {
                word: w
                    .punctuated_word
                    .filter(|p| !p.trim().is_empty())
                    .unwrap_or(w.word),
                start: w.start,
                end: w.end,
                speaker: w.speaker.and_then(|s| speaker_label(&s.to_string())),
            })
            .collect(),
        segments: Vec::new(),
    })
}

/// Transcribe a WAV file in `cfg.source_lang` with Deepgram model `cfg.stt_model`.
pub fn transcribe<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    wav: &[u8],
    deadline: Instant,
) -> ProviderResult<Transcript> {
    super::check_stt_upload(wav)?;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("model", &cfg.stt_model)
        .append_pair("language", &cfg.source_lang)
        .append_pair("diarize", "true")
        .append_pair("punctuate", "true")
        .append_pair("smart_format", "true")
        .finish();
    let mut headers = vec![
        ("content-type".to_string(), "audio/wav".to_string()),
        ("accept".into(), "application/json".into()),
    ];
    if let Some(k) = cfg.stt_key() {
        headers.push(("authorization".into(), format!("Token {k}")));
    }
    let req = HttpRequest {
        method: Method::Post,
        url: format!("{}?{query}", join_url(&cfg.stt_url, "/v1/listen")),
        headers,
        body: wav.to_vec(),
    };
    let resp = send_checked(http, &req, deadline, MAX_RESPONSE, cfg.stt_key())?;
    parse_response(&resp.body, &cfg.source_lang)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::SttProvider;
    use crate::testutil::{Reply, StdHttpClient, TestServer, refused_url, test_config, tone_wav};

    /// Shape of Deepgram's documented pre-recorded response (diarize + smart_format).
    const SAMPLE: &str = r#"{
      "metadata": {"transaction_key": "deprecated", "request_id": "6f1b7c8e", "sha256": "ab12",
        "created": "2026-11-21T10:00:00.000Z", "duration": 4.2, "channels": 1,
        "models": ["30089e05"], "model_info": {"30089e05": {"name": "2-general-nova", "version": "2024-01-09.29447", "arch": "nova-3"}}},
      "results": {"channels": [{"alternatives": [{
        "transcript": "Hello there. How are you?",
        "confidence": 0.99,
        "words": [
          {"word": "hello", "start": 0.08, "end": 0.4, "confidence": 0.99, "speaker": 0, "speaker_confidence": 0.8, "punctuated_word": "Hello"},
          {"word": "there", "start": 0.4, "end": 0.8, "confidence": 0.98, "speaker": 0, "speaker_confidence": 0.8, "punctuated_word": "there."},
          {"word": "how", "start": 1.0, "end": 1.2, "confidence": 0.97, "speaker": 1, "speaker_confidence": 0.7, "punctuated_word": "How"},
          {"word": "are", "start": 1.2, "end": 1.35, "confidence": 0.99, "speaker": 1, "speaker_confidence": 0.7, "punctuated_word": "are"},
          {"word": "you", "start": 1.35, "end": 1.7, "confidence": 0.99, "speaker": 1, "speaker_confidence": 0.7, "punctuated_word": "you?"}
        ],
        "paragraphs": {"transcript": "\nSpeaker 0: Hello there.\n\nSpeaker 1: How are you?", "paragraphs": []}
      }]}]}
    }"#;

    #[test]
    fn parses_words_punctuation_and_speakers() {
        let t = parse_response(SAMPLE.as_bytes(), "en").unwrap();
        assert_eq!(t.text, "Hello there. How are you?");
        assert_eq!(t.duration, Some(4.2));
        assert_eq!(t.words.len(), 5);
        assert_eq!(
            t.words[1],
            Word {
                word: "there.".into(),
                start: 0.4,
                end: 0.8,
                speaker: Some("0".into())
            }
        );
        let u = t.utterances();
        assert_eq!(u.len(), 2);
        assert_eq!(
            (u[0].text.as_str(), u[0].speaker.as_deref()),
            ("Hello there.", Some("0"))
        );
        assert_eq!(
            (
                u[1].text.as_str(),
                u[1].start,
                u[1].end,
                u[1].speaker.as_deref()
            ),
            ("How are you?", 1.0, 1.7, Some("1"))
        );
        for bad in [
            &b"{}"[..],
            br#"{"results":{"channels":[]}}"#,
            br#"{"results":{"channels":[{"alternatives":[]}]}}"#,
            b"<html>",
        ] {
            assert!(matches!(
                parse_response(bad, "en"),
                Err(ProviderError::BadResponse(_))
            ));
        }
    }

    #[test]
    fn sends_raw_wav_with_the_documented_query_and_token() {
        let server = TestServer::start(|req| {
            let ok = req.method == "POST"
                && req.path == "/v1/listen"
                && req.header("authorization") == Some("Token dg-KEY")
                && req.header("content-type") == Some("audio/wav");
            if !ok {
                return Reply::json(400, r#"{"err_code":"Bad Request"}"#);
            }
            Reply::json(200, SAMPLE)
        });
        let mut cfg = Config::from_lookup(|n| match n {
            "stt_provider" => Some("deepgram".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.stt_provider, SttProvider::Deepgram);
        cfg.stt_url = format!("{}/", server.url());
        cfg.stt_key = Some("dg-KEY".into());
        cfg.api_key = Some("other".into());
        let wav = tone_wav(16_000, 1, 0.5, 300.0);
        let dl = Instant::now() + Duration::from_secs(5);
        let t = crate::providers::transcribe(&StdHttpClient, &cfg, &wav, dl).unwrap();
        assert_eq!(t.words.len(), 5);
        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(
            reqs[0].query(),
            [
                ("model".to_string(), "nova-3".to_string()),
                ("language".into(), "en".into()),
                ("diarize".into(), "true".into()),
                ("punctuate".into(), "true".into()),
                ("smart_format".into(), "true".into()),
            ]
        );
        assert_eq!(reqs[0].body, wav, "the body is the WAV, byte for byte");
    }

    #[test]
    fn errors_never_contain_the_key() {
        let key = "dg-VERY-SECRET-42";
        let server = TestServer::start(|req| {
            let auth = req.header("authorization").unwrap_or("").to_string();
            if req.path.starts_with("/ok/") {
                return Reply::json(200, &format!(r#"{{"results": "{auth}"}}"#));
            }
            Reply::json(
                401,
                &format!(r#"{{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials {auth}"}}"#),
            )
        });
        let mut cfg = test_config();
        cfg.stt_key = Some(key.into());
        let wav = tone_wav(16_000, 1, 0.1, 300.0);
        let dl = Instant::now() + Duration::from_secs(5);
        for url in [server.url(), format!("{}/ok", server.url()), refused_url()] {
            cfg.stt_url = url;
            let err = transcribe(&StdHttpClient, &cfg, &wav, dl).unwrap_err();
            assert!(!format!("{err} {err:?}").contains(key), "{err:?}");
        }
        assert_eq!(server.request_count(), 2);
    }
}
