//! Our AAC-LC decoder on raw access units, then our encoder on what it decoded.
//!
//! Input layout: 1-byte AudioSpecificConfig length (mod 8), the ASC, then access units as
//! 2-byte big-endian length + bytes (see `seed.sh`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len());
    let (asc, mut rest) = rest.split_at(n);
    let mut aus: Vec<&[u8]> = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let l = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        aus.push(&tail[..l]);
        rest = &tail[l..];
        if aus.len() >= 64 {
            break;
        }
    }
    dub_media::fuzz_aac_raw(asc, &aus);
});
