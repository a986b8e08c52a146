//! The string table: UTF-8 strings referenced by (offset, length) pairs.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::bytes::{Cursor, PutLe, to_u32};
use crate::error::FormatError;

/// Builds a deduplicated string table while writing.
#[derive(Debug, Default)]
pub struct StringTableBuilder {
    bytes: Vec<u8>,
    seen: BTreeMap<String, u32>,
}

impl StringTableBuilder {
    /// Adds `s` (once) and appends its (offset, length) reference to `out`.
    pub fn put(&mut self, out: &mut Vec<u8>, s: &str) -> Result<(), FormatError> {
        let offset = match self.seen.get(s) {
            Some(&offset) => offset,
            None => {
                let offset = to_u32(self.bytes.len(), "string table")?;
                self.bytes.extend_from_slice(s.as_bytes());
                to_u32(self.bytes.len(), "string table")?;
                self.seen.insert(String::from(s), offset);
                offset
            }
        };
        out.put_u32(offset);
        out.put_u32(to_u32(s.len(), "string")?);
        Ok(())
    }

    /// The finished table bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// A read-only view of the string table.
#[derive(Debug, Clone, Copy)]
pub struct StringTable<'a> {
    bytes: &'a [u8],
}

impl<'a> StringTable<'a> {
    /// Wraps the table bytes.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Reads an (offset, length) reference from `cur` and resolves it.
    pub fn read(&self, cur: &mut Cursor<'_>, what: &'static str) -> Result<&'a str, FormatError> {
        let offset = cur.u32()? as usize;
        let len = cur.u32()? as usize;
        self.get(offset, len, what)
    }

    /// Resolves an (offset, length) reference.
    pub fn get(
        &self,
        offset: usize,
        len: usize,
        what: &'static str,
    ) -> Result<&'a str, FormatError> {
        let raw = offset
            .checked_add(len)
            .and_then(|end| self.bytes.get(offset..end))
            .ok_or(FormatError::OutOfRange(what))?;
        core::str::from_utf8(raw).map_err(|_| FormatError::BadString(what))
    }
}
