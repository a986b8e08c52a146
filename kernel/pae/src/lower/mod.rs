//! Lowering: one pass per function over the operators, keeping an abstract value stack.
//!
//! Each stack entry is in its home slot (`Mem`), in a register, or a symbolic constant. Home
//! slot `d` belongs to stack depth `d`, so at every control merge (block ends, loop headers,
//! branches, calls) the canonical state is "everything in its home slot"; inside a basic block
//! values stay in registers and constants fold.

mod call;
mod control;
mod decode;
mod float;
mod fuse;
mod inline;
mod int;
mod jump_table;
pub(crate) mod lazy;
mod memory;
mod nest;
mod pinned;
mod ret;
mod simd;
mod specialize_body;
mod table;

use alloc::vec::Vec;

use crate::emit::CodeLabel;
use iced_x86::{Code, Instruction, MemoryOperand};
use wasmparser::{
    BinaryReader, FuncValidator, FuncValidatorAllocations, FunctionBody, Operator,
    ValidatorResources,
};

use crate::emit::{Cond, Emitter, R32, R64, mem, reg};
use crate::meta::{CallSite, CallTarget, CounterSlot, FrameLayout, FunctionMeta};
use crate::module::{ModuleDesc, PendingBodies, Ty};
use crate::opt::specialize::{self, Specialize};
use crate::regalloc::{GPRS, Pool, XMMS};
use crate::trap_labels::TrapLabels;
use crate::vmctx::{TrapCode, off};
use crate::{CompileError, CompiledModule, Options, trampoline};

pub(crate) use control::Frame;

/// Where a value-stack entry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Its home slot.
    Mem,
    /// A general register.
    Gpr(u8),
    /// An XMM register.
    Xmm(u8),
    /// A known constant (raw bits; i32/f32 zero-extended).
    Const(u64),
}

/// A popped value: type, location and the depth it had (its home slot).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Val {
    pub ty: Ty,
    pub loc: Loc,
    pub depth: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    ty: Ty,
    loc: Loc,
}

/// Module-wide lowering state.
pub(crate) struct ModCx<'m> {
    pub e: Emitter,
    pub m: &'m ModuleDesc,
    pub opts: Options,
    pub func_labels: Vec<CodeLabel>,
    pub traps: TrapLabels,
    pub counters: Vec<CounterSlot>,
    /// `(instruction index of sub rsp, frame bytes)`.
    pub patches: Vec<(usize, u32)>,
    /// By function index: calls reach it through its code cell, not `call rel32` (it is not
    /// assembled in this code; see `lazy`).
    pub via_cell: Vec<bool>,
    /// Parameters to specialize on (see `opt::specialize`).
    pub specs: Vec<Specialize>,
    /// Index of this code's first block counter (a lazily assembled function's counters are
    /// slots its module reserved for it).
    pub counter_base: u32,
    /// Counter slots reserved for each function assembled lazily, by function index.
    pub lazy_counters: Vec<core::ops::Range<u32>>,
    /// By function index: whether calls of it are inlined (`Options::inline`), once known.
    pub inline_verdicts: Vec<inline::Verdict>,
    /// By defined-function index: bodies not validated yet (`module::parse_deferred`); empty
    /// when the whole module was validated. A body is validated before anything reads it.
    pub pending: PendingBodies,
    /// The function validators' buffers, reused from body to body.
    pub allocs: FuncValidatorAllocations,
}

impl ModCx<'_> {
    pub fn trap(&self, code: TrapCode) -> CodeLabel {
        self.traps.code(code)
    }

    /// The validator of function `index`'s body if it has not been validated yet (the caller
    /// runs it over the body, then returns its buffers with [`Self::validated`]).
    fn validator(&mut self, index: u32) -> Option<FuncValidator<ValidatorResources>> {
        let at = index.checked_sub(self.m.func_imports)? as usize;
        let func = self.pending.get_mut(at)?.take()?;
        Some(func.into_validator(core::mem::take(&mut self.allocs)))
    }

    /// Takes back a finished validator's buffers.
    fn validated(&mut self, v: FuncValidator<ValidatorResources>) {
        self.allocs = v.into_allocations();
    }

    /// Validates function `index`'s body whole if that is still to be done (a body read
    /// before it is lowered: a lazy stub's, an inlined callee's).
    pub fn validate_body(&mut self, index: u32, bytes: &[u8]) -> Result<(), CompileError> {
        if let Some(mut v) = self.validator(index) {
            let range = self.m.bodies[(index - self.m.func_imports) as usize].clone();
            let body =
                FunctionBody::new(BinaryReader::new(&bytes[range.clone()], range.start as u64));
            v.validate(&body)?;
            self.validated(v);
        }
        Ok(())
    }
}

