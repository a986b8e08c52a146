//! Lazy assembly in the lowering: calls through code cells, the stub a function not assembled
//! yet gets, and lowering one function on its own (at its first call).
//!
//! A function not assembled up front is reached only through its code cell (the
//! `FuncRef::code_cell` of the calling instance's `func_refs`), never by `call rel32`: the cell
//! first holds the stub's address, and the embedder stores the assembled function's address in
//! it once (see `crate::lazy`). The stub is an ordinary function (frame record, `leave; ret`),
//! so the stack walk and the islands treat it like any other.

use alloc::vec::Vec;

use iced_x86::{Code, Instruction};
use wasmparser::{BinaryReader, FunctionBody, Operator};

use super::{Func, ModCx, RawMeta, lower_function};
use crate::emit::{Cond, Emitter, mem, reg};
use crate::meta::{CallTarget, CounterSlot, FunctionMeta};
use crate::module::ModuleDesc;
use crate::trap_labels::TrapLabels;
use crate::vmctx::off;
use crate::{CompileError, Libcall, Options, trampoline};

/// Reserves block counter slots for defined function `index`, a stub here, to count its blocks
/// once it is assembled lazily: one per block the lowering can count (the entry, and at most
/// one per `loop`, `if`, `else` and `end`), twice over for a specialized second body.
pub(crate) fn reserve_counters(
    cx: &mut ModCx<'_>,
    bytes: &[u8],
    index: u32,
) -> Result<(), CompileError> {
    if !cx.opts.block_counters {
        return Ok(());
    }
    let range = cx.m.bodies[(index - cx.m.func_imports) as usize].clone();
    let body = FunctionBody::new(BinaryReader::new(&bytes[range.clone()], range.start as u64));
    let mut ops = body.get_operators_reader()?;
    let mut blocks = 0u32;
    while !ops.eof() {
        if matches!(
            ops.read()?,
            Operator::Loop { .. } | Operator::If { .. } | Operator::Else | Operator::End
        ) {
            blocks += 1;
        }
    }
    let bound = 1 + 2 * blocks;
    let start = cx.counter_base + cx.counters.len() as u32;
    for _ in 0..bound {
        cx.counters.push(CounterSlot {
            func: index,
            wasm_offset: 0,
        });
    }
    cx.lazy_counters[index as usize] = start..start + bound;
    Ok(())
}

/// `rax = func_refs[index].code_cell` (clobbers `rax` only).
fn load_cell(e: &mut Emitter, index: u32) -> Result<(), CompileError> {
    let disp = i32::try_from(index)
        .ok()
        .and_then(|i| i.checked_mul(off::FUNC_REF_BYTES))
        .ok_or_else(|| CompileError::Unsupported("too many functions".into()))?;
    e.load(reg::RAX, true, mem(reg::VMCTX, off::FUNC_REFS))?;
    e.load(
        reg::RAX,
        true,
        mem(reg::RAX, disp + off::FUNC_REF_CODE_CELL),
    )
}

/// A direct call of function `index` through its code cell: `call [cell]` reads the address
/// with the call itself. Arguments are in the outgoing area already.
pub(crate) fn call_cell(f: &mut Func<'_, '_>, index: u32) -> Result<(), CompileError> {
    load_cell(&mut f.cx.e, index)?;
    f.note_call(CallTarget::Cell(index));
    f.cx.e
        .ins(Instruction::with1(Code::Call_rm64, mem(reg::RAX, 0)))
}

