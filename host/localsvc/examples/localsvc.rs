//! Stand-alone runner with the flags proposed for `dubhost speech|origin|sample`.
//!
//! ```text
//! cargo run -p dub-localsvc --example localsvc -- speech --listen 127.0.0.1:8090 [--default-voice es] [--concurrency 2] [--timeout-secs 60] [--vad-threshold 3.5]
//! cargo run -p dub-localsvc --example localsvc -- sample --out DIR [--duration 36] [--segment 6] [--voice en-us+f2] [--wpm 150]
//! cargo run -p dub-localsvc --example localsvc -- origin --listen 127.0.0.1:8091 --dir DIR [--window 4] [--start-offset 4] [--speed 1.0]
//! ```

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use dub_localsvc::{OriginOptions, SampleOptions, SpeechOptions};

fn flags(args: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut m = HashMap::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let Some(name) = k.strip_prefix("--") else {
            bail!("unexpected argument {k}")
        };
        let v = it
            .next()
            .with_context(|| format!("--{name} needs a value"))?;
        m.insert(name.to_owned(), v.clone());
    }
    Ok(m)
}

fn get<T: std::str::FromStr>(
    f: &HashMap<String, String>,
    k: &str,
    default: T,
) -> anyhow::Result<T> {
    match f.get(k) {
        Some(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("bad value for --{k}: {v}")),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args
        .split_first()
        .context("usage: localsvc speech|origin|sample [--flag value]…")?;
    let f = flags(rest)?;
    match cmd.as_str() {
        "speech" => {
            let d = SpeechOptions::default();
            let opts = SpeechOptions {
                default_voice: get(&f, "default-voice", d.default_voice)?,
                max_concurrency: get(&f, "concurrency", d.max_concurrency)?,
                timeout: Duration::from_secs(get(&f, "timeout-secs", d.timeout.as_secs())?),
                vad_threshold: get(&f, "vad-threshold", d.vad_threshold)?,
                ..d
            };
            let l = tokio::net::TcpListener::bind(get(&f, "listen", "127.0.0.1:8090".to_owned())?)
                .await?;
            eprintln!("speech service on http://{}", l.local_addr()?);
            dub_localsvc::serve_speech(l, opts).await
        }
        "origin" => {
            let d = OriginOptions::default();
            let opts = OriginOptions {
                window: get(&f, "window", d.window)?,
                start_offset_segments: get(&f, "start-offset", d.start_offset_segments)?,
                speed: get(&f, "speed", d.speed)?,
            };
            let dir: std::path::PathBuf = f.get("dir").context("--dir is required")?.into();
            let l = tokio::net::TcpListener::bind(get(&f, "listen", "127.0.0.1:8091".to_owned())?)
                .await?;
            eprintln!(
                "origin on http://{}/vod/master.m3u8 and /live/master.m3u8",
                l.local_addr()?
            );
            dub_localsvc::serve_origin(l, dir, opts).await
        }
        "sample" => {
            let d = SampleOptions::default();
            let opts = SampleOptions {
                duration_secs: get(&f, "duration", d.duration_secs)?,
                segment_secs: get(&f, "segment", d.segment_secs)?,
                voice: get(&f, "voice", d.voice.clone())?,
                words_per_minute: get(&f, "wpm", d.words_per_minute)?,
                ..d
            };
            let out: std::path::PathBuf = f.get("out").context("--out is required")?.into();
            let info = tokio::task::spawn_blocking(move || dub_localsvc::make_sample(&out, &opts))
                .await??;
            println!(
                "{} segments, CODECS {}, BANDWIDTH {}",
                info.segments, info.codecs, info.bandwidth
            );
            for s in &info.sentences {
                println!("{:7.3}–{:7.3} {}", s.start, s.end, s.text);
            }
            Ok(())
        }
        other => bail!("unknown command {other}; use speech, origin or sample"),
    }
}
