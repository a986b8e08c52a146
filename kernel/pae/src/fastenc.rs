//! A direct encoder for the handful of instruction forms that make up most generated code:
//! `mov`, `lea`, two-operand ALU ops and `imul` between a general register and a general
//! register or a `[base + index*scale + disp]` operand, 32 or 64 bits. It writes the same bytes
//! iced-x86's `Encoder` writes for them (the unit test compares every register pair and a set
//! of memory operands), without its general operand-table machinery; anything else (and any
//! instruction with a prefix) returns `None` and goes to iced.

use alloc::vec::Vec;

use iced_x86::{Code, Instruction, OpKind, Register};

/// Which operand is the ModRM `reg` field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `op reg, r/m`.
    RegRm,
    /// `op r/m, reg`.
    RmReg,
}

/// Opcode bytes (1 or 2), REX.W, form.
fn form(code: Code) -> Option<(&'static [u8], bool, Form)> {
    use Form::{RegRm, RmReg};
    Some(match code {
        Code::Mov_r32_rm32 => (&[0x8b], false, RegRm),
        Code::Mov_r64_rm64 => (&[0x8b], true, RegRm),
        Code::Mov_rm32_r32 => (&[0x89], false, RmReg),
        Code::Mov_rm64_r64 => (&[0x89], true, RmReg),
        Code::Lea_r32_m => (&[0x8d], false, RegRm),
        Code::Lea_r64_m => (&[0x8d], true, RegRm),
        Code::Add_r32_rm32 => (&[0x03], false, RegRm),
        Code::Add_r64_rm64 => (&[0x03], true, RegRm),
        Code::Add_rm32_r32 => (&[0x01], false, RmReg),
        Code::Add_rm64_r64 => (&[0x01], true, RmReg),
        Code::Sub_r32_rm32 => (&[0x2b], false, RegRm),
        Code::Sub_r64_rm64 => (&[0x2b], true, RegRm),
        Code::Sub_rm32_r32 => (&[0x29], false, RmReg),
        Code::Sub_rm64_r64 => (&[0x29], true, RmReg),
        Code::And_r32_rm32 => (&[0x23], false, RegRm),
        Code::And_r64_rm64 => (&[0x23], true, RegRm),
        Code::Or_r32_rm32 => (&[0x0b], false, RegRm),
        Code::Or_r64_rm64 => (&[0x0b], true, RegRm),
        Code::Xor_r32_rm32 => (&[0x33], false, RegRm),
        Code::Xor_r64_rm64 => (&[0x33], true, RegRm),
        Code::Cmp_r32_rm32 => (&[0x3b], false, RegRm),
        Code::Cmp_r64_rm64 => (&[0x3b], true, RegRm),
        Code::Cmp_rm32_r32 => (&[0x39], false, RmReg),
        Code::Cmp_rm64_r64 => (&[0x39], true, RmReg),
        Code::Test_rm32_r32 => (&[0x85], false, RmReg),
        Code::Test_rm64_r64 => (&[0x85], true, RmReg),
        Code::Imul_r32_rm32 => (&[0x0f, 0xaf], false, RegRm),
        Code::Imul_r64_rm64 => (&[0x0f, 0xaf], true, RegRm),
        _ => return None,
    })
}

/// Hardware number of a 32- or 64-bit general register.
fn gpr(r: Register, wide: bool) -> Option<u8> {
    let (lo, hi) = if wide {
        (Register::RAX, Register::R15)
    } else {
        (Register::EAX, Register::R15D)
    };
    let n = (r as u32).wrapping_sub(lo as u32);
    (n <= hi as u32 - lo as u32).then_some(n as u8)
}

