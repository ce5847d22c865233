//! Our own AAC-LC decoder (ISO/IEC 14496-3 subpart 4, object type 2, 1024-sample frames):
//! raw access units plus the AudioSpecificConfig, to interleaved f32 PCM in [-1, 1].
//!
//! Everything AAC-LC encoders emit is decoded: SCE/CPE/LFE, all window sequences and both
//! window shapes, M/S, intensity stereo, PNS, pulses and TNS; DSE, FIL (including SBR and
//! other extension payloads) and in-stream PCEs are skipped. Channel configurations 1 to 7
//! come out in the order syom and FFmpeg use (5.1 = FL FR FC LFE BL BR). CCE, HE-AAC
//! signalling, 960-sample frames and PCE layouts are [`Error::Unsupported`], so the caller
//! can fall back to syom.
//!
//! Output matches FFmpeg's float decoder to float rounding (the tests require 90 dB SNR on
//! real and generated streams); where the standard leaves room, FFmpeg's choices are
//! followed (see `ics`).
//!
//! The input is untrusted: nothing panics, every count is checked, and nothing is allocated
//! per access unit beyond the caller's output (tables are built once per process, buffers
//! once per decoder).

use super::tables;
use crate::error::{Error, Result};
use crate::limits;
use crate::pcm::Pcm;
use std::sync::OnceLock;

mod bits;
mod huffman;
mod ics;
mod synth;
#[cfg(test)]
mod tests;

use bits::{Bits, PAD};
use ics::{Channel, MAX_BANDS};

/// Samples per channel per access unit.
const FRAME: usize = 1024;
/// Most syntactic elements accepted in one raw_data_block.
const MAX_ELEMENTS: usize = 64;

/// `|q|^(4/3)` for 0..=8191 plus the largest pulse amplitude, computed at compile time (a
/// decoder may live in a fresh wasm instance per segment, where run-time tables cost each
/// time).
static POW43: [f32; 8192 + 16] = {
    let mut t = [0f32; 8192 + 16];
    let mut q = 1;
    while q < t.len() {
        t[q] = (q as f64 * cbrt(q as f64)) as f32;
        q += 1;
    }
    t
};

/// Cube root of `x >= 1` in a const context: a bit-level first guess, then Newton steps to
/// full precision.
const fn cbrt(x: f64) -> f64 {
    let mut y = f64::from_bits(x.to_bits() / 3 + 0x2a9f_7893_782d_a1ce);
    let mut i = 0;
    while i < 6 {
        y = (2.0 * y + x / (y * y)) / 3.0;
        i += 1;
    }
    y
}

/// Process-wide tables, built on first use.
pub(super) struct Tables {
    books: huffman::Codebooks,
    /// [`POW43`].
    pow43: &'static [f32; 8192 + 16],
    /// `2^(e/4)` for e in -100..=155.
    pow2: Vec<f32>,
    /// TNS reflection coefficients by `[coef_res][coef_compress][code]` (4.6.9.3).
    tns_coef: [[[f32; 16]; 2]; 2],
    windows: synth::Windows,
    long: synth::ImdctPlan,
    short: synth::ImdctPlan,
}

