//! The native media path of one 6 s 48 kHz stereo segment, stage by stage and whole, for an
//! audio-only and a muxed (H.264 + AAC) fMP4 segment made with ffmpeg at bench time from the
//! corpus speech clip: validate+demux → decode → resample to 16 kHz mono → mix two utterances →
//! encode+remux. `DUB_MEDIA_ISA=scalar` (or `sse2`) caps the DSP kernels for a comparison.
//! The process uses dubhost's allocator settings ([`dub_benches::dubhost_allocator`]).
//!
//! Run: `cargo bench -p dub-benches` (times are per segment). The side-by-side table with wasm
//! and ffmpeg: `cargo run --release --bin media-table --features dub-benches/wasm`.

use criterion::{Criterion, criterion_group, criterion_main};
use dub_benches::{RATE, native};

fn media_path(c: &mut Criterion) {
    // As dubhost runs (freed segment buffers reused, not page-faulted back in).
    dub_benches::dubhost_allocator();
    let dir = std::env::temp_dir().join(format!("dub-media-bench-{}", std::process::id()));
    let inputs = dub_benches::make_inputs(&dir).expect("ffmpeg inputs");
    for inp in &inputs {
        let (init, media) = (&inp.init[..], &inp.media[..]);
        let s = native::open(init, media).expect("segment");
        let pcm = dub_media::decode_audio(&s).expect("decode");
        let voice = pcm.slice(0, 2 * RATE as usize);
        let mixed = dub_media::mix(&pcm, &native::placements(&voice), &native::MIX).expect("mix");

        let mut g = c.benchmark_group(format!("segment_6s_{}", inp.kind));
        g.sample_size(20);
        g.bench_function("validate_demux", |b| {
            b.iter(|| native::open(init, media).expect("open"))
        });
        g.bench_function("decode", |b| {
            b.iter(|| dub_media::decode_audio(&s).expect("decode"))
        });
        g.bench_function("resample_16k_mono", |b| {
            b.iter(|| dub_media::resample(&pcm, 16_000, 1).expect("resample"))
        });
        g.bench_function("mix_two_utterances", |b| {
            b.iter(|| dub_media::mix(&pcm, &native::placements(&voice), &native::MIX).expect("mix"))
        });
        g.bench_function("encode_remux", |b| {
            b.iter(|| dub_media::remux_audio(&s, &mixed, None).expect("remux"))
        });
        g.bench_function("whole_media_path", |b| {
            b.iter(|| native::whole(init, media).expect("whole"))
        });
        g.finish();
    }
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, media_path);
criterion_main!(benches);
