//! Edge configuration: Spin variables (or any name -> value source).

use std::fmt;

use crate::{Error, Result};

/// Duck depth (dB) used when a request does not set one.
pub const DEFAULT_DUCK_DB: f32 = 12.0;

/// The local speech service (OpenAI-compatible STT/TTS and Apertium APy MT) the defaults point at.
pub const LOCAL_SPEECH_URL: &str = "http://127.0.0.1:3010";

/// Which speech-to-text adapter to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SttProvider {
    /// OpenAI-compatible `/v1/audio/transcriptions` (also self-hosted Whisper servers, the local service).
    OpenAi,
    /// Deepgram `/v1/listen`.
    Deepgram,
    /// ElevenLabs `/v1/speech-to-text`.
    ElevenLabs,
}

/// Which machine-translation adapter to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MtProvider {
    /// Apertium APy `/translate` (the local service).
    Apertium,
    /// DeepL `/v2/translate`.
    DeepL,
    /// Google Cloud Translation v2 `/language/translate/v2`.
    Google,
    /// OpenAI-compatible `/v1/chat/completions` (LLM translation with a length hint).
    OpenAi,
}

/// Which text-to-speech adapter to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TtsProvider {
    /// OpenAI-compatible `/v1/audio/speech`.
    OpenAi,
    /// ElevenLabs `/v1/text-to-speech/{voice_id}`.
    ElevenLabs,
}

/// Audio format requested from the OpenAI-compatible TTS endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TtsFormat {
    /// `response_format: "wav"` (RIFF/WAVE back).
    Wav,
    /// `response_format: "pcm"` (raw 24 kHz 16-bit LE mono back, wrapped as WAV here).
    Pcm,
}

fn pick<T: Copy>(name: &str, value: &str, table: &[(&str, T)]) -> Result<T> {
    let v = value.trim().to_ascii_lowercase();
    table
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            Error::Config(format!("{name} must be one of {}", names.join("|")))
        })
}

/// Everything the edge needs to know about its deployment.
///
/// `Debug` redacts the signing key and every API key.
#[derive(Clone)]
pub struct Config {
    /// Allowed origin patterns, e.g. `http://127.0.0.1:*`, `https://*.example.com`.
    pub origins: Vec<String>,
    /// HMAC key for refs.
    pub signing_key: Vec<u8>,
    /// Speech-to-text adapter.
    pub stt_provider: SttProvider,
    /// STT base URL (the adapter appends its path, e.g. `/v1/audio/transcriptions`).
    pub stt_url: String,
    /// STT model name.
    pub stt_model: String,
    /// Machine-translation adapter.
    pub mt_provider: MtProvider,
    /// MT base URL (the adapter appends its path, e.g. `/translate`).
    pub mt_url: String,
    /// Chat model for LLM translation (`mt_provider = openai`).
    pub mt_model: String,
    /// Text-to-speech adapter.
    pub tts_provider: TtsProvider,
    /// TTS base URL (the adapter appends its path, e.g. `/v1/audio/speech`).
    pub tts_url: String,
    /// TTS model name.
    pub tts_model: String,
    /// TTS voice: one id for every language (`{lang}` is replaced by the target language), or a
    /// per-language map `es=VOICE1,fr=VOICE2` (`*=VOICE` for the rest).
    pub tts_voice: String,
    /// Audio format asked of the OpenAI-compatible TTS endpoint.
    pub tts_format: TtsFormat,
    /// Source language (ISO 639-1).
    pub source_lang: String,
    /// Shared API key, used where no per-role key is set; never logged or echoed.
    pub api_key: Option<String>,
    /// STT key (falls back to `api_key`).
    pub stt_key: Option<String>,
    /// MT key (falls back to `api_key`).
    pub mt_key: Option<String>,
    /// TTS key (falls back to `api_key`).
    pub tts_key: Option<String>,
    /// Per-segment deadline as a fraction of the segment duration.
    pub deadline_fraction: f64,
    /// Lower bound on the per-segment deadline, milliseconds.
    pub deadline_min_ms: u64,
    /// Provider calls: most time to establish a connection, ms (0: the segment deadline only).
    pub provider_connect_timeout_ms: u64,
    /// Provider calls: most time from request to response head, ms (0: automatic, 80 % of the
    /// time left when the attempt starts, see `resilience::AUTO_FIRST_BYTE`).
    pub provider_first_byte_timeout_ms: u64,
    /// Provider calls: longest silence inside a response body, ms (0: the deadline only).
    pub provider_between_bytes_timeout_ms: u64,
    /// Retries allowed per provider request, over a sliding window (token bucket ratio).
    pub retry_budget_ratio: f64,
    /// Consecutive failures that open a provider's circuit breaker (0: no breaker).
    pub breaker_failures: u32,
    /// How long an open breaker fails fast before one probe call is let through, ms.
    pub breaker_cooldown_ms: u64,
    /// Largest provider result kept in the content-addressed cache, bytes (0: no cache).
    pub cache_max_bytes: usize,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |k: &Option<String>| k.as_ref().map(|_| "***");
        f.debug_struct("Config")
            .field("origins", &self.origins)
            .field("signing_key", &"***")
            .field("stt_provider", &self.stt_provider)
            .field("stt_url", &self.stt_url)
            .field("stt_model", &self.stt_model)
            .field("mt_provider", &self.mt_provider)
            .field("mt_url", &self.mt_url)
            .field("mt_model", &self.mt_model)
            .field("tts_provider", &self.tts_provider)
            .field("tts_url", &self.tts_url)
            .field("tts_model", &self.tts_model)
            .field("tts_voice", &self.tts_voice)
            .field("tts_format", &self.tts_format)
            .field("source_lang", &self.source_lang)
            .field("api_key", &hidden(&self.api_key))
            .field("stt_key", &hidden(&self.stt_key))
            .field("mt_key", &hidden(&self.mt_key))
            .field("tts_key", &hidden(&self.tts_key))
            .field("deadline_fraction", &self.deadline_fraction)
            .field("deadline_min_ms", &self.deadline_min_ms)
            .field(
                "provider_connect_timeout_ms",
                &self.provider_connect_timeout_ms,
            )
            .field(
                "provider_first_byte_timeout_ms",
                &self.provider_first_byte_timeout_ms,
            )
            .field(
                "provider_between_bytes_timeout_ms",
                &self.provider_between_bytes_timeout_ms,
            )
            .field("retry_budget_ratio", &self.retry_budget_ratio)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown_ms", &self.breaker_cooldown_ms)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .finish()
    }
}

