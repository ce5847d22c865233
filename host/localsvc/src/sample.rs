//! The sample stream: English espeak-ng speech over a music bed with an H.264 test pattern, as HLS fMP4.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::json;

use crate::process::{TempDir, run};
use crate::wav;

/// The sentences spoken, one per segment, cycling if the stream is longer.
pub const DEFAULT_SENTENCES: &[&str] = &[
    "Welcome to the evening news.",
    "The weather today is sunny and warm.",
    "The city council met on Monday.",
    "Traffic was light on the main roads.",
    "A new park will open next week.",
    "Thank you for watching.",
    "Schools will close early on Friday.",
    "Good night and see you tomorrow.",
];

/// Seconds from a segment's start to its sentence.
pub const SENTENCE_OFFSET: f64 = 0.7;

/// What [`make_sample`] builds.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    /// Length of the stream. Default 36 s (six segments).
    pub duration_secs: u32,
    /// Target segment length. Default 6 s.
    pub segment_secs: u32,
    /// espeak-ng voice of the speech. Default `en-us+f2`: of the English voices it is the one
    /// pocketsphinx recognises best (measured; plain `en` scores about half as well).
    pub voice: String,
    /// espeak-ng words per minute. Default 150 (measured best for recognition).
    pub words_per_minute: u32,
    /// Sentences to speak, one per segment. Default [`DEFAULT_SENTENCES`].
    pub sentences: Vec<String>,
    /// Seconds from each segment's start to its sentence. Default [`SENTENCE_OFFSET`]; a
    /// larger offset makes sentences run across segment boundaries.
    pub sentence_offset: f64,
    /// Deadline for each ffmpeg/espeak-ng run. Default 300 s.
    pub timeout: Duration,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            duration_secs: 36,
            segment_secs: 6,
            voice: "en-us+f2".into(),
            words_per_minute: 150,
            sentences: DEFAULT_SENTENCES.iter().map(|s| (*s).to_owned()).collect(),
            sentence_offset: SENTENCE_OFFSET,
            timeout: Duration::from_secs(300),
        }
    }
}

/// A sentence of the sample and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSentence {
    /// The text spoken.
    pub text: String,
    /// Start, seconds from the start of the stream.
    pub start: f64,
    /// End, seconds from the start of the stream.
    pub end: f64,
}

/// What [`make_sample`] built.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleInfo {
    /// The output directory.
    pub dir: PathBuf,
    /// Segments per rendition.
    pub segments: usize,
    /// Stream length in seconds.
    pub duration_secs: f64,
    /// The sentences, in order (also in `speech.json`).
    pub sentences: Vec<SampleSentence>,
    /// The variant's CODECS attribute, from the actual encode (e.g. `avc1.64001e,mp4a.40.2`).
    pub codecs: String,
    /// The variant's peak BANDWIDTH, video plus audio, bits per second.
    pub bandwidth: u64,
}

fn os(s: &str) -> std::ffi::OsString {
    s.into()
}

/// Builds `master.m3u8`, `audio.m3u8` (+ `audio_init.mp4`, `audio_NNN.m4s`), `video.m3u8`
/// (+ `video_init.mp4`, `video_NNN.m4s`) and `speech.json` in `out_dir` (created if needed).
/// Blocking (it runs ffmpeg for a few seconds): from async code use `spawn_blocking`.
pub fn make_sample(out_dir: &Path, opts: &SampleOptions) -> anyhow::Result<SampleInfo> {
    ensure!(
        opts.segment_secs >= 2 && opts.segment_secs.is_multiple_of(2),
        "segment length must be an even number of seconds (keyframes every 2 s)"
    );
    ensure!(
        opts.duration_secs >= opts.segment_secs && opts.duration_secs <= 3600,
        "duration must be one segment to one hour"
    );
    ensure!(
        opts.duration_secs.is_multiple_of(opts.segment_secs),
        "duration must be a whole number of segments"
    );
    ensure!(!opts.sentences.is_empty(), "no sentences");
    ensure!(
        opts.sentence_offset.is_finite()
            && (0.0..f64::from(opts.segment_secs)).contains(&opts.sentence_offset),
        "sentence offset must be within a segment"
    );
    std::fs::create_dir_all(out_dir).context("creating the output directory")?;
    // A thread of its own, so callers inside a tokio runtime do not trip "runtime within a runtime".
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(build(out_dir, opts))
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("sample builder thread panicked")))
    })
}

