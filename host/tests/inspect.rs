//! `dubhost inspect` as a user runs it: the real binary on corpus files, JSON parsed with
//! serde_json, numbers checked against ffprobe.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> PathBuf {
    std::env::var_os("DUBHOST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dubhost")))
}

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus")
        .join(rel)
}

/// Run `dubhost inspect` on corpus files: (exit code, parsed stdout).
fn inspect(files: &[&str]) -> (i32, Value) {
    let out = Command::new(bin())
        .arg("inspect")
        .args(files.iter().map(|f| corpus(f)))
        .output()
        .expect("run dubhost");
    let code = out.status.code().expect("exit code");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

/// ffprobe's first audio DTS (edit list ignored, so it is the tfdt) and packet count.
fn ffprobe_audio(init: &str, media: &str) -> (u64, u64) {
    let dir = std::env::temp_dir().join(format!("dubhost-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cat = dir.join(Path::new(media).file_name().unwrap());
    let mut bytes = std::fs::read(corpus(init)).unwrap();
    bytes.extend(std::fs::read(corpus(media)).unwrap());
    std::fs::write(&cat, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-ignore_editlist",
            "1",
            "-select_streams",
            "a",
        ])
        .args(["-show_entries", "packet=dts", "-of", "csv=p=0"])
        .arg(&cat)
        .output()
        .expect("run ffprobe");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8(out.stdout).unwrap();
    let dts: Vec<u64> = text
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    (dts[0], dts.len() as u64)
}

#[test]
fn valid_pairs_match_ffprobe_and_exit_0() {
    let pairs = [
        (
            "hls-fmp4/shaka-clear-encrypted-hls/audio-init-clear.mp4",
            "hls-fmp4/shaka-clear-encrypted-hls/audio-s2.mp4",
        ),
        (
            "hls-fmp4/shaka-hls-mp4-muxed-aac-h264/init.mp4",
            "hls-fmp4/shaka-hls-mp4-muxed-aac-h264/hls11.m4s",
        ),
        (
            "hls-fmp4/shaka-misc/sintel-audio-init.mp4",
            "hls-fmp4/shaka-misc/sintel-audio-segment.mp4",
        ),
    ];
    for (init, media) in pairs {
        let (code, json) = inspect(&[init, media]);
        assert_eq!(code, 0, "{init} + {media}: {json:#}");
        let r = &json[0];
        assert_eq!(r["container"], "fmp4-init+media");
        assert_eq!(r["verdict"]["valid"], true);
        let (dts, packets) = ffprobe_audio(init, media);
        assert_eq!(r["audio"]["base_decode_time"], dts, "{init} + {media}");
        assert_eq!(r["audio"]["frame_count"], packets, "{init} + {media}");
        // The fragment listing agrees: the audio traf's tfdt and its sample count.
        let id = r["audio"]["track_id"].clone();
        let traf = r["fragments"][0]["trafs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["track_id"] == id)
            .expect("audio traf listed")
            .clone();
        assert_eq!(traf["tfdt"], dts);
        assert_eq!(traf["sample_count"], packets);
    }
}

#[test]
fn malformed_file_exits_2_with_an_error() {
    for f in [
        "mp4-malformed/exiv2/issue_2340_poc.mp4",
        "mp4-malformed/taglib/infloop.m4a",
        "hls-fmp4/videojs-segments/sidx.mp4",
    ] {
        let (code, json) = inspect(&[f]);
        assert_eq!(code, 2, "{f}: {json:#}");
        assert_eq!(json[0]["verdict"]["valid"], false, "{f}");
        let err = json[0]["verdict"]["error"].as_str().unwrap_or("");
        assert!(!err.is_empty(), "{f}: no error in {json:#}");
    }
    // One invalid input among valid ones: still 2, and every input has its report.
    let (code, json) = inspect(&[
        "hls-fmp4/shaka-clear-encrypted-hls/audio-init-clear.mp4",
        "mp4-malformed/exiv2/issue_2340_poc.mp4",
    ]);
    assert_eq!(code, 2);
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["verdict"]["valid"], true);
}

#[test]
fn encrypted_inputs_report_their_scheme() {
    let (code, json) = inspect(&[
        "hls-fmp4/shaka-clear-encrypted-hls/audio-init-encrypted.mp4",
        "hls-fmp4/shaka-clear-encrypted-hls/audio-enc-s1.mp4",
    ]);
    assert_eq!(code, 0, "{json:#}");
    let r = &json[0];
    assert_eq!(r["encryption"]["encrypted"], true);
    assert_eq!(r["encryption"]["schemes"], serde_json::json!(["cbcs"]));
    assert_eq!(r["tracks"][0]["protection"]["entry"], "enca");
    assert_eq!(r["tracks"][0]["protection"]["original_format"], "mp4a");
    assert_eq!(r["verdict"]["dubbable"], false);
    // Whole-segment AES-128 TS: no sync byte.
    let (code, json) = inspect(&["hls-ts/videojs-segments/encrypted.ts"]);
    assert_eq!(code, 2);
    let hints = json[0]["encryption"]["hints"].to_string();
    assert!(hints.contains("no sync byte"), "{json:#}");
}

#[test]
fn ts_segment_lists_pids_and_audio() {
    let (code, json) = inspect(&["hls-ts/shaka-hls-ts-aac/segment_0.ts"]);
    assert_eq!(code, 0, "{json:#}");
    let r = &json[0];
    assert_eq!(r["container"], "ts");
    assert_eq!(r["ts"]["packets"], 86480 / 188);
    let codecs: Vec<&str> = r["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["codec"].as_str())
        .collect();
    assert!(codecs.contains(&"AAC (ADTS)"), "{codecs:?}");
    // ffprobe: 3.968 s of AAC at 48 kHz = 186 frames.
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(corpus("hls-ts/shaka-hls-ts-aac/segment_0.ts"))
        .output()
        .unwrap();
    // (ffprobe prints the program's stream and the stream itself: take the first line.)
    let text = String::from_utf8(out.stdout).unwrap();
    let packets: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(r["audio"]["frame_count"], packets);
}

#[test]
fn usage_and_io_errors_exit_1() {
    let out = Command::new(bin()).arg("inspect").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let out = Command::new(bin())
        .args(["inspect", "/nonexistent/file.mp4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(bin())
        .args(["inspect", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn every_corpus_file_gets_a_report() {
    // Never panics: one run over every media file in the corpus prints one JSON array.
    let root = corpus("");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("m3u8" | "mpd" | "txt" | "js" | "key")
            ) {
                files.push(p);
            }
        }
    }
    files.sort();
    let out = Command::new(bin())
        .arg("inspect")
        .args(&files)
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 2,
        "exit {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let n: usize = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["files"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, files.len());
}
