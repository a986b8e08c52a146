//! The entry trampoline (Rust to generated code) and the trap stubs.
//!
//! `entry(vmctx: rdi, func_cell: rsi, slots: rdx, nslots: rcx) -> eax` saves the SysV
//! callee-saved registers, records its stack pointer in `VmContext::entry_rsp`, copies the
//! argument slots to an outgoing area, calls the function whose address is in `*func_cell`
//! (`call [rax]`: the address is read by the call itself, so an embedder that moves functions
//! and rewrites the cell while the world is stopped can never have a thread holding the old
//! address between reading it and calling it) with the internal convention and copies the
//! results back; it returns 0. A trap stub loads a trap code into `eax` and jumps to `VmContext::trap_exit`,
//! which restores `rsp`/`rbp` from `entry_rsp` and leaves through the same epilogue, so a trap
//! unwinds every wasm frame at once.
//!
//! Trampoline frame (from its `rbp`): `-8..-40` rbx, r12, r13, r14, r15; `-48` the previous
//! `entry_rsp` (re-entrancy); `-56` vmctx; `-64` slots; `-72` nslots; `-80` padding.

use iced_x86::{Code, Instruction};

use crate::CompileError;
use crate::emit::{Emitter, R32, R64, mem, reg};
use crate::trap_labels::TrapLabels;
use crate::vmctx::{TrapCode, off};

const SAVED: [u8; 5] = [3, 12, 13, 14, 15];
const FRAME_BELOW_RBP: i32 = 80;

fn push(e: &mut Emitter, r: u8) -> Result<(), CompileError> {
    e.ins(Instruction::with1(Code::Push_r64, R64[r as usize]))
}

fn pop(e: &mut Emitter, r: u8) -> Result<(), CompileError> {
    e.ins(Instruction::with1(Code::Pop_r64, R64[r as usize]))
}

/// Emits the trampoline; returns the instruction indices of the entry and the trap exit.
pub(crate) fn emit_entry(e: &mut Emitter) -> Result<(usize, usize), CompileError> {
    let (rax, rcx, rdx, rsi, rdi, rbp, rsp) = (0, 1, 2, 6, 7, reg::RBP, reg::RSP);
    let entry = e.pos();
    push(e, rbp)?;
    e.mov_rr(rbp, rsp, true)?;
    for r in SAVED {
        push(e, r)?;
    }
    e.ins(Instruction::with1(
        Code::Push_rm64,
        mem(rdi, off::ENTRY_RSP),
    ))?;
    push(e, rdi)?;
    push(e, rdx)?;
    push(e, rcx)?;
    push(e, rcx)?;
    e.mov_rr(reg::VMCTX, rdi, true)?;
    e.store(mem(reg::VMCTX, off::ENTRY_RSP), rsp, true)?;
    e.load(reg::MEMBASE, true, mem(reg::VMCTX, off::MEMORY_BASE))?;
    // Outgoing area: nslots rounded up to an even count, 8 bytes each.
    e.ins(Instruction::with2(
        Code::Lea_r64_m,
        R64[rax as usize],
        mem(rcx, 1),
    ))?;
    e.ins(Instruction::with2(
        Code::And_rm64_imm8,
        R64[rax as usize],
        -2i32,
    ))?;
    e.ins(Instruction::with2(
        Code::Shl_rm64_imm8,
        R64[rax as usize],
        3u32,
    ))?;
    e.ins(Instruction::with2(
        Code::Sub_r64_rm64,
        R64[rsp as usize],
        R64[rax as usize],
    ))?;
    e.mov_rr(rax, rsi, true)?;
    e.mov_rr(rsi, rdx, true)?;
    e.mov_rr(rdi, rsp, true)?;
    e.ins(Instruction::with_rep_movsq(64))?;
    e.ins(Instruction::with1(Code::Call_rm64, mem(rax, 0)))?;
    e.load(rcx, true, mem(rbp, -72))?;
    e.load(rdi, true, mem(rbp, -64))?;
    e.mov_rr(rsi, rsp, true)?;
    e.ins(Instruction::with_rep_movsq(64))?;
    e.ins(Instruction::with2(Code::Xor_r32_rm32, R32[0], R32[0]))?;
    let mut exit = e.label();
    e.bind(&mut exit)?;
    e.load(rcx, true, mem(rbp, -56))?;
    e.load(rdx, true, mem(rbp, -48))?;
    e.store(mem(rcx, off::ENTRY_RSP), rdx, true)?;
    e.ins(Instruction::with2(
        Code::Lea_r64_m,
        R64[rsp as usize],
        mem(rbp, -40),
    ))?;
    for r in SAVED.iter().rev() {
        pop(e, *r)?;
    }
    pop(e, rbp)?;
    e.op0(Code::Retnq)?;
    let trap_exit = e.pos();
    e.load(rsp, true, mem(reg::VMCTX, off::ENTRY_RSP))?;
    e.ins(Instruction::with2(
        Code::Lea_r64_m,
        R64[rbp as usize],
        mem(rsp, FRAME_BELOW_RBP),
    ))?;
    e.jmp(exit)?;
    Ok((entry, trap_exit))
}

/// Emits one stub per trap code plus the "code in `VmContext::trap_code`" stub.
pub(crate) fn emit_trap_stubs(e: &mut Emitter, labels: &TrapLabels) -> Result<(), CompileError> {
    for code in TrapCode::ALL {
        let mut label = labels.code(code);
        e.bind(&mut label)?;
        e.mov_imm(reg::RAX, false, code as u64)?;
        e.ins(Instruction::with1(
            Code::Jmp_rm64,
            mem(reg::VMCTX, off::TRAP_EXIT),
        ))?;
    }
    let mut label = labels.vm();
    e.bind(&mut label)?;
    e.load(reg::RAX, false, mem(reg::VMCTX, off::TRAP_CODE))?;
    e.ins(Instruction::with2(
        Code::Mov_rm32_imm32,
        mem(reg::VMCTX, off::TRAP_CODE),
        0u32,
    ))?;
    e.ins(Instruction::with1(
        Code::Jmp_rm64,
        mem(reg::VMCTX, off::TRAP_EXIT),
    ))
}
