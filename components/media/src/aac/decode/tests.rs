//! Tests of the AAC-LC decoder: parts against their definitions, whole streams against
//! FFmpeg's decoder (real corpus streams and ones FFmpeg's encoder makes to exercise each
//! tool), against syom, and hostile input.

use super::*;
use crate::tests::{corpus, f32le, ffmpeg_available};
use std::path::{Path, PathBuf};
use std::process::Command;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dub-aacdec-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `ffmpeg -v error <args>`; panics with its stderr on failure.
fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// FFmpeg's float decode of the first audio stream of `path`, interleaved.
fn ffmpeg_decode(path: &Path) -> Vec<f32> {
    f32le(&ffmpeg(&[
        "-c:a",
        "aac",
        "-i",
        path.to_str().unwrap(),
        "-map",
        "0:a:0",
        "-f",
        "f32le",
        "-",
    ]))
}

/// A raw AAC stream split from ADTS: the equivalent AudioSpecificConfig and the units.
struct Adts {
    asc: Vec<u8>,
    aus: Vec<Vec<u8>>,
}

fn parse_adts(data: &[u8]) -> Adts {
    let mut aus = Vec::new();
    let mut asc = Vec::new();
    let mut p = 0;
    while p + 7 <= data.len() {
        let h = &data[p..p + 7];
        assert!(h[0] == 0xff && h[1] & 0xf0 == 0xf0, "ADTS sync at {p}");
        let crc_absent = h[1] & 1 == 1;
        let profile = h[2] >> 6;
        let sfi = (h[2] >> 2) & 15;
        let cc = ((h[2] & 1) << 2) | (h[3] >> 6);
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        assert_eq!(h[6] & 3, 0, "one raw data block per ADTS frame");
        let head = if crc_absent { 7 } else { 9 };
        let aot = profile + 1;
        let this = vec![(aot << 3) | (sfi >> 1), ((sfi & 1) << 7) | (cc << 3)];
        if asc.is_empty() {
            asc = this;
        }
        aus.push(data[p + head..p + len].to_vec());
        p += len;
    }
    assert_eq!(p, data.len(), "trailing bytes after the last ADTS frame");
    Adts { asc, aus }
}

/// SNR (dB) of `test` against `reference` over their common length.
fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    let (mut sig, mut noise) = (0.0f64, 0.0f64);
    for (r, t) in reference.iter().zip(test) {
        sig += f64::from(*r).powi(2);
        noise += (f64::from(*r) - f64::from(*t)).powi(2);
    }
    if noise == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (sig / noise).log10()
}

fn decode_all(asc: &[u8], aus: &[Vec<u8>]) -> (Vec<f32>, ToolUse, LcDecoder) {
    let mut dec = LcDecoder::new(asc).unwrap();
    dec.count_tools();
    let mut out = Vec::new();
    for (i, au) in aus.iter().enumerate() {
        dec.decode_au(au, &mut out)
            .unwrap_or_else(|e| panic!("access unit {i}: {e}"));
    }
    let tools = dec.tool_use();
    (out, tools, dec)
}

#[test]
fn imdct_half_matches_the_reference_transform() {
    let t = Tables::get();
    for (plan, m) in [(&t.long, 1024usize), (&t.short, 128)] {
        let mut seed = m as u32;
        let spec: Vec<f32> = (0..m)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect();
        // The ISO definition, in f64: x[n] = 2/N sum_k X[k] cos(2 pi / N (n + n0) (k + 1/2)).
        let n = 2 * m;
        let n0 = (n as f64 / 2.0 + 1.0) / 2.0;
        let full: Vec<f32> = (0..n)
            .map(|i| {
                let s: f64 = spec
                    .iter()
                    .enumerate()
                    .map(|(k, &x)| {
                        f64::from(x)
                            * (2.0 * std::f64::consts::PI / n as f64
                                * (i as f64 + n0)
                                * (k as f64 + 0.5))
                                .cos()
                    })
                    .sum();
                (2.0 / n as f64 * s) as f32
            })
            .collect();
        let mut half = vec![0.0; m];
        let (mut re, mut im) = (vec![0.0; m / 2], vec![0.0; m / 2]);
        plan.half(&spec, &mut half, &mut re, &mut im);
        let peak = full.iter().fold(0f32, |a, v| a.max(v.abs()));
        for j in 0..m {
            let want = full[m / 2 + j] / 32768.0;
            assert!(
                (half[j] - want).abs() <= 1e-5 * peak / 32768.0,
                "M={m} j={j}: {} vs {want}",
                half[j]
            );
        }
    }
}

#[test]
fn codebooks_are_complete_and_decode_every_codeword() {
    use crate::aac::tables::{BOOKS, SF_CODE, SF_LEN};
    let t = Tables::get();
    let sf_kraft = huffman::Vlc::kraft(&SF_LEN);
    assert!(
        (sf_kraft - 1.0).abs() < 1e-12,
        "scalefactor book Kraft sum {sf_kraft}"
    );
    for (sym, (&len, &code)) in SF_LEN.iter().zip(&SF_CODE).enumerate() {
        let mut bytes = (code << (32 - u32::from(len))).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; PAD]);
        let mut b = Bits::new(&bytes, 4);
        assert_eq!(t.books.sf.decode(&mut b) as usize, sym);
        assert_eq!(b.left(), 32 - isize::from(len as i8));
    }
    for (i, book) in BOOKS.iter().enumerate() {
        assert!(
            (huffman::Vlc::kraft(book.len) - 1.0).abs() < 1e-12,
            "book {}",
            i + 1
        );
        let (lens, codes, pays) = huffman::spectral_codes(book);
        assert!(
            (huffman::Vlc::kraft(&lens) - 1.0).abs() < 1e-12,
            "book {} with signs",
            i + 1
        );
        let m = book.modulus() as usize;
        let mut seen = std::collections::HashSet::new();
        for (idx, ((&len, &code), &pay)) in lens.iter().zip(&codes).zip(&pays).enumerate() {
            let mut bytes = (code << (32 - u32::from(len))).to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0; PAD]);
            let mut b = Bits::new(&bytes, 4);
            let leaf = t.books.spectral[i].decode(&mut b);
            assert_eq!(leaf & huffman::INDEX_MASK, idx as u32, "book {}", i + 1);
            assert_eq!(b.left(), 32 - isize::from(len as i8), "book {}", i + 1);
            // The payload's magnitudes are a symbol's digits; its signs are the sign bits.
            let width = if book.dim == 4 { 4 } else { 6 };
            let vals: Vec<i32> = (0..book.dim)
                .map(|k| ((u32::from(pay) >> (width * k)) as i32) << (32 - width) >> (32 - width))
                .collect();
            // The leaf's values are the payload's, to the 4/3 power and signed; escapes
            // (book 11's 16s) are flagged.
            let pow = |v: i32| (f64::from(v.signum()) * f64::from(v.abs()).powf(4.0 / 3.0)) as f32;
            let table: Vec<f32> = if book.dim == 4 {
                t.books.quads[i][idx].to_vec()
            } else {
                t.books.pairs[i - 4][idx].to_vec()
            };
            let want: Vec<f32> = vals.iter().map(|&v| pow(v)).collect();
            assert_eq!(table, want, "book {} values", i + 1);
            for (k, &v) in vals.iter().enumerate() {
                let flag = leaf & (huffman::ESC_FIRST << k) != 0;
                assert_eq!(flag, i == 10 && v.abs() == 16, "book {} escape flag", i + 1);
            }
            let sym = vals.iter().fold(0usize, |s, &v| {
                s * m
                    + if book.signed {
                        (v + book.lav) as usize
                    } else {
                        v.unsigned_abs() as usize
                    }
            });
            assert_eq!(
                u32::from(book.len[sym])
                    + vals.iter().filter(|&&v| v != 0 && !book.signed).count() as u32,
                u32::from(len)
            );
            let nnz = len - book.len[sym];
            assert_eq!(
                code >> nnz,
                u32::from(book.code[sym]),
                "book {} sym {sym}",
                i + 1
            );
            let mut bit = u32::from(nnz);
            for &v in vals.iter().filter(|&&v| v != 0 && !book.signed) {
                bit -= 1;
                assert_eq!(code >> bit & 1 == 1, v < 0, "book {} sym {sym} sign", i + 1);
            }
            assert!(seen.insert(vals), "book {} decodes a tuple twice", i + 1);
        }
    }
}

