//! Peak heap of the public media path, per corpus file, measured with a counting allocator.
//!
//! Every media file in `shared/corpus` (fMP4 init + media pairs, single files, malformed MP4s,
//! TS segments) goes through open/probe → decode → remux, and the peak heap during that call
//! must stay within `K × input bytes + C`. The bound is tight enough that an allocation sized
//! from an unchecked count (e.g. a `trun` claiming 4 billion samples) fails it.
// A #[global_allocator] needs `unsafe impl GlobalAlloc`; this one only forwards to `System`
// and counts bytes with atomics. Tests are the one place outside `dsp` allowed to do this.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::SeqCst) + n;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

fn shrank(n: usize) {
    CURRENT.fetch_sub(n, Ordering::SeqCst);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// adds bookkeeping on success, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (all allocations go through us).
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The counters are global: one measurement at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Peak heap growth (bytes above what was live at the start) while `f` runs.
fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let r = f();
    (r, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

/// Bytes of heap allowed per input byte. Decoding makes PCM: at 128 kb/s stereo 48 kHz that is
/// 24 bytes of f32 PCM per input byte, and decode → remux holds about three PCM-sized
/// buffers at its peak (decoded, padded copy, encoder input), hence ~75x measured on the
/// 60 s Angel One file; 96 leaves ~25 % headroom. Lower bitrates decode to more PCM per
/// input byte, so this is a bound for the corpus's real streams, not for every valid one.
const K: usize = 96;
/// Fixed allowance: decoder and encoder state and buffers, plus the PCM of short, very low
/// bitrate inputs (the misnamed packed-ADTS `.ts` files are ~6 kb/s: 7 KB decode to 1.7 MB of
/// f32 PCM and peak at 5.7 MB).
const C: usize = 8 << 20;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn is_media(p: &Path) -> bool {
    let text = ["m3u8", "mpd", "txt", "key", "js", "ts.map"];
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    !text.contains(&ext) && !p.to_string_lossy().contains("DERIVED")
}

/// The whole public path for (init, media); returns what it reached, for the log.
fn full_path(init: &[u8], media: &[u8]) -> &'static str {
    let _ = dub_media::probe_init(init);
    let Ok(seg) = dub_media::open_segment(init, media) else {
        return "open failed";
    };
    let Ok(pcm) = dub_media::decode_audio(&seg) else {
        return "decode failed";
    };
    let _ = seg.output_init();
    match dub_media::remux_audio(&seg, &pcm, None) {
        Ok(_) => "remuxed",
        Err(_) => "remux failed",
    }
}

/// (label, init, media) for every pair and single file in the corpus.
fn cases() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let root = corpus();
    let read = |rel: &str| std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut out = Vec::new();
    let f = "hls-fmp4/";
    let pairs = [
        (
            "shaka-clear-encrypted-hls/audio-init-clear.mp4",
            "shaka-clear-encrypted-hls/audio-s1.mp4",
        ),
        (
            "shaka-clear-encrypted-hls/audio-init-clear.mp4",
            "shaka-clear-encrypted-hls/audio-s2.mp4",
        ),
        (
            "shaka-clear-encrypted-hls/audio-init-encrypted.mp4",
            "shaka-clear-encrypted-hls/audio-enc-s1.mp4",
        ),
        (
            "shaka-clear-encrypted-hls/audio-init-encrypted.mp4",
            "shaka-clear-encrypted-hls/audio-enc-s2.mp4",
        ),
        (
            "shaka-clear-encrypted-hls/audio-init-encrypted.mp4",
            "shaka-clear-encrypted-hls/audio-enc-s3.mp4",
        ),
        (
            "shaka-clear-encrypted-hls/video-init-clear.mp4",
            "shaka-clear-encrypted-hls/video-s1.mp4",
        ),
        (
            "shaka-hls-mp4-muxed-aac-h264/init.mp4",
            "shaka-hls-mp4-muxed-aac-h264/hls11.m4s",
        ),
        (
            "shaka-misc/multiple-trun-init.mp4",
            "shaka-misc/multiple-trun-segment.mp4",
        ),
        (
            "shaka-misc/sintel-audio-init.mp4",
            "shaka-misc/sintel-audio-segment.mp4",
        ),
        (
            "shaka-misc/sintel-video-init.mp4",
            "shaka-misc/sintel-video-segment.mp4",
        ),
        (
            "videojs-segments/mp4AudioInit.mp4",
            "videojs-segments/mp4Audio.mp4",
        ),
        (
            "videojs-segments/mp4MuxedInit.mp4",
            "videojs-segments/mp4Muxed.mp4",
        ),
    ];
    for (i, m) in pairs {
        out.push((
            format!("{i} + {m}"),
            read(&format!("{f}{i}")),
            read(&format!("{f}{m}")),
        ));
    }
    // On-demand CMAF: init 0..786, then sidx and 16 fragments.
    let angel = read("hls-fmp4/shaka-angel-one-speech/audio_en_2c_128k_aac.mp4");
    out.push((
        "angel-one init + rest".into(),
        angel[..786].to_vec(),
        angel[786..].to_vec(),
    ));
    // Every media file on its own: as an init, as a self-initialising file, as TS.
    let mut all = Vec::new();
    for d in ["hls-fmp4", "hls-ts", "mp4-malformed"] {
        files_under(&root.join(d), &mut all);
    }
    for p in all.into_iter().filter(|p| is_media(p)) {
        let data = std::fs::read(&p).unwrap();
        let label = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
        out.push((format!("{label} (alone)"), Vec::new(), data.clone()));
        out.push((format!("{label} (as init and media)"), data.clone(), data));
    }
    out
}

