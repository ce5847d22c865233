//! Integration tests: run the real `dubhost` binary against a small hand-written component
//! (tests/fixtures/handler: a wasi:http handler that reads a Spin variable, calls native
//! dub:media and can trap) and talk HTTP to it on 127.0.0.1 with port 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn fixture_wasm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/handler/handler.wasm")
}

/// A fresh directory with a manifest pointing at the fixture component.
fn app_dir(extra_vars: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dubhost-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = format!(
        r#"spin_manifest_version = 2

[application]
name = "fixture"

[variables]
greeting = {{ required = true }}
{extra_vars}

[[trigger.http]]
route = "/app/..."
component = "fixture"

[[trigger.http]]
route = "/trap"
component = "fixture"

[[trigger.http]]
route = "/media"
component = "fixture"

[[trigger.http]]
route = "/loop"
component = "fixture"

[component.fixture]
source = "{}"
allowed_outbound_hosts = ["http://127.0.0.1:*"]

[component.fixture.variables]
greeting = "{{{{ greeting }}}}!"

[component.fixture.dependencies]
"dub:media/types" = {{ path = "unused.wasm" }}
"#,
        fixture_wasm().display()
    );
    std::fs::write(dir.join("spin.toml"), manifest).unwrap();
    dir
}

struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dubhost"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--manifest")
        .arg(dir.join("spin.toml"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("SPIN_VARIABLE_GREETING", "hola")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("dubhost printed nothing").unwrap();
    let addr = line
        .strip_prefix("dubhost listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Served { child, addr }
}

/// One HTTP/1.1 request; returns (status, body).
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response {text:?}"));
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end")
        + 4;
    let headers = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
    let body = resp[split..].to_vec();
    // Decode a chunked body (the component streams its response).
    if headers.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        return (status, out);
    }
    (status, body)
}

#[test]
fn serves_variables_media_traps_routes_and_limits() {
    let dir = app_dir("");
    let app = serve(&dir, &[]);

    // Variable templating + env override, and the path as the guest sees it.
    let (status, body) = request(app.addr, "GET", "/app/hello?x=1", b"");
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body).unwrap(), "hola!|/app/hello?x=1");

    // Native dub:media: 500 frames sliced at 299 with count 1000 leaves 201 frames.
    let (status, _) = request(app.addr, "GET", "/media", b"");
    assert_eq!(status, 201);

    // A trap is a plain 500, and the server keeps serving.
    let (status, body) = request(app.addr, "GET", "/trap", b"");
    assert_eq!(status, 500);
    assert_eq!(body, b"internal error\n");
    let (status, _) = request(app.addr, "GET", "/app/again", b"");
    assert_eq!(status, 200);

    // Unrouted paths are 404 without running the component.
    let (status, body) = request(app.addr, "GET", "/elsewhere", b"");
    assert_eq!(status, 404);
    assert_eq!(body, b"not found\n");

    // Bodies over 1 MiB are refused (on the declared length, before reading them); 1 MiB
    // exactly is accepted.
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"POST /app/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    let (status, _) = request(app.addr, "POST", "/app/upload", &vec![b'x'; 1 << 20]);
    assert_eq!(status, 200);

    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn runaway_guest_is_stopped_by_the_deadline() {
    let dir = app_dir("");
    let app = serve(&dir, &["--timeout-secs", "1"]);
    let t0 = std::time::Instant::now();
    let (status, body) = request(app.addr, "GET", "/loop", b"");
    let took = t0.elapsed();
    assert_eq!(status, 500);
    assert_eq!(body, b"internal error\n");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The worker is free again.
    let (status, _) = request(app.addr, "GET", "/app/after", b"");
    assert_eq!(status, 200);
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

fn check(dir: &Path, env_greeting: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dubhost"));
    cmd.args(["check", "--manifest"])
        .arg(dir.join("spin.toml"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env_remove("SPIN_VARIABLE_GREETING");
    if let Some(g) = env_greeting {
        cmd.env("SPIN_VARIABLE_GREETING", g);
    }
    cmd.output().unwrap()
}

#[test]
fn check_uses_the_compile_cache_and_reports_missing_variables() {
    let dir = app_dir("");
    let first = check(&dir, Some("x"));
    assert!(first.status.success(), "{first:?}");
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("compiled, cached"),
        "{first:?}"
    );
    let cached: Vec<_> = std::fs::read_dir(dir.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].starts_with("handler-") && cached[0].ends_with(".cwasm"));

    let second = check(&dir, Some("x"));
    assert!(second.status.success(), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("compile cache hit"),
        "{second:?}"
    );

    let missing = check(&dir, None);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("`greeting`") && err.contains("SPIN_VARIABLE_GREETING"),
        "{err}"
    );

    // A corrupt cache entry is ignored and replaced, not trusted.
    let entry = dir.join("cache").join(&cached[0]);
    std::fs::write(&entry, b"garbage").unwrap();
    let third = check(&dir, Some("x"));
    assert!(third.status.success(), "{third:?}");
    assert!(
        String::from_utf8_lossy(&third.stderr).contains("ignoring unusable compile cache"),
        "{third:?}"
    );
    assert!(std::fs::read(&entry).unwrap().len() > 1000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_help_version_and_bad_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_dubhost"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("dubhost "));
    let out = Command::new(env!("CARGO_BIN_EXE_dubhost"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("dubhost serve"));
    let out = Command::new(env!("CARGO_BIN_EXE_dubhost"))
        .args(["serve", "--nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_dubhost"))
        .args(["check", "--manifest", "/nonexistent/spin.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read manifest"));
}
