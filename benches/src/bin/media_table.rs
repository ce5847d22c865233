//! Prints one markdown table: each stage of the media path on a 6 s 48 kHz stereo segment
//! (audio-only and muxed fMP4), median ms natively, in wasmtime and as ffmpeg subprocesses.
//!
//! `cargo run --release --bin media-table --features dub-benches/wasm [-- --wasm PATH --runs N --wall --glibc-defaults]`
//! (CPU time by default: see [`Clock::Cpu`]; `--wall` for elapsed time)
//! (default component: `build/dub_media.wasm`, built by `make components`).

use std::hint::black_box;
use std::path::PathBuf;

use anyhow::{Context, Result};
use dub_benches::wasm::MediaWasm;

use dub_benches::{Clock, RATE, SegmentInput, ffmpeg, median_on, medians_round_robin, native};

struct Row {
    stage: &'static str,
    native: f64,
    wasm: Option<f64>,
    ffmpeg: Option<f64>,
}

/// The stages of a row set, in order.
const STAGES: [&str; 6] = [
    "validate + demux",
    "decode",
    "resample to 16 kHz mono",
    "mix two utterances",
    "encode + remux",
    "**whole media path**",
];

fn native_rows(inp: &SegmentInput, clock: Clock, runs: usize) -> Result<Vec<Row>> {
    let (init, media) = (&inp.init[..], &inp.media[..]);
    let seg = native::open(init, media)?;
    let pcm = dub_media::decode_audio(&seg)?;
    let voice = pcm.slice(0, 2 * RATE as usize);
    let mixed = dub_media::mix(&pcm, &native::placements(&voice), &native::MIX)?;
    let t = medians_round_robin(clock, runs, STAGES.len(), |i| {
        match i {
            0 => drop(black_box(native::open(init, media)?)),
            1 => drop(black_box(dub_media::decode_audio(&seg)?)),
            2 => drop(black_box(dub_media::resample(&pcm, 16_000, 1)?)),
            3 => drop(black_box(dub_media::mix(
                &pcm,
                &native::placements(&voice),
                &native::MIX,
            )?)),
            4 => drop(black_box(dub_media::remux_audio(&seg, &mixed, None)?)),
            _ => drop(black_box(native::whole(init, media)?)),
        }
        Ok(())
    })?;
    Ok(STAGES
        .iter()
        .zip(t)
        .map(|(&stage, native)| Row {
            stage,
            native,
            wasm: None,
            ffmpeg: None,
        })
        .collect())
}

fn wasm_fill(
    rows: &mut [Row],
    w: &mut MediaWasm,
    inp: &SegmentInput,
    clock: Clock,
    runs: usize,
) -> Result<()> {
    let (init, media) = (&inp.init[..], &inp.media[..]);
    let seg = w.open(init, media)?;
    let pcm = w.decode(seg)?;
    let voice = w.slice(pcm, 0, 2 * u64::from(RATE))?;
    let mixed = w.mix_two(pcm, voice)?;
    let t = medians_round_robin(clock, runs, STAGES.len(), |i| match i {
        0 => {
            let s = w.open(init, media)?;
            w.drop(s)
        }
        1 => {
            let p = w.decode(seg)?;
            w.drop(p)
        }
        2 => {
            let p = w.resample(pcm, 16_000, 1)?;
            w.drop(p)
        }
        3 => {
            let p = w.mix_two(pcm, voice)?;
            w.drop(p)
        }
        4 => w.remux(seg, mixed).map(drop),
        _ => w.whole(init, media).map(drop),
    })?;
    for r in [mixed, voice, pcm, seg] {
        w.drop(r)?;
    }
    for (row, t) in rows.iter_mut().zip(t) {
        row.wasm = Some(t);
    }
    Ok(())
}

fn ffmpeg_fill(rows: &mut [Row], inp: &SegmentInput, clock: Clock, runs: usize) -> Result<()> {
    let pcm = ffmpeg::extract(&inp.joined)?;
    let extract = median_on(clock, runs, || ffmpeg::extract(&inp.joined))?;
    let mux = median_on(clock, runs, || ffmpeg::mux(&inp.joined, &pcm))?;
    let whole = median_on(clock, runs, || {
        let pcm = ffmpeg::extract(&inp.joined)?;
        ffmpeg::mux(&inp.joined, &pcm)
    })?;
    // ffmpeg's extract covers validate + demux + decode; its mux covers encode + remux.
    rows[1].ffmpeg = Some(extract);
    rows[4].ffmpeg = Some(mux);
    rows[5].ffmpeg = Some(whole);
    Ok(())
}

