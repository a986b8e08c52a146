//! A relocated copy of an island: decode its code at the old address, re-encode it at the new
//! one with iced-x86's `BlockEncoder`, and keep the instruction-boundary map between the two.
//!
//! Relative branches and calls whose target lies inside the island are re-targeted to the same
//! instruction of the copy; those that leave it (calls to other islands, jumps to the trap
//! stubs) keep their absolute target. The encoder may pick other branch sizes at the new place,
//! so offsets inside the copy can differ from the old ones: every reference into the island
//! (saved RIPs, return addresses, table entries) goes through the [`BoundaryMap`].

use alloc::vec::Vec;

use iced_x86::{BlockEncoder, BlockEncoderOptions, Decoder, DecoderOptions, InstructionBlock};

/// Why a copy could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyError {
    /// The bytes at this offset do not decode as an x86-64 instruction.
    Undecodable {
        /// Offset in the island.
        offset: u32,
    },
    /// The encoder rejected the block (e.g. a `rip`-relative operand out of reach).
    Encode,
    /// The encoder had to rewrite the instruction at this old offset into several (a branch
    /// out of `rel32` reach): the copy would hold a data word, which islands never do.
    Rewritten {
        /// Offset in the old island.
        offset: u32,
    },
    /// The island is larger than 4 GiB.
    TooLarge,
}

impl core::fmt::Display for CopyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Undecodable { offset } => write!(f, "undecodable instruction at +{offset:#x}"),
            Self::Encode => f.write_str("the encoder rejected the island"),
            Self::Rewritten { offset } => {
                write!(
                    f,
                    "branch at +{offset:#x} cannot reach its target from there"
                )
            }
            Self::TooLarge => f.write_str("island larger than 4 GiB"),
        }
    }
}

/// Old offset to new offset of every instruction start of an island, plus its end (so the
/// return offset after a final call maps too). Sorted by old offset; both columns increase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundaryMap {
    pairs: Vec<(u32, u32)>,
}

impl BoundaryMap {
    /// The identity map over the given instruction starts (sorted) and `len`.
    pub fn identity(starts: &[u32], len: u32) -> Self {
        let mut pairs: Vec<(u32, u32)> = starts.iter().map(|&s| (s, s)).collect();
        pairs.push((len, len));
        Self { pairs }
    }

    /// A map from `(old, new)` pairs sorted by both columns, the end last.
    pub(crate) fn from_pairs(pairs: Vec<(u32, u32)>) -> Self {
        Self { pairs }
    }

    /// New offset of the instruction that started at `old` (or of the end), `None` if `old`
    /// was not an instruction boundary. Binary search; never allocates.
    pub fn new_offset(&self, old: u32) -> Option<u32> {
        self.pairs
            .binary_search_by_key(&old, |p| p.0)
            .ok()
            .map(|i| self.pairs[i].1)
    }

    /// Old offset of the instruction that starts at `new` in the copy.
    pub fn old_offset(&self, new: u32) -> Option<u32> {
        self.pairs
            .binary_search_by_key(&new, |p| p.1)
            .ok()
            .map(|i| self.pairs[i].0)
    }

    /// `(old, new)` pairs, the end last.
    pub fn pairs(&self) -> &[(u32, u32)] {
        &self.pairs
    }

    /// Old instruction starts (without the end).
    pub fn old_starts(&self) -> impl Iterator<Item = u32> + '_ {
        self.pairs[..self.pairs.len() - 1].iter().map(|p| p.0)
    }

    /// Old length of the island.
    pub fn old_len(&self) -> u32 {
        self.pairs.last().map_or(0, |p| p.0)
    }

    /// New length of the island.
    pub fn new_len(&self) -> u32 {
        self.pairs.last().map_or(0, |p| p.1)
    }
}

/// An island re-encoded for a new address.
#[derive(Debug, Clone)]
pub struct RelocatedCode {
    /// Address the copy was encoded for.
    pub new_base: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Instruction boundaries, old offset to new offset.
    pub map: BoundaryMap,
}

/// Decodes `code` (an island as it is at `old_base`) and re-encodes it for `new_base`.
/// Allocates; call it before the pause.
pub fn relocate(code: &[u8], old_base: u64, new_base: u64) -> Result<RelocatedCode, CopyError> {
    let len = u32::try_from(code.len()).map_err(|_| CopyError::TooLarge)?;
    let mut decoder = Decoder::with_ip(64, code, old_base, DecoderOptions::NONE);
    let mut instructions = Vec::new();
    let mut old_starts = Vec::new();
    while decoder.can_decode() {
        let offset = decoder.position() as u32;
        let ins = decoder.decode();
        if ins.is_invalid() {
            return Err(CopyError::Undecodable { offset });
        }
        old_starts.push(offset);
        instructions.push(ins);
    }
    let block = InstructionBlock::new(&instructions, new_base);
    let result = BlockEncoder::encode(
        64,
        block,
        BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
    )
    .map_err(|_| CopyError::Encode)?;
    let mut pairs = Vec::with_capacity(old_starts.len() + 1);
    for (&old, &new) in old_starts.iter().zip(&result.new_instruction_offsets) {
        if new == u32::MAX {
            return Err(CopyError::Rewritten { offset: old });
        }
        pairs.push((old, new));
    }
    let new_len = u32::try_from(result.code_buffer.len()).map_err(|_| CopyError::TooLarge)?;
    pairs.push((len, new_len));
    Ok(RelocatedCode {
        new_base,
        bytes: result.code_buffer,
        map: BoundaryMap { pairs },
    })
}

/// Instruction starts of `code` decoded at `base` (island-relative offsets).
pub fn instruction_starts(code: &[u8], base: u64) -> Result<Vec<u32>, CopyError> {
    let mut decoder = Decoder::with_ip(64, code, base, DecoderOptions::NONE);
    let mut starts = Vec::new();
    while decoder.can_decode() {
        let offset = decoder.position() as u32;
        if decoder.decode().is_invalid() {
            return Err(CopyError::Undecodable { offset });
        }
        starts.push(offset);
    }
    Ok(starts)
}

#[cfg(test)]
mod tests;
