//! simd128: v128 values live in XMM registers on the value stack and take 16 bytes in memory
//! (two 8-byte slots in argument areas and locals, 16-byte home slots in a function that may
//! hold one). Every access is unaligned (`movdqu`), so no 16-byte alignment is needed.
//!
//! Operators lower to SSE2; where SSSE3/SSE4.1/SSE4.2 has a shorter form and
//! [`Options::cpu`](crate::Options) says the CPU has it, that form is used. Operators without a
//! short SSE2 form go to one lane-wise runtime helper ([`Libcall::Simd`],
//! `runtime/lanes.rs`). Scratch registers: `xmm0`, `xmm1`, `xmm15`, `rax`.

mod arith;
mod lane;
mod mem;

use alloc::vec::Vec;

use iced_x86::{Code, Instruction, MemoryOperand};
use wasmparser::Operator;

use super::{Func, Loc, Val};
use crate::emit::{XMM, mem, reg};
use crate::meta::CallTarget;
use crate::module::Ty;
use crate::runtime::lanes::LaneOp;
use crate::vmctx::off;
use crate::{CompileError, Libcall};

/// The first byte of every SIMD operator's encoding.
pub(super) const PREFIX: u8 = 0xFD;

/// `rbp`-relative displacement of each local and the 8-byte slots of the non-parameter ones.
/// Parameters sit at `[rbp + 16 + 8*slot]` in the caller's outgoing area, the other locals
/// below the saved vmctx; a v128 takes two slots (its low address holds the low half).
pub(super) fn local_layout(locals: &[Ty], nparams: usize) -> (Vec<i32>, usize) {
    let mut disp = Vec::with_capacity(locals.len());
    let mut at = 0usize;
    for t in &locals[..nparams] {
        disp.push(16 + 8 * at as i32);
        at += t.slots();
    }
    let mut k = 0usize;
    for t in &locals[nparams..] {
        disp.push(-16 - 8 * (k + t.slots() - 1) as i32);
        k += t.slots();
    }
    (disp, k)
}

/// Scratch XMM registers.
const X0: u8 = 0;
const X1: u8 = 1;
const X15: u8 = 15;

/// `m` moved up by `bytes`.
fn at(m: MemoryOperand, bytes: u32) -> MemoryOperand {
    MemoryOperand {
        displacement: m.displacement + i64::from(bytes),
        ..m
    }
}

fn x(r: u8) -> iced_x86::Register {
    XMM[r as usize]
}

impl Func<'_, '_> {
    /// Loads a value of type `ty` (f32, f64 or v128) from `m` into XMM `x`.
    pub fn xmm_load_ty(&mut self, xr: u8, m: MemoryOperand, ty: Ty) -> Result<(), CompileError> {
        if ty.is_v128() {
            self.cx
                .e
                .ins(Instruction::with2(Code::Movdqu_xmm_xmmm128, x(xr), m))
        } else {
            self.xmm_load(xr, m, ty.is_wide())
        }
    }

    /// Stores XMM `x` holding a value of type `ty` to `m`.
    pub fn xmm_store_ty(&mut self, m: MemoryOperand, xr: u8, ty: Ty) -> Result<(), CompileError> {
        if ty.is_v128() {
            self.cx
                .e
                .ins(Instruction::with2(Code::Movdqu_xmmm128_xmm, m, x(xr)))
        } else {
            self.xmm_store(m, xr, ty.is_wide())
        }
    }

    /// Copies one home slot to another (16 bytes when the function has 16-byte slots).
    pub fn copy_slot(
        &mut self,
        from: MemoryOperand,
        to: MemoryOperand,
    ) -> Result<(), CompileError> {
        let ty = if self.wide_slots { Ty::V128 } else { Ty::I64 };
        self.copy_value(from, to, ty)
    }

