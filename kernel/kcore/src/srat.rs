//! The ACPI System Resource Affinity Table (SRAT) and System Locality Information Table (SLIT),
//! decoded from their raw bytes.
//!
//! SRAT (ACPI 6.5, 5.2.16): the 36-byte table header, 12 reserved bytes, then variable-length
//! entries `[type, length, ...]`. Three entry types matter on x86:
//! - type 0, processor local APIC affinity (16 bytes): proximity domain bits 7:0 at 2, APIC id
//!   at 3, flags at 4 (bit 0 enabled), proximity domain bits 31:8 at 9..12;
//! - type 1, memory affinity (40 bytes): proximity domain at 2, base at 8, length at 16, flags
//!   at 28 (bit 0 enabled, bit 1 hot-pluggable, bit 2 non-volatile);
//! - type 2, processor local x2APIC affinity (24 bytes): proximity domain at 4, x2APIC id at 8,
//!   flags at 12.
//!
//! Other entry types (GICC, generic initiators...) are stepped over by their length.
//!
//! SLIT (5.2.17): the header, the number of localities N (u64) at 36, then an N x N byte matrix
//! of relative distances (10 = local).
//!
//! Every read is bounds-checked: a short, truncated or inconsistent table is a [`SratError`],
//! never a panic.

use alloc::vec::Vec;
use core::fmt;

/// Bytes of the standard ACPI table header.
const HEADER_BYTES: usize = 36;
/// SRAT: header plus 4 + 8 reserved bytes before the first entry.
const SRAT_ENTRIES_AT: usize = HEADER_BYTES + 12;
/// SLIT: header plus the 8-byte locality count before the matrix.
const SLIT_MATRIX_AT: usize = HEADER_BYTES + 8;
/// Header offset of the table's total length (u32).
const LENGTH_AT: usize = 4;

const TYPE_LOCAL_APIC: u8 = 0;
const TYPE_MEMORY: u8 = 1;
const TYPE_X2APIC: u8 = 2;
const LOCAL_APIC_BYTES: usize = 16;
const MEMORY_BYTES: usize = 40;
const X2APIC_BYTES: usize = 24;

const FLAG_ENABLED: u32 = 1 << 0;
const FLAG_HOT_PLUGGABLE: u32 = 1 << 1;
const FLAG_NON_VOLATILE: u32 = 1 << 2;

/// Why a SRAT or SLIT could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SratError {
    /// Fewer bytes than the fixed part of the table.
    TooShort {
        /// Bytes available.
        bytes: usize,
    },
    /// The signature is not the expected one.
    Signature([u8; 4]),
    /// The header's length is below the fixed part or beyond the bytes available.
    Length {
        /// The header's length field.
        header: u32,
        /// Bytes available.
        bytes: usize,
    },
    /// The table's bytes do not sum to zero.
    Checksum,
    /// An entry runs past the end of the table.
    Truncated {
        /// Offset of the entry in the table.
        offset: usize,
    },
    /// An entry's length is zero or too small for its type.
    EntryLength {
        /// Offset of the entry in the table.
        offset: usize,
        /// Its type byte.
        kind: u8,
        /// Its length byte.
        length: u8,
    },
    /// The SLIT's matrix does not fit the table.
    Matrix {
        /// The locality count it declares.
        localities: u64,
    },
}

impl fmt::Display for SratError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SratError::TooShort { bytes } => write!(f, "table too short ({bytes} bytes)"),
            SratError::Signature(s) => write!(f, "unexpected signature {:?}", s.escape_ascii()),
            SratError::Length { header, bytes } => {
                write!(f, "header length {header} does not fit {bytes} bytes")
            }
            SratError::Checksum => write!(f, "bad checksum"),
            SratError::Truncated { offset } => write!(f, "entry at offset {offset} is truncated"),
            SratError::EntryLength {
                offset,
                kind,
                length,
            } => write!(
                f,
                "entry of type {kind} at offset {offset} has bad length {length}"
            ),
            SratError::Matrix { localities } => {
                write!(f, "{localities} localities do not fit the table")
            }
        }
    }
}

/// A processor's proximity domain (from a local APIC or x2APIC affinity entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuAffinity {
    /// The local APIC id (x2APIC id for type 2 entries).
    pub apic_id: u32,
    /// Its proximity domain.
    pub domain: u32,
    /// The entry is in use (disabled entries must be ignored).
    pub enabled: bool,
    /// It came from an x2APIC entry.
    pub x2apic: bool,
}

/// A physical memory range's proximity domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryAffinity {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub length_bytes: u64,
    /// Its proximity domain.
    pub domain: u32,
    /// The entry is in use (disabled entries must be ignored).
    pub enabled: bool,
    /// The range may be hot-plugged (it may hold no memory now).
    pub hot_pluggable: bool,
    /// Non-volatile memory.
    pub non_volatile: bool,
}

impl MemoryAffinity {
    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.length_bytes)
    }
}

