//! Integer operators: constants, arithmetic, division with exact traps, shifts, comparisons
//! (fused into a following branch by the peephole pass), bit counts, width conversions and
//! sign extension. i32 values in registers are always zero-extended.

use iced_x86::{Code, Instruction, MemoryOperand};
use wasmparser::Operator;

use super::{Func, Loc, Val};
use crate::emit::{Cond, R32, R64, reg};
use crate::module::Ty;
use crate::opt::fold::{self, Bin, Cmp};
use crate::vmctx::TrapCode;
use crate::{CompileError, Libcall};

/// A right-hand operand.
#[derive(Clone, Copy)]
enum Src {
    Reg(u8),
    Imm(i32),
    Mem(MemoryOperand),
}

enum IntOp {
    Const(Ty, u64),
    Bin(Ty, Bin),
    Cmp(Ty, Cmp),
    Eqz(Ty),
    Clz(Ty),
    Ctz(Ty),
    Popcnt(Ty),
    /// Sign-extend the low `bits` bits (`i32.extend8_s`, `i64.extend32_s`, ...).
    Extend(Ty, u8),
    Wrap,
    ExtendI32(bool),
}

fn classify(op: &Operator<'_>) -> Option<IntOp> {
    use IntOp::*;
    use Ty::{I32, I64};
    Some(match *op {
        Operator::I32Const { value } => Const(I32, u64::from(value as u32)),
        Operator::I64Const { value } => Const(I64, value as u64),
        Operator::I32Add => Bin(I32, self::Bin::Add),
        Operator::I32Sub => Bin(I32, self::Bin::Sub),
        Operator::I32Mul => Bin(I32, self::Bin::Mul),
        Operator::I32And => Bin(I32, self::Bin::And),
        Operator::I32Or => Bin(I32, self::Bin::Or),
        Operator::I32Xor => Bin(I32, self::Bin::Xor),
        Operator::I32Shl => Bin(I32, self::Bin::Shl),
        Operator::I32ShrS => Bin(I32, self::Bin::ShrS),
        Operator::I32ShrU => Bin(I32, self::Bin::ShrU),
        Operator::I32Rotl => Bin(I32, self::Bin::Rotl),
        Operator::I32Rotr => Bin(I32, self::Bin::Rotr),
        Operator::I32DivS => Bin(I32, self::Bin::DivS),
        Operator::I32DivU => Bin(I32, self::Bin::DivU),
        Operator::I32RemS => Bin(I32, self::Bin::RemS),
        Operator::I32RemU => Bin(I32, self::Bin::RemU),
        Operator::I64Add => Bin(I64, self::Bin::Add),
        Operator::I64Sub => Bin(I64, self::Bin::Sub),
        Operator::I64Mul => Bin(I64, self::Bin::Mul),
        Operator::I64And => Bin(I64, self::Bin::And),
        Operator::I64Or => Bin(I64, self::Bin::Or),
        Operator::I64Xor => Bin(I64, self::Bin::Xor),
        Operator::I64Shl => Bin(I64, self::Bin::Shl),
        Operator::I64ShrS => Bin(I64, self::Bin::ShrS),
        Operator::I64ShrU => Bin(I64, self::Bin::ShrU),
        Operator::I64Rotl => Bin(I64, self::Bin::Rotl),
        Operator::I64Rotr => Bin(I64, self::Bin::Rotr),
        Operator::I64DivS => Bin(I64, self::Bin::DivS),
        Operator::I64DivU => Bin(I64, self::Bin::DivU),
        Operator::I64RemS => Bin(I64, self::Bin::RemS),
        Operator::I64RemU => Bin(I64, self::Bin::RemU),
        Operator::I32Eq => Cmp(I32, self::Cmp::Eq),
        Operator::I32Ne => Cmp(I32, self::Cmp::Ne),
        Operator::I32LtS => Cmp(I32, self::Cmp::LtS),
        Operator::I32LtU => Cmp(I32, self::Cmp::LtU),
        Operator::I32GtS => Cmp(I32, self::Cmp::GtS),
        Operator::I32GtU => Cmp(I32, self::Cmp::GtU),
        Operator::I32LeS => Cmp(I32, self::Cmp::LeS),
        Operator::I32LeU => Cmp(I32, self::Cmp::LeU),
        Operator::I32GeS => Cmp(I32, self::Cmp::GeS),
        Operator::I32GeU => Cmp(I32, self::Cmp::GeU),
        Operator::I64Eq => Cmp(I64, self::Cmp::Eq),
        Operator::I64Ne => Cmp(I64, self::Cmp::Ne),
        Operator::I64LtS => Cmp(I64, self::Cmp::LtS),
        Operator::I64LtU => Cmp(I64, self::Cmp::LtU),
        Operator::I64GtS => Cmp(I64, self::Cmp::GtS),
        Operator::I64GtU => Cmp(I64, self::Cmp::GtU),
        Operator::I64LeS => Cmp(I64, self::Cmp::LeS),
        Operator::I64LeU => Cmp(I64, self::Cmp::LeU),
        Operator::I64GeS => Cmp(I64, self::Cmp::GeS),
        Operator::I64GeU => Cmp(I64, self::Cmp::GeU),
        Operator::I32Eqz => Eqz(I32),
        Operator::I64Eqz => Eqz(I64),
        Operator::I32Clz => Clz(I32),
        Operator::I64Clz => Clz(I64),
        Operator::I32Ctz => Ctz(I32),
        Operator::I64Ctz => Ctz(I64),
        Operator::I32Popcnt => Popcnt(I32),
        Operator::I64Popcnt => Popcnt(I64),
        Operator::I32Extend8S => Extend(I32, 8),
        Operator::I32Extend16S => Extend(I32, 16),
        Operator::I64Extend8S => Extend(I64, 8),
        Operator::I64Extend16S => Extend(I64, 16),
        Operator::I64Extend32S => Extend(I64, 32),
        Operator::I32WrapI64 => Wrap,
        Operator::I64ExtendI32S => ExtendI32(true),
        Operator::I64ExtendI32U => ExtendI32(false),
        _ => return None,
    })
}

