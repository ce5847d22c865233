//! Table-driven Huffman decoding of the spectral and scalefactor codebooks.
//!
//! Each codebook becomes a 2^[`PRIM`]-entry primary table indexed by the next bits, with
//! subtables for the few longer codes. A leaf carries the code length and a payload that is
//! already the decoded tuple. For the unsigned spectral books the sign bits that follow a
//! codeword are folded into the code (a codeword with n nonzero values becomes 2^n codes n
//! bits longer), so one lookup yields signed values (see [`spectral_codes`]).

use super::bits::Bits;
use crate::aac::tables::{BOOKS, Book, SF_CODE, SF_LEN};

/// Bits resolved by the primary table.
pub(super) const PRIM: u32 = 10;
const PRIM_SIZE: usize = 1 << PRIM;
/// The copy of the code length in an entry (zero for subtables and unused prefixes).
const LEN_MASK: u32 = 31 << 11;

/// Entry layout: bits 0..6 code length (0 = subtable or unused), bits 6..11 subtable index
/// bits, bits 11..16 the code length again, bits 16..32 payload (leaf) or subtable offset.
/// The length is the low six bits, which is all a 64-bit shift looks at, so the entry
/// shifts the reader unmasked; the copy counts the bits (see [`Bits::skip_entry`]).
pub(super) struct Vlc {
    prim: [u32; PRIM_SIZE],
    sub: Vec<u32>,
}

impl Vlc {
    /// Build from right-aligned codes; `payloads[i]` is what symbol `i` decodes to.
    fn new(lens: &[u8], codes: &[u32], payloads: &[u16]) -> Vlc {
        let mut prim = [0u32; PRIM_SIZE];
        let mut sub: Vec<u32> = Vec::new();
        // Longest code per primary prefix, for codes longer than PRIM.
        let mut longest = [0u32; PRIM_SIZE];
        for (&len, &code) in lens.iter().zip(codes) {
            let len = u32::from(len);
            if len > PRIM {
                let p = (code >> (len - PRIM)) as usize;
                longest[p] = longest[p].max(len);
            }
        }
        for (p, &l) in longest.iter().enumerate() {
            if l > 0 {
                let bits = l - PRIM;
                prim[p] = ((sub.len() as u32) << 16) | (bits << 6);
                sub.resize(sub.len() + (1 << bits), 0);
            }
        }
        for ((&len, &code), &pay) in lens.iter().zip(codes).zip(payloads) {
            let len = u32::from(len);
            debug_assert!(len < 32);
            let leaf = (u32::from(pay) << 16) | (len << 11) | len;
            if len <= PRIM {
                let first = (code << (PRIM - len)) as usize;
                prim[first..first + (1 << (PRIM - len))].fill(leaf);
            } else {
                let e = prim[(code >> (len - PRIM)) as usize];
                let (off, bits) = ((e >> 16) as usize, (e >> 6) & 31);
                let rest = len - PRIM;
                let low = (code & ((1 << rest) - 1)) as usize;
                let first = off + (low << (bits - rest));
                sub[first..first + (1 << (bits - rest))].fill(leaf);
            }
        }
        Vlc { prim, sub }
    }

    /// Decode one codeword and return its payload.
    #[inline(always)]
    pub(super) fn decode(&self, b: &mut Bits<'_>) -> u32 {
        b.refill();
        self.decode_cached(b)
    }

    /// Decode one codeword from the bits already cached: at least 19 must be (see
    /// [`Bits::refill`]).
    #[inline(always)]
    pub(super) fn decode_cached(&self, b: &mut Bits<'_>) -> u32 {
        let w = b.peek_cached();
        let mut e = self.prim[(w >> (32 - PRIM)) as usize & (PRIM_SIZE - 1)];
        if e & LEN_MASK == 0 {
            e = self.long_entry(w, e);
            if e & LEN_MASK == 0 {
                // A prefix no codeword has (the books are complete, so only a corrupted
                // table could get here): fail the access unit at the next check.
                b.set_bad();
                return 0;
            }
        }
        b.skip_entry(e);
        e >> 16
    }

    /// The subtable leaf for a code longer than [`PRIM`] bits (0 when there is none).
    #[cold]
    #[inline(never)]
    fn long_entry(&self, w: u32, e: u32) -> u32 {
        let bits = (e >> 6) & 31;
        if bits == 0 {
            return 0;
        }
        let i = (e >> 16) as usize + ((w << PRIM) >> (32 - bits)) as usize;
        self.sub.get(i).copied().unwrap_or(0)
    }

    /// Sum over codes of 2^-len: 1.0 for a complete prefix code (tests).
    #[cfg(test)]
    pub(super) fn kraft(lens: &[u8]) -> f64 {
        lens.iter().map(|&l| 0.5f64.powi(i32::from(l))).sum()
    }
}