#[test]
fn angel_one_adts_matches_ffmpeg() {
    if !ffmpeg_available() {
        eprintln!("NOTICE: ffmpeg not found, skipping");
        return;
    }
    let dir = temp_dir("angel");
    let src = corpus().join("hls-fmp4/shaka-angel-one-speech/audio_en_2c_128k_aac.mp4");
    let adts = dir.join("a.aac");
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-c:a",
        "copy",
        "-f",
        "adts",
        adts.to_str().unwrap(),
    ]);
    let s = parse_adts(&std::fs::read(&adts).unwrap());
    let (ours, tools, _) = decode_all(&s.asc, &s.aus);
    let reference = ffmpeg_decode(&adts);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ours.len(), reference.len());
    let snr = snr_db(&reference, &ours);
    eprintln!("angel-one: {} AUs, SNR {snr:.1} dB, {tools:?}", s.aus.len());
    assert!(snr >= 90.0);
}

/// Not a check: prints the decode speed (run with `--release -- --nocapture`).
///
/// Decodes the angel-one speech stream in 282-unit segments (6 s at 48 kHz), each with a
/// fresh decoder as the pipeline does, and reports the fastest and the median segment: the
/// machine is shared, so the minimum is the least disturbed measurement.
#[test]
fn speed_report() {
    if !ffmpeg_available() {
        return;
    }
    let dir = temp_dir("speed");
    let src = corpus().join("hls-fmp4/shaka-angel-one-speech/audio_en_2c_128k_aac.mp4");
    let adts = dir.join("a.aac");
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-c:a",
        "copy",
        "-f",
        "adts",
        adts.to_str().unwrap(),
    ]);
    let s = parse_adts(&std::fs::read(&adts).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    let iters = std::env::var("DUB_AACDEC_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut ours = Vec::new();
    let mut syom = Vec::new();
    let mut out = Vec::with_capacity(282 * 2048);
    for it in 0..iters {
        for seg in s.aus.chunks_exact(282) {
            out.clear();
            let t0 = std::time::Instant::now();
            let mut dec = LcDecoder::new(&s.asc).unwrap();
            for au in seg {
                dec.decode_au(au, &mut out).unwrap();
            }
            ours.push(t0.elapsed().as_secs_f64());
            if it == 0 {
                let t0 = std::time::Instant::now();
                let pcm =
                    crate::aac::decode_aus(&s.asc, 48_000, 2, 1024, seg.iter().map(Vec::as_slice))
                        .unwrap();
                syom.push(t0.elapsed().as_secs_f64());
                assert_eq!(pcm.samples.len(), out.len());
            }
        }
    }
    let stat = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[0] * 1e3, v[v.len() / 2] * 1e3)
    };
    let (min, med) = stat(&mut ours);
    let (smin, smed) = stat(&mut syom);
    eprintln!(
        "speed: 282-unit stereo segment: ours {min:.2} ms min / {med:.2} ms median \
         ({:.2} us per frame), syom {smin:.2} / {smed:.2} ms",
        min * 1e3 / 282.0
    );
}

/// The lag (frames) in -max..=max at which `b[i + lag]` best matches `a[i]` (mono sums).
fn best_lag(a: &[f32], b: &[f32], ch: usize, max: i64) -> i64 {
    let mono = |s: &[f32]| -> Vec<f64> {
        s.chunks_exact(ch)
            .map(|f| f.iter().map(|&v| f64::from(v)).sum())
            .collect()
    };
    let (a, b) = (mono(a), mono(b));
    let from = a.len().min(b.len()) / 4;
    let len = (a.len().min(b.len()) / 2).min(1 << 15);
    let mut best = (f64::MIN, 0);
    for lag in -max..=max {
        let acc: f64 = a[from..from + len]
            .iter()
            .enumerate()
            .filter_map(|(k, &x)| {
                let j = (from + k) as i64 + lag;
                b.get(usize::try_from(j).ok()?).map(|&y| x * y)
            })
            .sum();
        if acc > best.0 {
            best = (acc, lag);
        }
    }
    best.1
}

/// SNR of `test` against `reference` with `test` shifted by `lag` frames, over the overlap.
fn snr_at_lag(reference: &[f32], test: &[f32], ch: usize, lag: i64) -> f64 {
    let shift = (lag.unsigned_abs() as usize) * ch;
    if lag >= 0 {
        snr_db(reference, test.get(shift..).unwrap_or(&[]))
    } else {
        snr_db(reference.get(shift..).unwrap_or(&[]), test)
    }
}

