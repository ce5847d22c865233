//! individual_channel_stream (ISO/IEC 14496-3 4.4.2.7): ics_info, section data,
//! scalefactors, pulse and TNS data, spectral data with dequantization and PNS, then the
//! stereo tools and the TNS synthesis filter.
//!
//! Where the standard leaves room (clipping of noise and intensity positions, pulses in
//! zero bands, M/S over noise bands, PNS noise per window) this follows FFmpeg's decoder,
//! which is what our output is compared against.

use super::Tables;
use super::bits::Bits;
use super::huffman::{ESC_FIRST, ESC_SECOND, INDEX_MASK};
use crate::aac::tables;
use crate::error::{Error, Result};

pub(super) const ONLY_LONG: u8 = 0;
pub(super) const LONG_START: u8 = 1;
pub(super) const EIGHT_SHORT: u8 = 2;
pub(super) const LONG_STOP: u8 = 3;

/// Window groups x bands: 8 x 15 short, 51 long.
pub(super) const MAX_BANDS: usize = 128;

const NOISE: u8 = tables::NOISE_HCB;
const IS_OUT: u8 = tables::INTENSITY_HCB2;
const IS_IN: u8 = tables::INTENSITY_HCB;

/// Table 4.156 (TNS_MAX_BANDS for LC) by sampling frequency index, long and short windows.
const TNS_MAX_BANDS_LONG: [u8; 13] = [31, 31, 34, 40, 42, 51, 46, 46, 42, 42, 42, 39, 39];
const TNS_MAX_BANDS_SHORT: [u8; 13] = [9, 9, 10, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14];
/// TNS_MAX_ORDER for LC.
const TNS_MAX_ORDER_LONG: u8 = 12;
const TNS_MAX_ORDER_SHORT: u8 = 7;

/// ics_info as it applies to the current frame.
#[derive(Clone, Copy)]
pub(super) struct IcsInfo {
    pub(super) max_sfb: u8,
    pub(super) num_groups: u8,
    pub(super) group_len: [u8; 8],
    pub(super) num_windows: u8,
    pub(super) num_swb: u8,
    pub(super) swb: &'static [u16],
    pub(super) tns_max: u8,
}

impl IcsInfo {
    fn empty() -> Self {
        IcsInfo {
            max_sfb: 0,
            num_groups: 1,
            group_len: [1, 0, 0, 0, 0, 0, 0, 0],
            num_windows: 1,
            num_swb: 0,
            swb: &[0],
            tns_max: 0,
        }
    }
}

#[derive(Clone, Copy, Default)]
pub(super) struct TnsFilter {
    length: u8,
    order: u8,
    /// Filter downwards in frequency.
    down: bool,
    lpc: [f32; TNS_MAX_ORDER_LONG as usize],
}

#[derive(Clone, Copy, Default)]
pub(super) struct Tns {
    present: bool,
    n_filt: [u8; 8],
    filt: [[TnsFilter; 3]; 8],
}

#[derive(Clone, Copy, Default)]
struct Pulses {
    count: usize,
    pos: [u16; 4],
    amp: [u8; 4],
}

/// One channel's per-frame data and its synthesis state.
pub(super) struct Channel {
    pub(super) ics: IcsInfo,
    /// Window sequence: [current, previous].
    pub(super) seq: [u8; 2],
    /// Window shape (0 sine, 1 KBD): [current, previous].
    pub(super) shape: [u8; 2],
    pub(super) band_type: [u8; MAX_BANDS],
    /// End band (exclusive, within the group) of the section each band is in.
    run_end: [u8; MAX_BANDS],
    /// Per band: dequantization gain, PNS amplitude or intensity scale (0 for zero bands).
    pub(super) gain: [f32; MAX_BANDS],
    /// Spectrum, window-major (window `w` at `w * 128`).
    pub(super) coef: [f32; 1024],
    pub(super) tns: Tns,
    /// Second half of the previous frame's IMDCT output (see `synth`).
    pub(super) saved: [f32; 512],
    /// This frame's output samples.
    pub(super) out: [f32; 1024],
    /// Pulses and escaped values in this frame (tool statistics).
    pulses: usize,
    escapes: u32,
}

