//! End to end on real streams from the corpus that are not plain audio-only fMP4: muxed fMP4
//! (video and audio in one segment), MPEG-TS (served by the edge as fMP4) and HE-AAC (dubbed as
//! AAC-LC with a rewritten init). The corpus files are served by the sample origin, the speech
//! engines are the local ones, and dubhost runs the real edge component.
//!
//! Video is checked by decoding: the video frames ffmpeg decodes from the edge's output are
//! identical (per-frame MD5) to those it decodes from the source.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use dub_tests::*;

/// Heavy tests run one at a time: two cores, and deadlines are part of what is tested.
static SERIAL: Mutex<()> = Mutex::new(());

const T: Duration = Duration::from_secs(60);

fn corpus() -> PathBuf {
    artifacts().repo.join("../shared/corpus")
}

/// A directory for the origin with corpus folders copied under the given names, plus extra
/// files written as given.
fn origin_dir(tag: &str, folders: &[(&str, &str)], files: &[(&str, &str)]) -> PathBuf {
    let dir = temp_dir(tag);
    for (name, src) in folders {
        let to = dir.join(name);
        std::fs::create_dir_all(&to).expect("mkdir");
        for e in std::fs::read_dir(corpus().join(src)).expect("corpus folder") {
            let e = e.expect("entry");
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    dir
}

fn origin(dir: &Path) -> Proc {
    let mut c = Command::new(&artifacts().dubhost);
    c.args(["origin", "--dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"]);
    spawn_listening("origin", c, T)
}

fn speech() -> Proc {
    let mut c = Command::new(&artifacts().dubhost);
    c.args(["speech", "--listen", "127.0.0.1:0"]);
    spawn_listening("speech", c, T)
}

fn edge(speech: &Proc) -> Proc {
    let a = artifacts();
    let mut c = Command::new(&a.dubhost);
    c.args(["serve", "--manifest"])
        .arg(a.repo.join("spin.toml"))
        .args(["--listen", "127.0.0.1:0"]);
    for k in ["STT_URL", "MT_URL", "TTS_URL"] {
        c.env(format!("SPIN_VARIABLE_{k}"), speech.base());
    }
    c.env("SPIN_VARIABLE_DEADLINE_MIN_MS", "6000");
    spawn_listening("dubhost", c, Duration::from_secs(300))
}

fn entry(edge: &Proc, src: &str) -> Resp {
    let url = format!(
        "{}/dub/es/index.m3u8?src={}",
        edge.base(),
        encode_query(src)
    );
    let r = get(&url, T).expect("entry playlist");
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

/// Per-frame MD5s of the decoded video of a file (init + segment concatenated, or a TS file).
fn video_frame_md5s(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg framemd5");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|m| m.trim().to_string()))
        .collect()
}

/// `codec_name|profile|sample_rate|channels` of the first audio stream, its packet count and
/// the time it spans (first packet's start to last packet's end), by ffprobe. TS packets often
/// carry no duration: the last one is taken to last as long as the one before it.
fn audio_probe(path: &Path) -> (String, usize, f64) {
    let run = |entries: &str| -> String {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "a:0",
                "-show_entries",
                entries,
            ])
            .args(["-of", "compact=p=0:nk=1"])
            .arg(path)
            .output()
            .expect("ffprobe");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stream = run("stream=codec_name,profile,sample_rate,channels")
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string();
    let pts: Vec<f64> = run("packet=pts_time")
        .lines()
        .filter_map(|l| l.trim().trim_end_matches('|').parse::<f64>().ok())
        .collect();
    let span = match pts.as_slice() {
        [.., a, b] => b - pts[0] + (b - a),
        _ => 0.0,
    };
    (stream, pts.len(), span)
}

/// A muxed MPEG-TS stream with real English speech: the edge serves it as fMP4 with an init it
/// builds, the video frames decode identically to the source's, the audio is dubbed and lasts as
/// long as the source's.
#[test]
fn muxed_ts_is_served_as_fmp4_with_the_video_intact() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = origin_dir(
        "src-ts",
        &[("ts", "hls-ts/shaka-overflow-samples-speech")],
        &[],
    );
    let origin = origin(&dir);
    let speech = speech();
    let edge = edge(&speech);
    let src = format!("{}/vod/ts/media.m3u8", origin.base());
    let playlist = entry(&edge, &src);
    let text = playlist.text();
    assert!(text.contains("#EXT-X-VERSION:6"), "{text}");
    let here = format!("{}/dub/es/index.m3u8", edge.base());
    let init_url = map_uri(&here, &text).expect("the edge adds an EXT-X-MAP");
    let segs = segment_uris(&here, &text);
    assert_eq!(segs.len(), 1);
    assert!(segs[0].contains("/dub/es/s/"), "{}", segs[0]);

    let init = get(&init_url, T).expect("init");
    assert_eq!(init.status, 200, "{}", init.text());
    assert_eq!(init.header("x-dub-init"), Some("built"));
    let seg = get(&segs[0], T).expect("segment");
    assert_eq!(seg.status, 200, "{}", seg.text());
    eprintln!(
        "rung {:?} fallback {:?} timing {:?}",
        seg.header("x-dub-rung"),
        seg.header("x-dub-fallback"),
        seg.header("server-timing")
    );
    assert_eq!(seg.header("content-type"), Some("video/mp4"));

    let work = temp_dir("src-ts-out");
    let mut whole = init.body.clone();
    whole.extend_from_slice(&seg.body);
    assert_eq!(ffmpeg_errors(&work, "out.mp4", &whole), "");
    let out_path = work.join("out.mp4");
    let src_path = dir.join("ts/fileSequence0.ts");
    let (want, got) = (video_frame_md5s(&src_path), video_frame_md5s(&out_path));
    assert!(want.len() > 200, "{} source video frames", want.len());
    assert_eq!(got, want, "decoded video frames differ");

    let (src_stream, src_packets, src_dur) = audio_probe(&src_path);
    let (out_stream, out_packets, out_dur) = audio_probe(&out_path);
    eprintln!(
        "source audio {src_stream} {src_packets} {src_dur:.3}s; out {out_stream} {out_packets} {out_dur:.3}s"
    );
    assert!(out_stream.starts_with("aac|LC|44100|2"), "{out_stream}");
    assert_eq!(out_packets, src_packets);
    assert!((out_dur - src_dur).abs() < 0.001, "{out_dur} vs {src_dur}");
    // Real speech: the dub rung, with the speech replaced.
    assert_eq!(seg.header("x-dub-rung"), Some("dub"));
}

/// A master whose variant carries muxed fMP4: the variant is routed through the edge, the init
/// passes through byte-identical, the video samples are copied and the audio is remuxed.
#[test]
fn muxed_fmp4_variant_is_routed_through_the_edge() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS=\"avc1.42c01f,mp4a.40.2\",RESOLUTION=1280x720\nm/hls.m3u8\n";
    let dir = origin_dir(
        "src-muxed",
        &[("m", "hls-fmp4/shaka-hls-mp4-muxed-aac-h264")],
        &[("master.m3u8", master)],
    );
    let origin = origin(&dir);
    let speech = speech();
    let edge = edge(&speech);
    let m = entry(&edge, &format!("{}/vod/master.m3u8", origin.base()));
    let text = m.text();
    assert!(
        m.header("x-dub-note").is_none(),
        "{:?}",
        m.header("x-dub-note")
    );
    let variant = text
        .lines()
        .find(|l| l.starts_with("/dub/es/p/"))
        .unwrap_or_else(|| panic!("variant not routed:\n{text}"));
    let media_url = format!("{}{variant}", edge.base());
    let p = get(&media_url, T).expect("media playlist");
    assert_eq!(p.status, 200);
    let ptext = p.text();
    let init = get(&map_uri(&media_url, &ptext).expect("map"), T).expect("init");
    let src_init = std::fs::read(dir.join("m/init.mp4")).expect("init");
    assert_eq!(
        init.body, src_init,
        "AAC-LC init passes through byte-identical"
    );
    let segs = segment_uris(&media_url, &ptext);
    assert_eq!(segs.len(), 1);
    let seg = get(&segs[0], T).expect("segment");
    assert_eq!(seg.status, 200);
    eprintln!(
        "rung {:?} fallback {:?}",
        seg.header("x-dub-rung"),
        seg.header("x-dub-fallback")
    );

    let work = temp_dir("src-muxed-out");
    let mut whole = src_init.clone();
    whole.extend_from_slice(&seg.body);
    assert_eq!(ffmpeg_errors(&work, "out.mp4", &whole), "");
    let mut src_whole = src_init;
    src_whole.extend_from_slice(&std::fs::read(dir.join("m/hls11.m4s")).expect("segment"));
    std::fs::write(work.join("src.mp4"), &src_whole).expect("write");
    let want = video_frame_md5s(&work.join("src.mp4"));
    assert!(!want.is_empty());
    assert_eq!(video_frame_md5s(&work.join("out.mp4")), want);
    let (_, src_packets, src_dur) = audio_probe(&work.join("src.mp4"));
    let (out_stream, out_packets, out_dur) = audio_probe(&work.join("out.mp4"));
    assert!(out_stream.starts_with("aac|LC|48000|2"), "{out_stream}");
    assert_eq!(out_packets, src_packets);
    assert!((out_dur - src_dur).abs() < 0.001);
}

