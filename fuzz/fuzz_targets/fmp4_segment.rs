//! The whole public fMP4 path on (init, media): probe, open, decode, remux.
//!
//! Input layout: 2-byte big-endian init length, init bytes, media bytes (see `seed.sh`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let n = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (init, media) = rest.split_at(n);
    let _ = dub_media::probe_init(init);
    let Ok(seg) = dub_media::open_segment(init, media) else {
        return;
    };
    let t = seg.timing();
    assert_eq!(t.frame_count as usize, seg.access_units().len());
    // Decoding a hostile segment may fail, but must not panic; remux runs on the decoded PCM.
    let Ok(pcm) = dub_media::decode_audio(&seg) else {
        return;
    };
    assert_eq!(pcm.frames(), seg.pcm_frames());
    if let Ok(out) = dub_media::remux_audio(&seg, &pcm, None) {
        // What we serve must open again under the init we serve it with; for an AAC-LC
        // source that is the source init, and the timing is unchanged.
        let out_init = seg.output_init().expect("output init of an opened segment");
        let again = dub_media::open_segment(&out_init, &out).expect("remuxed segment reopens");
        if out_init == init {
            assert_eq!(again.timing(), seg.timing());
        }
    }
});
