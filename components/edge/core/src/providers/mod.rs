//! Speech provider adapters (STT, MT, TTS) over [`HttpClient`], speaking each API's real wire
//! format, plus the transcript → utterance grouping the pipeline dubs.
//!
//! Every call takes the job deadline and fails fast; errors never carry response bodies, and any
//! message that could contain the API key is redacted before it is stored.

pub mod apy;
pub mod deepgram;
pub mod deepl;
pub mod elevenlabs_stt;
pub mod elevenlabs_tts;
pub mod google_translate;
pub mod openai_chat;
pub mod openai_stt;
pub mod openai_tts;

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cache;
use crate::config::{Config, MtProvider, SttProvider, TtsProvider};
use crate::http::{FetchLimits, HttpClient, HttpError, HttpRequest, HttpResponse};
use crate::resilience::{self, Role};

/// Transcribe `wav` (in `cfg.source_lang`) with the configured STT adapter, failing at `deadline`.
///
/// Served from the content-addressed cache when the same audio was transcribed before with the
/// same adapter, endpoint, model and language; else called under the retry budget and the
/// circuit breaker ([`crate::resilience`]), and a success is cached.
pub fn transcribe<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    wav: &[u8],
    deadline: Instant,
) -> ProviderResult<Transcript> {
    let provider = format!("{:?} {}", cfg.stt_provider, cfg.stt_url);
    let key = cache::key(
        Role::Stt,
        &[
            provider.as_bytes(),
            cfg.stt_model.as_bytes(),
            cfg.source_lang.as_bytes(),
            wav,
        ],
    );
    let max = cfg.cache_max_bytes;
    if let Some(t) =
        cache::get(http.kv(), &key, max).and_then(|v| serde_json::from_slice::<Transcript>(&v).ok())
    {
        return Ok(t);
    }
    let t = resilience::call(http, cfg, Role::Stt, &provider, deadline, |h| {
        match cfg.stt_provider {
            SttProvider::OpenAi => openai_stt::transcribe(h, cfg, wav, deadline),
            SttProvider::Deepgram => deepgram::transcribe(h, cfg, wav, deadline),
            SttProvider::ElevenLabs => elevenlabs_stt::transcribe(h, cfg, wav, deadline),
        }
    })?;
    if let Ok(v) = serde_json::to_vec(&t) {
        cache::put(http.kv(), &key, &v, max);
    }
    Ok(t)
}

/// Translate `text` from `source` to `target` (ISO 639-1) with the configured MT adapter
/// (cached and guarded like [`transcribe`]).
pub fn translate<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    text: &str,
    source: &str,
    target: &str,
    deadline: Instant,
) -> ProviderResult<String> {
    let provider = format!("{:?} {}", cfg.mt_provider, cfg.mt_url);
    let key = cache::key(
        Role::Mt,
        &[
            provider.as_bytes(),
            cfg.mt_model.as_bytes(),
            source.as_bytes(),
            target.as_bytes(),
            text.as_bytes(),
        ],
    );
    let max = cfg.cache_max_bytes;
    if let Some(t) = cache::get(http.kv(), &key, max.min(MAX_CACHED_TEXT))
        .and_then(|v| String::from_utf8(v).ok())
    {
        return Ok(t);
    }
    let out = resilience::call(http, cfg, Role::Mt, &provider, deadline, |h| {
        match cfg.mt_provider {
            MtProvider::Apertium => apy::translate(h, cfg, text, source, target, deadline),
            MtProvider::DeepL => deepl::translate(h, cfg, text, source, target, deadline),
            MtProvider::Google => {
                google_translate::translate(h, cfg, text, source, target, deadline)
            }
            MtProvider::OpenAi => openai_chat::translate(h, cfg, text, source, target, deadline),
        }
    })?;
    cache::put(http.kv(), &key, out.as_bytes(), max.min(MAX_CACHED_TEXT));
    Ok(out)
}