/// Metadata in instruction indices, converted to offsets after assembly.
#[derive(Default)]
pub(crate) struct RawMeta {
    pub start: usize,
    pub end: usize,
    pub boundaries: Vec<(u32, u32)>,
    pub calls: Vec<(usize, CallTarget)>,
    pub frame: FrameLayout,
    pub counters: core::ops::Range<u32>,
}

impl RawMeta {
    /// Function `index`'s metadata once assembled: instruction indices become code offsets
    /// through `offsets` (the encoder's), the code ending at instruction `end`.
    pub(crate) fn into_meta(
        self,
        index: u32,
        name: Option<alloc::string::String>,
        offsets: &[u32],
        end: usize,
        lower_ticks: u64,
    ) -> FunctionMeta {
        let o = |i: usize| offsets[i];
        FunctionMeta {
            index,
            name,
            code_range: o(self.start)..o(end),
            // In place: the instruction indices become offsets.
            insn_boundaries: {
                let mut b = self.boundaries;
                for (i, _) in &mut b {
                    *i = o(*i as usize);
                }
                b
            },
            call_sites: self
                .calls
                .iter()
                .map(|&(i, target)| CallSite {
                    offset: o(i),
                    return_offset: o(i + 1),
                    target,
                })
                .collect(),
            frame: self.frame,
            counter_slots: self.counters,
            lower_ticks,
        }
    }
}

/// Per-function lowering state.
pub(crate) struct Func<'a, 'm> {
    pub cx: &'a mut ModCx<'m>,
    pub index: u32,
    pub locals: Vec<Ty>,
    /// `rbp`-relative displacement of each local (a v128 takes two 8-byte slots).
    local_disp: Vec<i32>,
    /// 8-byte slots of the non-parameter locals.
    local_slots: usize,
    /// Home slots are 16 bytes (the function may hold v128 values), else 8.
    wide_slots: bool,
    stack: Vec<Entry>,
    pub frames: Vec<Frame>,
    gprs: Pool,
    xmms: Pool,
    /// Locals kept in registers (`Options::reg_locals`).
    pinned: pinned::Pinned,
    max_depth: usize,
    pub max_out: usize,
    pub dead: bool,
    dead_nest: u32,
    /// A compare whose result is in the flags, for a following `br_if`/`if` (peephole).
    pub pending: Option<Cond>,
    pub raw: RawMeta,
    wasm_offset: u32,
    /// Parameters that are constants in the body being lowered (a specialized body).
    pub const_params: Vec<(u32, u64)>,
    /// Wasm offset of the `block`/`if` whose end is the function's end (`ret::tail_opener`).
    pub tail_opener: Option<u32>,
}

