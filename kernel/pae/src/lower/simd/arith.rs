//! Bitwise, integer and float lane arithmetic, compares, shifts, reductions and conversions.

use iced_x86::Code;
use wasmparser::Operator;

use super::mem::Widen;
use super::{Func, X0, X1, X15};
use crate::CompileError;
use crate::emit::{Cond, R32};
use crate::module::Ty;
use crate::runtime::lanes::LaneOp;

/// A lane width in bytes.
type W = u32;

/// The sign bit of every lane of width `w`.
fn sign_bits(w: W) -> u128 {
    let lane: u128 = 1 << (8 * w - 1);
    (0..16 / w).fold(0, |v, i| v | lane << (8 * w * i))
}

/// `pcmpeq` / `pcmpgt` by lane width (64-bit ones need SSE4.1 / SSE4.2).
fn cmp_codes(w: W) -> (Code, Code) {
    match w {
        1 => (Code::Pcmpeqb_xmm_xmmm128, Code::Pcmpgtb_xmm_xmmm128),
        2 => (Code::Pcmpeqw_xmm_xmmm128, Code::Pcmpgtw_xmm_xmmm128),
        4 => (Code::Pcmpeqd_xmm_xmmm128, Code::Pcmpgtd_xmm_xmmm128),
        _ => (Code::Pcmpeqq_xmm_xmmm128, Code::Pcmpgtq_xmm_xmmm128),
    }
}

/// Integer compares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rel {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// Operators that are one SSE2 instruction `a = a op b`.
fn sse2_binop(op: &Operator<'_>) -> Option<Code> {
    use Operator::*;
    Some(match op {
        V128And => Code::Pand_xmm_xmmm128,
        V128Or => Code::Por_xmm_xmmm128,
        V128Xor => Code::Pxor_xmm_xmmm128,
        I8x16Add => Code::Paddb_xmm_xmmm128,
        I8x16AddSatS => Code::Paddsb_xmm_xmmm128,
        I8x16AddSatU => Code::Paddusb_xmm_xmmm128,
        I8x16Sub => Code::Psubb_xmm_xmmm128,
        I8x16SubSatS => Code::Psubsb_xmm_xmmm128,
        I8x16SubSatU => Code::Psubusb_xmm_xmmm128,
        I8x16MinU => Code::Pminub_xmm_xmmm128,
        I8x16MaxU => Code::Pmaxub_xmm_xmmm128,
        I8x16AvgrU => Code::Pavgb_xmm_xmmm128,
        I8x16NarrowI16x8S => Code::Packsswb_xmm_xmmm128,
        I8x16NarrowI16x8U => Code::Packuswb_xmm_xmmm128,
        I16x8Add => Code::Paddw_xmm_xmmm128,
        I16x8AddSatS => Code::Paddsw_xmm_xmmm128,
        I16x8AddSatU => Code::Paddusw_xmm_xmmm128,
        I16x8Sub => Code::Psubw_xmm_xmmm128,
        I16x8SubSatS => Code::Psubsw_xmm_xmmm128,
        I16x8SubSatU => Code::Psubusw_xmm_xmmm128,
        I16x8Mul => Code::Pmullw_xmm_xmmm128,
        I16x8MinS => Code::Pminsw_xmm_xmmm128,
        I16x8MaxS => Code::Pmaxsw_xmm_xmmm128,
        I16x8AvgrU => Code::Pavgw_xmm_xmmm128,
        I16x8NarrowI32x4S => Code::Packssdw_xmm_xmmm128,
        I32x4Add => Code::Paddd_xmm_xmmm128,
        I32x4Sub => Code::Psubd_xmm_xmmm128,
        I32x4DotI16x8S => Code::Pmaddwd_xmm_xmmm128,
        I64x2Add => Code::Paddq_xmm_xmmm128,
        I64x2Sub => Code::Psubq_xmm_xmmm128,
        F32x4Add => Code::Addps_xmm_xmmm128,
        F32x4Sub => Code::Subps_xmm_xmmm128,
        F32x4Mul => Code::Mulps_xmm_xmmm128,
        F32x4Div => Code::Divps_xmm_xmmm128,
        F64x2Add => Code::Addpd_xmm_xmmm128,
        F64x2Sub => Code::Subpd_xmm_xmmm128,
        F64x2Mul => Code::Mulpd_xmm_xmmm128,
        F64x2Div => Code::Divpd_xmm_xmmm128,
        _ => return None,
    })
}

