//! f32/f64 operators with SSE2. Arithmetic and `sqrt` are IEEE-exact in hardware; `min`/`max`
//! handle NaN and signed zeros explicitly; `abs`/`neg`/`copysign` are bit operations (NaN
//! payloads untouched); rounding (`ceil`, `floor`, `trunc`, `nearest`), float-to-int
//! conversions and u64-to-float go through runtime helpers so they need no SSE4.1 and keep
//! the exact trapping rules in one audited place.

use iced_x86::{Code, Instruction, Register};
use wasmparser::Operator;

use super::{Func, Loc};
use crate::emit::{Cond, R8, R32, R64, XMM, reg};
use crate::module::Ty;
use crate::{CompileError, Libcall};

#[derive(Clone, Copy, PartialEq, Eq)]
enum FBin {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    Copysign,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FCmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FUn {
    Abs,
    Neg,
    Sqrt,
    Round(Libcall),
}

enum FloatOp {
    Const(Ty, u64),
    Bin(Ty, FBin),
    Cmp(Ty, FCmp),
    Un(Ty, FUn),
    /// `to`, `from` (an integer type), signed.
    Convert(Ty, Ty, bool),
    /// `to` (integer), `from` (float), signed, saturating.
    Trunc(Ty, Ty, bool, bool),
    Demote,
    Promote,
    Reinterpret(Ty, Ty),
}

fn classify(op: &Operator<'_>) -> Option<FloatOp> {
    use FloatOp::*;
    use Ty::{F32, F64, I32, I64};
    Some(match *op {
        Operator::F32Const { value } => Const(F32, u64::from(value.bits())),
        Operator::F64Const { value } => Const(F64, value.bits()),
        Operator::F32Add => Bin(F32, FBin::Add),
        Operator::F32Sub => Bin(F32, FBin::Sub),
        Operator::F32Mul => Bin(F32, FBin::Mul),
        Operator::F32Div => Bin(F32, FBin::Div),
        Operator::F32Min => Bin(F32, FBin::Min),
        Operator::F32Max => Bin(F32, FBin::Max),
        Operator::F32Copysign => Bin(F32, FBin::Copysign),
        Operator::F64Add => Bin(F64, FBin::Add),
        Operator::F64Sub => Bin(F64, FBin::Sub),
        Operator::F64Mul => Bin(F64, FBin::Mul),
        Operator::F64Div => Bin(F64, FBin::Div),
        Operator::F64Min => Bin(F64, FBin::Min),
        Operator::F64Max => Bin(F64, FBin::Max),
        Operator::F64Copysign => Bin(F64, FBin::Copysign),
        Operator::F32Eq => Cmp(F32, FCmp::Eq),
        Operator::F32Ne => Cmp(F32, FCmp::Ne),
        Operator::F32Lt => Cmp(F32, FCmp::Lt),
        Operator::F32Gt => Cmp(F32, FCmp::Gt),
        Operator::F32Le => Cmp(F32, FCmp::Le),
        Operator::F32Ge => Cmp(F32, FCmp::Ge),
        Operator::F64Eq => Cmp(F64, FCmp::Eq),
        Operator::F64Ne => Cmp(F64, FCmp::Ne),
        Operator::F64Lt => Cmp(F64, FCmp::Lt),
        Operator::F64Gt => Cmp(F64, FCmp::Gt),
        Operator::F64Le => Cmp(F64, FCmp::Le),
        Operator::F64Ge => Cmp(F64, FCmp::Ge),
        Operator::F32Abs => Un(F32, FUn::Abs),
        Operator::F32Neg => Un(F32, FUn::Neg),
        Operator::F32Sqrt => Un(F32, FUn::Sqrt),
        Operator::F32Ceil => Un(F32, FUn::Round(Libcall::F32Ceil)),
        Operator::F32Floor => Un(F32, FUn::Round(Libcall::F32Floor)),
        Operator::F32Trunc => Un(F32, FUn::Round(Libcall::F32Trunc)),
        Operator::F32Nearest => Un(F32, FUn::Round(Libcall::F32Nearest)),
        Operator::F64Abs => Un(F64, FUn::Abs),
        Operator::F64Neg => Un(F64, FUn::Neg),
        Operator::F64Sqrt => Un(F64, FUn::Sqrt),
        Operator::F64Ceil => Un(F64, FUn::Round(Libcall::F64Ceil)),
        Operator::F64Floor => Un(F64, FUn::Round(Libcall::F64Floor)),
        Operator::F64Trunc => Un(F64, FUn::Round(Libcall::F64Trunc)),
        Operator::F64Nearest => Un(F64, FUn::Round(Libcall::F64Nearest)),
        Operator::F32ConvertI32S => Convert(F32, I32, true),
        Operator::F32ConvertI32U => Convert(F32, I32, false),
        Operator::F32ConvertI64S => Convert(F32, I64, true),
        Operator::F32ConvertI64U => Convert(F32, I64, false),
        Operator::F64ConvertI32S => Convert(F64, I32, true),
        Operator::F64ConvertI32U => Convert(F64, I32, false),
        Operator::F64ConvertI64S => Convert(F64, I64, true),
        Operator::F64ConvertI64U => Convert(F64, I64, false),
        Operator::I32TruncF32S => Trunc(I32, F32, true, false),
        Operator::I32TruncF32U => Trunc(I32, F32, false, false),
        Operator::I32TruncF64S => Trunc(I32, F64, true, false),
        Operator::I32TruncF64U => Trunc(I32, F64, false, false),
        Operator::I64TruncF32S => Trunc(I64, F32, true, false),
        Operator::I64TruncF32U => Trunc(I64, F32, false, false),
        Operator::I64TruncF64S => Trunc(I64, F64, true, false),
        Operator::I64TruncF64U => Trunc(I64, F64, false, false),
        Operator::I32TruncSatF32S => Trunc(I32, F32, true, true),
        Operator::I32TruncSatF32U => Trunc(I32, F32, false, true),
        Operator::I32TruncSatF64S => Trunc(I32, F64, true, true),
        Operator::I32TruncSatF64U => Trunc(I32, F64, false, true),
        Operator::I64TruncSatF32S => Trunc(I64, F32, true, true),
        Operator::I64TruncSatF32U => Trunc(I64, F32, false, true),
        Operator::I64TruncSatF64S => Trunc(I64, F64, true, true),
        Operator::I64TruncSatF64U => Trunc(I64, F64, false, true),
        Operator::F32DemoteF64 => Demote,
        Operator::F64PromoteF32 => Promote,
        Operator::I32ReinterpretF32 => Reinterpret(I32, F32),
        Operator::I64ReinterpretF64 => Reinterpret(I64, F64),
        Operator::F32ReinterpretI32 => Reinterpret(F32, I32),
        Operator::F64ReinterpretI64 => Reinterpret(F64, I64),
        _ => return None,
    })
}

/// Trunc libcall index: `TruncBase + (sat << 3 | from_f64 << 2 | to_i64 << 1 | unsigned)`.
pub(crate) fn trunc_index(to_i64: bool, from_f64: bool, signed: bool, sat: bool) -> u32 {
    Libcall::I32TruncF32S as u32
        + (u32::from(sat) << 3
            | u32::from(from_f64) << 2
            | u32::from(to_i64) << 1
            | u32::from(!signed))
}

impl Func<'_, '_> {
    pub(super) fn float(
        &mut self,
        op: &Operator<'_>,
        next: Option<&Operator<'_>>,
    ) -> Result<bool, CompileError> {
        let Some(k) = classify(op) else {
            return Ok(false);
        };
        let fuse = self.flags_consumer(next);
        match k {
            FloatOp::Const(ty, bits) => self.push_const(ty, bits)?,
            FloatOp::Bin(ty, op) => self.float_bin(ty, op, next)?,
            FloatOp::Cmp(ty, op) => self.float_cmp(ty, op, fuse)?,
            FloatOp::Un(ty, FUn::Round(which)) if self.cx.opts.cpu.sse41 => {
                // roundss/sd: imm 0 nearest-even, 1 down, 2 up, 3 toward zero; bit 3 keeps the
                // inexact exception quiet. A NaN comes out quiet, as wasm allows.
                let mode: u32 = match which {
                    Libcall::F32Nearest | Libcall::F64Nearest => 0,
                    Libcall::F32Floor | Libcall::F64Floor => 1,
                    Libcall::F32Ceil | Libcall::F64Ceil => 2,
                    _ => 3,
                };
                let a = self.pop();
                let x = self.xmm_of(a)?;
                let code = if ty.is_wide() {
                    Code::Roundsd_xmm_xmmm64_imm8
                } else {
                    Code::Roundss_xmm_xmmm32_imm8
                };
                self.cx.e.ins(Instruction::with3(
                    code,
                    XMM[x as usize],
                    XMM[x as usize],
                    mode | 8,
                ))?;
                self.push(ty, Loc::Xmm(x));
            }
            FloatOp::Un(ty, FUn::Round(which)) => self.libcall(which, 1, Some(ty), false)?,
            FloatOp::Un(ty, op) => {
                let a = self.pop();
                let w = ty.is_wide();
                let x = self.xmm_of(a)?;
                if op == FUn::Sqrt {
                    let code = if w {
                        Code::Sqrtsd_xmm_xmmm64
                    } else {
                        Code::Sqrtss_xmm_xmmm32
                    };
                    self.cx.e.xx(code, x, x)?;
                } else {
                    self.xmm_to_gpr(reg::RAX, x, w)?;
                    let code = match (op == FUn::Abs, w) {
                        (true, false) => Code::Btr_rm32_imm8,
                        (true, true) => Code::Btr_rm64_imm8,
                        (false, false) => Code::Btc_rm32_imm8,
                        (false, true) => Code::Btc_rm64_imm8,
                    };
                    let (r, bit) = if w { (R64[0], 63u32) } else { (R32[0], 31u32) };
                    self.cx.e.ins(Instruction::with2(code, r, bit))?;
                    self.gpr_to_xmm(x, reg::RAX, w)?;
                }
                self.push(ty, Loc::Xmm(x));
            }
            FloatOp::Convert(to, from, signed) => {
                if from == Ty::I64 && !signed {
                    let which = if to == Ty::F32 {
                        Libcall::F32ConvertU64
                    } else {
                        Libcall::F64ConvertU64
                    };
                    self.libcall(which, 1, Some(to), false)?;
                    return Ok(true);
                }
                let a = self.pop();
                let r = self.gpr_of(a)?;
                let x = self.alloc_xmm()?;
                let from64 = from == Ty::I64 || !signed;
                self.cx.e.xx(Code::Xorps_xmm_xmmm128, x, x)?;
                let code = match (to, from64) {
                    (Ty::F32, false) => Code::Cvtsi2ss_xmm_rm32,
                    (Ty::F32, true) => Code::Cvtsi2ss_xmm_rm64,
                    (_, false) => Code::Cvtsi2sd_xmm_rm32,
                    (_, true) => Code::Cvtsi2sd_xmm_rm64,
                };
                let src = if from64 {
                    R64[r as usize]
                } else {
                    R32[r as usize]
                };
                self.cx
                    .e
                    .ins(Instruction::with2(code, XMM[x as usize], src))?;
                self.free_gpr(r);
                self.push(to, Loc::Xmm(x));
            }
            FloatOp::Trunc(to, from, signed, sat) => {
                let index = trunc_index(to == Ty::I64, from == Ty::F64, signed, sat);
                let which = libcall_from_index(index);
                self.libcall(which, 1, Some(to), !sat)?;
            }
            FloatOp::Demote | FloatOp::Promote => {
                let demote = matches!(k, FloatOp::Demote);
                let a = self.pop();
                let x = self.xmm_of(a)?;
                let code = if demote {
                    Code::Cvtsd2ss_xmm_xmmm64
                } else {
                    Code::Cvtss2sd_xmm_xmmm32
                };
                self.cx.e.xx(code, x, x)?;
                self.push(if demote { Ty::F32 } else { Ty::F64 }, Loc::Xmm(x));
            }
            FloatOp::Reinterpret(to, from) => {
                let a = self.pop();
                if let Loc::Const(bits) = a.loc {
                    self.push_const(to, bits)?;
                    return Ok(true);
                }
                let w = to.is_wide();
                if to.is_float() {
                    let r = self.gpr_of(a)?;
                    let x = self.alloc_xmm()?;
                    self.gpr_to_xmm(x, r, w)?;
                    self.free_gpr(r);
                    self.push(to, Loc::Xmm(x));
                } else {
                    debug_assert!(from.is_float());
                    let x = self.xmm_of(a)?;
                    let r = self.alloc_gpr()?;
                    self.xmm_to_gpr(r, x, w)?;
                    self.free_xmm(x);
                    self.push(to, Loc::Gpr(r));
                }
            }
        }
        Ok(true)
    }

