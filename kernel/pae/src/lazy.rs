//! Lazy assembly: functions assembled at their first call instead of up front.
//!
//! [`crate::compile_for`] (or [`crate::Options::lazy`]) assembles a chosen subset of a
//! module's functions; every other defined function gets a *stub* in the module's code, and
//! every call of it (direct calls, the entry trampoline, funcrefs) goes through the function's
//! code cell, which first holds the stub's address.
//!
//! At the first call the stub calls the `LazyAssemble` runtime helper, which asks the
//! embedder ([`crate::runtime::CodeMemory::assemble_lazy`]) to assemble the function: the
//! embedder calls [`assemble`] (pure: code and metadata, position-independent), copies the
//! code into executable memory and then stores its address in the function's cell. The stub
//! then calls the function through the cell with the caller's arguments (copied from its
//! incoming slots) and hands the results back. Later calls read the cell and reach the
//! assembled code directly.
//!
//! Only the cell is patched, never code: an aligned 8-byte store (release) of the address of
//! code that was completely written and made executable before. A thread on another core that
//! read the cell before the store enters the stub, whose helper call waits for the embedder's
//! lock and finds the function assembled (so it is assembled once); one that reads it after
//! calls the new code, which no core ever executed before, so no stale instruction bytes can
//! exist for it. Calls read the cell in the `call [cell]` instruction itself, so no thread holds
//! the stub's address in a register across the store.

use alloc::vec::Vec;

use crate::{CompileError, CompiledModule, CounterSlot, FunctionMeta};

/// One lazily assembled function.
#[derive(Debug, Clone)]
pub struct LazyFunction {
    /// Position-independent code: the function, then its own trap stubs (inside
    /// `meta.code_range`, which starts at 0 and ends at `code.len()`).
    pub code: Vec<u8>,
    /// Its metadata, offsets relative to `code`; every call site is a cell, libcall or
    /// `call_indirect` call (nothing to re-target when the code is placed anywhere). Its
    /// `counter_slots` lie in the module's `lazy_counters` for it.
    pub meta: FunctionMeta,
    /// What each of its counters counts (the module's `counter_slots` holds placeholders for
    /// the reserved slots).
    pub counter_slots: Vec<CounterSlot>,
}

/// Assembles function `index` of `module`, which must be a lazy stub there, with the
/// module's options (block counters in the slots reserved for it).
pub fn assemble(module: &CompiledModule, index: u32) -> Result<LazyFunction, CompileError> {
    if !module.stubs.get(index as usize).copied().unwrap_or(false) {
        return Err(CompileError::Unsupported(alloc::format!(
            "function {index} is not a lazy stub"
        )));
    }
    let source = module
        .source
        .as_deref()
        .ok_or_else(|| CompileError::Unsupported("no source kept for lazy assembly".into()))?;
    let counters = module
        .lazy_counters
        .get(index as usize)
        .cloned()
        .unwrap_or(0..0);
    let (code, meta, counter_slots) = crate::lower::lazy::compile_one(
        source,
        &module.desc,
        module.options,
        index,
        &module.specializations,
        counters,
    )?;
    Ok(LazyFunction {
        code,
        meta,
        counter_slots,
    })
}
