//! Request and failure-ladder counters, served in the Prometheus text format on a separate
//! listener (`dubhost serve --metrics-listen ADDR`), so the application keeps every path of its
//! own listener.
//!
//! The rung comes from the edge component's `x-dub-rung` and `x-dub-fallback` response headers:
//! the host counts what it forwards, whatever component answered.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Result;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Longest header value counted as a label; anything longer (or not a short token) is `other`.
const MAX_LABEL: usize = 32;

/// Counters since the process started.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// Responses by status code.
    requests: BTreeMap<u16, u64>,
    /// Segments by (rung, fallback reason).
    segments: BTreeMap<(String, String), u64>,
}

/// A header value as a metric label: a short `[a-z0-9-]` token, else `other`.
fn label(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .to_ascii_lowercase();
    let ok = !v.is_empty()
        && v.len() <= MAX_LABEL
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    Some(if ok { v } else { "other".into() })
}

impl Metrics {
    /// Count one answered request; returns its rung label for the access log, if any.
    pub fn record(&self, status: StatusCode, headers: &HeaderMap) -> Option<String> {
        let rung = label(headers, "x-dub-rung");
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *c.requests.entry(status.as_u16()).or_default() += 1;
        if let Some(r) = &rung {
            let why = label(headers, "x-dub-fallback").unwrap_or_default();
            *c.segments.entry((r.clone(), why)).or_default() += 1;
        }
        rung
    }

    /// The counters in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# HELP dubhost_requests_total HTTP responses, by status code.\n\
             # TYPE dubhost_requests_total counter\n",
        );
        for (status, n) in &c.requests {
            out.push_str(&format!(
                "dubhost_requests_total{{status=\"{status}\"}} {n}\n"
            ));
        }
        out.push_str(
            "# HELP dubhost_segments_total Segments served, by failure-ladder rung (dub, ducked, \
             original) and fallback reason.\n# TYPE dubhost_segments_total counter\n",
        );
        for ((rung, why), n) in &c.segments {
            out.push_str(&format!(
                "dubhost_segments_total{{rung=\"{rung}\",fallback=\"{why}\"}} {n}\n"
            ));
        }
        out
    }
}

/// Serve `GET /metrics` (anything else: 404) on `listener` forever.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) -> Result<()> {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: http::Request<_>| {
                let metrics = metrics.clone();
                async move {
                    let (status, body) = if req.uri().path() == "/metrics" {
                        (StatusCode::OK, metrics.render())
                    } else {
                        (StatusCode::NOT_FOUND, "not found\n".to_string())
                    };
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = status;
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn counts_rungs_and_statuses_with_safe_labels() {
        let m = Metrics::default();
        assert_eq!(
            m.record(StatusCode::OK, &headers(&[("x-dub-rung", "dub")])),
            Some("dub".into())
        );
        m.record(StatusCode::OK, &headers(&[("x-dub-rung", "dub")]));
        m.record(
            StatusCode::OK,
            &headers(&[("x-dub-rung", "ducked"), ("x-dub-fallback", "tts-error")]),
        );
        m.record(
            StatusCode::OK,
            &headers(&[("x-dub-rung", "original"), ("x-dub-fallback", "a\"b{c}")]),
        );
        m.record(StatusCode::FORBIDDEN, &headers(&[]));
        let text = m.render();
        for line in [
            "dubhost_requests_total{status=\"200\"} 4",
            "dubhost_requests_total{status=\"403\"} 1",
            "dubhost_segments_total{rung=\"dub\",fallback=\"\"} 2",
            "dubhost_segments_total{rung=\"ducked\",fallback=\"tts-error\"} 1",
            "dubhost_segments_total{rung=\"original\",fallback=\"other\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
