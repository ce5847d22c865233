//! ElevenLabs speech-to-text: `POST {stt_url}/v1/speech-to-text`, multipart/form-data
//! (`model_id`, `file`, `language_code`, `timestamps_granularity=word`, `diarize=true`), header
//! `xi-api-key`. Words come from `words[]`; `spacing` and `audio_event` entries are skipped.

use std::time::Instant;

use serde::Deserialize;

use super::openai_stt::{MAX_RESPONSE, MAX_WORDS, multipart_body};
use super::{
    ProviderError, ProviderResult, Transcript, Word, join_url, send_checked, speaker_label,
};
use crate::config::Config;
use crate::http::{HttpClient, HttpRequest, Method};

#[derive(Deserialize)]
struct SpeechToText {
    #[serde(default)]
    language_code: Option<String>,
    #[serde(default)]
    text: Option<String>,
    words: Vec<RawWord>,
}

#[derive(Deserialize)]
struct RawWord {
    #[serde(default)]
    text: String,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    end: Option<f64>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    speaker_id: Option<String>,
}

/// Parse a speech-to-text response: `word` entries become words (with `speaker_id`); spacing
/// and audio events (`(laughter)`) carry no speech and are dropped.
pub fn parse_response(body: &[u8]) -> ProviderResult<Transcript> {
    if body.len() > MAX_RESPONSE {
        return Err(ProviderError::BadResponse("transcription too large".into()));
    }
    let v: SpeechToText = serde_json::from_slice(body)
        .map_err(|_| ProviderError::BadResponse("not an ElevenLabs transcription".into()))?;
    // Spacing entries roughly double the count; bound the total before walking it.
    if v.words.len() > 2 * MAX_WORDS {
        return Err(ProviderError::BadResponse(format!(
            "more than {MAX_WORDS} words"
        )));
    }
    let words = v
        .words
        .into_iter()
        .filter(|w| w.kind.as_deref().is_none_or(|k| k == "word"))
        .filter_map(|w| {
            Some(Word {
                word: w.text,
                start: w.start?,
                end: w.end?,
                speaker: w.speaker_id.as_deref().and_then(speaker_label),
            })
        })
        .collect();
    Ok(Transcript {
        text: v.text.unwrap_or_default(),
        language: v.language_code,
        duration: None,
        words,
        segments: Vec::new(),
    })
}

