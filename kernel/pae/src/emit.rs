//! A thin layer over iced-x86's `Instruction`: register tables, memory operands, an instruction
//! list with labels that may share an instruction, conditional jumps by condition code, and
//! instruction indices that become code offsets after assembly (for metadata). Encoding is in
//! `encode.rs` (iced's `Encoder`), scheduling in `sched.rs`.

use alloc::vec::Vec;

use iced_x86::{Code, Instruction, MemoryOperand, Register};

use crate::CompileError;
use crate::encode::{self, LabelPos, UNBOUND};
use crate::sched;

/// 64-bit general registers by hardware number.
pub const R64: [Register; 16] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RBX,
    Register::RSP,
    Register::RBP,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];
/// 32-bit views.
pub const R32: [Register; 16] = [
    Register::EAX,
    Register::ECX,
    Register::EDX,
    Register::EBX,
    Register::ESP,
    Register::EBP,
    Register::ESI,
    Register::EDI,
    Register::R8D,
    Register::R9D,
    Register::R10D,
    Register::R11D,
    Register::R12D,
    Register::R13D,
    Register::R14D,
    Register::R15D,
];
/// 16-bit views.
pub const R16: [Register; 16] = [
    Register::AX,
    Register::CX,
    Register::DX,
    Register::BX,
    Register::SP,
    Register::BP,
    Register::SI,
    Register::DI,
    Register::R8W,
    Register::R9W,
    Register::R10W,
    Register::R11W,
    Register::R12W,
    Register::R13W,
    Register::R14W,
    Register::R15W,
];
/// 8-bit views.
pub const R8: [Register; 16] = [
    Register::AL,
    Register::CL,
    Register::DL,
    Register::BL,
    Register::SPL,
    Register::BPL,
    Register::SIL,
    Register::DIL,
    Register::R8L,
    Register::R9L,
    Register::R10L,
    Register::R11L,
    Register::R12L,
    Register::R13L,
    Register::R14L,
    Register::R15L,
];
/// XMM registers.
pub const XMM: [Register; 16] = [
    Register::XMM0,
    Register::XMM1,
    Register::XMM2,
    Register::XMM3,
    Register::XMM4,
    Register::XMM5,
    Register::XMM6,
    Register::XMM7,
    Register::XMM8,
    Register::XMM9,
    Register::XMM10,
    Register::XMM11,
    Register::XMM12,
    Register::XMM13,
    Register::XMM14,
    Register::XMM15,
];

/// Hardware numbers of fixed registers.
pub mod reg {
    /// Scratch, return values, `div`.
    pub const RAX: u8 = 0;
    /// Scratch, shift counts.
    pub const RCX: u8 = 1;
    /// Scratch, `div`.
    pub const RDX: u8 = 2;
    /// Stack pointer.
    pub const RSP: u8 = 4;
    /// Frame pointer.
    pub const RBP: u8 = 5;
    /// First SysV argument.
    pub const RDI: u8 = 7;
    /// Second SysV argument.
    pub const RSI: u8 = 6;
    /// The VM context (pinned).
    pub const VMCTX: u8 = 14;
    /// Linear-memory base (pinned, reloaded after calls).
    pub const MEMBASE: u8 = 15;
}

/// A condition code for `jcc`/`setcc`/`cmovcc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// Equal / zero.
    E,
    /// Not equal.
    Ne,
    /// Signed less.
    L,
    /// Signed less or equal.
    Le,
    /// Signed greater.
    G,
    /// Signed greater or equal.
    Ge,
    /// Unsigned below.
    B,
    /// Unsigned below or equal.
    Be,
    /// Unsigned above.
    A,
    /// Unsigned above or equal.
    Ae,
    /// Parity (unordered).
    P,
    /// No parity.
    Np,
}

impl Cond {
    /// The opposite condition.
    pub fn negate(self) -> Cond {
        match self {
            Cond::E => Cond::Ne,
            Cond::Ne => Cond::E,
            Cond::L => Cond::Ge,
            Cond::Ge => Cond::L,
            Cond::Le => Cond::G,
            Cond::G => Cond::Le,
            Cond::B => Cond::Ae,
            Cond::Ae => Cond::B,
            Cond::Be => Cond::A,
            Cond::A => Cond::Be,
            Cond::P => Cond::Np,
            Cond::Np => Cond::P,
        }
    }

