//! Fixed parts of the layout: magic, version, header and record sizes, and the header codec.
//!
//! All integers are little-endian. See `docs/chunk-format.md` for the full picture.

use crate::bytes::Cursor;
use crate::checksum::crc32c;
use crate::error::FormatError;

/// The first eight bytes of every image.
pub const MAGIC: [u8; 8] = *b"ATOLLCHK";
/// Newest major version. Readers reject any major version they do not know; this reader knows
/// 1 to 4 (2 adds the programs section; 3 adds the workload section and a default environment
/// to each program; 4 adds memories, tables and globals shared between chunks to the manifests,
/// and vector and reference types to their signatures, with version 3's header; the writer uses
/// the lowest version that holds what the image has).
pub const VERSION_MAJOR: u16 = 4;
/// Minor version: additions old readers may ignore (they accept any minor of their major).
pub const VERSION_MINOR: u16 = 0;
/// Size of the fixed header of a version-1 image in bytes.
pub const HEADER_LEN: usize = 72;
/// Size of the fixed header of a version-2 or version-3 image (a programs section before the
/// checksums).
pub const HEADER_LEN_V2: usize = 80;
/// Size of the fixed header of a version-3 image (a workload section after the programs).
pub const HEADER_LEN_V3: usize = 88;
/// Size of one chunk record in bytes.
pub const RECORD_LEN: usize = 40;
/// The header checksum is the last four bytes and covers every header byte before it.
const fn header_crc_offset(major: u16) -> usize {
    header_len(major) - 4
}

/// The header length of `major` (1, 2, or 3 and later).
pub const fn header_len(major: u16) -> usize {
    match major {
        1 => HEADER_LEN,
        2 => HEADER_LEN_V2,
        _ => HEADER_LEN_V3,
    }
}

/// A section: a byte range of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Section {
    /// Offset from the start of the image.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Section {
    /// The end offset, computed without overflow.
    pub fn end(self) -> u64 {
        u64::from(self.offset) + u64::from(self.len)
    }
}

/// The decoded fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Major version (1 or 2).
    pub major: u16,
    /// Minor version of the writer.
    pub minor: u16,
    /// Total image length in bytes.
    pub total_len: u64,
    /// Number of chunk records.
    pub chunk_count: u32,
    /// String table.
    pub strings: Section,
    /// Chunk records.
    pub records: Section,
    /// Encoded manifests.
    pub manifests: Section,
    /// Module bytes.
    pub modules: Section,
    /// Program arguments and files (version 2; empty in version 1).
    pub programs: Section,
    /// Assembly-engine settings and workload traces (version 3; empty before).
    pub workload: Section,
    /// CRC-32C over the string table, records, manifests, (version 2) programs and (version 3)
    /// workload sections, in that order.
    pub tables_crc: u32,
}

impl Header {
    /// Encodes the header, including its checksum.
    pub fn encode(&self) -> alloc::vec::Vec<u8> {
        let len = header_len(self.major);
        let mut out = alloc::vec![0u8; len];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.major.to_le_bytes());
        out[10..12].copy_from_slice(&self.minor.to_le_bytes());
        out[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.total_len.to_le_bytes());
        out[24..28].copy_from_slice(&self.chunk_count.to_le_bytes());
        // 28..32: flags, zero in version 1.
        let sections = [self.strings, self.records, self.manifests, self.modules];
        for (i, section) in sections.iter().enumerate() {
            let at = 32 + i * 8;
            out[at..at + 4].copy_from_slice(&section.offset.to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&section.len.to_le_bytes());
        }
        let mut at = 64;
        if self.major >= 2 {
            out[64..68].copy_from_slice(&self.programs.offset.to_le_bytes());
            out[68..72].copy_from_slice(&self.programs.len.to_le_bytes());
            at = 72;
        }
        if self.major >= 3 {
            out[72..76].copy_from_slice(&self.workload.offset.to_le_bytes());
            out[76..80].copy_from_slice(&self.workload.len.to_le_bytes());
            at = 80;
        }
        out[at..at + 4].copy_from_slice(&self.tables_crc.to_le_bytes());
        let crc_at = header_crc_offset(self.major);
        let crc = crc32c(&out[..crc_at]);
        out[crc_at..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks the header at the start of `image`.
    pub fn decode(image: &[u8]) -> Result<Self, FormatError> {
        let mut cur = Cursor::new(image, "header");
        let magic = cur.bytes(8)?;
        if magic != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let major = cur.u16()?;
        let minor = cur.u16()?;
        if major == 0 || major > VERSION_MAJOR {
            return Err(FormatError::UnsupportedVersion { major, minor });
        }
        let header_len = cur.u32()?;
        if header_len as usize != self::header_len(major) {
            return Err(FormatError::BadHeader("header length"));
        }
        let crc_at = header_crc_offset(major);
        let raw = cur.peek_from(0, header_len as usize)?;
        let stored_crc = u32::from_le_bytes([
            raw[crc_at],
            raw[crc_at + 1],
            raw[crc_at + 2],
            raw[crc_at + 3],
        ]);
        let computed = crc32c(&raw[..crc_at]);
        if stored_crc != computed {
            return Err(FormatError::HeaderChecksum {
                stored: stored_crc,
                computed,
            });
        }
        let total_len = cur.u64()?;
        let chunk_count = cur.u32()?;
        let flags = cur.u32()?;
        if flags != 0 {
            return Err(FormatError::BadHeader("unknown flags"));
        }
        let mut sections = [Section::default(); 4];
        for section in &mut sections {
            section.offset = cur.u32()?;
            section.len = cur.u32()?;
        }
        let mut programs = Section::default();
        if major >= 2 {
            programs.offset = cur.u32()?;
            programs.len = cur.u32()?;
        }
        let mut workload = Section::default();
        if major >= 3 {
            workload.offset = cur.u32()?;
            workload.len = cur.u32()?;
        }
        let tables_crc = cur.u32()?;
        let [strings, records, manifests, modules] = sections;
        Ok(Self {
            major,
            minor,
            programs,
            workload,
            total_len,
            chunk_count,
            strings,
            records,
            manifests,
            modules,
            tables_crc,
        })
    }
}
