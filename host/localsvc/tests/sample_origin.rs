//! make_sample with real ffmpeg/espeak-ng, served by the origin over real HTTP.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use dub_localsvc::{OriginOptions, SampleOptions, make_sample, serve_origin};
use serde_json::Value;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dub-localsvc-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Finds the first box `name` in `data` (flat scan into moof/traf) and returns its payload.
fn find_box<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
    let (want, rest) = path.split_first()?;
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().ok()?) as usize;
        if size < 8 || pos + size > data.len() {
            return None;
        }
        if &data[pos + 4..pos + 8] == *want {
            let payload = &data[pos + 8..pos + size];
            return if rest.is_empty() {
                Some(payload)
            } else {
                find_box(payload, rest)
            };
        }
        pos += size;
    }
    None
}

/// baseMediaDecodeTime of the first traf.
fn tfdt(segment: &[u8]) -> u64 {
    let t = find_box(segment, &[b"moof", b"traf", b"tfdt"]).unwrap();
    if t[0] == 1 {
        u64::from_be_bytes(t[4..12].try_into().unwrap())
    } else {
        u64::from(u32::from_be_bytes(t[4..8].try_into().unwrap()))
    }
}

/// Sample count of the first traf's trun.
fn trun_samples(segment: &[u8]) -> u32 {
    let t = find_box(segment, &[b"moof", b"traf", b"trun"]).unwrap();
    u32::from_be_bytes(t[4..8].try_into().unwrap())
}

fn ffprobe(file: &Path, entries: &str) -> String {
    String::from_utf8(cmd(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            entries,
            "-of",
            "default=nw=1",
            file.to_str().unwrap(),
        ],
    ))
    .unwrap()
}

