//! Constants, shuffles, splats and lane access.

use iced_x86::{Code, Instruction};
use wasmparser::Operator;

use super::{Func, Loc, X0, X1, at, x};
use crate::CompileError;
use crate::emit::{R8, R16, R32, R64};
use crate::module::Ty;
use crate::runtime::lanes::LaneOp;

/// `n` copies of byte `b`.
fn bytes(b: u8) -> u128 {
    u128::from_le_bytes([b; 16])
}

impl Func<'_, '_> {
    pub(super) fn simd_lane(&mut self, op: &Operator<'_>) -> Result<bool, CompileError> {
        match *op {
            Operator::V128Const { value } => {
                let d = self.alloc_xmm()?;
                self.const_into(d, value.i128() as u128, X0)?;
                self.push_v(d);
            }
            Operator::I8x16Shuffle { lanes } => self.shuffle(lanes)?,
            Operator::I8x16Swizzle => {
                if self.cx.opts.cpu.ssse3 {
                    // Indices of 16 and more get the top bit (pshufb's zeroing) by a
                    // saturating add of 0x70.
                    let b = self.pop_v()?;
                    let a = self.pop_v()?;
                    self.const_into(X0, bytes(0x70), X1)?;
                    self.xx(Code::Paddusb_xmm_xmmm128, b, X0)?;
                    self.xx(Code::Pshufb_xmm_xmmm128, a, b)?;
                    self.free_xmm(b);
                    self.push_v(a);
                } else {
                    self.lanes(LaneOp::I8x16Swizzle, 2, None)?;
                }
            }
            Operator::I8x16Splat => self.splat_int(1)?,
            Operator::I16x8Splat => self.splat_int(2)?,
            Operator::I32x4Splat => self.splat_int(4)?,
            Operator::I64x2Splat => self.splat_int(8)?,
            Operator::F32x4Splat => {
                let v = self.pop();
                let s = self.xmm_of(v)?;
                self.xxi(Code::Shufps_xmm_xmmm128_imm8, s, s, 0)?;
                self.push_v(s);
            }
            Operator::F64x2Splat => {
                let v = self.pop();
                let s = self.xmm_of(v)?;
                self.xx(Code::Unpcklpd_xmm_xmmm128, s, s)?;
                self.push_v(s);
            }
            Operator::I8x16ExtractLaneS { lane } => self.extract_int(1, lane, true)?,
            Operator::I8x16ExtractLaneU { lane } => self.extract_int(1, lane, false)?,
            Operator::I16x8ExtractLaneS { lane } => self.extract_int(2, lane, true)?,
            Operator::I16x8ExtractLaneU { lane } => self.extract_int(2, lane, false)?,
            Operator::I32x4ExtractLane { lane } => self.extract_int(4, lane, false)?,
            Operator::I64x2ExtractLane { lane } => self.extract_int(8, lane, false)?,
            Operator::F32x4ExtractLane { lane } => {
                let v = self.pop_v()?;
                if lane != 0 {
                    self.xxi(Code::Pshufd_xmm_xmmm128_imm8, v, v, u32::from(lane))?;
                }
                self.push(Ty::F32, Loc::Xmm(v));
            }
            Operator::F64x2ExtractLane { lane } => {
                let v = self.pop_v()?;
                if lane != 0 {
                    self.xxi(Code::Pshufd_xmm_xmmm128_imm8, v, v, 0xEE)?;
                }
                self.push(Ty::F64, Loc::Xmm(v));
            }
            Operator::I8x16ReplaceLane { lane } => self.replace_lane_int(1, lane)?,
            Operator::I16x8ReplaceLane { lane } => self.replace_lane_int(2, lane)?,
            Operator::I32x4ReplaceLane { lane } => self.replace_lane_int(4, lane)?,
            Operator::I64x2ReplaceLane { lane } => self.replace_lane_int(8, lane)?,
            Operator::F32x4ReplaceLane { lane } => self.replace_lane_f32(lane)?,
            Operator::F64x2ReplaceLane { lane } => {
                let s = self.pop();
                let s = self.xmm_of(s)?;
                let v = self.pop_v()?;
                if lane == 0 {
                    self.xx(Code::Movsd_xmm_xmmm64, v, s)?;
                } else {
                    self.xx(Code::Unpcklpd_xmm_xmmm128, v, s)?;
                }
                self.free_xmm(s);
                self.push_v(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn shuffle(&mut self, lanes: [u8; 16]) -> Result<(), CompileError> {
        if !self.cx.opts.cpu.ssse3 {
            return self.lanes(LaneOp::I8x16Shuffle, 2, Some(u128::from_le_bytes(lanes)));
        }
        // Two pshufb: lanes of `a` (others zeroed by a set top bit), lanes of `b`, or-ed.
        let pick = |from: u8| {
            u128::from_le_bytes(lanes.map(|k| {
                if (from..from + 16).contains(&k) {
                    k - from
                } else {
                    0x80
                }
            }))
        };
        let b = self.pop_v()?;
        let a = self.pop_v()?;
        self.const_into(X0, pick(0), X1)?;
        self.xx(Code::Pshufb_xmm_xmmm128, a, X0)?;
        self.const_into(X0, pick(16), X1)?;
        self.xx(Code::Pshufb_xmm_xmmm128, b, X0)?;
        self.xx(Code::Por_xmm_xmmm128, a, b)?;
        self.free_xmm(b);
        self.push_v(a);
        Ok(())
    }

    /// Fills XMM `d` with the low `size` bytes of general register `r`.
    pub(super) fn splat_gpr(&mut self, d: u8, r: u8, size: u32) -> Result<(), CompileError> {
        self.gpr_to_xmm(d, r, size == 8)?;
        match size {
            1 if self.cx.opts.cpu.ssse3 => {
                self.xx(Code::Pxor_xmm_xmmm128, X0, X0)?;
                self.xx(Code::Pshufb_xmm_xmmm128, d, X0)
            }
            1 | 2 => {
                if size == 1 {
                    self.xx(Code::Punpcklbw_xmm_xmmm128, d, d)?;
                }
                self.xxi(Code::Pshuflw_xmm_xmmm128_imm8, d, d, 0)?;
                self.xxi(Code::Pshufd_xmm_xmmm128_imm8, d, d, 0)
            }
            4 => self.xxi(Code::Pshufd_xmm_xmmm128_imm8, d, d, 0),
            _ => self.xx(Code::Punpcklqdq_xmm_xmmm128, d, d),
        }
    }

    fn splat_int(&mut self, size: u32) -> Result<(), CompileError> {
        let r = self.pop_gpr()?;
        let d = self.alloc_xmm()?;
        self.splat_gpr(d, r, size)?;
        self.free_gpr(r);
        self.push_v(d);
        Ok(())
    }

    fn extract_int(&mut self, size: u32, lane: u8, signed: bool) -> Result<(), CompileError> {
        let v = self.pop();
        let r = self.alloc_gpr()?;
        let (r32, r64) = (R32[r as usize], R64[r as usize]);
        let lane32 = u32::from(lane);
        match v.loc {
            Loc::Mem => {
                // Straight from the home slot.
                let m = at(self.slot(v.depth), lane32 * size);
                let ins = match (size, signed) {
                    (1, true) => Instruction::with2(Code::Movsx_r32_rm8, r32, m),
                    (1, false) => Instruction::with2(Code::Movzx_r32_rm8, r32, m),
                    (2, true) => Instruction::with2(Code::Movsx_r32_rm16, r32, m),
                    (2, false) => Instruction::with2(Code::Movzx_r32_rm16, r32, m),
                    (4, _) => Instruction::with2(Code::Mov_r32_rm32, r32, m),
                    _ => Instruction::with2(Code::Mov_r64_rm64, r64, m),
                };
                self.cx.e.ins(ins)?;
            }
            _ => {
                let s = self.xmm_of(v)?;
                match size {
                    1 if self.cx.opts.cpu.sse41 => self.cx.e.ins(Instruction::with3(
                        Code::Pextrb_r32m8_xmm_imm8,
                        r32,
                        x(s),
                        lane32,
                    ))?,
                    1 => {
                        self.cx.e.ins(Instruction::with3(
                            Code::Pextrw_r32_xmm_imm8,
                            r32,
                            x(s),
                            lane32 / 2,
                        ))?;
                        if lane % 2 == 1 {
                            self.cx
                                .e
                                .ins(Instruction::with2(Code::Shr_rm32_imm8, r32, 8u32))?;
                        }
                        if !signed {
                            self.cx.e.ins(Instruction::with2(
                                Code::Movzx_r32_rm8,
                                r32,
                                R8[r as usize],
                            ))?;
                        }
                    }
                    2 => self.cx.e.ins(Instruction::with3(
                        Code::Pextrw_r32_xmm_imm8,
                        r32,
                        x(s),
                        lane32,
                    ))?,
                    4 => {
                        if lane != 0 {
                            self.xxi(Code::Pshufd_xmm_xmmm128_imm8, s, s, lane32)?;
                        }
                        self.xmm_to_gpr(r, s, false)?;
                    }
                    _ => {
                        if lane != 0 {
                            self.xxi(Code::Pshufd_xmm_xmmm128_imm8, s, s, 0xEE)?;
                        }
                        self.xmm_to_gpr(r, s, true)?;
                    }
                }
                self.free_xmm(s);
                if signed {
                    let ins = if size == 1 {
                        Instruction::with2(Code::Movsx_r32_rm8, r32, R8[r as usize])
                    } else {
                        Instruction::with2(Code::Movsx_r32_rm16, r32, R16[r as usize])
                    };
                    self.cx.e.ins(ins)?;
                }
            }
        }
        let ty = if size == 8 { Ty::I64 } else { Ty::I32 };
        self.push(ty, Loc::Gpr(r));
        Ok(())
    }

    /// Pops a scalar and a vector; pushes the vector with lane `lane` (`size` bytes) replaced.
    pub(super) fn replace_lane_int(&mut self, size: u32, lane: u8) -> Result<(), CompileError> {
        let r = self.pop_gpr()?;
        let v = self.pop();
        let (r32, r64, lane32) = (R32[r as usize], R64[r as usize], u32::from(lane));
        let sse41 = self.cx.opts.cpu.sse41;
        let in_reg = matches!(v.loc, Loc::Xmm(_));
        let d = match size {
            2 if in_reg => Some((Code::Pinsrw_xmm_r32m16_imm8, r32)),
            1 if in_reg && sse41 => Some((Code::Pinsrb_xmm_r32m8_imm8, r32)),
            4 if in_reg && sse41 => Some((Code::Pinsrd_xmm_rm32_imm8, r32)),
            8 if in_reg && sse41 => Some((Code::Pinsrq_xmm_rm64_imm8, r64)),
            _ => None,
        };
        if let Some((code, src)) = d {
            let s = self.xmm_of(v)?;
            self.cx.e.ins(Instruction::with3(code, x(s), src, lane32))?;
            self.free_gpr(r);
            self.push_v(s);
            return Ok(());
        }
        if in_reg && size == 8 {
            let s = self.xmm_of(v)?;
            self.gpr_to_xmm(X0, r, true)?;
            let code = if lane == 0 {
                Code::Movsd_xmm_xmmm64
            } else {
                Code::Punpcklqdq_xmm_xmmm128
            };
            self.xx(code, s, X0)?;
            self.free_gpr(r);
            self.push_v(s);
            return Ok(());
        }
        // Through the vector's home slot.
        let slot = self.vector_in_slot(v)?;
        let m = at(slot, lane32 * size);
        let ins = match size {
            1 => Instruction::with2(Code::Mov_rm8_r8, m, R8[r as usize]),
            2 => Instruction::with2(Code::Mov_rm16_r16, m, R16[r as usize]),
            4 => Instruction::with2(Code::Mov_rm32_r32, m, r32),
            _ => Instruction::with2(Code::Mov_rm64_r64, m, r64),
        };
        self.cx.e.ins(ins)?;
        self.free_gpr(r);
        let d = self.alloc_xmm()?;
        self.xmm_load_ty(d, slot, Ty::V128)?;
        self.push_v(d);
        Ok(())
    }

    fn replace_lane_f32(&mut self, lane: u8) -> Result<(), CompileError> {
        let s = self.pop();
        let s = self.xmm_of(s)?;
        let v = self.pop();
        if self.cx.opts.cpu.sse41 || lane == 0 {
            let d = self.xmm_of(v)?;
            if lane == 0 {
                self.xx(Code::Movss_xmm_xmmm32, d, s)?;
            } else {
                self.xxi(Code::Insertps_xmm_xmmm32_imm8, d, s, u32::from(lane) << 4)?;
            }
            self.free_xmm(s);
            self.push_v(d);
            return Ok(());
        }
        let slot = self.vector_in_slot(v)?;
        self.xmm_store(at(slot, 4 * u32::from(lane)), s, false)?;
        self.free_xmm(s);
        let d = self.alloc_xmm()?;
        self.xmm_load_ty(d, slot, Ty::V128)?;
        self.push_v(d);
        Ok(())
    }
}