impl Channel {
    pub(super) fn new() -> Box<Self> {
        Box::new(Channel {
            ics: IcsInfo::empty(),
            seq: [ONLY_LONG; 2],
            shape: [0; 2],
            band_type: [0; MAX_BANDS],
            run_end: [0; MAX_BANDS],
            gain: [0.0; MAX_BANDS],
            coef: [0.0; 1024],
            tns: Tns::default(),
            saved: [0.0; 512],
            out: [0.0; 1024],
            pulses: 0,
            escapes: 0,
        })
    }

    pub(super) fn tns_present(&self) -> bool {
        self.tns.present
    }

    pub(super) fn pulses_present(&self) -> bool {
        self.pulses > 0
    }

    pub(super) fn escapes(&self) -> u64 {
        u64::from(self.escapes)
    }

    /// For the second channel of a common-window CPE: take the first channel's ics_info and
    /// window sequences, keeping this channel's own previous window shape (as FFmpeg does).
    pub(super) fn share_ics(&mut self, first: &Channel) {
        self.ics = first.ics;
        self.seq = first.seq;
        self.shape = [first.shape[0], self.shape[0]];
    }
}

/// ics_info (Table 4.6) into `ch`, shifting the window history.
pub(super) fn read_ics_info(b: &mut Bits<'_>, ch: &mut Channel, fs: u8) -> Result<()> {
    let _reserved = b.bit();
    ch.seq = [b.read(2) as u8, ch.seq[0]];
    ch.shape = [b.read(1) as u8, ch.shape[0]];
    let fsi = usize::from(fs.min(12));
    let mut ics = IcsInfo::empty();
    if ch.seq[0] == EIGHT_SHORT {
        ics.max_sfb = b.read(4) as u8;
        let grouping = b.read(7);
        ics.num_groups = 1;
        ics.group_len = [1, 0, 0, 0, 0, 0, 0, 0];
        for i in 0..7 {
            if grouping & (1 << (6 - i)) != 0 {
                ics.group_len[usize::from(ics.num_groups) - 1] += 1;
            } else {
                ics.num_groups += 1;
                ics.group_len[usize::from(ics.num_groups) - 1] = 1;
            }
        }
        ics.num_windows = 8;
        ics.swb = tables::short_offsets(fs).ok_or_else(|| Error::invalid("AAC rate index"))?;
        ics.tns_max = TNS_MAX_BANDS_SHORT[fsi];
    } else {
        ics.max_sfb = b.read(6) as u8;
        if b.bit() {
            return Err(Error::invalid(
                "AAC-LC ics_info with predictor_data_present",
            ));
        }
        ics.swb = tables::long_offsets(fs).ok_or_else(|| Error::invalid("AAC rate index"))?;
        ics.tns_max = TNS_MAX_BANDS_LONG[fsi];
    }
    ics.num_swb = (ics.swb.len() - 1) as u8;
    if ics.max_sfb > ics.num_swb {
        return Err(Error::invalid(format!(
            "AAC max_sfb {} above {} bands",
            ics.max_sfb, ics.num_swb
        )));
    }
    ch.ics = ics;
    b.check("ics_info")
}

/// individual_channel_stream (Table 4.44) after ics_info: everything up to dequantized
/// spectral coefficients in `ch.coef`.
pub(super) fn read_ics(
    bits: &mut Bits<'_>,
    ch: &mut Channel,
    common_window: bool,
    fs: u8,
    t: &Tables,
    scratch: &mut Scratch,
) -> Result<()> {
    // A local copy of the reader stays in registers.
    let mut local = *bits;
    let r = read_ics_with(&mut local, ch, common_window, fs, t, scratch);
    *bits = local;
    r
}

#[inline(always)]
fn read_ics_with(
    b: &mut Bits<'_>,
    ch: &mut Channel,
    common_window: bool,
    fs: u8,
    t: &Tables,
    scratch: &mut Scratch,
) -> Result<()> {
    let global_gain = b.read(8) as i32;
    if !common_window {
        read_ics_info(b, ch, fs)?;
    }
    read_sections(b, ch)?;
    read_scalefactors(b, ch, global_gain, t)?;
    let pulses = if b.bit() {
        if ch.seq[0] == EIGHT_SHORT {
            return Err(Error::invalid("AAC pulse data in an EIGHT_SHORT frame"));
        }
        read_pulses(b, &ch.ics)?
    } else {
        Pulses::default()
    };
    ch.tns.present = b.bit();
    if ch.tns.present {
        read_tns(b, ch, t)?;
    }
    if b.bit() {
        return Err(Error::invalid("AAC-LC ics with gain_control_data_present"));
    }
    b.check("ics side info")?;
    read_spectrum(b, ch, t, scratch)?;
    ch.pulses = pulses.count;
    if pulses.count > 0 {
        apply_pulses(ch, &pulses, t);
    }
    Ok(())
}

