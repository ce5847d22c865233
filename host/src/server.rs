//! The HTTP/1.1 front end: route by the manifest's triggers, cap request bodies, add Spin's
//! request headers, run the component in a fresh store, and turn failures into plain 4xx/5xx
//! responses (details go to stderr, never to the client).

use crate::router::{RouteMatch, Router};
use crate::runtime::{LoadedComponent, Runtime};
use anyhow::{Result, anyhow};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Largest request body passed to a component.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// Spin's request headers, set by the host (client-sent values are replaced).
pub mod spin_headers {
    /// The request's full URL.
    pub const FULL_URL: &str = "spin-full-url";
    /// The path below the matched route.
    pub const PATH_INFO: &str = "spin-path-info";
    /// The route that matched, as written in the manifest.
    pub const MATCHED_ROUTE: &str = "spin-matched-route";
    /// The application base path.
    pub const BASE_PATH: &str = "spin-base-path";
    /// The component's route as written (with `/...`).
    pub const RAW_COMPONENT_ROUTE: &str = "spin-raw-component-route";
    /// The component's route without the wildcard.
    pub const COMPONENT_ROUTE: &str = "spin-component-route";
    /// The client's `ip:port`.
    pub const CLIENT_ADDR: &str = "spin-client-addr";
    /// All of them.
    pub const ALL: [&str; 7] = [
        FULL_URL,
        PATH_INFO,
        MATCHED_ROUTE,
        BASE_PATH,
        RAW_COMPONENT_ROUTE,
        COMPONENT_ROUTE,
        CLIENT_ADDR,
    ];
}

/// A plain-text response.
pub fn text_response(status: StatusCode, body: &'static str) -> Response<HyperOutgoingBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Decide whether a request reaches a component: route it and check the declared body size.
pub fn admit(router: &Router, parts: &Parts) -> Result<RouteMatch, StatusCode> {
    let route = router
        .route(parts.uri.path())
        .ok_or(StatusCode::NOT_FOUND)?;
    if let Some(len) = parts.headers.get(http::header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(StatusCode::BAD_REQUEST)?;
        if len > MAX_REQUEST_BODY as u64 {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
    Ok(route)
}

/// Read a request body of at most [`MAX_REQUEST_BODY`] bytes.
pub async fn read_body<B>(body: B) -> Result<Bytes, StatusCode>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

/// Set Spin's request headers on `parts`, replacing any the client sent.
pub fn set_spin_headers(
    parts: &mut Parts,
    route: &RouteMatch,
    client: SocketAddr,
    local: SocketAddr,
) {
    let host = match parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        Some(h) => h.to_string(),
        None => {
            // HTTP/1.0 clients may omit Host; wasi:http needs an authority, so supply ours.
            let local = local.to_string();
            if let Ok(v) = HeaderValue::from_str(&local) {
                parts.headers.insert(http::header::HOST, v);
            }
            local
        }
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let full_url = format!("http://{host}{path_and_query}");
    let headers = &mut parts.headers;
    for name in spin_headers::ALL {
        headers.remove(name);
    }
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set(spin_headers::FULL_URL, &full_url);
    set(spin_headers::PATH_INFO, &route.path_info);
    set(spin_headers::MATCHED_ROUTE, &route.raw_route);
    set(spin_headers::BASE_PATH, "/");
    set(spin_headers::RAW_COMPONENT_ROUTE, &route.raw_route);
    set(spin_headers::COMPONENT_ROUTE, &route.component_route);
    set(spin_headers::CLIENT_ADDR, &client.to_string());
}

/// The serving state shared by all connections.
pub struct Server {
    runtime: Arc<Runtime>,
    router: Router,
    permits: Arc<Semaphore>,
    local: SocketAddr,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Server {
    /// A server for `runtime`'s components routed by `router`, bound at `local`.
    pub fn new(runtime: Arc<Runtime>, router: Router, local: SocketAddr) -> Self {
        let permits = Arc::new(Semaphore::new(runtime.limits().max_concurrent as usize));
        Self {
            runtime,
            router,
            permits,
            local,
            metrics: Arc::default(),
        }
    }

    /// The counters this server updates (served by `crate::metrics::serve`).
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    /// Accept connections forever.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        loop {
            let (stream, client) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    eprintln!("dubhost: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, std::convert::Infallible>(server.handle(req, client).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    // Client went away mid-response and similar: not the server's problem.
                    if !e.is_incomplete_message() {
                        eprintln!("dubhost: connection from {client}: {e}");
                    }
                }
            });
        }
    }

    /// Answer one request.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let t0 = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let resp = self.handle_inner(req, client).await;
        let rung = self.metrics.record(resp.status(), resp.headers());
        eprintln!(
            "dubhost: {method} {path} {} {:.1} ms{}",
            resp.status().as_u16(),
            t0.elapsed().as_secs_f64() * 1000.0,
            rung.map(|r| format!(" rung={r}")).unwrap_or_default()
        );
        resp
    }

    async fn handle_inner(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let (mut parts, body) = req.into_parts();
        let route = match admit(&self.router, &parts) {
            Ok(r) => r,
            Err(status) => return status_response(status),
        };
        let body = match read_body(body).await {
            Ok(b) => b,
            Err(status) => return status_response(status),
        };
        let Some(component) = self.runtime.component(&route.component).cloned() else {
            eprintln!(
                "dubhost: route {} names unknown component {}",
                route.raw_route, route.component
            );
            return status_response(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return text_response(StatusCode::SERVICE_UNAVAILABLE, "busy\n");
        };
        set_spin_headers(&mut parts, &route, client, self.local);
        let req = Request::from_parts(parts, Full::new(body));
        match self.run_guest(component, req, permit).await {
            Ok(resp) => resp,
            Err(e) => {
                eprintln!("dubhost: component `{}` failed: {e:#}", route.component);
                status_response(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    async fn run_guest(
        &self,
        component: Arc<LoadedComponent>,
        req: Request<Full<Bytes>>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Response<HyperOutgoingBody>> {
        let mut store = self.runtime.new_store(&component);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(|e| anyhow!("request: {e:#}"))?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(tx)
            .map_err(|e| anyhow!("response: {e:#}"))?;
        let pre = component.pre().clone();
        let timeout = self.runtime.limits().request_timeout;
        // The guest may keep running after it sends the response head (streaming the body), so
        // it runs in its own task; the permit is held until the task ends.
        let task = tokio::spawn(async move {
            let _permit = permit;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, out)
                    .await
            };
            match tokio::time::timeout(timeout, run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(describe_guest_error(e)),
                Err(_) => Err(anyhow!("request timed out after {} s", timeout.as_secs())),
            }
        });
        match rx.await {
            Ok(Ok(resp)) => {
                // Log a failure after the head was sent; the body stream ends with an error.
                let id = component.id.clone();
                tokio::spawn(async move {
                    match task.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            eprintln!("dubhost: component `{id}` failed while streaming: {e:#}")
                        }
                        Err(e) => eprintln!("dubhost: component `{id}` task: {e}"),
                    }
                });
                Ok(resp)
            }
            Ok(Err(code)) => {
                // Let the task finish so its error (if any) is logged with the code.
                let detail = match task.await {
                    Ok(Err(e)) => format!("; {e:#}"),
                    _ => String::new(),
                };
                Err(anyhow!(
                    "component responded with error code {code:?}{detail}"
                ))
            }
            Err(_) => match task.await {
                Ok(Ok(())) => Err(anyhow!("component returned without setting a response")),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow!("component task: {e}")),
            },
        }
    }
}