/// Ask the MT provider once more for a rendering of `text` of at most `max_chars` characters,
/// when the first one, voiced, did not fit its slot even at the speed cap. `Ok(None)` when the
/// configured provider cannot be asked for a length (only LLM translation can: DeepL, Google and
/// Apertium have no such control). Cached and guarded like [`translate`].
pub fn translate_shorter<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    text: &str,
    source: &str,
    target: &str,
    max_chars: usize,
    deadline: Instant,
) -> ProviderResult<Option<String>> {
    if cfg.mt_provider != MtProvider::OpenAi {
        return Ok(None);
    }
    let provider = format!("{:?} {}", cfg.mt_provider, cfg.mt_url);
    let budget = max_chars.to_string();
    let key = cache::key(
        Role::Mt,
        &[
            provider.as_bytes(),
            cfg.mt_model.as_bytes(),
            source.as_bytes(),
            target.as_bytes(),
            b"shorter",
            budget.as_bytes(),
            text.as_bytes(),
        ],
    );
    let max = cfg.cache_max_bytes.min(MAX_CACHED_TEXT);
    if let Some(t) = cache::get(http.kv(), &key, max).and_then(|v| String::from_utf8(v).ok()) {
        return Ok(Some(t));
    }
    let out = resilience::call(http, cfg, Role::Mt, &provider, deadline, |h| {
        openai_chat::translate_within(h, cfg, text, source, target, Some(max_chars), deadline)
    })?;
    cache::put(http.kv(), &key, out.as_bytes(), max);
    Ok(Some(out))
}

/// Longest translation kept in the cache, bytes.
pub const MAX_CACHED_TEXT: usize = 64 << 10;

/// Speak `text` in language `lang` with the configured TTS adapter and the voice configured for
/// `lang`; returns WAV bytes (cached and guarded like [`transcribe`]; speech larger than
/// `cache_max_bytes` is not cached).
///
/// A response labelled as text or JSON is refused whatever its bytes: raw `pcm` cannot be told
/// from an error message by its bytes alone.
pub fn synthesize<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    text: &str,
    lang: &str,
    deadline: Instant,
) -> ProviderResult<Vec<u8>> {
    synthesize_as(http, cfg, text, lang, None, deadline)
}

/// [`synthesize`] in the voice of diarized speaker `speaker` (see [`voice_for_speaker`]).
pub fn synthesize_as<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    text: &str,
    lang: &str,
    speaker: Option<&str>,
    deadline: Instant,
) -> ProviderResult<Vec<u8>> {
    let voice = voice_for_speaker(cfg, lang, speaker)?;
    let provider = format!("{:?} {}", cfg.tts_provider, cfg.tts_url);
    let format = format!("{:?}", cfg.tts_format);
    let key = cache::key(
        Role::Tts,
        &[
            provider.as_bytes(),
            cfg.tts_model.as_bytes(),
            format.as_bytes(),
            voice.as_bytes(),
            lang.as_bytes(),
            text.as_bytes(),
        ],
    );
    let max = cfg.cache_max_bytes;
    if let Some(wav) = cache::get(http.kv(), &key, max).filter(|w| openai_tts::is_wav(w)) {
        return Ok(wav);
    }
    let wav = resilience::call(http, cfg, Role::Tts, &provider, deadline, |h| {
        let wav = match cfg.tts_provider {
            TtsProvider::OpenAi => openai_tts::synthesize(h, cfg, text, &voice, deadline),
            TtsProvider::ElevenLabs => {
                elevenlabs_tts::synthesize(h, cfg, text, &voice, lang, deadline)
            }
        }?;
        if let Some(ct) = h.last_content_type()
            && (ct.starts_with("text/") || ct.contains("json") || ct.contains("html"))
        {
            return Err(ProviderError::BadResponse(format!(
                "speech came back as {}",
                ct.split(';').next().unwrap_or("").trim()
            )));
        }
        if !openai_tts::is_wav(&wav) {
            return Err(ProviderError::BadResponse("speech is not WAV".into()));
        }
        Ok(wav)
    })?;
    cache::put(http.kv(), &key, &wav, max);
    Ok(wav)
}

/// The voice for target language `lang` from `cfg.tts_voice`: either a per-language map
/// `es=VOICE1,fr=VOICE2` (a region like `es-MX` also matches `es`; `*=VOICE` covers the rest),
/// or one voice for all languages in which every `{lang}` is replaced by `lang`. An entry may
/// list voices for diarized speakers separated by `|` (`es=V1|V2|V3`, `{lang}+f2|{lang}+m3`):
/// the first is the voice of undiarized speech.
pub fn voice_for(cfg: &Config, lang: &str) -> ProviderResult<String> {
    voice_for_speaker(cfg, lang, None)
}

