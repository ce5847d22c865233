//! Outbound HTTP for guests: Spin's `allowed_outbound_hosts` allowlist and the request sender
//! behind `wasi:http/outgoing-handler`, with connect / first-byte / between-bytes timeouts taken
//! from the guest's `request-options` and capped by host maxima.

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::Bytes;
use http::uri::Scheme;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Host maximum for establishing a TCP connection.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Host maximum for the response head to arrive after the request is sent.
pub const MAX_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// Host maximum between two frames of the response body.
pub const MAX_BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// Scheme part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SchemePattern {
    Any,
    Exact(String),
}

/// Host part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    /// `*.example.com`: any subdomain (not the domain itself), stored as `.example.com`.
    Subdomain(String),
    Exact(String),
}

/// Port part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PortMatch {
    Any,
    Range(u16, u16),
}

/// One `allowed_outbound_hosts` entry: `scheme://host[:port]` where scheme may be `*`, host may
/// be `*` or `*.domain`, port may be `*`, a number or a range `a..b` (end exclusive, as in Spin).
/// Without a port the scheme's default port is meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: SchemePattern,
    host: HostMatch,
    port: PortMatch,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl HostPattern {
    /// Parse a pattern as written in the manifest.
    pub fn parse(pattern: &str) -> Result<Self> {
        let (scheme, rest) = pattern
            .split_once("://")
            .ok_or_else(|| anyhow!("`{pattern}` must look like `scheme://host:port`"))?;
        let scheme_pat = match scheme {
            "*" => SchemePattern::Any,
            s if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) =>
            {
                SchemePattern::Exact(s.to_ascii_lowercase())
            }
            _ => bail!("`{pattern}`: invalid scheme `{scheme}`"),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        ensure!(
            !rest.contains('/') && !rest.contains('?') && !rest.contains('#'),
            "`{pattern}`: paths are not allowed, only `scheme://host:port`"
        );
        ensure!(!rest.contains('@'), "`{pattern}`: user info is not allowed");
        let (host, port) = split_host_port(rest)
            .ok_or_else(|| anyhow!("`{pattern}`: cannot split host and port"))?;
        ensure!(!host.is_empty(), "`{pattern}`: empty host");
        let host_pat = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            ensure!(
                valid_host(domain) && !domain.contains('*'),
                "`{pattern}`: invalid host `{host}`"
            );
            HostMatch::Subdomain(format!(".{}", domain.to_ascii_lowercase()))
        } else {
            ensure!(valid_host(host), "`{pattern}`: invalid host `{host}`");
            HostMatch::Exact(host.to_ascii_lowercase())
        };
        let port_pat = match port {
            None => {
                let SchemePattern::Exact(s) = &scheme_pat else {
                    bail!("`{pattern}`: a port is required when the scheme is `*`");
                };
                let p = default_port(s)
                    .ok_or_else(|| anyhow!("`{pattern}`: scheme `{s}` has no default port"))?;
                PortMatch::Range(p, p)
            }
            Some("*") => PortMatch::Any,
            Some(p) => match p.split_once("..") {
                Some((a, b)) => {
                    let a: u16 = a.parse().with_context(|| format!("`{pattern}`: port"))?;
                    let b: u16 = b.parse().with_context(|| format!("`{pattern}`: port"))?;
                    ensure!(a < b, "`{pattern}`: empty port range");
                    PortMatch::Range(a, b - 1)
                }
                None => {
                    let p: u16 = p.parse().with_context(|| format!("`{pattern}`: port"))?;
                    PortMatch::Range(p, p)
                }
            },
        };
        Ok(Self {
            scheme: scheme_pat,
            host: host_pat,
            port: port_pat,
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this pattern. `host` is compared
    /// case-insensitively; IPv6 hosts are given without brackets.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = match &self.scheme {
            SchemePattern::Any => true,
            SchemePattern::Exact(s) => s.eq_ignore_ascii_case(scheme),
        };
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostMatch::Any => true,
            HostMatch::Subdomain(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            HostMatch::Exact(h) => h.trim_start_matches('[').trim_end_matches(']') == host,
        };
        let port_ok = match self.port {
            PortMatch::Any => true,
            PortMatch::Range(a, b) => (a..=b).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// Split `host[:port]`, handling `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let host = &s[..=end];
        let rest = &s[end + 1..];
        return match rest.strip_prefix(':') {
            Some(port) => Some((host, Some(port))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => {
            if h.contains(':') {
                return None;
            }
            Some((h, Some(p)))
        }
        None => Some((s, None)),
    }
}

fn valid_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// A component's outbound allowlist.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    patterns: Vec<HostPattern>,
}

impl AllowList {
    /// Parse every pattern; an empty list allows nothing.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let patterns = patterns
            .iter()
            .map(|p| HostPattern::parse(p))
            .collect::<Result<_>>()?;
        Ok(Self { patterns })
    }

    /// Whether the absolute request URI may be fetched.
    pub fn allows_uri(&self, uri: &http::Uri) -> bool {
        let Some(scheme) = uri.scheme_str() else {
            return false;
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let Some(port) = uri.port_u16().or_else(|| default_port(scheme)) else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.patterns.iter().any(|p| p.allows(scheme, host, port))
    }
}

/// Effective timeouts for one outbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect (and HTTP handshake).
    pub connect: Duration,
    /// Until the response head arrives.
    pub first_byte: Duration,
    /// Between response body frames.
    pub between_bytes: Duration,
}

impl Timeouts {
    /// The guest's request options capped by the host maxima; unset options get the maxima.
    pub fn from_options(options: Option<RequestOptions>) -> Self {
        let opt = options.unwrap_or_default();
        let cap = |v: Option<Duration>, max: Duration| v.map_or(max, |v| v.min(max));
        Self {
            connect: cap(opt.connect_timeout, MAX_CONNECT_TIMEOUT),
            first_byte: cap(opt.first_byte_timeout, MAX_FIRST_BYTE_TIMEOUT),
            between_bytes: cap(opt.between_bytes_timeout, MAX_BETWEEN_BYTES_TIMEOUT),
        }
    }
}

/// `WasiHttpHooks` for one request's store: enforces the allowlist and sends plain HTTP/1.1.
pub struct OutboundHooks {
    /// Component id, for logs.
    pub component: Arc<str>,
    /// The component's allowlist.
    pub allow: Arc<AllowList>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let uri = request.uri().clone();
        if !self.allow.allows_uri(&uri) {
            eprintln!(
                "dubhost: outbound request denied for component `{}`: {}://{} is not in \
                 allowed_outbound_hosts",
                self.component,
                uri.scheme_str().unwrap_or("?"),
                uri.authority().map(|a| a.as_str()).unwrap_or("?"),
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let timeouts = Timeouts::from_options(options);
        if uri.scheme() == Some(&Scheme::HTTPS) {
            // TLS (rustls + ring, webpki roots) via wasmtime-wasi-http's sender, with the same
            // capped timeouts; the allowlist was checked above.
            let opts = RequestOptions {
                connect_timeout: Some(timeouts.connect),
                first_byte_timeout: Some(timeouts.first_byte),
                between_bytes_timeout: Some(timeouts.between_bytes),
            };
            return Box::new(async move {
                let (res, io) =
                    wasmtime_wasi_http::default_send_request(request, Some(opts)).await?;
                Ok((
                    res.map(http_body_util::BodyExt::boxed_unsync),
                    Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ))
            });
        }
        Box::new(async move {
            let (res, io) = send_http1(request, timeouts).await?;
            Ok((
                res.map(http_body_util::BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

/// Send one plain-`http` request over a fresh HTTP/1.1 connection (https goes through
/// wasmtime-wasi-http's TLS sender).
async fn send_http1(
    mut req: http::Request<WasiBody>,
    timeouts: Timeouts,
) -> Result<
    (
        http::Response<TimedBody>,
        impl Future<Output = Result<(), HttpError>> + Send,
    ),
    HttpError,
> {
    let uri = req.uri().clone();
    if uri.scheme() != Some(&Scheme::HTTP) {
        eprintln!("dubhost: outbound {uri}: only http:// is supported by this dubhost build");
        return Err(HttpError::InternalError(Some(
            "only http:// outbound requests are supported by dubhost".to_string(),
        )));
    }
    let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?;
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let stream = match tokio::time::timeout(timeouts.connect, TcpStream::connect(&addr)).await {
        Ok(stream) => stream.map_err(HttpError::Connect)?,
        Err(_) => return Err(HttpError::ConnectionTimeout),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = tokio::time::timeout(
        timeouts.connect,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;

    // The request line carries only the path; the authority goes in the Host header, which
    // wasmtime-wasi-http has already set.
    *req.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let send = tokio::time::timeout(timeouts.first_byte, sender.send_request(req));
    let mut send = std::pin::pin!(send);
    let mut conn = Some(Box::pin(conn));
    // Drive the connection while waiting for the response head.
    let res = std::future::poll_fn(|cx| {
        if let Poll::Ready(res) = send.as_mut().poll(cx) {
            return Poll::Ready(
                res.map_err(|_| HttpError::ConnectionReadTimeout)
                    .and_then(|r| r.map_err(HttpError::from)),
            );
        }
        let Some(c) = conn.as_mut() else {
            return Poll::Pending;
        };
        let done = ready!(c.as_mut().poll(cx));
        conn = None;
        match done {
            // The connection ended cleanly: the response is ready or never comes.
            Ok(()) => send.as_mut().poll(cx).map(|res| {
                res.map_err(|_| HttpError::ConnectionReadTimeout)
                    .and_then(|r| r.map_err(HttpError::from))
            }),
            Err(e) => Poll::Ready(Err(HttpError::from(e))),
        }
    })
    .await?;
    let res = res.map(|incoming| TimedBody::new(incoming, timeouts.between_bytes));
    Ok((res, async move {
        let Some(conn) = conn else {
            return Ok(());
        };
        match conn.await {
            Ok(()) => Ok(()),
            Err(e) if e.is_timeout() => Err(HttpError::HttpResponseTimeout),
            Err(e) => Err(e.into()),
        }
    }))
}

/// A response body that fails with `ConnectionReadTimeout` when no frame arrives in time.
pub struct TimedBody {
    incoming: Incoming,
    between_bytes: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl TimedBody {
    fn new(incoming: Incoming, between_bytes: Duration) -> Self {
        Self {
            incoming,
            between_bytes,
            sleep: Box::pin(tokio::time::sleep(between_bytes)),
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                HttpError::from(e)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + this.between_bytes;
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(this.sleep.as_mut().poll(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(patterns: &[&str]) -> AllowList {
        AllowList::new(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ok(list: &AllowList, url: &str) -> bool {
        list.allows_uri(&url.parse::<http::Uri>().unwrap())
    }

    #[test]
    fn loopback_wildcard_ports() {
        let l = allow(&["http://127.0.0.1:*", "http://localhost:*"]);
        assert!(ok(&l, "http://127.0.0.1:8081/a.m3u8"));
        assert!(ok(&l, "http://127.0.0.1/x")); // default port 80 is within `*`
        assert!(ok(&l, "http://LOCALHOST:9/x"));
        assert!(!ok(&l, "https://127.0.0.1:8081/x"));
        assert!(!ok(&l, "http://127.0.0.2:8081/x"));
        assert!(!ok(&l, "http://localhost.evil.com:80/x"));
        assert!(!ok(&l, "http://evil.com/?u=http://127.0.0.1:1"));
    }

    #[test]
    fn default_ports_exact_ports_and_ranges() {
        let l = allow(&[
            "https://api.openai.com",
            "http://stt.local:8090",
            "http://h:8000..8002",
        ]);
        assert!(ok(&l, "https://api.openai.com/v1/audio/speech"));
        assert!(ok(&l, "https://api.openai.com:443/v1"));
        assert!(!ok(&l, "https://api.openai.com:8443/v1"));
        assert!(!ok(&l, "http://api.openai.com/v1"));
        assert!(ok(&l, "http://stt.local:8090/"));
        assert!(!ok(&l, "http://stt.local:8091/"));
        assert!(ok(&l, "http://h:8000/"));
        assert!(ok(&l, "http://h:8001/"));
        assert!(!ok(&l, "http://h:8002/"));
    }

    #[test]
    fn host_and_scheme_wildcards() {
        let l = allow(&["https://*.deepl.com", "*://origin.example:*"]);
        assert!(ok(&l, "https://api-free.deepl.com/v2/translate"));
        assert!(ok(&l, "https://a.b.deepl.com/"));
        assert!(!ok(&l, "https://deepl.com/"));
        assert!(!ok(&l, "https://evildeepl.com/"));
        assert!(ok(&l, "http://origin.example:1234/"));
        assert!(ok(&l, "https://origin.example/"));
        let all = allow(&["*://*:*"]);
        assert!(ok(&all, "http://anything:1/"));
        assert!(ok(&all, "https://anything/"));
    }

    #[test]
    fn empty_list_denies_and_ipv6_works() {
        assert!(!ok(&allow(&[]), "http://127.0.0.1:80/"));
        let l = allow(&["http://[::1]:*"]);
        assert!(ok(&l, "http://[::1]:8080/"));
        assert!(!ok(&l, "http://[::2]:8080/"));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        for bad in [
            "localhost",
            "127.0.0.1:80",
            "http://",
            "http://h/path",
            "http://h:port",
            "http://h:70000",
            "http://h:9..9",
            "*://h",
            "ftp://h",
            "http://u@h:80",
            "http://*.:80",
            "http://a b:80",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        HostPattern::parse("http://h:80/").unwrap();
    }

    #[test]
    fn timeouts_are_capped() {
        let t = Timeouts::from_options(None);
        assert_eq!(t.connect, MAX_CONNECT_TIMEOUT);
        assert_eq!(t.first_byte, MAX_FIRST_BYTE_TIMEOUT);
        let t = Timeouts::from_options(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(60)),
            first_byte_timeout: Some(Duration::from_millis(1500)),
            between_bytes_timeout: None,
        }));
        assert_eq!(t.connect, MAX_CONNECT_TIMEOUT);
        assert_eq!(t.first_byte, Duration::from_millis(1500));
        assert_eq!(t.between_bytes, MAX_BETWEEN_BYTES_TIMEOUT);
    }

    mod send {
        use super::super::*;
        use http_body_util::{BodyExt, Empty};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpListener;

        fn hooks(patterns: &[&str]) -> OutboundHooks {
            OutboundHooks {
                component: Arc::from("test"),
                allow: Arc::new(
                    AllowList::new(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                        .unwrap(),
                ),
            }
        }

        fn get(url: &str) -> http::Request<WasiBody> {
            let uri: http::Uri = url.parse().unwrap();
            let host = uri.authority().unwrap().to_string();
            http::Request::get(uri)
                .header(http::header::HOST, host)
                .body(
                    Empty::<Bytes>::new()
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )
                .unwrap()
        }

        async fn send(
            hooks: &mut OutboundHooks,
            req: http::Request<WasiBody>,
            options: Option<RequestOptions>,
        ) -> Result<http::Response<WasiBody>, HttpError> {
            let fut = hooks.send_request(req, options, Box::new(async { Ok(()) }));
            let (resp, io) = Box::into_pin(fut).await?;
            tokio::spawn(Box::into_pin(io));
            Ok(resp)
        }

        /// A server that reads one request head, hands it back, and writes `reply`.
        async fn one_shot(reply: &'static [u8]) -> (u16, tokio::task::JoinHandle<String>) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let task = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0, "client closed early");
                    head.extend_from_slice(&buf[..n]);
                }
                s.write_all(reply).await.unwrap();
                // Hold the connection open (stalling servers) until the client gives up.
                let _ = s.read(&mut buf).await;
                String::from_utf8(head).unwrap()
            });
            (port, task)
        }

        #[tokio::test]
        async fn allowed_request_goes_out_with_path_only_and_reads_the_body() {
            let (port, server) =
                one_shot(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                    .await;
            let mut h = hooks(&["http://127.0.0.1:*"]);
            let resp = send(
                &mut h,
                get(&format!("http://127.0.0.1:{port}/seg/1.m4s?x=1")),
                None,
            )
            .await
            .unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"hello");
            let head = server.await.unwrap();
            assert!(
                head.starts_with("GET /seg/1.m4s?x=1 HTTP/1.1\r\n"),
                "{head}"
            );
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("host: 127.0.0.1:{port}")),
                "{head}"
            );
        }

        #[tokio::test]
        async fn denied_and_https_requests_never_connect() {
            let mut h = hooks(&["http://127.0.0.1:1", "https://127.0.0.1:*"]);
            let err = send(&mut h, get("http://127.0.0.2:80/"), None)
                .await
                .unwrap_err();
            assert!(matches!(err, HttpError::HttpRequestDenied), "{err}");
            let err = send(&mut h, get("http://localhost:1/"), None)
                .await
                .unwrap_err();
            assert!(matches!(err, HttpError::HttpRequestDenied), "{err}");
            // https is allowed here and goes through TLS: nothing listens on :9, so it is
            // refused at connect, never sent in clear.
            let err = send(&mut h, get("https://127.0.0.1:9/"), None)
                .await
                .unwrap_err();
            assert!(!matches!(err, HttpError::HttpRequestDenied), "{err}");
        }

        #[tokio::test]
        async fn first_byte_and_between_bytes_timeouts_fire() {
            let mut h = hooks(&["http://127.0.0.1:*"]);
            let opts = Some(RequestOptions {
                connect_timeout: None,
                first_byte_timeout: Some(Duration::from_millis(200)),
                between_bytes_timeout: Some(Duration::from_millis(200)),
            });

            // No response head at all.
            let (port, _server) = one_shot(b"").await;
            let t0 = std::time::Instant::now();
            let err = send(&mut h, get(&format!("http://127.0.0.1:{port}/")), opts)
                .await
                .unwrap_err();
            assert!(matches!(err, HttpError::ConnectionReadTimeout), "{err}");
            assert!(t0.elapsed() < Duration::from_secs(3));

            // A head and 2 of 10 body bytes, then silence.
            let (port, _server) =
                one_shot(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab").await;
            let resp = send(&mut h, get(&format!("http://127.0.0.1:{port}/")), opts)
                .await
                .unwrap();
            let mut body = resp.into_body();
            let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(&first[..], b"ab");
            let t0 = std::time::Instant::now();
            let err = body.frame().await.unwrap().unwrap_err();
            assert!(matches!(err, HttpError::ConnectionReadTimeout), "{err}");
            assert!(t0.elapsed() >= Duration::from_millis(150));
            assert!(t0.elapsed() < Duration::from_secs(3));
        }

        #[tokio::test]
        async fn refused_connection_is_a_connect_error() {
            // Bind then drop to get a port nobody listens on.
            let port = TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut h = hooks(&["http://127.0.0.1:*"]);
            let err = send(&mut h, get(&format!("http://127.0.0.1:{port}/")), None)
                .await
                .unwrap_err();
            assert!(matches!(err, HttpError::Connect(_)), "{err}");
        }
    }
}
