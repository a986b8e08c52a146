//! The machine-level layout of an island, in island-relative offsets: its functions, each
//! one's prologue and `ret` instructions (the only places where `rbp` is not the function's
//! own frame), its call sites, and every instruction start. Built by decoding the island's code
//! and checking it against `atoll_pae::FunctionMeta`; carried to a new place through the
//! [`BoundaryMap`] of a move.

use alloc::vec::Vec;
use core::ops::Range;

use atoll_pae::{CallTarget, FrameLayout, FunctionMeta};
use iced_x86::{Code, Decoder, DecoderOptions, Instruction, OpKind, Register};

use crate::copy::BoundaryMap;

/// Why an island's code does not have the shape the stack walk relies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// Bytes that do not decode, at this island offset.
    Undecodable(u32),
    /// A function that does not start with `push rbp; mov rbp, rsp`.
    NoFramePrologue {
        /// Wasm function index.
        func: u32,
    },
    /// An instruction other than the prologue's `mov` and `leave` writes `rbp`, or a `leave`
    /// not directly followed by `ret`, or a `ret` not directly preceded by `leave`.
    UnexpectedFrameCode {
        /// Wasm function index.
        func: u32,
        /// Island offset of the instruction.
        offset: u32,
    },
    /// Metadata (a function range or call site) that is not on an instruction boundary.
    MetadataOffBoundary {
        /// Wasm function index.
        func: u32,
    },
}

/// Where a saved RIP stands relative to its function's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// At `push rbp`: the return address is at `[rsp]`, `rbp` is the caller's.
    Entry,
    /// At `mov rbp, rsp`: the caller's `rbp` is at `[rsp]`, the return address at `[rsp+8]`.
    AfterPush,
    /// At `ret` (after `leave`): the return address is at `[rsp]`, `rbp` is the caller's.
    AtRet,
    /// Anywhere else: the frame is set up, the return address is at `[rbp+8]`.
    Body,
}

/// A call instruction of an island function (island-relative offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLayout {
    /// Offset of the call instruction.
    pub offset: u32,
    /// Offset after it (the return address).
    pub return_offset: u32,
    /// What it calls.
    pub target: CallTarget,
}

/// One function of an island.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncLayout {
    /// Wasm function index.
    pub index: u32,
    /// Its code, island-relative.
    pub range: Range<u32>,
    /// Offset of its `mov rbp, rsp` (right after `push rbp` at `range.start`).
    pub mov_rbp_at: u32,
    /// Offsets of its `ret` instructions, ascending.
    pub rets: Vec<u32>,
    /// Its calls, ascending.
    pub calls: Vec<CallLayout>,
    /// Frame layout.
    pub frame: FrameLayout,
    /// Block counter slots it owns (the first counts its calls).
    pub counter_slots: Range<u32>,
    /// Its dispatch windows, ascending: `(first, last)` instruction starts (inclusive) after a
    /// `lea r64, [rip + X]` up to the `jmp r64` that uses it (a `br_table` jump table,
    /// `atoll_pae`'s `lower::jump_table`). A thread stopped in one holds an address of this
    /// code in a register, which a move cannot rewrite: the walk asks for a retry.
    pub dispatch: Vec<(u32, u32)>,
}

impl FuncLayout {
    /// Where a RIP at island offset `off` (an instruction start in this function) stands.
    pub fn window(&self, off: u32) -> Window {
        if off == self.range.start {
            Window::Entry
        } else if off == self.mov_rbp_at {
            Window::AfterPush
        } else if self.rets.binary_search(&off).is_ok() {
            Window::AtRet
        } else {
            Window::Body
        }
    }

    /// Whether island offset `off` is inside one of its dispatch windows.
    pub fn in_dispatch_window(&self, off: u32) -> bool {
        let i = self.dispatch.partition_point(|w| w.1 < off);
        self.dispatch.get(i).is_some_and(|w| w.0 <= off)
    }

