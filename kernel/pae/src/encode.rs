//! Encoding an instruction list to machine code: each instruction is encoded once, with
//! iced-x86's [`Encoder`] or, for the most common register and memory forms, `fastenc`
//! (which writes iced's bytes directly); label branches are sized by a short relaxation over
//! integers and written by hand.
//!
//! Lowering produces position-independent code: the only position-dependent instructions are
//! the branches to labels (`jmp`, `jcc`, `call rel32`), whose target operand holds a label id,
//! and `lea r64, [rip + label]` (a jump table's address; its displacement holds the label id,
//! always `disp32`: 7 bytes).
//! Every other instruction has the same bytes wherever it lands, so it is encoded exactly once,
//! at address 0, into one scratch buffer. Branches start short (`jmp rel8`, `jcc rel8`;
//! `call` is always `rel32`); each round lays out the code and widens every short branch whose
//! target is out of `rel8` range, until a round widens nothing. A branch only grows, and
//! growing never shortens another's distance, so this ends with the smallest sizes this scheme
//! can give (what iced's `BlockEncoder` gives, without its per-instruction objects and its
//! second encoding pass). The scratch bytes are then copied out in runs, one per stretch
//! between two branches.

use alloc::vec::Vec;

use iced_x86::{Code, ConditionCode, Encoder, Instruction, OpKind, Register};

use crate::CompileError;
use crate::fastenc;

/// A bound label: the instruction index of its zero-byte marker.
pub(crate) type LabelPos = u32;

/// A label no `bind` reached.
pub(crate) const UNBOUND: LabelPos = u32::MAX;

#[derive(Clone, Copy)]
enum BranchOp {
    Jmp,
    Jcc(u8),
    Call,
    /// `lea r64, [rip + label]` (the register's number).
    Lea(u8),
}

#[derive(Clone, Copy)]
struct Branch {
    op: BranchOp,
    target: LabelPos,
    near: bool,
    /// Bytes of the other instructions before it (where it goes between the scratch bytes).
    scratch_at: u32,
}

impl Branch {
    fn size(&self) -> u32 {
        match (self.op, self.near) {
            (BranchOp::Call, _) => 5,
            (BranchOp::Lea(_), _) => 7,
            (_, false) => 2,
            (BranchOp::Jmp, true) => 5,
            (BranchOp::Jcc(_), true) => 6,
        }
    }
}

/// Which label branch `ins` is, if any (its target operand is then a label id; for a label
/// `lea`, its displacement).
fn branch_op(ins: &Instruction) -> Result<Option<BranchOp>, CompileError> {
    if ins.code() == Code::Lea_r64_m && ins.memory_base() == Register::RIP {
        let r = ins.op0_register().number() as u8;
        return Ok(Some(BranchOp::Lea(r)));
    }
    if ins.op_count() == 0 || ins.op0_kind() != OpKind::NearBranch64 {
        return Ok(None);
    }
    let code = ins.code();
    Ok(Some(match code {
        Code::Jmp_rel8_64 | Code::Jmp_rel32_64 => BranchOp::Jmp,
        Code::Call_rel32_64 => BranchOp::Call,
        _ => match code.condition_code() {
            ConditionCode::None => {
                return Err(CompileError::Assembler(alloc::format!(
                    "unsupported branch {code:?}"
                )));
            }
            cc => BranchOp::Jcc(cc as u8 - 1),
        },
    }))
}

/// Machine code and the code offset of each position of the encoded order (one past the end
/// included).
pub(crate) struct Encoded {
    pub code: Vec<u8>,
    pub offsets: Vec<u32>,
}