/// A decoded SRAT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Srat {
    /// Processor entries, in table order.
    pub cpus: Vec<CpuAffinity>,
    /// Memory entries, in table order.
    pub memory: Vec<MemoryAffinity>,
    /// Entries of other types, stepped over.
    pub other_entries: usize,
}

/// A decoded SLIT: relative distances between proximity domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slit {
    localities: usize,
    distances: Vec<u8>,
}

impl Slit {
    /// Number of localities (proximity domains) the matrix covers.
    pub fn localities(&self) -> usize {
        self.localities
    }

    /// The distance from domain `from` to domain `to` (10 = local), if both are covered.
    pub fn distance(&self, from: u32, to: u32) -> Option<u8> {
        let (from, to) = (from as usize, to as usize);
        if from >= self.localities || to >= self.localities {
            return None;
        }
        self.distances.get(from * self.localities + to).copied()
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let bytes = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Checks the header (signature, length, checksum) and returns the table's bytes, cut to the
/// header's length.
fn table<'a>(bytes: &'a [u8], signature: &[u8; 4], fixed: usize) -> Result<&'a [u8], SratError> {
    if bytes.len() < fixed {
        return Err(SratError::TooShort { bytes: bytes.len() });
    }
    let sig: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if &sig != signature {
        return Err(SratError::Signature(sig));
    }
    let header = u32_at(bytes, LENGTH_AT).ok_or(SratError::TooShort { bytes: bytes.len() })?;
    let length = header as usize;
    if length < fixed || length > bytes.len() {
        return Err(SratError::Length {
            header,
            bytes: bytes.len(),
        });
    }
    let table = &bytes[..length];
    if table.iter().fold(0u8, |s, b| s.wrapping_add(*b)) != 0 {
        return Err(SratError::Checksum);
    }
    Ok(table)
}

/// Decodes a SRAT from its bytes (header included).
pub fn parse_srat(bytes: &[u8]) -> Result<Srat, SratError> {
    let t = table(bytes, b"SRAT", SRAT_ENTRIES_AT)?;
    let mut srat = Srat::default();
    let mut offset = SRAT_ENTRIES_AT;
    while offset < t.len() {
        let (kind, length) = match t.get(offset..offset + 2) {
            Some(&[k, l]) => (k, l),
            _ => return Err(SratError::Truncated { offset }),
        };
        let minimum = match kind {
            TYPE_LOCAL_APIC => LOCAL_APIC_BYTES,
            TYPE_MEMORY => MEMORY_BYTES,
            TYPE_X2APIC => X2APIC_BYTES,
            _ => 2,
        };
        if usize::from(length) < minimum {
            return Err(SratError::EntryLength {
                offset,
                kind,
                length,
            });
        }
        let entry = t
            .get(offset..offset + usize::from(length))
            .ok_or(SratError::Truncated { offset })?;
        decode_entry(kind, entry, &mut srat);
        offset += usize::from(length);
    }
    Ok(srat)
}

/// Decodes one entry whose length was checked against its type's minimum.
fn decode_entry(kind: u8, e: &[u8], srat: &mut Srat) {
    let field = |at| u32_at(e, at).unwrap_or(0);
    match kind {
        TYPE_LOCAL_APIC => {
            let high = u32::from_le_bytes([e[9], e[10], e[11], 0]);
            srat.cpus.push(CpuAffinity {
                apic_id: u32::from(e[3]),
                domain: u32::from(e[2]) | (high << 8),
                enabled: field(4) & FLAG_ENABLED != 0,
                x2apic: false,
            });
        }
        TYPE_MEMORY => {
            let flags = field(28);
            srat.memory.push(MemoryAffinity {
                base: u64_at(e, 8).unwrap_or(0),
                length_bytes: u64_at(e, 16).unwrap_or(0),
                domain: field(2),
                enabled: flags & FLAG_ENABLED != 0,
                hot_pluggable: flags & FLAG_HOT_PLUGGABLE != 0,
                non_volatile: flags & FLAG_NON_VOLATILE != 0,
            });
        }
        TYPE_X2APIC => srat.cpus.push(CpuAffinity {
            apic_id: field(8),
            domain: field(4),
            enabled: field(12) & FLAG_ENABLED != 0,
            x2apic: true,
        }),
        _ => srat.other_entries += 1,
    }
}

/// Decodes a SLIT from its bytes (header included).
pub fn parse_slit(bytes: &[u8]) -> Result<Slit, SratError> {
    let t = table(bytes, b"SLIT", SLIT_MATRIX_AT)?;
    let declared = u64_at(t, HEADER_BYTES).unwrap_or(0);
    let matrix = t.len() - SLIT_MATRIX_AT;
    let localities = usize::try_from(declared)
        .ok()
        .filter(|n| n.checked_mul(*n).is_some_and(|cells| cells <= matrix))
        .ok_or(SratError::Matrix {
            localities: declared,
        })?;
    Ok(Slit {
        localities,
        distances: t[SLIT_MATRIX_AT..SLIT_MATRIX_AT + localities * localities].to_vec(),
    })
}

#[cfg(test)]
#[path = "srat_tests.rs"]
mod tests;
