//! atoll's Predictive Assembly Engine code generator: validated WebAssembly to x86-64 machine
//! code through iced-x86's `Encoder` (no_std + alloc; also builds for the host).
//!
//! - [`compile`] validates a module against [`chunk_image::SUPPORTED_FEATURES`] and lowers every
//!   function in one pass (a Liftoff-style value stack: values stay in registers inside basic
//!   blocks, constants stay symbolic) into one position-independent code blob, a
//!   [`CompiledModule`]. It owns no executable memory.
//! - [`runtime`] builds instance state (memory, globals, table, imports) from a compiled module
//!   and calls exports through the entry trampoline; the host and the kernel only differ in how
//!   they make code executable ([`runtime::CodeMemory`]) and provide linear memory
//!   ([`runtime::LinearMemory`]).
//!
//! Invariants of generated code: the frame pointer is kept (`push rbp; mov rbp, rsp`), `r14`
//! holds the [`VmContext`], `r15` the memory base; every memory access is bounds-checked
//! explicitly, or with `Options::guard_pages` by the page tables (the embedder's fault handler
//! turns a fault into the trap), every prologue checks the stack limit, and a
//! trap jumps to the trampoline's trap exit, which restores the entry stack pointer and returns
//! the [`TrapCode`]. Design notes: `docs/codegen.md`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod cpu;
mod emit;
mod encode;
mod fastenc;
pub mod lazy;
mod lower;
pub mod meta;
pub mod module;
mod opt;
pub mod reach;
mod regalloc;
pub mod runtime;
mod sched;
mod trampoline;
mod trap_labels;
pub mod vmctx;

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

pub use cpu::CpuFeatures;
pub use meta::{CallSite, CallTarget, CounterSlot, FrameLayout, FunctionMeta};
pub use module::{FuncType, ModuleDesc, Ty};
pub use opt::specialize::{ArgProfile, Specialize};
pub use vmctx::{FuncRef, HostFunc, ImportEntry, MemoryDef, TableDef, TrapCode, VmContext};

/// Which optimizations run. All but `block_counters`, `lazy` and `schedule` are on by default;
/// each can be switched on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Constant propagation and folding: constants stay symbolic on the value stack, fold
    /// through integer operators and become immediates.
    pub const_fold: bool,
    /// Dead-code elimination: branches on known conditions (`if`, `br_if`, `br_table`,
    /// `select`) emit only the taken path. (Unreachable code after `br`/`return` is never
    /// emitted, with or without this pass.)
    pub dce: bool,
    /// Peepholes: compares fused into the following `br_if`/`if` (`cmp; jcc` instead of
    /// `setcc; test; jcc`), memory operands used directly as ALU sources.
    pub peephole: bool,
    /// Count executions of each block in `VmContext::counters`.
    pub block_counters: bool,
    /// Assemble no defined function up front: each starts as a lazy stub that has the embedder
    /// assemble it at its first call ([`compile_for`] chooses the subset instead). The
    /// embedder's [`runtime::CodeMemory`] must support lazy assembly. With `block_counters`,
    /// the module reserves counter slots for each stub's function
    /// ([`CompiledModule::lazy_counters`]).
    pub lazy: bool,
    /// Profile-guided specialization: functions with constant parameters
    /// ([`compile_specialized`]) get a guarded body with those parameters folded in.
    pub specialize: bool,
    /// Hot locals in registers across control flow: the most used numeric locals (weighted
    /// by loop depth) live in registers for the whole function, stored to their frame slots
    /// only around calls (`lower::pinned`).
    pub reg_locals: bool,
    /// `br_table` as a balanced tree of compares (O(log n) branches; no data words in code,
    /// so islands can be decoded and moved) instead of a linear compare chain.
    pub br_tree: bool,
    /// `br_table` with 8 or more entries as a jump table: a run of fixed-size `lea rax,
    /// [rip + target]; jmp rax` entries indexed by the operand (no data words in code, so
    /// islands can still be decoded and moved; `lower::jump_table`). Takes precedence over
    /// `br_tree` for those tables.
    pub jump_table: bool,
    /// Instruction scheduling: each basic block's instructions are reordered to start loads,
    /// multiplies and divides early (`sched.rs`); traps still happen at the same point of the
    /// memory's history. Off by default: it makes compiling about 1.7x slower for no execution
    /// gain measurable on the benchmark (`docs/benchmarks.md`).
    pub schedule: bool,
    /// SSE extensions SIMD operators may use (detected by default; SSE2 only in `NONE`).
    pub cpu: CpuFeatures,
    /// Sandbox linear memory through the page tables instead of explicit bounds checks: no
    /// check is emitted before a load or store, and the embedder must back the memory with a
    /// reservation of [`runtime::GUARD_RESERVE_BYTES`] whose pages past the memory's size fault
    /// (`LinearMemory::guard_reserved`; `Instance::new` refuses any other memory) and turn a
    /// fault in generated code into [`TrapCode::MemoryOutOfBounds`]. Off by default (explicit
    /// checks); see `docs/guard-pages.md`.
    pub guard_pages: bool,
    /// Instruction selection over pinned locals and flags (`lower::fuse`): `local.get` of a
    /// pinned local is a read-only alias of its register, an operator whose result goes to a
    /// pinned local writes that register directly, and compares (and `i32.and` tests) feed
    /// `select`, `i32.eqz`, `br_if` and `if` through the flags. Needs `reg_locals` for the
    /// first two; the flags part works alone.
    pub fuse: bool,
    /// Small callees inlined into their callers: a direct call, inside a loop of the caller, of
    /// a function of at most 16 operators of the same module assembled in the same code becomes
    /// its body, its locals the caller's (`lower::inline`, `docs/inlining.md`).
    pub inline: bool,
    /// With `inline`: inline at every call site, not only in loops, callees of up to 48
    /// operators (much more code and compile time for little speed; off by default, used by
    /// the tests to run the inliner over every kind of call site).
    pub inline_everywhere: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            const_fold: true,
            dce: true,
            peephole: true,
            block_counters: false,
            lazy: false,
            specialize: true,
            reg_locals: true,
            br_tree: true,
            jump_table: true,
            schedule: false,
            cpu: CpuFeatures::detect(),
            guard_pages: false,
            fuse: true,
            inline: true,
            inline_everywhere: false,
        }
    }
}

