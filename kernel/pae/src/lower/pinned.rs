//! Locals in registers across control flow (`Options::reg_locals`).
//!
//! Before lowering a function, one cheap scan over its operators weighs every `local.get`,
//! `local.set` and `local.tee` by the loop depth it sits at (x8 per loop, up to four loops) and
//! every call the same way. The hottest numeric locals (i32/i64 in general registers, f32/f64
//! in XMM registers) whose uses save more memory accesses than the calls cost them (below)
//! get a register for the whole function: the
//! register leaves the value stack's pool, `local.get` becomes a register copy and
//! `local.set`/`local.tee` a register write. Since the mapping never changes, control merges
//! and loop back-edges need nothing for them.
//!
//! The home slot stays the local's place in memory whenever anything else may look at the
//! frame: before every call (direct, indirect, through a code cell, runtime helpers) the pinned
//! locals the function writes are stored to their home slots (those written since their last
//! load or store on every path; all of them after a loop header, `else` or block end), and
//! after it every pinned local is loaded back (the internal convention makes every register caller-saved). So at
//! every call site the frame is exactly what it is without this pass (stack walks, relocation,
//! lazy assembly and traps see the same frames); between call sites only the registers are
//! current. Traps never read locals. Each body (the specialized one and the general one) loads
//! the pinned parameters after the prologue and zeroes the other pinned locals with a zero
//! idiom (the prologue has zeroed their slots, which reloads after calls read).

use alloc::vec::Vec;

use iced_x86::Code;
use wasmparser::Operator;

use super::nest::LoopNest;
use super::{Func, Loc, Val};
use crate::CompileError;
use crate::module::Ty;

/// General registers pinned locals may take, in order (`rbx`, `r12`, `r13`, `r11`, `r10`): not
/// the argument registers of runtime helpers, so the value stack keeps `rsi`, `rdi`, `r8`,
/// `r9`.
pub(crate) const PIN_GPRS: [u8; 5] = [3, 12, 13, 11, 10];
/// XMM registers pinned locals may take, in order (the value stack keeps `xmm2`-`xmm6`).
pub(crate) const PIN_XMMS: [u8; 8] = [14, 13, 12, 11, 10, 9, 8, 7];
/// In functions with v128 values, at most this many XMM registers are pinned.
const PIN_XMMS_WITH_V128: usize = 4;
/// Weight of one use per enclosing loop level, and the deepest level counted.
const LOOP_WEIGHT: u64 = 8;
const MAX_LOOP_LEVELS: usize = 4;

/// The locals of one function that live in registers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pinned {
    /// By local index: its register, if pinned.
    reg: Vec<Option<u8>>,
    /// `(local, register)` of every pinned local.
    pub all: Vec<(u32, u8)>,
    /// The pinned locals the body writes (stored to their home slots before calls).
    pub written: Vec<(u32, u8)>,
    /// Bit masks of the pinned general and XMM registers.
    pub gpr_mask: u16,
    pub xmm_mask: u16,
    /// Bit `k`: `written[k]`'s register may differ from its home slot (it was written since
    /// the last load or store on every path here; set for all at merges).
    dirty: u16,
}

impl Pinned {
    /// At a control merge (loop header, `else`, block end): another path may have written
    /// any of them.
    pub fn merge(&mut self) {
        self.dirty = u16::MAX;
    }

    /// The register of local `i`, if pinned.
    pub fn reg(&self, i: u32) -> Option<u8> {
        self.reg.get(i as usize).copied().flatten()
    }

    /// Chooses the locals to pin in a body of `ops` over `locals` (`v128`: the function holds
    /// vector values).
    pub fn choose(locals: &[Ty], ops: &[(Operator<'_>, u32)], v128: bool) -> Pinned {
        let mut weight = alloc::vec![0u64; locals.len()];
        let mut written = alloc::vec![false; locals.len()];
        let mut calls = 0u64;
        let mut nest = LoopNest::default();
        // A use's weight at the current loop depth (recomputed when the depth changes).
        let weight_at = |loops: usize| LOOP_WEIGHT.pow(loops.min(MAX_LOOP_LEVELS) as u32);
        let mut w = weight_at(0);
        for (op, _) in ops {
            let depth = nest.loops();
            nest.see(op);
            if nest.loops() != depth {
                w = weight_at(nest.loops());
            }
            match *op {
                Operator::LocalGet { local_index } => weight[local_index as usize] += w,
                Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                    weight[local_index as usize] += w;
                    written[local_index as usize] = true;
                }
                Operator::Call { .. }
                | Operator::CallIndirect { .. }
                | Operator::MemoryGrow { .. }
                | Operator::MemoryFill { .. }
                | Operator::MemoryCopy { .. }
                | Operator::MemoryInit { .. }
                | Operator::TableGrow { .. }
                | Operator::TableFill { .. }
                | Operator::TableCopy { .. }
                | Operator::TableInit { .. } => calls += w,
                _ => {}
            }
        }
        // Each use in a register saves a load or a store; each call costs a pinned local a
        // load after it, and a written one a store before it too; the body's start, one load.
        let mut order: Vec<u32> = (0..locals.len() as u32)
            .filter(|&i| {
                let per_call = if written[i as usize] { 2 } else { 1 };
                weight[i as usize] > per_call * calls + 1
            })
            .collect();
        // Heaviest first; ties by index, so the choice is deterministic.
        order.sort_by(|&a, &b| weight[b as usize].cmp(&weight[a as usize]).then(a.cmp(&b)));
        let mut p = Pinned {
            reg: alloc::vec![None; locals.len()],
            ..Pinned::default()
        };
        let xmm_limit = if v128 {
            PIN_XMMS_WITH_V128
        } else {
            PIN_XMMS.len()
        };
        let (mut g, mut x) = (0, 0);
        for i in order {
            let r = match locals[i as usize] {
                Ty::I32 | Ty::I64 if g < PIN_GPRS.len() => {
                    g += 1;
                    PIN_GPRS[g - 1]
                }
                Ty::F32 | Ty::F64 if x < xmm_limit => {
                    x += 1;
                    PIN_XMMS[x - 1]
                }
                _ => continue,
            };
            if locals[i as usize].is_float() {
                p.xmm_mask |= 1 << r;
            } else {
                p.gpr_mask |= 1 << r;
            }
            p.reg[i as usize] = Some(r);
            p.all.push((i, r));
            if written[i as usize] {
                p.written.push((i, r));
            }
        }
        p
    }
}

/// The value-stack location of an alias of the pinned local of type `ty` in register `r`.
fn alias(ty: Ty, r: u8) -> Loc {
    if ty.is_float() {
        Loc::Xmm(r)
    } else {
        Loc::Gpr(r)
    }
}

impl Func<'_, '_> {
    /// Loads every pinned local from its home slot (at the start of a body, after calls).
    pub fn load_pinned(&mut self) -> Result<(), CompileError> {
        self.pinned.dirty = 0;
        for k in 0..self.pinned.all.len() {
            let (i, r) = self.pinned.all[k];
            let (ty, m) = (self.locals[i as usize], self.local_mem(i));
            if ty.is_float() {
                self.xmm_load_ty(r, m, ty)?;
            } else {
                self.cx.e.load(r, ty.is_wide(), m)?;
            }
        }
        Ok(())
    }

