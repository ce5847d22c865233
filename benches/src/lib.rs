//! Shared code of the media-path benchmarks: test inputs made with ffmpeg, the path run natively,
//! in wasmtime (the `dub:media` component through its WIT exports) and as ffmpeg subprocesses.
//!
//! `cargo run --release --bin media-table --features dub-benches/wasm` prints the comparison
//! table (no `-p`: selecting the whole workspace keeps wasmtime's features, and its build, the
//! host's);
//! `cargo bench -p dub-benches` runs the criterion benches.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

#[cfg(feature = "wasm")]
pub mod wasm;

/// Sample rate and channels of the benchmark segments.
pub const RATE: u32 = 48_000;
/// Channels of the benchmark segments.
pub const CHANNELS: u16 = 2;
/// Nominal segment length in seconds.
pub const SEGMENT_SECS: u32 = 6;

/// One init + media segment pair, and the files ffmpeg reads.
#[derive(Clone, Debug)]
pub struct SegmentInput {
    /// "demuxed" (audio-only fMP4) or "muxed" (video + audio fMP4).
    pub kind: &'static str,
    /// Init segment bytes.
    pub init: Vec<u8>,
    /// Media segment bytes.
    pub media: Vec<u8>,
    /// init + media concatenated, for ffmpeg.
    pub joined: PathBuf,
}

/// The corpus directory (`shared/corpus` beside the clone).
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
}

fn run_ffmpeg(args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ffmpeg")?;
    if !out.status.success() {
        bail!(
            "ffmpeg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// Make the two benchmark inputs in `dir` with ffmpeg: 12 s of real English speech (corpus
/// "Angel One", 48 kHz stereo AAC-LC) cut into 6 s HLS fMP4 segments, once audio-only and
/// once muxed with an H.264 test pattern; the first 6 s segment of each is used.
pub fn make_inputs(dir: &Path) -> Result<Vec<SegmentInput>> {
    let src = corpus_dir().join("hls-fmp4/shaka-angel-one-speech/audio_en_2c_128k_aac.mp4");
    let src = src.to_str().context("corpus path")?.to_owned();
    let mut inputs = Vec::new();
    for kind in ["demuxed", "muxed"] {
        let d = dir.join(kind);
        std::fs::create_dir_all(&d)?;
        let seg_pattern = d.join("seg%d.m4s");
        let playlist = d.join("index.m3u8");
        let mut args: Vec<String> = vec!["-y".into(), "-ss".into(), "20".into()];
        args.extend(["-t", "12", "-i", &src].map(String::from));
        if kind == "muxed" {
            args.extend(
                [
                    "-f",
                    "lavfi",
                    "-t",
                    "12",
                    "-i",
                    "testsrc2=size=640x360:rate=25",
                    "-map",
                    "1:v",
                    "-map",
                    "0:a",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-g",
                    "150",
                    "-keyint_min",
                    "150",
                    "-sc_threshold",
                    "0",
                ]
                .map(String::from),
            );
        } else {
            args.extend(["-map", "0:a"].map(String::from));
        }
        args.extend(
            [
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-ar",
                "48000",
                "-ac",
                "2",
                "-f",
                "hls",
                "-hls_time",
                "6",
                "-hls_playlist_type",
                "vod",
                "-hls_segment_type",
                "fmp4",
                "-hls_fmp4_init_filename",
                "init.mp4",
                "-hls_segment_filename",
            ]
            .map(String::from),
        );
        args.push(seg_pattern.to_str().context("path")?.to_owned());
        args.push(playlist.to_str().context("path")?.to_owned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ffmpeg(&refs)?;
        let init = std::fs::read(d.join("init.mp4"))?;
        let media = std::fs::read(d.join("seg0.m4s"))?;
        let joined = d.join("joined.mp4");
        std::fs::write(&joined, [init.as_slice(), media.as_slice()].concat())?;
        inputs.push(SegmentInput {
            kind,
            init,
            media,
            joined,
        });
    }
    Ok(inputs)
}

/// The allocator settings dubhost runs with (see `keep_freed_memory` in `host/src/main.rs`):
/// freed segment buffers stay on the heap for the next segment instead of being unmapped and
/// page-faulted back in. Call first thing in `main`, before other threads start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn dubhost_allocator() {
    // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

/// No allocator settings off glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn dubhost_allocator() {}

/// What a timing measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Elapsed wall-clock time.
    Wall,
    /// CPU time of this thread (`CLOCK_THREAD_CPUTIME_ID`) plus that of reaped child processes
    /// (ffmpeg; `/proc/self/stat`, 10 ms ticks): on a shared, loaded machine it is what the
    /// work costs, not how long it waited for a core.
    Cpu,
}

/// Milliseconds on `clock` since an arbitrary origin.
pub fn now_ms(clock: Clock, origin: Instant) -> f64 {
    match clock {
        Clock::Wall => origin.elapsed().as_secs_f64() * 1e3,
        Clock::Cpu => thread_cpu_ms().unwrap_or(f64::NAN) + children_cpu_ms().unwrap_or(f64::NAN),
    }
}

fn thread_cpu_ms() -> Option<f64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6)
}

fn children_cpu_ms() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; cutime and cstime are fields 16 and 17.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(13)?.parse::<f64>().ok()? + f.get(14)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks * 10.0)
}