/// The voice of diarized speaker `speaker` for `lang`: with `|`-separated voices in the entry
/// (see [`voice_for`]), speaker labels ending in a number `n` (`0`, `speaker_1`) take voice
/// `n mod count`, other labels a stable hash of the label, so a speaker keeps one voice for as
/// long as the recogniser gives it the same label.
pub fn voice_for_speaker(
    cfg: &Config,
    lang: &str,
    speaker: Option<&str>,
) -> ProviderResult<String> {
    let entry = voice_entry(cfg, lang)?;
    let voices: Vec<&str> = entry
        .split('|')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let index = match (speaker, voices.len()) {
        (_, 0 | 1) | (None, _) => 0,
        (Some(label), n) => {
            let digits: String = label
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let k = match digits.get(digits.len().saturating_sub(9)..) {
                Some(d) if !d.is_empty() => d.parse::<u64>().unwrap_or(0),
                _ => label.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                }),
            };
            (k % n as u64) as usize
        }
    };
    Ok(voices.get(index).copied().unwrap_or("").to_string())
}

fn voice_entry(cfg: &Config, lang: &str) -> ProviderResult<String> {
    let spec = cfg.tts_voice.trim();
    if !spec.contains('=') {
        return Ok(spec.replace("{lang}", lang));
    }
    let lang = lang.trim().to_ascii_lowercase();
    let base = lang.split(['-', '_']).next().unwrap_or("");
    let entries: Vec<(String, &str)> = spec
        .split(',')
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    [lang.as_str(), base, "*"]
        .iter()
        .find_map(|want| entries.iter().find(|(k, _)| k == want))
        .map(|(_, v)| v.to_string())
        .ok_or_else(|| ProviderError::Language(lang.chars().take(16).collect()))
}

/// Wrap raw 16-bit little-endian mono PCM as a RIFF/WAVE file (a trailing odd byte is dropped).
pub fn wav_from_pcm16(pcm: &[u8], rate: u32) -> ProviderResult<Vec<u8>> {
    let data = &pcm[..pcm.len() & !1];
    if data.is_empty() {
        return Err(ProviderError::BadResponse("no audio".into()));
    }
    let len = u32::try_from(data.len())
        .ok()
        .filter(|n| *n <= u32::MAX - 36)
        .ok_or_else(|| ProviderError::BadResponse("audio too long".into()))?;
    let mut w = Vec::with_capacity(44 + data.len());
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&len.to_le_bytes());
    w.extend_from_slice(data);
    Ok(w)
}

/// Longest speaker label kept from a response (longer ones are dropped as garbage).
pub const MAX_SPEAKER_CHARS: usize = 64;

/// A speaker label from untrusted input, if it is short and non-empty.
pub(crate) fn speaker_label(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.chars().count() <= MAX_SPEAKER_CHARS).then(|| s.to_string())
}

/// Why a provider call failed. Messages are short and never contain keys or response bodies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The deadline passed before (or while) the provider answered.
    #[error("timed out")]
    Timeout,
    /// Connection or protocol failure (message redacted).
    #[error("transport: {0}")]
    Transport(String),
    /// The provider answered with a non-success status.
    #[error("provider returned HTTP {0}")]
    Status(u16),
    /// The provider answered with something that is not the documented shape.
    #[error("bad response: {0}")]
    BadResponse(String),
    /// The language is not supported by this adapter.
    #[error("unsupported language: {0}")]
    Language(String),
    /// The request input is out of bounds (empty, too long).
    #[error("bad input: {0}")]
    Input(String),
    /// The provider's circuit breaker is open: no call was made.
    #[error("provider unavailable (circuit open)")]
    Unavailable,
}

/// Result alias for provider calls.
pub type ProviderResult<T> = std::result::Result<T, ProviderError>;

/// Replace every occurrence of `secret` in `msg` (no-op for an absent or empty secret).
pub(crate) fn redact(msg: &str, secret: Option<&str>) -> String {
    let mut out: String = msg.chars().take(200).collect();
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        // The full message first: truncation may have cut the key in half.
        out = msg.replace(s, "***").chars().take(200).collect();
        // A key cut at the 200-char boundary would leave a prefix; drop any tail that is a prefix.
        for cut in (4..s.len()).rev() {
            if s.is_char_boundary(cut) && out.ends_with(&s[..cut]) {
                out.truncate(out.len() - cut);
                out.push_str("***");
                break;
            }
        }
    }
    out
}

/// Every MT adapter's bound on the source text: at most [`apy::MAX_INPUT`] bytes per request.
pub(crate) fn check_mt_text(text: &str) -> ProviderResult<()> {
    if text.len() > apy::MAX_INPUT {
        return Err(ProviderError::Input(format!(
            "text of {} bytes",
            text.len()
        )));
    }
    Ok(())
}

