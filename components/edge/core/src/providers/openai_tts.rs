//! OpenAI-compatible text-to-speech: `POST {tts_url}/v1/audio/speech` with a JSON body, WAV back.

use std::time::Instant;

use super::{ProviderError, ProviderResult, bearer, join_url, send_checked};
use crate::config::Config;
use crate::http::{HttpClient, HttpRequest, Method};

/// Largest WAV accepted.
pub const MAX_RESPONSE: usize = 8 << 20;
/// Longest input text (OpenAI's limit is 4096 chars).
pub const MAX_INPUT_CHARS: usize = 4096;

/// The voice for `lang`: `cfg.tts_voice` with every `{lang}` replaced by the target language, so a
/// deployment can name per-language voices (e.g. `{lang}` for espeak-backed servers).
pub fn voice_for(cfg: &Config, lang: &str) -> String {
    cfg.tts_voice.replace("{lang}", lang)
}

/// Is this a RIFF/WAVE file header?
pub fn is_wav(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE"
}

/// Synthesize `text` with `cfg.tts_model` and `voice`; returns WAV bytes, failing at `deadline`.
pub fn synthesize<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    text: &str,
    voice: &str,
    deadline: Instant,
) -> ProviderResult<Vec<u8>> {
    let n = text.chars().count();
    if n == 0 || n > MAX_INPUT_CHARS {
        return Err(ProviderError::Input(format!("text of {n} chars")));
    }
    let body = serde_json::json!({
        "model": cfg.tts_model,
        "input": text,
        "voice": voice,
        "response_format": "wav",
    });
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".into(), "audio/wav".into()),
    ];
    bearer(&mut headers, cfg.api_key.as_deref());
    let req = HttpRequest {
        method: Method::Post,
        url: join_url(&cfg.tts_url, "/v1/audio/speech"),
        headers,
        body: body.to_string().into_bytes(),
    };
    let resp = send_checked(http, &req, deadline, MAX_RESPONSE, cfg.api_key.as_deref())?;
    if !is_wav(&resp.body) {
        return Err(ProviderError::BadResponse(
            "speech is not a RIFF/WAVE file".into(),
        ));
    }
    Ok(resp.body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testutil::{Reply, StdHttpClient, TestServer, test_config, tone_wav, wav_info};

    #[test]
    fn sends_the_documented_json_and_returns_wav() {
        let server = TestServer::start(|req| {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
                return Reply::text(400, "not json");
            };
            if req.method != "POST"
                || req.path != "/v1/audio/speech"
                || v["response_format"] != "wav"
            {
                return Reply::text(400, "bad request");
            }
            let secs = v["input"].as_str().unwrap_or("").len() as f64 * 0.05;
            Reply::bytes(200, "audio/wav", tone_wav(24_000, 1, secs, 220.0))
        });
        let mut cfg = test_config();
        cfg.tts_url = server.url();
        cfg.tts_model = "tts-1".into();
        cfg.tts_voice = "es-{lang}".into();
        cfg.api_key = Some("sk-tts".into());
        let voice = voice_for(&cfg, "es");
        assert_eq!(voice, "es-es");
        let wav = synthesize(
            &StdHttpClient,
            &cfg,
            "Hola mundo",
            &voice,
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap();
        let info = wav_info(&wav).unwrap();
        assert_eq!((info.rate, info.channels, info.frames), (24_000, 1, 12_000));

        let reqs = server.requests();
        let v: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"model": "tts-1", "input": "Hola mundo", "voice": "es-es", "response_format": "wav"})
        );
        assert_eq!(reqs[0].header("content-type"), Some("application/json"));
        assert_eq!(reqs[0].header("authorization"), Some("Bearer sk-tts"));
    }

    #[test]
    fn rejects_non_wav_and_empty_input() {
        let server = TestServer::start(|_| {
            Reply::bytes(200, "audio/mpeg", b"ID3\x03\x00\x00\x00 mp3 bytes".to_vec())
        });
        let mut cfg = test_config();
        cfg.tts_url = server.url();
        let dl = Instant::now() + Duration::from_secs(5);
        let err = synthesize(&StdHttpClient, &cfg, "hola", "alloy", dl).unwrap_err();
        assert!(matches!(err, ProviderError::BadResponse(_)), "{err:?}");
        assert!(matches!(
            synthesize(&StdHttpClient, &cfg, "", "alloy", dl),
            Err(ProviderError::Input(_))
        ));
        assert_eq!(server.request_count(), 1);
    }

    #[test]
    fn oversized_speech_is_rejected() {
        let server = TestServer::start(|_| {
            let mut wav = tone_wav(8_000, 1, 0.01, 100.0);
            wav.resize(MAX_RESPONSE + 10, 0);
            Reply::bytes(200, "audio/wav", wav)
        });
        let mut cfg = test_config();
        cfg.tts_url = server.url();
        let err = synthesize(
            &StdHttpClient,
            &cfg,
            "hola",
            "alloy",
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(err, ProviderError::BadResponse(_)), "{err:?}");
    }
}