/// Median of `runs` timings of `f` on `clock`, in milliseconds (after one warm-up call).
pub fn median_on<T>(clock: Clock, runs: usize, mut f: impl FnMut() -> Result<T>) -> Result<f64> {
    f()?;
    let origin = Instant::now();
    let mut t: Vec<f64> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = now_ms(clock, origin);
        std::hint::black_box(f()?);
        t.push(now_ms(clock, origin) - start);
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

/// Medians of `runs` timings on `clock` of each of `jobs` jobs (`f(i)` runs job `i`), taken
/// round-robin (jobs 0 to `jobs - 1`, then again), after one warm-up call each: a slow
/// stretch of a shared machine then weighs on every job alike instead of on whichever job
/// it happened to fall on.
pub fn medians_round_robin(
    clock: Clock,
    runs: usize,
    jobs: usize,
    mut f: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<f64>> {
    for i in 0..jobs {
        f(i)?;
    }
    let origin = Instant::now();
    let mut t: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); jobs];
    for _ in 0..runs {
        for (i, t) in t.iter_mut().enumerate() {
            let start = now_ms(clock, origin);
            f(i)?;
            t.push(now_ms(clock, origin) - start);
        }
    }
    Ok(t.into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t.get(t.len() / 2).copied().unwrap_or(f64::NAN)
        })
        .collect())
}

/// [`median_on`] the wall clock.
pub fn median_ms<T>(runs: usize, f: impl FnMut() -> Result<T>) -> Result<f64> {
    median_on(Clock::Wall, runs, f)
}

/// Native implementation of the path, stage by stage (the same calls dubhost makes).
pub mod native {
    use dub_media::{Background, MixOptions, Pcm, Placement, Segment};

    use super::RATE;

    /// Ducking options of the benchmark mix.
    pub const MIX: MixOptions = MixOptions {
        background: Background::Duck,
        duck_db: 12.0,
    };

    /// Two 2 s "utterances" (the segment's own first 2 s) at 0.5 s and 3.5 s.
    pub fn placements(voice: &Pcm) -> [Placement<'_>; 2] {
        [
            Placement {
                speech: voice,
                start_frame: i64::from(RATE / 2),
                speed: 1.0,
            },
            Placement {
                speech: voice,
                start_frame: i64::from(RATE * 7 / 2),
                speed: 1.0,
            },
        ]
    }

    /// Validate and demux.
    pub fn open(init: &[u8], media: &[u8]) -> dub_media::Result<Segment> {
        dub_media::open_segment(init, media)
    }

    /// The whole path: validate, demux, decode, resample for STT, mix, encode, remux.
    pub fn whole(init: &[u8], media: &[u8]) -> dub_media::Result<Vec<u8>> {
        let seg = open(init, media)?;
        let pcm = dub_media::decode_audio(&seg)?;
        let stt = dub_media::resample(&pcm, 16_000, 1)?;
        std::hint::black_box(stt);
        let voice = pcm.slice(0, 2 * RATE as usize);
        let mixed = dub_media::mix(&pcm, &placements(&voice), &MIX)?;
        dub_media::remux_audio(&seg, &mixed, None)
    }
}

/// The ffmpeg-subprocess path of the original designs, on the same files.
pub mod ffmpeg {
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use anyhow::{Context, Result, bail};

    /// Extract the audio to 48 kHz stereo s16le PCM: `ffmpeg -i init+seg -f s16le -`.
    pub fn extract(joined: &Path) -> Result<Vec<u8>> {
        let p = joined.to_str().context("path")?;
        super::run_ffmpeg(&[
            "-i", p, "-map", "0:a", "-f", "s16le", "-ac", "2", "-ar", "48000", "-",
        ])
    }

    /// Mux new AAC audio (from `pcm`, s16le 48 kHz stereo on stdin) with the segment's video
    /// (if any) copied, as fragmented MP4 on stdout. `joined` is init + media segment: a
    /// media segment alone has no `moov` for ffmpeg to read.
    pub fn mux(joined: &Path, pcm: &[u8]) -> Result<Vec<u8>> {
        let m = joined.to_str().context("path")?;
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-i", m])
            .args(["-f", "s16le", "-ar", "48000", "-ac", "2", "-i", "pipe:0"])
            .args(["-map", "0:v?", "-map", "1:a", "-c:v", "copy", "-c:a", "aac"])
            .args([
                "-f",
                "mp4",
                "-movflags",
                "frag_keyframe+empty_moov+default_base_moof",
            ])
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning ffmpeg")?;
        let mut stdin = child.stdin.take().context("stdin")?;
        let data = pcm.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output()?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        if !out.status.success() || out.stdout.is_empty() {
            bail!(
                "ffmpeg mux failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out.stdout)
    }
}