    /// Stores the pinned locals the body writes to their home slots (before a call), those
    /// written since they were last loaded or stored (all after a merge). Emits only `mov`s.
    pub fn store_pinned(&mut self) -> Result<(), CompileError> {
        for k in 0..self.pinned.written.len() {
            if self.pinned.dirty & (1 << k) == 0 {
                continue;
            }
            let (i, r) = self.pinned.written[k];
            let (ty, m) = (self.locals[i as usize], self.local_mem(i));
            if ty.is_float() {
                self.xmm_store_ty(m, r, ty)?;
            } else {
                self.cx.e.store(m, r, ty.is_wide())?;
            }
        }
        self.pinned.dirty = 0;
        Ok(())
    }

    /// `local.get` of pinned local `i` (in `r`): a read-only alias of `r` with `Options::fuse`
    /// (`lower::fuse`), else a copy in a register of the value stack.
    pub(super) fn get_pinned(&mut self, i: u32, r: u8) -> Result<(), CompileError> {
        let ty = self.locals[i as usize];
        if self.cx.opts.fuse {
            self.push(ty, alias(ty, r));
        } else if ty.is_float() {
            let x = self.alloc_xmm()?;
            self.cx.e.xx(Code::Movaps_xmm_xmmm128, x, r)?;
            self.push(ty, Loc::Xmm(x));
        } else {
            let d = self.alloc_gpr()?;
            self.cx.e.mov_rr(d, r, ty.is_wide())?;
            self.push(ty, Loc::Gpr(d));
        }
        Ok(())
    }

    /// `local.set`/`local.tee` of pinned local `i` (in `r`) from popped value `v`.
    pub(super) fn set_pinned(
        &mut self,
        i: u32,
        r: u8,
        v: Val,
        tee: bool,
    ) -> Result<(), CompileError> {
        let ty = self.locals[i as usize];
        if let Some(k) = self.pinned.written.iter().position(|&(l, _)| l == i) {
            self.pinned.dirty |= 1 << k;
        }
        if self.cx.opts.fuse {
            // Aliases of the old value below keep it; the new one may already be in place (an
            // operator wrote its result there, or `local.set $x (local.get $x)`).
            self.materialize_aliases(r, ty.is_float())?;
            self.move_into(r, v)?;
            if tee {
                self.push(ty, alias(ty, r));
            }
            return Ok(());
        }
        self.copy_into(r, v)?;
        if tee {
            self.push(v.ty, v.loc);
        } else {
            self.release(v);
        }
        Ok(())
    }
}

impl Func<'_, '_> {
    /// Sets every pinned local at the start of a body (right after the prologue or the
    /// specialization guard, before anything ran): parameters from their slots, the others to
    /// zero with a zero idiom (their slots hold the zero the prologue stored, which is what a
    /// reload after a call reads).
    pub fn load_pinned_at_entry(&mut self) -> Result<(), CompileError> {
        let params = self.cx.m.func_type(self.index).params.len();
        self.pinned.dirty = 0;
        for k in 0..self.pinned.all.len() {
            let (i, r) = self.pinned.all[k];
            let (ty, m) = (self.locals[i as usize], self.local_mem(i));
            match (ty.is_float(), (i as usize) < params) {
                (true, true) => self.xmm_load_ty(r, m, ty)?,
                (false, true) => self.cx.e.load(r, ty.is_wide(), m)?,
                (true, false) => self.cx.e.xx(Code::Xorps_xmm_xmmm128, r, r)?,
                (false, false) => self.cx.e.ins(iced_x86::Instruction::with2(
                    Code::Xor_r32_rm32,
                    crate::emit::R32[r as usize],
                    crate::emit::R32[r as usize],
                ))?,
            }
        }
        Ok(())
    }
}
