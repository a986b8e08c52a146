//! Instruction selection over pinned locals and the flags (`Options::fuse`).
//!
//! **Aliases.** With `reg_locals`, `local.get` of a pinned local pushes the local's own register
//! (`Loc::Gpr`/`Loc::Xmm` of a register in `Pinned::gpr_mask`/`xmm_mask`) instead of a copy.
//! Such an entry is a read-only alias:
//!
//! - operators that only read an operand use the register in place (`cmp ebx, 2`, a load's
//!   index, an ALU source, a stored value); those that write it get a copy from `gpr_of` /
//!   `xmm_of`, which always return a register the caller owns;
//! - freeing an alias frees nothing (`free_gpr`/`free_xmm` keep pinned registers out of the
//!   pools), and running out of registers never spills an alias to get one;
//! - before anything writes a pinned register (`local.set`/`local.tee`, or an operator writing
//!   its result straight into the target of the `local.set` after it) every alias of it still on
//!   the value stack becomes a copy ([`Func::materialize_aliases`]), so `local.get $x;
//!   ...; local.set $x` leaves the old value below;
//! - at merges and calls, spilling stores the alias's register to the entry's home slot like
//!   any register value (the local cannot have changed since, by the rule above), and pinned
//!   locals are reloaded after calls from their home slots, which hold the same value.
//!
//! **Results into locals.** An integer ALU operator (or float add/sub/mul/div) followed by
//! `local.set`/`local.tee` of a pinned local of its type computes into that local's register:
//! `local.set $i (i32.add (local.get $i) (i32.const 1))` is `add r12d, 1`. It pushes the alias
//! of the target, so the `local.set` finds its value already in place and emits nothing.
//!
//! **Flags.** A compare (or `i32.and` whose result is only tested) followed by `br_if`, `if`,
//! `select` or `i32.eqz` leaves its result in the flags (`Func::pending`, with a placeholder on
//! the value stack): `i32.eqz` negates the condition (exact for the float compares too: their
//! conditions are false when unordered, so the negation is true, as `eqz` of 0 is), `select`
//! becomes `cmovcc`, `br_if`/`if` a `jcc`. Between the flag writer and its consumer only `mov`s
//! and loads are emitted.

use iced_x86::Code;
use wasmparser::Operator;

use super::{Func, Loc, Val};
use crate::CompileError;
use crate::emit::{Cond, R32, R64, reg};
use crate::module::Ty;

impl Func<'_, '_> {
    /// Whether `r` is a pinned local's general register.
    pub fn is_pinned_gpr(&self, r: u8) -> bool {
        self.pinned.gpr_mask & (1 << r) != 0
    }

    /// Whether `x` is a pinned local's XMM register.
    pub fn is_pinned_xmm(&self, x: u8) -> bool {
        self.pinned.xmm_mask & (1 << x) != 0
    }

    /// A general register holding `v` for reading only: an alias stays in place, anything
    /// else is loaded into a register the caller owns. Free it with `free_gpr` either way.
    /// Without `Options::fuse` there are no aliases, and this is `gpr_of`.
    pub fn gpr_ro(&mut self, v: Val) -> Result<u8, CompileError> {
        match v.loc {
            Loc::Gpr(r) => Ok(r),
            _ => self.gpr_of(v),
        }
    }

    /// An XMM register holding `v` for reading only (as [`Func::gpr_ro`]).
    pub fn xmm_ro(&mut self, v: Val) -> Result<u8, CompileError> {
        match v.loc {
            Loc::Xmm(x) => Ok(x),
            _ => self.xmm_of(v),
        }
    }

