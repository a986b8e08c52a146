//! A direct encoder for the instruction forms that make up most generated code: `mov`,
//! `lea`, `movzx`/`movsx`, ALU ops, shifts by an immediate, `imul`, `setcc`, `cmovcc`,
//! `push`/`pop`, `ret`/`leave`/`ud2` and indirect `jmp`/`call`, between general registers,
//! `[base + index*scale + disp]` operands and immediates. It writes the same bytes iced-x86's
//! `Encoder` writes for them (the unit test compares every register pair, a set of memory
//! operands and immediates for every form), without its general operand-table machinery;
//! anything else (and any instruction with a prefix) returns `None` and goes to iced.

use alloc::vec::Vec;

use iced_x86::{Code, Instruction, OpKind, Register};

/// A general register operand's width.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum W {
    B8,
    W16,
    D32,
    Q64,
}

/// Where the operands go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `op reg, r/m`.
    RegRm(W, W),
    /// `op r/m, reg`.
    RmReg(W, W),
    /// `op r/m, imm` (ModRM `reg` field: the digit; immediate bytes).
    RmImm(W, u8, u8),
    /// `op reg, r/m, imm` (immediate bytes).
    RegRmImm(W, u8),
    /// `op r/m` (ModRM `reg` field: the digit).
    Rm(W, u8),
    /// The register in the opcode's low bits, then an immediate of this many bytes (0: none).
    PlusReg(W, u8),
    /// No operand.
    Bare,
}

/// A form: the `0x66` operand-size prefix, REX.W, the `0F` escape, the opcode byte and the
/// operands.
#[derive(Clone, Copy, Debug)]
struct Form {
    p66: bool,
    w: bool,
    esc: bool,
    op: u8,
    kind: Kind,
}

/// A one-byte opcode.
const fn one(w: bool, op: u8, kind: Kind) -> Form {
    Form {
        p66: false,
        w,
        esc: false,
        op,
        kind,
    }
}

/// A `0F xx` opcode.
const fn two(w: bool, op: u8, kind: Kind) -> Form {
    Form {
        esc: true,
        ..one(w, op, kind)
    }
}

/// `op r/m, imm`: ModRM digit, immediate bytes.
const fn imm(w: bool, op: u8, digit: u8, bytes: u8) -> Form {
    one(
        w,
        op,
        Kind::RmImm(if w { W::Q64 } else { W::D32 }, digit, bytes),
    )
}