/// A trap, with its guest backtrace when wasmtime has one.
fn describe_guest_error(e: wasmtime::Error) -> anyhow::Error {
    let trap = e.downcast_ref::<wasmtime::Trap>().map(|t| t.to_string());
    let msg = format!("{e:?}");
    match trap {
        Some(t) => anyhow!("trap: {t}: {msg}"),
        None => anyhow!("{msg}"),
    }
}

/// The short body for each status the host answers by itself.
fn status_response(status: StatusCode) -> Response<HyperOutgoingBody> {
    let body = match status {
        StatusCode::NOT_FOUND => "not found\n",
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large\n",
        StatusCode::BAD_REQUEST => "bad request\n",
        StatusCode::SERVICE_UNAVAILABLE => "busy\n",
        _ => "internal error\n",
    };
    text_response(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(&[
            ("/...".to_string(), "edge".to_string()),
            ("/api/...".to_string(), "api".to_string()),
        ])
        .unwrap()
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn admit_routes_and_checks_declared_length() {
        let r = router();
        assert_eq!(admit(&r, &parts("/api/x", &[])).unwrap().component, "api");
        assert_eq!(admit(&r, &parts("/x", &[])).unwrap().component, "edge");
        assert_eq!(
            admit(&r, &parts("/x", &[("content-length", "1048577")])).unwrap_err(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert!(admit(&r, &parts("/x", &[("content-length", "1048576")])).is_ok());
        assert_eq!(
            admit(&r, &parts("/x", &[("content-length", "abc")])).unwrap_err(),
            StatusCode::BAD_REQUEST
        );
        let only_api = Router::new(&[("/api/...".to_string(), "api".to_string())]).unwrap();
        assert_eq!(
            admit(&only_api, &parts("/other", &[])).unwrap_err(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn read_body_caps_at_one_mebibyte() {
        let ok = read_body(Full::new(Bytes::from(vec![7u8; MAX_REQUEST_BODY])))
            .await
            .unwrap();
        assert_eq!(ok.len(), MAX_REQUEST_BODY);
        assert_eq!(
            read_body(Full::new(Bytes::from(vec![7u8; MAX_REQUEST_BODY + 1])))
                .await
                .unwrap_err(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn spin_headers_describe_the_route_and_replace_client_values() {
        let r = router();
        let mut p = parts(
            "/api/v1/items?x=1",
            &[("host", "edge.example:3000"), ("spin-path-info", "/forged")],
        );
        let m = r.route(p.uri.path()).unwrap();
        set_spin_headers(
            &mut p,
            &m,
            "10.0.0.7:5555".parse().unwrap(),
            "127.0.0.1:3000".parse().unwrap(),
        );
        let h = |n: &str| p.headers.get(n).unwrap().to_str().unwrap().to_string();
        assert_eq!(
            h("spin-full-url"),
            "http://edge.example:3000/api/v1/items?x=1"
        );
        assert_eq!(h("spin-path-info"), "/v1/items");
        assert_eq!(p.headers.get_all("spin-path-info").iter().count(), 1);
        assert_eq!(h("spin-matched-route"), "/api/...");
        assert_eq!(h("spin-raw-component-route"), "/api/...");
        assert_eq!(h("spin-component-route"), "/api");
        assert_eq!(h("spin-base-path"), "/");
        assert_eq!(h("spin-client-addr"), "10.0.0.7:5555");

        // No Host header: the listening address stands in.
        let mut p = parts("/", &[]);
        let m = r.route("/").unwrap();
        set_spin_headers(
            &mut p,
            &m,
            "1.2.3.4:1".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
        );
        assert_eq!(p.headers["spin-full-url"], "http://127.0.0.1:9/");
        assert_eq!(p.headers["host"], "127.0.0.1:9");
        assert_eq!(p.headers["spin-path-info"], "/");
    }
}