impl Tables {
    fn get() -> &'static Tables {
        static T: OnceLock<Tables> = OnceLock::new();
        T.get_or_init(Tables::new)
    }

    fn new() -> Tables {
        let signed = |v: i32| (f64::from(v.signum()) * f64::from(v.abs()).powf(4.0 / 3.0)) as f32;
        let mut quad_values = [0f32; 16];
        for (i, v) in quad_values.iter_mut().enumerate() {
            *v = signed(((i as i32) << 28) >> 28);
        }
        let mut pair_values = [0f32; 64];
        for (i, v) in pair_values.iter_mut().enumerate() {
            *v = signed(((i as i32) << 26) >> 26);
        }
        let pow2 = (-100..=155)
            .map(|e| 2f64.powf(f64::from(e) / 4.0) as f32)
            .collect();
        // 4.6.9.3: sin(v / (v >= 0 ? iqfac : iqfac_m)) for the 3- and 4-bit codes, as the
        // f32 values FFmpeg tabulates (three differ from the correctly rounded ones by an
        // ulp; a strongly resonant TNS filter amplifies even that). Compressed codes (one bit
        // less) are the uncompressed table's small positive and negative ends.
        const TNS_3: [f32; 8] = [
            0.0,
            0.433_883_73,
            0.781_831_5,
            0.974_927_9,
            -0.984_807_7,
            -0.866_025_4,
            -0.642_787_6,
            -0.342_020_15,
        ];
        const TNS_4: [f32; 16] = [
            0.0,
            0.207_911_7,
            0.406_736_64,
            0.587_785_24,
            0.743_144_8,
            0.866_025_4,
            0.951_056_54,
            0.994_521_9,
            -0.995_734_16,
            -0.961_825_6,
            -0.895_163_3,
            -0.798_017_2,
            -0.673_695_6,
            -0.526_432_16,
            -0.361_241_67,
            -0.183_749_51,
        ];
        let mut tns_coef = [[[0f32; 16]; 2]; 2];
        for (res, by_res) in tns_coef.iter_mut().enumerate() {
            let full: &[f32] = if res == 0 { &TNS_3 } else { &TNS_4 };
            for (compress, by_code) in by_res.iter_mut().enumerate() {
                let len = full.len() >> compress;
                for (code, c) in by_code.iter_mut().enumerate().take(len) {
                    // Sign-extend the shorter code and look it up in the full table.
                    let v = if code >= len / 2 {
                        full.len() - len + code
                    } else {
                        code
                    };
                    *c = full[v];
                }
            }
        }
        Tables {
            books: huffman::Codebooks::new(&quad_values, &pair_values),
            pow43: &POW43,
            pow2,
            tns_coef,
            windows: synth::Windows::new(),
            long: synth::ImdctPlan::new(1024),
            short: synth::ImdctPlan::new(128),
        }
    }

    /// `2^(e/4)`, e in -100..=155 (callers clamp).
    #[inline]
    fn pow2(&self, e: i32) -> f32 {
        self.pow2.get((e + 100) as usize).copied().unwrap_or(0.0)
    }
}

/// Syntactic element ids (Table 4.85).
const ID_SCE: u32 = 0;
const ID_CPE: u32 = 1;
const ID_CCE: u32 = 2;
const ID_LFE: u32 = 3;
const ID_DSE: u32 = 4;
const ID_PCE: u32 = 5;
const ID_END: u32 = 7;

/// Extension payload types that carry SBR (Table 4.121).
const EXT_SBR_DATA: u32 = 13;
const EXT_SBR_DATA_CRC: u32 = 14;

/// Where the n-th element of a kind goes: its first output channel (a CPE also fills the
/// next). Output order is syom's and FFmpeg's for channelConfiguration 1..=7.
fn slot(config: u8, id: u32, nth: usize) -> Option<usize> {
    let table: &[(u32, usize, usize)] = match config {
        1 => &[(ID_SCE, 0, 0)],
        2 => &[(ID_CPE, 0, 0)],
        3 => &[(ID_SCE, 0, 2), (ID_CPE, 0, 0)],
        4 => &[(ID_SCE, 0, 2), (ID_CPE, 0, 0), (ID_SCE, 1, 3)],
        5 => &[(ID_SCE, 0, 2), (ID_CPE, 0, 0), (ID_CPE, 1, 3)],
        6 => &[
            (ID_SCE, 0, 2),
            (ID_CPE, 0, 0),
            (ID_CPE, 1, 4),
            (ID_LFE, 0, 3),
        ],
        7 => &[
            (ID_SCE, 0, 2),
            (ID_CPE, 0, 0),
            (ID_CPE, 1, 6),
            (ID_CPE, 2, 4),
            (ID_LFE, 0, 3),
        ],
        _ => &[],
    };
    table
        .iter()
        .find(|&&(i, n, _)| i == id && n == nth)
        .map(|&(_, _, c)| c)
}