/// Real AAC-LC streams from the corpus, demuxed by this crate, against FFmpeg's decode of the
/// same file: 90 dB or better on every one, and against syom.
#[test]
fn corpus_streams_match_ffmpeg_and_syom() {
    if !ffmpeg_available() {
        eprintln!("NOTICE: ffmpeg not found, skipping");
        return;
    }
    let fmp4: &[(&str, &str)] = &[
        (
            "hls-fmp4/shaka-misc/sintel-audio-init.mp4",
            "hls-fmp4/shaka-misc/sintel-audio-segment.mp4",
        ),
        (
            "hls-fmp4/shaka-clear-encrypted-hls/audio-init-clear.mp4",
            "hls-fmp4/shaka-clear-encrypted-hls/audio-s1.mp4",
        ),
        (
            "hls-fmp4/shaka-clear-encrypted-hls/audio-init-clear.mp4",
            "hls-fmp4/shaka-clear-encrypted-hls/audio-s2.mp4",
        ),
        (
            "hls-fmp4/shaka-hls-mp4-muxed-aac-h264/init.mp4",
            "hls-fmp4/shaka-hls-mp4-muxed-aac-h264/hls11.m4s",
        ),
        (
            "hls-fmp4/videojs-segments/mp4MuxedInit.mp4",
            "hls-fmp4/videojs-segments/mp4Muxed.mp4",
        ),
        (
            "hls-fmp4/videojs-segments/mp4AudioInit.mp4",
            "hls-fmp4/videojs-segments/mp4Audio.mp4",
        ),
    ];
    let mut ts: Vec<String> = Vec::new();
    for dir in [
        "hls-ts/shaka-hls-ts-aac",
        "hls-ts/shaka-hls-ts-muxed-aac-h264",
        "hls-ts/shaka-hls-ts-raw-aac-misnamed",
        "hls-ts/shaka-hls-ts-rollover",
        "hls-ts/shaka-misc",
        "hls-ts/shaka-overflow-nalus",
        "hls-ts/shaka-overflow-samples-speech",
        "hls-ts/videojs-segments",
    ] {
        let mut names: Vec<String> = std::fs::read_dir(corpus().join(dir))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".ts") || n.ends_with(".aac"))
            .collect();
        names.sort();
        ts.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
    }
    let dir = temp_dir("corpus");
    let mut checked = 0;
    let mut cases: Vec<(String, Vec<u8>, Vec<u8>)> = fmp4
        .iter()
        .map(|(i, m)| {
            let (init, media) = (
                std::fs::read(corpus().join(i)).unwrap(),
                std::fs::read(corpus().join(m)).unwrap(),
            );
            (m.to_string(), init, media)
        })
        .collect();
    cases.extend(ts.iter().map(|t| {
        (
            t.clone(),
            Vec::new(),
            std::fs::read(corpus().join(t)).unwrap(),
        )
    }));
    for (name, init, media) in &cases {
        let Ok(seg) = crate::open_segment(init, media) else {
            eprintln!("{name}: does not open (not ours to decode)");
            continue;
        };
        let track = seg.track().clone();
        let aus: Vec<&[u8]> = seg.access_units().collect();
        let ours = match decode_lc(&track.asc, aus.iter().copied()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{name}: {} ({e})", track.codec);
                assert!(track.codec != "mp4a.40.2", "{name}: AAC-LC refused: {e}");
                assert!(matches!(e, Error::Unsupported(_)), "{name}: {e}");
                continue;
            }
        };
        assert_eq!(track.codec, "mp4a.40.2", "{name}: decoded a non-LC track");
        let ch = usize::from(ours.channels);
        assert_eq!(
            (ours.sample_rate, ours.channels),
            (track.sample_rate, track.channels)
        );
        assert_eq!(ours.frames(), aus.len() * 1024);
        let path = dir.join(name.replace('/', "_"));
        let mut file = init.clone();
        file.extend_from_slice(media);
        std::fs::write(&path, &file).unwrap();
        let reference = ffmpeg_decode(&path);
        let mut lag = 0;
        let mut snr = snr_at_lag(&reference, &ours.samples, ch, 0);
        if snr < 90.0 {
            lag = best_lag(&reference, &ours.samples, ch, 2112);
            snr = snr_at_lag(&reference, &ours.samples, ch, lag);
        }
        let syom = crate::aac::decode_aus(
            &track.asc,
            track.sample_rate,
            track.channels,
            1024,
            aus.iter().copied(),
        )
        .unwrap();
        let vs_syom = snr_db(&syom.samples, &ours.samples);
        eprintln!(
            "{name}: {} Hz x {ch}, {} units; vs ffmpeg {snr:.1} dB (lag {lag}, {} vs {} samples); vs syom {vs_syom:.1} dB",
            ours.sample_rate,
            aus.len(),
            ours.samples.len(),
            reference.len()
        );
        assert!(snr >= 90.0, "{name}: {snr:.1} dB against ffmpeg");
        checked += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(checked >= 20, "only {checked} corpus streams checked");
}

/// Encode a lavfi source (or an input file) with FFmpeg's AAC-LC encoder to ADTS.
fn ffmpeg_encode(dir: &Path, name: &str, input: &[&str], opts: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}.aac"));
    let mut args: Vec<&str> = input.to_vec();
    args.extend_from_slice(&["-c:a", "aac"]);
    args.extend_from_slice(opts);
    args.extend_from_slice(&["-f", "adts", out.to_str().unwrap()]);
    ffmpeg(&args);
    out
}

/// Decode an ADTS file with ours and FFmpeg: (SNR dB, tools, channels, frames); also prints
/// the SNR against syom, and requires 100 dB (same channel order) unless PNS is used: its
/// noise is random, and syom's generator is not FFmpeg's.
fn compare_adts(path: &Path) -> (f64, ToolUse, usize, usize) {
    let s = parse_adts(&std::fs::read(path).unwrap());
    let (ours, tools, dec) = decode_all(&s.asc, &s.aus);
    let reference = ffmpeg_decode(path);
    assert_eq!(ours.len(), reference.len(), "{}", path.display());
    let ch = usize::from(dec.channels());
    match crate::aac::decode_aus(
        &s.asc,
        dec.sample_rate(),
        dec.channels(),
        1024,
        s.aus.iter().map(Vec::as_slice),
    ) {
        Ok(syom) => {
            let snr = snr_db(&syom.samples, &ours);
            eprintln!(
                "  {}: vs syom {snr:.1} dB",
                path.file_name().unwrap().to_string_lossy()
            );
            assert!(
                snr >= 100.0 || tools.pns_bands > 0,
                "{}: {snr:.1} dB against syom",
                path.display()
            );
        }
        Err(e) => eprintln!("  syom refuses {}: {e}", path.display()),
    }
    (snr_db(&reference, &ours), tools, ch, ours.len() / ch)
}

/// Click train over quiet tones: sharp attacks after near-silence make encoders switch to
/// EIGHT_SHORT windows.
const CLICKS: &str = "aevalsrc=exprs='if(lt(mod(t\\,0.23)\\,0.003)\\,0.9*sin(2*PI*3000*t)\\,0.003*sin(2*PI*220*t))|0.2*sin(2*PI*330*t)*if(lt(mod(t\\,0.41)\\,0.01)\\,1\\,0.05)'";