fn non_empty(k: &Option<String>) -> Option<&str> {
    k.as_deref().filter(|k| !k.is_empty())
}

impl Config {
    /// Build from a variable lookup (`get("stt_url")`); missing names take the local-demo defaults.
    ///
    /// URLs and models left empty take the chosen provider's defaults (the local service for
    /// `openai`/`apertium`, the provider's public endpoint otherwise).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let opt = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let s = |name: &str, default: &str| opt(name).unwrap_or_else(|| default.to_string());
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
        // A non-negative whole number (timeouts, counts, sizes).
        let count = |name: &str, default: &str| -> Result<u64> {
            s(name, default)
                .trim()
                .parse::<u64>()
                .map_err(|_| Error::Config(format!("{name} is not a whole number")))
        };
        let stt_provider = pick(
            "stt_provider",
            &s("stt_provider", "openai"),
            &[
                ("openai", SttProvider::OpenAi),
                ("deepgram", SttProvider::Deepgram),
                ("elevenlabs", SttProvider::ElevenLabs),
            ],
        )?;
        let mt_provider = pick(
            "mt_provider",
            &s("mt_provider", "apertium"),
            &[
                ("apertium", MtProvider::Apertium),
                ("deepl", MtProvider::DeepL),
                ("google", MtProvider::Google),
                ("openai", MtProvider::OpenAi),
            ],
        )?;
        let tts_provider = pick(
            "tts_provider",
            &s("tts_provider", "openai"),
            &[
                ("openai", TtsProvider::OpenAi),
                ("elevenlabs", TtsProvider::ElevenLabs),
            ],
        )?;
        let tts_format = pick(
            "tts_format",
            &s("tts_format", "wav"),
            &[("wav", TtsFormat::Wav), ("pcm", TtsFormat::Pcm)],
        )?;
        let api_key = opt("api_key");
        let mt_key = opt("mt_key");
        let (stt_url, stt_model) = match stt_provider {
            SttProvider::OpenAi => (LOCAL_SPEECH_URL, "whisper-1"),
            SttProvider::Deepgram => ("https://api.deepgram.com", "nova-3"),
            SttProvider::ElevenLabs => ("https://api.elevenlabs.io", "scribe_v1"),
        };
        // DeepL Free keys end in ":fx" and have their own host.
        let deepl_free = mt_key
            .as_deref()
            .or(api_key.as_deref())
            .is_some_and(|k| k.ends_with(":fx"));
        let mt_url = match mt_provider {
            MtProvider::Apertium => LOCAL_SPEECH_URL,
            MtProvider::DeepL if deepl_free => "https://api-free.deepl.com",
            MtProvider::DeepL => "https://api.deepl.com",
            MtProvider::Google => "https://translation.googleapis.com",
            MtProvider::OpenAi => "https://api.openai.com",
        };
        let (tts_url, tts_model, tts_voice) = match tts_provider {
            TtsProvider::OpenAi => (LOCAL_SPEECH_URL, "tts-1", Some("alloy")),
            TtsProvider::ElevenLabs => {
                ("https://api.elevenlabs.io", "eleven_multilingual_v2", None)
            }
        };
        let tts_voice = match (opt("tts_voice"), tts_voice) {
            (Some(v), _) => v,
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err(Error::Config(
                    "tts_voice is required for tts_provider=elevenlabs".into(),
                ));
            }
        };
        Ok(Config {
            origins,
            signing_key,
            stt_provider,
            stt_url: s("stt_url", stt_url),
            stt_model: s("stt_model", stt_model),
            mt_provider,
            mt_url: s("mt_url", mt_url),
            mt_model: s("mt_model", "gpt-4o-mini"),
            tts_provider,
            tts_url: s("tts_url", tts_url),
            tts_model: s("tts_model", tts_model),
            tts_voice,
            tts_format,
            source_lang: s("source_lang", "en"),
            api_key,
            stt_key: opt("stt_key"),
            mt_key,
            tts_key: opt("tts_key"),
            deadline_fraction: num("deadline_fraction", "0.8")?,
            deadline_min_ms: num("deadline_min_ms", "2000")? as u64,
            provider_connect_timeout_ms: count("provider_connect_timeout_ms", "2000")?,
            provider_first_byte_timeout_ms: count("provider_first_byte_timeout_ms", "0")?,
            provider_between_bytes_timeout_ms: count("provider_between_bytes_timeout_ms", "2000")?,
            retry_budget_ratio: Some(num("retry_budget_ratio", "0.2")?)
                .filter(|r| r.is_finite())
                .ok_or_else(|| Error::Config("retry_budget_ratio is not a number".into()))?
                .clamp(0.0, 1.0),
            breaker_failures: count("breaker_failures", "5")?.min(1_000_000) as u32,
            breaker_cooldown_ms: count("breaker_cooldown_ms", "30000")?,
            cache_max_bytes: count("cache_max_bytes", "4194304")?.min(64 << 20) as usize,
        })
    }

    /// The STT key: `stt_key`, else `api_key`.
    pub fn stt_key(&self) -> Option<&str> {
        non_empty(&self.stt_key).or(non_empty(&self.api_key))
    }

    /// The MT key: `mt_key`, else `api_key`.
    pub fn mt_key(&self) -> Option<&str> {
        non_empty(&self.mt_key).or(non_empty(&self.api_key))
    }

    /// The TTS key: `tts_key`, else `api_key`.
    pub fn tts_key(&self) -> Option<&str> {
        non_empty(&self.tts_key).or(non_empty(&self.api_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<Config> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_keep_the_local_chain() {
        let c = with(&[]).unwrap();
        assert_eq!(c.stt_provider, SttProvider::OpenAi);
        assert_eq!(c.mt_provider, MtProvider::Apertium);
        assert_eq!(c.tts_provider, TtsProvider::OpenAi);
        assert_eq!(c.tts_format, TtsFormat::Wav);
        assert_eq!(
            (c.stt_url.as_str(), c.mt_url.as_str(), c.tts_url.as_str()),
            (LOCAL_SPEECH_URL, LOCAL_SPEECH_URL, LOCAL_SPEECH_URL)
        );
        assert_eq!(
            (
                c.stt_model.as_str(),
                c.tts_model.as_str(),
                c.tts_voice.as_str()
            ),
            ("whisper-1", "tts-1", "alloy")
        );
        assert_eq!(c.mt_model, "gpt-4o-mini");
        assert_eq!((c.stt_key(), c.mt_key(), c.tts_key()), (None, None, None));
    }

    #[test]
    fn providers_models_urls_and_key_fallback() {
        let c = with(&[
            ("stt_provider", "Deepgram"),
            ("mt_provider", "deepl"),
            ("tts_provider", "elevenlabs"),
            ("tts_voice", "es=V1,fr=V2"),
            ("tts_format", "pcm"),
            ("api_key", "shared"),
            ("mt_key", "deepl-key:fx"),
            ("tts_key", ""),
        ])
        .unwrap();
        assert_eq!(c.stt_provider, SttProvider::Deepgram);
        assert_eq!(
            (c.stt_url.as_str(), c.stt_model.as_str()),
            ("https://api.deepgram.com", "nova-3")
        );
        assert_eq!(c.mt_url, "https://api-free.deepl.com");
        assert_eq!(
            (c.tts_url.as_str(), c.tts_model.as_str()),
            ("https://api.elevenlabs.io", "eleven_multilingual_v2")
        );
        assert_eq!(c.tts_format, TtsFormat::Pcm);
        assert_eq!(c.stt_key(), Some("shared"));
        assert_eq!(c.mt_key(), Some("deepl-key:fx"));
        assert_eq!(c.tts_key(), Some("shared"), "an empty key falls back");

        let c = with(&[
            ("stt_provider", "elevenlabs"),
            ("stt_url", "http://x"),
            ("mt_provider", "google"),
            ("mt_key", "g"),
        ])
        .unwrap();
        assert_eq!(
            (c.stt_url.as_str(), c.stt_model.as_str()),
            ("http://x", "scribe_v1")
        );
        assert_eq!(c.mt_url, "https://translation.googleapis.com");
        assert_eq!(
            with(&[("mt_provider", "openai")]).unwrap().mt_url,
            "https://api.openai.com"
        );
        assert_eq!(
            with(&[("mt_provider", "deepl")]).unwrap().mt_url,
            "https://api.deepl.com"
        );
    }

    #[test]
    fn rejects_unknown_providers_and_missing_elevenlabs_voice() {
        for (name, value) in [
            ("stt_provider", "whisperx"),
            ("mt_provider", "bing"),
            ("tts_provider", "polly"),
            ("tts_format", "mp3"),
        ] {
            let err = with(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
        assert!(matches!(
            with(&[("tts_provider", "elevenlabs")]),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn resilience_and_cache_settings_have_defaults_and_reject_garbage() {
        let c = with(&[]).unwrap();
        assert_eq!(
            (
                c.provider_connect_timeout_ms,
                c.provider_first_byte_timeout_ms,
                c.provider_between_bytes_timeout_ms
            ),
            (2000, 0, 2000)
        );
        assert_eq!(c.retry_budget_ratio, 0.2);
        assert_eq!((c.breaker_failures, c.breaker_cooldown_ms), (5, 30_000));
        assert_eq!(c.cache_max_bytes, 4 << 20);
        let c = with(&[
            ("provider_first_byte_timeout_ms", "1500"),
            ("retry_budget_ratio", "7"),
            ("cache_max_bytes", "0"),
        ])
        .unwrap();
        assert_eq!(c.provider_first_byte_timeout_ms, 1500);
        assert_eq!(c.retry_budget_ratio, 1.0, "clamped");
        assert_eq!(c.cache_max_bytes, 0);
        for (name, value) in [
            ("breaker_failures", "-1"),
            ("provider_connect_timeout_ms", "1.5"),
            ("retry_budget_ratio", "x"),
            ("retry_budget_ratio", "NaN"),
        ] {
            let err = with(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn debug_never_shows_keys() {
        let c = with(&[
            ("api_key", "sk-SHARED-1"),
            ("stt_key", "dg-SECRET-2"),
            ("mt_key", "deepl-SECRET-3"),
            ("tts_key", "el-SECRET-4"),
            ("signing_key", "sign-SECRET-5"),
        ])
        .unwrap();
        let dbg = format!("{c:?} {c:#?}");
        for k in ["SHARED-1", "SECRET-2", "SECRET-3", "SECRET-4", "SECRET-5"] {
            assert!(!dbg.contains(k), "{dbg}");
        }
        assert!(dbg.contains("stt_url"));
    }
}