/// Native and wasm agree: the same input PCM through `mix` gives the same 16-bit WAV, and the
/// same mixed PCM through `remux-audio` gives the same bytes.
fn agreement(w: &mut MediaWasm, inp: &SegmentInput) -> Result<String> {
    let seg = native::open(&inp.init, &inp.media)?;
    let pcm = dub_media::decode_audio(&seg)?;
    let voice = pcm.slice(0, 2 * RATE as usize);
    let mixed = dub_media::mix(&pcm, &native::placements(&voice), &native::MIX)?;
    let native_remux = dub_media::remux_audio(&seg, &mixed, None)?;
    let stt = dub_media::resample(&pcm, 16_000, 1)?;

    let wseg = w.open(&inp.init, &inp.media)?;
    let wdec = w.decode(wseg)?;
    let decode_same = w.to_wav(wdec)? == pcm.to_wav();
    let wpcm = w.pcm(RATE, 2, &pcm.samples)?;
    let wstt = w.resample(wpcm, 16_000, 1)?;
    let resample_same = w.to_wav(wstt)? == stt.to_wav();
    let wvoice = w.slice(wpcm, 0, 2 * u64::from(RATE))?;
    let wmixed = w.mix_two(wpcm, wvoice)?;
    let mix_same = w.to_wav(wmixed)? == mixed.to_wav();
    let wmixed_native = w.pcm(RATE, 2, &mixed.samples)?;
    let remux_same = w.remux(wseg, wmixed_native)? == native_remux;
    for r in [wmixed_native, wmixed, wvoice, wstt, wpcm, wdec, wseg] {
        w.drop(r)?;
    }
    let yn = |b: bool| if b { "identical" } else { "DIFFERENT" };
    Ok(format!(
        "{}: decode (16-bit WAV) {}, resample to 16 kHz mono (16-bit WAV) {}, mix (16-bit WAV) {}, \
         remux bytes {}",
        inp.kind,
        yn(decode_same),
        yn(resample_same),
        yn(mix_same),
        yn(remux_same)
    ))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut wasm_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/dub_media.wasm");
    let mut runs = 15usize;
    let mut clock = Clock::Cpu;
    let mut glibc_defaults = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--glibc-defaults" => glibc_defaults = true,
            "--wasm" => wasm_path = PathBuf::from(args.next().context("--wasm PATH")?),
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--wall" => clock = Clock::Wall,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    if !glibc_defaults {
        dub_benches::dubhost_allocator();
    }
    let dir = std::env::temp_dir().join(format!("dub-media-table-{}", std::process::id()));
    let inputs = dub_benches::make_inputs(&dir)?;
    let mut notes = Vec::new();
    let mut w = match MediaWasm::load(&wasm_path) {
        Ok(w) => Some(w),
        Err(e) => {
            notes.push(format!("wasm column empty: {}: {e:#}", wasm_path.display()));
            None
        }
    };

    let unit = if clock == Clock::Cpu { "CPU ms" } else { "ms" };
    println!(
        "| input | stage | native {unit} | wasm {unit} | ffmpeg {unit} | ffmpeg / native | ffmpeg / wasm |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for inp in &inputs {
        let seg = native::open(&inp.init, &inp.media)?;
        let t = seg.timing();
        let mut rows = native_rows(inp, clock, runs)?;
        if let Some(w) = w.as_mut() {
            wasm_fill(&mut rows, w, inp, clock, runs)?;
        }
        ffmpeg_fill(&mut rows, inp, clock, runs.min(9))?;
        // ffmpeg's extract is compared with validate + demux + decode.
        let native_decode = rows[0].native + rows[1].native;
        let wasm_decode = rows[0].wasm.unwrap_or(0.0) + rows[1].wasm.unwrap_or(0.0);
        for (i, r) in rows.iter().enumerate() {
            let fmt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
            let (n, wv) = if i == 1 {
                (native_decode, wasm_decode)
            } else {
                (r.native, r.wasm.unwrap_or(f64::NAN))
            };
            let ratio = |d: f64| {
                r.ffmpeg
                    .map_or("–".to_owned(), |f| format!("{:.1}×", f / d))
            };
            println!(
                "| {} | {} | {:.2} | {} | {} | {} | {} |",
                inp.kind,
                r.stage,
                r.native,
                fmt(r.wasm),
                fmt(r.ffmpeg),
                ratio(n),
                ratio(wv)
            );
        }
        notes.push(format!(
            "{}: {} bytes, {} AAC frames ({:.3} s){}",
            inp.kind,
            inp.media.len(),
            t.frame_count,
            t.frame_count as f64 * 1024.0 / f64::from(RATE),
            if seg.has_other_tracks() {
                ", with video"
            } else {
                ""
            }
        ));
        if let Some(w) = w.as_mut() {
            notes.push(agreement(w, inp)?);
        }
    }
    println!();
    println!(
        "Median of {runs} runs (ffmpeg: {}) of {}, one 6 s 48 kHz stereo segment; the stages \
         of an input run round-robin, so that a slow stretch of the machine weighs on all alike. ffmpeg's extract \
         (`-f s16le -`) is compared with validate + demux + decode, its mux (`-c:v copy -c:a \
         aac`, fragmented) with encode + remux; ffmpeg does no resampling or mixing here. \
         DSP kernels: {}. Allocator: {}.",
        runs.min(9),
        if clock == Clock::Cpu {
            "CPU time (this thread; ffmpeg: its user + system time, 10 ms ticks; wasm compiled once before)"
        } else {
            "wall-clock time"
        },
        std::env::var("DUB_MEDIA_ISA").unwrap_or_else(|_| "best detected".into()),
        if glibc_defaults {
            "glibc defaults (`--glibc-defaults`)"
        } else {
            "dubhost's settings (freed buffers kept for reuse; `--glibc-defaults` to compare)"
        }
    );
    for n in notes {
        println!("- {n}");
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
