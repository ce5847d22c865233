//! Helpers for dub-edge's end-to-end tests: locate the built artifacts, start real processes on
//! 127.0.0.1 with port 0, and talk plain HTTP/1.1 to them.
//!
//! ```no_run
//! let host = dub_tests::artifacts().dubhost;
//! assert!(host.ends_with("dubhost"));
//! ```
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Paths of the built binaries and components.
pub struct Artifacts {
    /// The dubhost binary.
    pub dubhost: PathBuf,
    /// The repository root (holds spin.toml and build/).
    pub repo: PathBuf,
}

/// Find dubhost (`DUBHOST_BIN`, else next to this test binary) and the repository root.
pub fn artifacts() -> Artifacts {
    // `cargo test` sets CARGO_MANIFEST_DIR at run time too; prefer it over the compile-time
    // value, which names wherever this crate was first built when clones share a target dir.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let repo = manifest
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf();
    let dubhost = std::env::var_os("DUBHOST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/deps/<test-binary> -> target/<profile>/dubhost
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(Path::parent)
                .map(|p| p.join("dubhost"))
                .expect("target dir")
        });
    Artifacts { dubhost, repo }
}

/// A child process killed on drop.
pub struct Proc {
    child: Child,
    /// Address it printed after `listening on http://`.
    pub addr: SocketAddr,
    /// Name for messages.
    pub name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// `http://ADDR`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Start `cmd`, wait (up to `wait`) for a line containing `listening on http://ADDR` on stdout or
/// stderr, and keep forwarding its output to this process's stderr.
pub fn spawn_listening(name: &str, mut cmd: Command, wait: Duration) -> Proc {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let (tx, rx) = mpsc::channel::<SocketAddr>();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")) as Box<dyn Read + Send>,
    ] {
        let tx = tx.clone();
        let name = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{name}] {line}");
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    if let Ok(a) = addr.trim_end_matches('/').parse() {
                        let _ = tx.send(a);
                    }
                }
            }
        });
    }
    match rx.recv_timeout(wait) {
        Ok(addr) => Proc {
            child,
            addr,
            name: name.to_string(),
        },
        Err(_) => {
            let _ = child.kill();
            panic!("{name} did not report its listening address within {wait:?}");
        }
    }
}

/// A buffered HTTP response.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers (names lower-cased).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Wall time of the request.
    pub elapsed: Duration,
}

impl Resp {
    /// A header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Plain HTTP/1.1 GET of an absolute `http://` URL with `Connection: close`.
pub fn get(url: &str, timeout: Duration) -> std::io::Result<Resp> {
    let start = Instant::now();
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| std::io::Error::other("authority must be ip:port"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: dub-tests\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body)?;
    }
    Ok(Resp {
        status,
        headers,
        body,
        elapsed: start.elapsed(),
    })
}

fn dechunk(mut b: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| std::io::Error::other("bad chunk"))?;
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err(std::io::Error::other("short chunk"));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Percent-encode a query value.
pub fn encode_query(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// A TCP server on 127.0.0.1:0 that accepts connections, counts them and never answers
/// (a provider stalled before the first byte). Connections are held until the process ends.
pub fn stalling_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (addr, count)
}

/// A free port that nothing listens on (bound then released): connections are refused.
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Attribute value from an `#EXT-X-...:A=B,C="D"` line.
pub fn attr(line: &str, name: &str) -> Option<String> {
    let list = line.split_once(':')?.1;
    let mut rest = list;
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=')?;
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], q[end + 1..].trim_start_matches(','))
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i + 1..]),
                None => (after, ""),
            }
        };
        if k.trim() == name {
            return Some(v.to_string());
        }
        rest = next;
    }
    None
}

/// Resolve a playlist URI against the URL it came from.
pub fn resolve(base: &str, uri: &str) -> String {
    url::Url::parse(base)
        .and_then(|b| b.join(uri))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| uri.to_string())
}

/// Segment URIs of a media playlist, resolved against its URL.
pub fn segment_uris(playlist_url: &str, text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| resolve(playlist_url, l))
        .collect()
}

/// The EXT-X-MAP URI of a media playlist, resolved.
pub fn map_uri(playlist_url: &str, text: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with("#EXT-X-MAP:"))
        .and_then(|l| attr(l, "URI"))
        .map(|u| resolve(playlist_url, &u))
}