/// The compare with its operands swapped (`a < b` is `b > a`).
fn swapped(op: Cmp) -> Cmp {
    match op {
        Cmp::Eq => Cmp::Eq,
        Cmp::Ne => Cmp::Ne,
        Cmp::LtS => Cmp::GtS,
        Cmp::LtU => Cmp::GtU,
        Cmp::GtS => Cmp::LtS,
        Cmp::GtU => Cmp::LtU,
        Cmp::LeS => Cmp::GeS,
        Cmp::LeU => Cmp::GeU,
        Cmp::GeS => Cmp::LeS,
        Cmp::GeU => Cmp::LeU,
    }
}

fn cond_of(op: Cmp) -> Cond {
    match op {
        Cmp::Eq => Cond::E,
        Cmp::Ne => Cond::Ne,
        Cmp::LtS => Cond::L,
        Cmp::LtU => Cond::B,
        Cmp::GtS => Cond::G,
        Cmp::GtU => Cond::A,
        Cmp::LeS => Cond::Le,
        Cmp::LeU => Cond::Be,
        Cmp::GeS => Cond::Ge,
        Cmp::GeU => Cond::Ae,
    }
}

/// `(r32, rm32)`, `(r64, rm64)`, `(rm32, imm32)`, `(rm64, imm32)` codes of an ALU op.
fn alu_codes(op: Bin) -> [Code; 4] {
    match op {
        Bin::Add => [
            Code::Add_r32_rm32,
            Code::Add_r64_rm64,
            Code::Add_rm32_imm32,
            Code::Add_rm64_imm32,
        ],
        Bin::Sub => [
            Code::Sub_r32_rm32,
            Code::Sub_r64_rm64,
            Code::Sub_rm32_imm32,
            Code::Sub_rm64_imm32,
        ],
        Bin::And => [
            Code::And_r32_rm32,
            Code::And_r64_rm64,
            Code::And_rm32_imm32,
            Code::And_rm64_imm32,
        ],
        Bin::Or => [
            Code::Or_r32_rm32,
            Code::Or_r64_rm64,
            Code::Or_rm32_imm32,
            Code::Or_rm64_imm32,
        ],
        Bin::Xor => [
            Code::Xor_r32_rm32,
            Code::Xor_r64_rm64,
            Code::Xor_rm32_imm32,
            Code::Xor_rm64_imm32,
        ],
        _ => [
            Code::Cmp_r32_rm32,
            Code::Cmp_r64_rm64,
            Code::Cmp_rm32_imm32,
            Code::Cmp_rm64_imm32,
        ],
    }
}