/// section_data (Table 4.46): a codebook per band.
#[inline(always)]
fn read_sections(b: &mut Bits<'_>, ch: &mut Channel) -> Result<()> {
    let ics = ch.ics;
    let (len_bits, esc) = if ch.seq[0] == EIGHT_SHORT {
        (3, 7)
    } else {
        (5, 31)
    };
    let max_sfb = usize::from(ics.max_sfb);
    let mut idx = 0;
    for _ in 0..ics.num_groups {
        let mut k = 0;
        while k < max_sfb {
            let book = b.read(4) as u8;
            if book == 12 {
                return Err(Error::invalid("AAC section with reserved codebook 12"));
            }
            let mut end = k;
            loop {
                let inc = b.read(len_bits) as usize;
                end += inc;
                // Each pass reads bits, so a run of zero-length sections ends at the
                // access unit's end.
                if b.left() < 0 {
                    return Err(Error::invalid("AAC section data: access unit ends early"));
                }
                if end > max_sfb {
                    return Err(Error::invalid(format!(
                        "AAC section ends at band {end}, past max_sfb {max_sfb}"
                    )));
                }
                if inc != esc {
                    break;
                }
            }
            for _ in k..end {
                ch.band_type[idx] = book;
                ch.run_end[idx] = end as u8;
                idx += 1;
            }
            k = end;
        }
    }
    Ok(())
}

/// scale_factor_data (Table 4.47) into per-band gains. Scalefactors must stay in 0..=255;
/// noise energies and intensity positions are clipped as FFmpeg does.
#[inline(always)]
fn read_scalefactors(
    b: &mut Bits<'_>,
    ch: &mut Channel,
    global_gain: i32,
    t: &Tables,
) -> Result<()> {
    let ics = ch.ics;
    let n = usize::from(ics.num_groups) * usize::from(ics.max_sfb);
    let mut sf = global_gain;
    let mut noise = global_gain - 90;
    let mut is_pos = 0i32;
    let mut first_noise = true;
    for idx in 0..n {
        let gain = match ch.band_type[idx] {
            tables::ZERO_HCB => 0.0,
            IS_OUT | IS_IN => {
                is_pos += t.books.sf.decode(b) as i32 - 60;
                t.pow2(-is_pos.clamp(-155, 100))
            }
            NOISE => {
                if first_noise {
                    noise += b.read(9) as i32 - 256;
                    first_noise = false;
                } else {
                    noise += t.books.sf.decode(b) as i32 - 60;
                }
                t.pow2(noise.clamp(-100, 155))
            }
            _ => {
                sf += t.books.sf.decode(b) as i32 - 60;
                if !(0..=255).contains(&sf) {
                    return Err(Error::invalid(format!("AAC scalefactor {sf} out of range")));
                }
                t.pow2(sf - 100)
            }
        };
        ch.gain[idx] = gain;
    }
    b.check("scalefactors")
}

/// pulse_data (Table 4.7), long windows only.
fn read_pulses(b: &mut Bits<'_>, ics: &IcsInfo) -> Result<Pulses> {
    let mut p = Pulses {
        count: b.read(2) as usize + 1,
        ..Pulses::default()
    };
    let start_sfb = b.read(6) as usize;
    if start_sfb >= usize::from(ics.num_swb) {
        return Err(Error::invalid("AAC pulse_start_sfb past the bands"));
    }
    let top = ics.swb[usize::from(ics.num_swb)];
    let mut pos = ics.swb[start_sfb];
    for i in 0..p.count {
        pos += b.read(5) as u16;
        if pos >= top {
            return Err(Error::invalid("AAC pulse offset past the spectrum"));
        }
        p.pos[i] = pos;
        p.amp[i] = b.read(4) as u8;
    }
    Ok(p)
}