pub(crate) fn compile_module(
    bytes: &[u8],
    desc: ModuleDesc,
    opts: Options,
    clock: Option<&dyn Fn() -> u64>,
    eager: &[bool],
    specs: &[Specialize],
    pending: PendingBodies,
) -> Result<CompiledModule, CompileError> {
    let now = || clock.map_or(0, |c| c());
    let imports = desc.func_imports as usize;
    let stubs: Vec<bool> = (0..desc.funcs.len())
        .map(|f| f >= imports && !eager.get(f).copied().unwrap_or(false))
        .collect();
    let mut e = Emitter::new()?;
    e.set_schedule(opts.schedule);
    e.reserve_for(bytes.len());
    let func_labels = (0..desc.funcs.len()).map(|_| e.label()).collect();
    let traps = TrapLabels::new(&mut e);
    let mut cx = ModCx {
        e,
        m: &desc,
        opts,
        func_labels,
        traps,
        counters: Vec::new(),
        patches: Vec::new(),
        via_cell: stubs.clone(),
        specs: specs.to_vec(),
        counter_base: 0,
        lazy_counters: alloc::vec![0..0; desc.funcs.len()],
        inline_verdicts: alloc::vec![inline::Verdict::Unknown; desc.funcs.len()],
        pending,
        allocs: FuncValidatorAllocations::default(),
    };
    let (entry_pos, trap_exit_pos) = trampoline::emit_entry(&mut cx.e)?;
    let mut raws = Vec::with_capacity(desc.funcs.len());
    let mut ticks = Vec::with_capacity(desc.funcs.len());
    for index in 0..desc.funcs.len() as u32 {
        let start = now();
        let mut label = cx.func_labels[index as usize];
        cx.e.bind(&mut label)?;
        let raw = if index < desc.func_imports {
            call::emit_import_thunk(&mut cx, index)?
        } else if stubs[index as usize] {
            cx.validate_body(index, bytes)?;
            lazy::reserve_counters(&mut cx, bytes, index)?;
            lazy::emit_stub(&mut cx, index)?
        } else {
            let range = desc.bodies[(index - desc.func_imports) as usize].clone();
            let body =
                FunctionBody::new(BinaryReader::new(&bytes[range.clone()], range.start as u64));
            lower_function(&mut cx, index, &body, bytes)?
        };
        raws.push(raw);
        ticks.push(now().wrapping_sub(start));
    }
    trampoline::emit_trap_stubs(&mut cx.e, &cx.traps)?;
    let encode_start = now();
    let patches = core::mem::take(&mut cx.patches);
    let counters = core::mem::take(&mut cx.counters);
    let lazy_counters = core::mem::take(&mut cx.lazy_counters);
    let assembled = cx.e.assemble(|ins: &mut [Instruction]| {
        for &(at, bytes) in &patches {
            ins[at].set_immediate32(bytes);
        }
    })?;
    let encode_ticks = now().wrapping_sub(encode_start);
    let o = |i: usize| assembled.offsets[i];
    let mut funcs = Vec::with_capacity(raws.len());
    let mut func_offsets = Vec::with_capacity(raws.len());
    for (index, (raw, lower_ticks)) in raws.into_iter().zip(ticks).enumerate() {
        func_offsets.push(o(raw.start));
        let (name, end) = (desc.names.get(index).cloned().flatten(), raw.end);
        funcs.push(raw.into_meta(index as u32, name, &assembled.offsets, end, lower_ticks));
    }
    Ok(CompiledModule {
        code: assembled.code,
        func_offsets,
        funcs,
        entry_offset: o(entry_pos),
        trap_exit_offset: o(trap_exit_pos),
        counter_slots: counters,
        options: opts,
        encode_ticks,
        source: stubs.contains(&true).then(|| bytes.into()),
        specializations: specs.to_vec(),
        lazy_counters,
        stubs,
        desc,
    })
}