/// Streams FFmpeg's encoder makes to exercise each tool, at every sampling rate, mono to 7.1:
/// 90 dB or better against FFmpeg's decoder, and each stream uses the tool it is for.
#[test]
fn generated_streams_match_ffmpeg() {
    if !ffmpeg_available() {
        eprintln!("NOTICE: ffmpeg not found, skipping");
        return;
    }
    let dir = temp_dir("gen");
    let angel = corpus().join("hls-fmp4/shaka-angel-one-speech/audio_en_2c_128k_aac.mp4");
    let angel = angel.to_str().unwrap();
    let lavfi =
        |src: String| -> Vec<String> { vec!["-f".into(), "lavfi".into(), "-i".into(), src] };
    let noise_tone = "anoisesrc=c=pink:a=0.2:d=6:r=48000,aformat=channel_layouts=stereo[n];\
        aevalsrc=exprs='0.3*sin(2*PI*440*t)|0.3*sin(2*PI*440*t+0.3)':s=48000:d=6[t];\
        [n][t]amix=inputs=2";
    let tones = |ch: usize, layout: &str, rate: u32| {
        let exprs: Vec<String> = (0..ch)
            .map(|c| {
                format!(
                    "0.2*sin(2*PI*{}*t)*(1+0.5*sin(2*PI*{}*t))",
                    150 + 170 * c,
                    c + 1
                )
            })
            .collect();
        format!(
            "aevalsrc=exprs={}:s={rate}:d=4:channel_layout={layout}",
            exprs.join("|")
        )
    };
    struct Case {
        name: String,
        input: Vec<String>,
        opts: Vec<String>,
        /// Which tool use the case must show.
        expect: fn(&ToolUse) -> bool,
    }
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut cases = vec![
        Case {
            name: "clicks-48k-stereo".into(),
            input: lavfi(format!("{CLICKS}:s=48000:d=6")),
            opts: s(&["-b:a", "128k"]),
            expect: |t| t.windows[2] > 0 && t.windows[1] > 0 && t.windows[3] > 0 && t.tns > 0,
        },
        Case {
            name: "pns-is-ms-48k".into(),
            input: s(&["-f", "lavfi", "-i", noise_tone]),
            opts: s(&[
                "-b:a", "48k", "-aac_pns", "1", "-aac_is", "1", "-aac_ms", "1",
            ]),
            expect: |t| t.pns_bands > 0 && t.is_bands > 0 && t.ms_bands > 0,
        },
        Case {
            name: "speech-44k-mono".into(),
            input: s(&["-t", "12", "-i", angel]),
            opts: s(&["-ac", "1", "-ar", "44100", "-b:a", "96k"]),
            expect: |t| t.windows[0] > 0,
        },
        Case {
            name: "speech-22k-stereo".into(),
            input: s(&["-t", "12", "-i", angel]),
            opts: s(&["-ar", "22050", "-b:a", "64k"]),
            expect: |t| t.windows[0] > 0,
        },
        Case {
            name: "speech-48k-stereo-320k".into(),
            input: s(&["-t", "8", "-i", angel]),
            opts: s(&["-b:a", "320k"]),
            expect: |t| t.escapes > 0,
        },
        Case {
            name: "tones-5.1".into(),
            input: lavfi(tones(6, "5.1", 48_000)),
            opts: s(&["-b:a", "256k"]),
            expect: |t| t.windows[0] > 0,
        },
        Case {
            name: "tones-7.1".into(),
            input: lavfi(tones(8, "7.1", 48_000)),
            opts: s(&["-b:a", "320k"]),
            expect: |t| t.windows[0] > 0,
        },
        Case {
            name: "tones-2.1-as-3ch".into(),
            input: lavfi(tones(3, "3.0", 48_000)),
            opts: s(&["-b:a", "160k"]),
            expect: |t| t.windows[0] > 0,
        },
        Case {
            name: "tones-4.0".into(),
            input: lavfi(tones(4, "4.0", 48_000)),
            opts: s(&["-b:a", "192k"]),
            expect: |t| t.windows[0] > 0,
        },
        Case {
            name: "tones-5.0".into(),
            input: lavfi(tones(5, "5.0", 48_000)),
            opts: s(&["-b:a", "192k"]),
            expect: |t| t.windows[0] > 0,
        },
    ];
    for rate in [
        8000u32, 11025, 12000, 16000, 24000, 32000, 64000, 88200, 96000,
    ] {
        cases.push(Case {
            name: format!("clicks-{rate}-mono"),
            input: lavfi(format!("{CLICKS}:s={rate}:d=3,pan=mono|c0=c0")),
            opts: s(&["-b:a", "64k"]),
            expect: |t| t.windows[2] > 0,
        });
    }
    for c in &cases {
        let input: Vec<&str> = c.input.iter().map(String::as_str).collect();
        let opts: Vec<&str> = c.opts.iter().map(String::as_str).collect();
        let path = ffmpeg_encode(&dir, &c.name, &input, &opts);
        let (snr, tools, ch, frames) = compare_adts(&path);
        eprintln!(
            "{}: {ch} ch, {frames} frames, {snr:.1} dB vs ffmpeg; {tools:?}",
            c.name
        );
        assert!(snr >= 90.0, "{}: {snr:.1} dB", c.name);
        assert!(
            (c.expect)(&tools),
            "{}: the stream does not use its tool: {tools:?}",
            c.name
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// MSB-first bit writer for synthesized access units.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, v: u32, bits: u32) {
        assert!(
            bits <= 32 && (bits == 32 || v >> bits == 0),
            "{v} in {bits} bits"
        );
        self.acc = (self.acc << bits) | u64::from(v);
        self.n += bits;
        while self.n >= 8 {
            self.bytes.push((self.acc >> (self.n - 8)) as u8);
            self.n -= 8;
        }
    }

    fn bits(&self) -> usize {
        self.bytes.len() * 8 + self.n as usize
    }

    fn align(&mut self) {
        let pad = (8 - self.n % 8) % 8;
        self.put(0, pad);
    }

    fn finish(mut self) -> Vec<u8> {
        self.align();
        self.bytes
    }
}

/// Deterministic generator for synthesized streams.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent
    }
}

/// Writes random but valid AAC-LC syntax exercising every tool: all window sequences (in any
/// order) and shapes, grouping, every codebook with escapes up to 8191, pulses, TNS in both
/// directions with every resolution, PNS, intensity and M/S with every mask mode, DSE and FIL
/// elements.
struct Synth {
    rng: Rng,
    fs: u8,
}

struct IcsShape {
    seq: u32,
    max_sfb: usize,
    groups: Vec<usize>,
    swb: &'static [u16],
}

