//! Test support: a blocking std-only HTTP/1.1 client implementing [`HttpClient`], a minimal
//! threaded HTTP/1.1 server for fake origins and providers, and small WAV/multipart helpers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::http::{
    FetchLimits, HttpClient, HttpError, HttpRequest, HttpResponse, Method, Timeouts,
};

const MAX_HEAD: usize = 64 << 10;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &str) -> (String, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (first, headers)
}

/// Blocking HTTP/1.1 client over `std::net::TcpStream` (`Connection: close`, no TLS) that honours
/// the deadline on connect, write and every read, the body cap, and the phase timeouts of
/// [`HttpClient::send_timed`] (connect, first byte, between bytes). It never follows redirects.
pub struct StdHttpClient;

impl StdHttpClient {
    fn remaining(deadline: Instant) -> Result<Duration, HttpError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(HttpError::Timeout)
        } else {
            Ok(left)
        }
    }
}

fn io_err(e: std::io::Error) -> HttpError {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => HttpError::Timeout,
        _ => HttpError::Connect(e.kind().to_string()),
    }
}

fn dechunk(mut raw: &[u8], max_body: usize) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    loop {
        let eol = find(raw, b"\r\n").ok_or_else(|| HttpError::Other("truncated chunk".into()))?;
        let size_str =
            std::str::from_utf8(&raw[..eol]).map_err(|_| HttpError::Other("bad chunk".into()))?;
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| HttpError::Other("bad chunk size".into()))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if out.len() + size > max_body {
            return Err(HttpError::TooLarge(max_body));
        }
        let chunk = raw
            .get(..size)
            .ok_or_else(|| HttpError::Other("truncated chunk".into()))?;
        out.extend_from_slice(chunk);
        raw = raw
            .get(size + 2..)
            .ok_or_else(|| HttpError::Other("truncated chunk".into()))?;
    }
}

impl HttpClient for StdHttpClient {
    fn send(&self, req: &HttpRequest, limits: &FetchLimits) -> Result<HttpResponse, HttpError> {
        self.send_timed(req, limits, &Timeouts::default())
    }

    fn send_timed(
        &self,
        req: &HttpRequest,
        limits: &FetchLimits,
        timeouts: &Timeouts,
    ) -> Result<HttpResponse, HttpError> {
        let within = |phase: Option<Duration>| -> Result<Duration, HttpError> {
            let left = Self::remaining(limits.deadline)?;
            Ok(phase.map_or(left, |p| p.min(left)))
        };
        let url = url::Url::parse(&req.url).map_err(|_| HttpError::Other("bad url".into()))?;
        if url.scheme() != "http" {
            return Err(HttpError::Forbidden(url.scheme().to_string()));
        }
        let host = url
            .host_str()
            .ok_or_else(|| HttpError::Other("no host".into()))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| HttpError::Connect(e.kind().to_string()))?
            .next()
            .ok_or_else(|| HttpError::Connect("no address".into()))?;
        let mut stream =
            TcpStream::connect_timeout(&addr, within(timeouts.connect)?).map_err(io_err)?;

