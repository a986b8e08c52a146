//! Lowering a function body, and a second, specialized one (see `opt::specialize`): after the
//! prologue, a guard compares each specialized parameter's incoming slot with its value and
//! jumps to the general body on any difference; the specialized body reads those parameters as
//! constants. Both bodies share the prologue and the frame (its size is patched in at the end,
//! from the larger of their needs), and each ends in its own `leave; ret`.

use crate::emit::CodeLabel;
use iced_x86::{Code, Instruction};
use wasmparser::Operator;

use super::{Frame, Func};
use crate::CompileError;
use crate::emit::{Cond, reg};
use crate::module::Ty;

impl Func<'_, '_> {
    /// Lowers `ops` as the function's body (a function frame of `results`).
    pub(super) fn body(
        &mut self,
        ops: &[(Operator<'_>, u32)],
        results: &[Ty],
    ) -> Result<(), CompileError> {
        self.frames
            .push(Frame::function(&mut self.cx.e, results.to_vec()));
        self.load_pinned_at_entry()?;
        self.raw.boundaries.reserve(ops.len());
        for i in 0..ops.len() {
            self.wasm_offset = ops[i].1;
            if self.dead {
                match &ops[i].0 {
                    Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                        self.dead_nest += 1;
                        continue;
                    }
                    Operator::End if self.dead_nest > 0 => {
                        self.dead_nest -= 1;
                        continue;
                    }
                    Operator::Else if self.dead_nest > 0 => continue,
                    Operator::Else | Operator::End => {}
                    _ => continue,
                }
            }
            let pos = self.cx.e.pos();
            self.raw.boundaries.push((pos as u32, ops[i].1));
            let next = ops.get(i + 1).map(|o| &o.0);
            self.op(&ops[i].0, next)?;
        }
        Ok(())
    }

    /// Forgets the state a finished body left (its results on the value stack, dead code), so
    /// another body can be lowered after it.
    pub(super) fn reset_body(&mut self) {
        self.truncate(0);
        self.frames.clear();
        self.dead = false;
        self.dead_nest = 0;
        self.pending = None;
    }

    /// Jumps to `general` unless every parameter in `consts` has its value (raw bits; i32/f32
    /// compare the low 4 bytes). Clobbers `rax` and the flags.
    pub(super) fn guard_params(
        &mut self,
        consts: &[(u32, u64)],
        general: CodeLabel,
    ) -> Result<(), CompileError> {
        for &(p, bits) in consts {
            let m = self.local_mem(p);
            let wide = self.locals[p as usize].is_wide();
            let e = &mut self.cx.e;
            if !wide {
                e.ins(Instruction::with2(Code::Cmp_rm32_imm32, m, bits as u32))?;
            } else if bits as i64 == i64::from(bits as i32) {
                e.ins(Instruction::with2(Code::Cmp_rm64_imm32, m, bits as i32))?;
            } else {
                e.mov_imm(reg::RAX, true, bits)?;
                e.ins(Instruction::with2(
                    Code::Cmp_rm64_r64,
                    m,
                    crate::emit::R64[reg::RAX as usize],
                ))?;
            }
            self.cx.e.jcc(Cond::Ne, general)?;
        }
        Ok(())
    }

    /// The constant parameter `local` is in the body being lowered, if it is one.
    pub(super) fn const_param(&self, local: u32) -> Option<u64> {
        self.const_params
            .iter()
            .find(|&&(p, _)| p == local)
            .map(|&(_, bits)| bits)
    }
}