    /// Copies a value of type `ty` from `from` to `to` (only `mov`s; flags survive).
    pub fn copy_value(
        &mut self,
        from: MemoryOperand,
        to: MemoryOperand,
        ty: Ty,
    ) -> Result<(), CompileError> {
        if ty.is_v128() {
            self.xmm_load_ty(X0, from, ty)?;
            self.xmm_store_ty(to, X0, ty)
        } else {
            self.cx.e.load(reg::RAX, true, from)?;
            self.cx.e.store(to, reg::RAX, true)
        }
    }

    /// Lowers a SIMD operator; false when `op` is not one.
    pub(super) fn simd(&mut self, op: &Operator<'_>) -> Result<bool, CompileError> {
        Ok(self.simd_mem(op)? || self.simd_lane(op)? || self.simd_arith(op)?)
    }

    fn ins2(
        &mut self,
        code: Code,
        a: impl Into<Op2>,
        b: impl Into<Op2>,
    ) -> Result<(), CompileError> {
        let ins = match (a.into(), b.into()) {
            (Op2::R(a), Op2::R(b)) => Instruction::with2(code, a, b),
            (Op2::R(a), Op2::M(b)) => Instruction::with2(code, a, b),
            (Op2::M(a), Op2::R(b)) => Instruction::with2(code, a, b),
            (Op2::M(_), Op2::M(_)) => unreachable!("memory to memory"),
        };
        self.cx.e.ins(ins)
    }

    /// `code xd, xs`.
    fn xx(&mut self, code: Code, d: u8, s: u8) -> Result<(), CompileError> {
        self.cx.e.xx(code, d, s)
    }

    /// `code xd, imm8` (shifts by an immediate).
    fn xi(&mut self, code: Code, d: u8, imm: u32) -> Result<(), CompileError> {
        self.cx.e.ins(Instruction::with2(code, x(d), imm))
    }

    /// `code xd, xs, imm8` (shuffles, compares, rounding).
    fn xxi(&mut self, code: Code, d: u8, s: u8, imm: u32) -> Result<(), CompileError> {
        self.cx.e.ins(Instruction::with3(code, x(d), x(s), imm))
    }

    /// `movdqa d, s` unless they are the same register.
    fn mov_x(&mut self, d: u8, s: u8) -> Result<(), CompileError> {
        if d == s {
            return Ok(());
        }
        self.xx(Code::Movdqa_xmm_xmmm128, d, s)
    }

    /// Loads the 128-bit constant `bits` into XMM `d` (uses `rax`; `tmp` when the halves
    /// differ).
    fn const_into(&mut self, d: u8, bits: u128, tmp: u8) -> Result<(), CompileError> {
        let (lo, hi) = (bits as u64, (bits >> 64) as u64);
        if bits == 0 {
            return self.xx(Code::Pxor_xmm_xmmm128, d, d);
        }
        if bits == u128::MAX {
            return self.xx(Code::Pcmpeqd_xmm_xmmm128, d, d);
        }
        self.cx.e.mov_imm(reg::RAX, true, lo)?;
        self.gpr_to_xmm(d, reg::RAX, true)?;
        if hi == lo {
            return self.xx(Code::Punpcklqdq_xmm_xmmm128, d, d);
        }
        self.cx.e.mov_imm(reg::RAX, true, hi)?;
        self.gpr_to_xmm(tmp, reg::RAX, true)?;
        self.xx(Code::Punpcklqdq_xmm_xmmm128, d, tmp)
    }

    /// `x = !x` (uses `xmm1`).
    fn not(&mut self, d: u8) -> Result<(), CompileError> {
        self.xx(Code::Pcmpeqd_xmm_xmmm128, X1, X1)?;
        self.xx(Code::Pxor_xmm_xmmm128, d, X1)
    }

    /// Pops a v128 into a register this code owns.
    fn pop_v(&mut self) -> Result<u8, CompileError> {
        let v = self.pop();
        self.xmm_of(v)
    }

    fn push_v(&mut self, d: u8) {
        self.push(Ty::V128, Loc::Xmm(d));
    }

    /// `a = a op b` on the top two values.
    fn binop(&mut self, code: Code) -> Result<(), CompileError> {
        let b = self.pop_v()?;
        let a = self.pop_v()?;
        self.xx(code, a, b)?;
        self.free_xmm(b);
        self.push_v(a);
        Ok(())
    }