async fn build(out: &Path, opts: &SampleOptions) -> anyhow::Result<SampleInfo> {
    let t = opts.timeout;
    let tmp = TempDir::new("dub-sample")?;
    let seg = f64::from(opts.segment_secs);
    let dur = f64::from(opts.duration_secs);
    let nseg = (opts.duration_secs / opts.segment_secs) as usize;

    // 1. One sentence per segment, SENTENCE_OFFSET after its start.
    let mut sentences = Vec::new();
    let mut inputs = Vec::new();
    let wpm = opts.words_per_minute.clamp(80, 450).to_string();
    for i in 0..nseg {
        let text = &opts.sentences[i % opts.sentences.len()];
        let file = tmp.path().join(format!("s{i}.wav"));
        let args = [
            os("-v"),
            os(&opts.voice),
            os("-s"),
            os(&wpm),
            os("-w"),
            file.clone().into(),
            os("--stdin"),
        ];
        run("espeak-ng", &args, Some(text.as_bytes()), t, 1 << 20)
            .await
            .context("espeak-ng")?;
        let bytes = std::fs::read(&file)?;
        let info = wav::parse(&bytes).context("espeak-ng wrote no PCM WAV")?;
        let len = info.duration_secs();
        let start = i as f64 * seg + opts.sentence_offset;
        // Each sentence ends 0.2 s before the next one starts and before the stream ends.
        let next = (i as f64 + 1.0) * seg + opts.sentence_offset;
        let limit = next.min(dur) - 0.2;
        if start + len > limit {
            if i > 0 && next > dur {
                // Late sentences: the last segment has none rather than one cut by the end.
                break;
            }
            bail!("sentence {text:?} ({len:.2} s) does not fit before {limit:.2} s");
        }
        sentences.push(SampleSentence {
            text: text.clone(),
            start,
            end: start + len,
        });
        inputs.push(file);
    }

    // 2. Mix: speech over a three-note chord bed about 20 dB lower (RMS), 48 kHz stereo.
    let mut graph = String::new();
    for (i, s) in sentences.iter().enumerate() {
        let ms = (s.start * 1000.0).round() as u64;
        write!(
            graph,
            "[{i}:a]aresample=48000,aformat=channel_layouts=mono,adelay=delays={ms}:all=1,volume=0.8[s{i}];"
        )?;
    }
    // Chord changes every 3 s (A minor / F major), so the bed is audibly music, not a test tone.
    write!(
        graph,
        "aevalsrc=exprs='0.004*sin(2*PI*t*if(lt(mod(t,6),3),220,174.61))+0.004*sin(2*PI*t*if(lt(mod(t,6),3),261.63,220))+0.004*sin(2*PI*t*329.63)':s=48000:d={dur}[m];"
    )?;
    for i in 0..sentences.len() {
        write!(graph, "[s{i}]")?;
    }
    // The AAC encoder's 1024 priming samples would otherwise spill one frame into an extra 21 ms
    // segment; ending the audio 1024 samples early gives exactly one segment per video segment.
    let end_sample = u64::from(opts.duration_secs) * 48_000 - 1024;
    write!(
        graph,
        "[m]amix=inputs={}:normalize=0:duration=longest,atrim=end_sample={end_sample},aformat=sample_fmts=s16:sample_rates=48000:channel_layouts=stereo[out]",
        sentences.len() + 1
    )?;
    let mix = tmp.path().join("mix.wav");
    let mut args = vec![
        os("-nostdin"),
        os("-hide_banner"),
        os("-loglevel"),
        os("error"),
    ];
    for f in &inputs {
        args.extend([os("-i"), f.clone().into()]);
    }
    args.extend([
        os("-filter_complex"),
        os(&graph),
        os("-map"),
        os("[out]"),
        os("-y"),
        mix.clone().into(),
    ]);
    run("ffmpeg", &args, None, t, 1 << 20)
        .await
        .context("ffmpeg mix")?;

    // 3. Audio rendition: AAC-LC 48 kHz stereo 128k, fMP4 HLS.
    let hls = |name: &str| -> Vec<std::ffi::OsString> {
        vec![
            os("-f"),
            os("hls"),
            os("-hls_time"),
            os(&opts.segment_secs.to_string()),
            os("-hls_playlist_type"),
            os("vod"),
            os("-hls_segment_type"),
            os("fmp4"),
            os("-hls_flags"),
            os("independent_segments"),
            os("-hls_fmp4_init_filename"),
            os(&format!("{name}_init.mp4")),
            os("-hls_segment_filename"),
            out.join(format!("{name}_%03d.m4s")).into(),
            os("-fflags"),
            os("+bitexact"),
            os("-flags"),
            os("+bitexact"),
            os("-map_metadata"),
            os("-1"),
            os("-y"),
            out.join(format!("{name}.m3u8")).into(),
        ]
    };
    let mut args = vec![
        os("-nostdin"),
        os("-hide_banner"),
        os("-loglevel"),
        os("error"),
        os("-i"),
        mix.clone().into(),
    ];
    args.extend([
        os("-c:a"),
        os("aac"),
        os("-b:a"),
        os("128k"),
        os("-ar"),
        os("48000"),
        os("-ac"),
        os("2"),
    ]);
    args.extend(hls("audio"));
    run("ffmpeg", &args, None, t, 1 << 20)
        .await
        .context("ffmpeg audio encode")?;

    // 4. Video rendition: H.264 High@3.0 test pattern, keyframe every 2 s, fMP4 HLS.
    let mut args = vec![
        os("-nostdin"),
        os("-hide_banner"),
        os("-loglevel"),
        os("error"),
    ];
    args.extend([
        os("-f"),
        os("lavfi"),
        os("-i"),
        os(&format!("testsrc2=size=640x360:rate=25:duration={dur}")),
    ]);
    args.extend([
        os("-c:v"),
        os("libx264"),
        os("-preset"),
        os("veryfast"),
        os("-profile:v"),
        os("high"),
        os("-level:v"),
        os("3.0"),
        os("-pix_fmt"),
        os("yuv420p"),
        os("-g"),
        os("50"),
        os("-keyint_min"),
        os("50"),
        os("-sc_threshold"),
        os("0"),
        os("-b:v"),
        os("800k"),
        os("-maxrate"),
        os("1000k"),
        os("-bufsize"),
        os("2000k"),
    ]);
    args.extend(hls("video"));
    run("ffmpeg", &args, None, t, 1 << 20)
        .await
        .context("ffmpeg video encode")?;

    // 5. Master playlist from what was actually encoded.
    let audio_pl = std::fs::read_to_string(out.join("audio.m3u8"))?;
    let video_pl = std::fs::read_to_string(out.join("video.m3u8"))?;
    let audio_segs = segment_list(&audio_pl);
    let video_segs = segment_list(&video_pl);
    ensure!(
        audio_segs.len() == nseg && video_segs.len() == nseg,
        "expected {nseg} segments, got {} audio and {} video",
        audio_segs.len(),
        video_segs.len()
    );
    let avc = avc_codec(&std::fs::read(out.join("video_init.mp4"))?)
        .context("no avcC in video_init.mp4")?;
    let probe = tmp.path().join("probe.mp4");
    let first_seg = audio_segs
        .first()
        .map(|(_, f)| f.as_str())
        .unwrap_or_default();
    std::fs::write(
        &probe,
        [
            std::fs::read(out.join("audio_init.mp4"))?,
            std::fs::read(out.join(first_seg))?,
        ]
        .concat(),
    )?;
    let aac = aac_codec(&probe, t).await?;
    let codecs = format!("{avc},{aac}");
    let mut peak = 0f64;
    let mut total_bits = 0f64;
    for ((ad, af), (vd, vf)) in audio_segs.iter().zip(&video_segs) {
        let bits = (std::fs::metadata(out.join(af))?.len() + std::fs::metadata(out.join(vf))?.len())
            as f64
            * 8.0;
        peak = peak.max(bits / ad.max(*vd).max(0.1));
        total_bits += bits;
    }
    let bandwidth = peak.ceil() as u64;
    let average = (total_bits / dur).ceil() as u64;
    let master = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",LANGUAGE=\"en\",NAME=\"English\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio.m3u8\"\n\
         #EXT-X-STREAM-INF:BANDWIDTH={bandwidth},AVERAGE-BANDWIDTH={average},CODECS=\"{codecs}\",RESOLUTION=640x360,FRAME-RATE=25.000,AUDIO=\"aud\"\n\
         video.m3u8\n"
    );
    std::fs::write(out.join("master.m3u8"), master)?;
    let speech = json!({
        "voice": opts.voice,
        "words_per_minute": opts.words_per_minute,
        "sentences": sentences.iter().map(|s| json!({"text": s.text, "start": s.start, "end": s.end})).collect::<Vec<_>>(),
    });
    std::fs::write(out.join("speech.json"), serde_json::to_vec_pretty(&speech)?)?;
    Ok(SampleInfo {
        dir: out.to_owned(),
        segments: nseg,
        duration_secs: dur,
        sentences,
        codecs,
        bandwidth,
    })
}