/// Every STT adapter's bound on the upload: non-empty, at most [`openai_stt::MAX_UPLOAD`] bytes.
pub(crate) fn check_stt_upload(wav: &[u8]) -> ProviderResult<()> {
    if wav.is_empty() || wav.len() > openai_stt::MAX_UPLOAD {
        return Err(ProviderError::Input(format!(
            "audio upload of {} bytes",
            wav.len()
        )));
    }
    Ok(())
}

/// Send `req` with the deadline and body cap, mapping transport errors (redacted) and statuses.
pub(crate) fn send_checked<H: HttpClient + ?Sized>(
    http: &H,
    req: &HttpRequest,
    deadline: Instant,
    max_body: usize,
    secret: Option<&str>,
) -> ProviderResult<HttpResponse> {
    if Instant::now() >= deadline {
        return Err(ProviderError::Timeout);
    }
    let limits = FetchLimits { deadline, max_body };
    let resp = http.send(req, &limits).map_err(|e| match e {
        HttpError::Timeout => ProviderError::Timeout,
        HttpError::TooLarge(n) => {
            ProviderError::BadResponse(format!("response larger than {n} bytes"))
        }
        other => ProviderError::Transport(redact(&other.to_string(), secret)),
    })?;
    if !(200..300).contains(&resp.status) {
        return Err(ProviderError::Status(resp.status));
    }
    if resp.body.len() > max_body {
        return Err(ProviderError::BadResponse(format!(
            "response larger than {max_body} bytes"
        )));
    }
    Ok(resp)
}

/// `base` + `path` without a doubled slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// The `Authorization` header for an optional bearer key.
pub(crate) fn bearer(headers: &mut Vec<(String, String)>, key: Option<&str>) {
    if let Some(k) = key.filter(|k| !k.is_empty()) {
        headers.push(("authorization".into(), format!("Bearer {k}")));
    }
}

/// One recognised word, times in seconds relative to the uploaded audio.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// The word as the recogniser wrote it.
    pub word: String,
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Speaker label from diarization, if the recogniser gave one.
    pub speaker: Option<String>,
}

/// One recogniser segment (a phrase), times in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SttSegment {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Text of the phrase.
    pub text: String,
}

/// A transcription with word and segment timestamps.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Transcript {
    /// Full text (with punctuation, when the recogniser gives it).
    pub text: String,
    /// Detected or given language, if reported.
    pub language: Option<String>,
    /// Audio duration in seconds, if reported.
    pub duration: Option<f64>,
    /// Words with times (may be empty).
    pub words: Vec<Word>,
    /// Segments with times (may be empty).
    pub segments: Vec<SttSegment>,
}

/// A sentence-like unit to translate and voice, times in seconds relative to the segment start.
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Source text.
    pub text: String,
    /// Speaker label of its words (diarization), if known.
    pub speaker: Option<String>,
}

/// A pause at least this long between two words ends an utterance.
pub const UTTERANCE_GAP_S: f64 = 0.6;
/// Longest utterance text handed to MT/TTS, in chars (longer text is cut at a word boundary).
pub const MAX_UTTERANCE_CHARS: usize = 1000;

fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？')
}

/// Clean one recogniser token: drop fillers/noise markers, strip `(2)` alternate suffixes.
/// Returns `None` for tokens that carry no speech.
fn clean_token(tok: &str) -> Option<&str> {
    let mut t = tok.trim();
    // pocketsphinx alternates: `the(2)`.
    if let Some(open) = t.rfind('(')
        && t.ends_with(')')
        && t[open + 1..t.len() - 1].chars().all(|c| c.is_ascii_digit())
    {
        t = t[..open].trim_end();
    }
    let wrapped =
        |a: &str, b: &str| t.len() >= a.len() + b.len() && t.starts_with(a) && t.ends_with(b);
    if t.is_empty()
        || wrapped("<", ">")
        || wrapped("[", "]")
        || wrapped("++", "++")
        || wrapped("(", ")")
    {
        return None;
    }
    Some(t)
}

/// Valid, finite, ordered times (untrusted input).
fn valid_times(start: f64, end: f64) -> Option<(f64, f64)> {
    if !start.is_finite() || !end.is_finite() || !(0.0..=1.0e6).contains(&start) {
        return None;
    }
    Some((start, end.max(start).min(1.0e6)))
}