#[test]
fn peak_heap_is_bounded_by_input_size() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cases = cases();
    assert!(cases.len() > 150, "corpus not found: {} cases", cases.len());
    // The K each case needs given C, and the largest plain ratio among inputs of 64 KiB+.
    let mut needed = (0f64, String::new());
    let mut worst = (0f64, String::new());
    let mut failures = Vec::new();
    for (label, init, media) in &cases {
        let input = init.len() + media.len();
        let (reached, peak) = peak_during(|| full_path(init, media));
        let ratio = peak as f64 / input.max(1) as f64;
        eprintln!("{peak:>10} B peak  {input:>9} B in  {ratio:>8.2}x  {reached:<13} {label}");
        let k = peak.saturating_sub(C) as f64 / input.max(1) as f64;
        if k > needed.0 {
            needed = (k, label.clone());
        }
        if input >= 64 << 10 && ratio > worst.0 {
            worst = (ratio, label.clone());
        }
        if peak > K * input + C {
            failures.push(format!("{label}: {peak} B > {K} x {input} + {C}"));
        }
    }
    eprintln!("K needed with C = {C}: {:.2} ({})", needed.0, needed.1);
    eprintln!(
        "worst peak/input for inputs >= 64 KiB: {:.2}x ({})",
        worst.0, worst.1
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A minimal audio-only media segment: moof(mfhd, traf(tfhd, tfdt, trun)) + mdat.
fn crafted_segment(sample_count: u32, trun_flags: u32, entries: &[u8], mdat: &[u8]) -> Vec<u8> {
    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }
    let mfhd = bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]);
    // tfhd: default-base-is-moof, default duration 1024, default size 8.
    let mut tfhd = vec![0, 0x02, 0, 0x18];
    tfhd.extend_from_slice(&1u32.to_be_bytes());
    tfhd.extend_from_slice(&1024u32.to_be_bytes());
    tfhd.extend_from_slice(&8u32.to_be_bytes());
    let tfdt = bx(b"tfdt", &[0; 8]);
    // data_offset (flag 0x01) from the moof start to the first mdat body byte; the moof's
    // size does not depend on the value, so build it twice.
    let moof = |data_offset: u32| {
        let mut trun = (trun_flags | 0x01).to_be_bytes().to_vec();
        trun.extend_from_slice(&sample_count.to_be_bytes());
        trun.extend_from_slice(&data_offset.to_be_bytes());
        trun.extend_from_slice(entries);
        let traf = bx(
            b"traf",
            &[bx(b"tfhd", &tfhd), tfdt.clone(), bx(b"trun", &trun)].concat(),
        );
        bx(b"moof", &[mfhd.clone(), traf].concat())
    };
    let len = moof(0).len() as u32;
    [moof(len + 8), bx(b"mdat", mdat)].concat()
}

#[test]
fn meter_counts_and_hostile_counts_do_not_allocate() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The meter sees a real allocation.
    let (v, peak) = peak_during(|| vec![1u8; 10 << 20]);
    assert!(peak >= 10 << 20, "meter saw {peak} B for a 10 MiB Vec");
    drop(v);

    let init =
        std::fs::read(corpus().join("hls-fmp4/shaka-clear-encrypted-hls/audio-init-clear.mp4"))
            .unwrap();
    // Sanity: the crafted shape opens when honest (3 samples of 8 bytes in the mdat).
    let ok = crafted_segment(3, 0, &[], &[0u8; 24]);
    let seg = dub_media::open_segment(&init, &ok).expect("crafted segment opens");
    assert_eq!(seg.timing().frame_count, 3);

    // trun claiming u32::MAX samples with no per-sample fields (defaults from tfhd), and with
    // per-sample sizes: both must be refused before anything sized by the count is allocated.
    for (flags, what) in [(0u32, "defaults"), (0x200, "sizes")] {
        let hostile = crafted_segment(u32::MAX, flags, &[0, 0, 0, 8], &[0u8; 24]);
        let input = init.len() + hostile.len();
        let (r, peak) = peak_during(|| dub_media::open_segment(&init, &hostile).map(|_| ()));
        assert!(r.is_err(), "{what}: a 4-billion-sample trun was accepted");
        // Reserving even 20 000 samples of 24 bytes would be 480 KB.
        assert!(
            peak < 64 * 1024,
            "{what}: peak {peak} B for a {input} B hostile segment"
        );
        assert!(peak <= K * input + C);
    }
}