pub(crate) fn lower_function<'b>(
    cx: &mut ModCx<'_>,
    index: u32,
    body: &FunctionBody<'b>,
    bytes: &'b [u8],
) -> Result<RawMeta, CompileError> {
    let ty = cx.m.func_type(index).clone();
    let mut locals: Vec<Ty> = ty.params.clone();
    // A body not validated yet is validated here, each operator as it is decoded.
    let mut validator = cx.validator(index);
    let mut reader = body.get_locals_reader()?;
    for _ in 0..reader.get_count() {
        let at = reader.original_position();
        let (count, t) = reader.read()?;
        if let Some(v) = &mut validator {
            v.define_locals(at, count, t)?;
        }
        let t = Ty::from_wasm(t)?;
        if locals.len() + count as usize > 50_000 {
            return Err(CompileError::Unsupported("more than 50000 locals".into()));
        }
        locals.extend(core::iter::repeat_n(t, count as usize));
    }
    // About one operator per two bytes of body in compiled C and Rust: one allocation, rarely
    // a second.
    let range = body.range();
    let mut ops = Vec::with_capacity(((range.end - range.start) / 2) as usize + 4);
    let mut reader = body.get_operators_reader()?;
    // Whether the body has a loop and a call: by default only calls inside loops are inlined.
    let (mut loops, mut calls) = (false, false);
    while !reader.eof() {
        let (op, offset) = match &mut validator {
            Some(v) => decode::read_validated(&mut reader, v)?,
            None => reader.read_with_offset()?,
        };
        loops |= matches!(op, Operator::Loop { .. });
        calls |= matches!(op, Operator::Call { .. });
        ops.push((op, offset as u32));
    }
    reader.finish()?;
    if let Some(v) = validator {
        cx.validated(v);
    }
    if cx.opts.inline && calls && (loops || cx.opts.inline_everywhere) {
        ops = inline::expand(cx, index, &mut locals, ops, bytes)?;
    }
    let start = cx.e.pos() - 1;
    let nparams = ty.params.len();
    let (local_disp, local_slots) = simd::local_layout(&locals, nparams);
    let wide_slots = cx.m.uses_v128
        || locals.iter().any(|t| t.is_v128())
        || ops
            .iter()
            .any(|&(_, at)| bytes[at as usize] == simd::PREFIX);
    let pinned = if cx.opts.reg_locals {
        pinned::Pinned::choose(&locals, &ops, wide_slots)
    } else {
        pinned::Pinned::default()
    };
    let mut f = Func {
        cx,
        index,
        locals,
        local_disp,
        local_slots,
        wide_slots,
        stack: Vec::new(),
        frames: Vec::new(),
        gprs: Pool::new(&GPRS).without(pinned.gpr_mask),
        xmms: Pool::new(&XMMS).without(pinned.xmm_mask),
        pinned,
        max_depth: 0,
        max_out: 0,
        dead: false,
        dead_nest: 0,
        pending: None,
        raw: RawMeta {
            start,
            ..RawMeta::default()
        },
        wasm_offset: ops.first().map_or(0, |o| o.1),
        const_params: Vec::new(),
        tail_opener: ret::tail_opener(&ops),
    };
    let sub_at = f.prologue()?;
    let consts = specialize::applicable(&f.cx.specs, index, &ty.params, &ops);
    if !consts.is_empty() {
        let mut general = f.cx.e.label();
        f.guard_params(&consts, general)?;
        f.const_params = consts;
        f.body(&ops, &ty.results)?;
        f.const_params.clear();
        f.reset_body();
        f.cx.e.bind(&mut general)?;
    }
    f.body(&ops, &ty.results)?;
    let nonparam = f.local_slots as u32;
    let stack_slots = f.max_depth as u32 * if f.wide_slots { 2 } else { 1 };
    let frame_bytes = (8 + 8 * (nonparam + stack_slots + f.max_out as u32)).next_multiple_of(16);
    f.cx.patches.push((sub_at, frame_bytes));
    f.raw.frame = FrameLayout {
        frame_bytes,
        locals: nonparam,
        stack_slots,
        outgoing_slots: f.max_out as u32,
    };
    f.raw.end = f.cx.e.pos();
    Ok(f.raw)
}

impl Func<'_, '_> {
    /// `push rbp; mov rbp, rsp; sub rsp, FRAME; stack check; save vmctx; zero locals`.
    /// Returns the instruction index of the `sub` whose immediate is patched later.
    fn prologue(&mut self) -> Result<usize, CompileError> {
        let e = &mut self.cx.e;
        e.ins(Instruction::with1(Code::Push_r64, R64[reg::RBP as usize]))?;
        e.mov_rr(reg::RBP, reg::RSP, true)?;
        let sub_at = e.pos();
        e.ins(Instruction::with2(
            Code::Sub_rm64_imm32,
            R64[reg::RSP as usize],
            0x1000_0000i32,
        ))?;
        e.ins(Instruction::with2(
            Code::Cmp_r64_rm64,
            R64[reg::RSP as usize],
            mem(reg::VMCTX, off::STACK_LIMIT),
        ))?;
        let overflow = self.cx.trap(TrapCode::StackOverflow);
        self.cx.e.jcc(Cond::B, overflow)?;
        self.cx.e.store(mem(reg::RBP, -8), reg::VMCTX, true)?;
        let nonparam = self.local_slots;
        if nonparam > 0 {
            let e = &mut self.cx.e;
            e.ins(Instruction::with2(Code::Xor_r32_rm32, R32[0], R32[0]))?;
            if nonparam <= 16 {
                for i in 0..nonparam {
                    e.store(mem(reg::RBP, -16 - 8 * i as i32), reg::RAX, true)?;
                }
            } else {
                // rep stosq from the lowest local upwards; rdi/rcx are free in the prologue.
                e.ins(Instruction::with2(
                    Code::Lea_r64_m,
                    R64[reg::RDI as usize],
                    mem(reg::RBP, -8 - 8 * nonparam as i32),
                ))?;
                e.mov_imm(reg::RCX, false, nonparam as u64)?;
                e.ins(Instruction::with_rep_stosq(64))?;
            }
        }
        self.count_block()?;
        Ok(sub_at)
    }