    fn float_bin(
        &mut self,
        ty: Ty,
        op: FBin,
        next: Option<&Operator<'_>>,
    ) -> Result<(), CompileError> {
        let b = self.pop();
        let a = self.pop();
        let w = ty.is_wide();
        // Into the register of a pinned local set next (`lower::fuse`), unless that would
        // overwrite `b` before it is read.
        let target = self
            .set_target(next, ty)
            .filter(|&t| a.loc == Loc::Xmm(t) || b.loc != Loc::Xmm(t));
        let xa = if let Some(t) = target {
            self.materialize_aliases(t, true)?;
            self.move_into(t, a)?;
            t
        } else {
            self.xmm_of(a)?
        };
        let xb = self.xmm_ro(b)?;
        let pick = |s: Code, d: Code| if w { d } else { s };
        match op {
            FBin::Add => {
                self.cx
                    .e
                    .xx(pick(Code::Addss_xmm_xmmm32, Code::Addsd_xmm_xmmm64), xa, xb)?
            }
            FBin::Sub => {
                self.cx
                    .e
                    .xx(pick(Code::Subss_xmm_xmmm32, Code::Subsd_xmm_xmmm64), xa, xb)?
            }
            FBin::Mul => {
                self.cx
                    .e
                    .xx(pick(Code::Mulss_xmm_xmmm32, Code::Mulsd_xmm_xmmm64), xa, xb)?
            }
            FBin::Div => {
                self.cx
                    .e
                    .xx(pick(Code::Divss_xmm_xmmm32, Code::Divsd_xmm_xmmm64), xa, xb)?
            }
            FBin::Min | FBin::Max => {
                // Ordered and different: minss/maxss. Equal (covers +0/-0): or/and the bits.
                // Unordered: add, which yields a quiet NaN from the inputs.
                let e = &mut self.cx.e;
                let (mut nan, mut differ, mut done) = (e.label(), e.label(), e.label());
                e.xx(
                    pick(Code::Ucomiss_xmm_xmmm32, Code::Ucomisd_xmm_xmmm64),
                    xa,
                    xb,
                )?;
                e.jcc(Cond::P, nan)?;
                e.jcc(Cond::Ne, differ)?;
                let bits = if op == FBin::Min {
                    pick(Code::Orps_xmm_xmmm128, Code::Orpd_xmm_xmmm128)
                } else {
                    pick(Code::Andps_xmm_xmmm128, Code::Andpd_xmm_xmmm128)
                };
                e.xx(bits, xa, xb)?;
                e.jmp(done)?;
                e.bind(&mut nan)?;
                e.xx(pick(Code::Addss_xmm_xmmm32, Code::Addsd_xmm_xmmm64), xa, xb)?;
                e.jmp(done)?;
                e.bind(&mut differ)?;
                let code = if op == FBin::Min {
                    pick(Code::Minss_xmm_xmmm32, Code::Minsd_xmm_xmmm64)
                } else {
                    pick(Code::Maxss_xmm_xmmm32, Code::Maxsd_xmm_xmmm64)
                };
                e.xx(code, xa, xb)?;
                e.bind(&mut done)?;
            }
            FBin::Copysign => {
                self.xmm_to_gpr(reg::RAX, xa, w)?;
                self.xmm_to_gpr(reg::RCX, xb, w)?;
                let e = &mut self.cx.e;
                if w {
                    e.mov_imm(reg::RDX, true, i64::MAX as u64)?;
                    e.rr(
                        (Code::And_r32_rm32, Code::And_r64_rm64),
                        true,
                        reg::RAX,
                        reg::RDX,
                    )?;
                    e.ins(Instruction::with1(Code::Not_rm64, R64[2]))?;
                    e.rr(
                        (Code::And_r32_rm32, Code::And_r64_rm64),
                        true,
                        reg::RCX,
                        reg::RDX,
                    )?;
                } else {
                    e.ins(Instruction::with2(
                        Code::And_EAX_imm32,
                        Register::EAX,
                        0x7FFF_FFFFu32,
                    ))?;
                    e.ins(Instruction::with2(
                        Code::And_rm32_imm32,
                        R32[1],
                        0x8000_0000u32,
                    ))?;
                }
                e.rr(
                    (Code::Or_r32_rm32, Code::Or_r64_rm64),
                    w,
                    reg::RAX,
                    reg::RCX,
                )?;
                self.gpr_to_xmm(xa, reg::RAX, w)?;
            }
        }
        self.free_xmm(xb);
        self.push(ty, Loc::Xmm(xa));
        Ok(())
    }

