//! The scheduler on hand-made blocks: what must move, what must not.
use super::*;
use iced_x86::{Code, MemoryOperand, Register};

fn mem(base: Register, disp: i64) -> MemoryOperand {
    MemoryOperand::with_base_displ(base, disp)
}

fn plan(insns: &[Instruction], trap_label: bool) -> Plan {
    schedule(insns, &[trap_label])
}

#[test]
fn a_load_moves_ahead_of_independent_work() {
    // add ecx, 1; add edx, 2; mov eax, [r15+rsi]; add eax, ebx  -> the load first.
    let insns = [
        Instruction::with2(Code::Add_rm32_imm8, Register::ECX, 1).unwrap(),
        Instruction::with2(Code::Add_rm32_imm8, Register::EDX, 2).unwrap(),
        Instruction::with2(
            Code::Mov_r32_rm32,
            Register::EAX,
            MemoryOperand::with_base_index(Register::R15, Register::RSI),
        )
        .unwrap(),
        Instruction::with2(Code::Add_r32_rm32, Register::EAX, Register::EBX).unwrap(),
    ];
    let p = plan(&insns, false);
    assert_eq!(p.order[0], 2);
    assert_eq!(*p.order.last().unwrap(), 3);
    // Index 0's metadata now points at the block start, index 3's at its own position.
    assert_eq!(p.index_pos[0], 0);
    assert_eq!(p.index_pos[3], 3);
    assert_eq!(p.index_pos[4], 4);
}

#[test]
fn a_guarded_load_stays_behind_its_trap_check() {
    // cmp esi, [r14+8]; ja trap; mov eax, [r15+rsi]; mov ecx, [rbp-16]
    let insns = [
        Instruction::with2(Code::Cmp_r32_rm32, Register::ESI, mem(Register::R14, 8)).unwrap(),
        Instruction::with_branch(Code::Ja_rel32_64, 0).unwrap(),
        Instruction::with2(
            Code::Mov_r32_rm32,
            Register::EAX,
            MemoryOperand::with_base_index(Register::R15, Register::RSI),
        )
        .unwrap(),
        Instruction::with2(Code::Mov_r32_rm32, Register::ECX, mem(Register::RBP, -16)).unwrap(),
    ];
    let p = plan(&insns, true);
    let pos = |i: u32| p.order.iter().position(|&x| x == i).unwrap();
    assert!(pos(0) < pos(1) && pos(1) < pos(2));
    // The frame load is free to go ahead of the check.
    assert!(pos(3) < pos(2));
    // Not a trap label: the branch is a barrier and nothing crosses it.
    let p = plan(&insns, false);
    assert_eq!(p.order, [0, 1, 2, 3]);
}

#[test]
fn a_flags_clobber_never_splits_a_compare_from_its_reader() {
    // xor eax, eax (clobber, dead); cmp ecx, edx; setb bl; add esi, 1 (last write: live)
    let insns = [
        Instruction::with2(Code::Imul_r32_rm32, Register::EDI, Register::EDI).unwrap(),
        Instruction::with2(Code::Cmp_r32_rm32, Register::ECX, Register::EDX).unwrap(),
        Instruction::with1(Code::Setb_rm8, Register::BL).unwrap(),
        Instruction::with2(Code::Add_rm32_imm8, Register::ESI, 1).unwrap(),
    ];
    let p = plan(&insns, false);
    let pos = |i: u32| p.order.iter().position(|&x| x == i).unwrap();
    assert_eq!(pos(2), pos(1) + 1, "{:?}", p.order);
    assert!(pos(3) > pos(2));
    // The multiply (a dead flags write) may go first, never between cmp and setb.
    assert_eq!(pos(0), 0);
}

#[test]
fn stores_and_faulting_loads_keep_their_order() {
    // mov [r15+rax], ecx; mov edx, [r15+rbx]; mov [rbp-8], esi; mov edi, [rbp-8]
    let insns = [
        Instruction::with2(
            Code::Mov_rm32_r32,
            MemoryOperand::with_base_index(Register::R15, Register::RAX),
            Register::ECX,
        )
        .unwrap(),
        Instruction::with2(
            Code::Mov_r32_rm32,
            Register::EDX,
            MemoryOperand::with_base_index(Register::R15, Register::RBX),
        )
        .unwrap(),
        Instruction::with2(Code::Mov_rm32_r32, mem(Register::RBP, -8), Register::ESI).unwrap(),
        Instruction::with2(Code::Mov_r32_rm32, Register::EDI, mem(Register::RBP, -8)).unwrap(),
    ];
    let p = plan(&insns, false);
    let pos = |i: u32| p.order.iter().position(|&x| x == i).unwrap();
    assert!(pos(0) < pos(1));
    assert!(pos(2) < pos(3));
}
