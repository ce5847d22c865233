//! Sentences across segment edges.
//!
//! Each segment is transcribed on its own (so the content-addressed cache serves the same
//! transcript to the segment itself and to both neighbours), and the pipeline sees a *window*:
//! the previous segment's transcript as context, this segment's, and, when the ref names the
//! next segment (VOD, or a live segment that is not at the live edge), the next one's. The words
//! of the three are merged on this segment's timeline and grouped into sentences there, so a
//! sentence cut by a segment edge is one sentence again.
//!
//! Which segment voices a sentence:
//! - A sentence *belongs* to the segment in which it ends. It is translated as a whole.
//! - With lookahead, a sentence that starts here and ends in the next segment is also voiced
//!   here, at its source start: this segment plays its beginning, the next segment (which computes
//!   the same voice, from the same transcripts) plays the rest, placed at the same source start
//!   (before its own start, so the mix keeps only its part).
//! - Without lookahead (a live segment at the live edge), a sentence that started in the
//!   previous segment was not voiced there: it is placed at this segment's start instead.
//!
//! Words that two transcripts both report (a word cut by the edge is heard by both recognisers)
//! are kept once: each transcript keeps only the words whose midpoint falls in its own segment.

use crate::providers::{Transcript, Utterance, Word};

/// How far a sentence may reach back into the previous segment and still be voiced: older
/// context only helps to find where the sentence starts.
pub const MAX_REACH_BACK_S: f64 = 30.0;

/// The same word from two transcripts this close together (seconds) is one word heard twice.
pub const EDGE_DUPLICATE_GAP_S: f64 = 0.15;

/// Without lookahead, speech ending this close to the segment end (seconds) without
/// sentence-final punctuation is left to the next segment.
pub const UNFINISHED_WITHIN_S: f64 = crate::providers::UTTERANCE_GAP_S;

/// Whether a sentence's text ends with sentence-final punctuation (closing quotes aside).
fn ends_sentence(text: &str) -> bool {
    text.trim_end()
        .trim_end_matches(['"', '\'', ')', '»', '”', '’'])
        .ends_with(['.', '!', '?', '…', '。', '！', '？'])
}

/// The transcripts around one segment, times relative to each transcript's own audio.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    /// The previous segment's transcript and its length in seconds.
    pub prev: Option<(&'a Transcript, f64)>,
    /// This segment's transcript.
    pub this: &'a Transcript,
    /// This segment's length in seconds.
    pub this_secs: f64,
    /// The next segment's transcript (lookahead).
    pub next: Option<&'a Transcript>,
}

/// A sentence to voice in this segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// The sentence, times on this segment's timeline (seconds; negative in the previous
    /// segment, past `this_secs` in the next).
    pub utterance: Utterance,
    /// Where its voice starts on this segment's timeline (its source start, or 0.0 when it
    /// started in a previous segment that could not voice it).
    pub place_at: f64,
    /// Where its voice must end: the next sentence's start, or [`PAUSE_S`] after its own end,
    /// whichever is first. The voice may use the pause after the sentence but never runs over
    /// the next one. Computed from the window's sentences only, so both segments that voice a
    /// sentence (its beginning and its end) compute the same slot.
    pub slot_end: f64,
}

/// How much of the pause after a sentence its voice may use.
pub const PAUSE_S: f64 = 1.0;
impl Window<'_> {
    /// Seconds of context before this segment's start on the merged timeline (the merged
    /// transcript's times start at the previous segment's start, so none is negative).
    pub fn origin(&self) -> f64 {
        self.prev.map_or(0.0, |(_, secs)| secs)
    }
}