/// tns_data (Table 4.48), with the coefficients already converted to LPC form.
fn read_tns(b: &mut Bits<'_>, ch: &mut Channel, t: &Tables) -> Result<()> {
    let short = ch.seq[0] == EIGHT_SHORT;
    let (filt_bits, len_bits, order_bits, max_order) = if short {
        (1, 4, 3, TNS_MAX_ORDER_SHORT)
    } else {
        (2, 6, 5, TNS_MAX_ORDER_LONG)
    };
    let tns = &mut ch.tns;
    for w in 0..usize::from(ch.ics.num_windows) {
        let n_filt = b.read(filt_bits) as u8;
        tns.n_filt[w] = n_filt;
        if n_filt == 0 {
            continue;
        }
        let coef_res = b.read(1) as usize;
        for f in &mut tns.filt[w][..usize::from(n_filt)] {
            f.length = b.read(len_bits) as u8;
            f.order = b.read(order_bits) as u8;
            if f.order > max_order {
                let order = f.order;
                f.order = 0;
                return Err(Error::invalid(format!(
                    "AAC TNS order {order} above {max_order}"
                )));
            }
            if f.order == 0 {
                continue;
            }
            f.down = b.bit();
            let compress = b.read(1) as usize;
            let coef_len = 3 + coef_res as u32 - compress as u32;
            let table = &t.tns_coef[coef_res][compress];
            let order = usize::from(f.order);
            let mut refl = [0f32; TNS_MAX_ORDER_LONG as usize];
            for r in &mut refl[..order] {
                *r = table[b.read(coef_len) as usize & 15];
            }
            // Reflection to LPC coefficients (4.6.9.3 tns_decode_coef), in place.
            let lpc = &mut f.lpc;
            for i in 0..order {
                let r = refl[i];
                for j in 0..(i + 1) >> 1 {
                    let (fj, bj) = (lpc[j], lpc[i - 1 - j]);
                    lpc[j] = fj + r * bj;
                    lpc[i - 1 - j] = bj + r * fj;
                }
                lpc[i] = r;
            }
        }
    }
    b.check("TNS data")
}

/// escape_sequence: N ones, a zero, then N + 4 bits; the value is 2^(N+4) + bits.
#[inline(always)]
fn escape(b: &mut Bits<'_>) -> u32 {
    let n = (!b.peek32()).leading_zeros();
    if n > 8 {
        b.set_bad();
        return 0;
    }
    b.skip(n + 1);
    let len = n + 4;
    (1 << len) + b.read(len)
}

/// spectral_data (Table 4.50) dequantized into `ch.coef`, window-major, with PNS.
fn read_spectrum(
    b: &mut Bits<'_>,
    ch: &mut Channel,
    t: &Tables,
    scratch: &mut Scratch,
) -> Result<()> {
    ch.coef.fill(0.0);
    ch.escapes = 0;
    let ics = ch.ics;
    let swb = ics.swb;
    let max_sfb = usize::from(ics.max_sfb);
    let short = ics.num_windows == 8;
    let Scratch { random, tmp, .. } = scratch;
    let mut win = 0usize;
    for g in 0..usize::from(ics.num_groups) {
        let glen = usize::from(ics.group_len[g]);
        let mut i = 0;
        while i < max_sfb {
            let idx = g * max_sfb + i;
            let book = ch.band_type[idx];
            let end = usize::from(ch.run_end[idx]).clamp(i + 1, max_sfb);
            match book {
                tables::ZERO_HCB | IS_OUT | IS_IN => {}
                NOISE => {
                    for band in i..end {
                        let (lo, hi) = (usize::from(swb[band]), usize::from(swb[band + 1]));
                        let gain = ch.gain[g * max_sfb + band];
                        for w in win..win + glen {
                            noise(&mut ch.coef[w * 128 + lo..w * 128 + hi], gain, random);
                        }
                    }
                }
                _ => {
                    // The values are decoded unscaled and scaled per band afterwards (one
                    // multiplication either way), which keeps the band boundaries out of
                    // the decoding loop.
                    let (lo, hi) = (usize::from(swb[i]), usize::from(swb[end]));
                    if short {
                        let len = (hi - lo) * glen;
                        ch.escapes += decode_run(b, book, &mut tmp[..len], t);
                        let mut off = 0;
                        for band in i..end {
                            let (lo, hi) = (usize::from(swb[band]), usize::from(swb[band + 1]));
                            let gain = ch.gain[g * max_sfb + band];
                            for w in win..win + glen {
                                let width = hi - lo;
                                let dst = &mut ch.coef[w * 128 + lo..w * 128 + hi];
                                for (d, &s) in dst.iter_mut().zip(&tmp[off..off + width]) {
                                    *d = s * gain;
                                }
                                off += width;
                            }
                        }
                    } else {
                        ch.escapes += decode_run(b, book, &mut ch.coef[lo..hi], t);
                        for band in i..end {
                            let (lo, hi) = (usize::from(swb[band]), usize::from(swb[band + 1]));
                            let gain = ch.gain[g * max_sfb + band];
                            for x in &mut ch.coef[lo..hi] {
                                *x *= gain;
                            }
                        }
                    }
                    b.check("spectral data")?;
                }
            }
            i = end;
        }
        win += glen;
    }
    Ok(())
}