/// Feature use counted over the decoded access units (tests assert streams exercise them).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ToolUse {
    /// ics with each window sequence (ONLY_LONG, LONG_START, EIGHT_SHORT, LONG_STOP).
    pub(crate) windows: [u64; 4],
    /// ics with a KBD window shape.
    pub(crate) kbd: u64,
    pub(crate) tns: u64,
    pub(crate) pulses: u64,
    /// Bands coded with PNS, intensity, or M/S-masked.
    pub(crate) pns_bands: u64,
    pub(crate) is_bands: u64,
    pub(crate) ms_bands: u64,
    /// Coefficients coded with an escape.
    pub(crate) escapes: u64,
}

/// AAC-LC decoder for one stream (see the module docs).
pub(crate) struct LcDecoder {
    rate: u32,
    fs_index: u8,
    config: u8,
    /// Per output channel.
    chans: Vec<Box<Channel>>,
    /// The access unit being decoded, zero-padded.
    au: Vec<u8>,
    ms_mask: [u8; MAX_BANDS],
    scratch: Box<ics::Scratch>,
    synth: synth::Synth,
    sbr_seen: bool,
    /// Whether to count tool use (tests).
    stats: bool,
    tools: ToolUse,
    tables: &'static Tables,
}

/// The fields of an AudioSpecificConfig this decoder needs.
struct Asc {
    fs_index: u8,
    config: u8,
}

/// Parse an AudioSpecificConfig (1.6.2.1) for plain AAC-LC.
fn parse_asc(asc: &[u8]) -> Result<Asc> {
    // What is read fits in 16 bytes; the rest (if any) is never looked at.
    let head = &asc[..asc.len().min(16)];
    let mut buf = [0u8; 16 + PAD];
    buf[..head.len()].copy_from_slice(head);
    let mut b = Bits::new(&buf, head.len());
    let read_aot = |b: &mut Bits<'_>| {
        let a = b.read(5);
        if a == 31 { 32 + b.read(6) } else { a }
    };
    let aot = read_aot(&mut b);
    let fs_index = b.read(4) as u8;
    if fs_index == 15 {
        let rate = b.read(24);
        b.check("AudioSpecificConfig")?;
        return Err(Error::unsupported(format!(
            "AAC with an explicit sample rate of {rate} Hz"
        )));
    }
    let config = b.read(4) as u8;
    b.check("AudioSpecificConfig")?;
    if aot != 2 {
        return Err(Error::unsupported(format!(
            "AAC object type {aot} (our decoder does AAC-LC only)"
        )));
    }
    if fs_index > 12 {
        return Err(Error::invalid(format!(
            "AAC sampling frequency index {fs_index}"
        )));
    }
    if config == 0 || config > 7 {
        return Err(Error::unsupported(format!(
            "AAC channel configuration {config}"
        )));
    }
    // GASpecificConfig (4.4.1).
    if b.bit() {
        return Err(Error::unsupported("AAC with 960-sample frames"));
    }
    if b.bit() {
        let _core_coder_delay = b.read(14);
    }
    let _extension_flag = b.bit();
    b.check("GASpecificConfig")?;
    // Backward-compatible explicit SBR signalling (1.6.5.2): sync 0x2b7, SBR object type.
    if b.left() >= 16 && b.read(11) == 0x2b7 {
        let ext = read_aot(&mut b);
        if ext == 5 && b.left() >= 1 && b.bit() {
            return Err(Error::unsupported("AAC with explicitly signalled SBR"));
        }
    }
    Ok(Asc { fs_index, config })
}