/// `(rm32_CL, rm64_CL, rm32_imm8, rm64_imm8)` codes of a shift.
fn shift_codes(op: Bin) -> [Code; 4] {
    match op {
        Bin::Shl => [
            Code::Shl_rm32_CL,
            Code::Shl_rm64_CL,
            Code::Shl_rm32_imm8,
            Code::Shl_rm64_imm8,
        ],
        Bin::ShrS => [
            Code::Sar_rm32_CL,
            Code::Sar_rm64_CL,
            Code::Sar_rm32_imm8,
            Code::Sar_rm64_imm8,
        ],
        Bin::ShrU => [
            Code::Shr_rm32_CL,
            Code::Shr_rm64_CL,
            Code::Shr_rm32_imm8,
            Code::Shr_rm64_imm8,
        ],
        Bin::Rotl => [
            Code::Rol_rm32_CL,
            Code::Rol_rm64_CL,
            Code::Rol_rm32_imm8,
            Code::Rol_rm64_imm8,
        ],
        _ => [
            Code::Ror_rm32_CL,
            Code::Ror_rm64_CL,
            Code::Ror_rm32_imm8,
            Code::Ror_rm64_imm8,
        ],
    }
}

impl Func<'_, '_> {
    pub(super) fn int(
        &mut self,
        op: &Operator<'_>,
        next: Option<&Operator<'_>>,
    ) -> Result<bool, CompileError> {
        let Some(k) = classify(op) else {
            return Ok(false);
        };
        let fuse = self.flags_consumer(next);
        match k {
            IntOp::Const(ty, bits) => self.push_const(ty, bits)?,
            IntOp::Bin(ty, op) => self.int_bin(ty, op, next)?,
            IntOp::Cmp(ty, op) => self.int_cmp(ty, op, fuse)?,
            IntOp::Eqz(_) if self.pending.is_some() => self.eqz_flags(fuse)?,
            IntOp::Eqz(ty) => {
                let a = self.pop();
                if let (Loc::Const(c), true) = (a.loc, self.cx.opts.const_fold) {
                    return self.push_const(Ty::I32, u64::from(c == 0)).map(|()| true);
                }
                let r = self.gpr_ro(a)?;
                self.cx.e.rr(
                    (Code::Test_rm32_r32, Code::Test_rm64_r64),
                    ty.is_wide(),
                    r,
                    r,
                )?;
                self.finish_cmp(r, Cond::E, fuse)?;
            }
            IntOp::Clz(ty) | IntOp::Ctz(ty) => {
                let clz = matches!(k, IntOp::Clz(_));
                let a = self.pop();
                let r = self.gpr_of(a)?;
                let w = ty.is_wide();
                let bits: u64 = if w { 64 } else { 32 };
                let cpu = self.cx.opts.cpu;
                let e = &mut self.cx.e;
                if clz && cpu.lzcnt {
                    // lzcnt gives the width for zero, as wasm wants.
                    e.rr((Code::Lzcnt_r32_rm32, Code::Lzcnt_r64_rm64), w, r, r)?;
                } else if !clz && cpu.bmi1 {
                    e.rr((Code::Tzcnt_r32_rm32, Code::Tzcnt_r64_rm64), w, r, r)?;
                } else if clz {
                    // bsr gives the index of the highest set bit; -1 stands in for "none".
                    e.mov_imm(reg::RCX, true, u64::MAX)?;
                    e.rr((Code::Bsr_r32_rm32, Code::Bsr_r64_rm64), w, r, r)?;
                    e.rr(Cond::E.cmov(), w, r, reg::RCX)?;
                    e.mov_imm(reg::RCX, false, bits - 1)?;
                    e.rr((Code::Sub_r32_rm32, Code::Sub_r64_rm64), w, reg::RCX, r)?;
                    e.mov_rr(r, reg::RCX, w)?;
                } else {
                    e.mov_imm(reg::RCX, false, bits)?;
                    e.rr((Code::Bsf_r32_rm32, Code::Bsf_r64_rm64), w, r, r)?;
                    e.rr(Cond::E.cmov(), w, r, reg::RCX)?;
                }
                self.push(ty, Loc::Gpr(r));
            }
            IntOp::Popcnt(ty) if self.cx.opts.cpu.popcnt => {
                let a = self.pop();
                let r = self.gpr_of(a)?;
                self.cx.e.rr(
                    (Code::Popcnt_r32_rm32, Code::Popcnt_r64_rm64),
                    ty.is_wide(),
                    r,
                    r,
                )?;
                self.push(ty, Loc::Gpr(r));
            }
            IntOp::Popcnt(ty) => {
                let which = if ty.is_wide() {
                    Libcall::Popcnt64
                } else {
                    Libcall::Popcnt32
                };
                self.libcall(which, 1, Some(ty), false)?;
            }
            IntOp::Extend(ty, bits) => {
                let a = self.pop();
                let r = self.gpr_of(a)?;
                let (r32, r64) = (R32[r as usize], R64[r as usize]);
                let ins = match (ty, bits) {
                    (Ty::I32, 8) => {
                        Instruction::with2(Code::Movsx_r32_rm8, r32, crate::emit::R8[r as usize])
                    }
                    (Ty::I32, _) => {
                        Instruction::with2(Code::Movsx_r32_rm16, r32, crate::emit::R16[r as usize])
                    }
                    (_, 8) => {
                        Instruction::with2(Code::Movsx_r64_rm8, r64, crate::emit::R8[r as usize])
                    }
                    (_, 16) => {
                        Instruction::with2(Code::Movsx_r64_rm16, r64, crate::emit::R16[r as usize])
                    }
                    _ => Instruction::with2(Code::Movsxd_r64_rm32, r64, r32),
                };
                self.cx.e.ins(ins)?;
                self.push(ty, Loc::Gpr(r));
            }
            IntOp::Wrap => {
                let a = self.pop();
                if let (Loc::Const(c), true) = (a.loc, self.cx.opts.const_fold) {
                    self.push_const(Ty::I32, u64::from(c as u32))?;
                    return Ok(true);
                }
                let r = self.gpr_of(a)?;
                self.cx.e.mov_rr(r, r, false)?;
                self.push(Ty::I32, Loc::Gpr(r));
            }
            IntOp::ExtendI32(signed) => {
                let a = self.pop();
                if let (Loc::Const(c), true) = (a.loc, self.cx.opts.const_fold) {
                    let v = if signed {
                        i64::from(c as u32 as i32) as u64
                    } else {
                        u64::from(c as u32)
                    };
                    self.push_const(Ty::I64, v)?;
                    return Ok(true);
                }
                let r = self.gpr_of(a)?;
                if signed {
                    self.cx.e.ins(Instruction::with2(
                        Code::Movsxd_r64_rm32,
                        R64[r as usize],
                        R32[r as usize],
                    ))?;
                }
                self.push(Ty::I64, Loc::Gpr(r));
            }
        }
        Ok(true)
    }

