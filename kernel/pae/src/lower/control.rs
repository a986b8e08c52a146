//! Structured control flow: blocks, loops, `if`, branches, `br_table`, `return`, `select`,
//! `drop`, `unreachable`. At every merge the value stack is canonical (all in home slots).

use alloc::vec::Vec;

use crate::emit::CodeLabel;
use iced_x86::{Code, Instruction};
use wasmparser::{BlockType, Operator};

use super::{Func, Loc, Val};
use crate::CompileError;
use crate::emit::{Cond, Emitter, R32};
use crate::module::Ty;
use crate::vmctx::TrapCode;

/// With `Options::br_tree`, tables with more entries than this are searched as a tree (small
/// ones keep the compare chain).
const BR_TREE_MIN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Block,
    Loop,
    If,
}

/// A control frame.
#[derive(Debug)]
pub(crate) struct Frame {
    kind: Kind,
    /// Branch target (loop header, or the end).
    target: CodeLabel,
    end: CodeLabel,
    /// `if` only: the label of the else arm, until bound.
    else_label: Option<CodeLabel>,
    params: Vec<Ty>,
    results: Vec<Ty>,
    /// Stack height below the params.
    height: usize,
    /// Some branch goes to the end.
    end_targeted: bool,
    /// `if` only: the implicit or explicit else arm is reachable.
    else_reachable: bool,
    /// Its end is the function's end: its arms return directly (`ret.rs`).
    tail: bool,
}

impl Frame {
    pub(crate) fn function(e: &mut Emitter, results: Vec<Ty>) -> Frame {
        let end = e.label();
        Frame {
            kind: Kind::Block,
            target: end,
            end,
            else_label: None,
            params: Vec::new(),
            results,
            height: 0,
            end_targeted: false,
            else_reachable: false,
            tail: false,
        }
    }

    fn branch_arity(&self) -> usize {
        if self.kind == Kind::Loop {
            self.params.len()
        } else {
            self.results.len()
        }
    }
}

impl Func<'_, '_> {
    fn block_type(&self, bt: BlockType) -> Result<(Vec<Ty>, Vec<Ty>), CompileError> {
        Ok(match bt {
            BlockType::Empty => (Vec::new(), Vec::new()),
            BlockType::Type(t) => (Vec::new(), alloc::vec![Ty::from_wasm(t)?]),
            BlockType::FuncType(i) => {
                let t = &self.cx.m.types[i as usize];
                (t.params.clone(), t.results.clone())
            }
        })
    }

    fn open(&mut self, kind: Kind, bt: BlockType) -> Result<&mut Frame, CompileError> {
        let (params, results) = self.block_type(bt)?;
        let end = self.cx.e.label();
        let target = if kind == Kind::Loop {
            self.cx.e.label()
        } else {
            end
        };
        let height = self.height() - params.len();
        let tail = kind != Kind::Loop && self.tail_opener == Some(self.wasm_offset);
        self.frames.push(Frame {
            kind,
            target,
            end,
            else_label: None,
            params,
            results,
            height,
            end_targeted: false,
            else_reachable: false,
            tail,
        });
        Ok(self.frames.last_mut().expect("just pushed"))
    }

    /// Copies the top `arity` values (already spilled) down to the frame's slots.
    fn move_results(&mut self, height: usize, arity: usize) -> Result<(), CompileError> {
        let top = self.height() - arity;
        if top == height {
            return Ok(());
        }
        for i in 0..arity {
            let (from, to) = (self.slot(top + i), self.slot(height + i));
            self.copy_slot(from, to)?;
        }
        Ok(())
    }

    fn needs_moves(&self, frame: usize) -> bool {
        let f = &self.frames[frame];
        self.height() - f.branch_arity() != f.height
    }

    /// Spills, moves branch values into place and marks the target reachable. Emits only
    /// `mov`s.
    fn prepare_branch(&mut self, frame: usize) -> Result<(), CompileError> {
        self.spill_all()?;
        let (height, arity) = {
            let f = &mut self.frames[frame];
            if f.kind != Kind::Loop {
                f.end_targeted = true;
            }
            (f.height, f.branch_arity())
        };
        self.move_results(height, arity)
    }

