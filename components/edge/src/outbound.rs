//! [`HttpClient`] over WASI `outgoing-handler` (wasi:http@0.2.0) with real deadlines.
//!
//! Every wait (response head, request body writes, response body reads) polls the operation's
//! pollable together with a monotonic-clock timer at the deadline; if the timer wins the call
//! fails with [`HttpError::Timeout`] and dropping the resources cancels the request. The phase
//! timeouts of [`HttpClient::send_timed`] go to the host as `request-options` (connect,
//! first-byte, between-bytes) and are also enforced here, in case a host ignores them.

use std::time::{Duration, Instant};

use dub_edge_core::http::{
    FetchLimits, HttpClient, HttpError, HttpRequest, HttpResponse, Method, Timeouts,
};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasi::clocks::monotonic_clock;
use wasi::io::poll::{self, Pollable};
use wasi::io::streams::{OutputStream, StreamError};

/// Bytes per request-body write.
const WRITE_CHUNK: u64 = 4096;
/// Bytes per response-body read.
const READ_CHUNK: u64 = 64 * 1024;

/// Outbound HTTP through the host (Spin checks `allowed_outbound_hosts`).
pub struct WasiHttp;

impl HttpClient for WasiHttp {
    fn send(&self, req: &HttpRequest, limits: &FetchLimits) -> Result<HttpResponse, HttpError> {
        self.send_timed(req, limits, &Timeouts::default())
    }

    fn send_timed(
        &self,
        req: &HttpRequest,
        limits: &FetchLimits,
        timeouts: &Timeouts,
    ) -> Result<HttpResponse, HttpError> {
        let result = self.send_inner(req, limits, timeouts);
        if let Err(e) = &result {
            // Operators need to see failing origins and providers. Log scheme, host and path
            // only: queries can carry tokens, and request headers (keys) are never logged.
            let place = url::Url::parse(&req.url)
                .map(|u| {
                    format!(
                        "{}://{}{}",
                        u.scheme(),
                        u.host_str().unwrap_or(""),
                        u.path()
                    )
                })
                .unwrap_or_else(|_| "(invalid URL)".into());
            eprintln!("dub-edge: outbound {:?} {place}: {e}", req.method);
        }
        result
    }
}

impl WasiHttp {
    fn send_inner(
        &self,
        req: &HttpRequest,
        limits: &FetchLimits,
        timeouts: &Timeouts,
    ) -> Result<HttpResponse, HttpError> {
        let remaining = limits.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(HttpError::Timeout);
        }
        let budget_ns = u64::try_from(remaining.as_nanos()).unwrap_or(u64::MAX);
        let deadline = monotonic_clock::now().saturating_add(budget_ns);

