//! Command-line parsing (hand-written: a handful of flags does not justify a parser crate).

use anyhow::{Result, anyhow, bail};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Usage text for `--help`.
pub const USAGE: &str = "\
dubhost: run the dub-edge Spin app natively (wasmtime), plus local helper services

USAGE:
    dubhost serve       [--manifest PATH] [--listen ADDR] [OPTIONS]
    dubhost check       [--manifest PATH] [OPTIONS]
    dubhost speech      [--listen ADDR]
    dubhost origin      [--listen ADDR] [--dir DIR]
    dubhost make-sample [--out DIR] [--duration SECS] [--sentence-offset SECS]
    dubhost inspect     <FILE>...
    dubhost --version | --help

COMMANDS:
    serve        Serve the manifest's HTTP trigger routes; prints `dubhost listening on http://ADDR`
    check        Load, compile and instantiate the manifest's components, then exit
    speech       Local speech service (OpenAI-compatible STT/TTS, Apertium APy MT)
    origin       Serve a sample directory as an HLS origin (VOD under /vod/, live under /live/)
    make-sample  Write a sample HLS stream into a directory (espeak-ng + ffmpeg)
    inspect      Print a JSON report per media file (init + segment pairs together);
                 exit 0 all valid, 2 any invalid, 1 usage/IO error
    Every server prints `dubhost listening on http://ADDR` on stdout once bound.

OPTIONS:
    --manifest PATH        Spin manifest [default: spin.toml]
    --listen ADDR          Address to bind, port 0 picks one [default: 127.0.0.1:3000;
                           speech 127.0.0.1:3010 (spin.toml's default provider URLs);
                           origin 127.0.0.1:8081]
    --variable NAME=VALUE  Set an application variable (repeatable; beats SPIN_VARIABLE_<NAME>)
    --max-concurrent N     Requests served at once; more get 503 [default: 64]
    --timeout-secs N       Wall-clock limit per request [default: 60]
    --memory-mib N         Linear memory limit per request [default: 512]
    --no-cache             Do not read or write the compile cache
    --metrics-listen ADDR  Also serve GET /metrics there: responses by status, segments by
                           failure-ladder rung (dub, ducked, original) and fallback reason
    --cache-dir DIR        Compile cache [default: $DUBHOST_CACHE_DIR, else ~/.cache/dubhost]
    --dir DIR, --out DIR   Directory for `origin` and `make-sample` [default: sample]
    --duration SECS        Length of the `make-sample` stream [default: 36]
    --sentence-offset SECS Where each segment's sentence starts in `make-sample` [default: 0.7];
                           past about 3.5 the sentences run across segment boundaries
    -h, --help             Print this help
    -V, --version          Print the version

Application variables also come from the environment as SPIN_VARIABLE_<NAME> (upper case),
as with Spin's environment provider.
";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `--help`.
    Help,
    /// `--version`.
    Version,
    /// `serve`.
    Serve(HostOptions),
    /// `check`.
    Check(HostOptions),
    /// `speech`.
    Speech {
        /// Bind address.
        listen: SocketAddr,
    },
    /// `origin`.
    Origin {
        /// Bind address.
        listen: SocketAddr,
        /// Directory served.
        dir: PathBuf,
    },
    /// `make-sample`.
    MakeSample {
        /// Output directory.
        dir: PathBuf,
        /// Length of the stream in seconds (None: the library default).
        duration_secs: Option<u32>,
        /// Milliseconds from each segment's start to its sentence (None: the library default).
        sentence_offset_ms: Option<u32>,
    },
    /// `inspect`: its arguments, parsed by `crate::inspect::run`.
    Inspect(Vec<String>),
}

/// Options of `serve` and `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOptions {
    /// Manifest path.
    pub manifest: PathBuf,
    /// Bind address (serve only).
    pub listen: SocketAddr,
    /// `--variable` values.
    pub variables: HashMap<String, String>,
    /// Concurrency limit.
    pub max_concurrent: u32,
    /// Per-request timeout in seconds.
    pub timeout_secs: u64,
    /// Per-request memory in MiB.
    pub memory_mib: usize,
    /// Compile cache directory; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Where to serve `GET /metrics` (Prometheus text), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// The default `--listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

fn default_host_options() -> HostOptions {
    HostOptions {
        manifest: PathBuf::from("spin.toml"),
        listen: DEFAULT_LISTEN.parse().expect("valid default address"),
        variables: HashMap::new(),
        max_concurrent: 64,
        timeout_secs: 60,
        memory_mib: 512,
        cache_dir: crate::runtime::default_cache_dir(),
        metrics_listen: None,
    }
}