/// HE-AAC v2 (SBR + PS) in MPEG-TS with a timed-ID3 stream: dubbed as AAC-LC stereo at the
/// output rate, with an init that says so; the playlist is served as fMP4.
#[test]
fn he_aac_ts_is_served_as_aac_lc() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let playlist = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:5\n#EXTINF:4.992,\nid3-metadata.ts\n#EXT-X-ENDLIST\n";
    let dir = origin_dir(
        "src-he",
        &[("he", "hls-ts/shaka-misc")],
        &[("he/index.m3u8", playlist)],
    );
    let origin = origin(&dir);
    let speech = speech();
    let edge = edge(&speech);
    let p = entry(&edge, &format!("{}/vod/he/index.m3u8", origin.base()));
    let text = p.text();
    let here = format!("{}/dub/es/index.m3u8", edge.base());
    let init = get(&map_uri(&here, &text).expect("map"), T).expect("init");
    assert_eq!(init.status, 200, "{}", init.text());
    let segs = segment_uris(&here, &text);
    let seg = get(&segs[0], T).expect("segment");
    assert_eq!(seg.status, 200, "{}", seg.text());
    eprintln!(
        "rung {:?} fallback {:?}",
        seg.header("x-dub-rung"),
        seg.header("x-dub-fallback")
    );
    let work = temp_dir("src-he-out");
    let mut whole = init.body.clone();
    whole.extend_from_slice(&seg.body);
    assert_eq!(ffmpeg_errors(&work, "out.mp4", &whole), "");
    let (stream, _, dur) = audio_probe(&work.join("out.mp4"));
    assert!(stream.starts_with("aac|LC|48000|2"), "{stream}");
    let (_, _, src_dur) = audio_probe(&dir.join("he/id3-metadata.ts"));
    assert!((dur - src_dur).abs() < 0.03, "{dur} vs {src_dur}");
}