/// Decoder-wide state of spectral decoding: the PNS generator and buffers kept so nothing
/// is cleared per call.
pub(super) struct Scratch {
    /// FFmpeg's PNS generator state.
    pub(super) random: u32,
    /// Short windows: a section's values in bitstream order (band-major, then window),
    /// scattered to window-major afterwards.
    tmp: [f32; 1024],
    /// Two TNS filters' coefficients while they run (see [`apply_tns`]).
    tns_a: [f32; 1024],
    tns_b: [f32; 1024],
}

impl Scratch {
    pub(super) fn new() -> Box<Self> {
        Box::new(Scratch {
            random: 0x1f2e_3d4c,
            tmp: [0.0; 1024],
            tns_a: [0.0; 1024],
            tns_b: [0.0; 1024],
        })
    }
}

/// Call `chunk` on each 4 coefficients of `out`, refilling the reader once per
/// `4 * PER_REFILL` coefficients (the caller's bound on the bits that takes).
#[inline(always)]
fn run_chunks<const PER_REFILL: usize>(
    b: &mut Bits<'_>,
    out: &mut [f32],
    mut chunk: impl FnMut(&mut Bits<'_>, &mut [f32]),
) {
    let mut blocks = out.chunks_exact_mut(4 * PER_REFILL);
    for block in &mut blocks {
        b.refill();
        for q in block.chunks_exact_mut(4) {
            chunk(b, q);
        }
    }
    for q in blocks.into_remainder().chunks_exact_mut(4) {
        b.refill();
        chunk(b, q);
    }
}

/// PNS (4.6.13): FFmpeg's generator and scaling, one window at a time.
///
/// The generator's values, in its order, eight at a time: each from the state before the
/// eight by a jump-ahead constant (exact in wrapping arithmetic), so the lanes do not wait
/// on one another. The energy is summed in eight lanes folded pairwise, the same order on
/// every instruction set.
fn noise(band: &mut [f32], amplitude: f32, random: &mut u32) {
    const A: u32 = 1_664_525;
    const C: u32 = 1_013_904_223;
    // Step k + 1 from a state r: MUL[k] r + ADD[k].
    const JUMP: ([u32; 8], [u32; 8]) = {
        let (mut mul, mut add) = ([0u32; 8], [0u32; 8]);
        let (mut m, mut a) = (1u32, 0u32);
        let mut k = 0;
        while k < 8 {
            m = m.wrapping_mul(A);
            a = a.wrapping_mul(A).wrapping_add(C);
            mul[k] = m;
            add[k] = a;
            k += 1;
        }
        (mul, add)
    };
    let mut r = *random;
    let mut acc = [0f32; 8];
    let (chunks, rest) = band.as_chunks_mut::<8>();
    for c in chunks {
        let s: [u32; 8] =
            std::array::from_fn(|k| JUMP.0[k].wrapping_mul(r).wrapping_add(JUMP.1[k]));
        for ((x, a), &s) in c.iter_mut().zip(&mut acc).zip(&s) {
            let v = s as i32 as f32;
            *x = v;
            *a += v * v;
        }
        r = s[7];
    }
    for (x, a) in rest.iter_mut().zip(&mut acc) {
        r = r.wrapping_mul(A).wrapping_add(C);
        let v = r as i32 as f32;
        *x = v;
        *a += v * v;
    }
    *random = r;
    let energy = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    let scale = if energy > 0.0 {
        amplitude / energy.sqrt()
    } else {
        0.0
    };
    for x in band.iter_mut() {
        *x *= scale;
    }
}

/// One section's spectral data coded with book 1..=11, as signed `|q|^(4/3)` values (the
/// caller scales them per band); returns the escapes read.
///
/// One dispatch per section and no band boundaries inside keep the mispredictions low.
/// The reader is refilled once per 4 coefficients or more (at most 56 bits of codewords
/// and sign bits in between, what a refill guarantees), which keeps the load off most of
/// the codeword-to-codeword dependency chain; escapes refill on their own.
#[inline(never)]
fn decode_run(bits: &mut Bits<'_>, book: u8, out: &mut [f32], t: &Tables) -> u32 {
    // Work on a copy so the reader's state lives in registers.
    let mut local = *bits;
    let escapes = decode_run_with(&mut local, book, out, t);
    *bits = local;
    escapes
}

#[inline(always)]
fn decode_run_with(b: &mut Bits<'_>, book: u8, out: &mut [f32], t: &Tables) -> u32 {
    let books = &t.books;
    let vlc = &books.spectral[usize::from(book - 1) % 11];
    let (quads, pairs): (&[[f32; 4]], &[[f32; 2]]) = match book {
        1..=4 => (&books.quads[usize::from(book - 1)], &[]),
        _ => (&[], &books.pairs[usize::from(book.clamp(5, 11) - 5)]),
    };
    let quad = |b: &mut Bits<'_>, q: &mut [f32]| {
        let i = vlc.decode_cached(b) as usize;
        if let (Some(v), Ok(q)) = (quads.get(i), <&mut [f32; 4]>::try_from(q)) {
            *q = *v;
        }
    };
    let pair = |b: &mut Bits<'_>, q: &mut [f32]| {
        for q in q.chunks_exact_mut(2) {
            let i = vlc.decode_cached(b) as usize;
            if let Some(v) = pairs.get(i) {
                q.copy_from_slice(v);
            }
        }
    };
    // Codes with sign bits are at most 11 (books 1, 2), 20 (3, 4), 14 (5-8, 10) and 17 (9)
    // bits: as many as fit in 56 are read per refill.
    match book {
        1 | 2 => run_chunks::<4>(b, out, quad),
        3 | 4 => run_chunks::<2>(b, out, quad),
        9 => run_chunks::<1>(b, out, pair),
        5..=10 => run_chunks::<2>(b, out, pair),
        _ => {
            let mut escapes = 0;
            let pow43 = &t.pow43;
            run_chunks::<1>(b, out, |b, q| {
                for q in q.chunks_exact_mut(2) {
                    let e = vlc.decode_cached(b);
                    let Some(&v) = pairs.get((e & INDEX_MASK) as usize) else {
                        continue;
                    };
                    let mut y = v;
                    if e & (ESC_FIRST | ESC_SECOND) != 0 {
                        // An escape's magnitude follows the codeword; the sign is the
                        // codeword's.
                        for (k, y) in y.iter_mut().enumerate() {
                            if e & (ESC_FIRST << k) != 0 {
                                *y = pow43[escape(b) as usize & 8191].copysign(*y);
                                escapes += 1;
                            }
                        }
                    }
                    q.copy_from_slice(&y);
                }
            });
            return escapes;
        }
    }
    0
}