impl Options {
    /// Every optimization off and SSE2 only (the baseline translation).
    pub const NONE: Options = Options {
        const_fold: false,
        dce: false,
        peephole: false,
        block_counters: false,
        lazy: false,
        specialize: false,
        reg_locals: false,
        br_tree: false,
        jump_table: false,
        schedule: false,
        cpu: CpuFeatures::SSE2,
        guard_pages: false,
        fuse: false,
        inline: false,
        inline_everywhere: false,
    };
}

/// Why a module could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    /// The module is invalid or uses an unsupported feature (wasmparser's message).
    Invalid(String),
    /// A construct this code generator does not handle.
    Unsupported(String),
    /// The assembler rejected an instruction (a code-generator bug).
    Assembler(String),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(m) => write!(f, "invalid module: {m}"),
            Self::Unsupported(m) => write!(f, "unsupported: {m}"),
            Self::Assembler(m) => write!(f, "assembler error: {m}"),
        }
    }
}

impl core::error::Error for CompileError {}

impl From<wasmparser::BinaryReaderError> for CompileError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        Self::Invalid(alloc::format!(
            "{} (at offset {:#x})",
            e.message(),
            e.offset()
        ))
    }
}

impl From<iced_x86::IcedError> for CompileError {
    fn from(e: iced_x86::IcedError) -> Self {
        Self::Assembler(e.to_string())
    }
}

/// Runtime helpers generated code calls through `VmContext::libcalls`
/// (`extern "C" fn(vmctx, a, b, c) -> u64`, floats passed as bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
#[allow(missing_docs)]
pub enum Libcall {
    MemoryGrow,
    MemoryFill,
    MemoryCopy,
    MemoryInit,
    DataDrop,
    TableInit,
    TableCopy,
    ElemDrop,
    TableGrow,
    TableFill,
    Popcnt32,
    Popcnt64,
    F32Ceil,
    F32Floor,
    F32Trunc,
    F32Nearest,
    F64Ceil,
    F64Floor,
    F64Trunc,
    F64Nearest,
    /// Float-to-int conversions, in the order `sat << 3 | from_f64 << 2 | to_i64 << 1 |
    /// unsigned` from here.
    I32TruncF32S,
    I32TruncF32U,
    I64TruncF32S,
    I64TruncF32U,
    I32TruncF64S,
    I32TruncF64U,
    I64TruncF64S,
    I64TruncF64U,
    I32TruncSatF32S,
    I32TruncSatF32U,
    I64TruncSatF32S,
    I64TruncSatF32U,
    I32TruncSatF64S,
    I32TruncSatF64U,
    I64TruncSatF64S,
    I64TruncSatF64U,
    F32ConvertU64,
    F64ConvertU64,
    /// Assembles a function compiled as a lazy stub (`a`: its index; see [`lazy`]).
    LazyAssemble,
    /// A simd128 operation computed lane by lane (`runtime::lanes`): `(op, operands)`.
    Simd,
}

/// Number of libcall slots.
pub const LIBCALL_COUNT: usize = Libcall::Simd as usize + 1;