/// The form of `code`, if it is one this encoder writes.
fn form(code: Code) -> Option<Form> {
    use Kind::*;
    use W::*;
    let (d, q) = (RegRm(D32, D32), RegRm(Q64, Q64));
    let (md, mq) = (RmReg(D32, D32), RmReg(Q64, Q64));
    Some(match code {
        Code::Mov_r32_rm32 => one(false, 0x8b, d),
        Code::Mov_r64_rm64 => one(true, 0x8b, q),
        Code::Mov_rm32_r32 => one(false, 0x89, md),
        Code::Mov_rm64_r64 => one(true, 0x89, mq),
        Code::Mov_rm16_r16 => Form {
            p66: true,
            ..one(false, 0x89, RmReg(W16, W16))
        },
        Code::Mov_rm8_r8 => one(false, 0x88, RmReg(B8, B8)),
        Code::Lea_r32_m => one(false, 0x8d, d),
        Code::Lea_r64_m => one(true, 0x8d, q),
        Code::Movzx_r32_rm8 => two(false, 0xb6, RegRm(D32, B8)),
        Code::Movzx_r32_rm16 => two(false, 0xb7, RegRm(D32, W16)),
        Code::Movsx_r32_rm8 => two(false, 0xbe, RegRm(D32, B8)),
        Code::Movsx_r32_rm16 => two(false, 0xbf, RegRm(D32, W16)),
        Code::Movsx_r64_rm8 => two(true, 0xbe, RegRm(Q64, B8)),
        Code::Movsx_r64_rm16 => two(true, 0xbf, RegRm(Q64, W16)),
        Code::Movsxd_r64_rm32 => one(true, 0x63, RegRm(Q64, D32)),
        Code::Add_r32_rm32 => one(false, 0x03, d),
        Code::Add_r64_rm64 => one(true, 0x03, q),
        Code::Add_rm32_r32 => one(false, 0x01, md),
        Code::Add_rm64_r64 => one(true, 0x01, mq),
        Code::Sub_r32_rm32 => one(false, 0x2b, d),
        Code::Sub_r64_rm64 => one(true, 0x2b, q),
        Code::Sub_rm32_r32 => one(false, 0x29, md),
        Code::Sub_rm64_r64 => one(true, 0x29, mq),
        Code::And_r32_rm32 => one(false, 0x23, d),
        Code::And_r64_rm64 => one(true, 0x23, q),
        Code::Or_r32_rm32 => one(false, 0x0b, d),
        Code::Or_r64_rm64 => one(true, 0x0b, q),
        Code::Xor_r32_rm32 => one(false, 0x33, d),
        Code::Xor_r64_rm64 => one(true, 0x33, q),
        Code::Cmp_r32_rm32 => one(false, 0x3b, d),
        Code::Cmp_r64_rm64 => one(true, 0x3b, q),
        Code::Cmp_rm32_r32 => one(false, 0x39, md),
        Code::Cmp_rm64_r64 => one(true, 0x39, mq),
        Code::Test_rm32_r32 => one(false, 0x85, md),
        Code::Test_rm64_r64 => one(true, 0x85, mq),
        Code::Imul_r32_rm32 => two(false, 0xaf, d),
        Code::Imul_r64_rm64 => two(true, 0xaf, q),
        Code::Imul_r32_rm32_imm32 => one(false, 0x69, RegRmImm(D32, 4)),
        Code::Imul_r64_rm64_imm32 => one(true, 0x69, RegRmImm(Q64, 4)),
        Code::Imul_r32_rm32_imm8 => one(false, 0x6b, RegRmImm(D32, 1)),
        Code::Imul_r64_rm64_imm8 => one(true, 0x6b, RegRmImm(Q64, 1)),
        Code::Mov_rm32_imm32 => imm(false, 0xc7, 0, 4),
        Code::Mov_rm64_imm32 => imm(true, 0xc7, 0, 4),
        Code::Test_rm32_imm32 => imm(false, 0xf7, 0, 4),
        Code::Test_rm64_imm32 => imm(true, 0xf7, 0, 4),
        // The ALU group by its ModRM digit: `81 /n id`, `83 /n ib`.
        Code::Add_rm32_imm32 => imm(false, 0x81, 0, 4),
        Code::Add_rm64_imm32 => imm(true, 0x81, 0, 4),
        Code::Add_rm32_imm8 => imm(false, 0x83, 0, 1),
        Code::Add_rm64_imm8 => imm(true, 0x83, 0, 1),
        Code::Or_rm32_imm32 => imm(false, 0x81, 1, 4),
        Code::Or_rm64_imm32 => imm(true, 0x81, 1, 4),
        Code::Or_rm32_imm8 => imm(false, 0x83, 1, 1),
        Code::Or_rm64_imm8 => imm(true, 0x83, 1, 1),
        Code::And_rm32_imm32 => imm(false, 0x81, 4, 4),
        Code::And_rm64_imm32 => imm(true, 0x81, 4, 4),
        Code::And_rm32_imm8 => imm(false, 0x83, 4, 1),
        Code::And_rm64_imm8 => imm(true, 0x83, 4, 1),
        Code::Sub_rm32_imm32 => imm(false, 0x81, 5, 4),
        Code::Sub_rm64_imm32 => imm(true, 0x81, 5, 4),
        Code::Sub_rm32_imm8 => imm(false, 0x83, 5, 1),
        Code::Sub_rm64_imm8 => imm(true, 0x83, 5, 1),
        Code::Xor_rm32_imm32 => imm(false, 0x81, 6, 4),
        Code::Xor_rm64_imm32 => imm(true, 0x81, 6, 4),
        Code::Xor_rm32_imm8 => imm(false, 0x83, 6, 1),
        Code::Xor_rm64_imm8 => imm(true, 0x83, 6, 1),
        Code::Cmp_rm32_imm32 => imm(false, 0x81, 7, 4),
        Code::Cmp_rm64_imm32 => imm(true, 0x81, 7, 4),
        Code::Cmp_rm32_imm8 => imm(false, 0x83, 7, 1),
        Code::Cmp_rm64_imm8 => imm(true, 0x83, 7, 1),
        // Shifts and rotates by an immediate: `C1 /n ib`.
        Code::Rol_rm32_imm8 => imm(false, 0xc1, 0, 1),
        Code::Rol_rm64_imm8 => imm(true, 0xc1, 0, 1),
        Code::Ror_rm32_imm8 => imm(false, 0xc1, 1, 1),
        Code::Ror_rm64_imm8 => imm(true, 0xc1, 1, 1),
        Code::Shl_rm32_imm8 => imm(false, 0xc1, 4, 1),
        Code::Shl_rm64_imm8 => imm(true, 0xc1, 4, 1),
        Code::Shr_rm32_imm8 => imm(false, 0xc1, 5, 1),
        Code::Shr_rm64_imm8 => imm(true, 0xc1, 5, 1),
        Code::Sar_rm32_imm8 => imm(false, 0xc1, 7, 1),
        Code::Sar_rm64_imm8 => imm(true, 0xc1, 7, 1),
        Code::Mov_r32_imm32 => one(false, 0xb8, PlusReg(D32, 4)),
        Code::Mov_r64_imm64 => one(true, 0xb8, PlusReg(Q64, 8)),
        Code::Push_r64 => one(false, 0x50, PlusReg(Q64, 0)),
        Code::Pop_r64 => one(false, 0x58, PlusReg(Q64, 0)),
        Code::Jmp_rm64 => one(false, 0xff, Rm(Q64, 4)),
        Code::Call_rm64 => one(false, 0xff, Rm(Q64, 2)),
        Code::Retnq => one(false, 0xc3, Bare),
        Code::Leaveq => one(false, 0xc9, Bare),
        Code::Ud2 => two(false, 0x0b, Bare),
        _ => return conditional(code),
    })
}