fn cap_text(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() <= MAX_UTTERANCE_CHARS {
        return s;
    }
    let cut: String = s.chars().take(MAX_UTTERANCE_CHARS).collect();
    match cut.rfind(' ') {
        Some(i) if i > 0 => cut[..i].to_string(),
        _ => cut,
    }
}

impl Transcript {
    /// Group words into utterances: split after sentence-final punctuation (found in the word or,
    /// aligned, in the full text), at a pause of at least [`UTTERANCE_GAP_S`] or where the
    /// diarized speaker changes. Without words,
    /// the recogniser's segments are used. Noise/filler tokens are dropped; empty results skipped.
    pub fn utterances(&self) -> Vec<Utterance> {
        struct W<'a> {
            token: &'a str,
            start: f64,
            end: f64,
            /// Byte span in `self.text` including trailing punctuation, when aligned.
            span: Option<(usize, usize)>,
            sentence_end: bool,
            speaker: Option<&'a str>,
        }
        let text = self.text.as_str();
        let lower = text.to_ascii_lowercase();
        let mut cursor = 0usize;
        let mut words: Vec<W<'_>> = Vec::new();
        for w in &self.words {
            let Some((start, end)) = valid_times(w.start, w.end) else {
                continue;
            };
            let raw = w.word.trim();
            // A bare punctuation token ends the previous word's sentence.
            if !raw.is_empty() && !raw.chars().any(char::is_alphanumeric) {
                if raw.chars().any(is_sentence_end)
                    && let Some(prev) = words.last_mut()
                {
                    prev.sentence_end = true;
                }
                continue;
            }
            let Some(token) = clean_token(raw) else {
                continue;
            };
            let core = token.trim_matches(|c: char| !c.is_alphanumeric());
            if core.is_empty() {
                continue;
            }
            let mut sentence_end = token
                .trim_end_matches(['"', '\'', ')', '»', '”'])
                .ends_with(is_sentence_end);
            let mut span = None;
            let needle = core.to_ascii_lowercase();
            if let Some(rest) = lower.get(cursor..)
                && let Some(pos) = rest.find(&needle)
                && pos <= 64
            {
                let s = cursor + pos;
                let mut e = s + needle.len();
                let after = &text[e..];
                let punct = after
                    .find(|c: char| c.is_whitespace() || c.is_alphanumeric())
                    .unwrap_or(after.len());
                if after[..punct].chars().any(is_sentence_end) {
                    sentence_end = true;
                }
                e += punct;
                span = Some((s, e));
                cursor = e;
            }
            words.push(W {
                token,
                start,
                end,
                span,
                sentence_end,
                speaker: w.speaker.as_deref(),
            });
        }
        words.sort_by(|a, b| a.start.total_cmp(&b.start));

        let mut out = Vec::new();
        if words.is_empty() {
            for seg in &self.segments {
                let Some((start, end)) = valid_times(seg.start, seg.end) else {
                    continue;
                };
                let cleaned: Vec<&str> = seg
                    .text
                    .split_whitespace()
                    .filter_map(clean_token)
                    .collect();
                let t = cap_text(&cleaned.join(" "));
                if t.chars().any(char::is_alphanumeric) {
                    out.push(Utterance {
                        start,
                        end,
                        text: t,
                        speaker: None,
                    });
                }
            }
            out.sort_by(|a, b| a.start.total_cmp(&b.start));
            return out;
        }

