//! ElevenLabs text-to-speech: `POST {tts_url}/v1/text-to-speech/{voice_id}?output_format=pcm_22050`
//! with JSON `{"text", "model_id", "language_code"}` and header `xi-api-key`. The answer is raw
//! 16-bit LE mono PCM at 22050 Hz, wrapped as WAV here. Voice ids (premade or cloned) come from
//! `tts_voice`, per language (see [`super::voice_for`]).

use std::time::Instant;

use super::openai_tts::MAX_RESPONSE;
use super::{ProviderError, ProviderResult, join_url, send_checked, wav_from_pcm16};
use crate::config::Config;
use crate::http::{HttpClient, HttpRequest, Method};

/// Sample rate of the `pcm_22050` output format.
pub const PCM_RATE: u32 = 22_050;
/// Longest input text sent in one request.
pub const MAX_INPUT_CHARS: usize = 5000;

/// Models that accept `language_code` (ElevenLabs answers an error for the others, which infer
/// the language from the text).
pub fn accepts_language_code(model_id: &str) -> bool {
    ["turbo_v2_5", "flash_v2_5", "eleven_v3"]
        .iter()
        .any(|m| model_id.contains(m))
}

/// A voice id safe to put in the URL path (letters, digits, `_`, `-`; ElevenLabs ids are 20
/// alphanumerics).
fn check_voice(voice: &str) -> ProviderResult<&str> {
    let ok = (1..=64).contains(&voice.len())
        && voice
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(voice)
    } else {
        Err(ProviderError::Input("voice id is not a plain id".into()))
    }
}