        let method = match req.method {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        let mut head =
            format!("{method} {target} HTTP/1.1\r\nhost: {host}:{port}\r\nconnection: close\r\n");
        for (k, v) in &req.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if req.method == Method::Post || !req.body.is_empty() {
            head.push_str(&format!("content-length: {}\r\n", req.body.len()));
        }
        head.push_str("\r\n");
        stream
            .set_write_timeout(Some(Self::remaining(limits.deadline)?))
            .map_err(io_err)?;
        stream.write_all(head.as_bytes()).map_err(io_err)?;
        stream.write_all(&req.body).map_err(io_err)?;

        let first_byte_by = timeouts.first_byte.map(|d| Instant::now() + d);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 << 10];
        let mut head_end: Option<usize> = None;
        let mut content_length: Option<usize> = None;
        loop {
            if let (Some(h), Some(cl)) = (head_end, content_length)
                && buf.len() >= h + cl
            {
                break;
            }
            let wait = match (head_end, first_byte_by) {
                (None, Some(by)) => within(Some(Self::remaining(by)?))?,
                (None, None) => within(None)?,
                (Some(_), _) => within(timeouts.between_bytes)?,
            };
            stream.set_read_timeout(Some(wait)).map_err(io_err)?;
            let n = stream.read(&mut chunk).map_err(io_err)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if head_end.is_none() {
                if let Some(p) = find(&buf, b"\r\n\r\n") {
                    head_end = Some(p + 4);
                    let (_, headers) = parse_head(&String::from_utf8_lossy(&buf[..p]));
                    if let Some((_, v)) = headers.iter().find(|(k, _)| k == "content-length") {
                        let cl: usize = v
                            .parse()
                            .map_err(|_| HttpError::Other("bad content-length".into()))?;
                        if cl > limits.max_body {
                            return Err(HttpError::TooLarge(limits.max_body));
                        }
                        content_length = Some(cl);
                    }
                } else if buf.len() > MAX_HEAD {
                    return Err(HttpError::Other("response head too large".into()));
                }
            }
            // Chunked framing adds a little; allow some slack over the cap for it.
            if let Some(h) = head_end
                && buf.len() - h > limits.max_body + limits.max_body / 8 + 1024
            {
                return Err(HttpError::TooLarge(limits.max_body));
            }
        }
        let h = head_end.ok_or_else(|| HttpError::Other("no response head".into()))?;
        let (status_line, headers) = parse_head(&String::from_utf8_lossy(&buf[..h - 4]));
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HttpError::Other("bad status line".into()))?;
        let raw = &buf[h..];
        let body = if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            dechunk(raw, limits.max_body)?
        } else {
            let cl = content_length.unwrap_or(raw.len());
            if raw.len() < cl {
                return Err(HttpError::Other("truncated body".into()));
            }
            raw[..cl].to_vec()
        };
        if body.len() > limits.max_body {
            return Err(HttpError::TooLarge(limits.max_body));
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// A request as the test server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Method, e.g. "POST".
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (without `?`), if any.
    pub raw_query: Option<String>,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Recorded {
    /// First header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Decoded query pairs, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.raw_query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect()
    }
}

/// A test server's answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// Body with a content type.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body,
        }
    }
    /// JSON body.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::bytes(status, "application/json", body.as_bytes().to_vec())
    }
    /// Plain-text body.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::bytes(status, "text/plain", body.as_bytes().to_vec())
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync + 'static;

/// Minimal threaded HTTP/1.1 server on 127.0.0.1:0 (one thread per connection, `Connection: close`)
/// that records every request. Stops accepting when dropped.
pub struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let (line, headers) = parse_head(&String::from_utf8_lossy(&buf[..head_end - 4]));
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let cl: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if cl > 64 << 20 {
        return None;
    }
    while buf.len() < head_end + cl {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target, None),
    };
    Some(Recorded {
        method,
        path,
        raw_query,
        headers,
        body: buf[head_end..head_end + cl].to_vec(),
    })
}

impl TestServer {
    /// Start serving `handler` on a fresh port.
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, stop2) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = conn else { continue };
                let (handler, reqs) = (handler.clone(), reqs.clone());
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut stream) else {
                        return;
                    };
                    reqs.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(req.clone());
                    let reply = handler(&req);
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nconnection: close\r\ncontent-length: {}\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (k, v) in &reply.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    // The client may have given up (deadline tests): ignore write errors.
                    let _ = stream
                        .write_all(head.as_bytes())
                        .and_then(|_| stream.write_all(&reply.body));
                });
            }
        });
        TestServer {
            addr,
            requests,
            stop,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

impl TestServer {
    /// Start a server whose `handler` writes the raw response itself (partial bodies, stalls
    /// mid-body). Requests are recorded like [`TestServer::start`]'s.
    pub fn start_raw(
        handler: impl Fn(&Recorded, &mut TcpStream) + Send + Sync + 'static,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (reqs, stop2) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = conn else { continue };
                let (handler, reqs) = (handler.clone(), reqs.clone());
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut stream) else {
                        return;
                    };
                    reqs.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(req.clone());
                    handler(&req, &mut stream);
                });
            }
        });
        TestServer {
            addr,
            requests,
            stop,
        }
    }
}