fn uris(pl: &str) -> Vec<String> {
    pl.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_is_real_hls_and_origin_serves_vod_and_live() {
    if skip_without(&["ffmpeg", "ffprobe", "espeak-ng"]) {
        return;
    }
    let dir = tempdir("sample");
    let opts = SampleOptions {
        duration_secs: 12,
        ..SampleOptions::default()
    };
    let d = dir.clone();
    let started = std::time::Instant::now();
    let info = tokio::task::spawn_blocking(move || make_sample(&d, &opts))
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "make_sample 12 s: {} ms, codecs {}, bandwidth {}",
        started.elapsed().as_millis(),
        info.codecs,
        info.bandwidth
    );
    assert_eq!(info.segments, 2);
    assert_eq!(info.codecs, "avc1.64001e,mp4a.40.2");
    assert_eq!(info.sentences.len(), 2);
    for (i, s) in info.sentences.iter().enumerate() {
        let seg_start = i as f64 * 6.0;
        assert!(
            s.start >= seg_start + 0.5 && s.end <= seg_start + 6.0 && s.end - s.start > 1.0,
            "{s:?}"
        );
    }
    let speech: Value =
        serde_json::from_slice(&std::fs::read(dir.join("speech.json")).unwrap()).unwrap();
    assert_eq!(speech["sentences"][1]["text"], info.sentences[1].text);
    assert_eq!(
        speech["sentences"][1]["start"].as_f64().unwrap(),
        info.sentences[1].start
    );

    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(serve_origin(l, dir.clone(), OriginOptions::default()));

    let (status, headers, master) = get(addr, "/vod/master.m3u8").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/vnd.apple.mpegurl");
    let master = String::from_utf8(master.to_vec()).unwrap();
    assert!(master.contains("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",LANGUAGE=\"en\",NAME=\"English\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio.m3u8\""), "{master}");
    assert!(
        master.contains("CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360"),
        "{master}"
    );
    assert!(master.contains(&format!("BANDWIDTH={},", info.bandwidth)));
    assert_eq!(uris(&master), ["video.m3u8"]);

    // Audio: two ~6 s segments of AAC-LC 48 kHz stereo, decode times continuous.
    let (_, _, audio_pl) = get(addr, "/vod/audio.m3u8").await;
    let audio_pl = String::from_utf8(audio_pl.to_vec()).unwrap();
    assert!(
        audio_pl.contains("#EXT-X-MAP:URI=\"audio_init.mp4\""),
        "{audio_pl}"
    );
    assert!(audio_pl.contains("#EXT-X-ENDLIST") && audio_pl.contains("#EXT-X-PLAYLIST-TYPE:VOD"));
    assert_eq!(uris(&audio_pl), ["audio_000.m4s", "audio_001.m4s"]);
    let (status, headers, init) = get(addr, "/vod/audio_init.mp4").await;
    assert_eq!(
        (status.as_u16(), headers["content-type"].to_str().unwrap()),
        (200, "video/mp4")
    );
    let (_, _, seg0) = get(addr, "/vod/audio_000.m4s").await;
    let (_, headers, seg1) = get(addr, "/vod/audio_001.m4s").await;
    assert_eq!(headers["content-type"], "video/mp4");
    let n0 = trun_samples(&seg0);
    assert!((280..=283).contains(&n0), "{n0} AAC frames in segment 0");
    assert_eq!(
        tfdt(&seg1),
        tfdt(&seg0) + u64::from(n0) * 1024,
        "segment 1 starts where 0 ends"
    );
    let joined = dir.join("probe_audio.mp4");
    std::fs::write(&joined, [&init[..], &seg0[..]].concat()).unwrap();
    let p = ffprobe(&joined, "stream=codec_name,profile,sample_rate,channels");
    for want in [
        "codec_name=aac",
        "profile=LC",
        "sample_rate=48000",
        "channels=2",
    ] {
        assert!(p.contains(want), "{p}");
    }
    // The speech is really in there: louder where the sentence is than in the lead-in.
    let pcm = cmd(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            joined.to_str().unwrap(),
            "-ac",
            "1",
            "-f",
            "s16le",
            "-",
        ],
    );
    let s: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let sent = &info.sentences[0];
    let (a, b) = (
        (sent.start * 48000.0) as usize,
        (sent.end * 48000.0) as usize,
    );
    let lead = rms(&s[4800..(0.5 * 48000.0) as usize]);
    let speech_rms = rms(&s[a..b.min(s.len())]);
    assert!(
        speech_rms > lead * 7.0 && lead > 0.001,
        "speech {speech_rms} vs music bed {lead}"
    );

    // Video: H.264 640x360 in two 6 s segments.
    let (_, _, video_pl) = get(addr, "/vod/video.m3u8").await;
    let video_pl = String::from_utf8(video_pl.to_vec()).unwrap();
    assert_eq!(uris(&video_pl), ["video_000.m4s", "video_001.m4s"]);
    assert_eq!(
        video_pl.matches("#EXTINF:6.000000,").count(),
        2,
        "{video_pl}"
    );
    let (_, _, vinit) = get(addr, "/vod/video_init.mp4").await;
    let (_, _, v0) = get(addr, "/vod/video_000.m4s").await;
    let vjoined = dir.join("probe_video.mp4");
    std::fs::write(&vjoined, [&vinit[..], &v0[..]].concat()).unwrap();
    let p = ffprobe(&vjoined, "stream=codec_name,profile,width,height");
    for want in ["codec_name=h264", "profile=High", "width=640", "height=360"] {
        assert!(p.contains(want), "{p}");
    }

    // No way out of the directory, and no dot files.
    for bad in [
        "/vod/../Cargo.toml",
        "/vod/%2e%2e/x",
        "/vod/.hidden",
        "/vod/",
        "/other/master.m3u8",
        "/vod/nope.m3u8",
    ] {
        let (status, _, _) = get(addr, bad).await;
        assert_eq!(status, 404, "{bad}");
    }

    // Live: same master; media playlists are a 4-segment window looping over the 2 VOD segments.
    let (_, _, live_master) = get(addr, "/live/master.m3u8").await;
    assert_eq!(live_master, master.as_bytes());
    let (status, headers, live) = get(addr, "/live/audio.m3u8").await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "max-age=1");
    let live = String::from_utf8(live.to_vec()).unwrap();
    assert!(
        !live.contains("#EXT-X-ENDLIST") && !live.contains("PLAYLIST-TYPE"),
        "{live}"
    );
    assert!(live.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{live}");
    assert_eq!(
        uris(&live),
        [
            "audio_000.m4s",
            "audio_001.m4s",
            "audio_000.m4s",
            "audio_001.m4s"
        ]
    );
    assert_eq!(live.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    assert_eq!(
        live.matches("#EXT-X-PROGRAM-DATE-TIME:").count(),
        4,
        "{live}"
    );
    let (status, _, live_seg) = get(addr, "/live/audio_001.m4s").await;
    assert_eq!(status, 200);
    assert_eq!(live_seg, seg1);

    let (_, _, stats) = get(addr, "/stats").await;
    let stats: Value = serde_json::from_slice(&stats).unwrap();
    assert_eq!(stats["/vod/audio_001.m4s"], 1);
    assert_eq!(stats["/live/audio_001.m4s"], 1);
    assert_eq!(stats["/vod/master.m3u8"], 1);

    // The sample's speech is recognisable by the local STT, at the recorded time (fMP4 goes in as is).
    if !skip_without(&["pocketsphinx_continuous", "sox"]) {
        let stt = start_speech().await;
        let body = multipart(
            "bb",
            &[("response_format", "verbose_json")],
            &[&init[..], &seg0[..]].concat(),
        );
        let (status, _, body) = http(
            stt,
            "POST",
            "/v1/audio/transcriptions",
            Some("multipart/form-data; boundary=bb"),
            body,
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let heard = v["text"].as_str().unwrap();
        let hits = lcs(&words(&sent.text), &words(heard));
        eprintln!(
            "sample segment 0: said {:?} at {:.2} s, heard {heard:?}: {}",
            sent.text, sent.start, v["words"]
        );
        assert!(hits * 2 >= words(&sent.text).len(), "heard {heard:?}");
        let first = v["words"][0]["start"].as_f64().unwrap();
        assert!(
            (first - sent.start).abs() <= 0.3,
            "first word at {first}, sentence at {}",
            sent.start
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The full default sample, segment by segment through the local STT as the dubbing pipeline sends it:
/// measures word recognition and utterance start times against `speech.json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_segments_recognised_at_their_times() {
    if skip_without(&[
        "ffmpeg",
        "ffprobe",
        "espeak-ng",
        "sox",
        "pocketsphinx_continuous",
    ]) {
        return;
    }
    let dir = tempdir("sample36");
    let d = dir.clone();
    let info = tokio::task::spawn_blocking(move || make_sample(&d, &SampleOptions::default()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.segments, 6);
    let init = std::fs::read(dir.join("audio_init.mp4")).unwrap();
    let stt = start_speech().await;
    let (mut hits, mut total, mut on_time) = (0, 0, 0);
    let mut seg_start = 0.0;
    let pl = std::fs::read_to_string(dir.join("audio.m3u8")).unwrap();
    let durations: Vec<f64> = pl
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse().unwrap())
        .collect();
    for (k, sent) in info.sentences.iter().enumerate() {
        let seg = std::fs::read(dir.join(format!("audio_{k:03}.m4s"))).unwrap();
        let body = multipart(
            "bb",
            &[("response_format", "verbose_json")],
            &[&init[..], &seg[..]].concat(),
        );
        let started = std::time::Instant::now();
        let (status, _, body) = http(
            stt,
            "POST",
            "/v1/audio/transcriptions",
            Some("multipart/form-data; boundary=bb"),
            body,
        )
        .await;
        let ms = started.elapsed().as_millis();
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let heard = v["text"].as_str().unwrap();
        let reference = words(&sent.text);
        hits += lcs(&reference, &words(heard));
        total += reference.len();
        // ffmpeg decodes the segment from its own start; the sentence sits SENTENCE_OFFSET in.
        let expected = sent.start - seg_start;
        let first = v["segments"][0]["start"].as_f64().unwrap_or(f64::NAN);
        if (first - expected).abs() <= 0.3 {
            on_time += 1;
        }
        eprintln!(
            "segment {k}: said {:?} at {expected:.2}, heard {heard:?} from {first} ({ms} ms)",
            sent.text
        );
        seg_start += durations[k];
    }
    let rate = hits as f64 / total as f64;
    eprintln!(
        "sample STT: {hits}/{total} words ({:.0}%), {on_time}/6 utterances start within 0.3 s",
        rate * 100.0
    );
    assert!(rate >= 0.4, "recognition {rate:.2}");
    assert!(on_time >= 5, "{on_time}/6 on time");
    let _ = std::fs::remove_dir_all(&dir);
}