impl Synth {
    fn ics_info(&mut self, w: &mut BitWriter) -> IcsShape {
        let seq = self.rng.below(4);
        w.put(0, 1);
        w.put(seq, 2);
        w.put(self.rng.below(2), 1);
        if seq == 2 {
            let swb = crate::aac::tables::short_offsets(self.fs).unwrap();
            let max_sfb = self.rng.below(swb.len() as u32) as usize;
            w.put(max_sfb as u32, 4);
            let grouping = self.rng.below(128);
            w.put(grouping, 7);
            let mut groups = vec![1];
            for i in 0..7 {
                if grouping & (1 << (6 - i)) != 0 {
                    *groups.last_mut().unwrap() += 1;
                } else {
                    groups.push(1);
                }
            }
            IcsShape {
                seq,
                max_sfb,
                groups,
                swb,
            }
        } else {
            let swb = crate::aac::tables::long_offsets(self.fs).unwrap();
            let max_sfb = if self.rng.chance(20) {
                swb.len() - 1
            } else {
                self.rng.below(swb.len() as u32) as usize
            };
            w.put(max_sfb as u32, 6);
            w.put(0, 1);
            IcsShape {
                seq,
                max_sfb,
                groups: vec![1],
                swb,
            }
        }
    }

    /// Book per band (group-major).
    fn sections(&mut self, w: &mut BitWriter, s: &IcsShape, allow_is: bool) -> Vec<u8> {
        let (bits, esc) = if s.seq == 2 { (3, 7) } else { (5, 31) };
        let mut books = Vec::new();
        for _ in &s.groups {
            let mut k = 0;
            while k < s.max_sfb {
                let mut book = match self.rng.below(20) {
                    0..=2 => 0,
                    3 => 13,
                    4 if allow_is => 14 + self.rng.below(2),
                    r => 1 + r % 11,
                } as u8;
                if book == 4 && !allow_is {
                    book = 11;
                }
                let mut len = 1 + self.rng.below((s.max_sfb - k).min(40) as u32) as usize;
                if self.rng.chance(50) {
                    len = len.min(3);
                }
                w.put(u32::from(book), 4);
                let mut rest = len;
                while rest >= esc {
                    w.put(esc as u32, bits);
                    rest -= esc;
                }
                w.put(rest as u32, bits);
                books.extend(std::iter::repeat_n(book, len));
                k += len;
            }
        }
        books
    }

    fn sf_delta(&mut self, w: &mut BitWriter, d: i32) {
        let i = (d + 60) as usize;
        w.put(
            crate::aac::tables::SF_CODE[i],
            u32::from(crate::aac::tables::SF_LEN[i]),
        );
    }

    fn scalefactors(&mut self, w: &mut BitWriter, books: &[u8], gg: i32) {
        let (mut sf, mut first_noise) = (gg, true);
        for &b in books {
            match b {
                0 => {}
                14 | 15 => {
                    let d = self.rng.below(9) as i32 - 4;
                    self.sf_delta(w, d);
                }
                13 => {
                    if first_noise {
                        first_noise = false;
                        w.put(256 - 30 + self.rng.below(20), 9);
                    } else {
                        let d = self.rng.below(7) as i32 - 3;
                        self.sf_delta(w, d);
                    }
                }
                _ => {
                    let mut d = self.rng.below(11) as i32 - 5;
                    if !(60..=200).contains(&(sf + d)) {
                        d = -d;
                    }
                    sf += d;
                    self.sf_delta(w, d);
                }
            }
        }
    }

    fn pulses(&mut self, w: &mut BitWriter, s: &IcsShape, books: &[u8]) {
        let coded: Vec<usize> = (0..s.max_sfb)
            .filter(|&i| (1..=11).contains(&books[i]))
            .collect();
        if s.seq == 2 || coded.is_empty() || !self.rng.chance(30) {
            w.put(0, 1);
            return;
        }
        w.put(1, 1);
        let band = coded[self.rng.below(coded.len() as u32) as usize];
        let n = 1 + self.rng.below(4);
        w.put(n - 1, 2);
        w.put(band as u32, 6);
        // Keep every pulse inside coded bands: stay within the start band.
        let width = u32::from(s.swb[band + 1] - s.swb[band]);
        let mut pos = 0;
        for _ in 0..n {
            let off = self.rng.below((width - pos).min(32));
            pos += off;
            w.put(off, 5);
            w.put(self.rng.below(16), 4);
        }
    }

    fn tns(&mut self, w: &mut BitWriter, s: &IcsShape) {
        if !self.rng.chance(40) {
            w.put(0, 1);
            return;
        }
        w.put(1, 1);
        let short = s.seq == 2;
        let windows = if short { 8 } else { 1 };
        for _ in 0..windows {
            let n_filt = self.rng.below(if short { 2 } else { 4 });
            w.put(n_filt, if short { 1 } else { 2 });
            if n_filt == 0 {
                continue;
            }
            let res = self.rng.below(2);
            w.put(res, 1);
            for _ in 0..n_filt {
                w.put(
                    self.rng.below(if short { 16 } else { 64 }),
                    if short { 4 } else { 6 },
                );
                let order = self.rng.below(if short { 8 } else { 13 });
                w.put(order, if short { 3 } else { 5 });
                if order > 0 {
                    w.put(self.rng.below(2), 1);
                    let compress = self.rng.below(2);
                    w.put(compress, 1);
                    let len = 3 + res - compress;
                    for _ in 0..order {
                        w.put(self.rng.below(1 << len), len);
                    }
                }
            }
        }
    }

    fn value(&mut self, lav: i32, escape: bool) -> i32 {
        let mag = match self.rng.below(10) {
            0..=4 => 0,
            5..=7 => 1,
            _ => self.rng.below(lav as u32 + 1) as i32,
        };
        let mag = if escape && mag == 16 {
            let big = self.rng.chance(10);
            16 + self.rng.below(if big { 8176 } else { 100 }) as i32
        } else {
            mag
        };
        if self.rng.chance(50) { -mag } else { mag }
    }

    fn spectral(&mut self, w: &mut BitWriter, s: &IcsShape, books: &[u8]) {
        use crate::aac::tables::BOOKS;
        for (g, &glen) in s.groups.iter().enumerate() {
            for i in 0..s.max_sfb {
                let book = books[g * s.max_sfb + i];
                if !(1..=11).contains(&book) {
                    continue;
                }
                let b = &BOOKS[usize::from(book) - 1];
                let width = usize::from(s.swb[i + 1] - s.swb[i]) * glen;
                for _ in 0..width / b.dim {
                    let vals: Vec<i32> =
                        (0..b.dim).map(|_| self.value(b.lav, book == 11)).collect();
                    let m = b.modulus();
                    let sym = vals.iter().fold(0i32, |acc, &v| {
                        acc * m + if b.signed { v + b.lav } else { v.abs().min(16) }
                    }) as usize;
                    w.put(u32::from(b.code[sym]), u32::from(b.len[sym]));
                    if !b.signed {
                        for &v in vals.iter().filter(|&&v| v != 0) {
                            w.put(u32::from(v < 0), 1);
                        }
                    }
                    for &v in vals.iter().filter(|&&v| book == 11 && v.abs() >= 16) {
                        let v = v.unsigned_abs();
                        let n = 31 - v.leading_zeros() - 4;
                        w.put((1 << n) - 1, n);
                        w.put(0, 1);
                        w.put(v - (1 << (n + 4)), n + 4);
                    }
                }
            }
        }
    }