/// A listener on 127.0.0.1 that only counts the TCP connections it accepts (and closes them).
pub struct ConnectionCounter {
    addr: SocketAddr,
    count: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl ConnectionCounter {
    /// Start counting on a fresh port.
    pub fn start() -> ConnectionCounter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, stop2) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if conn.is_ok() {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        ConnectionCounter { addr, count, stop }
    }

    /// Base URL, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for ConnectionCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

/// Bytes of a corpus file (`../shared/corpus/<rel>` beside the repository).
pub fn corpus(rel: &str) -> Vec<u8> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../../shared/corpus")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A URL on 127.0.0.1 where nothing listens (connection refused).
pub fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

/// One multipart/form-data part.
#[derive(Clone, Debug)]
pub struct Part {
    /// `name` of the Content-Disposition.
    pub name: String,
    /// `filename`, if any.
    pub filename: Option<String>,
    /// Part Content-Type, if any.
    pub content_type: Option<String>,
    /// Part bytes.
    pub data: Vec<u8>,
}

/// Parse a multipart/form-data body (empty on any framing error).
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let Some(boundary) = content_type
        .split("boundary=")
        .nth(1)
        .map(|b| b.trim_matches('"'))
    else {
        return Vec::new();
    };
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    let Some(first) = find(rest, delim.as_bytes()) else {
        return out;
    };
    rest = &rest[first + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            return out;
        }
        let Some(r) = rest.strip_prefix(b"\r\n") else {
            return Vec::new();
        };
        let Some(he) = find(r, b"\r\n\r\n") else {
            return Vec::new();
        };
        let (_, headers) = parse_head(&format!("X\r\n{}", String::from_utf8_lossy(&r[..he])));
        let data_start = &r[he + 4..];
        let Some(end) = find(data_start, format!("\r\n{delim}").as_bytes()) else {
            return Vec::new();
        };
        let disp = headers
            .iter()
            .find(|(k, _)| k == "content-disposition")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let attr = |name: &str| {
            disp.split(';').map(str::trim).find_map(|kv| {
                kv.strip_prefix(&format!("{name}="))
                    .map(|v| v.trim_matches('"').to_string())
            })
        };
        out.push(Part {
            name: attr("name").unwrap_or_default(),
            filename: attr("filename"),
            content_type: headers
                .iter()
                .find(|(k, _)| k == "content-type")
                .map(|(_, v)| v.clone()),
            data: data_start[..end].to_vec(),
        });
        rest = &data_start[end + 2 + delim.len()..];
    }
}

/// Basic facts about a PCM WAV file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavInfo {
    /// Sample rate.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per sample.
    pub bits: u16,
    /// Frames in the data chunk.
    pub frames: u64,
}

/// Parse the fmt and data chunks of a RIFF/WAVE file.
pub fn wav_info(b: &[u8]) -> Option<WavInfo> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return None;
    }
    let (mut pos, mut fmt, mut data_len) = (12usize, None, None);
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let len = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().ok()?) as usize;
        let body = b.get(pos + 8..(pos + 8 + len).min(b.len()))?;
        if id == b"fmt " && body.len() >= 16 {
            let ch = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes(body[4..8].try_into().ok()?);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            fmt = Some((rate, ch, bits));
        } else if id == b"data" {
            // espeak-ng writes 0x7fffffff-ish sizes when streaming; trust the bytes present.
            data_len = Some(body.len());
        }
        pos = pos.checked_add(8 + len + (len & 1))?;
    }
    let (rate, channels, bits) = fmt?;
    let frame_bytes = (channels as u64) * (bits as u64 / 8);
    Some(WavInfo {
        rate,
        channels,
        bits,
        frames: data_len? as u64 / frame_bytes.max(1),
    })
}