    /// `b = b op a` on the top two values (`andnot`, `pmin`, swapped compares).
    fn binop_rev(&mut self, code: Code) -> Result<(), CompileError> {
        let b = self.pop_v()?;
        let a = self.pop_v()?;
        self.xx(code, b, a)?;
        self.free_xmm(a);
        self.push_v(b);
        Ok(())
    }

    /// Applies `f` to the top value in place.
    fn unop(
        &mut self,
        f: impl FnOnce(&mut Self, u8) -> Result<(), CompileError>,
    ) -> Result<(), CompileError> {
        let a = self.pop_v()?;
        f(self, a)?;
        self.push_v(a);
        Ok(())
    }

    /// Computes `op` in the lane helper on the top `n` values (v128s, or a scalar count as the
    /// second), with `c` as a constant third operand when given; pushes the v128 result.
    fn lanes(&mut self, op: LaneOp, n: usize, c: Option<u128>) -> Result<(), CompileError> {
        let base = self.height() - n;
        for i in 0..n {
            let (ty, loc) = self.peek(n - 1 - i);
            let v = Val {
                ty,
                loc,
                depth: base + i,
            };
            self.write_val(mem(reg::RSP, 16 * i as i32), v)?;
        }
        self.truncate(base);
        self.spill_all()?;
        if let Some(c) = c {
            for (k, half) in [c as u64, (c >> 64) as u64].into_iter().enumerate() {
                self.cx.e.mov_imm(reg::RAX, true, half)?;
                self.cx
                    .e
                    .store(mem(reg::RSP, 32 + 8 * k as i32), reg::RAX, true)?;
            }
        }
        self.max_out = self.max_out.max(6);
        self.store_pinned()?;
        let e = &mut self.cx.e;
        e.mov_rr(reg::RDI, reg::VMCTX, true)?;
        e.mov_imm(reg::RSI, false, op as u64)?;
        e.mov_rr(reg::RDX, reg::RSP, true)?;
        e.load(reg::RAX, true, mem(reg::VMCTX, off::LIBCALLS))?;
        self.note_call(CallTarget::Libcall(Libcall::Simd));
        self.cx.e.ins(Instruction::with1(
            Code::Call_rm64,
            mem(reg::RAX, 8 * Libcall::Simd as i32),
        ))?;
        self.reload_membase()?;
        self.load_pinned()?;
        let d = self.alloc_xmm()?;
        self.xmm_load_ty(d, mem(reg::RSP, 0), Ty::V128)?;
        self.push_v(d);
        Ok(())
    }

    /// Puts a popped vector in its home slot (free now that it is popped) and returns the slot.
    fn vector_in_slot(&mut self, v: Val) -> Result<MemoryOperand, CompileError> {
        let slot = self.slot(v.depth);
        if let Loc::Xmm(s) = v.loc {
            self.xmm_store_ty(slot, s, Ty::V128)?;
            self.free_xmm(s);
        }
        Ok(slot)
    }

    /// Pops a scalar into a general register this code owns.
    fn pop_gpr(&mut self) -> Result<u8, CompileError> {
        let v = self.pop();
        self.gpr_of(v)
    }

    /// `setcc` into a fresh general register and push it as an i32.
    fn push_flag(&mut self, cond: crate::emit::Cond) -> Result<(), CompileError> {
        let r = self.alloc_gpr()?;
        self.cx.e.setcc(cond, r)?;
        self.push(Ty::I32, Loc::Gpr(r));
        Ok(())
    }
}

/// An operand of a two-operand instruction.
enum Op2 {
    R(iced_x86::Register),
    M(MemoryOperand),
}

impl From<iced_x86::Register> for Op2 {
    fn from(r: iced_x86::Register) -> Self {
        Op2::R(r)
    }
}

impl From<MemoryOperand> for Op2 {
    fn from(m: MemoryOperand) -> Self {
        Op2::M(m)
    }
}