/// A module compiled to position-independent machine code.
#[derive(Debug, Clone)]
pub struct CompiledModule {
    /// Module description (types, imports, globals, segments, exports).
    pub desc: ModuleDesc,
    /// Machine code; every internal reference is `rip`-relative, so it runs at any address.
    pub code: Vec<u8>,
    /// Code offset of each function (imports: their thunks), by function index.
    pub func_offsets: Vec<u32>,
    /// Metadata per function, by function index.
    pub funcs: Vec<FunctionMeta>,
    /// Offset of the entry trampoline:
    /// `extern "C" fn(vmctx, func_addr, slots: *mut u64, nslots: u64) -> u32` (0 or a trap code).
    pub entry_offset: u32,
    /// Offset of the trap exit the VM context's `trap_exit` must point at.
    pub trap_exit_offset: u32,
    /// What each block counter counts (empty unless `block_counters`).
    pub counter_slots: Vec<CounterSlot>,
    /// Options used.
    pub options: Options,
    /// Clock ticks spent encoding the whole module (0 unless compiled with a clock).
    pub encode_ticks: u64,
    /// By function index: whether its code here is a lazy stub (assembled at the first call
    /// with [`lazy::assemble`]); all `false` unless compiled lazily.
    pub stubs: Vec<bool>,
    /// The WebAssembly module, kept when some function is a stub (lazy assembly reads it).
    pub source: Option<Arc<[u8]>>,
    /// Parameters specialized on (empty unless [`compile_specialized`] with
    /// `Options::specialize`); lazily assembled functions use them too.
    pub specializations: Vec<Specialize>,
    /// By function index: the block counter slots reserved for a stub's function when it is
    /// assembled lazily (with `block_counters`; empty otherwise). Enough for its blocks; its
    /// `FunctionMeta::counter_slots` is the part it uses, starting with its entry counter.
    pub lazy_counters: Vec<core::ops::Range<u32>>,
}

impl CompiledModule {
    /// How many functions are lazy stubs.
    pub fn stub_count(&self) -> usize {
        self.stubs.iter().filter(|&&s| s).count()
    }
}

/// Validates and compiles `bytes`.
pub fn compile(bytes: &[u8], options: &Options) -> Result<CompiledModule, CompileError> {
    compile_timed(bytes, options, None)
}

/// Like [`compile`], reading `clock` (any monotonic counter, e.g. the TSC) around each
/// function's lowering and around the module's encoding: the ticks land in
/// [`FunctionMeta::lower_ticks`] and [`CompiledModule::encode_ticks`].
pub fn compile_timed(
    bytes: &[u8],
    options: &Options,
    clock: Option<&dyn Fn() -> u64>,
) -> Result<CompiledModule, CompileError> {
    let (desc, pending) = module::parse_deferred(bytes)?;
    let eager = alloc::vec![!options.lazy; desc.funcs.len()];
    lower::compile_module(bytes, desc, *options, clock, &eager, &[], pending)
}

/// Like [`compile`], with profile-guided specialization on constant parameters (`specs`, e.g.
/// from [`ArgProfile::constant_params`]; ignored unless `options.specialize`): each function
/// with applicable parameters (numeric, never written) checks them after its prologue and runs
/// a body with them folded in when they all match, else its general body.
pub fn compile_specialized(
    bytes: &[u8],
    options: &Options,
    specs: &[Specialize],
) -> Result<CompiledModule, CompileError> {
    let (desc, pending) = module::parse_deferred(bytes)?;
    let eager = alloc::vec![!options.lazy; desc.funcs.len()];
    let specs = if options.specialize { specs } else { &[] };
    lower::compile_module(bytes, desc, *options, None, &eager, specs, pending)
}

/// Like [`compile_timed`], assembling only the defined functions with `eager[f]` (by function
/// index; missing entries count as `false`): every other defined function gets a lazy stub
/// (see [`lazy`]). [`reach::CallGraph`] computes what a request reaches.
pub fn compile_for(
    bytes: &[u8],
    options: &Options,
    clock: Option<&dyn Fn() -> u64>,
    eager: &[bool],
) -> Result<CompiledModule, CompileError> {
    let (desc, pending) = module::parse_deferred(bytes)?;
    lower::compile_module(bytes, desc, *options, clock, eager, &[], pending)
}

/// [`compile_for`] without validating and parsing `bytes` again: `desc` must be the
/// description [`reach::analyze`] returned for exactly these bytes (which validated them).
pub fn compile_parsed(
    bytes: &[u8],
    desc: ModuleDesc,
    options: &Options,
    clock: Option<&dyn Fn() -> u64>,
    eager: &[bool],
) -> Result<CompiledModule, CompileError> {
    lower::compile_module(bytes, desc, *options, clock, eager, &[], Vec::new())
}