/// Speak `text` in `lang` with voice `voice` and model `cfg.tts_model`; returns WAV bytes.
pub fn synthesize<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    text: &str,
    voice: &str,
    lang: &str,
    deadline: Instant,
) -> ProviderResult<Vec<u8>> {
    let n = text.chars().count();
    if n == 0 || n > MAX_INPUT_CHARS {
        return Err(ProviderError::Input(format!("text of {n} chars")));
    }
    let voice = check_voice(voice.trim())?;
    let mut body = serde_json::json!({
        "text": text,
        "model_id": cfg.tts_model,
    });
    let lang = lang.trim().to_ascii_lowercase();
    let base = lang.split(['-', '_']).next().unwrap_or("");
    if accepts_language_code(&cfg.tts_model) && base.len() == 2 {
        body["language_code"] = base.into();
    }
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".into(), "audio/pcm".into()),
    ];
    if let Some(k) = cfg.tts_key() {
        headers.push(("xi-api-key".into(), k.to_string()));
    }
    let req = HttpRequest {
        method: Method::Post,
        url: format!(
            "{}?output_format=pcm_{PCM_RATE}",
            join_url(&cfg.tts_url, &format!("/v1/text-to-speech/{voice}"))
        ),
        headers,
        body: body.to_string().into_bytes(),
    };
    let resp = send_checked(http, &req, deadline, MAX_RESPONSE, cfg.tts_key())?;
    if super::openai_tts::is_wav(&resp.body) {
        return Err(ProviderError::BadResponse(
            "asked for raw pcm, got a WAV file".into(),
        ));
    }
    wav_from_pcm16(&resp.body, PCM_RATE)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::TtsProvider;
    use crate::testutil::{Reply, StdHttpClient, TestServer, refused_url, test_config, wav_info};

    /// 22050 Hz s16le samples: `secs` of a 200 Hz square wave.
    fn pcm(secs: f64) -> Vec<u8> {
        let n = (secs * PCM_RATE as f64).round() as usize;
        (0..n)
            .flat_map(|i| (if (i / 55) % 2 == 0 { 8000i16 } else { -8000 }).to_le_bytes())
            .collect()
    }

    fn server() -> TestServer {
        TestServer::start(|req| {
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let ok = req.method == "POST"
                && req.path.starts_with("/v1/text-to-speech/")
                && req.query() == [("output_format".to_string(), "pcm_22050".to_string())]
                && req.header("xi-api-key") == Some("el-tts-KEY")
                && v["text"].is_string();
            if !ok {
                return Reply::json(400, r#"{"detail":{"status":"invalid"}}"#);
            }
            let secs = v["text"].as_str().unwrap_or("").chars().count() as f64 * 0.02;
            Reply::bytes(200, "audio/pcm", pcm(secs))
        })
    }

    #[test]
    fn per_language_voices_model_and_pcm_wrapped_as_wav() {
        let server = server();
        let mut cfg = Config::from_lookup(|n| match n {
            "tts_provider" => Some("elevenlabs".into()),
            "tts_voice" => Some("es=VoiceEs000000000001, fr = VoiceFr000000000002".into()),
            "tts_key" => Some("el-tts-KEY".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.tts_provider, TtsProvider::ElevenLabs);
        cfg.tts_url = server.url();
        let dl = Instant::now() + Duration::from_secs(5);
        let wav =
            crate::providers::synthesize(&StdHttpClient, &cfg, "Hola mundo", "es", dl).unwrap();
        let info = wav_info(&wav).unwrap();
        // 10 chars × 0.02 s at 22050 Hz.
        assert_eq!(
            (info.rate, info.channels, info.bits, info.frames),
            (22_050, 1, 16, 4410)
        );
        assert_eq!(&wav[44..], pcm(0.2).as_slice());
        crate::providers::synthesize(&StdHttpClient, &cfg, "Bonjour", "fr-CA", dl).unwrap();
        // No voice for German and no `*` entry: refused before any request.
        assert!(matches!(
            crate::providers::synthesize(&StdHttpClient, &cfg, "Hallo", "de", dl),
            Err(ProviderError::Language(_))
        ));

        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].path, "/v1/text-to-speech/VoiceEs000000000001");
        assert_eq!(reqs[1].path, "/v1/text-to-speech/VoiceFr000000000002");
        let v: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
        // eleven_multilingual_v2 infers the language; it rejects language_code.
        assert_eq!(
            v,
            serde_json::json!({"text": "Hola mundo", "model_id": "eleven_multilingual_v2"})
        );
        assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    }

    #[test]
    fn language_code_for_models_that_take_it_and_cloned_voice_ids() {
        let server = server();
        let mut cfg = test_config();
        cfg.tts_provider = TtsProvider::ElevenLabs;
        cfg.tts_url = server.url();
        cfg.tts_model = "eleven_flash_v2_5".into();
        cfg.tts_voice = "MyClonedVoice123".into();
        cfg.api_key = Some("el-tts-KEY".into());
        let dl = Instant::now() + Duration::from_secs(5);
        crate::providers::synthesize(&StdHttpClient, &cfg, "Hola", "es-MX", dl).unwrap();
        let req = &server.requests()[0];
        assert_eq!(req.path, "/v1/text-to-speech/MyClonedVoice123");
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"text": "Hola", "model_id": "eleven_flash_v2_5", "language_code": "es"})
        );
        // A voice that would change the URL path is refused.
        cfg.tts_voice = "../../v1/user".into();
        assert!(matches!(
            crate::providers::synthesize(&StdHttpClient, &cfg, "Hola", "es", dl),
            Err(ProviderError::Input(_))
        ));
        assert_eq!(server.request_count(), 1);
    }

    #[test]
    fn errors_never_contain_the_key() {
        let key = "el-tts-VERY-SECRET-8";
        let server = TestServer::start(|req| {
            let k = req.header("xi-api-key").unwrap_or("").to_string();
            if req.path.starts_with("/ok/") {
                // A WAV where raw PCM was asked for, with the key in it.
                let mut w = b"RIFF\x00\x00\x00\x00WAVE".to_vec();
                w.extend_from_slice(k.as_bytes());
                return Reply::bytes(200, "audio/wav", w);
            }
            if req.path.starts_with("/empty/") {
                return Reply::bytes(200, "audio/pcm", Vec::new());
            }
            Reply::json(
                401,
                &format!(r#"{{"detail":{{"status":"invalid_api_key","message":"{k}"}}}}"#),
            )
        });
        let mut cfg = test_config();
        cfg.tts_key = Some(key.into());
        let dl = Instant::now() + Duration::from_secs(5);
        for url in [
            server.url(),
            format!("{}/ok", server.url()),
            format!("{}/empty", server.url()),
            refused_url(),
        ] {
            cfg.tts_url = url;
            let err = synthesize(&StdHttpClient, &cfg, "hola", "Voice1", "es", dl).unwrap_err();
            assert!(!format!("{err} {err:?}").contains(key), "{err:?}");
        }
        assert_eq!(server.request_count(), 3);
    }
}
