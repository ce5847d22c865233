//! Edge configuration: Spin variables (or any name -> value source).

use crate::{Error, Result};

/// Duck depth (dB) used when a request does not set one.
pub const DEFAULT_DUCK_DB: f32 = 12.0;

/// Everything the edge needs to know about its deployment.
#[derive(Clone, Debug)]
pub struct Config {
    /// Allowed origin patterns, e.g. `http://127.0.0.1:*`, `https://*.example.com`.
    pub origins: Vec<String>,
    /// HMAC key for refs.
    pub signing_key: Vec<u8>,
    /// OpenAI-compatible STT base URL (…/v1/audio/transcriptions is appended).
    pub stt_url: String,
    /// STT model name.
    pub stt_model: String,
    /// Apertium APy base URL (…/translate is appended).
    pub mt_url: String,
    /// OpenAI-compatible TTS base URL (…/v1/audio/speech is appended).
    pub tts_url: String,
    /// TTS model name.
    pub tts_model: String,
    /// TTS voice.
    pub tts_voice: String,
    /// Source language (ISO 639-1).
    pub source_lang: String,
    /// Optional bearer key for the OpenAI-compatible endpoints; never logged or echoed.
    pub api_key: Option<String>,
    /// Per-segment deadline as a fraction of the segment duration.
    pub deadline_fraction: f64,
    /// Lower bound on the per-segment deadline, milliseconds.
    pub deadline_min_ms: u64,
}

impl Config {
    /// Build from a variable lookup (`get("stt_url")`); missing names take the local-demo defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let s = |name: &str, default: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        let origins = s("origins", "http://127.0.0.1:*")
            .split(',')
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect();
        let signing_key = s("signing_key", "dev-only-signing-key-change-me").into_bytes();
        let num = |name: &str, default: &str| -> Result<f64> {
            s(name, default)
                .parse::<f64>()
                .map_err(|_| Error::Config(format!("{name} is not a number")))
        };
        Ok(Config {
            origins,
            signing_key,
            stt_url: s("stt_url", "http://127.0.0.1:3010"),
            stt_model: s("stt_model", "whisper-1"),
            mt_url: s("mt_url", "http://127.0.0.1:3010"),
            tts_url: s("tts_url", "http://127.0.0.1:3010"),
            tts_model: s("tts_model", "tts-1"),
            tts_voice: s("tts_voice", "alloy"),
            source_lang: s("source_lang", "en"),
            api_key: get("api_key").filter(|v| !v.is_empty()),
            deadline_fraction: num("deadline_fraction", "0.8")?,
            deadline_min_ms: num("deadline_min_ms", "2000")? as u64,
        })
    }
}
