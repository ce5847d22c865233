//! Parsing `pocketsphinx_continuous -time yes` output into utterances with word times.
//!
//! For each utterance the tool prints its hypothesis line, then one `word start end posterior` line
//! per token (times in seconds from the start of the file), including `<s>`, `</s>`, `<sil>`, fillers
//! like `[NOISE]` or `++UH++`, and alternate pronunciations like `the(2)`.

/// A recognised word with its times in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word, without pronunciation-variant suffix.
    pub word: String,
    /// Start, seconds from the start of the audio.
    pub start: f64,
    /// End, seconds from the start of the audio.
    pub end: f64,
    /// Posterior probability pocketsphinx gave the word (0..=1).
    pub prob: f64,
}

/// One utterance (pocketsphinx splits at pauses) with its real words.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// The words, fillers and silences removed.
    pub words: Vec<Word>,
}

impl Utterance {
    /// The words joined by spaces.
    pub fn text(&self) -> String {
        let w: Vec<&str> = self.words.iter().map(|w| w.word.as_str()).collect();
        w.join(" ")
    }
}

/// Most utterances and words kept from one run (the output is capped upstream too).
const MAX_WORDS: usize = 100_000;

fn word_line(line: &str) -> Option<(&str, f64, f64, f64)> {
    let mut f = line.split_whitespace();
    let (w, s, e, p) = (f.next()?, f.next()?, f.next()?, f.next()?);
    if f.next().is_some() {
        return None;
    }
    let s: f64 = s.parse().ok()?;
    let e: f64 = e.parse().ok()?;
    let p: f64 = p.parse().ok()?;
    (s.is_finite() && e.is_finite() && p.is_finite()).then_some((w, s, e, p))
}

/// Strips `(2)`-style variant suffixes; `None` for silences, sentence markers and fillers.
fn clean_word(w: &str) -> Option<String> {
    if w.starts_with('<') || w.starts_with('[') || w.starts_with("++") || w.is_empty() {
        return None;
    }
    let base = match w.rfind('(') {
        Some(i)
            if w.ends_with(')') && w[i + 1..w.len() - 1].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &w[..i]
        }
        _ => w,
    };
    (!base.is_empty()).then(|| base.to_owned())
}

/// Parses the whole stdout of `pocketsphinx_continuous -time yes`; utterances without words are dropped.
pub fn parse_pocketsphinx(out: &str) -> Vec<Utterance> {
    let mut utts: Vec<Utterance> = Vec::new();
    let mut current: Option<Utterance> = None;
    let mut total = 0usize;
    for line in out.lines() {
        match word_line(line) {
            Some((w, start, end, prob)) => {
                let Some(word) = clean_word(w) else { continue };
                if total == MAX_WORDS {
                    break;
                }
                total += 1;
                let end = end.max(start);
                current
                    .get_or_insert_with(|| Utterance { words: Vec::new() })
                    .words
                    .push(Word {
                        word,
                        start,
                        end,
                        prob: prob.clamp(0.0, 1.0),
                    });
            }
            None => {
                // A hypothesis line opens the next utterance.
                if let Some(u) = current.take() {
                    utts.push(u);
                }
                current = Some(Utterance { words: Vec::new() });
            }
        }
    }
    utts.extend(current);
    utts.retain(|u| !u.words.is_empty());
    utts
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "\n<s> 0.000 0.760 1.000100\n</s> 0.770 0.870 1.000000\nthe city council on\n<s> 7.230 7.300 0.999100\nthe(2) 7.310 7.470 0.945344\ncity 7.480 7.810 0.986688\n[NOISE] 7.81 7.82 1.0\n++UH++ 7.81 7.82 1.0\ncouncil 7.820 8.290 0.999500\n<sil> 8.300 8.530 0.986984\non 8.540 8.960 0.872654\n</s> 8.97 9.1 1.0\nhello\nhello 10.0 10.5 0.5\n";

    #[test]
    fn utterances_words_and_times() {
        let u = parse_pocketsphinx(OUT);
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].text(), "the city council on");
        assert_eq!(
            u[0].words[0],
            Word {
                word: "the".into(),
                start: 7.31,
                end: 7.47,
                prob: 0.945344
            }
        );
        assert_eq!(u[0].words[3].start, 8.54);
        assert_eq!(u[1].text(), "hello");
        assert_eq!(u[1].words[0].end, 10.5);
    }

    #[test]
    fn junk_is_ignored() {
        assert!(parse_pocketsphinx("").is_empty());
        assert!(parse_pocketsphinx("a b c d\nx 1 2 nan\n(2) 1 2 0.5\n").is_empty());
        assert_eq!(clean_word("read(12)").as_deref(), Some("read"));
        assert_eq!(clean_word("f(x)").as_deref(), Some("f(x)"));
        assert_eq!(clean_word("<sil>"), None);
    }
}