    /// Increments a fresh block counter (when enabled). Clobbers `rax` and the flags.
    pub fn count_block(&mut self) -> Result<(), CompileError> {
        if !self.cx.opts.block_counters {
            return Ok(());
        }
        let slot = self.cx.counter_base + self.cx.counters.len() as u32;
        if self.raw.counters.is_empty() {
            self.raw.counters = slot..slot;
        }
        self.raw.counters.end = slot + 1;
        self.cx.counters.push(CounterSlot {
            func: self.index,
            wasm_offset: self.wasm_offset,
        });
        let e = &mut self.cx.e;
        e.load(reg::RAX, true, mem(reg::VMCTX, off::COUNTERS))?;
        e.ins(Instruction::with1(
            Code::Inc_rm64,
            mem(reg::RAX, 8 * slot as i32),
        ))
    }

    /// Memory operand of local `i`.
    pub fn local_mem(&self, i: u32) -> MemoryOperand {
        mem(reg::RBP, self.local_disp[i as usize])
    }

    /// Memory operand of home slot `d` (its lowest address; 16 bytes when `wide_slots`).
    pub fn slot(&self, d: usize) -> MemoryOperand {
        let k = if self.wide_slots { 2 * d + 1 } else { d };
        mem(reg::RBP, -16 - 8 * (self.local_slots + k) as i32)
    }

    pub fn height(&self) -> usize {
        self.stack.len()
    }

    pub fn push(&mut self, ty: Ty, loc: Loc) {
        self.stack.push(Entry { ty, loc });
        self.max_depth = self.max_depth.max(self.stack.len());
    }

    pub fn pop(&mut self) -> Val {
        let e = self
            .stack
            .pop()
            .expect("validated module: value stack underflow");
        Val {
            ty: e.ty,
            loc: e.loc,
            depth: self.stack.len(),
        }
    }

    /// Peeks at the type and location `n` entries below the top.
    pub fn peek(&self, n: usize) -> (Ty, Loc) {
        let e = self.stack[self.stack.len() - 1 - n];
        (e.ty, e.loc)
    }

    /// Truncates the abstract stack to `height` (entries are dropped, registers freed).
    pub fn truncate(&mut self, height: usize) {
        while self.stack.len() > height {
            let v = self.pop();
            self.release(v);
        }
    }

    /// Whether constants stay symbolic.
    pub fn symbolic_consts(&self) -> bool {
        self.cx.opts.const_fold || self.cx.opts.dce
    }

    pub fn push_const(&mut self, ty: Ty, bits: u64) -> Result<(), CompileError> {
        if self.symbolic_consts() {
            self.push(ty, Loc::Const(bits));
            return Ok(());
        }
        self.materialize_const(ty, bits)
    }

    /// Pushes a constant in a register.
    pub fn materialize_const(&mut self, ty: Ty, bits: u64) -> Result<(), CompileError> {
        if ty.is_float() {
            let x = self.alloc_xmm()?;
            self.cx.e.mov_imm(reg::RAX, ty.is_wide(), bits)?;
            self.gpr_to_xmm(x, reg::RAX, ty.is_wide())?;
            self.push(ty, Loc::Xmm(x));
        } else {
            let r = self.alloc_gpr()?;
            self.cx.e.mov_imm(r, ty.is_wide(), bits)?;
            self.push(ty, Loc::Gpr(r));
        }
        Ok(())
    }

    /// Frees the register a value occupied (nothing for an alias of a pinned local).
    pub fn release(&mut self, v: Val) {
        match v.loc {
            Loc::Gpr(r) => self.free_gpr(r),
            Loc::Xmm(x) => self.free_xmm(x),
            Loc::Mem | Loc::Const(_) => {}
        }
    }

    /// Returns `r` to the pool; a pinned local's register (a read-only alias) stays out.
    pub fn free_gpr(&mut self, r: u8) {
        if !self.is_pinned_gpr(r) {
            self.gprs.give(r);
        }
    }

    /// Returns `x` to the pool; a pinned local's register (a read-only alias) stays out.
    pub fn free_xmm(&mut self, x: u8) {
        if !self.is_pinned_xmm(x) {
            self.xmms.give(x);
        }
    }