    fn src_of(&mut self, v: Val) -> Result<Src, CompileError> {
        Ok(match v.loc {
            Loc::Gpr(r) => Src::Reg(r),
            Loc::Const(c)
                if self.cx.opts.const_fold
                    && (!v.ty.is_wide() || c as i64 == i64::from(c as i32)) =>
            {
                Src::Imm(c as i32)
            }
            Loc::Mem if self.cx.opts.peephole => Src::Mem(self.slot(v.depth)),
            _ => Src::Reg(self.gpr_of(v)?),
        })
    }

    fn release_src(&mut self, s: &Src) {
        if let Src::Reg(r) = *s {
            self.free_gpr(r);
        }
    }

    fn alu(&mut self, codes: [Code; 4], wide: bool, d: u8, s: &Src) -> Result<(), CompileError> {
        let (rd32, rd64) = (R32[d as usize], R64[d as usize]);
        let ins = match (*s, wide) {
            (Src::Reg(r), false) => Instruction::with2(codes[0], rd32, R32[r as usize]),
            (Src::Reg(r), true) => Instruction::with2(codes[1], rd64, R64[r as usize]),
            (Src::Mem(m), false) => Instruction::with2(codes[0], rd32, m),
            (Src::Mem(m), true) => Instruction::with2(codes[1], rd64, m),
            (Src::Imm(i), false) => Instruction::with2(codes[2], rd32, i),
            (Src::Imm(i), true) => Instruction::with2(codes[3], rd64, i),
        };
        self.cx.e.ins(ins)
    }

