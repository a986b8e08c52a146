//! The runtime layout generated code expects: the VM context, table entries, import entries and
//! trap codes. Generated code addresses these fields by the offsets below (asserted against the
//! `#[repr(C)]` structs in tests), so the kernel and the host runner share one definition.

use core::ffi::c_void;
use core::fmt;

/// Per-instance state that generated code reads through `r14`.
#[repr(C)]
#[derive(Debug)]
pub struct VmContext {
    /// Base of the linear memory (reloaded into `r15` after every call).
    pub memory_base: *mut u8,
    /// Current linear-memory size in bytes (bounds checks compare against it).
    pub memory_size_bytes: u64,
    /// Where each global's value is (imports first): a pointer per global to its 8-byte cell,
    /// which an imported global shares with the instance that exports it.
    pub globals: *const *mut u64,
    /// Each table (imports first), possibly shared with other instances.
    pub tables: *const *mut TableDef,
    /// This instance's [`FuncRef`] of each function (what `ref.func` returns).
    pub func_refs: *const FuncRef,
    /// Function imports, in import order.
    pub imports: *const ImportEntry,
    /// Canonical signature id of each module type index (for `call_indirect`).
    pub sig_ids: *const u32,
    /// Lowest allowed `rsp`; prologues trap with [`TrapCode::StackOverflow`] below it.
    pub stack_limit: u64,
    /// `rsp` inside the entry trampoline; a trap restores it.
    pub entry_rsp: u64,
    /// Address of the trampoline's trap exit (`eax` = trap code).
    pub trap_exit: u64,
    /// Trap code set by a libcall or host function that wants to trap (0 = none).
    pub trap_code: u32,
    /// Padding.
    pub _pad: u32,
    /// Runtime helper functions, indexed by [`Libcall`](crate::Libcall).
    pub libcalls: *const usize,
    /// Owner data for runtime helpers (the runtime's instance).
    pub instance: *mut c_void,
    /// Per-block execution counters (when compiled with `block_counters`).
    pub counters: *mut u64,
    /// The linear memory's current base and size, shared by every instance that imports it;
    /// `memory_base` and `memory_size_bytes` are this instance's copies, refreshed from it after
    /// every call that may have run another instance.
    pub memory_def: *const MemoryDef,
}

/// A table as generated code sees it: `len` entries at `base`, 8 bytes each (a funcref is 0 or
/// the address of a [`FuncRef`]; an externref is 0 or a host value).
#[repr(C)]
#[derive(Debug)]
pub struct TableDef {
    /// Entries.
    pub base: *mut u64,
    /// Number of entries.
    pub len: u64,
}

