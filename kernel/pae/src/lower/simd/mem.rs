//! v128 loads and stores: whole vectors, extending loads, splat and zero loads, and the lane
//! loads and stores. Every access is bounds-checked like the scalar ones.

use iced_x86::{Code, Instruction, MemoryOperand};
use wasmparser::{MemArg, Operator};

use super::{Func, X0, x};
use crate::CompileError;
use crate::emit::{R8, R16, R32, R64};
use crate::module::Ty;

/// How the low lanes of a vector widen (`extend_low` and the extending loads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Widen {
    /// i8 to i16.
    B,
    /// i16 to i32.
    W,
    /// i32 to i64.
    D,
}

impl Func<'_, '_> {
    /// Pops the address and returns `(address register, checked operand)` for `size` bytes.
    fn simd_addr(
        &mut self,
        memarg: MemArg,
        size: u32,
    ) -> Result<(u8, MemoryOperand), CompileError> {
        let addr = self.pop();
        let r = self.gpr_of(addr)?;
        let m = self.checked_address(r, memarg.offset, size)?;
        Ok((r, m))
    }

    /// Widens the low 64 bits of `d` in place (`signed`: sign extension).
    pub(super) fn widen_low(&mut self, d: u8, w: Widen, signed: bool) -> Result<(), CompileError> {
        if self.cx.opts.cpu.sse41 {
            let code = match (w, signed) {
                (Widen::B, true) => Code::Pmovsxbw_xmm_xmmm64,
                (Widen::B, false) => Code::Pmovzxbw_xmm_xmmm64,
                (Widen::W, true) => Code::Pmovsxwd_xmm_xmmm64,
                (Widen::W, false) => Code::Pmovzxwd_xmm_xmmm64,
                (Widen::D, true) => Code::Pmovsxdq_xmm_xmmm64,
                (Widen::D, false) => Code::Pmovzxdq_xmm_xmmm64,
            };
            return self.xx(code, d, d);
        }
        let unpack = match w {
            Widen::B => Code::Punpcklbw_xmm_xmmm128,
            Widen::W => Code::Punpcklwd_xmm_xmmm128,
            Widen::D => Code::Punpckldq_xmm_xmmm128,
        };
        match (w, signed) {
            (_, false) => {
                self.xx(Code::Pxor_xmm_xmmm128, X0, X0)?;
                self.xx(unpack, d, X0)
            }
            // Each lane doubled, then shifted down arithmetically.
            (Widen::B, true) => {
                self.xx(unpack, d, d)?;
                self.xi(Code::Psraw_xmm_imm8, d, 8)
            }
            (Widen::W, true) => {
                self.xx(unpack, d, d)?;
                self.xi(Code::Psrad_xmm_imm8, d, 16)
            }
            // No 64-bit arithmetic shift in SSE2: interleave with the sign masks.
            (Widen::D, true) => {
                self.mov_x(X0, d)?;
                self.xi(Code::Psrad_xmm_imm8, X0, 31)?;
                self.xx(unpack, d, X0)
            }
        }
    }