    /// The call whose return address is island offset `off`.
    pub fn call_returning_to(&self, off: u32) -> Option<&CallLayout> {
        self.calls
            .binary_search_by_key(&off, |c| c.return_offset)
            .ok()
            .map(|i| &self.calls[i])
    }
}

/// The layout of a whole island.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IslandLayout {
    /// Its functions, by ascending offset; together they cover `0..len`.
    pub funcs: Vec<FuncLayout>,
    /// Every instruction start, ascending.
    pub insn_starts: Vec<u32>,
    /// Code bytes.
    pub len: u32,
}

fn writes_rbp(ins: &Instruction) -> bool {
    ins.op_count() > 0
        && ins.op_kind(0) == OpKind::Register
        && matches!(
            ins.op0_register(),
            Register::RBP | Register::EBP | Register::BP | Register::BPL
        )
}

fn is_mov_rbp_rsp(ins: &Instruction) -> bool {
    matches!(ins.code(), Code::Mov_r64_rm64 | Code::Mov_rm64_r64)
        && ins.op_kind(0) == OpKind::Register
        && ins.op_kind(1) == OpKind::Register
        && ins.op0_register() == Register::RBP
        && ins.op1_register() == Register::RSP
}

impl IslandLayout {
    /// Decodes `code` (the island's bytes at `base`, which start at module offset
    /// `module_start`) and checks it against the metadata of the functions it holds (module
    /// offsets, contiguous, in order).
    pub fn build(
        code: &[u8],
        base: u64,
        module_start: u32,
        metas: &[&FunctionMeta],
    ) -> Result<Self, LayoutError> {
        let mut decoder = Decoder::with_ip(64, code, base, DecoderOptions::NONE);
        let mut insns = Vec::new();
        while decoder.can_decode() {
            let offset = decoder.position() as u32;
            let ins = decoder.decode();
            if ins.is_invalid() {
                return Err(LayoutError::Undecodable(offset));
            }
            insns.push((offset, ins));
        }
        let insn_starts: Vec<u32> = insns.iter().map(|p| p.0).collect();
        let len = code.len() as u32;
        let on_boundary = |off: u32| off == len || insn_starts.binary_search(&off).is_ok();
        let mut funcs = Vec::with_capacity(metas.len());
        for meta in metas {
            let func = meta.index;
            let range = meta.code_range.start - module_start..meta.code_range.end - module_start;
            if !on_boundary(range.start) || !on_boundary(range.end) || range.end > len {
                return Err(LayoutError::MetadataOffBoundary { func });
            }
            let first = insn_starts
                .binary_search(&range.start)
                .unwrap_or(usize::MAX);
            let body: Vec<&(u32, Instruction)> = insns
                .iter()
                .skip(first)
                .take_while(|p| p.0 < range.end)
                .collect();
            let prologue_ok = body.len() >= 2
                && body[0].1.code() == Code::Push_r64
                && body[0].1.op0_register() == Register::RBP
                && is_mov_rbp_rsp(&body[1].1);
            if !prologue_ok {
                return Err(LayoutError::NoFramePrologue { func });
            }
            let mut rets = Vec::new();
            let mut dispatch = Vec::new();
            // An open window: the `lea`'s register and offset, the window's first instruction.
            let mut open: Option<(Register, u32, u32)> = None;
            let fn_addrs = base + u64::from(range.start)..base + u64::from(range.end);
            for (i, (off, ins)) in body.iter().map(|p| (p.0, &p.1)).enumerate().skip(2) {
                let bad = || LayoutError::UnexpectedFrameCode { func, offset: off };
                if let Some((r, lea_at, first)) = open {
                    if ins.code() == Code::Jmp_rm64
                        && ins.op0_kind() == OpKind::Register
                        && ins.op0_register() == r
                    {
                        dispatch.push((first, off));
                        open = None;
                    } else if ins.flow_control() != iced_x86::FlowControl::Next {
                        // Control leaves before the jump: not a shape the walk knows.
                        return Err(LayoutError::UnexpectedFrameCode {
                            func,
                            offset: lea_at,
                        });
                    }
                } else if ins.code() == Code::Lea_r64_m && ins.is_ip_rel_memory_operand() {
                    if !fn_addrs.contains(&ins.ip_rel_memory_address()) {
                        return Err(bad());
                    }
                    let next = body.get(i + 1).map_or(range.end, |p| p.0);
                    open = Some((ins.op0_register(), off, next));
                }
                match ins.code() {
                    Code::Leaveq if body.get(i + 1).map(|p| p.1.code()) != Some(Code::Retnq) => {
                        return Err(bad());
                    }
                    Code::Retnq => {
                        if body[i - 1].1.code() != Code::Leaveq {
                            return Err(bad());
                        }
                        rets.push(off);
                    }
                    // `enter`, `pop rbp`, `mov rbp, ...`: a frame change the windows don't cover.
                    Code::Enterq_imm16_imm8 => return Err(bad()),
                    _ if writes_rbp(ins) => return Err(bad()),
                    _ => {}
                }
            }
            let mut calls = Vec::with_capacity(meta.call_sites.len());
            for c in &meta.call_sites {
                let (offset, return_offset) =
                    (c.offset - module_start, c.return_offset - module_start);
                if !on_boundary(offset) || !on_boundary(return_offset) {
                    return Err(LayoutError::MetadataOffBoundary { func });
                }
                calls.push(CallLayout {
                    offset,
                    return_offset,
                    target: c.target,
                });
            }
            funcs.push(FuncLayout {
                index: func,
                mov_rbp_at: body[1].0,
                range,
                rets,
                calls,
                frame: meta.frame,
                counter_slots: meta.counter_slots.clone(),
                dispatch,
            });
        }
        Ok(Self {
            funcs,
            insn_starts,
            len,
        })
    }