/// A linear memory's current place and size.
#[repr(C)]
#[derive(Debug)]
pub struct MemoryDef {
    /// First byte.
    pub base: *mut u8,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// What a non-null funcref points at: how to call the function, whichever instance holds the
/// reference. Owned by the instance that defines the function (or imports it), immutable and
/// at a fixed address for that instance's lifetime.
#[repr(C)]
#[derive(Debug)]
pub struct FuncRef {
    /// Where the current code address of the function is kept (the embedder's relocation cell
    /// or the instance's own), read at every call.
    pub code_cell: *const usize,
    /// Canonical signature id (never 0).
    pub sig_id: u64,
    /// The VM context the function runs with.
    pub vmctx: *mut VmContext,
}

/// Byte offsets of [`VmContext`] fields.
pub mod off {
    /// `memory_base`.
    pub const MEMORY_BASE: i32 = 0;
    /// `memory_size_bytes`.
    pub const MEMORY_SIZE: i32 = 8;
    /// `globals`.
    pub const GLOBALS: i32 = 16;
    /// `tables`.
    pub const TABLES: i32 = 24;
    /// `func_refs`.
    pub const FUNC_REFS: i32 = 32;
    /// `imports`.
    pub const IMPORTS: i32 = 40;
    /// `sig_ids`.
    pub const SIG_IDS: i32 = 48;
    /// `stack_limit`.
    pub const STACK_LIMIT: i32 = 56;
    /// `entry_rsp`.
    pub const ENTRY_RSP: i32 = 64;
    /// `trap_exit`.
    pub const TRAP_EXIT: i32 = 72;
    /// `trap_code`.
    pub const TRAP_CODE: i32 = 80;
    /// `libcalls`.
    pub const LIBCALLS: i32 = 88;
    /// `instance`.
    pub const INSTANCE: i32 = 96;
    /// `counters`.
    pub const COUNTERS: i32 = 104;
    /// `memory_def`.
    pub const MEMORY_DEF: i32 = 112;
    /// [`TableDef::base`](super::TableDef).
    pub const TABLE_DEF_BASE: i32 = 0;
    /// [`TableDef::len`](super::TableDef).
    pub const TABLE_DEF_LEN: i32 = 8;
    /// [`FuncRef::code_cell`](super::FuncRef).
    pub const FUNC_REF_CODE_CELL: i32 = 0;
    /// [`FuncRef::sig_id`](super::FuncRef).
    pub const FUNC_REF_SIG: i32 = 8;
    /// [`FuncRef::vmctx`](super::FuncRef).
    pub const FUNC_REF_VMCTX: i32 = 16;
    /// Bytes per [`FuncRef`](super::FuncRef).
    pub const FUNC_REF_BYTES: i32 = 24;
}

/// How an imported function is reached.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ImportEntry {
    /// Host function ([`HostFunc`]) or code address of a wasm function (internal convention).
    pub code: usize,
    /// Host data passed to a host function, or the callee's [`VmContext`] for wasm.
    pub data: *mut c_void,
    /// [`IMPORT_HOST`] or [`IMPORT_WASM`].
    pub kind: u64,
}

/// [`ImportEntry::kind`] of a host (kernel or runner) function.
pub const IMPORT_HOST: u64 = 0;
/// [`ImportEntry::kind`] of a function compiled by this crate in another instance.
pub const IMPORT_WASM: u64 = 1;

/// A host function callable from generated code (SysV ABI).
///
/// `slots` holds the arguments, 8 bytes each (i32 zero-extended, f32 in the low 4 bytes); the
/// function writes the results into the same slots (there is room for
/// `max(params, results)`). It returns 0, or a [`TrapCode`] value to trap.
pub type HostFunc =
    unsafe extern "C" fn(vmctx: *mut VmContext, data: *mut c_void, slots: *mut u64) -> u32;

/// Why generated code stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum TrapCode {
    /// `unreachable` executed.
    Unreachable = 1,
    /// Integer division or remainder by zero.
    DivideByZero = 2,
    /// Signed division overflow (`MIN / -1`).
    IntegerOverflow = 3,
    /// A float-to-int conversion of NaN or an out-of-range value.
    InvalidConversion = 4,
    /// Linear-memory access out of bounds.
    MemoryOutOfBounds = 5,
    /// Table index out of bounds (`call_indirect`, `table.init`, `table.copy`).
    TableOutOfBounds = 6,
    /// `call_indirect` through a null table entry.
    UninitializedElement = 7,
    /// `call_indirect` signature mismatch.
    IndirectCallTypeMismatch = 8,
    /// The stack limit was reached.
    StackOverflow = 9,
    /// A host function reported an error.
    HostError = 10,
    /// `table.init`/`table.copy` out of bounds.
    TableAccessOutOfBounds = 11,
    /// A function reached for the first time could not be assembled (lazy assembly).
    AssemblyFailed = 12,
}

