//! Speech provider adapters (STT, MT, TTS) over [`HttpClient`], speaking each API's real wire
//! format, plus the transcript → utterance grouping the pipeline dubs.
//!
//! Every call takes the job deadline and fails fast; errors never carry response bodies, and any
//! message that could contain the API key is redacted before it is stored.

pub mod apy;
pub mod openai_stt;
pub mod openai_tts;

use std::time::Instant;

use crate::http::{FetchLimits, HttpClient, HttpError, HttpRequest, HttpResponse};

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
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    /// The word as the recogniser wrote it.
    pub word: String,
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
}

/// One recogniser segment (a phrase), times in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct SttSegment {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Text of the phrase.
    pub text: String,
}

/// A transcription with word and segment timestamps.
#[derive(Clone, Debug, PartialEq, Default)]
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
    /// aligned, in the full text) or at a pause of at least [`UTTERANCE_GAP_S`]. Without words,
    /// the recogniser's segments are used. Noise/filler tokens are dropped; empty results skipped.
    pub fn utterances(&self) -> Vec<Utterance> {
        struct W<'a> {
            token: &'a str,
            start: f64,
            end: f64,
            /// Byte span in `self.text` including trailing punctuation, when aligned.
            span: Option<(usize, usize)>,
            sentence_end: bool,
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
            });
            group.clear();
        };
        for (i, w) in words.iter().enumerate() {
            group.push(w);
            let gap_next = words
                .get(i + 1)
                .is_some_and(|n| n.start - w.end >= UTTERANCE_GAP_S);
            if w.sentence_end || gap_next {
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
}
