//! Minimal RIFF/WAVE reader for the 16-bit PCM files the engines write.

/// Format and sample count of a 16-bit PCM WAV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Byte offset of the PCM data.
    pub data_offset: usize,
    /// Bytes of PCM data actually present in the file.
    pub data_len: usize,
}

impl WavInfo {
    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        let frame = 2 * usize::from(self.channels.max(1));
        (self.data_len / frame) as f64 / f64::from(self.sample_rate.max(1))
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Parses the header of a 16-bit PCM WAV; the data length is clamped to what the file holds
/// (espeak-ng and ffmpeg write placeholder sizes when streaming).
pub fn parse(b: &[u8]) -> Option<WavInfo> {
    if b.get(0..4)? != b"RIFF" || b.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut pos = 12usize;
    let mut fmt: Option<(u32, u16)> = None;
    while pos + 8 <= b.len() {
        let id = b.get(pos..pos + 4)?;
        let size = usize::try_from(u32_at(b, pos + 4)?).ok()?;
        let body = pos + 8;
        if id == b"fmt " {
            let format = u16_at(b, body)?;
            let channels = u16_at(b, body + 2)?;
            let rate = u32_at(b, body + 4)?;
            let bits = u16_at(b, body + 14)?;
            // 1 = PCM, 0xFFFE = WAVE_FORMAT_EXTENSIBLE (ffmpeg writes it for some layouts).
            if !(format == 1 || format == 0xFFFE) || bits != 16 || channels == 0 || rate == 0 {
                return None;
            }
            fmt = Some((rate, channels));
        } else if id == b"data" {
            let (sample_rate, channels) = fmt?;
            let avail = b.len() - body;
            return Some(WavInfo {
                sample_rate,
                channels,
                data_offset: body,
                data_len: size.min(avail),
            });
        }
        pos = body.checked_add(size)?.checked_add(size & 1)?;
    }
    None
}

/// The samples of the first channel.
pub fn first_channel(b: &[u8], info: &WavInfo) -> Vec<i16> {
    let frame = 2 * usize::from(info.channels);
    b.get(info.data_offset..info.data_offset + info.data_len)
        .unwrap_or_default()
        .chunks_exact(frame)
        .map(|f| i16::from_le_bytes([f[0], f[1]]))
        .collect()
}

#[cfg(test)]
pub(crate) fn build(rate: u32, samples: &[i16]) -> Vec<u8> {
    let mut v = Vec::new();
    let data_len = (samples.len() * 2) as u32;
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_clamps() {
        let w = build(16000, &[1, -2, 3, 4]);
        let i = parse(&w).unwrap();
        assert_eq!(
            (i.sample_rate, i.channels, i.data_offset, i.data_len),
            (16000, 1, 44, 8)
        );
        assert_eq!(first_channel(&w, &i), vec![1, -2, 3, 4]);
        let mut big = w.clone();
        big[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&big).unwrap().data_len, 8);
        for n in 0..44 {
            assert!(parse(&w[..n]).is_none());
        }
        assert!(parse(b"RIFF\0\0\0\0WAVEfmt \xff\xff\xff\xff").is_none());
    }
}