    /// individual_channel_stream; `shape` given for a common window.
    fn ics(&mut self, w: &mut BitWriter, shape: Option<&IcsShape>, allow_is: bool) {
        let gg = 100 + self.rng.below(40) as i32;
        w.put(gg as u32, 8);
        let own;
        let s = match shape {
            Some(s) => s,
            None => {
                own = self.ics_info(w);
                &own
            }
        };
        let books = self.sections(w, s, allow_is);
        self.scalefactors(w, &books, gg);
        self.pulses(w, s, &books);
        self.tns(w, s);
        w.put(0, 1);
        self.spectral(w, s, &books);
    }

    fn extra_elements(&mut self, w: &mut BitWriter) {
        if self.rng.chance(20) {
            // DSE
            w.put(4, 3);
            w.put(self.rng.below(16), 4);
            let align = self.rng.below(2);
            w.put(align, 1);
            let count = self.rng.below(300);
            w.put(count.min(255), 8);
            if count >= 255 {
                w.put(count - 255, 8);
            }
            if align == 1 {
                w.align();
            }
            for _ in 0..count {
                w.put(self.rng.below(256), 8);
            }
        }
        if self.rng.chance(20) {
            // FIL with EXT_FILL_DATA
            w.put(6, 3);
            let count = 1 + self.rng.below(40);
            w.put(count.min(15), 4);
            if count >= 15 {
                w.put(count - 14, 8);
            }
            w.put(1, 4);
            w.put(0, 4);
            for _ in 1..count {
                w.put(0xa5, 8);
            }
        }
    }

    /// One raw_data_block for channel configuration 1 or 2.
    fn access_unit(&mut self, stereo: bool) -> Vec<u8> {
        let mut w = BitWriter::default();
        self.extra_elements(&mut w);
        if stereo {
            w.put(1, 3);
            w.put(0, 4);
            let common = self.rng.chance(80);
            w.put(u32::from(common), 1);
            if common {
                let s = self.ics_info(&mut w);
                let ms = self.rng.below(3);
                w.put(ms, 2);
                if ms == 1 {
                    for _ in 0..s.groups.len() * s.max_sfb {
                        w.put(self.rng.below(2), 1);
                    }
                }
                self.ics(&mut w, Some(&s), false);
                self.ics(&mut w, Some(&s), true);
            } else {
                self.ics(&mut w, None, false);
                self.ics(&mut w, None, false);
            }
        } else {
            w.put(0, 3);
            w.put(0, 4);
            self.ics(&mut w, None, false);
        }
        self.extra_elements(&mut w);
        w.put(7, 3);
        assert!(w.bits() < 6144 * 8, "synthesized unit too big");
        w.finish()
    }
}

fn adts_frame(fs: u8, config: u8, au: &[u8]) -> Vec<u8> {
    let len = au.len() + 7;
    let mut w = BitWriter::default();
    w.put(0xfff, 12);
    w.put(0, 1);
    w.put(0, 2);
    w.put(1, 1);
    w.put(1, 2);
    w.put(u32::from(fs), 4);
    w.put(0, 1);
    w.put(u32::from(config), 3);
    w.put(0, 4);
    w.put(len as u32, 13);
    w.put(0x7ff, 11);
    w.put(0, 2);
    let mut f = w.finish();
    f.extend_from_slice(au);
    f
}