    pub fn alloc_gpr(&mut self) -> Result<u8, CompileError> {
        if let Some(r) = self.gprs.take(&GPRS) {
            return Ok(r);
        }
        let d = self
            .stack
            .iter()
            .position(|e| matches!(e.loc, Loc::Gpr(r) if !self.is_pinned_gpr(r)))
            .ok_or_else(|| CompileError::Assembler("out of general registers".into()))?;
        self.spill(d)?;
        Ok(self.gprs.take(&GPRS).expect("just spilled"))
    }

    pub fn alloc_xmm(&mut self) -> Result<u8, CompileError> {
        if let Some(x) = self.xmms.take(&XMMS) {
            return Ok(x);
        }
        let d = self
            .stack
            .iter()
            .position(|e| matches!(e.loc, Loc::Xmm(x) if !self.is_pinned_xmm(x)))
            .ok_or_else(|| CompileError::Assembler("out of XMM registers".into()))?;
        self.spill(d)?;
        Ok(self.xmms.take(&XMMS).expect("just spilled"))
    }

    /// Moves stack entry `d` to its home slot.
    fn spill(&mut self, d: usize) -> Result<(), CompileError> {
        let Entry { ty, loc } = self.stack[d];
        if loc == Loc::Mem {
            return Ok(());
        }
        let slot = self.slot(d);
        self.write_to(slot, ty, loc)?;
        self.release(Val { ty, loc, depth: d });
        self.stack[d].loc = Loc::Mem;
        Ok(())
    }

    /// Spills every entry (the canonical state at merges and calls). Emits only `mov`s, so
    /// the flags survive (the compare-branch peephole relies on it).
    pub fn spill_all(&mut self) -> Result<(), CompileError> {
        for d in 0..self.stack.len() {
            self.spill(d)?;
        }
        Ok(())
    }

    /// Stores a value (not `Mem` of a different slot unless `loc` is `Mem` at depth) to `m`.
    fn write_to(&mut self, m: MemoryOperand, ty: Ty, loc: Loc) -> Result<(), CompileError> {
        let e = &mut self.cx.e;
        match loc {
            Loc::Gpr(r) => e.store(m, r, ty.is_wide()),
            Loc::Xmm(x) => self.xmm_store_ty(m, x, ty),
            Loc::Const(bits) => {
                if !ty.is_wide() {
                    e.ins(Instruction::with2(Code::Mov_rm32_imm32, m, bits as u32))
                } else if bits as i64 == i64::from(bits as i32) {
                    e.ins(Instruction::with2(Code::Mov_rm64_imm32, m, bits as i32))
                } else {
                    e.mov_imm(reg::RAX, true, bits)?;
                    e.store(m, reg::RAX, true)
                }
            }
            Loc::Mem => unreachable!("write_to of a Mem value"),
        }
    }

    /// Stores value `v` as 8 bytes to `m` (used for call arguments).
    pub fn write_val(&mut self, m: MemoryOperand, v: Val) -> Result<(), CompileError> {
        if v.loc == Loc::Mem {
            let slot = self.slot(v.depth);
            if v.ty.is_v128() {
                self.xmm_load_ty(0, slot, v.ty)?;
                return self.xmm_store_ty(m, 0, v.ty);
            }
            self.cx.e.load(reg::RAX, true, slot)?;
            return self.cx.e.store(m, reg::RAX, true);
        }
        self.write_to(m, v.ty, v.loc)
    }

    /// Puts `v` in a general register the caller owns (copies an alias of a pinned local).
    pub fn gpr_of(&mut self, v: Val) -> Result<u8, CompileError> {
        match v.loc {
            Loc::Gpr(r) if self.is_pinned_gpr(r) => {
                let d = self.alloc_gpr()?;
                self.cx.e.mov_rr(d, r, v.ty.is_wide())?;
                Ok(d)
            }
            Loc::Gpr(r) => Ok(r),
            Loc::Mem => {
                let r = self.alloc_gpr()?;
                let slot = self.slot(v.depth);
                self.cx.e.load(r, v.ty.is_wide(), slot)?;
                Ok(r)
            }
            Loc::Const(bits) => {
                let r = self.alloc_gpr()?;
                self.cx.e.mov_imm(r, v.ty.is_wide(), bits)?;
                Ok(r)
            }
            Loc::Xmm(_) => unreachable!("integer value in an XMM register"),
        }
    }