/// Operators that are one SSE4.1 instruction `a = a op b`, with their SSE2 fallback.
fn sse41_binop(op: &Operator<'_>) -> Option<(Code, LaneOp)> {
    use Operator::*;
    Some(match op {
        I8x16MinS => (Code::Pminsb_xmm_xmmm128, LaneOp::I8x16MinS),
        I8x16MaxS => (Code::Pmaxsb_xmm_xmmm128, LaneOp::I8x16MaxS),
        I16x8MinU => (Code::Pminuw_xmm_xmmm128, LaneOp::I16x8MinU),
        I16x8MaxU => (Code::Pmaxuw_xmm_xmmm128, LaneOp::I16x8MaxU),
        I32x4MinS => (Code::Pminsd_xmm_xmmm128, LaneOp::I32x4MinS),
        I32x4MinU => (Code::Pminud_xmm_xmmm128, LaneOp::I32x4MinU),
        I32x4MaxS => (Code::Pmaxsd_xmm_xmmm128, LaneOp::I32x4MaxS),
        I32x4MaxU => (Code::Pmaxud_xmm_xmmm128, LaneOp::I32x4MaxU),
        I32x4Mul => (Code::Pmulld_xmm_xmmm128, LaneOp::I32x4Mul),
        I16x8NarrowI32x4U => (Code::Packusdw_xmm_xmmm128, LaneOp::I16x8NarrowI32x4U),
        _ => return None,
    })
}

/// Operators always computed by the lane helper: `(op, operand count)`.
fn helper_op(op: &Operator<'_>) -> Option<(LaneOp, usize)> {
    use Operator::*;
    Some(match op {
        I32x4TruncSatF32x4S => (LaneOp::I32x4TruncSatF32x4S, 1),
        I32x4TruncSatF32x4U => (LaneOp::I32x4TruncSatF32x4U, 1),
        I32x4TruncSatF64x2SZero => (LaneOp::I32x4TruncSatF64x2SZero, 1),
        I32x4TruncSatF64x2UZero => (LaneOp::I32x4TruncSatF64x2UZero, 1),
        F32x4ConvertI32x4U => (LaneOp::F32x4ConvertI32x4U, 1),
        F64x2ConvertLowI32x4U => (LaneOp::F64x2ConvertLowI32x4U, 1),
        I8x16Shl => (LaneOp::I8x16Shl, 2),
        I8x16ShrS => (LaneOp::I8x16ShrS, 2),
        I8x16ShrU => (LaneOp::I8x16ShrU, 2),
        I64x2ShrS => (LaneOp::I64x2ShrS, 2),
        I16x8ExtAddPairwiseI8x16S => (LaneOp::I16x8ExtaddPairwiseI8x16S, 1),
        I16x8ExtAddPairwiseI8x16U => (LaneOp::I16x8ExtaddPairwiseI8x16U, 1),
        I32x4ExtAddPairwiseI16x8S => (LaneOp::I32x4ExtaddPairwiseI16x8S, 1),
        I32x4ExtAddPairwiseI16x8U => (LaneOp::I32x4ExtaddPairwiseI16x8U, 1),
        I16x8ExtMulLowI8x16S => (LaneOp::I16x8ExtmulLowI8x16S, 2),
        I16x8ExtMulHighI8x16S => (LaneOp::I16x8ExtmulHighI8x16S, 2),
        I16x8ExtMulLowI8x16U => (LaneOp::I16x8ExtmulLowI8x16U, 2),
        I16x8ExtMulHighI8x16U => (LaneOp::I16x8ExtmulHighI8x16U, 2),
        I32x4ExtMulLowI16x8S => (LaneOp::I32x4ExtmulLowI16x8S, 2),
        I32x4ExtMulHighI16x8S => (LaneOp::I32x4ExtmulHighI16x8S, 2),
        I32x4ExtMulLowI16x8U => (LaneOp::I32x4ExtmulLowI16x8U, 2),
        I32x4ExtMulHighI16x8U => (LaneOp::I32x4ExtmulHighI16x8U, 2),
        I64x2ExtMulLowI32x4S => (LaneOp::I64x2ExtmulLowI32x4S, 2),
        I64x2ExtMulHighI32x4S => (LaneOp::I64x2ExtmulHighI32x4S, 2),
        I64x2ExtMulLowI32x4U => (LaneOp::I64x2ExtmulLowI32x4U, 2),
        I64x2ExtMulHighI32x4U => (LaneOp::I64x2ExtmulHighI32x4U, 2),
        _ => return None,
    })
}