    fn jcc(self) -> Code {
        match self {
            Cond::E => Code::Je_rel32_64,
            Cond::Ne => Code::Jne_rel32_64,
            Cond::L => Code::Jl_rel32_64,
            Cond::Le => Code::Jle_rel32_64,
            Cond::G => Code::Jg_rel32_64,
            Cond::Ge => Code::Jge_rel32_64,
            Cond::B => Code::Jb_rel32_64,
            Cond::Be => Code::Jbe_rel32_64,
            Cond::A => Code::Ja_rel32_64,
            Cond::Ae => Code::Jae_rel32_64,
            Cond::P => Code::Jp_rel32_64,
            Cond::Np => Code::Jnp_rel32_64,
        }
    }

    /// `cmovcc` codes (32-bit, 64-bit) that move when the condition holds.
    pub fn cmov(self) -> (Code, Code) {
        match self {
            Cond::E => (Code::Cmove_r32_rm32, Code::Cmove_r64_rm64),
            Cond::Ne => (Code::Cmovne_r32_rm32, Code::Cmovne_r64_rm64),
            Cond::L => (Code::Cmovl_r32_rm32, Code::Cmovl_r64_rm64),
            Cond::Le => (Code::Cmovle_r32_rm32, Code::Cmovle_r64_rm64),
            Cond::G => (Code::Cmovg_r32_rm32, Code::Cmovg_r64_rm64),
            Cond::Ge => (Code::Cmovge_r32_rm32, Code::Cmovge_r64_rm64),
            Cond::B => (Code::Cmovb_r32_rm32, Code::Cmovb_r64_rm64),
            Cond::Be => (Code::Cmovbe_r32_rm32, Code::Cmovbe_r64_rm64),
            Cond::A => (Code::Cmova_r32_rm32, Code::Cmova_r64_rm64),
            Cond::Ae => (Code::Cmovae_r32_rm32, Code::Cmovae_r64_rm64),
            Cond::P => (Code::Cmovp_r32_rm32, Code::Cmovp_r64_rm64),
            Cond::Np => (Code::Cmovnp_r32_rm32, Code::Cmovnp_r64_rm64),
        }
    }

    fn setcc(self) -> Code {
        match self {
            Cond::E => Code::Sete_rm8,
            Cond::Ne => Code::Setne_rm8,
            Cond::L => Code::Setl_rm8,
            Cond::Le => Code::Setle_rm8,
            Cond::G => Code::Setg_rm8,
            Cond::Ge => Code::Setge_rm8,
            Cond::B => Code::Setb_rm8,
            Cond::Be => Code::Setbe_rm8,
            Cond::A => Code::Seta_rm8,
            Cond::Ae => Code::Setae_rm8,
            Cond::P => Code::Setp_rm8,
            Cond::Np => Code::Setnp_rm8,
        }
    }
}

/// `[base + disp]`.
pub fn mem(base: u8, disp: i32) -> MemoryOperand {
    MemoryOperand::with_base_displ(R64[base as usize], i64::from(disp))
}

/// `[base + index + disp]`.
pub fn mem_idx(base: u8, index: u8, disp: i32) -> MemoryOperand {
    MemoryOperand::with_base_index_scale_displ_size(
        R64[base as usize],
        R64[index as usize],
        1,
        i64::from(disp),
        1,
    )
}

/// `[base + index * scale + disp]`.
pub fn mem_scaled(base: u8, index: u8, scale: u32, disp: i32) -> MemoryOperand {
    MemoryOperand::with_base_index_scale_displ_size(
        R64[base as usize],
        R64[index as usize],
        scale,
        i64::from(disp),
        1,
    )
}

/// A label: an id the branches name, bound to an instruction index by [`Emitter::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeLabel(u32);

/// The instruction list of one module (or one lazily assembled function) plus its labels.
///
/// Instructions are iced-x86 [`Instruction`]s in a plain list; a branch to a label carries the
/// label id as its target, and [`Emitter::assemble`] resolves it (`encode.rs`). Instruction
/// indices stand for code offsets until then.
pub struct Emitter {
    insns: Vec<Instruction>,
    /// By label id: the index of its zero-byte marker, or `UNBOUND`.
    labels: Vec<LabelPos>,
    /// By label id: the label of a trap stub (branches to it may be scheduled; `sched.rs`).
    trap_labels: Vec<bool>,
    /// Run the instruction scheduler before encoding.
    schedule: bool,
}

impl core::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Emitter")
            .field("instructions", &self.insns.len())
            .field("labels", &self.labels.len())
            .finish_non_exhaustive()
    }
}