/// Pulses (4.6.3.3) on the dequantized spectrum, the way FFmpeg applies them: skipped in
/// noise and zero bands.
fn apply_pulses(ch: &mut Channel, p: &Pulses, t: &Tables) {
    let swb = ch.ics.swb;
    let mut idx = 0usize;
    for i in 0..p.count {
        let pos = usize::from(p.pos[i]);
        while idx + 1 < swb.len() && usize::from(swb[idx + 1]) <= pos {
            idx += 1;
        }
        let gain = ch.gain[idx];
        if ch.band_type[idx] == NOISE || gain == 0.0 || idx >= usize::from(ch.ics.max_sfb) {
            continue;
        }
        let amp = f32::from(p.amp[i]);
        let co = ch.coef[pos] / gain;
        // |q| from |q|^(4/3); exact for the integers a codebook can hold.
        let q = if co == 0.0 {
            -amp
        } else {
            let mag = co.abs().powf(0.75).round();
            if co > 0.0 { mag + amp } else { -(mag + amp) }
        };
        let mag = t.pow43.get(q.abs() as usize).copied().unwrap_or(0.0);
        ch.coef[pos] = if q < 0.0 { -mag } else { mag } * gain;
    }
}

/// ms_data applied (4.6.8.1): L = M + S, R = M - S where the mask is set and neither channel
/// codes the band with noise or intensity.
pub(super) fn apply_ms(l: &mut Channel, r: &mut Channel, mask: &[u8; MAX_BANDS]) {
    let ics = l.ics;
    let max_sfb = usize::from(ics.max_sfb);
    let mut win = 0;
    for g in 0..usize::from(ics.num_groups) {
        let glen = usize::from(ics.group_len[g]);
        // Runs of adjacent bands with M/S are adjacent coefficients: one loop per run.
        let mut i = 0;
        while i < max_sfb {
            let on = |i: usize| {
                let idx = g * max_sfb + i;
                mask[idx] != 0 && l.band_type[idx] < NOISE && r.band_type[idx] < NOISE
            };
            if !on(i) {
                i += 1;
                continue;
            }
            let first = i;
            while i < max_sfb && on(i) {
                i += 1;
            }
            let (lo, hi) = (usize::from(ics.swb[first]), usize::from(ics.swb[i]));
            for w in win..win + glen {
                let range = w * 128 + lo..w * 128 + hi;
                for (a, b) in l.coef[range.clone()].iter_mut().zip(&mut r.coef[range]) {
                    let (m, s) = (*a, *b);
                    *a = m + s;
                    *b = m - s;
                }
            }
        }
        win += glen;
    }
}