/// Random valid syntax covering what encoders rarely emit (pulses, every TNS mode, escapes
/// to 8191, mixed window shapes and sequences in any order, every M/S mode with intensity
/// and PNS): identical to FFmpeg's decode within float rounding.
#[test]
fn synthesized_syntax_matches_ffmpeg() {
    if !ffmpeg_available() {
        eprintln!("NOTICE: ffmpeg not found, skipping");
        return;
    }
    let dir = temp_dir("synth");
    for (seed, fs, stereo) in [
        (1u64, 3u8, true),
        (2, 4, false),
        (3, 0, true),
        (4, 11, false),
        (5, 7, true),
        (6, 5, true),
    ] {
        let mut g = Synth { rng: Rng(seed), fs };
        let mut file = Vec::new();
        for _ in 0..150 {
            file.extend(adts_frame(
                fs,
                if stereo { 2 } else { 1 },
                &g.access_unit(stereo),
            ));
        }
        let path = dir.join(format!("synth-{seed}.aac"));
        std::fs::write(&path, &file).unwrap();
        let (snr, tools, ch, frames) = compare_adts(&path);
        eprintln!(
            "synthesized seed {seed} rate index {fs}: {ch} ch, {frames} frames, {snr:.1} dB vs ffmpeg; {tools:?}"
        );
        if snr < 90.0 {
            let st = parse_adts(&file);
            let reference = ffmpeg_decode(&path);
            let mut dec = LcDecoder::new(&st.asc).unwrap();
            dec.count_tools();
            let mut out = Vec::new();
            let mut prev = ToolUse::default();
            for (i, au) in st.aus.iter().enumerate() {
                let start = out.len();
                dec.decode_au(au, &mut out).unwrap();
                let t = dec.tool_use();
                let snr = snr_db(&reference[start..out.len()], &out[start..]);
                if snr < 100.0 {
                    let d = |a: u64, b: u64| a - b;
                    eprintln!(
                        "frame {i}: {snr:.1} dB windows {:?} pulses {} tns {} pns {} is {} ms {} kbd {}",
                        t.windows
                            .iter()
                            .zip(prev.windows)
                            .map(|(a, b)| a - b)
                            .collect::<Vec<_>>(),
                        d(t.pulses, prev.pulses),
                        d(t.tns, prev.tns),
                        d(t.pns_bands, prev.pns_bands),
                        d(t.is_bands, prev.is_bands),
                        d(t.ms_bands, prev.ms_bands),
                        d(t.kbd, prev.kbd)
                    );
                }
                prev = t;
            }
        }
        assert!(snr >= 90.0, "seed {seed}: {snr:.1} dB");
        assert!(tools.pulses > 0 && tools.tns > 0 && tools.escapes > 0 && tools.kbd > 0);
        assert!(tools.windows.iter().all(|&n| n > 0));
        if stereo {
            assert!(tools.is_bands > 0 && tools.ms_bands > 0 && tools.pns_bands > 0);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Access units to mutate: real ones from the corpus and synthesized ones of every tool.
fn sample_units() -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut sets = Vec::new();
    let init = std::fs::read(corpus().join("hls-fmp4/shaka-misc/sintel-audio-init.mp4")).unwrap();
    let media =
        std::fs::read(corpus().join("hls-fmp4/shaka-misc/sintel-audio-segment.mp4")).unwrap();
    let seg = crate::open_segment(&init, &media).unwrap();
    sets.push((
        seg.track().asc.clone(),
        seg.access_units().take(120).map(<[u8]>::to_vec).collect(),
    ));
    let ts = std::fs::read(corpus().join("hls-ts/shaka-hls-ts-raw-aac-misnamed/fileSequence0.ts"))
        .unwrap();
    let seg = crate::open_segment(&[], &ts).unwrap();
    sets.push((
        seg.track().asc.clone(),
        seg.access_units().take(60).map(<[u8]>::to_vec).collect(),
    ));
    for (seed, fs, stereo) in [(11u64, 3u8, true), (12, 8, false)] {
        let mut g = Synth { rng: Rng(seed), fs };
        let aus: Vec<Vec<u8>> = (0..60).map(|_| g.access_unit(stereo)).collect();
        let asc = vec![
            (2 << 3) | (fs >> 1),
            ((fs & 1) << 7) | (if stereo { 2 } else { 1 } << 3),
        ];
        sets.push((asc, aus));
    }
    sets
}

/// Decode `au` and check the contract: Ok appends exactly one frame per channel, an error
/// appends nothing and is a typed error; the decoder never grows its buffers.
fn decode_checked(dec: &mut LcDecoder, au: &[u8], out: &mut Vec<f32>, heap: usize) -> bool {
    let cap = out.capacity();
    out.clear();
    let r = dec.decode_au(au, out);
    assert_eq!(out.capacity(), cap, "the output buffer was reallocated");
    assert_eq!(dec.heap_bytes(), heap, "the decoder grew");
    match r {
        Ok(()) => {
            assert_eq!(out.len(), 1024 * usize::from(dec.channels()));
            true
        }
        Err(e) => {
            assert!(out.is_empty(), "an error appended samples");
            assert!(
                matches!(
                    e,
                    Error::Invalid(_) | Error::Unsupported(_) | Error::Limit(_)
                ),
                "{e:?}"
            );
            false
        }
    }
}

/// Truncated, bit-flipped and random access units: Ok or a typed error, never a panic,
/// never an allocation beyond the decoder's fixed buffers and the one output frame; the
/// decoder keeps working afterwards.
#[test]
fn hostile_units_never_panic_or_grow() {
    let mut rng = Rng(0x5eed);
    let (mut ok, mut err) = (0usize, 0usize);
    for (asc, aus) in sample_units() {
        let mut dec = LcDecoder::new(&asc).unwrap();
        let heap = dec.heap_bytes();
        let mut out = Vec::with_capacity(8 * 1024);
        // Every truncation of some units (all must fail or decode: a prefix can be valid).
        for au in aus.iter().take(6) {
            for len in 0..au.len() {
                if decode_checked(&mut dec, &au[..len], &mut out, heap) {
                    ok += 1;
                } else {
                    err += 1;
                }
            }
        }
        // Bit flips, 1 to 8 per unit, decoded in sequence so the overlap state carries.
        for _ in 0..3000 {
            let mut au = aus[rng.below(aus.len() as u32) as usize].clone();
            if au.is_empty() {
                continue;
            }
            for _ in 0..1 + rng.below(8) {
                let bit = rng.below(au.len() as u32 * 8) as usize;
                au[bit / 8] ^= 0x80 >> (bit % 8);
            }
            if decode_checked(&mut dec, &au, &mut out, heap) {
                ok += 1;
            } else {
                err += 1;
            }
        }
        // Random bytes of every length class.
        for _ in 0..1500 {
            let len = match rng.below(4) {
                0 => rng.below(8),
                1 => rng.below(64),
                2 => rng.below(1024),
                _ => rng.below(limits::MAX_AU_BYTES as u32 + 64),
            } as usize;
            let au: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            if decode_checked(&mut dec, &au, &mut out, heap) {
                ok += 1;
            } else {
                err += 1;
            }
        }
        // Valid units still decode after all that.
        for au in &aus {
            assert!(decode_checked(&mut dec, au, &mut out, heap));
        }
    }
    eprintln!("hostile units: {ok} decoded, {err} refused");
    assert!(ok > 0 && err > 0);
}

#[test]
fn audio_specific_configs() {
    // 48 kHz stereo LC, 44.1 kHz mono, 22.05 kHz 5.1, 7.1 (configuration 7 = 8 channels).
    for (asc, rate, ch) in [
        (vec![0x11, 0x90], 48_000, 2),
        (vec![0x12, 0x08], 44_100, 1),
        (vec![0x13, 0xb0], 22_050, 6),
        (vec![0x11, 0xb8], 48_000, 8),
    ] {
        let d = LcDecoder::new(&asc).unwrap();
        assert_eq!((d.sample_rate(), d.channels()), (rate, ch), "{asc:02x?}");
    }
    // With GASpecificConfig's dependsOnCoreCoder (14-bit delay) and trailing bits.
    assert!(LcDecoder::new(&[0x11, 0x92, 0x00, 0x00, 0x00]).is_ok());
    let unsupported = [
        vec![0x29, 0x90],                   // object type 5 (SBR)
        vec![0xe9, 0x90],                   // object type 29 (PS)
        vec![0x09, 0x90],                   // object type 1 (Main)
        vec![0xf8, 0x00, 0x00, 0x00],       // escaped object type 32+
        vec![0x11, 0x80],                   // channel configuration 0 (PCE)
        vec![0x11, 0xc0],                   // channel configuration 8
        vec![0x11, 0x94],                   // 960-sample frames
        vec![0x17, 0x80, 0x00, 0x01, 0x10], // explicit sample rate
        // LC with the backward-compatible SBR extension: sync 0x2b7, type 5, present.
        vec![0x13, 0x10, 0x56, 0xe5, 0x80],
    ];
    for asc in unsupported {
        match LcDecoder::new(&asc) {
            Err(Error::Unsupported(_)) => {}
            other => panic!("{asc:02x?}: {:?}", other.map(|_| ())),
        }
    }
    // Too short, or reserved rate indices.
    for asc in [vec![], vec![0x11], vec![0x16, 0x90], vec![0x17, 0x10]] {
        assert!(LcDecoder::new(&asc).is_err(), "{asc:02x?}");
    }
    // 7350 Hz is a valid index but below the crate's rate floor.
    assert!(matches!(
        LcDecoder::new(&[0x16, 0x08]),
        Err(Error::Limit(_))
    ));
}

/// Units of one channel layout under another configuration are refused as Unsupported (so
/// the caller can fall back), and a unit without END, or empty, is Invalid.
#[test]
fn element_layout_must_match_the_configuration() {
    let mut g = Synth {
        rng: Rng(21),
        fs: 3,
    };
    let mono = g.access_unit(false);
    let stereo = g.access_unit(true);
    let mut d2 = LcDecoder::new(&[0x11, 0x90]).unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        d2.decode_au(&mono, &mut out),
        Err(Error::Unsupported(_))
    ));
    let mut d1 = LcDecoder::new(&[0x11, 0x88]).unwrap();
    assert!(matches!(
        d1.decode_au(&stereo, &mut out),
        Err(Error::Unsupported(_))
    ));
    // 5.1 wants SCE, CPE, CPE, LFE: a stereo unit lacks channels.
    let mut d6 = LcDecoder::new(&[0x11, 0xb0]).unwrap();
    assert!(matches!(
        d6.decode_au(&stereo, &mut out),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        d2.decode_au(&[], &mut out),
        Err(Error::Invalid(_))
    ));
    // END only: no channel decoded.
    assert!(matches!(
        d2.decode_au(&[0xe0], &mut out),
        Err(Error::Invalid(_))
    ));
    assert!(out.is_empty());
    assert!(d2.decode_au(&stereo, &mut out).is_ok());
    assert_eq!(out.len(), 2048);
    // A CCE is not supported.
    assert!(matches!(
        d2.decode_au(&[0x40, 0x00], &mut out),
        Err(Error::Unsupported(_))
    ));
    // Over the size limit.
    assert!(matches!(
        d2.decode_au(&vec![0; limits::MAX_AU_BYTES + 1], &mut out),
        Err(Error::Limit(_))
    ));
}