/// A TS stream whose 33-bit PTS wraps (inside segment 28): served as fMP4, decode times keep
/// rising across the wrap, each segment starting where the previous one ends, and the whole
/// rendition decodes without errors.
#[test]
fn ts_pts_rollover_keeps_decode_times_rising() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = origin_dir("src-roll", &[("r", "hls-ts/shaka-hls-ts-rollover")], &[]);
    let origin = origin(&dir);
    let speech = speech();
    let edge = edge(&speech);
    let p = entry(&edge, &format!("{}/vod/r/playlist.m3u8", origin.base()));
    let text = p.text();
    let here = format!("{}/dub/es/index.m3u8", edge.base());
    let init = get(&map_uri(&here, &text).expect("map"), T).expect("init");
    assert_eq!(init.status, 200, "{}", init.text());
    let segs = segment_uris(&here, &text);
    assert_eq!(segs.len(), 10);
    let mut whole = init.body.clone();
    let mut prev_end: Option<u64> = None;
    for (i, u) in segs.iter().enumerate() {
        let r = get(u, T).expect("segment");
        assert_eq!(r.status, 200, "segment {i}: {}", r.text());
        let seg = dub_media::open_segment(&init.body, &r.body).expect("our fMP4 parses");
        let t = seg.timing();
        eprintln!(
            "segment {i}: rung={:?} tfdt={} dur={}",
            r.header("x-dub-rung"),
            t.base_decode_time,
            t.duration
        );
        if let Some(end) = prev_end {
            // 48 kHz: within 1 ms of where the previous segment ended.
            assert!(
                t.base_decode_time.abs_diff(end) <= 48,
                "segment {i} starts at {} but the previous ended at {end}",
                t.base_decode_time
            );
        }
        prev_end = Some(t.base_decode_time + t.duration);
        whole.extend_from_slice(&r.body);
    }
    let work = temp_dir("src-roll-out");
    assert_eq!(ffmpeg_errors(&work, "out.mp4", &whole), "");
    let (_, _, dur) = audio_probe(&work.join("out.mp4"));
    assert!((dur - 20.0).abs() < 0.2, "{dur} s of audio");
}