impl Func<'_, '_> {
    pub(super) fn simd_arith(&mut self, op: &Operator<'_>) -> Result<bool, CompileError> {
        use Operator::*;
        if let Some(code) = sse2_binop(op) {
            self.binop(code)?;
            return Ok(true);
        }
        if let Some((code, fallback)) = sse41_binop(op) {
            if self.cx.opts.cpu.sse41 {
                self.binop(code)?;
            } else {
                self.lanes(fallback, 2, None)?;
            }
            return Ok(true);
        }
        if let Some((which, n)) = helper_op(op) {
            self.lanes(which, n, None)?;
            return Ok(true);
        }
        match *op {
            V128Not => self.unop(|f, a| f.not(a))?,
            V128AndNot => self.binop_rev(Code::Pandn_xmm_xmmm128)?,
            V128Bitselect => {
                let c = self.pop_v()?;
                let b = self.pop_v()?;
                let a = self.pop_v()?;
                self.xx(Code::Pand_xmm_xmmm128, a, c)?;
                self.xx(Code::Pandn_xmm_xmmm128, c, b)?;
                self.xx(Code::Por_xmm_xmmm128, a, c)?;
                self.free_xmm(b);
                self.free_xmm(c);
                self.push_v(a);
            }
            V128AnyTrue => {
                let a = self.pop_v()?;
                if self.cx.opts.cpu.sse41 {
                    self.xx(Code::Ptest_xmm_xmmm128, a, a)?;
                    self.free_xmm(a);
                    self.push_flag(Cond::Ne)?;
                } else {
                    self.xx(Code::Pxor_xmm_xmmm128, X0, X0)?;
                    self.xx(Code::Pcmpeqb_xmm_xmmm128, X0, a)?;
                    self.free_xmm(a);
                    self.movemask(Code::Pmovmskb_r32_xmm, X0)?;
                    self.cx.e.ins(iced_x86::Instruction::with2(
                        Code::Cmp_rm32_imm32,
                        R32[0],
                        0xFFFFu32,
                    ))?;
                    self.push_flag(Cond::Ne)?;
                }
            }
            I8x16AllTrue => self.all_true(1)?,
            I16x8AllTrue => self.all_true(2)?,
            I32x4AllTrue => self.all_true(4)?,
            I64x2AllTrue => self.all_true(8)?,
            I8x16Bitmask => self.bitmask(Code::Pmovmskb_r32_xmm, false)?,
            I16x8Bitmask => self.bitmask(Code::Pmovmskb_r32_xmm, true)?,
            I32x4Bitmask => self.bitmask(Code::Movmskps_r32_xmm, false)?,
            I64x2Bitmask => self.bitmask(Code::Movmskpd_r32_xmm, false)?,
            I8x16Eq => self.icmp(1, Rel::Eq, true)?,
            I8x16Ne => self.icmp(1, Rel::Ne, true)?,
            I8x16LtS => self.icmp(1, Rel::Lt, true)?,
            I8x16LtU => self.icmp(1, Rel::Lt, false)?,
            I8x16GtS => self.icmp(1, Rel::Gt, true)?,
            I8x16GtU => self.icmp(1, Rel::Gt, false)?,
            I8x16LeS => self.icmp(1, Rel::Le, true)?,
            I8x16LeU => self.icmp(1, Rel::Le, false)?,
            I8x16GeS => self.icmp(1, Rel::Ge, true)?,
            I8x16GeU => self.icmp(1, Rel::Ge, false)?,
            I16x8Eq => self.icmp(2, Rel::Eq, true)?,
            I16x8Ne => self.icmp(2, Rel::Ne, true)?,
            I16x8LtS => self.icmp(2, Rel::Lt, true)?,
            I16x8LtU => self.icmp(2, Rel::Lt, false)?,
            I16x8GtS => self.icmp(2, Rel::Gt, true)?,
            I16x8GtU => self.icmp(2, Rel::Gt, false)?,
            I16x8LeS => self.icmp(2, Rel::Le, true)?,
            I16x8LeU => self.icmp(2, Rel::Le, false)?,
            I16x8GeS => self.icmp(2, Rel::Ge, true)?,
            I16x8GeU => self.icmp(2, Rel::Ge, false)?,
            I32x4Eq => self.icmp(4, Rel::Eq, true)?,
            I32x4Ne => self.icmp(4, Rel::Ne, true)?,
            I32x4LtS => self.icmp(4, Rel::Lt, true)?,
            I32x4LtU => self.icmp(4, Rel::Lt, false)?,
            I32x4GtS => self.icmp(4, Rel::Gt, true)?,
            I32x4GtU => self.icmp(4, Rel::Gt, false)?,
            I32x4LeS => self.icmp(4, Rel::Le, true)?,
            I32x4LeU => self.icmp(4, Rel::Le, false)?,
            I32x4GeS => self.icmp(4, Rel::Ge, true)?,
            I32x4GeU => self.icmp(4, Rel::Ge, false)?,
            I64x2Eq => self.icmp(8, Rel::Eq, true)?,
            I64x2Ne => self.icmp(8, Rel::Ne, true)?,
            I64x2LtS => self.icmp(8, Rel::Lt, true)?,
            I64x2GtS => self.icmp(8, Rel::Gt, true)?,
            I64x2LeS => self.icmp(8, Rel::Le, true)?,
            I64x2GeS => self.icmp(8, Rel::Ge, true)?,
            F32x4Eq => self.fcmp(Code::Cmpps_xmm_xmmm128_imm8, 0, false)?,
            F32x4Ne => self.fcmp(Code::Cmpps_xmm_xmmm128_imm8, 4, false)?,
            F32x4Lt => self.fcmp(Code::Cmpps_xmm_xmmm128_imm8, 1, false)?,
            F32x4Le => self.fcmp(Code::Cmpps_xmm_xmmm128_imm8, 2, false)?,
            F32x4Gt => self.fcmp(Code::Cmpps_xmm_xmmm128_imm8, 1, true)?,
            F32x4Ge => self.fcmp(Code::Cmpps_xmm_xmmm128_imm8, 2, true)?,
            F64x2Eq => self.fcmp(Code::Cmppd_xmm_xmmm128_imm8, 0, false)?,
            F64x2Ne => self.fcmp(Code::Cmppd_xmm_xmmm128_imm8, 4, false)?,
            F64x2Lt => self.fcmp(Code::Cmppd_xmm_xmmm128_imm8, 1, false)?,
            F64x2Le => self.fcmp(Code::Cmppd_xmm_xmmm128_imm8, 2, false)?,
            F64x2Gt => self.fcmp(Code::Cmppd_xmm_xmmm128_imm8, 1, true)?,
            F64x2Ge => self.fcmp(Code::Cmppd_xmm_xmmm128_imm8, 2, true)?,
            // pmin(a, b) = b < a ? b : a, which is minps with `b` as destination (minps
            // returns its second operand unless the first is less); pmax likewise.
            F32x4PMin => self.binop_rev(Code::Minps_xmm_xmmm128)?,
            F32x4PMax => self.binop_rev(Code::Maxps_xmm_xmmm128)?,
            F64x2PMin => self.binop_rev(Code::Minpd_xmm_xmmm128)?,
            F64x2PMax => self.binop_rev(Code::Maxpd_xmm_xmmm128)?,
            F32x4Min => self.fmin_max(false, false)?,
            F32x4Max => self.fmin_max(false, true)?,
            F64x2Min => self.fmin_max(true, false)?,
            F64x2Max => self.fmin_max(true, true)?,
            F32x4Sqrt => self.unop(|f, a| f.xx(Code::Sqrtps_xmm_xmmm128, a, a))?,
            F64x2Sqrt => self.unop(|f, a| f.xx(Code::Sqrtpd_xmm_xmmm128, a, a))?,
            F32x4Abs => self.sign_op(Code::Psrld_xmm_imm8, 1, Code::Pand_xmm_xmmm128)?,
            F64x2Abs => self.sign_op(Code::Psrlq_xmm_imm8, 1, Code::Pand_xmm_xmmm128)?,
            F32x4Neg => self.sign_op(Code::Pslld_xmm_imm8, 31, Code::Pxor_xmm_xmmm128)?,
            F64x2Neg => self.sign_op(Code::Psllq_xmm_imm8, 63, Code::Pxor_xmm_xmmm128)?,
            F32x4Ceil => self.round(false, 2, LaneOp::F32x4Ceil)?,
            F32x4Floor => self.round(false, 1, LaneOp::F32x4Floor)?,
            F32x4Trunc => self.round(false, 3, LaneOp::F32x4Trunc)?,
            F32x4Nearest => self.round(false, 0, LaneOp::F32x4Nearest)?,
            F64x2Ceil => self.round(true, 2, LaneOp::F64x2Ceil)?,
            F64x2Floor => self.round(true, 1, LaneOp::F64x2Floor)?,
            F64x2Trunc => self.round(true, 3, LaneOp::F64x2Trunc)?,
            F64x2Nearest => self.round(true, 0, LaneOp::F64x2Nearest)?,
            F32x4ConvertI32x4S => self.unop(|f, a| f.xx(Code::Cvtdq2ps_xmm_xmmm128, a, a))?,
            F64x2ConvertLowI32x4S => self.unop(|f, a| f.xx(Code::Cvtdq2pd_xmm_xmmm64, a, a))?,
            F32x4DemoteF64x2Zero => self.unop(|f, a| f.xx(Code::Cvtpd2ps_xmm_xmmm128, a, a))?,
            F64x2PromoteLowF32x4 => self.unop(|f, a| f.xx(Code::Cvtps2pd_xmm_xmmm64, a, a))?,
            I8x16Neg => self.neg(Code::Psubb_xmm_xmmm128)?,
            I16x8Neg => self.neg(Code::Psubw_xmm_xmmm128)?,
            I32x4Neg => self.neg(Code::Psubd_xmm_xmmm128)?,
            I64x2Neg => self.neg(Code::Psubq_xmm_xmmm128)?,
            I8x16Abs => self.abs(1)?,
            I16x8Abs => self.abs(2)?,
            I32x4Abs => self.abs(4)?,
            I64x2Abs => self.abs(8)?,
            I8x16Popcnt => self.popcnt()?,
            I16x8Q15MulrSatS => self.q15mulr()?,
            I64x2Mul => self.mul64()?,
            I16x8Shl => self.shift(Code::Psllw_xmm_xmmm128, Code::Psllw_xmm_imm8, 16)?,
            I16x8ShrS => self.shift(Code::Psraw_xmm_xmmm128, Code::Psraw_xmm_imm8, 16)?,
            I16x8ShrU => self.shift(Code::Psrlw_xmm_xmmm128, Code::Psrlw_xmm_imm8, 16)?,
            I32x4Shl => self.shift(Code::Pslld_xmm_xmmm128, Code::Pslld_xmm_imm8, 32)?,
            I32x4ShrS => self.shift(Code::Psrad_xmm_xmmm128, Code::Psrad_xmm_imm8, 32)?,
            I32x4ShrU => self.shift(Code::Psrld_xmm_xmmm128, Code::Psrld_xmm_imm8, 32)?,
            I64x2Shl => self.shift(Code::Psllq_xmm_xmmm128, Code::Psllq_xmm_imm8, 64)?,
            I64x2ShrU => self.shift(Code::Psrlq_xmm_xmmm128, Code::Psrlq_xmm_imm8, 64)?,
            I16x8ExtendLowI8x16S => self.extend(Widen::B, false, true)?,
            I16x8ExtendHighI8x16S => self.extend(Widen::B, true, true)?,
            I16x8ExtendLowI8x16U => self.extend(Widen::B, false, false)?,
            I16x8ExtendHighI8x16U => self.extend(Widen::B, true, false)?,
            I32x4ExtendLowI16x8S => self.extend(Widen::W, false, true)?,
            I32x4ExtendHighI16x8S => self.extend(Widen::W, true, true)?,
            I32x4ExtendLowI16x8U => self.extend(Widen::W, false, false)?,
            I32x4ExtendHighI16x8U => self.extend(Widen::W, true, false)?,
            I64x2ExtendLowI32x4S => self.extend(Widen::D, false, true)?,
            I64x2ExtendHighI32x4S => self.extend(Widen::D, true, true)?,
            I64x2ExtendLowI32x4U => self.extend(Widen::D, false, false)?,
            I64x2ExtendHighI32x4U => self.extend(Widen::D, true, false)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `movmskps`-like into `eax`.
    fn movemask(&mut self, code: Code, s: u8) -> Result<(), CompileError> {
        self.cx
            .e
            .ins(iced_x86::Instruction::with2(code, R32[0], super::x(s)))
    }

    fn all_true(&mut self, w: W) -> Result<(), CompileError> {
        let a = self.pop_v()?;
        // Lanes equal to zero become all ones; all true when no byte is set.
        self.xx(Code::Pxor_xmm_xmmm128, X0, X0)?;
        if w == 8 && !self.cx.opts.cpu.sse41 {
            self.xx(Code::Pcmpeqd_xmm_xmmm128, X0, a)?;
            self.xxi(Code::Pshufd_xmm_xmmm128_imm8, X1, X0, 0xB1)?;
            self.xx(Code::Pand_xmm_xmmm128, X0, X1)?;
        } else {
            self.xx(cmp_codes(w).0, X0, a)?;
        }
        self.free_xmm(a);
        self.movemask(Code::Pmovmskb_r32_xmm, X0)?;
        self.cx
            .e
            .rr((Code::Test_rm32_r32, Code::Test_rm64_r64), false, 0, 0)?;
        self.push_flag(Cond::E)
    }

    fn bitmask(&mut self, code: Code, words: bool) -> Result<(), CompileError> {
        let a = self.pop_v()?;
        if words {
            // Saturating narrowing keeps each lane's sign in a byte.
            self.xx(Code::Packsswb_xmm_xmmm128, a, a)?;
        }
        let r = self.alloc_gpr()?;
        self.cx.e.ins(iced_x86::Instruction::with2(
            code,
            R32[r as usize],
            super::x(a),
        ))?;
        if words {
            self.cx.e.ins(iced_x86::Instruction::with2(
                Code::Movzx_r32_rm8,
                R32[r as usize],
                crate::emit::R8[r as usize],
            ))?;
        }
        self.free_xmm(a);
        self.push(Ty::I32, super::Loc::Gpr(r));
        Ok(())
    }

    fn icmp(&mut self, w: W, rel: Rel, signed: bool) -> Result<(), CompileError> {
        let cpu = self.cx.opts.cpu;
        if w == 8 {
            let helper = match rel {
                Rel::Eq | Rel::Ne if cpu.sse41 => None,
                Rel::Eq => Some(LaneOp::I64x2Eq),
                Rel::Ne => Some(LaneOp::I64x2Ne),
                _ if cpu.sse42 => None,
                Rel::Lt => Some(LaneOp::I64x2LtS),
                Rel::Gt => Some(LaneOp::I64x2GtS),
                Rel::Le => Some(LaneOp::I64x2LeS),
                Rel::Ge => Some(LaneOp::I64x2GeS),
            };
            if let Some(h) = helper {
                return self.lanes(h, 2, None);
            }
        }
        let (eq, gt) = cmp_codes(w);
        let b = self.pop_v()?;
        let a = self.pop_v()?;
        if !signed && !matches!(rel, Rel::Eq | Rel::Ne) {
            // Unsigned order is signed order with the sign bits flipped.
            self.const_into(X0, sign_bits(w), X1)?;
            self.xx(Code::Pxor_xmm_xmmm128, a, X0)?;
            self.xx(Code::Pxor_xmm_xmmm128, b, X0)?;
        }
        let (d, s) = match rel {
            Rel::Eq | Rel::Ne => (a, b),
            Rel::Gt | Rel::Le => (a, b),
            Rel::Lt | Rel::Ge => (b, a),
        };
        self.xx(
            if matches!(rel, Rel::Eq | Rel::Ne) {
                eq
            } else {
                gt
            },
            d,
            s,
        )?;
        if matches!(rel, Rel::Ne | Rel::Le | Rel::Ge) {
            self.not(d)?;
        }
        self.free_xmm(s);
        self.push_v(d);
        Ok(())
    }

    /// Float compare with predicate `pred`; `swap` compares `b` with `a` (gt, ge).
    fn fcmp(&mut self, code: Code, pred: u32, swap: bool) -> Result<(), CompileError> {
        let b = self.pop_v()?;
        let a = self.pop_v()?;
        let (d, s) = if swap { (b, a) } else { (a, b) };
        self.xxi(code, d, s, pred)?;
        self.free_xmm(s);
        self.push_v(d);
        Ok(())
    }

    /// WebAssembly `min`/`max`: `minps` both ways round, or-ed (min: -0 wins) or and-ed (max:
    /// +0 wins), then NaN lanes (unordered) set to all ones and cleared below the quiet bit,
    /// which leaves the canonical NaN (with the sign bit set).
    fn fmin_max(&mut self, f64x2: bool, max: bool) -> Result<(), CompileError> {
        let (pick, unord, shift, quiet_shift) = match (f64x2, max) {
            (false, false) => (
                Code::Minps_xmm_xmmm128,
                Code::Cmpps_xmm_xmmm128_imm8,
                Code::Psrld_xmm_imm8,
                10,
            ),
            (false, true) => (
                Code::Maxps_xmm_xmmm128,
                Code::Cmpps_xmm_xmmm128_imm8,
                Code::Psrld_xmm_imm8,
                10,
            ),
            (true, false) => (
                Code::Minpd_xmm_xmmm128,
                Code::Cmppd_xmm_xmmm128_imm8,
                Code::Psrlq_xmm_imm8,
                13,
            ),
            (true, true) => (
                Code::Maxpd_xmm_xmmm128,
                Code::Cmppd_xmm_xmmm128_imm8,
                Code::Psrlq_xmm_imm8,
                13,
            ),
        };
        let join = if max {
            Code::Pand_xmm_xmmm128
        } else {
            Code::Por_xmm_xmmm128
        };
        let b = self.pop_v()?;
        let a = self.pop_v()?;
        self.mov_x(X0, a)?;
        self.xx(pick, X0, b)?;
        self.mov_x(X1, b)?;
        self.xx(pick, X1, a)?;
        self.xx(join, X0, X1)?;
        self.mov_x(X1, a)?;
        self.xxi(unord, X1, b, 3)?;
        self.xx(Code::Por_xmm_xmmm128, X0, X1)?;
        self.xi(shift, X1, quiet_shift)?;
        self.xx(Code::Pandn_xmm_xmmm128, X1, X0)?;
        self.mov_x(a, X1)?;
        self.free_xmm(b);
        self.push_v(a);
        Ok(())
    }

    /// `a = a op mask` with `mask` = all ones shifted by `shift` (float abs/neg).
    fn sign_op(&mut self, shift: Code, by: u32, op: Code) -> Result<(), CompileError> {
        self.unop(|f, a| {
            f.xx(Code::Pcmpeqd_xmm_xmmm128, X0, X0)?;
            f.xi(shift, X0, by)?;
            f.xx(op, a, X0)
        })
    }

    /// SSE4.1 `roundps/pd` (`mode`: 0 nearest, 1 floor, 2 ceil, 3 trunc; 8 suppresses the
    /// precision exception), else the lane helper.
    fn round(&mut self, f64x2: bool, mode: u32, fallback: LaneOp) -> Result<(), CompileError> {
        if !self.cx.opts.cpu.sse41 {
            return self.lanes(fallback, 1, None);
        }
        let code = if f64x2 {
            Code::Roundpd_xmm_xmmm128_imm8
        } else {
            Code::Roundps_xmm_xmmm128_imm8
        };
        self.unop(|f, a| f.xxi(code, a, a, mode | 8))
    }

    fn neg(&mut self, sub: Code) -> Result<(), CompileError> {
        self.unop(|f, a| {
            f.xx(Code::Pxor_xmm_xmmm128, X0, X0)?;
            f.xx(sub, X0, a)?;
            f.mov_x(a, X0)
        })
    }

    fn abs(&mut self, w: W) -> Result<(), CompileError> {
        let ssse3 = self.cx.opts.cpu.ssse3;
        self.unop(|f, a| match w {
            1 if ssse3 => f.xx(Code::Pabsb_xmm_xmmm128, a, a),
            2 if ssse3 => f.xx(Code::Pabsw_xmm_xmmm128, a, a),
            4 if ssse3 => f.xx(Code::Pabsd_xmm_xmmm128, a, a),
            // |x| = min_u(x, -x) for bytes, max_s(x, -x) for words.
            1 | 2 => {
                f.xx(Code::Pxor_xmm_xmmm128, X0, X0)?;
                let (sub, pick) = if w == 1 {
                    (Code::Psubb_xmm_xmmm128, Code::Pminub_xmm_xmmm128)
                } else {
                    (Code::Psubw_xmm_xmmm128, Code::Pmaxsw_xmm_xmmm128)
                };
                f.xx(sub, X0, a)?;
                f.xx(pick, a, X0)
            }
            // (x ^ s) - s with s the lane's sign mask.
            _ => {
                f.mov_x(X0, a)?;
                f.xi(Code::Psrad_xmm_imm8, X0, 31)?;
                let sub = if w == 4 {
                    Code::Psubd_xmm_xmmm128
                } else {
                    f.xxi(Code::Pshufd_xmm_xmmm128_imm8, X0, X0, 0xF5)?;
                    Code::Psubq_xmm_xmmm128
                };
                f.xx(Code::Pxor_xmm_xmmm128, a, X0)?;
                f.xx(sub, a, X0)
            }
        })
    }

    /// SSSE3: a nibble lookup table with `pshufb`; else the lane helper.
    fn popcnt(&mut self) -> Result<(), CompileError> {
        if !self.cx.opts.cpu.ssse3 {
            return self.lanes(LaneOp::I8x16Popcnt, 1, None);
        }
        let table = u128::from_le_bytes([0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4]);
        self.unop(|f, a| {
            f.const_into(X1, u128::from_le_bytes([0x0F; 16]), X0)?;
            f.mov_x(X0, a)?;
            f.xi(Code::Psrlw_xmm_imm8, X0, 4)?;
            f.xx(Code::Pand_xmm_xmmm128, X0, X1)?;
            f.xx(Code::Pand_xmm_xmmm128, a, X1)?;
            f.const_into(X1, table, X15)?;
            f.mov_x(X15, X1)?;
            f.xx(Code::Pshufb_xmm_xmmm128, X1, a)?;
            f.xx(Code::Pshufb_xmm_xmmm128, X15, X0)?;
            f.xx(Code::Paddb_xmm_xmmm128, X1, X15)?;
            f.mov_x(a, X1)
        })
    }

    /// SSSE3 `pmulhrsw`, whose only difference (`0x8000 * 0x8000` gives `0x8000`) is fixed by
    /// flipping lanes equal to `0x8000`; else the lane helper.
    fn q15mulr(&mut self) -> Result<(), CompileError> {
        if !self.cx.opts.cpu.ssse3 {
            return self.lanes(LaneOp::I16x8Q15MulrSatS, 2, None);
        }
        let b = self.pop_v()?;
        let a = self.pop_v()?;
        self.xx(Code::Pmulhrsw_xmm_xmmm128, a, b)?;
        self.const_into(X0, sign_bits(2), X1)?;
        self.xx(Code::Pcmpeqw_xmm_xmmm128, X0, a)?;
        self.xx(Code::Pxor_xmm_xmmm128, a, X0)?;
        self.free_xmm(b);
        self.push_v(a);
        Ok(())
    }

    /// `lo(a)*lo(b) + (hi(a)*lo(b) + lo(a)*hi(b)) << 32` per lane with `pmuludq`.
    fn mul64(&mut self) -> Result<(), CompileError> {
        let b = self.pop_v()?;
        let a = self.pop_v()?;
        self.mov_x(X0, a)?;
        self.xi(Code::Psrlq_xmm_imm8, X0, 32)?;
        self.xx(Code::Pmuludq_xmm_xmmm128, X0, b)?;
        self.mov_x(X1, b)?;
        self.xi(Code::Psrlq_xmm_imm8, X1, 32)?;
        self.xx(Code::Pmuludq_xmm_xmmm128, X1, a)?;
        self.xx(Code::Paddq_xmm_xmmm128, X0, X1)?;
        self.xi(Code::Psllq_xmm_imm8, X0, 32)?;
        self.xx(Code::Pmuludq_xmm_xmmm128, a, b)?;
        self.xx(Code::Paddq_xmm_xmmm128, a, X0)?;
        self.free_xmm(b);
        self.push_v(a);
        Ok(())
    }

    /// Shift by a scalar count taken modulo the lane width `bits`.
    fn shift(&mut self, by_xmm: Code, by_imm: Code, bits: u32) -> Result<(), CompileError> {
        let count = self.pop();
        if let super::Loc::Const(c) = count.loc {
            let a = self.pop_v()?;
            self.xi(by_imm, a, c as u32 & (bits - 1))?;
            self.push_v(a);
            return Ok(());
        }
        let r = self.gpr_of(count)?;
        let a = self.pop_v()?;
        self.cx.e.mov_rr(0, r, false)?;
        self.cx.e.ri(
            (Code::And_rm32_imm32, Code::And_rm64_imm32),
            false,
            0,
            (bits - 1) as i32,
        )?;
        self.gpr_to_xmm(X0, 0, false)?;
        self.xx(by_xmm, a, X0)?;
        self.free_gpr(r);
        self.push_v(a);
        Ok(())
    }

    fn extend(&mut self, w: Widen, high: bool, signed: bool) -> Result<(), CompileError> {
        self.unop(|f, a| {
            if high {
                f.xxi(Code::Pshufd_xmm_xmmm128_imm8, a, a, 0xEE)?;
            }
            f.widen_low(a, w, signed)
        })
    }
}