/// Intensity stereo (4.6.8.2): bands of the right channel coded with books 14/15 are the
/// left channel scaled; `ms_present` flips the sign where the M/S mask is set.
pub(super) fn apply_is(l: &Channel, r: &mut Channel, ms_present: u8, mask: &[u8; MAX_BANDS]) {
    let ics = r.ics;
    let max_sfb = usize::from(ics.max_sfb);
    let mut win = 0;
    for g in 0..usize::from(ics.num_groups) {
        let glen = usize::from(ics.group_len[g]);
        for i in 0..max_sfb {
            let idx = g * max_sfb + i;
            let book = r.band_type[idx];
            if book != IS_OUT && book != IS_IN {
                continue;
            }
            let mut c = if book == IS_IN { 1.0f32 } else { -1.0 };
            if ms_present != 0 && mask[idx] != 0 {
                c = -c;
            }
            let scale = c * r.gain[idx];
            let (lo, hi) = (usize::from(ics.swb[i]), usize::from(ics.swb[i + 1]));
            for w in win..win + glen {
                let range = w * 128 + lo..w * 128 + hi;
                for (d, s) in r.coef[range.clone()].iter_mut().zip(&l.coef[range]) {
                    *d = s * scale;
                }
            }
        }
        win += glen;
    }
}

/// One TNS filter over a channel's coefficients.
#[derive(Clone, Copy, Default)]
struct TnsJob {
    /// Index into the channels given to [`apply_tns`].
    chan: usize,
    start: usize,
    end: usize,
    down: bool,
    order: usize,
    lpc: [f32; TNS_MAX_ORDER_LONG as usize],
}

/// Most filters in one ics: 8 windows x 1 (short) or 1 x 3 (long).
const MAX_TNS_JOBS: usize = 8;

/// TNS synthesis (all-pole) filtering of the channels' `coef` (4.6.9.3).
///
/// Every filter of an ics covers its own coefficients and the channels are independent, so
/// the filters run two at a time, interleaved: each is a long dependency chain, and two
/// chains keep the CPU twice as busy. Each filter still sees its values in its own order.
pub(super) fn apply_tns(chans: &mut [&mut Channel], scratch: &mut Scratch) {
    let mut jobs = [TnsJob::default(); 2 * MAX_TNS_JOBS];
    let mut n = 0;
    for (c, ch) in chans.iter().enumerate().take(2) {
        tns_jobs(ch, c, &mut jobs, &mut n);
    }
    let mut pairs = jobs[..n].chunks_exact(2);
    for pair in &mut pairs {
        let (a, b) = (&pair[0], &pair[1]);
        let (la, lb) = (a.end - a.start, b.end - b.start);
        let (xa, xb) = (&mut scratch.tns_a[..la], &mut scratch.tns_b[..lb]);
        for (job, x) in [(a, &mut *xa), (b, &mut *xb)] {
            let Some(ch) = chans.get(job.chan) else {
                return;
            };
            x.copy_from_slice(&ch.coef[job.start..job.end]);
            if job.down {
                x.reverse();
            }
        }
        tns_filter2(xa, &a.lpc[..a.order], xb, &b.lpc[..b.order]);
        for (job, x) in [(a, &mut *xa), (b, &mut *xb)] {
            if job.down {
                x.reverse();
            }
            let Some(ch) = chans.get_mut(job.chan) else {
                return;
            };
            ch.coef[job.start..job.end].copy_from_slice(x);
        }
    }
    for job in pairs.remainder() {
        let Some(ch) = chans.get_mut(job.chan) else {
            return;
        };
        let x = &mut ch.coef[job.start..job.end];
        if job.down {
            x.reverse();
        }
        tns_filter(x, &job.lpc[..job.order]);
        if job.down {
            x.reverse();
        }
    }
}

