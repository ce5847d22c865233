//! The bounded box walker, through the public API: one buffer as an init, as a media segment
//! after a corpus init, split into (init, media) at a byte chosen by the input, and through
//! the `inspect` report (which walks every box it can).
#![no_main]

use libfuzzer_sys::fuzz_target;

const INIT: &[u8] = include_bytes!(
    "../../../shared/corpus/hls-fmp4/shaka-clear-encrypted-hls/audio-init-clear.mp4"
);

fuzz_target!(|data: &[u8]| {
    let _ = dub_media::probe_init(data);
    let _ = dub_media::open_segment(INIT, data);
    if let Some((&k, rest)) = data.split_first() {
        // Split point: the first byte picks a position proportional to the length.
        let at = rest.len() * usize::from(k) / 255;
        let (a, b) = rest.split_at(at);
        let _ = dub_media::open_segment(a, b);
    }
    let report = dub_media::inspect::inspect_file(data);
    assert!(report.to_json().starts_with('{'));
});
