//! Limits applied to untrusted input before anything is allocated or decoded.

use crate::error::{Error, Result};

/// Largest init or media segment accepted (bytes).
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;
/// Deepest box nesting accepted.
pub const MAX_BOX_DEPTH: usize = 16;
/// Most boxes accepted in one container.
pub const MAX_BOXES_PER_LEVEL: usize = 4096;
/// Most tracks accepted in an init segment.
pub const MAX_TRACKS: usize = 64;
/// Most `moof` boxes accepted in one media segment.
pub const MAX_FRAGMENTS: usize = 1024;
/// Most audio access units accepted in one media segment (~7 min at 48 kHz).
pub const MAX_FRAMES: usize = 20_000;
/// Largest AAC access unit accepted (6144 bits per channel, 8 channels).
pub const MAX_AU_BYTES: usize = 6144;
/// Most channels accepted.
pub const MAX_CHANNELS: u16 = 8;
/// Lowest sample rate accepted (Hz).
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest sample rate accepted (Hz).
pub const MAX_SAMPLE_RATE: u32 = 96_000;
/// Most PCM frames accepted in one buffer (10 minutes at 96 kHz).
pub const MAX_PCM_FRAMES: usize = 96_000 * 600;

pub(crate) fn check_input_len(len: usize, what: &str) -> Result<()> {
    if len > MAX_INPUT_BYTES {
        return Err(Error::limit(format!(
            "{what} of {len} bytes exceeds {MAX_INPUT_BYTES}"
        )));
    }
    Ok(())
}

pub(crate) fn check_audio_format(sample_rate: u32, channels: u16) -> Result<()> {
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(Error::limit(format!(
            "sample rate {sample_rate} Hz outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE}"
        )));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(Error::limit(format!(
            "{channels} channels outside 1..={MAX_CHANNELS}"
        )));
    }
    Ok(())
}

/// Most times a TS stream may lose and regain sync in one segment.
pub const MAX_TS_RESYNCS: usize = 64;
/// Furthest a lost TS sync is searched for (bytes).
pub const MAX_TS_RESYNC_SCAN: usize = 16 * 188;
/// Largest PSI section (ISO/IEC 13818-1 caps PAT/PMT sections at 1024 bytes).
pub const MAX_PSI_SECTION: usize = 1024;
/// Most elementary streams accepted in a PMT.
pub const MAX_TS_STREAMS: usize = 32;
/// Largest single PES packet reassembled (bytes).
pub const MAX_PES_BYTES: usize = 8 * 1024 * 1024;
/// Most timestamped PES packets per elementary stream in one segment.
pub const MAX_PES_PER_STREAM: usize = 200_000;
/// Most video access units in one segment.
pub const MAX_VIDEO_SAMPLES: usize = 200_000;
/// Largest SPS or PPS accepted (bytes).
pub const MAX_PARAM_SET_BYTES: usize = 1024;
/// Most distinct SPS (and, separately, PPS) collected from one segment.
pub const MAX_PARAM_SETS: usize = 32;
/// Most ID3 tags read in front of packed audio.
pub const MAX_ID3_TAGS: usize = 16;