/// The filters of one channel's ics, appended to `jobs[*n..]`.
fn tns_jobs(ch: &Channel, chan: usize, jobs: &mut [TnsJob], n: &mut usize) {
    if !ch.tns.present {
        return;
    }
    let ics = ch.ics;
    let mmm = usize::from(ics.tns_max.min(ics.max_sfb));
    if mmm == 0 {
        return;
    }
    for w in 0..usize::from(ics.num_windows) {
        let mut bottom = usize::from(ics.num_swb);
        for f in &ch.tns.filt[w][..usize::from(ch.tns.n_filt[w])] {
            let top = bottom;
            bottom = top.saturating_sub(usize::from(f.length));
            let order = usize::from(f.order);
            if order == 0 {
                continue;
            }
            let start = usize::from(ics.swb[bottom.min(mmm)]);
            let end = usize::from(ics.swb[top.min(mmm)]);
            if end <= start {
                continue;
            }
            if let Some(job) = jobs.get_mut(*n) {
                *job = TnsJob {
                    chan,
                    start: w * 128 + start,
                    end: w * 128 + end,
                    down: f.down,
                    order,
                    lpc: f.lpc,
                };
                *n += 1;
            }
        }
    }
}

/// [`tns_filter`] on two independent sequences at once (their steps interleaved).
fn tns_filter2(a: &mut [f32], la: &[f32], b: &mut [f32], lb: &[f32]) {
    let n = a.len().min(b.len());
    let (Some((&a0, ra)), Some((&b0, rb))) = (la.split_first(), lb.split_first()) else {
        tns_filter(a, la);
        tns_filter(b, lb);
        return;
    };
    let (Some(&fa), Some(&fb)) = (a.first(), b.first()) else {
        return;
    };
    let (mut pa, mut pb) = (fa, fb);
    for m in 1..n {
        let mut x = a[m] - pa * a0;
        for (i, &c) in ra.iter().enumerate().take(m - 1) {
            x -= a[m - 2 - i] * c;
        }
        let mut y = b[m] - pb * b0;
        for (i, &c) in rb.iter().enumerate().take(m - 1) {
            y -= b[m - 2 - i] * c;
        }
        a[m] = x;
        b[m] = y;
        (pa, pb) = (x, y);
    }
    tns_filter_from(a, la, n.max(1));
    tns_filter_from(b, lb, n.max(1));
}

/// All-pole filter `y[n] = x[n] - sum_i lpc[i] y[n-1-i]` in place, summed in FFmpeg's order
/// (a strongly resonant filter amplifies any difference in rounding).
///
/// The newest output, which the first term needs, stays in a register: the loop's
/// dependency chain does not go through a store and a load.
fn tns_filter(x: &mut [f32], lpc: &[f32]) {
    tns_filter_from(x, lpc, 1)
}

/// [`tns_filter`] from sample `from` >= 1 on (the earlier ones are done).
fn tns_filter_from(x: &mut [f32], lpc: &[f32], from: usize) {
    let Some((&a0, rest)) = lpc.split_first() else {
        return;
    };
    let Some(&last) = x.get(from.max(1) - 1) else {
        return;
    };
    let mut prev = last;
    for m in from.max(1)..x.len() {
        // acc = x[m] - x[m-1] a0 - x[m-2] a1 - ..., as many terms as there are samples.
        let mut acc = x[m] - prev * a0;
        for (i, &a) in rest.iter().enumerate().take(m - 1) {
            acc -= x[m - 2 - i] * a;
        }
        x[m] = acc;
        prev = acc;
    }
}