/// Transcribe a WAV file in `cfg.source_lang` with ElevenLabs model `cfg.stt_model`.
pub fn transcribe<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    wav: &[u8],
    deadline: Instant,
) -> ProviderResult<Transcript> {
    super::check_stt_upload(wav)?;
    let fields = [
        ("model_id", cfg.stt_model.as_str()),
        ("language_code", cfg.source_lang.as_str()),
        ("timestamps_granularity", "word"),
        ("diarize", "true"),
    ];
    let (content_type, body) = multipart_body(wav, &fields);
    let mut headers = vec![
        ("content-type".to_string(), content_type),
        ("accept".into(), "application/json".into()),
    ];
    if let Some(k) = cfg.stt_key() {
        headers.push(("xi-api-key".into(), k.to_string()));
    }
    let req = HttpRequest {
        method: Method::Post,
        url: join_url(&cfg.stt_url, "/v1/speech-to-text"),
        headers,
        body,
    };
    let resp = send_checked(http, &req, deadline, MAX_RESPONSE, cfg.stt_key())?;
    parse_response(&resp.body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testutil::{
        Reply, StdHttpClient, TestServer, parse_multipart, refused_url, test_config, tone_wav,
    };

    /// Shape of ElevenLabs' documented speech-to-text response (word timestamps, diarization).
    const SAMPLE: &str = r#"{
      "language_code": "en", "language_probability": 0.98,
      "text": "Hi there! (laughs) Good morning.",
      "words": [
        {"text": "Hi", "start": 0.1, "end": 0.3, "type": "word", "speaker_id": "speaker_0", "logprob": -0.1},
        {"text": " ", "start": 0.3, "end": 0.35, "type": "spacing", "speaker_id": "speaker_0", "logprob": 0},
        {"text": "there!", "start": 0.35, "end": 0.7, "type": "word", "speaker_id": "speaker_0", "logprob": -0.2},
        {"text": " ", "start": 0.7, "end": 0.8, "type": "spacing", "speaker_id": "speaker_0", "logprob": 0},
        {"text": "(laughs)", "start": 0.8, "end": 1.2, "type": "audio_event", "speaker_id": "speaker_1", "logprob": 0},
        {"text": " ", "start": 1.2, "end": 1.25, "type": "spacing", "speaker_id": "speaker_1", "logprob": 0},
        {"text": "Good", "start": 1.25, "end": 1.5, "type": "word", "speaker_id": "speaker_1", "logprob": -0.1},
        {"text": " ", "start": 1.5, "end": 1.52, "type": "spacing", "speaker_id": "speaker_1", "logprob": 0},
        {"text": "morning.", "start": 1.52, "end": 2.0, "type": "word", "speaker_id": "speaker_1", "logprob": -0.1}
      ]
    }"#;

    #[test]
    fn keeps_words_with_speakers_and_drops_spacing_and_events() {
        let t = parse_response(SAMPLE.as_bytes()).unwrap();
        assert_eq!(t.language.as_deref(), Some("en"));
        let words: Vec<(&str, f64, Option<&str>)> = t
            .words
            .iter()
            .map(|w| (w.word.as_str(), w.start, w.speaker.as_deref()))
            .collect();
        assert_eq!(
            words,
            [
                ("Hi", 0.1, Some("speaker_0")),
                ("there!", 0.35, Some("speaker_0")),
                ("Good", 1.25, Some("speaker_1")),
                ("morning.", 1.52, Some("speaker_1")),
            ]
        );
        let u = t.utterances();
        let got: Vec<(&str, f64, f64, Option<&str>)> = u
            .iter()
            .map(|u| (u.text.as_str(), u.start, u.end, u.speaker.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("Hi there!", 0.1, 0.7, Some("speaker_0")),
                ("Good morning.", 1.25, 2.0, Some("speaker_1")),
            ]
        );
        assert!(matches!(
            parse_response(br#"{"text":"x"}"#),
            Err(ProviderError::BadResponse(_))
        ));
    }

    #[test]
    fn sends_the_documented_multipart_request() {
        let server = TestServer::start(|req| {
            if req.method != "POST"
                || req.path != "/v1/speech-to-text"
                || req.header("xi-api-key") != Some("el-KEY")
                || req.header("authorization").is_some()
            {
                return Reply::json(400, r#"{"detail":{"status":"invalid"}}"#);
            }
            Reply::json(200, SAMPLE)
        });
        let mut cfg = test_config();
        cfg.stt_provider = crate::config::SttProvider::ElevenLabs;
        cfg.stt_url = server.url();
        cfg.stt_model = "scribe_v1".into();
        cfg.api_key = Some("el-KEY".into());
        let wav = tone_wav(16_000, 1, 0.25, 300.0);
        let dl = Instant::now() + Duration::from_secs(5);
        let t = crate::providers::transcribe(&StdHttpClient, &cfg, &wav, dl).unwrap();
        assert_eq!(t.words.len(), 4);
        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        let parts = parse_multipart(reqs[0].header("content-type").unwrap(), &reqs[0].body);
        let fields: Vec<(String, String)> = parts
            .iter()
            .filter(|p| p.name != "file")
            .map(|p| {
                (
                    p.name.clone(),
                    String::from_utf8_lossy(&p.data).into_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("model_id", "scribe_v1"),
            ("language_code", "en"),
            ("timestamps_granularity", "word"),
            ("diarize", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(fields, want);
        let file: Vec<_> = parts.iter().filter(|p| p.name == "file").collect();
        assert_eq!(file.len(), 1);
        assert_eq!(file[0].data, wav);
        assert_eq!(file[0].content_type.as_deref(), Some("audio/wav"));
    }

    #[test]
    fn errors_never_contain_the_key() {
        let key = "el-stt-VERY-SECRET-7";
        let server = TestServer::start(|req| {
            let k = req.header("xi-api-key").unwrap_or("").to_string();
            if req.path.starts_with("/ok/") {
                return Reply::json(200, &format!(r#"{{"words": "{k}"}}"#));
            }
            Reply::json(
                401,
                &format!(r#"{{"detail":{{"status":"invalid_api_key","message":"{k}"}}}}"#),
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