/// Spectral book `book` with its sign bits folded in: (lengths, codes, payloads).
///
/// Payloads hold the signed values in two's complement: quads (books 1–4) 4 bits each at
/// `4k`, pairs (books 5–11) 6 bits each at `6k`; in book 11, ±16 marks an escape whose
/// magnitude follows.
pub(super) fn spectral_codes(book: &Book) -> (Vec<u8>, Vec<u32>, Vec<u16>) {
    let m = book.modulus() as usize;
    let dim = book.dim.min(4);
    let width = if dim == 4 { 4 } else { 6 };
    let n = book.len.len() * 4;
    let (mut lens, mut codes, mut pays) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (sym, (&len, &code)) in book.len.iter().zip(book.code).enumerate() {
        // The tuple's values, first at index 0.
        let mut digits = [0i32; 4];
        let mut rest = sym;
        for d in digits[..dim].iter_mut().rev() {
            *d = (rest % m) as i32 - if book.signed { book.lav } else { 0 };
            rest /= m;
        }
        let nnz = if book.signed {
            0
        } else {
            digits[..dim].iter().filter(|&&d| d != 0).count() as u32
        };
        for signs in 0..1u32 << nnz {
            let mut bit = nnz;
            let mut pay = 0u32;
            for (k, &d) in digits[..dim].iter().enumerate() {
                let mut v = d;
                if !book.signed && v != 0 {
                    bit -= 1;
                    if signs >> bit & 1 == 1 {
                        v = -v;
                    }
                }
                pay |= (v as u32 & ((1 << width) - 1)) << (width * k);
            }
            lens.push(len + nnz as u8);
            codes.push((u32::from(code) << nnz) | signs);
            pays.push(pay as u16);
        }
    }
    (lens, codes, pays)
}

/// Escape flags in a book 11 leaf: the first / second value of the pair is an escape.
pub(super) const ESC_FIRST: u32 = 1 << 14;
pub(super) const ESC_SECOND: u32 = 1 << 15;
/// The value-table index in a spectral leaf.
pub(super) const INDEX_MASK: u32 = ESC_FIRST - 1;

/// The scalefactor codebook and the 11 spectral codebooks.
///
/// A spectral leaf's payload is the codeword's index `i` in [`spectral_codes`] (plus, in
/// book 11, [`ESC_FIRST`] / [`ESC_SECOND`]); its values, already raised to the 4/3 power
/// and signed, are `quads[book - 1][i]` (books 1-4) or `pairs[book - 5][i]` (books 5-11,
/// where an escape reads as `sign * 16^(4/3)`), so one load fetches a whole tuple.
pub(super) struct Codebooks {
    /// Payload: the DPCM index (delta + 60).
    pub(super) sf: Vlc,
    /// Books 1..=11 at index `book - 1`.
    pub(super) spectral: Vec<Vlc>,
    /// Values of books 1..=4 at index `book - 1`, by leaf index.
    pub(super) quads: Vec<Vec<[f32; 4]>>,
    /// Values of books 5..=11 at index `book - 5`, by leaf index.
    pub(super) pairs: Vec<Vec<[f32; 2]>>,
}

impl Codebooks {
    /// `quad_values` and `pair_values` map 4- and 6-bit two's complement values to
    /// `sign(v) |v|^(4/3)`.
    pub(super) fn new(quad_values: &[f32; 16], pair_values: &[f32; 64]) -> Self {
        let sf_pay: Vec<u16> = (0..SF_LEN.len() as u16).collect();
        let sf = Vlc::new(&SF_LEN, &SF_CODE, &sf_pay);
        let (mut spectral, mut quads, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
        for b in BOOKS.iter() {
            let (lens, codes, pays) = spectral_codes(b);
            let mut leaves = Vec::with_capacity(pays.len());
            if b.dim == 4 {
                let mut v = Vec::with_capacity(pays.len());
                for (i, &p) in pays.iter().enumerate() {
                    let p = u32::from(p);
                    v.push(std::array::from_fn(|k| {
                        quad_values[(p >> (4 * k)) as usize & 15]
                    }));
                    leaves.push(i as u16);
                }
                quads.push(v);
            } else {
                let mut v = Vec::with_capacity(pays.len());
                for (i, &p) in pays.iter().enumerate() {
                    let p = u32::from(p);
                    let (x, y) = (p & 63, (p >> 6) & 63);
                    v.push([pair_values[x as usize], pair_values[y as usize]]);
                    let mut leaf = i as u32;
                    if b.lav == 16 {
                        if x & 31 == 16 {
                            leaf |= ESC_FIRST;
                        }
                        if y & 31 == 16 {
                            leaf |= ESC_SECOND;
                        }
                    }
                    leaves.push(leaf as u16);
                }
                pairs.push(v);
            }
            debug_assert!(pays.len() <= INDEX_MASK as usize);
            spectral.push(Vlc::new(&lens, &codes, &leaves));
        }
        Codebooks {
            sf,
            spectral,
            quads,
            pairs,
        }
    }
}