/// A PCE or DSE in front of a unit is skipped: the output is the unit's own. An SBR fill
/// payload is skipped too but flagged, and `decode_lc` refuses the stream.
#[test]
fn pce_dse_and_sbr_fill_elements() {
    let mut g = Synth {
        rng: Rng(31),
        fs: 3,
    };
    let aus: Vec<Vec<u8>> = (0..8).map(|_| g.access_unit(true)).collect();
    let asc = [0x11, 0x90];
    let (plain, _, _) = decode_all(&asc, &aus);
    // PCE: id 5, tag, LC, rate 3, one front CPE, comment "hi"; it ends byte aligned, so the
    // unit follows unchanged.
    let mut w = BitWriter::default();
    w.put(5, 3);
    w.put(0, 4);
    w.put(1, 2);
    w.put(3, 4);
    w.put(1, 4);
    for _ in 0..3 {
        w.put(0, 4);
    }
    w.put(0, 2);
    w.put(0, 3);
    w.put(0, 4);
    w.put(0, 3);
    w.put(1, 1);
    w.put(0, 4);
    w.align();
    w.put(2, 8);
    w.put(u32::from(b'h'), 8);
    w.put(u32::from(b'i'), 8);
    let pce = w.finish();
    // DSE: id 4, tag, aligned, 3 bytes (16 bits of header keep the alignment).
    let mut w = BitWriter::default();
    w.put(4, 3);
    w.put(0, 4);
    w.put(1, 1);
    w.put(3, 8);
    for b in [1, 2, 3] {
        w.put(b, 8);
    }
    let dse = w.finish();
    assert_eq!(dse.len(), 5);
    for prefix in [&pce, &dse] {
        let wrapped: Vec<Vec<u8>> = aus
            .iter()
            .map(|au| prefix.iter().chain(au).copied().collect())
            .collect();
        let (out, _, _) = decode_all(&asc, &wrapped);
        assert_eq!(out, plain);
    }
    // FIL with an SBR payload (extension type 13, 2 bytes) in front of the unit, then seven
    // empty FILs so the unit starts byte aligned again (23 + 7 * 7 = 72 bits): DSE alignment
    // inside the unit is relative to its start.
    let with_sbr: Vec<Vec<u8>> = aus
        .iter()
        .map(|au| {
            let mut w = BitWriter::default();
            w.put(6, 3);
            w.put(2, 4);
            w.put(13, 4);
            w.put(0, 12);
            for _ in 0..7 {
                w.put(6, 3);
                w.put(0, 4);
            }
            assert_eq!(w.bits(), 72);
            for &b in au {
                w.put(u32::from(b), 8);
            }
            w.finish()
        })
        .collect();
    let mut dec = LcDecoder::new(&asc).unwrap();
    let mut out = Vec::new();
    for (i, au) in with_sbr.iter().enumerate() {
        dec.decode_au(au, &mut out).unwrap_or_else(|e| {
            panic!("unit {i} ({} bytes, plain {}): {e}", au.len(), aus[i].len())
        });
    }
    assert!(dec.sbr_seen());
    assert_eq!(out, plain);
    assert!(matches!(
        decode_lc(&asc, with_sbr.iter().map(Vec::as_slice)),
        Err(Error::Unsupported(_))
    ));
    let pcm = decode_lc(&asc, aus.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(pcm.samples, plain);
}

/// The compile-time `|q|^(4/3)` table is exact, and the TNS coefficients are the
/// standard's formula (4.6.9.3) within an ulp. Prints the one-time table build cost, paid
/// per wasm instance.
#[test]
fn tables_match_their_definitions() {
    for (q, &v) in POW43.iter().enumerate() {
        assert_eq!(v, (q as f64).powf(4.0 / 3.0) as f32, "{q}");
    }
    let t0 = std::time::Instant::now();
    let t = Tables::new();
    eprintln!("tables built in {:.3} ms", t0.elapsed().as_secs_f64() * 1e3);
    for (res, by_res) in t.tns_coef.iter().enumerate() {
        let res_bits = 3 + res as i32;
        let half = f64::from(1 << (res_bits - 1));
        let (iqfac, iqfac_m) = (
            (half - 0.5) / std::f64::consts::FRAC_PI_2,
            (half + 0.5) / std::f64::consts::FRAC_PI_2,
        );
        for (compress, by_code) in by_res.iter().enumerate() {
            let len = res_bits - compress as i32;
            for (code, &c) in by_code.iter().enumerate().take(1 << len) {
                let v = ((code as i32) << (32 - len)) >> (32 - len);
                let v = f64::from(v);
                let want = (if v >= 0.0 { v / iqfac } else { v / iqfac_m }).sin() as f32;
                let ulps = (c.to_bits() as i64 - want.to_bits() as i64).abs();
                assert!(
                    ulps <= 1,
                    "res {res} compress {compress} code {code}: {c} vs {want}"
                );
            }
        }
    }
}