    pub(super) fn simd_mem(&mut self, op: &Operator<'_>) -> Result<bool, CompileError> {
        match *op {
            Operator::V128Load { memarg } => {
                let (r, m) = self.simd_addr(memarg, 16)?;
                let d = self.alloc_xmm()?;
                self.xmm_load_ty(d, m, Ty::V128)?;
                self.free_gpr(r);
                self.push_v(d);
            }
            Operator::V128Store { memarg } => {
                let v = self.pop_v()?;
                let (r, m) = self.simd_addr(memarg, 16)?;
                self.xmm_store_ty(m, v, Ty::V128)?;
                self.free_gpr(r);
                self.free_xmm(v);
            }
            Operator::V128Load8x8S { memarg } => self.load_widen(memarg, Widen::B, true)?,
            Operator::V128Load8x8U { memarg } => self.load_widen(memarg, Widen::B, false)?,
            Operator::V128Load16x4S { memarg } => self.load_widen(memarg, Widen::W, true)?,
            Operator::V128Load16x4U { memarg } => self.load_widen(memarg, Widen::W, false)?,
            Operator::V128Load32x2S { memarg } => self.load_widen(memarg, Widen::D, true)?,
            Operator::V128Load32x2U { memarg } => self.load_widen(memarg, Widen::D, false)?,
            Operator::V128Load32Zero { memarg } => self.load_low(memarg, 4)?,
            Operator::V128Load64Zero { memarg } => self.load_low(memarg, 8)?,
            Operator::V128Load8Splat { memarg } => self.load_splat(memarg, 1)?,
            Operator::V128Load16Splat { memarg } => self.load_splat(memarg, 2)?,
            Operator::V128Load32Splat { memarg } => self.load_splat(memarg, 4)?,
            Operator::V128Load64Splat { memarg } => self.load_splat(memarg, 8)?,
            Operator::V128Load8Lane { memarg, lane } => self.load_lane(memarg, 1, lane)?,
            Operator::V128Load16Lane { memarg, lane } => self.load_lane(memarg, 2, lane)?,
            Operator::V128Load32Lane { memarg, lane } => self.load_lane(memarg, 4, lane)?,
            Operator::V128Load64Lane { memarg, lane } => self.load_lane(memarg, 8, lane)?,
            Operator::V128Store8Lane { memarg, lane } => self.store_lane(memarg, 1, lane)?,
            Operator::V128Store16Lane { memarg, lane } => self.store_lane(memarg, 2, lane)?,
            Operator::V128Store32Lane { memarg, lane } => self.store_lane(memarg, 4, lane)?,
            Operator::V128Store64Lane { memarg, lane } => self.store_lane(memarg, 8, lane)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn load_widen(&mut self, memarg: MemArg, w: Widen, signed: bool) -> Result<(), CompileError> {
        let (r, m) = self.simd_addr(memarg, 8)?;
        let d = self.alloc_xmm()?;
        self.ins2(Code::Movq_xmm_xmmm64, x(d), m)?;
        self.free_gpr(r);
        self.widen_low(d, w, signed)?;
        self.push_v(d);
        Ok(())
    }

    /// `v128.load32_zero` / `v128.load64_zero`.
    fn load_low(&mut self, memarg: MemArg, size: u32) -> Result<(), CompileError> {
        let (r, m) = self.simd_addr(memarg, size)?;
        let d = self.alloc_xmm()?;
        let code = if size == 4 {
            Code::Movd_xmm_rm32
        } else {
            Code::Movq_xmm_xmmm64
        };
        self.ins2(code, x(d), m)?;
        self.free_gpr(r);
        self.push_v(d);
        Ok(())
    }

    /// Loads `size` bytes zero-extended into the general register `r`.
    fn load_scalar(&mut self, r: u8, m: MemoryOperand, size: u32) -> Result<(), CompileError> {
        let ins = match size {
            1 => Instruction::with2(Code::Movzx_r32_rm8, R32[r as usize], m),
            2 => Instruction::with2(Code::Movzx_r32_rm16, R32[r as usize], m),
            4 => Instruction::with2(Code::Mov_r32_rm32, R32[r as usize], m),
            _ => Instruction::with2(Code::Mov_r64_rm64, R64[r as usize], m),
        };
        self.cx.e.ins(ins)
    }

    fn load_splat(&mut self, memarg: MemArg, size: u32) -> Result<(), CompileError> {
        let (r, m) = self.simd_addr(memarg, size)?;
        self.load_scalar(r, m, size)?;
        let d = self.alloc_xmm()?;
        self.splat_gpr(d, r, size)?;
        self.free_gpr(r);
        self.push_v(d);
        Ok(())
    }

    fn load_lane(&mut self, memarg: MemArg, size: u32, lane: u8) -> Result<(), CompileError> {
        let v = self.pop_v()?;
        let (r, m) = self.simd_addr(memarg, size)?;
        self.load_scalar(r, m, size)?;
        let ty = if size == 8 { Ty::I64 } else { Ty::I32 };
        self.push_v(v);
        self.push(ty, super::Loc::Gpr(r));
        self.replace_lane_int(size, lane)
    }

    fn store_lane(&mut self, memarg: MemArg, size: u32, lane: u8) -> Result<(), CompileError> {
        let v = self.pop();
        let (r, m) = self.simd_addr(memarg, size)?;
        // The vector goes to its (free) home slot; the lane is stored from there through `rax`.
        let slot = self.vector_in_slot(v)?;
        self.load_scalar(0, super::at(slot, u32::from(lane) * size), size)?;
        let ins = match size {
            1 => Instruction::with2(Code::Mov_rm8_r8, m, R8[0]),
            2 => Instruction::with2(Code::Mov_rm16_r16, m, R16[0]),
            4 => Instruction::with2(Code::Mov_rm32_r32, m, R32[0]),
            _ => Instruction::with2(Code::Mov_rm64_r64, m, R64[0]),
        };
        self.cx.e.ins(ins)?;
        self.free_gpr(r);
        Ok(())
    }
}