/// Assembled code plus the offset of every instruction index.
pub struct Assembled {
    /// Machine code (position-independent).
    pub code: Vec<u8>,
    /// Code offset of each instruction index (one past the end included). With scheduling,
    /// the offset of the first instruction, in code order, of those from this index to the end
    /// of its basic block (`sched.rs`): a label, a call's return address, a function start are
    /// exact, an operator's boundary is where its block part begins.
    pub offsets: Vec<u32>,
}

impl Emitter {
    /// An empty 64-bit instruction list (scheduling off; see [`Emitter::set_schedule`]).
    pub fn new() -> Result<Self, CompileError> {
        Ok(Self {
            insns: Vec::with_capacity(1024),
            labels: Vec::new(),
            trap_labels: Vec::new(),
            schedule: false,
        })
    }

    /// Whether [`Emitter::assemble`] schedules each basic block first (`Options::schedule`).
    pub fn set_schedule(&mut self, on: bool) {
        self.schedule = on;
    }

    /// Makes room for the instructions of a module of `wasm_bytes` (about 0.6 per byte in
    /// the default set), so the list does not grow by copying.
    pub fn reserve_for(&mut self, wasm_bytes: usize) {
        self.insns.reserve(wasm_bytes * 3 / 4);
    }

    /// Index of the next instruction.
    pub fn pos(&self) -> usize {
        self.insns.len()
    }

    /// Adds one instruction.
    #[inline]
    pub fn ins(
        &mut self,
        ins: Result<Instruction, iced_x86::IcedError>,
    ) -> Result<(), CompileError> {
        self.insns.push(ins?);
        Ok(())
    }

    /// A fresh label.
    pub fn label(&mut self) -> CodeLabel {
        self.labels.push(UNBOUND);
        self.trap_labels.push(false);
        CodeLabel(self.labels.len() as u32 - 1)
    }

    /// A fresh label for a trap stub: a stub that reads no register but `r14` (the VM
    /// context) and never returns, so the scheduler may move register-only work across
    /// conditional branches to it.
    pub fn trap_label(&mut self) -> CodeLabel {
        let l = self.label();
        self.trap_labels[l.0 as usize] = true;
        l
    }

    /// Binds `label` to the next instruction (a zero-byte marker lets labels share a place).
    pub fn bind(&mut self, label: &mut CodeLabel) -> Result<(), CompileError> {
        let slot = &mut self.labels[label.0 as usize];
        if *slot != UNBOUND {
            return Err(CompileError::Assembler(alloc::format!(
                "label {} bound twice",
                label.0
            )));
        }
        *slot = self.insns.len() as LabelPos;
        self.insns.push(Instruction::with(Code::Zero_bytes));
        Ok(())
    }

    fn branch(&mut self, code: Code, label: CodeLabel) -> Result<(), CompileError> {
        self.ins(Instruction::with_branch(code, u64::from(label.0)))
    }

    /// `jmp label`.
    pub fn jmp(&mut self, label: CodeLabel) -> Result<(), CompileError> {
        self.branch(Code::Jmp_rel32_64, label)
    }

    /// `call label`.
    pub fn call(&mut self, label: CodeLabel) -> Result<(), CompileError> {
        self.branch(Code::Call_rel32_64, label)
    }

    /// `lea r64, [rip + label]` (always `disp32`, 7 bytes; see `lower::jump_table`).
    pub fn lea_label(&mut self, dst: u8, label: CodeLabel) -> Result<(), CompileError> {
        let m = MemoryOperand::with_base_displ(Register::RIP, i64::from(label.0));
        self.ins(Instruction::with2(Code::Lea_r64_m, R64[dst as usize], m))
    }

    /// `jcc label`.
    pub fn jcc(&mut self, cond: Cond, label: CodeLabel) -> Result<(), CompileError> {
        self.branch(cond.jcc(), label)
    }

    /// `setcc r8; movzx r32, r8`.
    pub fn setcc(&mut self, cond: Cond, dst: u8) -> Result<(), CompileError> {
        self.ins(Instruction::with1(cond.setcc(), R8[dst as usize]))?;
        self.ins(Instruction::with2(
            Code::Movzx_r32_rm8,
            R32[dst as usize],
            R8[dst as usize],
        ))
    }