impl LcDecoder {
    /// From the AudioSpecificConfig (object type 2 only; other types → Unsupported).
    pub(crate) fn new(asc: &[u8]) -> Result<Self> {
        let a = parse_asc(asc)?;
        let rate = tables::SAMPLE_RATES[usize::from(a.fs_index)];
        let channels = if a.config == 7 { 8 } else { a.config };
        limits::check_audio_format(rate, u16::from(channels))?;
        let t = Tables::get();
        Ok(LcDecoder {
            rate,
            fs_index: a.fs_index,
            config: a.config,
            chans: (0..channels).map(|_| Channel::new()).collect(),
            au: Vec::with_capacity(limits::MAX_AU_BYTES + PAD),
            ms_mask: [0; MAX_BANDS],
            scratch: ics::Scratch::new(),
            synth: synth::Synth::new(),
            sbr_seen: false,
            stats: false,
            tools: ToolUse::default(),
            tables: t,
        })
    }

    /// Output sample rate (Hz).
    pub(crate) fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Output channels.
    pub(crate) fn channels(&self) -> u16 {
        self.chans.len() as u16
    }

    /// Whether any access unit so far carried an SBR extension payload (which this decoder
    /// skips: such a stream is HE-AAC and decodes to twice the rate elsewhere).
    pub(crate) fn sbr_seen(&self) -> bool {
        self.sbr_seen
    }