/// The stub of function `index` (the label is bound already): a frame of its own, then
/// `LazyAssemble(vmctx, index)` (which stores the assembled code's address in the cell, or
/// sets a trap code), then a call of the function through the cell with the caller's
/// arguments copied from the incoming slots, results copied back, `leave; ret`.
pub(crate) fn emit_stub(cx: &mut ModCx<'_>, index: u32) -> Result<RawMeta, CompileError> {
    let ty = cx.m.func_type(index).clone();
    let failed = cx.traps.vm();
    let mut raw = super::call::enter_small_frame(cx, ty.slots() as u32)?;
    let e = &mut cx.e;
    e.mov_rr(reg::RDI, reg::VMCTX, true)?;
    e.mov_imm(reg::RSI, false, u64::from(index))?;
    e.load(reg::RAX, true, mem(reg::VMCTX, off::LIBCALLS))?;
    raw.calls
        .push((e.pos(), CallTarget::Libcall(Libcall::LazyAssemble)));
    e.ins(Instruction::with1(
        Code::Call_rm64,
        mem(reg::RAX, 8 * Libcall::LazyAssemble as i32),
    ))?;
    e.load(reg::VMCTX, true, mem(reg::RBP, -8))?;
    e.ins(Instruction::with2(
        Code::Cmp_rm32_imm8,
        mem(reg::VMCTX, off::TRAP_CODE),
        0i32,
    ))?;
    e.jcc(Cond::Ne, failed)?;
    // Every 8-byte argument slot (a v128 takes two).
    let param_slots: usize = ty.params.iter().map(|t| t.slots()).sum();
    let result_slots: usize = ty.results.iter().map(|t| t.slots()).sum();
    for i in 0..param_slots as i32 {
        e.load(reg::RDX, true, mem(reg::RBP, 16 + 8 * i))?;
        e.store(mem(reg::RSP, 8 * i), reg::RDX, true)?;
    }
    e.load(reg::MEMBASE, true, mem(reg::VMCTX, off::MEMORY_BASE))?;
    load_cell(e, index)?;
    raw.calls.push((e.pos(), CallTarget::Cell(index)));
    e.ins(Instruction::with1(Code::Call_rm64, mem(reg::RAX, 0)))?;
    e.load(reg::VMCTX, true, mem(reg::RBP, -8))?;
    for i in 0..result_slots as i32 {
        e.load(reg::RDX, true, mem(reg::RSP, 8 * i))?;
        e.store(mem(reg::RBP, 16 + 8 * i), reg::RDX, true)?;
    }
    e.load(reg::MEMBASE, true, mem(reg::VMCTX, off::MEMORY_BASE))?;
    e.op0(Code::Leaveq)?;
    e.op0(Code::Retnq)?;
    raw.end = cx.e.pos();
    Ok(raw)
}

/// Lowers defined function `index` of the module `bytes` (described by `desc`) on its own:
/// position-independent code starting with the function, followed by trap stubs of its own
/// (inside its code range, so they move with it), every call through a code cell. Its block
/// counters (with `block_counters`) are the slots `counters` its module reserved. Returns the
/// code, the function's metadata (offsets relative to the code's start) and what its counters
/// count.
pub(crate) fn compile_one(
    bytes: &[u8],
    desc: &ModuleDesc,
    opts: Options,
    index: u32,
    specs: &[crate::Specialize],
    counters: core::ops::Range<u32>,
) -> Result<(Vec<u8>, FunctionMeta, Vec<CounterSlot>), CompileError> {
    let mut e = Emitter::new()?;
    e.set_schedule(opts.schedule);
    let mut label = e.label();
    let traps = TrapLabels::new(&mut e);
    let mut cx = ModCx {
        e,
        m: desc,
        opts: Options {
            block_counters: opts.block_counters && !counters.is_empty(),
            ..opts
        },
        func_labels: Vec::new(),
        traps,
        counters: Vec::new(),
        patches: Vec::new(),
        via_cell: alloc::vec![true; desc.funcs.len()],
        specs: specs.to_vec(),
        counter_base: counters.start,
        lazy_counters: Vec::new(),
        // Every call goes through a code cell here: nothing is inlined.
        inline_verdicts: Vec::new(),
        // The module was validated when its stubs were made.
        pending: Vec::new(),
        allocs: Default::default(),
    };
    cx.e.bind(&mut label)?;
    let range = desc.bodies[(index - desc.func_imports) as usize].clone();
    let body = FunctionBody::new(BinaryReader::new(&bytes[range.clone()], range.start as u64));
    let raw = lower_function(&mut cx, index, &body, bytes)?;
    if cx.counters.len() > counters.len() {
        return Err(CompileError::Assembler(alloc::format!(
            "function {index} counts {} blocks, {} reserved",
            cx.counters.len(),
            counters.len()
        )));
    }
    let slots = core::mem::take(&mut cx.counters);
    trampoline::emit_trap_stubs(&mut cx.e, &cx.traps)?;
    let end = cx.e.pos();
    let patches = core::mem::take(&mut cx.patches);
    let assembled = cx.e.assemble(|ins: &mut [Instruction]| {
        for &(at, bytes) in &patches {
            ins[at].set_immediate32(bytes);
        }
    })?;
    let name = desc.names.get(index as usize).cloned().flatten();
    let meta = raw.into_meta(index, name, &assembled.offsets, end, 0);
    Ok((assembled.code, meta, slots))
}