/// Appends the encoding of `ins` to `out` and returns its length, if it is one of the forms
/// above.
pub(crate) fn encode(ins: &Instruction, out: &mut Vec<u8>) -> Option<usize> {
    let (opcode, w, form) = form(ins.code())?;
    if ins.op_count() != 2
        || ins.has_lock_prefix()
        || ins.has_rep_prefix()
        || ins.has_repne_prefix()
        || ins.segment_prefix() != Register::None
    {
        return None;
    }
    let (reg_op, rm_op) = match form {
        Form::RegRm => (0, 1),
        Form::RmReg => (1, 0),
    };
    if ins.op_kind(reg_op) != OpKind::Register {
        return None;
    }
    let reg = gpr(ins.op_register(reg_op), w)?;
    let mut rex = if w { 0x48 } else { 0x40 } | ((reg >> 3) << 2);
    let mut tail = [0u8; 6];
    let mut n;
    match ins.op_kind(rm_op) {
        OpKind::Register => {
            let rm = gpr(ins.op_register(rm_op), w)?;
            rex |= rm >> 3;
            tail[0] = 0xc0 | ((reg & 7) << 3) | (rm & 7);
            n = 1;
        }
        OpKind::Memory => {
            let base = gpr(ins.memory_base(), true)?;
            let index = match ins.memory_index() {
                Register::None => None,
                Register::RSP => return None,
                r => Some(gpr(r, true)?),
            };
            let scale = match ins.memory_index_scale() {
                1 => 0u8,
                2 => 1,
                4 => 2,
                8 => 3,
                _ => return None,
            };
            let displ = ins.memory_displacement64() as i64;
            if displ != i64::from(displ as i32) {
                return None;
            }
            let displ = displ as i32;
            // iced's rules: size 0 means none ([rbp]/[r13] still get a zero disp8); size 1
            // means disp8 when it fits, else disp32; 4 or 8 mean disp32.
            let (md, dsize) = match ins.memory_displ_size() {
                0 if displ != 0 => return None,
                0 if base & 7 == 5 => (0x40, 1),
                0 => (0x00, 0),
                1 if i8::try_from(displ).is_ok() => (0x40, 1),
                1 | 4 | 8 => (0x80, 4),
                _ => return None,
            };
            rex |= base >> 3;
            let needs_sib = index.is_some() || base & 7 == 4;
            if needs_sib {
                let idx = index.unwrap_or(4);
                rex |= (idx >> 3) << 1;
                tail[0] = md | ((reg & 7) << 3) | 4;
                tail[1] = (scale << 6) | ((idx & 7) << 3) | (base & 7);
                n = 2;
            } else {
                if scale != 0 {
                    return None;
                }
                tail[0] = md | ((reg & 7) << 3) | (base & 7);
                n = 1;
            }
            match dsize {
                1 => {
                    tail[n] = displ as i8 as u8;
                    n += 1;
                }
                4 => {
                    tail[n..n + 4].copy_from_slice(&displ.to_le_bytes());
                    n += 4;
                }
                _ => {}
            }
        }
        _ => return None,
    }
    let start = out.len();
    if rex != 0x40 {
        out.push(rex);
    }
    out.extend_from_slice(opcode);
    out.extend_from_slice(&tail[..n]);
    Some(out.len() - start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Encoder, MemoryOperand};

    const CODES: [Code; 28] = [
        Code::Mov_r32_rm32,
        Code::Mov_r64_rm64,
        Code::Mov_rm32_r32,
        Code::Mov_rm64_r64,
        Code::Lea_r32_m,
        Code::Lea_r64_m,
        Code::Add_r32_rm32,
        Code::Add_r64_rm64,
        Code::Add_rm32_r32,
        Code::Add_rm64_r64,
        Code::Sub_r32_rm32,
        Code::Sub_r64_rm64,
        Code::Sub_rm32_r32,
        Code::Sub_rm64_r64,
        Code::And_r32_rm32,
        Code::And_r64_rm64,
        Code::Or_r32_rm32,
        Code::Or_r64_rm64,
        Code::Xor_r32_rm32,
        Code::Xor_r64_rm64,
        Code::Cmp_r32_rm32,
        Code::Cmp_r64_rm64,
        Code::Cmp_rm32_r32,
        Code::Cmp_rm64_r64,
        Code::Test_rm32_r32,
        Code::Test_rm64_r64,
        Code::Imul_r32_rm32,
        Code::Imul_r64_rm64,
    ];

    fn reg(n: u8, wide: bool) -> Register {
        if wide {
            crate::emit::R64[n as usize]
        } else {
            crate::emit::R32[n as usize]
        }
    }

    fn memories() -> Vec<MemoryOperand> {
        let mut m = Vec::new();
        for base in 0..16u8 {
            for displ in [0i64, 8, -16, 127, -128, 128, 0x1234, -0x8000_0000] {
                m.push(MemoryOperand::with_base_displ(reg(base, true), displ));
                for index in [0u8, 5, 12, 13] {
                    for scale in [1u32, 2, 8] {
                        m.push(MemoryOperand::with_base_index_scale_displ_size(
                            reg(base, true),
                            reg(index, true),
                            scale,
                            displ,
                            1,
                        ));
                    }
                }
            }
            m.push(MemoryOperand::with_base(reg(base, true)));
        }
        m
    }

    fn iced(ins: &Instruction) -> Vec<u8> {
        let mut e = Encoder::new(64);
        e.encode(ins, 0).unwrap();
        e.take_buffer()
    }

    #[test]
    fn same_bytes_as_iced() {
        let mut checked = 0;
        for code in CODES {
            let (_, wide, form) = form(code).unwrap();
            for r in 0..16u8 {
                let mut cases = Vec::new();
                if code != Code::Lea_r32_m && code != Code::Lea_r64_m {
                    for s in 0..16u8 {
                        let a = reg(r, wide);
                        let b = reg(s, wide);
                        cases.push(Instruction::with2(code, a, b).unwrap());
                    }
                }
                for m in memories() {
                    let ins = match form {
                        Form::RegRm => Instruction::with2(code, reg(r, wide), m),
                        Form::RmReg => Instruction::with2(code, m, reg(r, wide)),
                    };
                    cases.push(ins.unwrap());
                }
                for ins in cases {
                    let mut out = Vec::new();
                    let len = encode(&ins, &mut out).expect("a direct form");
                    assert_eq!(out, iced(&ins), "{ins:?}");
                    assert_eq!(len, out.len());
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000);
    }

    #[test]
    fn other_forms_go_to_iced() {
        let mut out = Vec::new();
        let ins = Instruction::with2(Code::Add_rm32_imm8, Register::EAX, 1).unwrap();
        assert!(encode(&ins, &mut out).is_none());
        let m = MemoryOperand::with_base_displ(Register::RIP, 16);
        let ins = Instruction::with2(Code::Lea_r64_m, Register::RAX, m).unwrap();
        assert!(encode(&ins, &mut out).is_none());
        assert!(out.is_empty());
    }
}
