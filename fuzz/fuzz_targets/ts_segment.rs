//! MPEG-TS (and packed ADTS audio, the other self-describing input) through the public path:
//! sniff, open (demux), decode, remux, and `inspect`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = dub_media::inspect::inspect_file(data);
    assert!(report.to_json().starts_with('{'));
    let Ok(seg) = dub_media::open_segment(&[], data) else {
        return;
    };
    // TS and packed ADTS audio are both self-describing; fMP4 needs an init.
    assert_eq!(seg.container(), dub_media::sniff(data));
    let t = seg.timing();
    assert_eq!(t.frame_count as usize, seg.access_units().len());
    let Ok(pcm) = dub_media::decode_audio(&seg) else {
        return;
    };
    assert_eq!(pcm.frames(), seg.pcm_frames());
    if let (Ok(init), Ok(out)) = (seg.output_init(), dub_media::remux_audio(&seg, &pcm, None)) {
        // The fMP4 we serve for a TS source must open under the init we build for it.
        dub_media::open_segment(&init, &out).expect("remuxed TS segment reopens");
    }
});
