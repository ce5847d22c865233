//! Local services for dub-edge, backed by Debian's offline engines.
//!
//! - [`serve_speech`]: an HTTP server speaking the OpenAI-compatible STT (`/v1/audio/transcriptions`,
//!   pocketsphinx) and TTS (`/v1/audio/speech`, espeak-ng) wire formats and Apertium APy's
//!   `/translate` and `/listPairs` (apertium), so the whole pipeline runs with no keys and no network.
//! - [`make_sample`]: builds a sample HLS fMP4 stream (English espeak-ng speech over a music bed,
//!   H.264 test pattern) with ffmpeg.
//! - [`serve_origin`]: serves that stream as VOD under `/vod/` and as a looping live sliding window
//!   under `/live/`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! dub_localsvc::serve_speech(listener, dub_localsvc::SpeechOptions::default()).await
//! # }
//! ```
//!
//! This crate is all edge (HTTP handlers and process plumbing), so it reports errors with `anyhow`.
#![forbid(unsafe_code)]

mod http;
mod multipart;
mod origin;
mod pocketsphinx;
mod process;
mod sample;
mod speech;
pub mod wav;

pub use multipart::{MultipartError, Part, parse_multipart};
pub use origin::{
    LiveClock, LiveWindow, OriginOptions, handle_origin, live_media_playlist, serve_origin,
};
pub use pocketsphinx::{Utterance, Word, parse_pocketsphinx};
pub use sample::{SampleInfo, SampleOptions, SampleSentence, make_sample};
pub use speech::{SpeechOptions, SpeechService, serve_speech};

/// True when every named program is found on `PATH` (tests use it to skip without the engines).
pub fn have_programs(names: &[&str]) -> bool {
    names.iter().all(|n| process::find_program(n).is_some())
}