    fn int_bin(
        &mut self,
        ty: Ty,
        op: Bin,
        next: Option<&Operator<'_>>,
    ) -> Result<(), CompileError> {
        let mut b = self.pop();
        let mut a = self.pop();
        let w = ty.is_wide();
        if let (Loc::Const(x), Loc::Const(y), true) = (a.loc, b.loc, self.cx.opts.const_fold)
            && let Some(v) = fold::bin(op, w, x, y)
        {
            return self.push_const(ty, v);
        }
        let commutative = matches!(op, Bin::Add | Bin::Mul | Bin::And | Bin::Or | Bin::Xor);
        if commutative && matches!(a.loc, Loc::Const(_) | Loc::Mem) && matches!(b.loc, Loc::Gpr(_))
        {
            core::mem::swap(&mut a, &mut b);
        }
        if op == Bin::And && ty == Ty::I32 && self.cx.opts.fuse && self.flags_consumer(next) {
            return self.test_bits(a, b);
        }
        let in_place = !matches!(op, Bin::DivS | Bin::DivU | Bin::RemS | Bin::RemU);
        if let Some(t) = self.set_target(next, ty).filter(|_| in_place) {
            if commutative && b.loc == Loc::Gpr(t) {
                core::mem::swap(&mut a, &mut b);
            }
            // `t` is written before `b` is read, unless `a` is `t` already.
            if a.loc == Loc::Gpr(t) || b.loc != Loc::Gpr(t) {
                self.materialize_aliases(t, false)?;
                self.move_into(t, a)?;
                return self.bin_into(ty, op, t, b);
            }
        }
        if self.cx.opts.fuse
            && (self.lea_add(ty, op, a, b)? || self.bmi2_from_alias(ty, op, a, b)?)
        {
            return Ok(());
        }
        let ra = self.gpr_of(a)?;
        self.bin_into(ty, op, ra, b)
    }

    /// `a + b` or `a - c` with `a` an alias of a pinned local (read-only) as one `lea` into a
    /// fresh register instead of a copy and an `add` (a 32-bit `lea` keeps the low half of the
    /// 64-bit sum: the wrapped i32 sum, zero-extended). Whether it applied.
    fn lea_add(&mut self, ty: Ty, op: Bin, a: Val, b: Val) -> Result<bool, CompileError> {
        let Loc::Gpr(p) = a.loc else {
            return Ok(false);
        };
        if !self.is_pinned_gpr(p) {
            return Ok(false);
        }
        let w = ty.is_wide();
        let m = match (op, b.loc) {
            (Bin::Add | Bin::Sub, Loc::Const(c)) => {
                let imm = if w {
                    c as i64
                } else {
                    i64::from(c as u32 as i32)
                };
                let disp = if op == Bin::Sub {
                    imm.checked_neg()
                } else {
                    Some(imm)
                };
                match disp.and_then(|d| i32::try_from(d).ok()) {
                    Some(d) => crate::emit::mem(p, d),
                    None => return Ok(false),
                }
            }
            (Bin::Add, Loc::Gpr(q)) => crate::emit::mem_idx(p, q, 0),
            _ => return Ok(false),
        };
        let d = self.alloc_gpr()?;
        let (code, dst) = if w {
            (Code::Lea_r64_m, R64[d as usize])
        } else {
            (Code::Lea_r32_m, R32[d as usize])
        };
        self.cx.e.ins(Instruction::with2(code, dst, m))?;
        self.release(b);
        self.push(ty, Loc::Gpr(d));
        Ok(true)
    }