/// A 16-bit PCM sine-tone WAV.
pub fn tone_wav(rate: u32, channels: u16, secs: f64, freq: f64) -> Vec<u8> {
    let frames = (secs * rate as f64).round() as usize;
    let mut data = Vec::with_capacity(frames * channels as usize * 2);
    for i in 0..frames {
        let s = (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin() * 32767.0)
            as i16;
        for _ in 0..channels {
            data.extend_from_slice(&s.to_le_bytes());
        }
    }
    let mut w = Vec::with_capacity(44 + data.len());
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * channels as u32 * 2).to_le_bytes());
    w.extend_from_slice(&(channels * 2).to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

/// The local-demo configuration (every URL still points at the defaults; tests override them).
pub fn test_config() -> Config {
    Config::from_lookup(|_| None).expect("default config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_round_trip_with_limits() {
        let server = TestServer::start(|req| match req.path.as_str() {
            "/big" => Reply::bytes(200, "application/octet-stream", vec![7; 5000]),
            "/slow" => {
                std::thread::sleep(Duration::from_secs(2));
                Reply::text(200, "late")
            }
            _ => Reply::bytes(
                201,
                "application/octet-stream",
                req.body.iter().rev().copied().collect(),
            ),
        });
        let dl = || Instant::now() + Duration::from_secs(5);
        let req = HttpRequest {
            method: Method::Post,
            url: format!("{}/echo?a=1", server.url()),
            headers: vec![("x-test".into(), "yes".into())],
            body: vec![1, 2, 3],
        };
        let resp = StdHttpClient
            .send(
                &req,
                &FetchLimits {
                    deadline: dl(),
                    max_body: 100,
                },
            )
            .unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (201, &[3u8, 2, 1][..]));
        assert_eq!(
            resp.header("content-type"),
            Some("application/octet-stream")
        );
        let rec = &server.requests()[0];
        assert_eq!(
            (
                rec.path.as_str(),
                rec.raw_query.as_deref(),
                rec.header("x-test")
            ),
            ("/echo", Some("a=1"), Some("yes"))
        );

        let big = HttpRequest {
            method: Method::Get,
            url: format!("{}/big", server.url()),
            headers: vec![],
            body: vec![],
        };
        assert_eq!(
            StdHttpClient
                .send(
                    &big,
                    &FetchLimits {
                        deadline: dl(),
                        max_body: 4999
                    }
                )
                .unwrap_err(),
            HttpError::TooLarge(4999)
        );
        assert_eq!(
            StdHttpClient
                .send(
                    &big,
                    &FetchLimits {
                        deadline: dl(),
                        max_body: 5000
                    }
                )
                .unwrap()
                .body
                .len(),
            5000
        );

        let slow = HttpRequest {
            url: format!("{}/slow", server.url()),
            ..big.clone()
        };
        let t0 = Instant::now();
        let err = StdHttpClient
            .send(
                &slow,
                &FetchLimits {
                    deadline: t0 + Duration::from_millis(200),
                    max_body: 100,
                },
            )
            .unwrap_err();
        assert_eq!(err, HttpError::Timeout);
        assert!(t0.elapsed() < Duration::from_millis(400));

        let refused = HttpRequest {
            url: refused_url(),
            ..big
        };
        assert!(matches!(
            StdHttpClient.send(
                &refused,
                &FetchLimits {
                    deadline: dl(),
                    max_body: 100
                }
            ),
            Err(HttpError::Connect(_))
        ));
    }

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n", 10).unwrap(),
            b"abcde"
        );
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 4).unwrap_err(),
            HttpError::TooLarge(4)
        );
        assert!(dechunk(b"ff\r\nabc", 1000).is_err());
    }
}
