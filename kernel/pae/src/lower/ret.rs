//! Returns: results into the caller's slots, and the first result in a register as well.
//!
//! The internal convention (`call.rs`) hands results back in the incoming-argument area
//! (`[rbp+16+8i]`, over the arguments). A defined function also leaves its first result, when
//! it is a scalar (not a v128), in `rax` (integers and references, an i32 zero-extended or
//! not: only the low 32 bits are defined) or `xmm0` (f32/f64), so a direct call of a defined
//! function of the same module takes it from there instead of loading the slot right after the
//! callee stored it (`Func::after_call`). Everything else that returns through this convention
//! (import thunks, lazy stubs, the entry trampoline's callers, `call_indirect` targets) is read
//! through the slots, which stay exact; a lazy stub keeps its callee's `rax`/`xmm0` (it only
//! moves slots through `rdx` after the call), so a direct call through a code cell, which
//! reaches either the stub or the assembled function, gets the register too.
//!
//! A return reached by falling off the end of the body or by `return` writes the results from
//! wherever the value stack holds them (a register, a constant, a home slot) straight into the
//! result slots and `rax`/`xmm0`, then `leave; ret`. Branches to the function's end (`br 0` at
//! the outermost level) land on one shared epilogue that copies the results from their home
//! slots.

use iced_x86::Code;
use wasmparser::Operator;

use super::{Func, Loc, Val};
use crate::CompileError;
use crate::emit::{mem, reg};
use crate::module::Ty;

/// The wasm offset of the `block` or `if` whose `end` is directly followed by the function's
/// `end`, if any: its arms return directly instead of meeting at its end (validation makes
/// the values on the stack there exactly the function's results).
pub(crate) fn tail_opener(ops: &[(Operator<'_>, u32)]) -> Option<u32> {
    let n = ops.len();
    if n < 2 || !matches!(ops[n - 2].0, Operator::End) {
        return None;
    }
    let mut depth = 0u32;
    for (op, at) in ops[..n - 1].iter().rev() {
        match op {
            Operator::End => depth += 1,
            Operator::Block { .. } | Operator::If { .. } | Operator::Loop { .. } => {
                depth -= 1;
                if depth == 0 {
                    return (!matches!(op, Operator::Loop { .. })).then_some(*at);
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether a function with `results` also returns its first result in `rax`/`xmm0`.
pub(crate) fn first_result_in_reg(results: &[Ty]) -> bool {
    results.first().is_some_and(|t| !t.is_v128())
}

impl Func<'_, '_> {
    /// Returns the top `results.len()` values of the value stack: into the result slots and
    /// the first into `rax`/`xmm0`, then `leave; ret`. The stack is left as it was (the caller
    /// marks the code after it dead).
    pub(super) fn return_from_stack(&mut self, results: &[Ty]) -> Result<(), CompileError> {
        let at = crate::module::slot_offsets(results);
        let base = self.height() - results.len();
        // The first result last: writing another one may use `rax` or `xmm0` as scratch.
        for (i, &t) in results.iter().enumerate().rev() {
            let (ty, loc) = self.peek(results.len() - 1 - i);
            debug_assert_eq!(ty, t);
            let v = Val {
                ty,
                loc,
                depth: base + i,
            };
            self.write_val(mem(reg::RBP, 16 + 8 * at[i] as i32), v)?;
        }
        if first_result_in_reg(results) {
            let (ty, loc) = self.peek(results.len() - 1);
            self.result_to_reg(ty, loc)?;
        }
        self.cx.e.op0(Code::Leaveq)?;
        self.cx.e.op0(Code::Retnq)
    }

    /// The epilogue branches to the function's end reach: results from their home slots to the
    /// result slots, the first also into `rax`/`xmm0`, `leave; ret`.
    pub(super) fn epilogue_from_slots(&mut self, results: &[Ty]) -> Result<(), CompileError> {
        let at = crate::module::slot_offsets(results);
        for (i, &t) in results.iter().enumerate().rev() {
            let from = self.slot(i);
            let to = mem(reg::RBP, 16 + 8 * at[i] as i32);
            self.copy_value(from, to, t)?;
        }
        if first_result_in_reg(results) {
            self.result_to_reg(results[0], Loc::Mem)?;
        }
        self.cx.e.op0(Code::Leaveq)?;
        self.cx.e.op0(Code::Retnq)
    }

    /// Puts the first result `(ty, loc)` into `rax` or `xmm0`. `Mem`: it was just copied from
    /// its home slot through `rax` (`write_val`, `copy_value` of a scalar), which holds it.
    fn result_to_reg(&mut self, ty: Ty, loc: Loc) -> Result<(), CompileError> {
        let wide = ty.is_wide();
        match loc {
            Loc::Gpr(r) => self.cx.e.mov_rr(reg::RAX, r, wide),
            Loc::Xmm(x) => self.cx.e.xx(Code::Movaps_xmm_xmmm128, 0, x),
            Loc::Const(bits) if ty.is_float() => {
                self.cx.e.mov_imm(reg::RAX, wide, bits)?;
                self.gpr_to_xmm(0, reg::RAX, wide)
            }
            Loc::Const(bits) => self.cx.e.mov_imm(reg::RAX, wide, bits),
            Loc::Mem if ty.is_float() => self.gpr_to_xmm(0, reg::RAX, wide),
            Loc::Mem => Ok(()),
        }
    }
}