        let mut group: Vec<&W<'_>> = Vec::new();
        let flush = |group: &mut Vec<&W<'_>>, out: &mut Vec<Utterance>| {
            let (Some(first), Some(last)) = (group.first(), group.last()) else {
                return;
            };
            let spans: Option<Vec<(usize, usize)>> = group.iter().map(|w| w.span).collect();
            let joined = match spans {
                Some(sp) if sp.windows(2).all(|p| p[0].1 <= p[1].0) => {
                    text.get(sp[0].0..sp[sp.len() - 1].1).map(str::to_string)
                }
                _ => None,
            }
            .unwrap_or_else(|| group.iter().map(|w| w.token).collect::<Vec<_>>().join(" "));
            let end = group.iter().map(|w| w.end).fold(last.end, f64::max);
            out.push(Utterance {
                start: first.start,
                end,
                text: cap_text(&joined),
                speaker: first.speaker.map(str::to_string),
            });
            group.clear();
        };
        for (i, w) in words.iter().enumerate() {
            group.push(w);
            let split_next = words.get(i + 1).is_some_and(|n| {
                n.start - w.end >= UTTERANCE_GAP_S
                    || (n.speaker.is_some() && w.speaker.is_some() && n.speaker != w.speaker)
            });
            if w.sentence_end || split_next {
                flush(&mut group, &mut out);
            }
        }
        flush(&mut group, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(word: &str, start: f64, end: f64) -> Word {
        Word {
            word: word.into(),
            start,
            end,
            speaker: None,
        }
    }

    #[test]
    fn splits_at_punctuation_in_text_and_at_gaps() {
        let t = Transcript {
            text: "Hello there, friend. Where are you going? I am going home".into(),
            words: vec![
                w("Hello", 0.10, 0.40),
                w("there", 0.45, 0.70),
                w("friend", 0.75, 1.10),
                w("Where", 1.20, 1.40),
                w("are", 1.42, 1.50),
                w("you", 1.52, 1.60),
                w("going", 1.62, 1.90),
                w("I", 2.00, 2.05),
                w("am", 2.10, 2.20),
                // 0.7 s pause: new utterance even without punctuation.
                w("going", 2.90, 3.10),
                w("home", 3.15, 3.40),
            ],
            ..Default::default()
        };
        let u = t.utterances();
        let texts: Vec<&str> = u.iter().map(|u| u.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Hello there, friend.",
                "Where are you going?",
                "I am",
                "going home"
            ]
        );
        assert_eq!((u[0].start, u[0].end), (0.10, 1.10));
        assert_eq!((u[1].start, u[1].end), (1.20, 1.90));
        assert_eq!((u[3].start, u[3].end), (2.90, 3.40));
    }

    #[test]
    fn punctuation_inside_words_and_bare_tokens() {
        let t = Transcript {
            text: String::new(),
            words: vec![
                w("Yes.", 0.0, 0.3),
                w("No", 0.35, 0.5),
                w("!", 0.5, 0.5),
                w("maybe", 0.55, 0.9),
            ],
            ..Default::default()
        };
        let texts: Vec<String> = t.utterances().into_iter().map(|u| u.text).collect();
        assert_eq!(texts, ["Yes.", "No", "maybe"]);
    }

    #[test]
    fn drops_pocketsphinx_fillers_and_alternates() {
        let t = Transcript {
            text: "the cat".into(),
            words: vec![
                w("<s>", 0.0, 0.02),
                w("<sil>", 0.02, 0.3),
                w("the(2)", 0.3, 0.5),
                w("[noise]", 0.5, 0.6),
                w("++UH++", 0.6, 0.62),
                w("cat", 0.62, 0.9),
                w("</s>", 0.9, 0.95),
                w("", 0.95, 0.96),
            ],
            ..Default::default()
        };
        let u = t.utterances();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].text, "the cat");
        assert_eq!((u[0].start, u[0].end), (0.3, 0.9));
    }

    #[test]
    fn rejects_bad_times_and_falls_back_to_segments() {
        let t = Transcript {
            text: "x".into(),
            words: vec![w("bad", f64::NAN, 1.0), w("neg", -1.0, 0.0)],
            segments: vec![
                SttSegment {
                    start: 2.0,
                    end: 3.0,
                    text: " second <sil> part ".into(),
                },
                SttSegment {
                    start: 0.5,
                    end: 1.5,
                    text: "First part.".into(),
                },
                SttSegment {
                    start: 4.0,
                    end: 5.0,
                    text: "[noise]".into(),
                },
            ],
            ..Default::default()
        };
        let u = t.utterances();
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].start, u[0].text.as_str()), (0.5, "First part."));
        assert_eq!((u[1].start, u[1].text.as_str()), (2.0, "second part"));
    }

    #[test]
    fn long_text_is_capped_at_a_word_boundary() {
        let long = "word ".repeat(400);
        let u = Transcript {
            segments: vec![SttSegment {
                start: 0.0,
                end: 1.0,
                text: long,
            }],
            ..Default::default()
        }
        .utterances();
        assert!(u[0].text.chars().count() <= MAX_UTTERANCE_CHARS);
        assert!(u[0].text.ends_with("word"));
    }

    #[test]
    fn redact_removes_whole_and_cut_keys() {
        let key = "sk-test-SECRET-0123456789";
        assert_eq!(
            redact(&format!("bad {key} here"), Some(key)),
            "bad *** here"
        );
        // A message that already cut the key (e.g. a client truncating its error text).
        let cut = format!("header was Bearer {}", &key[..12]);
        assert_eq!(redact(&cut, Some(key)), "header was Bearer ***");
        // Truncation to 200 chars happens after redaction, never leaving a key prefix.
        let long = format!("{}{key}", "a".repeat(190));
        assert_eq!(redact(&long, Some(key)), format!("{}***", "a".repeat(190)));
        assert_eq!(redact("plain", None), "plain");
    }

    #[test]
    fn speaker_change_splits_an_utterance() {
        let sw = |word: &str, start: f64, end: f64, spk: Option<&str>| Word {
            speaker: spk.map(str::to_string),
            ..w(word, start, end)
        };
        let t = Transcript {
            words: vec![
                sw("yes", 0.0, 0.2, Some("A")),
                sw("sir", 0.25, 0.5, Some("A")),
                sw("go", 0.55, 0.7, Some("B")),
                sw("now", 0.75, 0.9, None),
                sw("then", 0.95, 1.1, Some("B")),
            ],
            ..Default::default()
        };
        let u: Vec<(String, Option<String>, f64)> = t
            .utterances()
            .into_iter()
            .map(|u| (u.text, u.speaker, u.start))
            .collect();
        assert_eq!(
            u,
            [
                ("yes sir".to_string(), Some("A".to_string()), 0.0),
                ("go now then".into(), Some("B".into()), 0.55),
            ]
        );
        assert_eq!(speaker_label(&"x".repeat(MAX_SPEAKER_CHARS + 1)), None);
        assert_eq!(speaker_label(" speaker_1 ").as_deref(), Some("speaker_1"));
    }

    #[test]
    fn voice_for_single_template_and_per_language_map() {
        let mut cfg = crate::testutil::test_config();
        cfg.tts_voice = "{lang}".into();
        assert_eq!(voice_for(&cfg, "es").unwrap(), "es");
        cfg.tts_voice = "alloy".into();
        assert_eq!(voice_for(&cfg, "fr").unwrap(), "alloy");
        cfg.tts_voice = " es = VOICE1 ,fr=VOICE2, es-mx=VOICE3".into();
        assert_eq!(voice_for(&cfg, "es").unwrap(), "VOICE1");
        assert_eq!(voice_for(&cfg, "FR").unwrap(), "VOICE2");
        assert_eq!(voice_for(&cfg, "es-MX").unwrap(), "VOICE3");
        assert_eq!(voice_for(&cfg, "es-AR").unwrap(), "VOICE1");
        assert_eq!(
            voice_for(&cfg, "de"),
            Err(ProviderError::Language("de".into()))
        );
        cfg.tts_voice = "es=VOICE1,*=FALLBACK".into();
        assert_eq!(voice_for(&cfg, "de").unwrap(), "FALLBACK");
    }

    #[test]
    fn diarized_speakers_get_voices_by_label() {
        let mut cfg = crate::testutil::test_config();
        cfg.tts_voice = "es=A|B|C,fr=SOLO".into();
        let v = |lang: &str, s: Option<&str>| voice_for_speaker(&cfg, lang, s).unwrap();
        // Undiarized speech and the first speaker take the first voice.
        assert_eq!(voice_for(&cfg, "es").unwrap(), "A");
        assert_eq!(v("es", None), "A");
        // Numbered labels (Deepgram `0`, ElevenLabs `speaker_1`) take voice n mod count.
        assert_eq!(
            ["0", "1", "2", "3", "speaker_1", "speaker_0"].map(|s| v("es", Some(s))),
            ["A", "B", "C", "A", "B", "A"]
        );
        // Other labels: a stable choice, the same every time.
        let alice = v("es", Some("alice"));
        assert!(["A", "B", "C"].contains(&alice.as_str()));
        assert_eq!(v("es", Some("alice")), alice);
        // One voice: every speaker has it; a huge number does not overflow.
        assert_eq!(v("fr", Some("7")), "SOLO");
        assert!(["A", "B", "C"].contains(&v("es", Some(&"9".repeat(40))).as_str()));
        let mut cfg = cfg.clone();
        cfg.tts_voice = "{lang}+f2|{lang}+m3".into();
        assert_eq!(voice_for_speaker(&cfg, "es", Some("1")).unwrap(), "es+m3");
    }

    #[test]
    fn pcm16_is_wrapped_as_a_mono_wav() {
        let wav = wav_from_pcm16(&[1, 0, 2, 0, 3], 22_050).unwrap();
        assert_eq!(
            crate::testutil::wav_info(&wav),
            Some(crate::testutil::WavInfo {
                rate: 22_050,
                channels: 1,
                bits: 16,
                frames: 2
            })
        );
        assert_eq!(wav.len(), 48);
        assert_eq!(&wav[40..44], &4u32.to_le_bytes());
        assert_eq!(&wav[28..32], &44_100u32.to_le_bytes(), "byte rate");
        assert!(matches!(
            wav_from_pcm16(&[7], 24_000),
            Err(ProviderError::BadResponse(_))
        ));
    }

    /// One fake server speaking every wire format; each config reaches its own adapter's path.
    #[test]
    fn dispatch_follows_the_configured_providers() {
        use std::time::Duration;

        use crate::config::{MtProvider, SttProvider, TtsProvider};
        use crate::testutil::{Reply, StdHttpClient, TestServer, test_config, tone_wav};

        let server = TestServer::start(|req| match req.path.as_str() {
            "/v1/audio/transcriptions" => Reply::json(
                200,
                r#"{"text":"one.","words":[{"word":"one.","start":0.1,"end":0.3}]}"#,
            ),
            "/v1/listen" => Reply::json(
                200,
                r#"{"results":{"channels":[{"alternatives":[{"transcript":"two.","words":[{"word":"two","punctuated_word":"two.","start":0.1,"end":0.3,"speaker":0}]}]}]}}"#,
            ),
            "/v1/speech-to-text" => Reply::json(
                200,
                r#"{"text":"three.","words":[{"text":"three.","start":0.1,"end":0.3,"type":"word","speaker_id":"speaker_0"}]}"#,
            ),
            "/translate" => Reply::json(
                200,
                r#"{"responseData":{"translatedText":"apertium"},"responseStatus":200}"#,
            ),
            "/v2/translate" => Reply::json(200, r#"{"translations":[{"text":"deepl"}]}"#),
            "/language/translate/v2" => Reply::json(
                200,
                r#"{"data":{"translations":[{"translatedText":"google"}]}}"#,
            ),
            "/v1/chat/completions" => Reply::json(
                200,
                r#"{"choices":[{"message":{"content":"{\"translation\":\"llm\"}"},"finish_reason":"stop"}]}"#,
            ),
            "/v1/audio/speech" => Reply::bytes(200, "audio/wav", tone_wav(24_000, 1, 0.1, 200.0)),
            p if p.starts_with("/v1/text-to-speech/") => {
                Reply::bytes(200, "audio/pcm", vec![0; 2205 * 2])
            }
            _ => Reply::text(404, "no"),
        });
        let mut cfg = test_config();
        cfg.stt_url = server.url();
        cfg.mt_url = server.url();
        cfg.tts_url = server.url();
        cfg.api_key = Some("k".into());
        let dl = Instant::now() + Duration::from_secs(5);
        let http = StdHttpClient;
        let wav = tone_wav(16_000, 1, 0.2, 300.0);
        for (p, want) in [
            (SttProvider::OpenAi, "one."),
            (SttProvider::Deepgram, "two."),
            (SttProvider::ElevenLabs, "three."),
        ] {
            cfg.stt_provider = p;
            let t = transcribe(&http, &cfg, &wav, dl).unwrap();
            assert_eq!(t.utterances()[0].text, want, "{p:?}");
        }
        for (p, want) in [
            (MtProvider::Apertium, "apertium"),
            (MtProvider::DeepL, "deepl"),
            (MtProvider::Google, "google"),
            (MtProvider::OpenAi, "llm"),
        ] {
            cfg.mt_provider = p;
            assert_eq!(translate(&http, &cfg, "hi", "en", "es", dl).unwrap(), want);
        }
        cfg.tts_voice = "es=VoiceEs".into();
        for (p, rate) in [
            (TtsProvider::OpenAi, 24_000),
            (TtsProvider::ElevenLabs, 22_050),
        ] {
            cfg.tts_provider = p;
            let wav = synthesize(&http, &cfg, "hola", "es", dl).unwrap();
            let info = crate::testutil::wav_info(&wav).unwrap();
            assert_eq!((info.rate, info.frames), (rate, rate as u64 / 10), "{p:?}");
        }
        let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(
            paths,
            [
                "/v1/audio/transcriptions",
                "/v1/listen",
                "/v1/speech-to-text",
                "/translate",
                "/v2/translate",
                "/language/translate/v2",
                "/v1/chat/completions",
                "/v1/audio/speech",
                "/v1/text-to-speech/VoiceEs",
            ]
        );
    }
}
