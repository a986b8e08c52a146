//! Bounds-checked little-endian reading and writing helpers.

use alloc::vec::Vec;

use crate::error::FormatError;

/// A forward-only reader over a byte slice; every read checks bounds first.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`; `what` names the region in errors.
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self {
            bytes,
            pos: 0,
            what,
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// Takes the next `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], FormatError> {
        let out = self.peek_from(self.pos, len)?;
        self.pos += len;
        Ok(out)
    }

    /// Looks at `len` bytes from absolute position `at` without moving.
    pub fn peek_from(&self, at: usize, len: usize) -> Result<&'a [u8], FormatError> {
        at.checked_add(len)
            .and_then(|end| self.bytes.get(at..end))
            .ok_or(FormatError::Truncated {
                what: self.what,
                offset: at,
                needed: len,
            })
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.bytes(1)?[0])
    }

    /// Reads a little-endian u16.
    pub fn u16(&mut self) -> Result<u16, FormatError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a little-endian u64.
    pub fn u64(&mut self) -> Result<u64, FormatError> {
        let b = self.bytes(8)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(b);
        Ok(u64::from_le_bytes(raw))
    }

    /// Reads a count of items that each take at least `min_item_len` bytes, rejecting counts
    /// the remaining bytes cannot hold (so a corrupt count never causes a huge allocation).
    pub fn count(&mut self, min_item_len: usize) -> Result<usize, FormatError> {
        let count = self.u32()? as usize;
        let needed = count.saturating_mul(min_item_len.max(1));
        if needed > self.remaining() {
            return Err(FormatError::Truncated {
                what: self.what,
                offset: self.pos,
                needed,
            });
        }
        Ok(count)
    }
}

/// Little-endian appends to a byte vector.
pub trait PutLe {
    /// Appends a u8.
    fn put_u8(&mut self, v: u8);
    /// Appends a u32.
    fn put_u32(&mut self, v: u32);
    /// Appends a u64.
    fn put_u64(&mut self, v: u64);
}

impl PutLe for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
}

/// Converts a length to the format's u32, or says what was too large.
pub fn to_u32(len: usize, what: &'static str) -> Result<u32, FormatError> {
    u32::try_from(len).map_err(|_| FormatError::TooLarge(what))
}