    fn float_cmp(&mut self, ty: Ty, op: FCmp, fuse: bool) -> Result<(), CompileError> {
        let b = self.pop();
        let a = self.pop();
        let (xa, xb) = (self.xmm_ro(a)?, self.xmm_ro(b)?);
        let ucomi = if ty.is_wide() {
            Code::Ucomisd_xmm_xmmm64
        } else {
            Code::Ucomiss_xmm_xmmm32
        };
        // lt/le compare reversed so that "above" excludes unordered (CF=1).
        let (first, second, cond) = match op {
            FCmp::Lt => (xb, xa, Cond::A),
            FCmp::Le => (xb, xa, Cond::Ae),
            FCmp::Gt => (xa, xb, Cond::A),
            FCmp::Ge => (xa, xb, Cond::Ae),
            FCmp::Eq => (xa, xb, Cond::E),
            FCmp::Ne => (xa, xb, Cond::Ne),
        };
        self.cx.e.xx(ucomi, first, second)?;
        self.free_xmm(xa);
        self.free_xmm(xb);
        let r = self.alloc_gpr()?;
        match op {
            FCmp::Eq | FCmp::Ne => {
                // Equal needs ZF=1 and PF=0; not-equal is its complement.
                let (c, p, and_or) = if op == FCmp::Eq {
                    (Code::Sete_rm8, Code::Setnp_rm8, Code::And_r8_rm8)
                } else {
                    (Code::Setne_rm8, Code::Setp_rm8, Code::Or_r8_rm8)
                };
                let e = &mut self.cx.e;
                e.ins(Instruction::with1(c, R8[r as usize]))?;
                e.ins(Instruction::with1(p, Register::AL))?;
                e.ins(Instruction::with2(and_or, R8[r as usize], Register::AL))?;
                e.ins(Instruction::with2(
                    Code::Movzx_r32_rm8,
                    R32[r as usize],
                    R8[r as usize],
                ))?;
                self.push(Ty::I32, Loc::Gpr(r));
                Ok(())
            }
            _ => self.finish_cmp(r, cond, fuse),
        }
    }
}

/// The libcall with raw index `index` among the conversion helpers.
fn libcall_from_index(index: u32) -> Libcall {
    crate::runtime::libcalls::LIBCALL_BY_INDEX[index as usize]
}