    /// Puts `v` in an XMM register the caller owns (copies an alias of a pinned local).
    pub fn xmm_of(&mut self, v: Val) -> Result<u8, CompileError> {
        match v.loc {
            Loc::Xmm(x) if self.is_pinned_xmm(x) => {
                let d = self.alloc_xmm()?;
                self.cx.e.xx(Code::Movaps_xmm_xmmm128, d, x)?;
                Ok(d)
            }
            Loc::Xmm(x) => Ok(x),
            Loc::Mem => {
                let x = self.alloc_xmm()?;
                let slot = self.slot(v.depth);
                self.xmm_load_ty(x, slot, v.ty)?;
                Ok(x)
            }
            Loc::Const(bits) => {
                let x = self.alloc_xmm()?;
                self.cx.e.mov_imm(reg::RAX, v.ty.is_wide(), bits)?;
                self.gpr_to_xmm(x, reg::RAX, v.ty.is_wide())?;
                Ok(x)
            }
            Loc::Gpr(_) => unreachable!("float value in a general register"),
        }
    }

    /// Loads `v` (any type) into its register class and pushes it back as a register entry.
    pub fn val_to_reg(&mut self, v: Val) -> Result<Loc, CompileError> {
        Ok(if v.ty.is_float() {
            Loc::Xmm(self.xmm_of(v)?)
        } else {
            Loc::Gpr(self.gpr_of(v)?)
        })
    }

    pub fn xmm_load(&mut self, x: u8, m: MemoryOperand, wide: bool) -> Result<(), CompileError> {
        let code = if wide {
            Code::Movsd_xmm_xmmm64
        } else {
            Code::Movss_xmm_xmmm32
        };
        self.cx
            .e
            .ins(Instruction::with2(code, crate::emit::XMM[x as usize], m))
    }

    pub fn xmm_store(&mut self, m: MemoryOperand, x: u8, wide: bool) -> Result<(), CompileError> {
        let code = if wide {
            Code::Movsd_xmmm64_xmm
        } else {
            Code::Movss_xmmm32_xmm
        };
        self.cx
            .e
            .ins(Instruction::with2(code, m, crate::emit::XMM[x as usize]))
    }

    pub fn gpr_to_xmm(&mut self, x: u8, r: u8, wide: bool) -> Result<(), CompileError> {
        let ins = if wide {
            Instruction::with2(
                Code::Movq_xmm_rm64,
                crate::emit::XMM[x as usize],
                R64[r as usize],
            )
        } else {
            Instruction::with2(
                Code::Movd_xmm_rm32,
                crate::emit::XMM[x as usize],
                R32[r as usize],
            )
        };
        self.cx.e.ins(ins)
    }

    pub fn xmm_to_gpr(&mut self, r: u8, x: u8, wide: bool) -> Result<(), CompileError> {
        let ins = if wide {
            Instruction::with2(
                Code::Movq_rm64_xmm,
                R64[r as usize],
                crate::emit::XMM[x as usize],
            )
        } else {
            Instruction::with2(
                Code::Movd_rm32_xmm,
                R32[r as usize],
                crate::emit::XMM[x as usize],
            )
        };
        self.cx.e.ins(ins)
    }

    /// Jumps to the trap stub for `code` when `cond` holds.
    pub fn trap_if(&mut self, cond: Cond, code: TrapCode) -> Result<(), CompileError> {
        let label = self.cx.trap(code);
        self.cx.e.jcc(cond, label)
    }

    /// Records a call instruction about to be emitted.
    pub fn note_call(&mut self, target: CallTarget) {
        let pos = self.cx.e.pos();
        self.raw.calls.push((pos, target));
    }

    /// Reloads the memory base after anything that may have grown memory.
    pub fn reload_membase(&mut self) -> Result<(), CompileError> {
        self.cx
            .e
            .load(reg::MEMBASE, true, mem(reg::VMCTX, off::MEMORY_BASE))
    }

    /// Lowers one operator. `next` is the following operator (for peepholes).
    fn op(&mut self, op: &Operator<'_>, next: Option<&Operator<'_>>) -> Result<(), CompileError> {
        if self.control(op, next)?
            || self.int(op, next)?
            || self.float(op, next)?
            || self.memory(op, next)?
            || self.table(op)?
        {
            return Ok(());
        }
        if self.call_or_var(op)? || self.simd(op)? {
            return Ok(());
        }
        Err(CompileError::Unsupported(alloc::format!("operator {op:?}")))
    }
}