        let url = url::Url::parse(&req.url).map_err(|_| HttpError::Other("invalid URL".into()))?;
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(HttpError::Forbidden("only http and https".into())),
        };
        let host = url
            .host_str()
            .ok_or_else(|| HttpError::Other("URL without host".into()))?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let path_with_query = &url[url::Position::BeforePath..url::Position::AfterQuery];

        let fields: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        let headers = Fields::from_list(&fields)
            .map_err(|e| HttpError::Other(format!("bad request header: {e:?}")))?;
        let request = OutgoingRequest::new(headers);
        let method = match req.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
        };
        let bad = |what: &str| HttpError::Other(format!("cannot set {what}"));
        request.set_method(&method).map_err(|()| bad("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| bad("scheme"))?;
        request
            .set_authority(Some(&authority))
            .map_err(|()| bad("authority"))?;
        request
            .set_path_with_query(Some(path_with_query))
            .map_err(|()| bad("path"))?;

        // The host enforces these too, so a stalled origin cannot outlive the deadline even if
        // this guest is not polling at that moment. Hosts may not support them: ignore refusals.
        let phase = |t: Option<Duration>| {
            t.map_or(budget_ns, |d| {
                u64::try_from(d.as_nanos())
                    .unwrap_or(u64::MAX)
                    .min(budget_ns)
            })
        };
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(phase(timeouts.connect)));
        let _ = options.set_first_byte_timeout(Some(phase(timeouts.first_byte)));
        let _ = options.set_between_bytes_timeout(Some(phase(timeouts.between_bytes)));
        // Our own bound on the head: connect plus first byte, as the host counts them.
        let head_deadline = monotonic_clock::now()
            .saturating_add(phase(timeouts.connect))
            .saturating_add(phase(timeouts.first_byte))
            .min(deadline);

        let body = request
            .body()
            .map_err(|()| HttpError::Other("request body unavailable".into()))?;
        let future = outgoing_handler::handle(request, Some(options)).map_err(map_error)?;
        // Write the body after `handle`, so the host is already draining it. An empty body is
        // not touched at all: the server may answer a GET and close before a flush would land,
        // and that must not fail the request.
        let written = if req.body.is_empty() {
            Ok(())
        } else {
            let stream = body
                .write()
                .map_err(|()| HttpError::Other("request body unavailable".into()))?;
            write_all(&stream, &req.body, deadline)
        };
        let finished = OutgoingBody::finish(body, None).map_err(map_error);

        // A server may answer early (e.g. an error before reading the whole upload): take its
        // response if it has one, else report the write failure.
        let response = loop {
            if let Some(r) = future.get() {
                break r
                    .map_err(|()| HttpError::Other("response already taken".into()))?
                    .map_err(map_error)?;
            }
            if let Some(e) = written.as_ref().err().or(finished.as_ref().err()) {
                // Give an early response a moment to arrive, bounded by the deadline.
                let grace = monotonic_clock::now()
                    .saturating_add(50_000_000)
                    .min(deadline);
                if wait(&future.subscribe(), grace).is_err() {
                    return Err(e.clone());
                }
                continue;
            }
            wait(&future.subscribe(), head_deadline)?;
        };

        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        let declared = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.max_body as u64) {
            return Err(HttpError::TooLarge(limits.max_body));
        }

        let incoming = response
            .consume()
            .map_err(|()| HttpError::Other("response body unavailable".into()))?;
        let gap = timeouts.between_bytes.map(|d| phase(Some(d)));
        let body = read_all(&incoming, limits.max_body, deadline, gap, declared)?;
        drop(incoming);
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// Read the whole body, at most `max` bytes, before `deadline`, with at most `gap` ns of
/// silence between chunks.
fn read_all(
    incoming: &IncomingBody,
    max: usize,
    deadline: u64,
    gap: Option<u64>,
    declared: Option<u64>,
) -> Result<Vec<u8>, HttpError> {
    let stream = incoming
        .stream()
        .map_err(|()| HttpError::Other("response body unavailable".into()))?;
    // Pre-size from Content-Length when it is within the cap; never trust it beyond that.
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n.min(max as u64) as usize));
    loop {
        let want = (max - body.len()) as u64 + 1;
        match stream.read(want.min(READ_CHUNK)) {
            Ok(chunk) if chunk.is_empty() => {
                let until = gap.map_or(deadline, |g| {
                    monotonic_clock::now().saturating_add(g).min(deadline)
                });
                wait(&stream.subscribe(), until)?;
            }
            Ok(chunk) => {
                if body.len() + chunk.len() > max {
                    return Err(HttpError::TooLarge(max));
                }
                body.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(body),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Connect(format!(
                    "body read failed: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
}

/// Write all of `data` in chunks of at most [`WRITE_CHUNK`] bytes, then flush, before `deadline`.
fn write_all(stream: &OutputStream, data: &[u8], deadline: u64) -> Result<(), HttpError> {
    let failed = |e: StreamError| HttpError::Connect(format!("body write failed: {e:?}"));
    let mut rest = data;
    while !rest.is_empty() {
        let permit = stream.check_write().map_err(failed)?;
        if permit == 0 {
            wait(&stream.subscribe(), deadline)?;
            continue;
        }
        let n = permit.min(WRITE_CHUNK).min(rest.len() as u64) as usize;
        stream.write(&rest[..n]).map_err(failed)?;
        rest = &rest[n..];
    }
    stream.flush().map_err(failed)?;
    // A flush completes when check-write reports capacity again.
    loop {
        if stream.check_write().map_err(failed)? > 0 {
            return Ok(());
        }
        wait(&stream.subscribe(), deadline)?;
    }
}

/// Block until `p` is ready or the monotonic clock reaches `deadline`.
fn wait(p: &Pollable, deadline: u64) -> Result<(), HttpError> {
    if monotonic_clock::now() >= deadline {
        return Err(HttpError::Timeout);
    }
    let timer = monotonic_clock::subscribe_instant(deadline);
    let ready = poll::poll(&[p, &timer]);
    if ready.contains(&0) {
        Ok(())
    } else {
        Err(HttpError::Timeout)
    }
}

fn map_error(e: ErrorCode) -> HttpError {
    match e {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            HttpError::Forbidden("destination not allowed by the host".into())
        }
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => HttpError::Timeout,
        ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => HttpError::Connect(format!("{e:?}")),
        other => HttpError::Other(format!("{other:?}")),
    }
}
