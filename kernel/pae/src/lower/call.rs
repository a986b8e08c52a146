//! Locals, globals, direct and indirect calls, import thunks and runtime helper calls.
//!
//! Internal calling convention: the caller stores arguments in its outgoing area (`[rsp+8*i]`
//! at the call), the callee writes its results over the same slots (the caller reserves
//! `max(params, results)`), `r14`/`r15` hold the VM context and memory base, and every
//! register is caller-saved (the caller spills its value stack before a call). A defined
//! function also leaves its first scalar result in `rax`/`xmm0` (`ret.rs`).
//!
//! `r15` is current at every return: a function is entered with its instance's memory base in
//! `r15` and reloads it after everything that may move memory (the `memory.grow` helper, a
//! `call_indirect`, which may run another instance that grows a shared memory, and the
//! thunk's call of an import, host function or other instance, which the thunk follows with a
//! reload before returning; a lazy stub reloads it after its callee too). By induction every
//! direct call, of a defined function or an import's thunk, returns with `r15` current, so the
//! caller does not reload it. Nothing else moves memory while generated code runs (instances
//! that share a memory run on one thread at a time; a page-backed memory grows in place).

use iced_x86::{Code, Instruction};
use wasmparser::Operator;

use super::{Func, Loc, ModCx, RawMeta};
use crate::emit::{Cond, Emitter, R32, R64, mem, mem_idx, reg};
use crate::meta::{CallTarget, FrameLayout};
use crate::module::{FuncType, Ty};
use crate::vmctx::{TrapCode, off};
use crate::{CompileError, Libcall};

