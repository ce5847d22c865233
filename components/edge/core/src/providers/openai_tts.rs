//! OpenAI-compatible text-to-speech: `POST {tts_url}/v1/audio/speech` with a JSON body; WAV back
//! (`tts_format = wav`), or raw 24 kHz 16-bit LE mono PCM (`tts_format = pcm`) wrapped as WAV here.

use std::time::Instant;

use super::{ProviderError, ProviderResult, bearer, join_url, send_checked, wav_from_pcm16};
use crate::config::{Config, TtsFormat};
use crate::http::{HttpClient, HttpRequest, Method};

/// Largest WAV accepted.
pub const MAX_RESPONSE: usize = 8 << 20;
/// Longest input text (OpenAI's limit is 4096 chars).
pub const MAX_INPUT_CHARS: usize = 4096;

/// Sample rate of OpenAI's `pcm` response format.
pub const PCM_RATE: u32 = 24_000;

/// Is this a RIFF/WAVE file header?
pub fn is_wav(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE"
}

/// Synthesize `text` with `cfg.tts_model` and `voice` (see [`super::voice_for`]); returns WAV
/// bytes, failing at `deadline`.
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
    let (format, accept) = match cfg.tts_format {
        TtsFormat::Pcm => ("pcm", "audio/pcm"),
        _ => ("wav", "audio/wav"),
    };
    let body = serde_json::json!({
        "model": cfg.tts_model,
        "input": text,
        "voice": voice,
        "response_format": format,
    });
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".into(), accept.into()),
    ];
    bearer(&mut headers, cfg.tts_key());
    let req = HttpRequest {
        method: Method::Post,
        url: join_url(&cfg.tts_url, "/v1/audio/speech"),
        headers,
        body: body.to_string().into_bytes(),
    };
    let resp = send_checked(http, &req, deadline, MAX_RESPONSE, cfg.tts_key())?;
    if cfg.tts_format == TtsFormat::Pcm {
        // Raw samples; a server that sent a WAV anyway would have its header played as noise.
        if is_wav(&resp.body) {
            return Err(ProviderError::BadResponse(
                "asked for raw pcm, got a WAV file".into(),
            ));
        }
        return wav_from_pcm16(&resp.body, PCM_RATE);
    }
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
        let voice = crate::providers::voice_for(&cfg, "es").unwrap();
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

    #[test]
    fn pcm_format_is_requested_and_wrapped_as_wav() {
        // 0.25 s of a ramp at 24 kHz, raw s16le, as OpenAI sends for response_format=pcm.
        let samples: Vec<i16> = (0..6000).map(|i| (i * 5 - 15_000) as i16).collect();
        let raw: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let raw2 = raw.clone();
        let server = TestServer::start(move |req| {
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            if req.path != "/v1/audio/speech" || v["response_format"] != "pcm" {
                return Reply::text(400, "bad request");
            }
            Reply::bytes(200, "audio/pcm", raw2.clone())
        });
        let mut cfg = test_config();
        cfg.tts_url = server.url();
        cfg.tts_format = TtsFormat::Pcm;
        cfg.tts_key = Some("sk-tts-own".into());
        cfg.api_key = Some("sk-shared".into());
        let dl = Instant::now() + Duration::from_secs(5);
        let wav = synthesize(&StdHttpClient, &cfg, "Hola", "nova", dl).unwrap();
        let info = wav_info(&wav).unwrap();
        assert_eq!(
            (info.rate, info.channels, info.bits, info.frames),
            (24_000, 1, 16, 6000)
        );
        assert_eq!(&wav[44..], raw.as_slice(), "samples pass through untouched");
        let req = &server.requests()[0];
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"model": "tts-1", "input": "Hola", "voice": "nova", "response_format": "pcm"})
        );
        assert_eq!(req.header("accept"), Some("audio/pcm"));
        assert_eq!(req.header("authorization"), Some("Bearer sk-tts-own"));

        // A WAV where raw PCM was asked for is refused, not played with its header as samples.
        let wav_server =
            TestServer::start(|_| Reply::bytes(200, "audio/wav", tone_wav(24_000, 1, 0.1, 200.0)));
        cfg.tts_url = wav_server.url();
        assert!(matches!(
            synthesize(&StdHttpClient, &cfg, "Hola", "nova", dl),
            Err(ProviderError::BadResponse(_))
        ));
    }

    #[test]
    fn errors_never_contain_the_key() {
        let key = "sk-tts-VERY-SECRET-9";
        let server = TestServer::start(|req| {
            let auth = req.header("authorization").unwrap_or("").to_string();
            if req.path.starts_with("/ok/") {
                return Reply::text(200, &format!("not audio {auth}"));
            }
            Reply::text(401, &format!("bad key {auth}"))
        });
        let mut cfg = test_config();
        cfg.tts_key = Some(key.into());
        let dl = Instant::now() + Duration::from_secs(5);
        for (url, format) in [
            (server.url(), TtsFormat::Wav),
            (format!("{}/ok", server.url()), TtsFormat::Wav),
            (crate::testutil::refused_url(), TtsFormat::Pcm),
        ] {
            cfg.tts_url = url;
            cfg.tts_format = format;
            let err = synthesize(&StdHttpClient, &cfg, "hola", "alloy", dl).unwrap_err();
            assert!(!format!("{err} {err:?}").contains(key), "{err:?}");
        }
        assert_eq!(server.request_count(), 2);
    }
}
