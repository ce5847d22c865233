//! dub-edge: the Spin HTTP component.
//!
//! Thin glue over `dub-edge-core`: configuration from Spin variables, outbound HTTP through
//! WASI `outgoing-handler` with real deadlines ([`outbound::WasiHttp`]), media operations through
//! the `dub:media` imports ([`media::WitMedia`]), then [`router::handle`].
//!
//! The handler takes the raw `IncomingRequest` so the request body is never read: the edge only
//! serves GET and HEAD, and buffering an unbounded body before answering 405 would be a hazard.
#![allow(
    unsafe_code,
    reason = "spin-sdk's #[http_component] and wit-bindgen expand to FFI glue with `unsafe`; no hand-written unsafe here"
)]

mod kv;
mod media;
mod outbound;

use dub_edge_core::config::Config;
use dub_edge_core::router;
use spin_sdk::http::{IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::wit::wasi::http0_2_0::types::Fields;

/// Bytes written to the response body per stream write.
const WRITE_CHUNK: usize = 4096;

/// Spin variable names read into [`Config`]; each must be declared in `spin.toml`.
pub const VARIABLES: &[&str] = &[
    "origins",
    "signing_key",
    "stt_provider",
    "stt_url",
    "stt_model",
    "mt_provider",
    "mt_url",
    "mt_model",
    "tts_provider",
    "tts_url",
    "tts_model",
    "tts_voice",
    "tts_format",
    "source_lang",
    "api_key",
    "stt_key",
    "mt_key",
    "tts_key",
    "deadline_fraction",
    "deadline_min_ms",
    "provider_connect_timeout_ms",
    "provider_first_byte_timeout_ms",
    "provider_between_bytes_timeout_ms",
    "retry_budget_ratio",
    "breaker_failures",
    "breaker_cooldown_ms",
    "cache_max_bytes",
];

#[spin_sdk::http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let resp = respond(&req);
    drop(req);
    write_response(out, resp);
}

fn respond(req: &IncomingRequest) -> router::Response {
    let method = match req.method() {
        Method::Get => "GET".to_string(),
        Method::Head => "HEAD".to_string(),
        Method::Post => "POST".to_string(),
        Method::Options => "OPTIONS".to_string(),
        Method::Other(m) => m,
        // The rest are only ever refused with 405.
        _ => "OTHER".to_string(),
    };
    let pq = req.path_with_query().unwrap_or_else(|| "/".to_string());
    let (path, query) = match pq.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (pq, String::new()),
    };
    let request = router::Request {
        method,
        path,
        query,
    };

    // A variable that is not declared in the manifest or not set is treated as absent.
    let cfg = match Config::from_lookup(|name| {
        debug_assert!(VARIABLES.contains(&name));
        spin_sdk::variables::get(name).ok()
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dub-edge: {e}");
            return router::Response {
                status: 500,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: b"edge misconfigured\n".to_vec(),
            };
        }
    };
    router::handle(
        &request,
        &cfg,
        &kv::with_store(outbound::WasiHttp),
        &media::WitMedia,
    )
}

fn write_response(out: ResponseOutparam, resp: router::Response) {
    let mut fields: Vec<(String, Vec<u8>)> = resp
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    // Let caches and players know the size up front (HEAD bodies are empty: no length then).
    if !resp.body.is_empty() && !fields.iter().any(|(k, _)| k == "content-length") {
        fields.push((
            "content-length".into(),
            resp.body.len().to_string().into_bytes(),
        ));
    }
    // One header at a time, so a single invalid one (dropped, logged) cannot cost the rest.
    let headers = Fields::new();
    for (name, value) in &fields {
        if let Err(e) = headers.append(name, value) {
            eprintln!("dub-edge: dropping response header {name}: {e:?}");
        }
    }
    let response = OutgoingResponse::new(headers);
    if response.set_status_code(resp.status).is_err() {
        let _ = response.set_status_code(500);
    }
    let Ok(body) = response.body() else {
        return;
    };
    out.set(response);
    if let Ok(stream) = body.write() {
        for chunk in resp.body.chunks(WRITE_CHUNK) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                eprintln!("dub-edge: response body write failed: {e:?}");
                break;
            }
        }
    }
    if let Err(e) = OutgoingBody::finish(body, None) {
        eprintln!("dub-edge: response body finish failed: {e:?}");
    }
}
