//! `br_table` as a jump table made of instructions, so islands stay pure code.
//!
//! Islands are moved by decoding and re-encoding every instruction (`atoll-island`'s copier),
//! so a table of data words inside the code would be decoded as garbage, and the copier may
//! change branch sizes, so a table of `jmp rel` entries would lose its stride. The table is
//! therefore a run of fixed-size entries, each `lea rax, [rip + target]; jmp rax` padded to
//! [`ENTRY_BYTES`]: a `rip`-relative `lea` is always 7 bytes and iced's block encoder
//! re-targets it to the same instruction of the copy, `jmp rax` and the padding (`mov eax,
//! imm32; ud2`, never executed) never change size.
//! The dispatch is
//!
//! ```text
//!     cmp idx, n ; jae default          (before this module: the range check)
//!     mov idx32, idx32                  (zero-extends the index)
//!     lea rax, [rip + table]
//!     lea rax, [rax + idx*8]
//!     lea rax, [rax + idx*8]            (rax = table + 16 * idx)
//!     jmp rax
//! table:
//!     lea rax, [rip + target_0] ; jmp rax ; mov eax, imm32 ; ud2
//!     ...
//! ```
//!
//! Between a `lea rax, [rip + ..]` and its `jmp rax`, `rax` holds an address inside the
//! function: a thread stopped there cannot be relocated by rewriting its RIP alone, so the
//! island layout marks those instructions as *dispatch windows* and a relocation that finds a
//! thread in one retries (`atoll-island`, `IslandLayout::in_dispatch_window`).

use iced_x86::{Code, Instruction};

use super::Func;
use crate::CompileError;
use crate::emit::{CodeLabel, R32, R64, mem_scaled, reg};

/// Tables with at least this many entries become jump tables (smaller ones a compare tree or
/// chain: a few compares cost less than two indirect jumps).
pub(crate) const JUMP_TABLE_MIN: usize = 8;

/// Bytes of one entry: `lea rax, [rip + disp32]` (7), `jmp rax` (2), `mov eax, imm32` (5),
/// `ud2` (2); the last two are never executed.
pub(crate) const ENTRY_BYTES: u32 = 16;

// The entry's four instructions fill it exactly (the dispatch indexes entries by this stride).
const _: () = assert!(ENTRY_BYTES == 7 + 2 + 5 + 2);

/// The padding `mov`'s immediate (any value: the instruction never runs).
const PAD_IMM: u32 = 0xcccc_cccc;

impl Func<'_, '_> {
    /// Jumps to `pads[idx]` (`idx` in general register `r`, below `pads.len()`: checked by the
    /// caller). Clobbers `rax`.
    pub(super) fn jump_table(&mut self, r: u8, pads: &[CodeLabel]) -> Result<(), CompileError> {
        let e = &mut self.cx.e;
        let idx = r as usize;
        let rax = R64[reg::RAX as usize];
        let mut table = e.label();
        e.ins(Instruction::with2(Code::Mov_r32_rm32, R32[idx], R32[idx]))?;
        e.lea_label(reg::RAX, table)?;
        for _ in 0..2 {
            e.ins(Instruction::with2(
                Code::Lea_r64_m,
                rax,
                mem_scaled(reg::RAX, r, 8, 0),
            ))?;
        }
        e.ins(Instruction::with1(Code::Jmp_rm64, rax))?;
        e.bind(&mut table)?;
        for &pad in pads {
            e.lea_label(reg::RAX, pad)?;
            e.ins(Instruction::with1(Code::Jmp_rm64, rax))?;
            // 7 bytes never executed, in two instructions of fixed size (fewer to encode and
            // to copy than seven `int3`s): `mov eax, imm32` (B8 id) and `ud2`.
            e.ins(Instruction::with2(Code::Mov_r32_imm32, R32[0], PAD_IMM))?;
            e.op0(Code::Ud2)?;
        }
        Ok(())
    }
}