    /// Start counting tool use (see [`LcDecoder::tool_use`]).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn count_tools(&mut self) {
        self.stats = true;
    }

    /// Tool use counted since [`LcDecoder::count_tools`].
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn tool_use(&self) -> ToolUse {
        self.tools
    }

    /// Heap bytes this decoder holds (fixed after construction).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.chans.len() * std::mem::size_of::<Channel>()
            + std::mem::size_of::<ics::Scratch>()
            + self.chans.capacity() * std::mem::size_of::<Box<Channel>>()
            + self.au.capacity()
            + self.synth.heap_bytes()
    }

    /// Decode one raw access unit, appending 1024 interleaved frames to `out`.
    ///
    /// On error nothing is appended; the overlap state may have advanced (decoding the next
    /// unit still works, as after a lost frame).
    pub(crate) fn decode_au(&mut self, au: &[u8], out: &mut Vec<f32>) -> Result<()> {
        if au.len() > limits::MAX_AU_BYTES {
            return Err(Error::limit(format!(
                "AAC access unit of {} bytes exceeds {}",
                au.len(),
                limits::MAX_AU_BYTES
            )));
        }
        let mut buf = std::mem::take(&mut self.au);
        buf.clear();
        buf.extend_from_slice(au);
        buf.extend_from_slice(&[0; PAD]);
        let r = self.raw_data_block(&buf, au.len());
        self.au = buf;
        r?;
        self.interleave(out);
        Ok(())
    }

    /// raw_data_block (Table 4.3): decode every element into its channels' output.
    fn raw_data_block(&mut self, buf: &[u8], len: usize) -> Result<()> {
        let mut b = Bits::new(buf, len);
        let mut counts = [0usize; 4];
        let mut done = 0u8;
        let mut elements = 0;
        loop {
            let id = b.read(3);
            if id == ID_END {
                break;
            }
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(Error::invalid("AAC access unit with too many elements"));
            }
            let tag = b.read(4);
            b.check("raw_data_block")?;
            match id {
                ID_SCE | ID_LFE | ID_CPE => {
                    let nth = counts[id as usize];
                    counts[id as usize] += 1;
                    let c = slot(self.config, id, nth).ok_or_else(|| {
                        Error::unsupported(format!(
                            "AAC element {id} #{nth} in channel configuration {}",
                            self.config
                        ))
                    })?;
                    if id == ID_CPE {
                        self.cpe(&mut b, c)?;
                        done |= 3 << c;
                    } else {
                        self.sce(&mut b, c)?;
                        done |= 1 << c;
                    }
                }
                ID_CCE => return Err(Error::unsupported("AAC coupling channel element")),
                ID_DSE => {
                    let align = b.bit();
                    let mut count = b.read(8) as usize;
                    if count == 255 {
                        count += b.read(8) as usize;
                    }
                    if align {
                        b.byte_align();
                    }
                    b.skip_bytes(count, "data stream element")?;
                }
                ID_PCE => skip_pce(&mut b)?,
                // ID_FIL, the last id below ID_END.
                _ => {
                    let mut count = tag as usize;
                    if count == 15 {
                        count = 14 + b.read(8) as usize;
                    }
                    if count > 0 && matches!(b.peek32() >> 28, EXT_SBR_DATA | EXT_SBR_DATA_CRC) {
                        self.sbr_seen = true;
                    }
                    b.skip_bytes(count, "fill element")?;
                }
            }
            b.check("raw_data_block")?;
            if b.left() < 3 {
                return Err(Error::invalid("AAC access unit ends before END"));
            }
        }
        let all = ((1u16 << self.chans.len()) - 1) as u8;
        if done != all {
            return Err(Error::invalid(format!(
                "AAC access unit decodes channels {done:#b} of {all:#b}"
            )));
        }
        Ok(())
    }

    /// single_channel_element / lfe_channel_element into channel `c`.
    fn sce(&mut self, b: &mut Bits<'_>, c: usize) -> Result<()> {
        let t = self.tables;
        let ch = self
            .chans
            .get_mut(c)
            .ok_or_else(|| Error::internal("AAC channel slot"))?;
        ics::read_ics(b, ch, false, self.fs_index, t, &mut self.scratch)?;
        if self.stats {
            count_tools(&mut self.tools, ch);
        }
        ics::apply_tns(&mut [&mut **ch], &mut self.scratch);
        self.synth.run(ch, &t.long, &t.short, &t.windows);
        Ok(())
    }

    /// channel_pair_element (Table 4.5) into channels `c` and `c + 1`.
    fn cpe(&mut self, b: &mut Bits<'_>, c: usize) -> Result<()> {
        let t = self.tables;
        let Some([l, r]) = self.chans.get_mut(c..c + 2) else {
            return Err(Error::internal("AAC channel pair slot"));
        };
        let common = b.bit();
        let mut ms_present = 0;
        if common {
            ics::read_ics_info(b, l, self.fs_index)?;
            r.share_ics(l);
            ms_present = b.read(2) as u8;
            let n = usize::from(l.ics.num_groups) * usize::from(l.ics.max_sfb);
            match ms_present {
                0 => {}
                1 => {
                    for m in &mut self.ms_mask[..n] {
                        *m = b.read(1) as u8;
                    }
                }
                2 => self.ms_mask[..n].fill(1),
                _ => return Err(Error::invalid("AAC ms_mask_present 3 (reserved)")),
            }
            if ms_present != 0 && self.stats {
                self.tools.ms_bands += self.ms_mask[..n].iter().filter(|&&m| m != 0).count() as u64;
            }
        }
        ics::read_ics(b, l, common, self.fs_index, t, &mut self.scratch)?;
        ics::read_ics(b, r, common, self.fs_index, t, &mut self.scratch)?;
        if common && ms_present != 0 {
            ics::apply_ms(l, r, &self.ms_mask);
        }
        ics::apply_is(l, r, ms_present, &self.ms_mask);
        ics::apply_tns(&mut [&mut **l, &mut **r], &mut self.scratch);
        for ch in [l, r] {
            if self.stats {
                count_tools(&mut self.tools, ch);
            }
            self.synth.run(ch, &t.long, &t.short, &t.windows);
        }
        Ok(())
    }

    /// Append this frame's channels, interleaved.
    fn interleave(&self, out: &mut Vec<f32>) {
        let n = self.chans.len();
        let start = out.len();
        out.resize(start + FRAME * n, 0.0);
        let dst = &mut out[start..];
        match &self.chans[..] {
            [m] => dst.copy_from_slice(&m.out),
            [l, r] => crate::dsp::interleave2(&l.out, &r.out, dst),
            chans => {
                for (c, ch) in chans.iter().enumerate() {
                    for (d, s) in dst.iter_mut().skip(c).step_by(n).zip(&ch.out) {
                        *d = *s;
                    }
                }
            }
        }
    }
}

