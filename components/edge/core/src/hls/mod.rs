//! HLS playlists: a bounded, lossless parser ([`parse`]) and the dubbing rewriter ([`rewrite`]).

pub mod parse;
pub mod rewrite;

pub use parse::{Kind, Line, Playlist, parse};
pub use rewrite::{RewriteCtx, Rewritten, rewrite};
