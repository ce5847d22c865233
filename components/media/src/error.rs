//! The crate's error type; each variant mirrors a case of the WIT `media-error`.

/// Why a media operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a well-formed segment or init segment.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Well-formed, but a codec or feature we do not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The track is encrypted and must not be decoded.
    #[error("encrypted: {0}")]
    Encrypted(String),
    /// A size, count or depth limit was hit.
    #[error("limit: {0}")]
    Limit(String),
    /// Encoding, decoding or mixing failed for a reason other than the input's shape.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand constructors, used throughout the parsers.
impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
    pub(crate) fn unsupported(msg: impl Into<String>) -> Self {
        Error::Unsupported(msg.into())
    }
    pub(crate) fn limit(msg: impl Into<String>) -> Self {
        Error::Limit(msg.into())
    }
    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }
}