impl Func<'_, '_> {
    pub(super) fn call_or_var(&mut self, op: &Operator<'_>) -> Result<bool, CompileError> {
        match *op {
            Operator::LocalGet { local_index } if self.const_param(local_index).is_some() => {
                let bits = self.const_param(local_index).unwrap_or_default();
                self.push_const(self.locals[local_index as usize], bits)?;
            }
            Operator::LocalGet { local_index } if self.pinned.reg(local_index).is_some() => {
                let r = self.pinned.reg(local_index).unwrap_or_default();
                self.get_pinned(local_index, r)?;
            }
            Operator::LocalGet { local_index } => {
                let ty = self.locals[local_index as usize];
                let m = self.local_mem(local_index);
                if ty.is_float() {
                    let x = self.alloc_xmm()?;
                    self.xmm_load_ty(x, m, ty)?;
                    self.push(ty, Loc::Xmm(x));
                } else {
                    let r = self.alloc_gpr()?;
                    self.cx.e.load(r, ty.is_wide(), m)?;
                    self.push(ty, Loc::Gpr(r));
                }
            }
            Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                let tee = matches!(op, Operator::LocalTee { .. });
                let v = self.pop();
                if let Some(r) = self.pinned.reg(local_index) {
                    self.set_pinned(local_index, r, v, tee)?;
                    return Ok(true);
                }
                let loc = if v.loc == Loc::Mem {
                    self.val_to_reg(v)?
                } else {
                    v.loc
                };
                let m = self.local_mem(local_index);
                self.write_reg_or_const(m, v.ty, loc)?;
                if tee {
                    self.push(v.ty, loc);
                } else {
                    self.release(super::Val { loc, ..v });
                }
            }
            Operator::GlobalGet { global_index } => {
                let ty = self.cx.m.globals[global_index as usize].ty;
                self.global_cell(reg::RAX, global_index)?;
                let m = mem(reg::RAX, 0);
                if ty.is_float() {
                    let x = self.alloc_xmm()?;
                    self.xmm_load_ty(x, m, ty)?;
                    self.push(ty, Loc::Xmm(x));
                } else {
                    let r = self.alloc_gpr()?;
                    self.cx.e.load(r, ty.is_wide(), m)?;
                    self.push(ty, Loc::Gpr(r));
                }
            }
            Operator::GlobalSet { global_index } => {
                let v = self.pop();
                let loc = if v.loc == Loc::Mem {
                    self.val_to_reg(v)?
                } else {
                    v.loc
                };
                self.global_cell(reg::RCX, global_index)?;
                self.write_reg_or_const(mem(reg::RCX, 0), v.ty, loc)?;
                self.release(super::Val { loc, ..v });
            }
            Operator::Call { function_index } => {
                let m = self.cx.m;
                let ty = m.func_type(function_index);
                self.pass_args(ty)?;
                self.store_pinned()?;
                if self.cx.via_cell[function_index as usize] {
                    super::lazy::call_cell(self, function_index)?;
                } else {
                    let label = self.cx.func_labels[function_index as usize];
                    self.note_call(CallTarget::Func(function_index));
                    self.cx.e.call(label)?;
                }
                self.load_pinned()?;
                // A defined function of this module (reached directly or through its code
                // cell) also leaves its first result in `rax`/`xmm0` (`ret.rs`).
                let in_reg = function_index >= self.cx.m.func_imports;
                // Every callee of a direct call returns with `r15` current (module doc).
                self.after_call(ty, in_reg, false)?;
            }
            Operator::CallIndirect {
                type_index,
                table_index,
            } => self.call_indirect(type_index, table_index)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Writes a register or constant (never `Mem`) to 8-byte storage.
    fn write_reg_or_const(
        &mut self,
        m: iced_x86::MemoryOperand,
        ty: Ty,
        loc: Loc,
    ) -> Result<(), CompileError> {
        let v = super::Val { ty, loc, depth: 0 };
        self.write_val(m, v)
    }

    /// Stores the top `n` values into the outgoing area (`[rsp + 8*slot]`, deepest first; a
    /// v128 takes two slots), pops them and spills the rest of the value stack.
    fn store_outgoing(&mut self, n: usize) -> Result<(), CompileError> {
        let base = self.height() - n;
        let mut at = 0;
        for i in 0..n {
            let (t, loc) = self.peek(n - 1 - i);
            let v = super::Val {
                ty: t,
                loc,
                depth: base + i,
            };
            self.write_val(mem(reg::RSP, 8 * at), v)?;
            at += t.slots() as i32;
        }
        self.truncate(base);
        self.spill_all()
    }

    /// Stores the top `params` values into the outgoing area and spills the rest.
    fn pass_args(&mut self, ty: &FuncType) -> Result<(), CompileError> {
        self.store_outgoing(ty.params.len())?;
        self.max_out = self.max_out.max(ty.slots());
        Ok(())
    }

    /// Reloads the memory base (when `reload`: the callee may have moved memory) and pushes
    /// the results from the outgoing area, the first from `rax`/`xmm0` when `first_in_reg`
    /// and it is returned there (`ret.rs`).
    fn after_call(
        &mut self,
        ty: &FuncType,
        first_in_reg: bool,
        reload: bool,
    ) -> Result<(), CompileError> {
        if reload {
            self.reload_membase()?;
        }
        let at = crate::module::slot_offsets(&ty.results);
        let in_reg = first_in_reg && super::ret::first_result_in_reg(&ty.results);
        for (i, &t) in ty.results.iter().enumerate() {
            let m = mem(reg::RSP, 8 * at[i] as i32);
            if i == 0 && in_reg {
                // Nothing since the call wrote `rax` or `xmm0`; nothing is spilled here (the
                // stack was spilled for the call), so the allocation emits no code.
                if t.is_float() {
                    let x = self.alloc_xmm()?;
                    self.cx.e.xx(Code::Movaps_xmm_xmmm128, x, 0)?;
                    self.push(t, Loc::Xmm(x));
                } else {
                    let r = self.alloc_gpr()?;
                    self.cx.e.mov_rr(r, reg::RAX, t.is_wide())?;
                    self.push(t, Loc::Gpr(r));
                }
            } else if t.is_float() {
                let x = self.alloc_xmm()?;
                self.xmm_load_ty(x, m, t)?;
                self.push(t, Loc::Xmm(x));
            } else {
                let r = self.alloc_gpr()?;
                self.cx.e.load(r, t.is_wide(), m)?;
                self.push(t, Loc::Gpr(r));
            }
        }
        Ok(())
    }

    /// Loads the address of global `index`'s cell into `dst`.
    fn global_cell(&mut self, dst: u8, index: u32) -> Result<(), CompileError> {
        let e = &mut self.cx.e;
        e.load(dst, true, mem(reg::VMCTX, off::GLOBALS))?;
        e.load(dst, true, mem(dst, 8 * index as i32))
    }

    /// `call_indirect`: bounds check, null check and signature check on the funcref in the
    /// table, then a call with the funcref's VM context (another instance's when the table is
    /// shared), restoring this function's afterwards.
    fn call_indirect(&mut self, type_index: u32, table: u32) -> Result<(), CompileError> {
        let m = self.cx.m;
        let ty = &m.types[type_index as usize];
        let index = self.pop();
        let r = self.gpr_of(index)?;
        self.pass_args(ty)?;
        self.store_pinned()?;
        let ri = R64[r as usize];
        let e = &mut self.cx.e;
        e.mov_rr(r, r, false)?;
        e.load(reg::RAX, true, mem(reg::VMCTX, off::TABLES))?;
        e.load(reg::RAX, true, mem(reg::RAX, 8 * table as i32))?;
        e.ins(Instruction::with2(
            Code::Cmp_r64_rm64,
            ri,
            mem(reg::RAX, off::TABLE_DEF_LEN),
        ))?;
        let oob = self.cx.trap(TrapCode::TableOutOfBounds);
        self.cx.e.jcc(Cond::Ae, oob)?;
        let e = &mut self.cx.e;
        e.load(reg::RAX, true, mem(reg::RAX, off::TABLE_DEF_BASE))?;
        e.ins(Instruction::with2(
            Code::Mov_r64_rm64,
            R64[0],
            crate::emit::mem_scaled(reg::RAX, r, 8, 0),
        ))?;
        e.ins(Instruction::with2(Code::Test_rm64_r64, R64[0], R64[0]))?;
        let null = self.cx.trap(TrapCode::UninitializedElement);
        self.cx.e.jcc(Cond::E, null)?;
        let e = &mut self.cx.e;
        e.load(reg::RCX, true, mem(reg::VMCTX, off::SIG_IDS))?;
        e.load(reg::RCX, false, mem(reg::RCX, 4 * type_index as i32))?;
        e.ins(Instruction::with2(
            Code::Cmp_rm64_r64,
            mem(reg::RAX, off::FUNC_REF_SIG),
            R64[1],
        ))?;
        let mismatch = self.cx.trap(TrapCode::IndirectCallTypeMismatch);
        self.cx.e.jcc(Cond::Ne, mismatch)?;
        self.free_gpr(r);
        let e = &mut self.cx.e;
        e.load(reg::RCX, true, mem(reg::RAX, off::FUNC_REF_VMCTX))?;
        e.load(reg::RAX, true, mem(reg::RAX, off::FUNC_REF_CODE_CELL))?;
        enter_vmctx(e, reg::RCX)?;
        self.note_call(CallTarget::Indirect(type_index));
        self.cx
            .e
            .ins(Instruction::with1(Code::Call_rm64, mem(reg::RAX, 0)))?;
        self.cx.e.load(reg::VMCTX, true, mem(reg::RBP, -8))?;
        refresh_memory(&mut self.cx.e)?;
        self.load_pinned()?;
        self.after_call(ty, false, true)
    }

    /// Calls runtime helper `which` with up to three popped arguments (first pushed first) and
    /// pushes its result as `result` (if any). Traps when the helper set a trap code and
    /// `may_trap`.
    pub(super) fn libcall(
        &mut self,
        which: Libcall,
        nargs: usize,
        result: Option<Ty>,
        may_trap: bool,
    ) -> Result<(), CompileError> {
        self.store_outgoing(nargs)?;
        self.store_pinned()?;
        self.max_out = self.max_out.max(4);
        let e = &mut self.cx.e;
        for (i, r) in [reg::RSI, reg::RDX, reg::RCX, 8]
            .into_iter()
            .enumerate()
            .take(nargs)
        {
            e.load(r, true, mem(reg::RSP, 8 * i as i32))?;
        }
        e.mov_rr(reg::RDI, reg::VMCTX, true)?;
        e.load(reg::RAX, true, mem(reg::VMCTX, off::LIBCALLS))?;
        self.note_call(CallTarget::Libcall(which));
        self.cx.e.ins(Instruction::with1(
            Code::Call_rm64,
            mem(reg::RAX, 8 * which as i32),
        ))?;
        if may_trap {
            self.cx.e.ins(Instruction::with2(
                Code::Cmp_rm32_imm8,
                mem(reg::VMCTX, off::TRAP_CODE),
                0i32,
            ))?;
            let label = self.cx.traps.vm();
            self.cx.e.jcc(Cond::Ne, label)?;
        }
        // Only growing moves memory; the other helpers leave it where it is.
        if which == Libcall::MemoryGrow {
            self.reload_membase()?;
        }
        self.load_pinned()?;
        if let Some(t) = result {
            if t.is_float() {
                let x = self.alloc_xmm()?;
                self.gpr_to_xmm(x, reg::RAX, t.is_wide())?;
                self.push(t, Loc::Xmm(x));
            } else {
                let r = self.alloc_gpr()?;
                self.cx.e.mov_rr(r, reg::RAX, t.is_wide())?;
                self.push(t, Loc::Gpr(r));
            }
        }
        Ok(())
    }
}

/// Enters the frame of a thunk or stub with `slots` outgoing argument slots (the function's
/// label is bound already): `push rbp; mov rbp, rsp; sub rsp, FRAME`, the stack check, and the
/// VM context saved at `[rbp - 8]`. Returns the function's metadata so far.
pub(super) fn enter_small_frame(cx: &mut ModCx<'_>, slots: u32) -> Result<RawMeta, CompileError> {
    let frame_bytes = (8 + 8 * slots).next_multiple_of(16);
    let raw = RawMeta {
        start: cx.e.pos() - 1,
        frame: FrameLayout {
            frame_bytes,
            locals: 0,
            stack_slots: 0,
            outgoing_slots: slots,
        },
        ..RawMeta::default()
    };
    let e = &mut cx.e;
    e.ins(Instruction::with1(Code::Push_r64, R64[reg::RBP as usize]))?;
    e.mov_rr(reg::RBP, reg::RSP, true)?;
    e.ins(Instruction::with2(
        Code::Sub_rm64_imm32,
        R64[reg::RSP as usize],
        frame_bytes as i32,
    ))?;
    e.ins(Instruction::with2(
        Code::Cmp_r64_rm64,
        R64[reg::RSP as usize],
        mem(reg::VMCTX, off::STACK_LIMIT),
    ))?;
    let overflow = cx.trap(TrapCode::StackOverflow);
    cx.e.jcc(Cond::B, overflow)?;
    cx.e.store(mem(reg::RBP, -8), reg::VMCTX, true)?;
    Ok(raw)
}

/// Emits the thunk of imported function `index`: a function with the internal convention that
/// calls a host function (SysV) or a wasm function of another instance.
pub(super) fn emit_import_thunk(cx: &mut ModCx<'_>, index: u32) -> Result<RawMeta, CompileError> {
    let ty = cx.m.func_type(index).clone();
    let slots = ty.slots() as i32;
    let mut raw = enter_small_frame(cx, slots as u32)?;
    let e = &mut cx.e;
    let (rax, rcx, rdx) = (reg::RAX, reg::RCX, reg::RDX);
    e.load(rax, true, mem(reg::VMCTX, off::IMPORTS))?;
    e.ins(Instruction::with2(
        Code::Add_rm64_imm32,
        R64[0],
        24 * index as i32,
    ))?;
    e.ins(Instruction::with2(Code::Cmp_rm64_imm8, mem(rax, 16), 0i32))?;
    let mut wasm = e.label();
    e.jcc(Cond::Ne, wasm)?;
    // Host function: (vmctx, data, slots) -> trap code.
    e.mov_rr(reg::RDI, reg::VMCTX, true)?;
    e.load(reg::RSI, true, mem(rax, 8))?;
    e.ins(Instruction::with2(
        Code::Lea_r64_m,
        R64[rdx as usize],
        mem(reg::RBP, 16),
    ))?;
    raw.calls.push((e.pos(), CallTarget::Import(index)));
    e.ins(Instruction::with1(Code::Call_rm64, mem(rax, 0)))?;
    e.load(reg::VMCTX, true, mem(reg::RBP, -8))?;
    e.ins(Instruction::with2(Code::Test_rm32_r32, R32[0], R32[0]))?;
    let mut ok = e.label();
    e.jcc(Cond::E, ok)?;
    e.ins(Instruction::with1(
        Code::Jmp_rm64,
        mem(reg::VMCTX, off::TRAP_EXIT),
    ))?;
    e.bind(&mut ok)?;
    refresh_memory(e)?;
    e.load(reg::MEMBASE, true, mem(reg::VMCTX, off::MEMORY_BASE))?;
    e.op0(Code::Leaveq)?;
    e.op0(Code::Retnq)?;
    // Wasm function of another instance: hand over the stack state, switch vmctx.
    e.bind(&mut wasm)?;
    for i in 0..ty.param_slots() as i32 {
        e.load(rdx, true, mem(reg::RBP, 16 + 8 * i))?;
        e.store(mem(reg::RSP, 8 * i), rdx, true)?;
    }
    e.load(rcx, true, mem(rax, 8))?;
    enter_vmctx(e, rcx)?;
    raw.calls.push((e.pos(), CallTarget::ImportWasm(index)));
    e.ins(Instruction::with1(Code::Call_rm64, mem(rax, 0)))?;
    e.load(reg::VMCTX, true, mem(reg::RBP, -8))?;
    refresh_memory(e)?;
    e.load(reg::MEMBASE, true, mem(reg::VMCTX, off::MEMORY_BASE))?;
    for i in 0..ty.result_slots() as i32 {
        e.load(rdx, true, mem(reg::RSP, 8 * i))?;
        e.store(mem(reg::RBP, 16 + 8 * i), rdx, true)?;
    }
    e.op0(Code::Leaveq)?;
    e.op0(Code::Retnq)?;
    let _ = mem_idx;
    raw.end = cx.e.pos();
    Ok(raw)
}

/// Switches to the VM context in `callee` (which may be this one) for a call: hands over the
/// entry stack pointer and stack limit, refreshes its copy of the memory's place and size, and
/// ends with `mov r14, callee; mov r15, [r14]` right before the call (the shape the island
/// code's tests expect). Clobbers `rdx`; `rax` is kept.
fn enter_vmctx(e: &mut Emitter, callee: u8) -> Result<(), CompileError> {
    for field in [off::ENTRY_RSP, off::STACK_LIMIT] {
        e.load(reg::RDX, true, mem(reg::VMCTX, field))?;
        e.store(mem(callee, field), reg::RDX, true)?;
    }
    e.load(reg::RDX, true, mem(callee, off::MEMORY_DEF))?;
    for (field, def) in [(off::MEMORY_SIZE, 8), (off::MEMORY_BASE, 0)] {
        e.load(reg::MEMBASE, true, mem(reg::RDX, def))?;
        e.store(mem(callee, field), reg::MEMBASE, true)?;
    }
    e.mov_rr(reg::VMCTX, callee, true)?;
    e.load(reg::MEMBASE, true, mem(reg::VMCTX, off::MEMORY_BASE))
}

/// Copies the shared memory's current base and size into the VM context in `r14` (another
/// instance sharing the memory may have grown it). Clobbers `rcx` and `rdx`.
pub(super) fn refresh_memory(e: &mut Emitter) -> Result<(), CompileError> {
    e.load(reg::RCX, true, mem(reg::VMCTX, off::MEMORY_DEF))?;
    e.load(reg::RDX, true, mem(reg::RCX, 0))?;
    e.store(mem(reg::VMCTX, off::MEMORY_BASE), reg::RDX, true)?;
    e.load(reg::RDX, true, mem(reg::RCX, 8))?;
    e.store(mem(reg::VMCTX, off::MEMORY_SIZE), reg::RDX, true)
}