    /// Before pinned register `r` (an XMM register when `float`) is written: every alias of it
    /// on the value stack becomes a copy in a register of its own. Emits only `mov`s.
    pub fn materialize_aliases(&mut self, r: u8, float: bool) -> Result<(), CompileError> {
        for d in 0..self.stack.len() {
            let e = self.stack[d];
            match e.loc {
                Loc::Gpr(s) if !float && s == r => {
                    let n = self.alloc_gpr()?;
                    self.cx.e.mov_rr(n, r, e.ty.is_wide())?;
                    self.stack[d].loc = Loc::Gpr(n);
                }
                Loc::Xmm(s) if float && s == r => {
                    let n = self.alloc_xmm()?;
                    self.cx.e.xx(Code::Movaps_xmm_xmmm128, n, r)?;
                    self.stack[d].loc = Loc::Xmm(n);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether a condition computed just before `next` may stay in the flags for it.
    pub fn flags_consumer(&self, next: Option<&Operator<'_>>) -> bool {
        match next {
            Some(Operator::BrIf { .. } | Operator::If { .. }) => self.cx.opts.peephole,
            Some(Operator::Select | Operator::TypedSelect { .. } | Operator::I32Eqz) => {
                self.cx.opts.fuse
            }
            _ => false,
        }
    }

    /// The pinned register an operator producing a `ty` value may write its result to: that
    /// of the local `next` sets or tees, when it has that register class.
    pub fn set_target(&self, next: Option<&Operator<'_>>, ty: Ty) -> Option<u8> {
        if !self.cx.opts.fuse {
            return None;
        }
        match next {
            Some(Operator::LocalSet { local_index } | Operator::LocalTee { local_index }) => {
                let l = *local_index;
                (self.locals[l as usize] == ty)
                    .then(|| self.pinned.reg(l))
                    .flatten()
            }
            _ => None,
        }
    }

    /// Leaves condition `cond` in the flags for the next operator (a placeholder keeps the
    /// stack shape; the consumer pops it).
    pub fn push_flags(&mut self, cond: Cond) {
        self.pending = Some(cond);
        self.push(Ty::I32, Loc::Const(0));
    }

    /// `i32.eqz` of a condition in the flags: the negation, in the flags again when `keep`,
    /// else as a 0/1 value.
    pub fn eqz_flags(&mut self, keep: bool) -> Result<(), CompileError> {
        let cond = self
            .pending
            .take()
            .expect("eqz_flags with a condition in the flags")
            .negate();
        self.pop();
        if keep {
            self.push_flags(cond);
            return Ok(());
        }
        let r = self.alloc_gpr()?;
        self.cx.e.setcc(cond, r)?;
        self.push(Ty::I32, Loc::Gpr(r));
        Ok(())
    }

    /// `select` of the two values on top of the stack: the deeper one when `cond` holds in the
    /// flags, else the top one. Emits only `mov`s and loads before the `cmov`/`jcc`. An
    /// integer result goes straight to the pinned local `next` sets, if any.
    pub fn select_flags(
        &mut self,
        cond: Cond,
        next: Option<&Operator<'_>>,
    ) -> Result<(), CompileError> {
        let b = self.pop();
        let a = self.pop();
        let ty = a.ty;
        if let Some(t) = self.set_target(next, ty).filter(|_| !ty.is_float()) {
            self.materialize_aliases(t, false)?;
            // `x = c ? a : x` is one `cmovcc`; otherwise `x = a`, then `cmovncc x, b`.
            let (src, when) = if b.loc == Loc::Gpr(t) {
                (a, cond)
            } else {
                self.move_into(t, a)?;
                (b, cond.negate())
            };
            self.cmov_from(when, t, src)?;
            self.push(ty, Loc::Gpr(t));
            return Ok(());
        }
        if ty.is_float() {
            let xa = self.xmm_of(a)?;
            let xb = self.xmm_ro(b)?;
            let mut skip = self.cx.e.label();
            self.cx.e.jcc(cond, skip)?;
            self.cx.e.xx(Code::Movaps_xmm_xmmm128, xa, xb)?;
            self.cx.e.bind(&mut skip)?;
            self.free_xmm(xb);
            self.push(ty, Loc::Xmm(xa));
            return Ok(());
        }
        let ra = self.gpr_of(a)?;
        self.cmov_from(cond.negate(), ra, b)?;
        self.push(ty, Loc::Gpr(ra));
        Ok(())
    }

    /// `cmovcc d, v` (`v` read from its home slot, its register or an alias; a constant
    /// through a register), then frees `v`'s register. Emits only `mov`s and loads first.
    fn cmov_from(&mut self, cond: Cond, d: u8, v: Val) -> Result<(), CompileError> {
        let w = v.ty.is_wide();
        if v.loc == Loc::Mem {
            let (code, dst) = if w {
                (cond.cmov().1, R64[d as usize])
            } else {
                (cond.cmov().0, R32[d as usize])
            };
            let m = self.slot(v.depth);
            return self.cx.e.ins(iced_x86::Instruction::with2(code, dst, m));
        }
        let r = self.gpr_ro(v)?;
        self.cx.e.rr(cond.cmov(), w, d, r)?;
        self.free_gpr(r);
        Ok(())
    }

    /// Puts value `a` into pinned register `t` (the target of a following `local.set`), unless
    /// it is there already, and frees `a`'s register. Emits only `mov`s and loads.
    pub fn move_into(&mut self, t: u8, a: Val) -> Result<(), CompileError> {
        if a.loc == Loc::Gpr(t) || a.loc == Loc::Xmm(t) {
            return Ok(());
        }
        self.copy_into(t, a)?;
        self.release(a);
        Ok(())
    }

    /// Copies value `a` into register `t` (an XMM register for floats), leaving `a` where it
    /// is. Emits only `mov`s and loads.
    pub fn copy_into(&mut self, t: u8, a: Val) -> Result<(), CompileError> {
        let w = a.ty.is_wide();
        match a.loc {
            Loc::Gpr(s) => self.cx.e.mov_rr(t, s, w),
            Loc::Xmm(s) => self.cx.e.xx(Code::Movaps_xmm_xmmm128, t, s),
            Loc::Const(bits) if a.ty.is_float() => {
                self.cx.e.mov_imm(reg::RAX, w, bits)?;
                self.gpr_to_xmm(t, reg::RAX, w)
            }
            Loc::Const(bits) => self.cx.e.mov_imm(t, w, bits),
            Loc::Mem => {
                let slot = self.slot(a.depth);
                if a.ty.is_float() {
                    self.xmm_load_ty(t, slot, a.ty)
                } else {
                    self.cx.e.load(t, w, slot)
                }
            }
        }
    }
}
