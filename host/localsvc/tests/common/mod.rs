//! Test helpers: a minimal HTTP/1.1 client over a real socket, engine checks, signal measures.
#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// One HTTP/1.1 request on a fresh connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Bytes) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// GET shortcut.
pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, HeaderMap, Bytes) {
    http(addr, "GET", path, None, Vec::new()).await
}

/// True (and prints why) when a test must skip because an engine is not installed.
pub fn skip_without(programs: &[&str]) -> bool {
    if dub_localsvc::have_programs(programs) {
        return false;
    }
    eprintln!(
        "SKIP: needs {programs:?} (Debian: ffmpeg sox espeak-ng pocketsphinx pocketsphinx-en-us apertium apertium-eng-spa)"
    );
    true
}

/// Runs a command, panicking with its stderr on failure.
pub fn cmd(program: &str, args: &[&str]) -> Vec<u8> {
    let o = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Root-mean-square of 16-bit samples, in full scale (0..=1).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let s: f64 = samples
        .iter()
        .map(|&x| (f64::from(x) / 32768.0).powi(2))
        .sum();
    (s / samples.len() as f64).sqrt()
}

/// Words of a text, lowercase, punctuation removed.
pub fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Reference words found in order in the hypothesis (longest common subsequence).
pub fn lcs(reference: &[String], hypothesis: &[String]) -> usize {
    let mut d = vec![vec![0usize; hypothesis.len() + 1]; reference.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        for (j, h) in hypothesis.iter().enumerate() {
            d[i + 1][j + 1] = if r == h {
                d[i][j] + 1
            } else {
                d[i][j + 1].max(d[i + 1][j])
            };
        }
    }
    d[reference.len()][hypothesis.len()]
}

/// A multipart/form-data body with text fields and one file.
pub fn multipart(boundary: &str, fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"audio.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes());
    b.extend_from_slice(file);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

/// Starts the speech service on an ephemeral port.
pub async fn start_speech() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(dub_localsvc::serve_speech(
        l,
        dub_localsvc::SpeechOptions::default(),
    ));
    addr
}
