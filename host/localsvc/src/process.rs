//! Running the offline engines: a timeout on every child, bounded output, per-request temp dirs.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Most stderr kept for diagnostics; the rest is drained and dropped.
const MAX_STDERR: usize = 16 * 1024;

/// A finished child that exited successfully.
#[derive(Debug)]
pub struct Output {
    /// Everything the child wrote to stdout.
    pub stdout: Vec<u8>,
}

/// Why a child failed; the text is for the server log, never for the client.
#[derive(Debug)]
pub enum ProcError {
    /// The program could not be started (usually: not installed).
    Spawn(String, std::io::Error),
    /// It ran past its deadline and was killed.
    Timeout(String),
    /// Its stdout grew past the limit; it was killed.
    OutputTooLarge(String),
    /// It exited unsuccessfully.
    Failed(String, String),
    /// Reading or writing its pipes failed.
    Io(String, std::io::Error),
}

impl std::fmt::Display for ProcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn(p, e) => write!(f, "{p}: cannot start: {e}"),
            Self::Timeout(p) => write!(f, "{p}: timed out"),
            Self::OutputTooLarge(p) => write!(f, "{p}: output over limit"),
            Self::Failed(p, err) => write!(f, "{p}: failed: {err}"),
            Self::Io(p, e) => write!(f, "{p}: i/o: {e}"),
        }
    }
}

impl std::error::Error for ProcError {}

/// Runs `program args…`, feeding `stdin`, killing it after `timeout`; stdout is capped at `max_stdout`.
pub async fn run<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    stdin: Option<&[u8]>,
    timeout: Duration,
    max_stdout: usize,
) -> Result<Output, ProcError> {
    let name = program.to_owned();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ProcError::Spawn(name.clone(), e))?;
    let child_in = child.stdin.take();
    let mut child_out = child
        .stdout
        .take()
        .ok_or_else(|| ProcError::Io(name.clone(), std::io::Error::other("no stdout pipe")))?;
    let mut child_err = child
        .stderr
        .take()
        .ok_or_else(|| ProcError::Io(name.clone(), std::io::Error::other("no stderr pipe")))?;
    let work = async {
        let feed = async {
            if let (Some(mut pipe), Some(data)) = (child_in, stdin) {
                // A child that exits without reading all input is judged by its exit status.
                let _ = pipe.write_all(data).await;
                let _ = pipe.shutdown().await;
            }
            Ok::<(), ProcError>(())
        };
        let out = async {
            match read_capped(&mut child_out, max_stdout, true).await {
                Ok(Some(out)) => Ok(out),
                Ok(None) => Err(ProcError::OutputTooLarge(name.clone())),
                Err(e) => Err(ProcError::Io(name.clone(), e)),
            }
        };
        let err = async { Ok(read_capped(&mut child_err, MAX_STDERR, false).await) };
        // try_join: an oversized stdout stops everything at once (the child is killed on drop).
        let ((), out, err) = tokio::try_join!(feed, out, err)?;
        let err = err.ok().flatten().unwrap_or_default();
        let status = child
            .wait()
            .await
            .map_err(|e| ProcError::Io(name.clone(), e))?;
        if status.success() {
            Ok(Output { stdout: out })
        } else {
            let msg = String::from_utf8_lossy(&err);
            let msg = msg.trim();
            Err(ProcError::Failed(name.clone(), format!("{status}: {msg}")))
        }
    };
    // Dropping `work` on timeout drops the child, and kill_on_drop kills it.
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ProcError::Timeout(name)),
    }
}

/// Reads to EOF keeping at most `cap` bytes. `Ok(None)` if `strict` and the stream exceeded `cap`.
async fn read_capped<R: AsyncRead + Unpin>(
    r: &mut R,
    cap: usize,
    strict: bool,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(Some(out));
        }
        let room = cap.saturating_sub(out.len());
        if n > room && strict {
            return Ok(None);
        }
        out.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
    }
}

/// Finds `name` on `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A directory under the system temp dir, removed with everything in it when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh, uniquely named directory.
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("{prefix}-{}-{n}-{nanos:08x}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Self(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timeout_kills_and_caps_hold() {
        if !crate::have_programs(&["sh", "head", "cat"]) {
            eprintln!("SKIP: sh/head/cat missing");
            return;
        }
        let t = std::time::Instant::now();
        let r = run(
            "sh",
            &["-c", "sleep 5"],
            None,
            Duration::from_millis(200),
            10,
        )
        .await;
        assert!(matches!(r, Err(ProcError::Timeout(_))), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(2));
        let r = run(
            "head",
            &["-c", "100000", "/dev/zero"],
            None,
            Duration::from_secs(5),
            1000,
        )
        .await;
        assert!(matches!(r, Err(ProcError::OutputTooLarge(_))), "{r:?}");
        let r = run(
            "cat",
            &[] as &[&str],
            Some(b"abc"),
            Duration::from_secs(5),
            1000,
        )
        .await
        .unwrap();
        assert_eq!(r.stdout, b"abc");
        let r = run(
            "sh",
            &["-c", "echo oops >&2; exit 3"],
            None,
            Duration::from_secs(5),
            10,
        )
        .await;
        assert!(
            matches!(r, Err(ProcError::Failed(_, ref m)) if m.contains("oops")),
            "{r:?}"
        );
        let r = run(
            "no-such-program-dub",
            &[] as &[&str],
            None,
            Duration::from_secs(1),
            10,
        )
        .await;
        assert!(matches!(r, Err(ProcError::Spawn(..))));
    }

    #[test]
    fn temp_dir_is_removed() {
        let p = {
            let d = TempDir::new("dub-test").unwrap();
            std::fs::write(d.path().join("f"), b"x").unwrap();
            d.path().to_owned()
        };
        assert!(!p.exists());
    }
}