/// Encodes `insns` in the order `order` (positions to instruction indices; `None`: as they
/// are). `labels` maps label ids to the instruction index of their marker, which must be at
/// the same position in `order`.
pub(crate) fn encode(
    insns: &[Instruction],
    order: Option<&[u32]>,
    labels: &[LabelPos],
) -> Result<Encoded, CompileError> {
    let n = insns.len();
    let at = |p: usize| match order {
        Some(o) => &insns[o[p] as usize],
        None => &insns[p],
    };
    let mut encoder = Encoder::try_new(64)?;
    let mut scratch: Vec<u8> = Vec::with_capacity(n * 5);
    let mut sizes: Vec<u32> = Vec::with_capacity(n);
    let mut branches: Vec<(u32, Branch)> = Vec::new();
    for p in 0..n {
        let ins = at(p);
        // Most instructions are forms `fastenc` writes (never a label branch, a label `lea`
        // or a rip-relative operand: it refuses those).
        if let Some(len) = fastenc::encode(ins, &mut scratch) {
            sizes.push(len as u32);
            continue;
        }
        if ins.code() == Code::Zero_bytes {
            sizes.push(0);
            continue;
        }
        if let Some(op) = branch_op(ins)? {
            let label = match op {
                BranchOp::Lea(_) => ins.memory_displacement64(),
                _ => ins.near_branch64(),
            };
            let target = *labels
                .get(label as usize)
                .filter(|&&t| t != UNBOUND)
                .ok_or_else(|| CompileError::Assembler(alloc::format!("unbound label {label}")))?;
            let b = Branch {
                op,
                target,
                near: matches!(op, BranchOp::Lea(_)),
                scratch_at: scratch.len() as u32,
            };
            sizes.push(b.size());
            branches.push((p as u32, b));
            continue;
        }
        if ins.is_ip_rel_memory_operand() {
            return Err(CompileError::Assembler(alloc::format!(
                "rip-relative operand in {:?}",
                ins.code()
            )));
        }
        encoder.set_buffer(core::mem::take(&mut scratch));
        let len = encoder.encode(ins, 0);
        scratch = encoder.take_buffer();
        sizes.push(len? as u32);
    }

    // Relaxation: lay out, widen what does not reach, repeat.
    let mut offsets: Vec<u32> = alloc::vec![0; n + 1];
    loop {
        let mut off = 0u32;
        for (o, s) in offsets.iter_mut().zip(&sizes) {
            *o = off;
            off += s;
        }
        offsets[n] = off;
        let mut widened = false;
        for (p, b) in branches.iter_mut() {
            if b.near {
                continue;
            }
            let end = i64::from(offsets[*p as usize]) + 2;
            let rel = i64::from(offsets[b.target as usize]) - end;
            if !(-128..=127).contains(&rel) {
                b.near = true;
                sizes[*p as usize] = b.size();
                widened = true;
            }
        }
        if !widened {
            break;
        }
    }

    // The scratch bytes are in position order: copy the runs between branches whole.
    let mut code = Vec::with_capacity(offsets[n] as usize);
    let mut copied = 0usize;
    for &(p, b) in &branches {
        code.extend_from_slice(&scratch[copied..b.scratch_at as usize]);
        copied = b.scratch_at as usize;
        let end = i64::from(offsets[p as usize]) + i64::from(b.size());
        let rel = i64::from(offsets[b.target as usize]) - end;
        match (b.op, b.near) {
            (BranchOp::Jmp, false) => code.extend_from_slice(&[0xeb, rel as i8 as u8]),
            (BranchOp::Jcc(cc), false) => code.extend_from_slice(&[0x70 | cc, rel as i8 as u8]),
            (BranchOp::Jmp, true) => {
                code.push(0xe9);
                code.extend_from_slice(&(rel as i32).to_le_bytes());
            }
            (BranchOp::Jcc(cc), true) => {
                code.extend_from_slice(&[0x0f, 0x80 | cc]);
                code.extend_from_slice(&(rel as i32).to_le_bytes());
            }
            (BranchOp::Call, _) => {
                code.push(0xe8);
                code.extend_from_slice(&(rel as i32).to_le_bytes());
            }
            (BranchOp::Lea(r), _) => {
                // REX.W (+ REX.R for r8-r15), 8D /r, ModRM mod=00 rm=101: [rip + disp32].
                code.extend_from_slice(&[0x48 | (r >> 3 & 1) << 2, 0x8d, 0x05 | (r & 7) << 3]);
                code.extend_from_slice(&(rel as i32).to_le_bytes());
            }
        }
    }
    code.extend_from_slice(&scratch[copied..]);
    debug_assert_eq!(code.len(), offsets[n] as usize);
    Ok(Encoded { code, offsets })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Register};

    /// Decodes `code` and returns each instruction's offset, code and branch target.
    fn decode(code: &[u8]) -> Vec<(u64, Code, u64)> {
        let mut d = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
        let mut out = Vec::new();
        while d.can_decode() {
            let i = d.decode();
            assert_ne!(i.code(), Code::INVALID);
            let target = if i.op_count() > 0 && i.op0_kind() == OpKind::NearBranch64 {
                i.near_branch64()
            } else {
                0
            };
            out.push((i.ip(), i.code(), target));
        }
        out
    }

    #[test]
    fn branches_land_on_labels_short_and_near() {
        // label 0 at the start; a loop body of `pad` instructions; jcc back; jmp forward
        // over another `pad`; label 1 at the end; a call back to label 0.
        for pad in [3usize, 40] {
            let mut insns = Vec::new();
            let mut labels = alloc::vec![UNBOUND; 2];
            labels[0] = insns.len() as u32;
            insns.push(Instruction::with(Code::Zero_bytes));
            for _ in 0..pad {
                insns.push(
                    Instruction::with2(Code::Add_rm64_imm32, Register::RAX, 0x1234_5678).unwrap(),
                );
            }
            insns.push(Instruction::with_branch(Code::Jne_rel32_64, 0).unwrap());
            insns.push(Instruction::with_branch(Code::Jmp_rel32_64, 1).unwrap());
            for _ in 0..pad {
                insns.push(
                    Instruction::with2(Code::Add_rm64_imm32, Register::RCX, 0x1234_5678).unwrap(),
                );
            }
            labels[1] = insns.len() as u32;
            insns.push(Instruction::with(Code::Zero_bytes));
            insns.push(Instruction::with_branch(Code::Call_rel32_64, 0).unwrap());
            let enc = encode(&insns, None, &labels).unwrap();
            let d = decode(&enc.code);
            // Every offset is an instruction start and matches the decoder's view.
            let starts: Vec<u64> = d.iter().map(|x| x.0).collect();
            for (p, ins) in insns.iter().enumerate() {
                if ins.code() != Code::Zero_bytes {
                    assert!(starts.contains(&u64::from(enc.offsets[p])));
                }
            }
            let jne = d[pad];
            let jmp = d[pad + 1];
            let call = d[d.len() - 1];
            assert_eq!(jne.2, 0);
            assert_eq!(jmp.2, u64::from(enc.offsets[labels[1] as usize]));
            assert_eq!(call.2, 0);
            assert_eq!(call.1, Code::Call_rel32_64);
            // Short when in range (3 * 7 bytes), near when not (40 * 7 bytes).
            let short = pad == 3;
            assert_eq!(
                jne.1,
                if short {
                    Code::Jne_rel8_64
                } else {
                    Code::Jne_rel32_64
                }
            );
            assert_eq!(
                jmp.1,
                if short {
                    Code::Jmp_rel8_64
                } else {
                    Code::Jmp_rel32_64
                }
            );
        }
    }

    #[test]
    fn unbound_labels_and_rip_relative_operands_are_errors() {
        let insns = [Instruction::with_branch(Code::Jmp_rel32_64, 0).unwrap()];
        assert!(encode(&insns, None, &[UNBOUND]).is_err());
        // A rip-relative operand other than a label `lea` (here a load) is refused.
        let m = iced_x86::MemoryOperand::with_base_displ(Register::RIP, 0);
        let insns = [Instruction::with2(Code::Mov_r64_rm64, Register::RAX, m).unwrap()];
        assert!(encode(&insns, None, &[0]).is_err());
        // A label `lea` with an unbound label too.
        let insns = [Instruction::with2(Code::Lea_r64_m, Register::RAX, m).unwrap()];
        assert!(encode(&insns, None, &[UNBOUND]).is_err());
    }

    #[test]
    fn label_lea_points_at_its_label_from_any_register() {
        // lea r, [rip + label 0]; 200 bytes of padding (so neither end is near); label 0;
        // and a backward lea after it.
        for r in [Register::RAX, Register::RCX, Register::R8, Register::R15] {
            let m = iced_x86::MemoryOperand::with_base_displ(Register::RIP, 0);
            let mut insns = alloc::vec![Instruction::with2(Code::Lea_r64_m, r, m).unwrap()];
            for _ in 0..30 {
                insns.push(
                    Instruction::with2(Code::Add_rm64_imm32, Register::RDX, 0x1234_5678).unwrap(),
                );
            }
            let labels = [insns.len() as u32];
            insns.push(Instruction::with(Code::Zero_bytes));
            insns.push(Instruction::with2(Code::Lea_r64_m, r, m).unwrap());
            let enc = encode(&insns, None, &labels).unwrap();
            let mut d = Decoder::with_ip(64, &enc.code, 0, DecoderOptions::NONE);
            let want = u64::from(enc.offsets[labels[0] as usize]);
            let mut leas = 0;
            while d.can_decode() {
                let i = d.decode();
                if i.code() == Code::Lea_r64_m {
                    assert_eq!(i.op0_register(), r);
                    assert_eq!(i.len(), 7);
                    assert_eq!(i.ip_rel_memory_address(), want);
                    leas += 1;
                }
            }
            assert_eq!(leas, 2);
        }
    }
}
