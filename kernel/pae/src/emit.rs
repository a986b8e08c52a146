//! A thin layer over iced-x86's `CodeAssembler`: register tables, memory operands, labels that
//! may share an instruction, conditional jumps by condition code, and instruction indices that
//! become code offsets after assembly (for metadata).

use alloc::vec::Vec;

use iced_x86::code_asm::{CodeAssembler, CodeLabel};
use iced_x86::{BlockEncoder, BlockEncoderOptions, Code, Instruction, InstructionBlock};
use iced_x86::{MemoryOperand, Register};

use crate::CompileError;

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

/// The assembler for one module plus bookkeeping.
pub struct Emitter {
    /// The iced-x86 assembler.
    pub asm: CodeAssembler,
}

impl core::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Emitter").finish_non_exhaustive()
    }
}

/// Assembled code plus the offset of every instruction index.
pub struct Assembled {
    /// Machine code (position-independent).
    pub code: Vec<u8>,
    /// Code offset of each instruction index (one past the end included).
    pub offsets: Vec<u32>,
}

impl Emitter {
    /// A 64-bit assembler.
    pub fn new() -> Result<Self, CompileError> {
        Ok(Self {
            asm: CodeAssembler::new(64)?,
        })
    }

    /// Index of the next instruction.
    pub fn pos(&self) -> usize {
        self.asm.instructions().len()
    }

    /// Adds one instruction.
    pub fn ins(
        &mut self,
        ins: Result<Instruction, iced_x86::IcedError>,
    ) -> Result<(), CompileError> {
        self.asm.add_instruction(ins?)?;
        Ok(())
    }

    /// A fresh label.
    pub fn label(&mut self) -> CodeLabel {
        self.asm.create_label()
    }

    /// Binds `label` to the next instruction (a zero-byte marker lets labels share a place).
    pub fn bind(&mut self, label: &mut CodeLabel) -> Result<(), CompileError> {
        self.asm.zero_bytes()?;
        self.asm.set_label(label)?;
        Ok(())
    }

    /// `jmp label`.
    pub fn jmp(&mut self, label: CodeLabel) -> Result<(), CompileError> {
        self.asm.jmp(label)?;
        Ok(())
    }

    /// `call label`.
    pub fn call(&mut self, label: CodeLabel) -> Result<(), CompileError> {
        self.asm.call(label)?;
        Ok(())
    }

    /// `jcc label`.
    pub fn jcc(&mut self, cond: Cond, label: CodeLabel) -> Result<(), CompileError> {
        let a = &mut self.asm;
        match cond {
            Cond::E => a.je(label)?,
            Cond::Ne => a.jne(label)?,
            Cond::L => a.jl(label)?,
            Cond::Le => a.jle(label)?,
            Cond::G => a.jg(label)?,
            Cond::Ge => a.jge(label)?,
            Cond::B => a.jb(label)?,
            Cond::Be => a.jbe(label)?,
            Cond::A => a.ja(label)?,
            Cond::Ae => a.jae(label)?,
            Cond::P => a.jp(label)?,
            Cond::Np => a.jnp(label)?,
        }
        Ok(())
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

    /// `mov r, imm` choosing the shortest form (zero uses `xor`, which clobbers flags).
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
    /// (frame sizes known only at the end of a function).
    pub fn assemble(
        mut self,
        patch: impl FnOnce(&mut [Instruction]),
    ) -> Result<Assembled, CompileError> {
        let mut instructions = self.asm.take_instructions();
        patch(&mut instructions);
        let block = InstructionBlock::new(&instructions, 0);
        let result = BlockEncoder::encode(
            64,
            block,
            BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )?;
        let mut offsets: Vec<u32> = result.new_instruction_offsets;
        offsets.push(result.code_buffer.len() as u32);
        Ok(Assembled {
            code: result.code_buffer,
            offsets,
        })
    }
}
