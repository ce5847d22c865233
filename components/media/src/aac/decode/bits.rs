//! MSB-first bit reader over a zero-padded copy of one access unit.
//!
//! Reads never fail and never panic: past the end they return zero bits and only move the
//! position, and a bad Huffman or escape code sets a flag. Callers ask [`Bits::check`] at
//! element and band boundaries, which turns either into an error. Every loop that reads is
//! bounded by the syntax (bands, coefficients, escape lengths), so reading zeros past the end
//! cannot spin.

use crate::error::{Error, Result};

/// Zero bytes kept after the access unit so a 64-bit load at any in-range position succeeds.
pub(super) const PAD: usize = 8;

#[derive(Clone, Copy)]
pub(super) struct Bits<'a> {
    /// The access unit followed by [`PAD`] zero bytes.
    buf: &'a [u8],
    /// Next byte to load into the cache.
    next: usize,
    /// Upcoming bits, MSB first; the top `avail` bits are valid.
    cache: u64,
    avail: u32,
    /// Length of the access unit in bits.
    end: usize,
    /// A code that no codebook has (or an escape too long) was read.
    bad: bool,
}

impl<'a> Bits<'a> {
    /// `buf` holds `len` bytes of data followed by padding.
    pub(super) fn new(buf: &'a [u8], len: usize) -> Self {
        Bits {
            buf,
            next: 0,
            cache: 0,
            avail: 0,
            end: len * 8,
            bad: false,
        }
    }

    /// Top up the cache to at least 56 valid bits. The bytes past the valid ones that the
    /// 64-bit load also brings in are the stream's own next bits, so OR-ing them in again on
    /// the next refill changes nothing.
    #[inline(always)]
    pub(super) fn refill(&mut self) {
        let w = self
            .buf
            .get(self.next..self.next + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map_or(0, u64::from_be_bytes);
        self.cache |= w >> self.avail;
        let bytes = (63 - self.avail) >> 3;
        self.next += bytes as usize;
        self.avail += bytes << 3;
    }

    /// The next 32 bits, MSB first (zeros past the end). Refills unconditionally: a
    /// data-dependent branch here mispredicts more than the load costs.
    #[inline(always)]
    pub(super) fn peek32(&mut self) -> u32 {
        self.refill();
        (self.cache >> 32) as u32
    }

    /// The next 32 bits without refilling: only the first `avail` of them are valid, which
    /// is at least 56 right after a refill (callers count what they consume in between).
    #[inline(always)]
    pub(super) fn peek_cached(&self) -> u32 {
        (self.cache >> 32) as u32
    }

    /// Skip `n` <= 32 bits; only after a [`Bits::peek32`] that covered them.
    #[inline(always)]
    pub(super) fn skip(&mut self, n: u32) {
        debug_assert!(n <= self.avail);
        self.cache <<= n;
        self.avail -= n;
    }

    /// Skip the bits of a Huffman table entry `e` (see `huffman::Vlc`): its low six bits
    /// and, again, bits 11..16 hold the code length. Only after a [`Bits::peek32`] that
    /// covered them. The shift takes `e` unmasked (a 64-bit shift only looks at the low six
    /// bits) and the count uses the copy, so no mask sits on the codeword-to-codeword chain.
    #[inline(always)]
    pub(super) fn skip_entry(&mut self, e: u32) {
        let n = (e >> 11) & 31;
        debug_assert!(n <= self.avail);
        self.cache = self.cache.wrapping_shl(e);
        self.avail -= n;
    }

    /// Bits consumed so far.
    #[inline]
    fn pos(&self) -> usize {
        self.next * 8 - self.avail as usize
    }

    /// Read `n` bits, 1 <= n <= 32.
    #[inline(always)]
    pub(super) fn read(&mut self, n: u32) -> u32 {
        debug_assert!((1..=32).contains(&n));
        let v = self.peek32() >> (32 - n);
        self.skip(n);
        v
    }

    #[inline(always)]
    pub(super) fn bit(&mut self) -> bool {
        self.read(1) != 0
    }

    /// Mark the stream as undecodable (checked by [`Bits::check`]).
    #[inline(always)]
    pub(super) fn set_bad(&mut self) {
        self.bad = true;
    }

    /// Bits left before the end of the access unit (negative after an overrun).
    pub(super) fn left(&self) -> isize {
        self.end as isize - self.pos() as isize
    }

    /// Continue reading at bit `pos` (drops the cache).
    fn seek(&mut self, pos: usize) {
        self.next = pos >> 3;
        self.cache = 0;
        self.avail = 0;
        let rem = (pos & 7) as u32;
        if rem != 0 {
            self.peek32();
            self.skip(rem);
        }
    }

    pub(super) fn byte_align(&mut self) {
        let p = self.pos();
        self.seek((p + 7) & !7);
    }

    /// Skip `bytes` whole bytes, which must all be inside the access unit.
    pub(super) fn skip_bytes(&mut self, bytes: usize, what: &str) -> Result<()> {
        if self.left() < 0 || (self.left() as usize) < bytes * 8 {
            return Err(Error::invalid(format!(
                "AAC {what} of {bytes} bytes runs past the access unit"
            )));
        }
        let p = self.pos();
        self.seek(p + bytes * 8);
        Ok(())
    }

    /// Error if the reader ran past the end or met a bad code.
    #[inline]
    pub(super) fn check(&self, what: &str) -> Result<()> {
        if self.bad {
            return Err(Error::invalid(format!("AAC {what}: invalid code")));
        }
        if self.pos() > self.end {
            return Err(Error::invalid(format!(
                "AAC {what}: access unit ends early"
            )));
        }
        Ok(())
    }
}
