//! The outbound HTTP abstraction the edge logic is written against.
//!
//! In the component it is WASI `outgoing-handler` with deadlines; in tests it is a plain
//! client talking to local servers that speak each provider's wire format.

use std::time::{Duration, Instant};

/// HTTP method of an outbound request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
}

/// An outbound request, fully buffered.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Header name/value pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for GET).
    pub body: Vec<u8>,
}

/// A buffered response.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header name/value pairs (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Bounds on one outbound call.
#[derive(Clone, Copy, Debug)]
pub struct FetchLimits {
    /// The call fails with [`HttpError::Timeout`] once this instant passes.
    pub deadline: Instant,
    /// The call fails with [`HttpError::TooLarge`] past this many body bytes.
    pub max_body: usize,
}

/// Per-phase timeouts of one outbound call, each on top of [`FetchLimits::deadline`] (whichever
/// comes first wins). `None` leaves that phase bounded by the deadline alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the connection (TCP, TLS).
    pub connect: Option<Duration>,
    /// From sending the request until the response head arrives.
    pub first_byte: Option<Duration>,
    /// Longest silence between two chunks of the response body.
    pub between_bytes: Option<Duration>,
}

/// Why an outbound call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Connection refused, DNS, TLS or protocol error.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// The body exceeded the size cap.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The host refused the destination (not in allowed outbound hosts).
    #[error("destination not allowed: {0}")]
    Forbidden(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Sends buffered HTTP requests under a deadline and a size cap.
pub trait HttpClient {
    /// Send one request. Must return by `limits.deadline` (plus a small scheduling slack).
    fn send(&self, req: &HttpRequest, limits: &FetchLimits) -> Result<HttpResponse, HttpError>;

    /// [`send`](Self::send) with per-phase timeouts as well. A client that cannot tell the
    /// phases apart keeps this default, which enforces the deadline only.
    fn send_timed(
        &self,
        req: &HttpRequest,
        limits: &FetchLimits,
        timeouts: &Timeouts,
    ) -> Result<HttpResponse, HttpError> {
        let _ = timeouts;
        self.send(req, limits)
    }

    /// The key-value store that provider results, circuit breakers and retry budgets live in,
    /// if the platform gives one (see [`crate::kv::WithKv`]). It rides on the client because
    /// both are the platform's outbound services, and the router hands the client through.
    fn kv(&self) -> Option<&dyn crate::kv::Kv> {
        None
    }
}