    /// A shift by a register count or a rotate by a constant of an alias of a pinned local
    /// (read-only) into a fresh register with BMI2's three-operand forms (`shlx`/`shrx`/`sarx`
    /// mask the count as wasm does; `rorx` takes the constant), instead of a copy and the
    /// two-operand form. Whether it applied.
    fn bmi2_from_alias(&mut self, ty: Ty, op: Bin, a: Val, b: Val) -> Result<bool, CompileError> {
        let Loc::Gpr(p) = a.loc else {
            return Ok(false);
        };
        if !self.cx.opts.cpu.bmi2 || !self.is_pinned_gpr(p) {
            return Ok(false);
        }
        let w = ty.is_wide();
        let bits = if w { 64 } else { 32 };
        match (op, b.loc) {
            (Bin::Rotl | Bin::Rotr, Loc::Const(c)) => {
                let n = (c % bits) as u32;
                let right = if op == Bin::Rotl {
                    (bits as u32 - n) % bits as u32
                } else {
                    n
                };
                let d = self.alloc_gpr()?;
                let ins = if w {
                    Instruction::with3(
                        Code::VEX_Rorx_r64_rm64_imm8,
                        R64[d as usize],
                        R64[p as usize],
                        right,
                    )
                } else {
                    Instruction::with3(
                        Code::VEX_Rorx_r32_rm32_imm8,
                        R32[d as usize],
                        R32[p as usize],
                        right,
                    )
                };
                self.cx.e.ins(ins)?;
                self.push(ty, Loc::Gpr(d));
                Ok(true)
            }
            (Bin::Shl | Bin::ShrS | Bin::ShrU, Loc::Gpr(_) | Loc::Mem) => {
                let rb = self.gpr_ro(b)?;
                let d = self.alloc_gpr()?;
                self.shift_x(op, w, d, p, rb)?;
                self.free_gpr(rb);
                self.push(ty, Loc::Gpr(d));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// `d = s shift (n masked)` with `shlx`/`shrx`/`sarx` (BMI2).
    fn shift_x(&mut self, op: Bin, w: bool, d: u8, s: u8, n: u8) -> Result<(), CompileError> {
        let code = match (op, w) {
            (Bin::Shl, false) => Code::VEX_Shlx_r32_rm32_r32,
            (Bin::Shl, true) => Code::VEX_Shlx_r64_rm64_r64,
            (Bin::ShrU, false) => Code::VEX_Shrx_r32_rm32_r32,
            (Bin::ShrU, true) => Code::VEX_Shrx_r64_rm64_r64,
            (_, false) => Code::VEX_Sarx_r32_rm32_r32,
            (_, true) => Code::VEX_Sarx_r64_rm64_r64,
        };
        let ins = if w {
            Instruction::with3(code, R64[d as usize], R64[s as usize], R64[n as usize])
        } else {
            Instruction::with3(code, R32[d as usize], R32[s as usize], R32[n as usize])
        };
        self.cx.e.ins(ins)
    }

    /// `i32.and` whose result is only tested: `test` leaves "nonzero" in the flags.
    fn test_bits(&mut self, a: Val, b: Val) -> Result<(), CompileError> {
        let ra = self.gpr_ro(a)?;
        let s = self.src_of(b)?;
        let r32 = R32[ra as usize];
        let ins = match s {
            Src::Reg(r) => Instruction::with2(Code::Test_rm32_r32, r32, R32[r as usize]),
            Src::Imm(i) => Instruction::with2(Code::Test_rm32_imm32, r32, i),
            Src::Mem(m) => Instruction::with2(Code::Test_rm32_r32, m, r32),
        };
        self.cx.e.ins(ins)?;
        self.release_src(&s);
        self.free_gpr(ra);
        self.push_flags(Cond::Ne);
        Ok(())
    }

    /// `ra op= b` for a non-dividing binary operator, pushing `ra` (owned, or the pinned
    /// register a following `local.set` writes).
    fn bin_into(&mut self, ty: Ty, op: Bin, ra: u8, b: Val) -> Result<(), CompileError> {
        let w = ty.is_wide();
        match op {
            Bin::Add | Bin::Sub | Bin::And | Bin::Or | Bin::Xor => {
                let s = self.src_of(b)?;
                self.alu(alu_codes(op), w, ra, &s)?;
                self.release_src(&s);
                self.push(ty, Loc::Gpr(ra));
            }
            Bin::Mul => {
                let s = self.src_of(b)?;
                let ins = match (s, w) {
                    (Src::Imm(i), false) => Instruction::with3(
                        Code::Imul_r32_rm32_imm32,
                        R32[ra as usize],
                        R32[ra as usize],
                        i,
                    ),
                    (Src::Imm(i), true) => Instruction::with3(
                        Code::Imul_r64_rm64_imm32,
                        R64[ra as usize],
                        R64[ra as usize],
                        i,
                    ),
                    (Src::Reg(r), false) => {
                        Instruction::with2(Code::Imul_r32_rm32, R32[ra as usize], R32[r as usize])
                    }
                    (Src::Reg(r), true) => {
                        Instruction::with2(Code::Imul_r64_rm64, R64[ra as usize], R64[r as usize])
                    }
                    (Src::Mem(m), false) => {
                        Instruction::with2(Code::Imul_r32_rm32, R32[ra as usize], m)
                    }
                    (Src::Mem(m), true) => {
                        Instruction::with2(Code::Imul_r64_rm64, R64[ra as usize], m)
                    }
                };
                self.cx.e.ins(ins)?;
                self.release_src(&s);
                self.push(ty, Loc::Gpr(ra));
            }
            Bin::Shl | Bin::ShrS | Bin::ShrU | Bin::Rotl | Bin::Rotr => {
                let codes = shift_codes(op);
                if let (Loc::Const(c), true) = (b.loc, self.cx.opts.const_fold) {
                    let n = (c & if w { 63 } else { 31 }) as u32;
                    let code = if w { codes[3] } else { codes[2] };
                    let r = if w {
                        R64[ra as usize]
                    } else {
                        R32[ra as usize]
                    };
                    self.cx.e.ins(Instruction::with2(code, r, n))?;
                } else if self.cx.opts.cpu.bmi2 && !matches!(op, Bin::Rotl | Bin::Rotr) {
                    let rb = self.gpr_ro(b)?;
                    self.shift_x(op, w, ra, ra, rb)?;
                    self.free_gpr(rb);
                } else {
                    let rb = self.gpr_ro(b)?;
                    self.cx.e.mov_rr(reg::RCX, rb, false)?;
                    self.free_gpr(rb);
                    let ins = if w {
                        Instruction::with2(codes[1], R64[ra as usize], iced_x86::Register::CL)
                    } else {
                        Instruction::with2(codes[0], R32[ra as usize], iced_x86::Register::CL)
                    };
                    self.cx.e.ins(ins)?;
                }
                self.push(ty, Loc::Gpr(ra));
            }
            Bin::DivS | Bin::DivU | Bin::RemS | Bin::RemU => {
                let a = super::Val {
                    ty,
                    loc: Loc::Gpr(ra),
                    depth: 0,
                };
                self.divide(ty, op, a, b)?
            }
        }
        Ok(())
    }

    fn divide(&mut self, ty: Ty, op: Bin, a: Val, b: Val) -> Result<(), CompileError> {
        let w = ty.is_wide();
        let known = match b.loc {
            Loc::Const(c) if self.cx.opts.const_fold => {
                Some(if w { c } else { u64::from(c as u32) })
            }
            _ => None,
        };
        let minus_one = if w { u64::MAX } else { u64::from(u32::MAX) };
        let ra = self.gpr_of(a)?;
        let rb = self.gpr_of(b)?;
        let signed = matches!(op, Bin::DivS | Bin::RemS);
        let e = &mut self.cx.e;
        e.mov_rr(reg::RAX, ra, w)?;
        if known.is_none_or(|c| c == 0) {
            e.rr((Code::Test_rm32_r32, Code::Test_rm64_r64), w, rb, rb)?;
            self.trap_if(Cond::E, TrapCode::DivideByZero)?;
        }
        let mut done = self.cx.e.label();
        let may_be_minus_one = signed && known.is_none_or(|c| c == minus_one);
        if may_be_minus_one {
            let mut normal = self.cx.e.label();
            self.cx
                .e
                .ri((Code::Cmp_rm32_imm32, Code::Cmp_rm64_imm32), w, rb, -1)?;
            self.cx.e.jcc(Cond::Ne, normal)?;
            if op == Bin::DivS {
                // MIN / -1 overflows; any other x / -1 is handled by idiv.
                if w {
                    self.cx.e.mov_imm(reg::RDX, true, 1 << 63)?;
                    self.cx.e.rr(
                        (Code::Cmp_r32_rm32, Code::Cmp_r64_rm64),
                        true,
                        reg::RAX,
                        reg::RDX,
                    )?;
                } else {
                    self.cx.e.ri(
                        (Code::Cmp_rm32_imm32, Code::Cmp_rm64_imm32),
                        false,
                        reg::RAX,
                        i32::MIN,
                    )?;
                }
                self.trap_if(Cond::E, TrapCode::IntegerOverflow)?;
            } else {
                // x rem -1 is 0 (idiv would fault on MIN).
                self.cx
                    .e
                    .ins(Instruction::with2(Code::Xor_r32_rm32, R32[2], R32[2]))?;
                self.cx.e.jmp(done)?;
            }
            self.cx.e.bind(&mut normal)?;
        }
        let e = &mut self.cx.e;
        if signed {
            e.op0(if w { Code::Cqo } else { Code::Cdq })?;
            let code = if w { Code::Idiv_rm64 } else { Code::Idiv_rm32 };
            let r = if w {
                R64[rb as usize]
            } else {
                R32[rb as usize]
            };
            e.ins(Instruction::with1(code, r))?;
        } else {
            e.ins(Instruction::with2(Code::Xor_r32_rm32, R32[2], R32[2]))?;
            let code = if w { Code::Div_rm64 } else { Code::Div_rm32 };
            let r = if w {
                R64[rb as usize]
            } else {
                R32[rb as usize]
            };
            e.ins(Instruction::with1(code, r))?;
        }
        e.bind(&mut done)?;
        let result = if matches!(op, Bin::DivS | Bin::DivU) {
            reg::RAX
        } else {
            reg::RDX
        };
        e.mov_rr(ra, result, w)?;
        self.free_gpr(rb);
        self.push(ty, Loc::Gpr(ra));
        Ok(())
    }

    fn int_cmp(&mut self, ty: Ty, op: Cmp, fuse: bool) -> Result<(), CompileError> {
        let mut b = self.pop();
        let mut a = self.pop();
        let mut op = op;
        let w = ty.is_wide();
        if let (Loc::Const(x), Loc::Const(y), true) = (a.loc, b.loc, self.cx.opts.const_fold) {
            return self.push_const(Ty::I32, fold::cmp(op, w, x, y));
        }
        // `c < x` as `x > c`: the constant becomes the immediate.
        if self.cx.opts.fuse && matches!(a.loc, Loc::Const(_)) && matches!(b.loc, Loc::Gpr(_)) {
            core::mem::swap(&mut a, &mut b);
            op = swapped(op);
        }
        let ra = self.gpr_ro(a)?;
        let s = self.src_of(b)?;
        self.alu(alu_codes(Bin::DivS), w, ra, &s)?;
        self.release_src(&s);
        self.finish_cmp(ra, cond_of(op), fuse)
    }

    /// After flags are set: either leave them for the next branch (peephole) or materialize.
    /// `r` may be an alias (read-only): the value then goes to a fresh register.
    pub(super) fn finish_cmp(&mut self, r: u8, cond: Cond, fuse: bool) -> Result<(), CompileError> {
        if fuse {
            self.free_gpr(r);
            self.push_flags(cond);
            return Ok(());
        }
        let r = if self.is_pinned_gpr(r) {
            self.alloc_gpr()?
        } else {
            r
        };
        self.cx.e.setcc(cond, r)?;
        self.push(Ty::I32, Loc::Gpr(r));
        Ok(())
    }
}