/// A transcript's words with the punctuation that follows each in its full text attached (the
/// recognisers that give punctuation put it in the text, not in the words), so the merged
/// transcript can be split into sentences without its source texts.
fn punctuated(t: &Transcript) -> Vec<Word> {
    let text = t.text.as_str();
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` index `text`.
    let lower = text.to_ascii_lowercase();
    let mut cursor = 0usize;
    t.words
        .iter()
        .map(|w| {
            let raw = w.word.trim();
            let mut token = raw.to_string();
            let core = raw.trim_matches(|c: char| !c.is_alphanumeric());
            let needle = core.to_ascii_lowercase();
            if !needle.is_empty()
                && let Some(rest) = lower.get(cursor..)
                && let Some(pos) = rest.find(&needle)
                && pos <= 64
            {
                let end = cursor + pos + needle.len();
                let after = text.get(end..).unwrap_or("");
                let n = after
                    .find(|c: char| c.is_whitespace() || c.is_alphanumeric())
                    .unwrap_or(after.len());
                let punct = &after[..n];
                if !punct.is_empty() && !raw.ends_with(punct) {
                    token.push_str(punct);
                }
                cursor = end + n;
            }
            Word {
                word: token,
                ..w.clone()
            }
        })
        .collect()
}

/// Merge the window's transcripts onto one timeline that starts at the previous segment's start
/// ([`Window::origin`] seconds before this segment's start); see the module docs.
pub fn merge(w: &Window<'_>) -> Transcript {
    let origin = w.origin();
    // (source transcript, word)
    let mut words: Vec<(u8, Word)> = Vec::new();
    let mut push = |src: u8, t: &Transcript, offset: f64, keep: &dyn Fn(f64) -> bool| {
        for word in punctuated(t) {
            let mid = (word.start + word.end) / 2.0;
            if !(mid.is_finite() && keep(mid)) {
                continue;
            }
            words.push((
                src,
                Word {
                    start: word.start + offset,
                    end: word.end + offset,
                    ..word
                },
            ));
        }
    };
    if let Some((p, secs)) = w.prev {
        // Only words in the previous segment (its recogniser may report past its end).
        push(0, p, 0.0, &|mid| mid < secs);
    }
    let this_secs = w.this_secs;
    push(1, w.this, origin, &|mid| (0.0..this_secs).contains(&mid));
    if let Some(n) = w.next {
        push(2, n, origin + this_secs, &|mid| mid >= 0.0);
    }
    words.sort_by(|a, b| a.1.start.total_cmp(&b.1.start));
    // A word cut by an edge may be heard by both recognisers: the same word from two
    // transcripts, back to back, is kept once (the longer one).
    let core = |w: &Word| {
        w.word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let mut deduped: Vec<(u8, Word)> = Vec::with_capacity(words.len());
    for (src, word) in words {
        if let Some((psrc, prev)) = deduped.last_mut()
            && *psrc != src
            && word.start - prev.end < EDGE_DUPLICATE_GAP_S
            && core(prev) == core(&word)
        {
            if word.end - word.start > prev.end - prev.start {
                (*psrc, *prev) = (src, word);
            }
            continue;
        }
        deduped.push((src, word));
    }
    let words: Vec<Word> = deduped.into_iter().map(|(_, w)| w).collect();
    Transcript {
        text: words
            .iter()
            .map(|w| w.word.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        language: w.this.language.clone(),
        duration: None,
        words,
        segments: Vec::new(),
    }
}

/// How the segments around this one were voiced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modes {
    /// This segment has the next one's transcript (it voices sentences that spill over).
    pub lookahead: bool,
    /// The previous segment had lookahead: it voiced the beginnings of sentences that spill into
    /// this one (when it did not, such a sentence is voiced here, from this segment's start).
    pub prev_lookahead: bool,
}

/// [`merge`], group into sentences, and [`plan`]: the sentences this segment voices.
pub fn plan_window(w: &Window<'_>, modes: Modes) -> Vec<Planned> {
    plan(merge(w).utterances(), w.origin(), w.this_secs, modes)
}

/// The sentences this segment voices, in order, given the window's sentences (on this segment's
/// timeline) and whether the next segment was in the window (see the module docs).
///
/// Besides the sentences that end here and, with lookahead, those that start here and end in the
/// next segment, a sentence that ended in the previous segment is voiced again when its slot
/// reaches into this segment: its voice's tail plays here, at the same placement.
///
/// `utterances` are on the merged timeline, `origin` seconds before this segment's start.
pub fn plan(utterances: Vec<Utterance>, origin: f64, this_secs: f64, modes: Modes) -> Vec<Planned> {
    let Modes {
        lookahead,
        prev_lookahead,
    } = modes;
    let utterances: Vec<Utterance> = utterances
        .into_iter()
        .map(|u| Utterance {
            start: u.start - origin,
            end: u.end - origin,
            ..u
        })
        .collect();
    let starts: Vec<f64> = utterances.iter().map(|u| u.start).collect();
    let mut out = Vec::new();
    for (i, u) in utterances.into_iter().enumerate() {
        if u.start < -MAX_REACH_BACK_S {
            continue;
        }
        let next_start = starts
            .iter()
            .skip(i + 1)
            .copied()
            .find(|&s| s > u.start)
            .unwrap_or(f64::INFINITY);
        // Without lookahead, speech that ran into a segment's end with no sentence-final
        // punctuation is taken as unfinished there (see `deferred`).
        let unfinished_at = |edge: f64, had_lookahead: bool| {
            !had_lookahead
                && u.end > edge - UNFINISHED_WITHIN_S
                && u.end <= edge + 1e-9
                && !ends_sentence(&u.text)
        };
        if unfinished_at(this_secs, lookahead) {
            // The next segment voices it whole.
            continue;
        }
        // Started in the previous segment, which did not voice it: voice it from our start.
        let deferred = u.start < 0.0
            && ((!prev_lookahead && u.end > 0.0) || unfinished_at(0.0, prev_lookahead));
        let place_at = if deferred { 0.0 } else { u.start };
        let mut slot_end = next_start.min(u.end + PAUSE_S);
        if deferred {
            slot_end = slot_end.max(place_at + (u.end - u.start));
        }
        let ends_here = u.end > 0.0 && u.end <= this_secs;
        let starts_here = u.start >= 0.0 && u.start < this_secs;
        let spills_over = lookahead && starts_here && u.end > this_secs;
        let tail_here = u.end <= 0.0 && slot_end > 0.0 && !deferred;
        if ends_here || spills_over || tail_here || (deferred && u.end > 0.0) {
            out.push(Planned {
                utterance: u,
                place_at,
                slot_end,
            });
        } else if deferred && u.end <= 0.0 {
            // Finished in the previous segment but left to us (unfinished there): from 0.
            out.push(Planned {
                slot_end: place_at + (u.end - u.start) + PAUSE_S,
                utterance: u,
                place_at,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Modes = Modes {
        lookahead: true,
        prev_lookahead: true,
    };
    const NONE: Modes = Modes {
        lookahead: false,
        prev_lookahead: false,
    };

    fn t(text: &str, words: &[(&str, f64, f64)]) -> Transcript {
        Transcript {
            text: text.into(),
            words: words
                .iter()
                .map(|&(w, s, e)| Word {
                    word: w.into(),
                    start: s,
                    end: e,
                    speaker: None,
                })
                .collect(),
            ..Transcript::default()
        }
    }

    /// A sentence "the ship is leaving now." spoken from 5.0 to 7.4 s of a stream cut in 6 s
    /// segments, then "come aboard." from 8.0 to 9.0 s; segment 0 also opens with "hello.".
    fn stream() -> [Transcript; 2] {
        let s0 = t(
            "Hello. The ship is",
            &[
                ("Hello.", 0.5, 1.0),
                ("The", 5.0, 5.2),
                ("ship", 5.3, 5.6),
                ("is", 5.7, 5.95),
            ],
        );
        // The second recogniser also hears the tail of "is": kept once.
        let s1 = t(
            "is leaving now. Come aboard.",
            &[
                ("is", -0.0, 0.02),
                ("leaving", 0.1, 0.6),
                ("now.", 0.7, 1.4),
                ("Come", 2.0, 2.4),
                ("aboard.", 2.5, 3.0),
            ],
        );
        [s0, s1]
    }

    fn texts(p: &[Planned]) -> Vec<(&str, f64)> {
        p.iter()
            .map(|p| (p.utterance.text.as_str(), p.place_at))
            .collect()
    }

    #[test]
    fn a_sentence_cut_by_the_edge_is_one_sentence_voiced_at_its_source_start() {
        let [s0, s1] = stream();
        // Segment 0 with lookahead: it voices "hello." and the sentence spilling over, at 5.0.
        let w0 = Window {
            prev: None,
            this: &s0,
            this_secs: 6.0,
            next: Some(&s1),
        };
        let merged = merge(&w0);
        let p0 = plan_window(&w0, BOTH);
        assert_eq!(
            texts(&p0),
            [("Hello.", 0.5), ("The ship is leaving now.", 5.0)]
        );
        // The "is" both recognisers heard is kept once.
        assert_eq!(merged.words.iter().filter(|w| w.word == "is").count(), 1);

        // Segment 1 with the previous as context: the same sentence (it ends here, so it is
        // this segment's), placed at the same source start (-1.0 s), then "come aboard.".
        let w1 = Window {
            prev: Some((&s0, 6.0)),
            this: &s1,
            this_secs: 6.0,
            next: None,
        };
        let p1 = plan_window(&w1, BOTH);
        assert_eq!(
            texts(&p1),
            [("The ship is leaving now.", -1.0), ("Come aboard.", 2.0)]
        );
        assert_eq!(p0[1].utterance.text, p1[0].utterance.text);
        assert!((p0[1].utterance.start - 6.0 - p1[0].utterance.start).abs() < 1e-9);
        // Both compute the same slot: up to "come aboard." (8.0 s in segment 0's time).
        assert!((p0[1].slot_end - 8.0).abs() < 1e-9 && (p1[0].slot_end - 2.0).abs() < 1e-9);
        // "hello." may use 1 s of the pause after it.
        assert!((p0[0].slot_end - 2.0).abs() < 1e-9);
    }

    #[test]
    fn the_last_segment_of_a_vod_plays_the_rest_of_a_voice_its_predecessor_began() {
        // Segment 1 has no next (end of stream) but segment 0 had it as lookahead and voiced
        // the sentence from 5.0 s: segment 1 places it at the same source start.
        let [s0, s1] = stream();
        let w1 = Window {
            prev: Some((&s0, 6.0)),
            this: &s1,
            this_secs: 6.0,
            next: None,
        };
        let modes = Modes {
            lookahead: false,
            prev_lookahead: true,
        };
        assert_eq!(
            texts(&plan_window(&w1, modes)),
            [("The ship is leaving now.", -1.0), ("Come aboard.", 2.0)]
        );
    }

    #[test]
    fn live_edge_voices_a_sentence_where_the_segment_starts() {
        let [s0, s1] = stream();
        // Segment 0 at the live edge: no lookahead; the unfinished sentence (speech up to the
        // end, no full stop) is left to segment 1.
        let p0 = plan_window(
            &Window {
                prev: None,
                this: &s0,
                this_secs: 6.0,
                next: None,
            },
            NONE,
        );
        assert_eq!(texts(&p0), [("Hello.", 0.5)]);
        // Segment 1 at the live edge: the whole sentence (context from segment 0), at 0.0.
        let p1 = plan_window(
            &Window {
                prev: Some((&s0, 6.0)),
                this: &s1,
                this_secs: 6.0,
                next: None,
            },
            NONE,
        );
        assert_eq!(
            texts(&p1),
            [("The ship is leaving now.", 0.0), ("Come aboard.", 2.0)]
        );
    }

    #[test]
    fn the_tail_of_a_voice_from_the_previous_segment_plays_here() {
        // "Goodbye." ends 0.3 s before this segment: its slot (1 s of pause) reaches 0.7 s in.
        let prev = t("Goodbye.", &[("Goodbye.", 5.2, 5.7)]);
        let this = t("", &[]);
        for lookahead in [true, false] {
            let p = plan_window(
                &Window {
                    prev: Some((&prev, 6.0)),
                    this: &this,
                    this_secs: 6.0,
                    next: None,
                },
                Modes {
                    lookahead,
                    prev_lookahead: lookahead,
                },
            );
            assert_eq!(p.len(), 1, "{lookahead}");
            assert_eq!(p[0].utterance.text, "Goodbye.");
            assert!((p[0].place_at + 0.8).abs() < 1e-9 && (p[0].slot_end - 0.7).abs() < 1e-9);
        }
    }

    #[test]
    fn sentences_of_the_neighbours_are_not_voiced_here() {
        let prev = t(
            "Earlier words.",
            &[("Earlier", 1.0, 1.5), ("words.", 1.6, 2.0)],
        );
        let this = t("", &[]);
        let next = t("Later.", &[("Later.", 0.5, 1.0)]);
        let p = plan_window(
            &Window {
                prev: Some((&prev, 6.0)),
                this: &this,
                this_secs: 6.0,
                next: Some(&next),
            },
            BOTH,
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn hostile_times_are_dropped() {
        let bad = t(
            "x y z",
            &[
                ("x", f64::NAN, 1.0),
                ("y", f64::INFINITY, f64::INFINITY),
                ("z", 1.0, 1.5),
            ],
        );
        let m = merge(&Window {
            prev: Some((&bad, 6.0)),
            this: &bad,
            this_secs: 6.0,
            next: Some(&bad),
        });
        assert!(
            m.words
                .iter()
                .all(|w| w.start.is_finite() && w.end.is_finite())
        );
        assert_eq!(m.words.len(), 3);
    }
}