/// Parse arguments (without the program name).
pub fn parse<I, S>(args: I) -> Result<Command>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let Some(first) = args.first() else {
        return Ok(Command::Help);
    };
    match first.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "-V" | "--version" | "version" => return Ok(Command::Version),
        _ => {}
    }
    let sub = first.as_str();
    if sub == "inspect" {
        return Ok(Command::Inspect(args[1..].to_vec()));
    }
    if !matches!(sub, "serve" | "check" | "speech" | "origin" | "make-sample") {
        bail!("unknown command `{sub}` (try `dubhost --help`)");
    }
    let mut host = default_host_options();
    let mut dir = PathBuf::from("sample");
    let mut duration_secs = None;
    let mut sentence_offset_ms = None;
    let mut listen_given = false;
    let mut it = args[1..].iter();
    while let Some(arg) = it.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| anyhow!("{name} needs a value")),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--manifest" => host.manifest = PathBuf::from(value(flag)?),
            "--listen" => {
                let v = value(flag)?;
                host.listen = v.parse().map_err(|_| {
                    anyhow!("--listen: `{v}` is not an address like 127.0.0.1:3000")
                })?;
                listen_given = true;
            }
            "--variable" => {
                let v = value(flag)?;
                let (name, val) = v
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--variable: expected NAME=VALUE, got `{v}`"))?;
                crate::manifest::validate_variable_name(name)?;
                host.variables.insert(name.to_string(), val.to_string());
            }
            "--max-concurrent" => {
                host.max_concurrent = parse_num(flag, &value(flag)?, 1, 10_000)?;
            }
            "--timeout-secs" => host.timeout_secs = parse_num(flag, &value(flag)?, 1, 3600)?,
            "--memory-mib" => host.memory_mib = parse_num(flag, &value(flag)?, 16, 4096)?,
            "--no-cache" => host.cache_dir = None,
            "--metrics-listen" => {
                let v = value(flag)?;
                host.metrics_listen =
                    Some(v.parse().map_err(|_| {
                        anyhow!("{flag}: `{v}` is not an address like 127.0.0.1:9100")
                    })?);
            }
            "--cache-dir" => host.cache_dir = Some(PathBuf::from(value(flag)?)),
            "--dir" | "--out" => dir = PathBuf::from(value(flag)?),
            "--duration" if sub == "make-sample" => {
                duration_secs = Some(parse_num(flag, &value(flag)?, 6, 3600)?);
            }
            "--sentence-offset" if sub == "make-sample" => {
                let secs: f64 = parse_num(flag, &value(flag)?, 0.0, 60.0)?;
                sentence_offset_ms = Some((secs * 1000.0).round() as u32);
            }
            other => bail!("unknown option `{other}` for `{sub}` (try `dubhost --help`)"),
        }
    }
    Ok(match sub {
        "serve" => Command::Serve(host),
        "check" => Command::Check(host),
        "speech" => Command::Speech {
            listen: if listen_given {
                host.listen
            } else {
                "127.0.0.1:3010".parse().expect("valid default address")
            },
        },
        "origin" => Command::Origin {
            listen: if listen_given {
                host.listen
            } else {
                "127.0.0.1:8081".parse().expect("valid default address")
            },
            dir,
        },
        _ => Command::MakeSample {
            dir,
            duration_secs,
            sentence_offset_ms,
        },
    })
}

fn parse_num<T>(flag: &str, v: &str, min: T, max: T) -> Result<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = v
        .parse()
        .map_err(|_| anyhow!("{flag}: `{v}` is not a number"))?;
    if n < min || n > max {
        bail!("{flag}: {n} is outside {min}..={max}");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_with_flags() {
        let Command::Serve(o) = parse([
            "serve",
            "--manifest",
            "/tmp/spin.toml",
            "--listen=127.0.0.1:0",
            "--variable",
            "signing_key=abc=def",
            "--no-cache",
            "--max-concurrent",
            "8",
        ])
        .unwrap() else {
            panic!("not serve")
        };
        assert_eq!(o.manifest, PathBuf::from("/tmp/spin.toml"));
        assert_eq!(o.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(o.variables["signing_key"], "abc=def");
        assert_eq!(o.cache_dir, None);
        assert_eq!(o.max_concurrent, 8);
        assert_eq!(o.timeout_secs, 60);
    }

    #[test]
    fn defaults_help_version_and_errors() {
        let Command::Check(o) = parse(["check"]).unwrap() else {
            panic!("not check")
        };
        assert_eq!(o.manifest, PathBuf::from("spin.toml"));
        assert_eq!(o.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(parse(Vec::<String>::new()).unwrap(), Command::Help);
        assert_eq!(parse(["--help"]).unwrap(), Command::Help);
        assert_eq!(parse(["serve", "-h"]).unwrap(), Command::Help);
        assert_eq!(parse(["-V"]).unwrap(), Command::Version);
        assert!(parse(["frobnicate"]).is_err());
        assert!(parse(["serve", "--bogus"]).is_err());
        assert!(parse(["serve", "--listen"]).is_err());
        assert!(parse(["serve", "--listen", "localhost"]).is_err());
        assert!(parse(["serve", "--variable", "novalue"]).is_err());
        assert!(parse(["serve", "--variable", "Bad=1"]).is_err());
        assert!(parse(["serve", "--max-concurrent", "0"]).is_err());
        assert_eq!(
            parse(["origin", "--dir", "d"]).unwrap(),
            Command::Origin {
                listen: "127.0.0.1:8081".parse().unwrap(),
                dir: PathBuf::from("d")
            }
        );
        assert_eq!(
            parse(["speech", "--listen", "127.0.0.1:0"]).unwrap(),
            Command::Speech {
                listen: "127.0.0.1:0".parse().unwrap()
            }
        );
    }
}
