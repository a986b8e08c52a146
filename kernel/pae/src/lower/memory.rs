//! Linear-memory access with explicit bounds checks, `memory.size`/`memory.grow` and the bulk
//! memory and table operators (runtime helpers).
//!
//! Sandbox: the effective address is `zext(addr) + offset` (at most 2^33), checked against
//! `VmContext::memory_size_bytes` before every access:
//! `lea rax, [addr + offset + size]; cmp rax, [r14 + size]; ja trap`. The access itself is
//! `[r15 + addr + offset]`, so generated code can reach nothing outside its own memory.
//!
//! With `Options::guard_pages` the check is not emitted: `addr + offset + size` is below
//! 2^33 + 16, inside the memory's `runtime::GUARD_RESERVE_BYTES` reservation, whose pages past
//! the memory's size are not mapped, so an out-of-bounds access faults and the embedder's fault
//! handler turns it into the trap (`docs/guard-pages.md`).

use iced_x86::{Code, Instruction, MemoryOperand};
use wasmparser::{MemArg, Operator};

use super::{Func, Loc};
use crate::emit::{Cond, R8, R16, R32, R64, XMM, mem, mem_idx, reg};
use crate::module::Ty;
use crate::vmctx::{TrapCode, off};
use crate::{CompileError, Libcall};

/// `(result type, bytes, load code, register width is 64)`.
fn load_kind(op: &Operator<'_>) -> Option<(Ty, u32, Code, bool, MemArg)> {
    Some(match *op {
        Operator::I32Load { memarg } => (Ty::I32, 4, Code::Mov_r32_rm32, false, memarg),
        Operator::I64Load { memarg } => (Ty::I64, 8, Code::Mov_r64_rm64, true, memarg),
        Operator::F32Load { memarg } => (Ty::F32, 4, Code::Movss_xmm_xmmm32, false, memarg),
        Operator::F64Load { memarg } => (Ty::F64, 8, Code::Movsd_xmm_xmmm64, true, memarg),
        Operator::I32Load8S { memarg } => (Ty::I32, 1, Code::Movsx_r32_rm8, false, memarg),
        Operator::I32Load8U { memarg } => (Ty::I32, 1, Code::Movzx_r32_rm8, false, memarg),
        Operator::I32Load16S { memarg } => (Ty::I32, 2, Code::Movsx_r32_rm16, false, memarg),
        Operator::I32Load16U { memarg } => (Ty::I32, 2, Code::Movzx_r32_rm16, false, memarg),
        Operator::I64Load8S { memarg } => (Ty::I64, 1, Code::Movsx_r64_rm8, true, memarg),
        Operator::I64Load8U { memarg } => (Ty::I64, 1, Code::Movzx_r32_rm8, false, memarg),
        Operator::I64Load16S { memarg } => (Ty::I64, 2, Code::Movsx_r64_rm16, true, memarg),
        Operator::I64Load16U { memarg } => (Ty::I64, 2, Code::Movzx_r32_rm16, false, memarg),
        Operator::I64Load32S { memarg } => (Ty::I64, 4, Code::Movsxd_r64_rm32, true, memarg),
        Operator::I64Load32U { memarg } => (Ty::I64, 4, Code::Mov_r32_rm32, false, memarg),
        _ => return None,
    })
}

fn store_kind(op: &Operator<'_>) -> Option<(u32, MemArg)> {
    Some(match *op {
        Operator::I32Store { memarg } | Operator::F32Store { memarg } => (4, memarg),
        Operator::I64Store { memarg } | Operator::F64Store { memarg } => (8, memarg),
        Operator::I32Store8 { memarg } | Operator::I64Store8 { memarg } => (1, memarg),
        Operator::I32Store16 { memarg } | Operator::I64Store16 { memarg } => (2, memarg),
        Operator::I64Store32 { memarg } => (4, memarg),
        _ => return None,
    })
}

impl Func<'_, '_> {
    /// Bounds-checks `size` bytes at `r + offset` (r holds a zero-extended i32) and returns the
    /// memory operand. May add to `r`.
    pub(super) fn checked_address(
        &mut self,
        r: u8,
        offset: u64,
        size: u32,
    ) -> Result<MemoryOperand, CompileError> {
        if self.cx.opts.guard_pages {
            return self.guarded_address(r, offset);
        }
        let end = offset + u64::from(size);
        let e = &mut self.cx.e;
        if end <= i32::MAX as u64 {
            e.ins(Instruction::with2(
                Code::Lea_r64_m,
                R64[0],
                mem(r, end as i32),
            ))?;
        } else {
            e.mov_imm(reg::RAX, true, end)?;
            e.rr((Code::Add_r32_rm32, Code::Add_r64_rm64), true, reg::RAX, r)?;
        }
        e.ins(Instruction::with2(
            Code::Cmp_r64_rm64,
            R64[0],
            mem(reg::VMCTX, off::MEMORY_SIZE),
        ))?;
        self.trap_if(Cond::A, TrapCode::MemoryOutOfBounds)?;
        if offset <= i32::MAX as u64 {
            Ok(mem_idx(reg::MEMBASE, r, offset as i32))
        } else {
            self.cx.e.mov_imm(reg::RAX, true, offset)?;
            self.cx
                .e
                .rr((Code::Add_r32_rm32, Code::Add_r64_rm64), true, r, reg::RAX)?;
            Ok(mem_idx(reg::MEMBASE, r, 0))
        }
    }