impl TrapCode {
    /// Maps a raw code back (unknown values become [`TrapCode::HostError`]).
    pub fn from_u32(code: u32) -> Self {
        match code {
            1 => Self::Unreachable,
            2 => Self::DivideByZero,
            3 => Self::IntegerOverflow,
            4 => Self::InvalidConversion,
            5 => Self::MemoryOutOfBounds,
            6 => Self::TableOutOfBounds,
            7 => Self::UninitializedElement,
            8 => Self::IndirectCallTypeMismatch,
            9 => Self::StackOverflow,
            11 => Self::TableAccessOutOfBounds,
            12 => Self::AssemblyFailed,
            _ => Self::HostError,
        }
    }

    /// The message the WebAssembly spec tests expect.
    pub fn message(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::DivideByZero => "integer divide by zero",
            Self::IntegerOverflow => "integer overflow",
            Self::InvalidConversion => "invalid conversion to integer",
            Self::MemoryOutOfBounds => "out of bounds memory access",
            Self::TableOutOfBounds => "undefined element",
            Self::UninitializedElement => "uninitialized element",
            Self::IndirectCallTypeMismatch => "indirect call type mismatch",
            Self::StackOverflow => "call stack exhausted",
            Self::HostError => "host function error",
            Self::TableAccessOutOfBounds => "out of bounds table access",
            Self::AssemblyFailed => "function could not be assembled",
        }
    }

    /// All codes, for building trap stubs.
    pub const ALL: [TrapCode; 12] = [
        Self::Unreachable,
        Self::DivideByZero,
        Self::IntegerOverflow,
        Self::InvalidConversion,
        Self::MemoryOutOfBounds,
        Self::TableOutOfBounds,
        Self::UninitializedElement,
        Self::IndirectCallTypeMismatch,
        Self::StackOverflow,
        Self::HostError,
        Self::TableAccessOutOfBounds,
        Self::AssemblyFailed,
    ];
}

impl fmt::Display for TrapCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn offsets_match_layout() {
        assert_eq!(
            offset_of!(VmContext, memory_base),
            off::MEMORY_BASE as usize
        );
        assert_eq!(
            offset_of!(VmContext, memory_size_bytes),
            off::MEMORY_SIZE as usize
        );
        assert_eq!(offset_of!(VmContext, globals), off::GLOBALS as usize);
        assert_eq!(offset_of!(VmContext, tables), off::TABLES as usize);
        assert_eq!(offset_of!(VmContext, func_refs), off::FUNC_REFS as usize);
        assert_eq!(offset_of!(VmContext, memory_def), off::MEMORY_DEF as usize);
        assert_eq!(offset_of!(TableDef, base), off::TABLE_DEF_BASE as usize);
        assert_eq!(offset_of!(TableDef, len), off::TABLE_DEF_LEN as usize);
        assert_eq!(
            offset_of!(FuncRef, code_cell),
            off::FUNC_REF_CODE_CELL as usize
        );
        assert_eq!(offset_of!(FuncRef, sig_id), off::FUNC_REF_SIG as usize);
        assert_eq!(offset_of!(FuncRef, vmctx), off::FUNC_REF_VMCTX as usize);
        assert_eq!(size_of::<FuncRef>(), off::FUNC_REF_BYTES as usize);
        assert_eq!(offset_of!(VmContext, imports), off::IMPORTS as usize);
        assert_eq!(offset_of!(VmContext, sig_ids), off::SIG_IDS as usize);
        assert_eq!(
            offset_of!(VmContext, stack_limit),
            off::STACK_LIMIT as usize
        );
        assert_eq!(offset_of!(VmContext, entry_rsp), off::ENTRY_RSP as usize);
        assert_eq!(offset_of!(VmContext, trap_exit), off::TRAP_EXIT as usize);
        assert_eq!(offset_of!(VmContext, trap_code), off::TRAP_CODE as usize);
        assert_eq!(offset_of!(VmContext, libcalls), off::LIBCALLS as usize);
        assert_eq!(offset_of!(VmContext, instance), off::INSTANCE as usize);
        assert_eq!(offset_of!(VmContext, counters), off::COUNTERS as usize);
        assert_eq!(core::mem::size_of::<ImportEntry>(), 24);
    }
}