/// Count what one decoded ics used.
fn count_tools(t: &mut ToolUse, ch: &Channel) {
    t.windows[usize::from(ch.seq[0] & 3)] += 1;
    t.kbd += u64::from(ch.shape[0]);
    t.tns += u64::from(ch.tns_present());
    t.pulses += u64::from(ch.pulses_present());
    let n = usize::from(ch.ics.num_groups) * usize::from(ch.ics.max_sfb);
    for &bt in &ch.band_type[..n] {
        match bt {
            tables::NOISE_HCB => t.pns_bands += 1,
            tables::INTENSITY_HCB | tables::INTENSITY_HCB2 => t.is_bands += 1,
            _ => {}
        }
    }
    t.escapes += ch.escapes();
}

/// program_config_element (Table 4.2): parsed for its length and skipped.
fn skip_pce(b: &mut Bits<'_>) -> Result<()> {
    let _object_type = b.read(2);
    let _fs_index = b.read(4);
    let front = b.read(4);
    let side = b.read(4);
    let back = b.read(4);
    let lfe = b.read(2);
    let assoc = b.read(3);
    let cc = b.read(4);
    for width in [4, 4, 3] {
        if b.bit() {
            let _ = b.read(width);
        }
    }
    for _ in 0..front + side + back {
        let _ = b.read(5);
    }
    for _ in 0..lfe + assoc {
        let _ = b.read(4);
    }
    for _ in 0..cc {
        let _ = b.read(5);
    }
    b.byte_align();
    let comment = b.read(8) as usize;
    b.check("program config element")?;
    b.skip_bytes(comment, "program config comment")
}

/// Decode raw AAC-LC access units with our decoder to interleaved PCM at the ASC's rate and
/// channel count, one 1024-frame block per unit.
///
/// [`Error::Unsupported`] for streams this decoder does not handle (HE-AAC signalling or SBR
/// payloads in the units, 960-sample frames, PCE layouts, CCE): decode those with syom.
// Live once `aac::decode_aus` calls it (the switch-over is the integrator's).
pub(crate) fn decode_lc<'a>(
    asc: &[u8],
    aus: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Result<Pcm> {
    let n = aus.len();
    if n > limits::MAX_FRAMES {
        return Err(Error::limit(format!("{n} access units")));
    }
    let mut dec = LcDecoder::new(asc)?;
    let ch = usize::from(dec.channels());
    let mut samples: Vec<f32> = Vec::with_capacity(n * FRAME * ch);
    // Checked per unit while its samples are in cache (`Pcm::new` would read them all again).
    let mut finite = true;
    for (i, au) in aus.enumerate() {
        let start = samples.len();
        dec.decode_au(au, &mut samples).map_err(|e| match e {
            Error::Invalid(m) => Error::invalid(format!("AAC access unit {i}: {m}")),
            other => other,
        })?;
        finite &= crate::dsp::all_finite(&samples[start..]);
        if dec.sbr_seen() {
            return Err(Error::unsupported(
                "AAC access units carry SBR (HE-AAC with implicit signalling)",
            ));
        }
    }
    if finite && samples.len() / ch <= limits::MAX_PCM_FRAMES {
        // What `Pcm::new` checks: the format when the decoder was made, whole frames by
        // construction, the length and finiteness just above.
        Ok(Pcm {
            sample_rate: dec.sample_rate(),
            channels: dec.channels(),
            samples,
        })
    } else {
        Pcm::new(dec.sample_rate(), dec.channels(), samples)
    }
}