    /// `mov r, imm` choosing the shortest `mov` form. Never `xor r, r` for zero: this must not
    /// touch the flags, which may hold a pending compare (`lower::fuse`); callers that know the
    /// flags are free use `xor` themselves (the pinned locals' zero idiom).
    pub fn mov_imm(&mut self, dst: u8, wide: bool, value: u64) -> Result<(), CompileError> {
        let d = dst as usize;
        if !wide || value <= u64::from(u32::MAX) {
            self.ins(Instruction::with2(
                Code::Mov_r32_imm32,
                R32[d],
                value as u32,
            ))
        } else if value as i64 >= i64::from(i32::MIN) && value as i64 <= i64::from(i32::MAX) {
            self.ins(Instruction::with2(
                Code::Mov_rm64_imm32,
                R64[d],
                value as i64 as i32,
            ))
        } else {
            self.ins(Instruction::with2(Code::Mov_r64_imm64, R64[d], value))
        }
    }

    /// `mov r, [m]` (32 or 64 bits).
    pub fn load(&mut self, dst: u8, wide: bool, m: MemoryOperand) -> Result<(), CompileError> {
        if wide {
            self.ins(Instruction::with2(Code::Mov_r64_rm64, R64[dst as usize], m))
        } else {
            self.ins(Instruction::with2(Code::Mov_r32_rm32, R32[dst as usize], m))
        }
    }

    /// `mov [m], r` (32 or 64 bits).
    pub fn store(&mut self, m: MemoryOperand, src: u8, wide: bool) -> Result<(), CompileError> {
        if wide {
            self.ins(Instruction::with2(Code::Mov_rm64_r64, m, R64[src as usize]))
        } else {
            self.ins(Instruction::with2(Code::Mov_rm32_r32, m, R32[src as usize]))
        }
    }

    /// `mov d, s`.
    pub fn mov_rr(&mut self, dst: u8, src: u8, wide: bool) -> Result<(), CompileError> {
        let code = if wide {
            Code::Mov_r64_rm64
        } else {
            Code::Mov_r32_rm32
        };
        let regs = if wide { &R64 } else { &R32 };
        self.ins(Instruction::with2(
            code,
            regs[dst as usize],
            regs[src as usize],
        ))
    }

    /// Register-register op choosing the 32- or 64-bit code.
    pub fn rr(
        &mut self,
        codes: (Code, Code),
        wide: bool,
        d: u8,
        s: u8,
    ) -> Result<(), CompileError> {
        if wide {
            self.ins(Instruction::with2(
                codes.1,
                R64[d as usize],
                R64[s as usize],
            ))
        } else {
            self.ins(Instruction::with2(
                codes.0,
                R32[d as usize],
                R32[s as usize],
            ))
        }
    }

    /// Register-immediate op (`imm` sign-extended to 64 bits for wide ops).
    pub fn ri(
        &mut self,
        codes: (Code, Code),
        wide: bool,
        d: u8,
        imm: i32,
    ) -> Result<(), CompileError> {
        if wide {
            self.ins(Instruction::with2(codes.1, R64[d as usize], imm))
        } else {
            self.ins(Instruction::with2(codes.0, R32[d as usize], imm))
        }
    }

    /// XMM-XMM op.
    pub fn xx(&mut self, code: Code, d: u8, s: u8) -> Result<(), CompileError> {
        self.ins(Instruction::with2(code, XMM[d as usize], XMM[s as usize]))
    }

    /// Zero-operand instruction.
    pub fn op0(&mut self, code: Code) -> Result<(), CompileError> {
        self.ins(Ok(Instruction::with(code)))
    }

    /// Takes the instruction list and encodes it at address 0; `patch` edits instructions first
    /// (frame sizes known only at the end of a function). With scheduling on, each basic block
    /// is reordered (`sched.rs`) before encoding.
    pub fn assemble(
        mut self,
        patch: impl FnOnce(&mut [Instruction]),
    ) -> Result<Assembled, CompileError> {
        patch(&mut self.insns);
        if !self.schedule {
            let enc = encode::encode(&self.insns, None, &self.labels)?;
            return Ok(Assembled {
                code: enc.code,
                offsets: enc.offsets,
            });
        }
        let plan = sched::schedule(&self.insns, &self.trap_labels);
        let enc = encode::encode(&self.insns, Some(&plan.order), &self.labels)?;
        let offsets = plan
            .index_pos
            .iter()
            .map(|&p| enc.offsets[p as usize])
            .collect();
        Ok(Assembled {
            code: enc.code,
            offsets,
        })
    }
}