    /// The same layout after a move with boundary map `map`; `None` if some offset of the
    /// layout is not in the map (the map belongs to another island).
    pub fn translated(&self, map: &BoundaryMap) -> Option<Self> {
        let t = |o: u32| map.new_offset(o);
        let mut funcs = Vec::with_capacity(self.funcs.len());
        for f in &self.funcs {
            let mut rets = Vec::with_capacity(f.rets.len());
            for &r in &f.rets {
                rets.push(t(r)?);
            }
            let mut calls = Vec::with_capacity(f.calls.len());
            for c in &f.calls {
                calls.push(CallLayout {
                    offset: t(c.offset)?,
                    return_offset: t(c.return_offset)?,
                    target: c.target,
                });
            }
            funcs.push(FuncLayout {
                index: f.index,
                range: t(f.range.start)?..t(f.range.end)?,
                mov_rbp_at: t(f.mov_rbp_at)?,
                rets,
                calls,
                frame: f.frame,
                counter_slots: f.counter_slots.clone(),
                dispatch: f
                    .dispatch
                    .iter()
                    .map(|&(a, b)| Some((t(a)?, t(b)?)))
                    .collect::<Option<Vec<_>>>()?,
            });
        }
        let mut insn_starts = Vec::with_capacity(self.insn_starts.len());
        for &s in &self.insn_starts {
            insn_starts.push(t(s)?);
        }
        if map.old_len() != self.len || insn_starts.len() + 1 != map.pairs().len() {
            return None;
        }
        Some(Self {
            funcs,
            insn_starts,
            len: map.new_len(),
        })
    }

    /// The function containing island offset `off`.
    pub fn func_at(&self, off: u32) -> Option<&FuncLayout> {
        let i = self.funcs.partition_point(|f| f.range.end <= off);
        self.funcs.get(i).filter(|f| f.range.contains(&off))
    }

    /// Whether an instruction starts at `off`.
    pub fn is_insn_start(&self, off: u32) -> bool {
        self.insn_starts.binary_search(&off).is_ok()
    }
}