/// `setcc r/m8` (`0F 90+cc /0`) and `cmovcc r, r/m` (`0F 40+cc /r`, 32 and 64 bits). iced
/// lists them in the hardware's condition order, `setcc` one code each, `cmovcc` three
/// (16, 32 and 64 bits); the unit test checks every one against iced.
fn conditional(code: Code) -> Option<Form> {
    let setcc = (code as u32).wrapping_sub(Code::Seto_rm8 as u32);
    if setcc < 16 {
        return Some(two(false, 0x90 + setcc as u8, Kind::Rm(W::B8, 0)));
    }
    let cmov = (code as u32).wrapping_sub(Code::Cmovo_r16_rm16 as u32);
    let (cc, size) = (cmov / 3, cmov % 3);
    match (cmov < 48, size) {
        (true, 1) => Some(two(false, 0x40 + cc as u8, Kind::RegRm(W::D32, W::D32))),
        (true, 2) => Some(two(true, 0x40 + cc as u8, Kind::RegRm(W::Q64, W::Q64))),
        _ => None,
    }
}

/// Hardware number of a general register of width `w`, and whether it needs a REX prefix
/// even without extension bits (`spl`, `bpl`, `sil`, `dil`). `ah`..`bh` are refused (they
/// cannot be encoded with REX).
fn gpr(r: Register, w: W) -> Option<(u8, bool)> {
    let (lo, count) = match w {
        W::B8 => (Register::AL, 20),
        W::W16 => (Register::AX, 16),
        W::D32 => (Register::EAX, 16),
        W::Q64 => (Register::RAX, 16),
    };
    let n = (r as u32).wrapping_sub(lo as u32);
    if n >= count {
        return None;
    }
    Some(match (w, n) {
        (W::B8, 4..=7) => return None,
        (W::B8, 8..=11) => (n as u8 - 4, true),
        (W::B8, _) if n >= 12 => (n as u8 - 4, false),
        _ => (n as u8, false),
    })
}

/// The bytes after the opcode being built: REX bits (W, R, X, B), whether a REX prefix is
/// needed even without them, ModRM, SIB and displacement (little-endian in `tail`, `n` bytes;
/// kept in a register, not a buffer, so the bytes reach the output with one store).
struct Operands {
    rex: u8,
    force_rex: bool,
    tail: u64,
    n: u32,
}

