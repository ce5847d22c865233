//! Errors of the edge logic.

/// Everything that can go wrong at the edge, each mapped to a client-safe status and message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad or missing configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The request is malformed (bad path, bad query, bad ref encoding).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The ref's signature does not verify.
    #[error("ref not signed by this edge")]
    BadSignature,
    /// The origin is not on the allowlist.
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The origin failed or sent something unusable.
    #[error("origin error: {0}")]
    Origin(String),
    /// A playlist could not be parsed.
    #[error("playlist: {0}")]
    Playlist(String),
    /// The origin did not answer in time.
    #[error("origin timed out")]
    OriginTimeout,
    /// No such route.
    #[error("not found")]
    NotFound,
    /// Only GET and HEAD are served.
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl Error {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::BadSignature | Error::OriginNotAllowed => 403,
            Error::NotFound => 404,
            Error::MethodNotAllowed => 405,
            Error::Config(_) => 500,
            Error::Origin(_) | Error::Playlist(_) => 502,
            Error::OriginTimeout => 504,
        }
    }

    /// Short message safe to show a client: no URLs, paths, keys or internal details.
    ///
    /// Messages inside `BadRequest` and `Origin` are written by this crate (never copied from
    /// input), so they are passed on; configuration and playlist details are not.
    pub fn public_message(&self) -> String {
        match self {
            Error::BadRequest(m) => format!("bad request: {m}"),
            Error::BadSignature => "invalid ref".into(),
            Error::OriginNotAllowed => "origin not allowed".into(),
            Error::Origin(m) => format!("origin error: {m}"),
            Error::Playlist(_) => "origin sent an unusable playlist".into(),
            Error::OriginTimeout => "origin timed out".into(),
            Error::NotFound => "not found".into(),
            Error::MethodNotAllowed => "method not allowed".into(),
            Error::Config(_) => "edge misconfigured".into(),
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