    fn frame_at_depth(&self, depth: u32) -> usize {
        self.frames.len() - 1 - depth as usize
    }

    fn set_dead(&mut self) {
        self.dead = true;
    }

    /// Pops a condition: `Ok(Err(bool))` when known, `Ok(Ok(cond))` for "branch when cond".
    fn pop_condition(&mut self) -> Result<Result<Cond, bool>, CompileError> {
        if let Some(cond) = self.pending.take() {
            self.pop();
            return Ok(Ok(cond));
        }
        let v = self.pop();
        if let (Loc::Const(c), true) = (v.loc, self.cx.opts.dce) {
            return Ok(Err(c as u32 != 0));
        }
        let r = self.gpr_ro(v)?;
        self.cx
            .e
            .rr((Code::Test_rm32_r32, Code::Test_rm64_r64), false, r, r)?;
        self.free_gpr(r);
        Ok(Ok(Cond::Ne))
    }

    pub(super) fn control(
        &mut self,
        op: &Operator<'_>,
        next: Option<&Operator<'_>>,
    ) -> Result<bool, CompileError> {
        match *op {
            Operator::Nop => {}
            Operator::Unreachable => {
                let label = self.cx.trap(TrapCode::Unreachable);
                self.cx.e.jmp(label)?;
                self.set_dead();
            }
            Operator::Block { blockty } => {
                self.open(Kind::Block, blockty)?;
            }
            Operator::Loop { blockty } => {
                self.spill_all()?;
                self.pinned.merge();
                let mut target = self.open(Kind::Loop, blockty)?.target;
                self.cx.e.bind(&mut target)?;
                self.count_block()?;
            }
            Operator::If { blockty } => {
                let cond = self.pop_condition()?;
                self.spill_all()?;
                let else_label = self.cx.e.label();
                let frame = self.open(Kind::If, blockty)?;
                frame.else_label = Some(else_label);
                match cond {
                    Ok(c) => {
                        frame.else_reachable = true;
                        self.cx.e.jcc(c.negate(), else_label)?;
                        self.count_block()?;
                    }
                    Err(true) => {}
                    Err(false) => {
                        frame.else_reachable = true;
                        self.set_dead();
                    }
                }
            }
            Operator::Else => {
                let i = self.frames.len() - 1;
                if !self.dead && self.frames[i].tail {
                    self.return_tail()?;
                } else if !self.dead {
                    self.prepare_branch(i)?;
                    let end = self.frames[i].end;
                    self.cx.e.jmp(end)?;
                }
                self.pinned.merge();
                let f = &mut self.frames[i];
                let mut else_label = f.else_label.take().expect("else in an if frame");
                let (height, params, reachable) = (f.height, f.params.clone(), f.else_reachable);
                self.cx.e.bind(&mut else_label)?;
                self.truncate(height);
                for t in params {
                    self.push(t, Loc::Mem);
                }
                self.dead = !reachable;
                if reachable {
                    self.count_block()?;
                }
            }
            Operator::End => self.end()?,
            Operator::Br { relative_depth } => {
                let i = self.frame_at_depth(relative_depth);
                self.prepare_branch(i)?;
                let target = self.frames[i].target;
                self.cx.e.jmp(target)?;
                self.set_dead();
            }
            Operator::BrIf { relative_depth } => {
                let i = self.frame_at_depth(relative_depth);
                match self.pop_condition()? {
                    Err(false) => {}
                    Err(true) => {
                        self.prepare_branch(i)?;
                        let target = self.frames[i].target;
                        self.cx.e.jmp(target)?;
                        self.set_dead();
                    }
                    Ok(cond) => {
                        self.spill_all()?;
                        let target = self.frames[i].target;
                        if self.needs_moves(i) {
                            let mut skip = self.cx.e.label();
                            self.cx.e.jcc(cond.negate(), skip)?;
                            self.prepare_branch(i)?;
                            self.cx.e.jmp(target)?;
                            self.cx.e.bind(&mut skip)?;
                        } else {
                            self.prepare_branch(i)?;
                            self.cx.e.jcc(cond, target)?;
                        }
                    }
                }
            }
            Operator::BrTable { ref targets } => {
                let default = targets.default();
                let depths: Vec<u32> = targets.targets().collect::<Result<_, _>>()?;
                self.br_table(&depths, default)?;
            }
            Operator::Return => self.return_tail()?,
            Operator::Drop => {
                let v = self.pop();
                self.release(v);
            }
            Operator::Select | Operator::TypedSelect { .. } => self.select(next)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Returns the function's results from the top of the value stack; what follows is dead.
    fn return_tail(&mut self) -> Result<(), CompileError> {
        let results = self.frames[0].results.clone();
        self.return_from_stack(&results)?;
        self.set_dead();
        Ok(())
    }

    fn end(&mut self) -> Result<(), CompileError> {
        let i = self.frames.len() - 1;
        if (i == 0 || self.frames[i].tail) && !self.dead {
            // Falling off the function's end: return from where the values are.
            self.return_tail()?;
        }
        if !self.dead {
            let (height, arity) = (self.frames[i].height, self.frames[i].results.len());
            self.spill_all()?;
            self.move_results(height, arity)?;
            self.frames[i].end_targeted = true;
        }
        self.pinned.merge();
        let mut f = self.frames.pop().expect("end of a frame");
        if let Some(mut else_label) = f.else_label.take() {
            // An `if` without `else`: the params flow through as results.
            self.cx.e.bind(&mut else_label)?;
            f.end_targeted |= f.else_reachable;
        }
        if f.kind != Kind::Loop {
            self.cx.e.bind(&mut f.end)?;
        }
        self.truncate(f.height);
        for &t in &f.results {
            self.push(t, Loc::Mem);
        }
        self.dead = !f.end_targeted;
        if self.frames.is_empty() {
            if f.end_targeted {
                self.epilogue_from_slots(&f.results)?;
            }
        } else if !self.dead && f.kind != Kind::Loop {
            self.count_block()?;
        }
        Ok(())
    }

    fn br_table(&mut self, depths: &[u32], default: u32) -> Result<(), CompileError> {
        let v = self.pop();
        if let (Loc::Const(c), true) = (v.loc, self.cx.opts.dce) {
            let depth = depths.get(c as u32 as usize).copied().unwrap_or(default);
            let i = self.frame_at_depth(depth);
            self.prepare_branch(i)?;
            let target = self.frames[i].target;
            self.cx.e.jmp(target)?;
            self.set_dead();
            return Ok(());
        }
        let r = self.gpr_of(v)?;
        self.spill_all()?;
        // One landing pad per distinct target frame (moves values when needed).
        let mut pads: Vec<(u32, CodeLabel)> = Vec::new();
        let mut pad_for = |this: &mut Self, depth: u32| -> CodeLabel {
            if let Some(&(_, l)) = pads.iter().find(|(d, _)| *d == depth) {
                return l;
            }
            let i = this.frame_at_depth(depth);
            let l = if this.needs_moves(i) {
                this.cx.e.label()
            } else {
                this.frames[i].target
            };
            pads.push((depth, l));
            l
        };
        let default_pad = pad_for(self, default);
        self.cx.e.ins(Instruction::with2(
            Code::Cmp_rm32_imm32,
            R32[r as usize],
            depths.len() as u32,
        ))?;
        self.cx.e.jcc(Cond::Ae, default_pad)?;
        if self.cx.opts.jump_table && depths.len() >= super::jump_table::JUMP_TABLE_MIN {
            let pads: Vec<CodeLabel> = depths.iter().map(|&d| pad_for(self, d)).collect();
            self.jump_table(r, &pads)?;
        } else if self.cx.opts.br_tree && depths.len() > BR_TREE_MIN {
            // Runs of consecutive indices with one target, found by binary search.
            let mut runs: Vec<(u32, CodeLabel)> = Vec::new();
            for (k, &depth) in depths.iter().enumerate() {
                let pad = pad_for(self, depth);
                if runs.last().is_none_or(|&(_, l)| l != pad) {
                    runs.push((k as u32, pad));
                }
            }
            self.br_tree(r, &runs)?;
        } else {
            for (k, &depth) in depths.iter().enumerate() {
                if depth == default {
                    continue;
                }
                let pad = pad_for(self, depth);
                self.cx.e.ins(Instruction::with2(
                    Code::Cmp_rm32_imm32,
                    R32[r as usize],
                    k as u32,
                ))?;
                self.cx.e.jcc(Cond::E, pad)?;
            }
            self.cx.e.jmp(default_pad)?;
        }
        self.free_gpr(r);
        for (depth, mut pad) in pads {
            let i = self.frame_at_depth(depth);
            if self.needs_moves(i) {
                self.cx.e.bind(&mut pad)?;
                self.prepare_branch(i)?;
                let target = self.frames[i].target;
                self.cx.e.jmp(target)?;
            } else {
                self.frames[i].end_targeted |= self.frames[i].kind != Kind::Loop;
            }
        }
        self.set_dead();
        Ok(())
    }

    /// Jumps to the label of the run holding index `r` (below the last run's end, checked
    /// already): `runs` are `(first index, label)` in increasing order, the first starting at
    /// the lowest index possible here. A balanced tree of `cmp; jae`, each leaf a `jmp`.
    fn br_tree(&mut self, r: u8, runs: &[(u32, CodeLabel)]) -> Result<(), CompileError> {
        if runs.len() == 1 {
            return self.cx.e.jmp(runs[0].1);
        }
        let mid = runs.len() / 2;
        self.cx.e.ins(Instruction::with2(
            Code::Cmp_rm32_imm32,
            R32[r as usize],
            runs[mid].0,
        ))?;
        if runs.len() - mid == 1 {
            self.cx.e.jcc(Cond::Ae, runs[mid].1)?;
            return self.br_tree(r, &runs[..mid]);
        }
        let mut high = self.cx.e.label();
        self.cx.e.jcc(Cond::Ae, high)?;
        self.br_tree(r, &runs[..mid])?;
        self.cx.e.bind(&mut high)?;
        self.br_tree(r, &runs[mid..])
    }

    fn select(&mut self, next: Option<&Operator<'_>>) -> Result<(), CompileError> {
        if self.cx.opts.fuse {
            // The condition in the flags (a compare just before, or tested here), then
            // `cmovcc` (`lower::fuse`).
            return match self.pop_condition()? {
                Ok(cond) => self.select_flags(cond, next),
                Err(holds) => {
                    let b = self.pop();
                    let a = self.pop();
                    self.select_known(holds, a, b)
                }
            };
        }
        let c = self.pop();
        let b = self.pop();
        let a = self.pop();
        if let (Loc::Const(k), true) = (c.loc, self.cx.opts.dce) {
            return self.select_known(k as u32 != 0, a, b);
        }
        let cr = self.gpr_of(c)?;
        let ty = a.ty;
        if ty.is_float() {
            let xa = self.xmm_of(a)?;
            let xb = self.xmm_of(b)?;
            self.cx
                .e
                .rr((Code::Test_rm32_r32, Code::Test_rm64_r64), false, cr, cr)?;
            let mut skip = self.cx.e.label();
            self.cx.e.jcc(Cond::Ne, skip)?;
            self.cx.e.xx(Code::Movaps_xmm_xmmm128, xa, xb)?;
            self.cx.e.bind(&mut skip)?;
            self.free_xmm(xb);
            self.free_gpr(cr);
            self.push(ty, Loc::Xmm(xa));
        } else {
            let ra = self.gpr_of(a)?;
            let rb = self.gpr_of(b)?;
            self.cx
                .e
                .rr((Code::Test_rm32_r32, Code::Test_rm64_r64), false, cr, cr)?;
            self.cx.e.rr(Cond::E.cmov(), ty.is_wide(), ra, rb)?;
            self.free_gpr(rb);
            self.free_gpr(cr);
            self.push(ty, Loc::Gpr(ra));
        }
        Ok(())
    }

    /// `select` with a known condition: `a` when it holds, else `b`.
    fn select_known(&mut self, holds: bool, a: Val, b: Val) -> Result<(), CompileError> {
        let (keep, drop) = if holds { (a, b) } else { (b, a) };
        self.release(drop);
        let loc = if keep.loc == Loc::Mem {
            self.val_to_reg(keep)?
        } else {
            keep.loc
        };
        self.push(keep.ty, loc);
        Ok(())
    }
}
