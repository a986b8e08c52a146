//! Metadata per assembled function, for the islands work: code range, instruction boundaries,
//! call sites, frame layout and block counter slots. All offsets are relative to the start of
//! [`CompiledModule::code`](crate::CompiledModule::code).

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use crate::Libcall;

/// What a call instruction calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallTarget {
    /// A function of this module (imports are reached through their thunk, also a function).
    Func(u32),
    /// `call_indirect` with this type index.
    Indirect(u32),
    /// A runtime helper.
    Libcall(Libcall),
    /// A host function bound to import `n` (the host path of its thunk).
    Import(u32),
    /// A function of another instance bound to import `n` (the wasm path of its thunk): the
    /// callee is generated code with its own frame, unlike a host function's.
    ImportWasm(u32),
    /// A function of this module called through its code cell (`FuncRef::code_cell`):
    /// calls to functions assembled lazily, and every call made by lazily assembled code.
    Cell(u32),
}

/// One call instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSite {
    /// Offset of the call instruction.
    pub offset: u32,
    /// Offset just after it (the return address).
    pub return_offset: u32,
    /// Callee.
    pub target: CallTarget,
}

/// How a function's frame is laid out (`rbp`-based; `push rbp; mov rbp, rsp` always).
///
/// - `[rbp + 16 + 8*i]`: incoming argument / result slot `i` (the caller's outgoing area)
/// - `[rbp + 8]`: return address, `[rbp]`: caller's `rbp`
/// - `[rbp - 8]`: the VM context (`r14`) of this activation
/// - `[rbp - 16 - 8*i]`: non-parameter local `i` (parameters live in the incoming slots)
/// - below: value-stack home slots, then the outgoing-argument area at `[rsp]`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameLayout {
    /// Bytes below `rbp` (`rsp = rbp - frame_bytes`), a multiple of 16.
    pub frame_bytes: u32,
    /// Non-parameter locals.
    pub locals: u32,
    /// Value-stack home slots.
    pub stack_slots: u32,
    /// Outgoing argument slots at `[rsp]`.
    pub outgoing_slots: u32,
}

/// Metadata of one assembled function (defined function or import thunk).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionMeta {
    /// Function index (imports first).
    pub index: u32,
    /// Name, when known.
    pub name: Option<String>,
    /// Code range.
    pub code_range: Range<u32>,
    /// `(code offset, wasm byte offset)` of each lowered operator, in code order.
    pub insn_boundaries: Vec<(u32, u32)>,
    /// Calls made by this function.
    pub call_sites: Vec<CallSite>,
    /// Frame layout.
    pub frame: FrameLayout,
    /// Block counter slots owned by this function (indices into `VmContext::counters`).
    pub counter_slots: Range<u32>,
    /// Clock ticks spent lowering this function (0 unless compiled with a clock; see
    /// [`crate::compile_timed`]). Encoding is timed for the whole module.
    pub lower_ticks: u64,
}

/// What a block counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSlot {
    /// Function index.
    pub func: u32,
    /// Wasm byte offset of the block start (function entry, loop header, branch arm, join).
    pub wasm_offset: u32,
}