/// (EXTINF duration, URI) of each segment of a media playlist.
fn segment_list(pl: &str) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    let mut dur = None;
    for l in pl.lines() {
        if let Some(d) = l.strip_prefix("#EXTINF:") {
            dur = d.split(',').next().and_then(|d| d.trim().parse().ok());
        } else if !l.starts_with('#')
            && !l.trim().is_empty()
            && let Some(d) = dur.take()
        {
            out.push((d, l.trim().to_owned()));
        }
    }
    out
}

/// `avc1.PPCCLL` from the first avcC box's profile, constraint flags and level bytes.
fn avc_codec(init: &[u8]) -> Option<String> {
    let i = init.windows(4).position(|w| w == b"avcC")?;
    let b = init.get(i + 4..i + 8)?;
    (b[0] == 1).then(|| format!("avc1.{:02x}{:02x}{:02x}", b[1], b[2], b[3]))
}

/// `mp4a.40.<object type>` from ffprobe's profile of the encoded audio (init + a media segment:
/// ffprobe reports no profile without packets).
async fn aac_codec(file: &Path, t: Duration) -> anyhow::Result<String> {
    let args = [
        os("-v"),
        os("error"),
        os("-select_streams"),
        os("a:0"),
        os("-show_entries"),
        os("stream=codec_name,profile"),
        os("-of"),
        os("csv=p=0"),
        file.into(),
    ];
    let o = run("ffprobe", &args, None, t, 1 << 16)
        .await
        .context("ffprobe")?;
    let s = String::from_utf8_lossy(&o.stdout);
    match s.trim() {
        "aac,LC" => Ok("mp4a.40.2".into()),
        "aac,HE-AAC" => Ok("mp4a.40.5".into()),
        "aac,HE-AACv2" => Ok("mp4a.40.29".into()),
        other => bail!("unexpected audio codec {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_and_segment_lists() {
        let init = b"....avcC\x01\x64\x00\x1e\xff";
        assert_eq!(avc_codec(init).as_deref(), Some("avc1.64001e"));
        assert_eq!(avc_codec(b"avcC\x01\x64"), None);
        let pl = "#EXTM3U\n#EXT-X-MAP:URI=\"a_init.mp4\"\n#EXTINF:6.016000,\na_000.m4s\n#EXTINF:5.98,\na_001.m4s\n#EXT-X-ENDLIST\n";
        assert_eq!(
            segment_list(pl),
            vec![(6.016, "a_000.m4s".into()), (5.98, "a_001.m4s".into())]
        );
    }

    #[tokio::test]
    async fn bad_options_are_errors_even_inside_a_runtime() {
        let dir = std::env::temp_dir().join("dub-sample-never-created");
        for bad in [
            SampleOptions {
                duration_secs: 13,
                ..SampleOptions::default()
            },
            SampleOptions {
                segment_secs: 5,
                ..SampleOptions::default()
            },
            SampleOptions {
                sentences: vec![],
                ..SampleOptions::default()
            },
            SampleOptions {
                sentence_offset: 6.0,
                ..SampleOptions::default()
            },
        ] {
            assert!(make_sample(&dir, &bad).is_err());
        }
        assert!(!dir.exists());
    }
}