impl Operands {
    /// Operand `i` of `ins` as the `r/m` operand of width `w`, with `reg` in the ModRM `reg`
    /// field (its REX.R bit included).
    fn rm(&mut self, ins: &Instruction, i: u32, w: W, reg: u8) -> Option<()> {
        self.rex |= (reg >> 3) << 2;
        match ins.op_kind(i) {
            OpKind::Register => {
                let (rm, force) = gpr(ins.op_register(i), w)?;
                self.rex |= rm >> 3;
                self.force_rex |= force;
                self.tail = u64::from(0xc0 | ((reg & 7) << 3) | (rm & 7));
                self.n = 1;
                Some(())
            }
            OpKind::Memory => self.memory(ins, reg),
            _ => None,
        }
    }

    /// `ins`'s memory operand, `[base + index*scale + disp]`.
    fn memory(&mut self, ins: &Instruction, reg: u8) -> Option<()> {
        let (base, _) = gpr(ins.memory_base(), W::Q64)?;
        let index = match ins.memory_index() {
            Register::None => None,
            Register::RSP => return None,
            r => Some(gpr(r, W::Q64)?.0),
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
        // iced's rules: size 0 means none ([rbp]/[r13] still get a zero disp8); size 1 means
        // disp8 when it fits, else disp32; 4 or 8 mean disp32.
        let (md, dsize) = match ins.memory_displ_size() {
            0 if displ != 0 => return None,
            0 if base & 7 == 5 => (0x40, 1),
            0 => (0x00, 0),
            1 if i8::try_from(displ).is_ok() => (0x40, 1),
            1 | 4 | 8 => (0x80, 4),
            _ => return None,
        };
        self.rex |= base >> 3;
        let (mut t, mut n) = if index.is_some() || base & 7 == 4 {
            let idx = index.unwrap_or(4);
            self.rex |= (idx >> 3) << 1;
            let modrm = md | ((reg & 7) << 3) | 4;
            let sib = (scale << 6) | ((idx & 7) << 3) | (base & 7);
            (u64::from(modrm) | u64::from(sib) << 8, 2)
        } else {
            if scale != 0 {
                return None;
            }
            (u64::from(md | ((reg & 7) << 3) | (base & 7)), 1)
        };
        if dsize == 1 {
            t |= u64::from(displ as i8 as u8) << (8 * n);
            n += 1;
        } else if dsize == 4 {
            t |= u64::from(displ as u32) << (8 * n);
            n += 4;
        }
        (self.tail, self.n) = (t, n);
        Some(())
    }

    /// `op reg, r/m` with the register operand `reg_i` and the `r/m` operand `rm_i`.
    fn reg_rm(
        &mut self,
        ins: &Instruction,
        reg_i: u32,
        reg_w: W,
        rm_i: u32,
        rm_w: W,
    ) -> Option<()> {
        if ins.op_kind(reg_i) != OpKind::Register {
            return None;
        }
        let (reg, force) = gpr(ins.op_register(reg_i), reg_w)?;
        self.force_rex |= force;
        self.rm(ins, rm_i, rm_w, reg)
    }
}

/// Appends the encoding of `ins` to `out` and returns its length, if it is one of the forms
/// above.
pub(crate) fn encode(ins: &Instruction, out: &mut Vec<u8>) -> Option<usize> {
    let code = ins.code();
    let form = form(code)?;
    if ins.has_lock_prefix()
        || ins.has_rep_prefix()
        || ins.has_repne_prefix()
        || ins.segment_prefix() != Register::None
    {
        return None;
    }
    let mut o = Operands {
        rex: u8::from(form.w) << 3,
        force_rex: false,
        tail: 0,
        n: 0,
    };
    let mut op = form.op;
    // The immediate: its size in bytes and operand number.
    let mut imm = (0u8, 0u32);
    let count = match form.kind {
        Kind::RegRm(a, b) => {
            if matches!(code, Code::Lea_r32_m | Code::Lea_r64_m) && ins.op1_kind() != OpKind::Memory
            {
                return None;
            }
            o.reg_rm(ins, 0, a, 1, b)?;
            2
        }
        Kind::RmReg(a, b) => {
            o.reg_rm(ins, 1, b, 0, a)?;
            2
        }
        Kind::RegRmImm(w, bytes) => {
            o.reg_rm(ins, 0, w, 1, w)?;
            imm = (bytes, 2);
            3
        }
        Kind::RmImm(w, digit, bytes) => {
            o.rm(ins, 0, w, digit)?;
            imm = (bytes, 1);
            2
        }
        Kind::Rm(w, digit) => {
            o.rm(ins, 0, w, digit)?;
            1
        }
        Kind::PlusReg(w, bytes) => {
            if ins.op0_kind() != OpKind::Register {
                return None;
            }
            let (r, _) = gpr(ins.op0_register(), w)?;
            o.rex |= r >> 3;
            op |= r & 7;
            imm = (bytes, 1);
            1 + u32::from(bytes > 0)
        }
        Kind::Bare => 0,
    };
    if ins.op_count() != count {
        return None;
    }
    // The bytes, little-endian in one integer: prefixes, opcode, ModRM.., immediate. At most
    // 14 (66, REX, 0F, opcode, ModRM, SIB, disp32, imm32; `mov r64, imm64` is 10).
    let mut bytes = 0u128;
    let mut len = 0u32;
    let mut put = |value: u64, n: u32| {
        bytes |= u128::from(value) << (8 * len);
        len += n;
    };
    if form.p66 {
        put(0x66, 1);
    }
    if o.rex != 0 || o.force_rex {
        put(u64::from(0x40 | o.rex), 1);
    }
    if form.esc {
        put(0x0f, 1);
    }
    put(u64::from(op), 1);
    put(o.tail, o.n);
    if imm.0 > 0 {
        let mask = u64::MAX >> (64 - 8 * u32::from(imm.0));
        put(ins.immediate(imm.1) & mask, u32::from(imm.0));
    }
    debug_assert!(len <= 16);
    // A fixed-size store (no call to `memcpy` for a few bytes), then the excess dropped.
    let start = out.len();
    out.extend_from_slice(&bytes.to_le_bytes());
    out.truncate(start + len as usize);
    Some(len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Encoder, MemoryOperand};

    fn regs(w: W) -> Vec<Register> {
        let (lo, count) = match w {
            W::B8 => (Register::AL, 20),
            W::W16 => (Register::AX, 16),
            W::D32 => (Register::EAX, 16),
            W::Q64 => (Register::RAX, 16),
        };
        (0..count)
            .map(|i| Register::values().nth(lo as usize + i).unwrap())
            .collect()
    }

    fn memories() -> Vec<MemoryOperand> {
        let r64 = regs(W::Q64);
        let mut m = Vec::new();
        for &base in &r64 {
            for displ in [0i64, 8, -16, 127, -128, 128, 0x1234, -0x8000_0000] {
                m.push(MemoryOperand::with_base_displ(base, displ));
                for index in [0usize, 5, 12, 13] {
                    for scale in [1u32, 2, 8] {
                        m.push(MemoryOperand::with_base_index_scale_displ_size(
                            base, r64[index], scale, displ, 1,
                        ));
                    }
                }
            }
            m.push(MemoryOperand::with_base(base));
        }
        m
    }

    fn immediates(bytes: u8) -> Vec<i64> {
        match bytes {
            1 => alloc::vec![0, 1, -1, 5, 31, 63, 127, -128],
            4 => alloc::vec![0, 1, -1, 127, 128, -129, 0x1234_5678, i64::from(i32::MIN)],
            _ => alloc::vec![0, -1, 0x1234_5678_9abc_def0, i64::MIN],
        }
    }

    /// Every instruction of `code`'s form over registers, memory operands and immediates
    /// (memory operands thinned for the forms with immediates).
    fn cases(code: Code, kind: Kind) -> Vec<Instruction> {
        let mems = memories();
        let few: Vec<MemoryOperand> = mems.iter().step_by(7).copied().collect();
        let mut out = Vec::new();
        let mut add = |i: Result<Instruction, iced_x86::IcedError>| {
            if let Ok(i) = i {
                out.push(i);
            }
        };
        match kind {
            Kind::RegRm(a, b) => {
                for &r in &regs(a) {
                    for &s in &regs(b) {
                        add(Instruction::with2(code, r, s));
                    }
                    for &m in &mems {
                        add(Instruction::with2(code, r, m));
                    }
                }
            }
            Kind::RmReg(a, b) => {
                for &r in &regs(b) {
                    for &s in &regs(a) {
                        add(Instruction::with2(code, s, r));
                    }
                    for &m in &mems {
                        add(Instruction::with2(code, m, r));
                    }
                }
            }
            Kind::RegRmImm(w, bytes) => {
                for &r in &regs(w) {
                    for v in immediates(bytes) {
                        for &s in &regs(w) {
                            add(Instruction::with3(code, r, s, v as i32));
                        }
                        for &m in &few {
                            add(Instruction::with3(code, r, m, v as i32));
                        }
                    }
                }
            }
            Kind::RmImm(w, _, bytes) => {
                for v in immediates(bytes) {
                    for &s in &regs(w) {
                        add(Instruction::with2(code, s, v as i32));
                        add(Instruction::with2(code, s, v as u32));
                    }
                    for &m in &few {
                        add(Instruction::with2(code, m, v as i32));
                        add(Instruction::with2(code, m, v as u32));
                    }
                }
            }
            Kind::Rm(w, _) => {
                for &s in &regs(w) {
                    add(Instruction::with1(code, s));
                }
                for &m in &mems {
                    add(Instruction::with1(code, m));
                }
            }
            Kind::PlusReg(w, bytes) => {
                for &r in &regs(w) {
                    match bytes {
                        0 => add(Instruction::with1(code, r)),
                        8 => {
                            for v in immediates(8) {
                                add(Instruction::with2(code, r, v as u64));
                            }
                        }
                        _ => {
                            for v in immediates(4) {
                                add(Instruction::with2(code, r, v as u32));
                            }
                        }
                    }
                }
            }
            Kind::Bare => add(Ok(Instruction::with(code))),
        }
        out
    }

    fn iced(ins: &Instruction) -> Option<Vec<u8>> {
        let mut e = Encoder::new(64);
        e.encode(ins, 0).ok()?;
        Some(e.take_buffer())
    }

    #[test]
    fn same_bytes_as_iced() {
        let mut checked = 0;
        let mut forms = 0;
        for code in Code::values() {
            let Some(form) = form(code) else { continue };
            forms += 1;
            let mut direct = 0;
            for ins in cases(code, form.kind) {
                let mut out = Vec::new();
                let want = iced(&ins);
                match encode(&ins, &mut out) {
                    Some(len) => {
                        assert_eq!(Some(&out), want.as_ref(), "{ins:?}");
                        assert_eq!(len, out.len());
                        direct += 1;
                    }
                    // Only `ah`..`bh` and what iced refuses go to iced.
                    None => assert!(
                        want.is_none()
                            || (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Register
                                && (Register::AH..=Register::BH).contains(&ins.op_register(i))),
                        "{ins:?} not encoded directly"
                    ),
                }
            }
            assert!(direct > 0, "{code:?}: no case encoded directly");
            checked += direct;
        }
        // 88 forms listed, 16 `setcc`, 32 `cmovcc`.
        assert_eq!(forms, 136);
        assert!(checked > 400_000, "{checked}");
    }

    #[test]
    fn other_forms_go_to_iced() {
        let mut out = Vec::new();
        let ins = Instruction::with2(Code::Add_rm8_imm8, Register::AL, 1).unwrap();
        assert!(encode(&ins, &mut out).is_none());
        let m = MemoryOperand::with_base_displ(Register::RIP, 16);
        let ins = Instruction::with2(Code::Lea_r64_m, Register::RAX, m).unwrap();
        assert!(encode(&ins, &mut out).is_none());
        let ins = Instruction::with2(Code::Lea_r64_m, Register::RAX, Register::RCX).unwrap();
        assert!(encode(&ins, &mut out).is_none());
        let ins = Instruction::with2(Code::Mov_r8_rm8, Register::AH, Register::AL).unwrap();
        assert!(encode(&ins, &mut out).is_none());
        assert!(out.is_empty());
    }
}