/// Run ffmpeg on bytes written to a temp file; returns its stderr with `-v error`.
pub fn ffmpeg_errors(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&p)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Frames (per channel) where speech onsets: RMS over 10 ms windows rises above `thresh` after at
/// least `min_gap` seconds below it. Interleaved input.
pub fn onsets(samples: &[f32], channels: usize, rate: u32, thresh: f32, min_gap: f64) -> Vec<f64> {
    let win = (rate as usize / 100).max(1);
    let frames = samples.len() / channels.max(1);
    let mut out = Vec::new();
    let mut quiet_since: Option<usize> = Some(0);
    let mut f = 0;
    while f + win <= frames {
        let mut e = 0.0f64;
        for i in f..f + win {
            for c in 0..channels {
                let x = samples[i * channels + c] as f64;
                e += x * x;
            }
        }
        let rms = (e / (win * channels) as f64).sqrt() as f32;
        if rms > thresh {
            if let Some(q) = quiet_since
                && ((f - q) as f64 / rate as f64 >= min_gap || (q == 0 && out.is_empty()))
            {
                out.push(f as f64 / rate as f64);
            }
            quiet_since = None;
        } else if quiet_since.is_none() {
            quiet_since = Some(f);
        }
        f += win;
    }
    out
}

/// Make a unique temp dir for a test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("dub-tests-{tag}-{}-{nanos}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// One request/response pair seen by [`recording_proxy`].
#[derive(Clone, Debug)]
pub struct Exchange {
    /// Request line, e.g. `POST /v1/audio/speech HTTP/1.1`.
    pub request_line: String,
    /// Request body.
    pub request_body: Vec<u8>,
    /// Response body as received from upstream (de-chunked).
    pub response_body: Vec<u8>,
}

/// A forwarding HTTP/1.1 proxy on 127.0.0.1:0 in front of `upstream`: every exchange is passed
/// through unchanged and recorded, so a test can see exactly what a provider was asked and what
/// it answered (for example the synthesized speech a dub must contain).
pub fn recording_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<Exchange>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let log = log2.clone();
            std::thread::spawn(move || {
                let _ = proxy_one(client, upstream, &log);
            });
        }
    });
    (addr, log)
}

fn proxy_one(
    mut client: TcpStream,
    upstream: SocketAddr,
    log: &Mutex<Vec<Exchange>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = client.read(&mut tmp)?;
        if n == 0 || buf.len() > 1 << 20 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = client.read(&mut tmp)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    // Forward with Connection: close so the upstream response ends at EOF.
    let mut fwd = Vec::new();
    for line in head.trim_end().split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            fwd.extend_from_slice(line.as_bytes());
            fwd.extend_from_slice(b"\r\n");
        }
    }
    fwd.extend_from_slice(b"Connection: close\r\n\r\n");
    fwd.extend_from_slice(&buf[head_end..]);
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    up.write_all(&fwd)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    client.write_all(&resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |p| p + 4);
    let chunked = String::from_utf8_lossy(&resp[..split])
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(&resp[split..]).unwrap_or_default()
    } else {
        resp[split..].to_vec()
    };
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Exchange {
            request_line: head.lines().next().unwrap_or("").to_string(),
            request_body: buf[head_end..].to_vec(),
            response_body: body,
        });
    Ok(())
}

/// Decode any audio file ffmpeg reads to mono f32 at `rate`.
pub fn ffmpeg_decode_mono(path: &Path, rate: u32) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-ac", "1", "-ar", &rate.to_string(), "-f", "f32le", "-"])
        .output()
        .expect("run ffmpeg");
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Best normalized cross-correlation of `clip` inside `signal`: (score in [-1, 1], offset).
/// Brute force over a decimated copy, then refined at full rate around the best coarse lag.
pub fn find_clip(signal: &[f32], clip: &[f32]) -> (f32, usize) {
    if clip.is_empty() || signal.len() < clip.len() {
        return (0.0, 0);
    }
    let ncc = |sig: &[f32], c: &[f32], lag: usize| -> f32 {
        let w = &sig[lag..lag + c.len()];
        let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
        for (a, b) in w.iter().zip(c) {
            xy += (*a as f64) * (*b as f64);
            xx += (*a as f64) * (*a as f64);
            yy += (*b as f64) * (*b as f64);
        }
        if xx == 0.0 || yy == 0.0 {
            0.0
        } else {
            (xy / (xx * yy).sqrt()) as f32
        }
    };
    // Coarse pass: decimate by 4 (the clips are speech; 4 kHz of band at 16 kHz input is plenty).
    let dec =
        |x: &[f32]| -> Vec<f32> { x.chunks(4).map(|c| c.iter().sum::<f32>() / 4.0).collect() };
    let (ds, dc) = (dec(signal), dec(clip));
    let mut best = (f32::MIN, 0usize);
    for lag in 0..=ds.len().saturating_sub(dc.len()) {
        let s = ncc(&ds, &dc, lag);
        if s > best.0 {
            best = (s, lag);
        }
    }
    let center = best.1 * 4;
    let mut fine = (f32::MIN, center);
    for lag in center.saturating_sub(8)..=(center + 8).min(signal.len() - clip.len()) {
        let s = ncc(signal, clip, lag);
        if s > fine.0 {
            fine = (s, lag);
        }
    }
    fine
}
