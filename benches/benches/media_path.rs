//! The native media path of one audio segment, stage by stage and whole:
//! validate+demux → decode → resample to 16 kHz mono → mix two utterances → encode+remux.
//!
//! Input: a real 48 kHz stereo AAC-LC fMP4 segment from the corpus (Sintel, 469 frames ≈ 10 s).
//! Run: `cargo bench -p dub-benches` (numbers per segment).

use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use dub_media::{Background, MixOptions, Placement};

fn corpus(rel: &str) -> Vec<u8> {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn media_path(c: &mut Criterion) {
    let init = corpus("hls-fmp4/shaka-misc/sintel-audio-init.mp4");
    let seg = corpus("hls-fmp4/shaka-misc/sintel-audio-segment.mp4");
    let s = dub_media::open_segment(&init, &seg).expect("segment");
    let pcm = dub_media::decode_audio(&s).expect("decode");
    let rate = pcm.sample_rate;
    // Two 2 s "utterances": the segment's own audio, placed at 1 s and 5 s.
    let voice = pcm.slice(0, 2 * rate as usize);
    let opts = MixOptions {
        background: Background::Duck,
        duck_db: 12.0,
    };
    let voices = [
        Placement {
            speech: &voice,
            start_frame: rate as i64,
            speed: 1.0,
        },
        Placement {
            speech: &voice,
            start_frame: 5 * rate as i64,
            speed: 1.0,
        },
    ];
    let mixed = dub_media::mix(&pcm, &voices, &opts).expect("mix");

    let mut g = c.benchmark_group("segment");
    g.sample_size(20);
    g.bench_function("validate_demux", |b| {
        b.iter(|| dub_media::open_segment(&init, &seg).expect("open"))
    });
    g.bench_function("decode", |b| {
        b.iter(|| dub_media::decode_audio(&s).expect("decode"))
    });
    g.bench_function("resample_16k_mono", |b| {
        b.iter(|| dub_media::resample(&pcm, 16_000, 1).expect("resample"))
    });
    g.bench_function("mix_two_utterances", |b| {
        b.iter(|| dub_media::mix(&pcm, &voices, &opts).expect("mix"))
    });
    g.bench_function("encode_remux", |b| {
        b.iter(|| dub_media::remux_audio(&s, &mixed, None).expect("remux"))
    });
    g.bench_function("whole_media_path", |b| {
        b.iter(|| {
            let s = dub_media::open_segment(&init, &seg).expect("open");
            let pcm = dub_media::decode_audio(&s).expect("decode");
            let _stt_input = dub_media::resample(&pcm, 16_000, 1).expect("resample");
            let voice = pcm.slice(0, 2 * rate as usize);
            let voices = [
                Placement {
                    speech: &voice,
                    start_frame: rate as i64,
                    speed: 1.0,
                },
                Placement {
                    speech: &voice,
                    start_frame: 5 * rate as i64,
                    speed: 1.0,
                },
            ];
            let mixed = dub_media::mix(&pcm, &voices, &opts).expect("mix");
            dub_media::remux_audio(&s, &mixed, None).expect("remux")
        })
    });
    g.finish();
}

criterion_group!(benches, media_path);
criterion_main!(benches);