    /// The memory operand of `r + offset` with no check (guard-page mode): `r` holds a
    /// zero-extended i32 and `offset` is below 2^32, so the access lies inside the reservation.
    fn guarded_address(&mut self, r: u8, offset: u64) -> Result<MemoryOperand, CompileError> {
        if offset <= i32::MAX as u64 {
            return Ok(mem_idx(reg::MEMBASE, r, offset as i32));
        }
        self.cx.e.mov_imm(reg::RAX, true, offset)?;
        self.cx
            .e
            .rr((Code::Add_r32_rm32, Code::Add_r64_rm64), true, r, reg::RAX)?;
        Ok(mem_idx(reg::MEMBASE, r, 0))
    }

    /// The register of an address: an alias of a pinned local in place (`lower::fuse`) when
    /// `checked_address` only reads it (offsets up to `i32::MAX`), else one this code owns.
    fn address_reg(&mut self, addr: super::Val, offset: u64) -> Result<u8, CompileError> {
        if offset <= i32::MAX as u64 {
            self.gpr_ro(addr)
        } else {
            self.gpr_of(addr)
        }
    }

    pub(super) fn memory(
        &mut self,
        op: &Operator<'_>,
        next: Option<&Operator<'_>>,
    ) -> Result<bool, CompileError> {
        if let Some((ty, size, code, wide, memarg)) = load_kind(op) {
            let addr = self.pop();
            let r = self.address_reg(addr, memarg.offset)?;
            let m = self.checked_address(r, memarg.offset, size)?;
            // Straight into the register of a pinned local set next (`lower::fuse`).
            let target = self.set_target(next, ty);
            if let Some(t) = target {
                self.materialize_aliases(t, ty.is_float())?;
            }
            if ty.is_float() {
                let x = match target {
                    Some(t) => t,
                    None => self.alloc_xmm()?,
                };
                self.cx
                    .e
                    .ins(Instruction::with2(code, XMM[x as usize], m))?;
                self.free_gpr(r);
                self.push(ty, Loc::Xmm(x));
            } else {
                // An alias of a pinned local is only read.
                let d = match target {
                    Some(t) => t,
                    None if self.is_pinned_gpr(r) => self.alloc_gpr()?,
                    None => r,
                };
                if d != r {
                    self.free_gpr(r);
                }
                let r = d;
                let dst = if wide {
                    R64[r as usize]
                } else {
                    R32[r as usize]
                };
                self.cx.e.ins(Instruction::with2(code, dst, m))?;
                self.push(ty, Loc::Gpr(r));
            }
            return Ok(true);
        }
        if let Some((size, memarg)) = store_kind(op) {
            let value = self.pop();
            let addr = self.pop();
            let loc = match value.loc {
                Loc::Gpr(_) | Loc::Xmm(_) => value.loc,
                _ => self.val_to_reg(value)?,
            };
            let r = self.address_reg(addr, memarg.offset)?;
            let m = self.checked_address(r, memarg.offset, size)?;
            let ins = match loc {
                Loc::Xmm(x) => {
                    let code = if size == 8 {
                        Code::Movsd_xmmm64_xmm
                    } else {
                        Code::Movss_xmmm32_xmm
                    };
                    Instruction::with2(code, m, XMM[x as usize])
                }
                Loc::Gpr(v) => match size {
                    1 => Instruction::with2(Code::Mov_rm8_r8, m, R8[v as usize]),
                    2 => Instruction::with2(Code::Mov_rm16_r16, m, R16[v as usize]),
                    4 => Instruction::with2(Code::Mov_rm32_r32, m, R32[v as usize]),
                    _ => Instruction::with2(Code::Mov_rm64_r64, m, R64[v as usize]),
                },
                _ => unreachable!("stored value is in a register"),
            };
            self.cx.e.ins(ins)?;
            self.free_gpr(r);
            self.release(super::Val {
                ty: value.ty,
                loc,
                depth: 0,
            });
            return Ok(true);
        }
        match *op {
            Operator::MemorySize { .. } => {
                let r = self.alloc_gpr()?;
                self.cx.e.load(r, true, mem(reg::VMCTX, off::MEMORY_SIZE))?;
                self.cx.e.ins(Instruction::with2(
                    Code::Shr_rm64_imm8,
                    R64[r as usize],
                    16u32,
                ))?;
                self.push(Ty::I32, Loc::Gpr(r));
            }
            Operator::MemoryGrow { .. } => {
                self.libcall(Libcall::MemoryGrow, 1, Some(Ty::I32), false)?
            }
            Operator::MemoryFill { .. } => self.libcall(Libcall::MemoryFill, 3, None, true)?,
            Operator::MemoryCopy { .. } => self.libcall(Libcall::MemoryCopy, 3, None, true)?,
            Operator::MemoryInit { data_index, .. } => {
                self.push_const(Ty::I32, u64::from(data_index))?;
                self.libcall(Libcall::MemoryInit, 4, None, true)?;
            }
            Operator::DataDrop { data_index } => {
                self.push_const(Ty::I32, u64::from(data_index))?;
                self.libcall(Libcall::DataDrop, 1, None, false)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
