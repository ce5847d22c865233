//! dubhost: runs the dub-edge Spin application natively on wasmtime, the way `spin up` would,
//! with `dub:media` provided natively instead of as a wasm component; also hosts the local
//! speech service and sample HLS origin from `dub-localsvc`.
//!
//! `dubhost serve --manifest spin.toml --listen 127.0.0.1:3000` reads the manifest's variables
//! (overridable as `SPIN_VARIABLE_<NAME>`), HTTP triggers and components, compiles each
//! component once (cached in `~/.cache/dubhost`), and serves every request in a fresh store.

mod bindings;
mod cli;
mod inspect;
mod kv;
mod manifest;
mod media;
mod metrics;
mod outbound;
mod router;
mod runtime;
mod server;

use anyhow::{Context, Result};
use cli::{Command, HostOptions};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cmd = match cli::parse(std::env::args().skip(1)) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("dubhost: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(cmd) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dubhost: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Keep freed heap memory for reuse instead of returning it to the kernel.
///
/// Every segment the native media path handles allocates a few MB of PCM (decoded audio, the
/// mix, the speech-recognition copy) and frees it. glibc's defaults put such blocks in fresh
/// `mmap`s or trim them off the heap on free, so each segment page-faults all of it back in:
/// about 1,900 faults per segment, 0.7 ms of the 9 ms media path in `media-table` and more on a
/// loaded machine (see `benches/`). With blocks up to 32 MiB on the heap and up to 128 MiB of
/// free heap kept, the next segment reuses the same pages.
/// The benchmark processes apply the same settings (`dub_benches::dubhost_allocator`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; it is called first thing in `main`,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        // Its own exit codes (0 valid, 2 invalid, 1 usage/IO); stdout is flushed by `run`.
        Command::Inspect(args) => match inspect::run(&args) {
            0 => Ok(()),
            code => std::process::exit(code.into()),
        },
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Command::Version => {
            println!("dubhost {} (wasmtime 48.0.8)", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Check(opts) => {
            let t0 = Instant::now();
            let (app, runtime) = load(&opts)?;
            let rt = tokio_runtime()?;
            rt.block_on(async {
                for id in app.components.keys() {
                    let Some(c) = runtime.component(id) else {
                        continue;
                    };
                    let mut store = runtime.new_store(c);
                    c.pre()
                        .instantiate_async(&mut store)
                        .await
                        .map_err(|e| anyhow::anyhow!("instantiating `{id}`: {e:#}"))?;
                }
                Ok::<_, anyhow::Error>(())
            })?;
            println!(
                "dubhost: {} ok: {} route(s), {} component(s) instantiated in {} ms",
                opts.manifest.display(),
                app.routes.len(),
                app.components.len(),
                t0.elapsed().as_millis()
            );
            Ok(())
        }
        Command::Serve(opts) => {
            let (app, runtime) = load(&opts)?;
            let router = router::Router::new(&app.routes)?;
            let rt = tokio_runtime()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(opts.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", opts.listen))?;
                let local = listener.local_addr()?;
                let server = Arc::new(server::Server::new(Arc::new(runtime), router, local));
                if let Some(addr) = opts.metrics_listen {
                    let l = tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
                    eprintln!("dubhost: metrics on http://{}/metrics", l.local_addr()?);
                    tokio::spawn(metrics::serve(l, server.metrics()));
                }
                println!("dubhost listening on http://{local}");
                eprintln!("dubhost: serving application `{}`", app.name);
                std::io::stdout().flush()?;
                for (route, component) in &app.routes {
                    eprintln!("dubhost:   {route} -> {component}");
                }
                tokio::select! {
                    r = server.serve(listener) => r,
                    _ = shutdown_signal() => {
                        eprintln!("dubhost: shutting down");
                        Ok(())
                    }
                }
            })?;
            // Requests still running are abandoned with the runtime.
            rt.shutdown_timeout(Duration::from_secs(1));
            Ok(())
        }
        Command::Speech { listen } => serve_local(listen, "speech", |listener| async move {
            dub_localsvc::serve_speech(listener, dub_localsvc::SpeechOptions::default()).await
        }),
        Command::Origin { listen, dir } => serve_local(listen, "origin", |listener| async move {
            dub_localsvc::serve_origin(listener, dir, dub_localsvc::OriginOptions::default()).await
        }),
        Command::MakeSample {
            dir,
            duration_secs,
            sentence_offset_ms,
        } => {
            let mut opts = dub_localsvc::SampleOptions::default();
            if let Some(d) = duration_secs {
                opts.duration_secs = d;
            }
            if let Some(ms) = sentence_offset_ms {
                opts.sentence_offset = f64::from(ms) / 1000.0;
            }
            // `make_sample` runs its own single-threaded runtime: call it outside tokio.
            let info = dub_localsvc::make_sample(&dir, &opts)?;
            println!(
                "dubhost: wrote {} segment(s), {:.1} s, to {}",
                info.segments,
                info.duration_secs,
                info.dir.display()
            );
            Ok(())
        }
    }
}

/// Bind `listen`, print the same `dubhost listening on http://ADDR` line as `serve`, and run a
/// local service until it fails or the process is signalled.
fn serve_local<F, Fut>(listen: std::net::SocketAddr, what: &str, service: F) -> Result<()>
where
    F: FnOnce(tokio::net::TcpListener) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let rt = tokio_runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        println!("dubhost listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        eprintln!("dubhost: {what} service");
        tokio::select! {
            r = service(listener) => r,
            _ = shutdown_signal() => Ok(()),
        }
    })
}

fn load(opts: &HostOptions) -> Result<(manifest::App, runtime::Runtime)> {
    let overrides = manifest::Overrides::from_process(opts.variables.clone());
    let app = manifest::load(&opts.manifest, &overrides)?;
    let limits = runtime::Limits {
        max_concurrent: opts.max_concurrent,
        memory_bytes: opts.memory_mib << 20,
        request_timeout: Duration::from_secs(opts.timeout_secs),
        ..runtime::Limits::default()
    };
    let runtime = runtime::Runtime::new(&app, limits, opts.cache_dir.as_deref())?;
    Ok((app, runtime))
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dubhost")
        .build()
        .context("starting the tokio runtime")
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
